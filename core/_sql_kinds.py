"""SQL database entries (`db.sql.*`) and `store.sql` as data, checked when a changeset is applied.

Kinds and fields::

    db.sql.sqlite    file (a path, relative to the process's working directory, or ":memory:";
                     some Wippy docs say ``path``, accepted too), pool.max_lifetime, options (ignored)
    db.sql.postgres  host (localhost), port (5432), database, username, password, options{} (sslmode,
                     connect_timeout, application_name, ...), pool{max_open, max_idle, max_lifetime}
    db.sql.mysql     as postgres (port 3306); refused when used: not implemented in this runtime
    db.sql.duckdb    (ours) file or ":memory:", read_only
    store.sql        database, table_name (or ``table``), id_column_name (key), payload_column_name
                     (value), expire_column_name (expires_at), cleanup_interval (0: no sweeps)

A field holding an env placeholder (``${env:DB_PORT}``) or replaced by a ``<field>_env`` sibling
is checked only for what it can be before resolution. The spec functions (``db_spec``,
``sql_store_spec``) are what the services use on resolved entries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ._durations import parse_go_duration
from ._entry import Entry
from ._errors import DefinitionError
from ._validate import register_kind_check

DB_KINDS = ("db.sql.sqlite", "db.sql.postgres", "db.sql.mysql", "db.sql.duckdb")
#: Wippy's sql.type value of each kind (duckdb is ours)
DB_TYPES = {"db.sql.sqlite": "sqlite", "db.sql.postgres": "postgres", "db.sql.mysql": "mysql",
            "db.sql.duckdb": "duckdb"}
#: A table or column name store.sql puts into SQL text: an identifier, optionally schema-qualified.
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MEMORY = ":memory:"


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolSpec:
    """Connection pool limits; 0 means the backend's default."""

    max_open: int = 0
    max_idle: int = 0
    #: seconds a connection may live before it is replaced (None: forever)
    max_lifetime: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SqliteSpec:
    id: str
    #: ":memory:" or the path as written (the service resolves it against its working directory)
    file: str
    pool: PoolSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSpec:
    """A client/server database (postgres; mysql shares the shape)."""

    id: str
    kind: str
    host: str
    port: int
    database: str
    username: str
    password: str
    options: tuple[tuple[str, str], ...]
    pool: PoolSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class DuckdbSpec:
    id: str
    file: str
    read_only: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class SqlStoreSpec:
    id: str
    database: str
    table: str
    id_column: str
    payload_column: str
    expire_column: str
    #: seconds between sweeps of expired rows (0: none; expired rows are still never returned)
    cleanup_interval: float


DbSpec = SqliteSpec | ServerSpec | DuckdbSpec


def _placeholder(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


class _Check:
    """Collects the problems of one entry, each naming the entry and the field."""

    def __init__(self, entry: Entry) -> None:
        self.entry = entry
        self.data = entry.data
        self.found: list[DefinitionError] = []

    def add(self, field: str, message: str) -> None:
        self.found.append(DefinitionError(message, entry=self.entry.id, field=field))

    def deferred(self, field: str) -> bool:
        """The field's value comes from the env registry (checked when resolved)."""
        return _placeholder(self.data.get(field)) or f"{field}_env" in self.data

    def text(self, field: str, default: str, *, required: bool = False) -> str:
        raw = self.data.get(field)
        if raw is None:
            if required and not self.deferred(field):
                self.add(field, "is required")
            return default
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            self.add(field, "must be a string")
            return default
        return str(raw)

    def integer(self, where: dict[str, Any], field: str, label: str, default: int, *, low: int, high: int) -> int:
        raw = where.get(field)
        if raw is None or _placeholder(raw):
            return default
        if isinstance(raw, str) and raw.strip().isdigit():
            raw = int(raw)
        if not isinstance(raw, int) or isinstance(raw, bool) or not low <= raw <= high:
            self.add(label, f"must be an integer from {low} to {high}")
            return default
        return raw

    def seconds(self, where: dict[str, Any], field: str, label: str) -> float | None:
        raw = where.get(field)
        if raw is None or _placeholder(raw):
            return None
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            if raw < 0:
                self.add(label, "must not be negative")
                return None
            return float(raw)
        if isinstance(raw, str):
            try:
                ns = parse_go_duration(raw)
            except ValueError as exc:
                self.add(label, str(exc))
                return None
            if ns < 0:
                self.add(label, "must not be negative")
                return None
            return ns / 1e9
        self.add(label, "must be a duration like '30m' or a number of seconds")
        return None

    def flag(self, field: str) -> bool:
        raw = self.data.get(field, False)
        if not isinstance(raw, bool):
            self.add(field, "must be true or false")
            return False
        return raw

    def pool(self) -> PoolSpec:
        raw = self.data.get("pool")
        if raw is None:
            return PoolSpec()
        if not isinstance(raw, dict):
            self.add("pool", "must be a map (max_open, max_idle, max_lifetime)")
            return PoolSpec()
        limit = 1 << 20
        return PoolSpec(max_open=self.integer(raw, "max_open", "pool.max_open", 0, low=0, high=limit),
                        max_idle=self.integer(raw, "max_idle", "pool.max_idle", 0, low=0, high=limit),
                        max_lifetime=self.seconds(raw, "max_lifetime", "pool.max_lifetime"))

    def options(self) -> tuple[tuple[str, str], ...]:
        raw = self.data.get("options")
        if raw is None:
            return ()
        if not isinstance(raw, dict):
            self.add("options", "must be a map of option names to values")
            return ()
        out: list[tuple[str, str]] = []
        for k, v in sorted(raw.items(), key=lambda kv: str(kv[0])):
            if isinstance(v, dict | list) or v is None:
                self.add(f"options.{k}", "must be a string, number or boolean")
                continue
            out.append((str(k), ("true" if v else "false") if isinstance(v, bool) else str(v)))
        return tuple(out)

    def file(self) -> str:
        """``file`` (or the doc drift ``path``): a non-empty path or ":memory:"."""
        field = "file" if "file" in self.data or "path" not in self.data else "path"
        raw = self.data.get(field)
        if raw is None:
            if not self.deferred("file"):
                self.add("file", 'is required (a database file path, or ":memory:")')
            return MEMORY
        if not isinstance(raw, str) or not raw.strip():
            self.add(field, 'must be a database file path, or ":memory:"')
            return MEMORY
        return raw


def _db_spec(entry: Entry) -> tuple[DbSpec | None, list[DefinitionError]]:
    c = _Check(entry)
    spec: DbSpec
    if entry.kind == "db.sql.sqlite":
        spec = SqliteSpec(id=entry.id, file=c.file(), pool=c.pool())
    elif entry.kind == "db.sql.duckdb":
        spec = DuckdbSpec(id=entry.id, file=c.file(), read_only=c.flag("read_only"))
    else:
        default_port = 3306 if entry.kind == "db.sql.mysql" else 5432
        spec = ServerSpec(id=entry.id, kind=entry.kind, host=c.text("host", "localhost"),
                          port=c.integer(entry.data, "port", "port", default_port, low=1, high=65535),
                          database=c.text("database", ""), username=c.text("username", ""),
                          password=c.text("password", ""), options=c.options(), pool=c.pool())
    return (None, c.found) if c.found else (spec, [])


def db_spec(entry: Entry) -> DbSpec:
    """The database an entry describes; DefinitionError naming the first bad field otherwise."""
    if entry.kind not in DB_KINDS:
        raise DefinitionError(f"is a {entry.kind}, not a database (db.sql.*)", entry=entry.id)
    spec, found = _db_spec(entry)
    if spec is None:
        raise found[0]
    return spec


def _store_spec(entry: Entry) -> tuple[SqlStoreSpec | None, list[DefinitionError]]:
    c = _Check(entry)
    d = entry.data
    database = d.get("database")
    if not isinstance(database, str) or ":" not in database:
        c.add("database", "must name a db.sql.* entry (namespace:name)")
    table_field = "table_name" if "table_name" in d or "table" not in d else "table"
    table = d.get(table_field)
    if table is None:
        c.add("table_name", "is required (the table holding the store; create it before use)")
    elif not isinstance(table, str) or not IDENTIFIER.match(table):
        c.add(table_field, "must be a table name (letters, digits, _; optionally schema.table)")
    columns = {}
    for field, default in (("id_column_name", "key"), ("payload_column_name", "value"),
                           ("expire_column_name", "expires_at")):
        raw = d.get(field, default)
        if not isinstance(raw, str) or not _COLUMN.match(raw):
            c.add(field, "must be a column name (letters, digits and _)")
            raw = default
        columns[field] = raw
    interval = c.seconds(d, "cleanup_interval", "cleanup_interval")
    if c.found:
        return None, c.found
    return SqlStoreSpec(id=entry.id, database=str(database), table=str(table),
                        id_column=columns["id_column_name"], payload_column=columns["payload_column_name"],
                        expire_column=columns["expire_column_name"], cleanup_interval=interval or 0.0), []


def sql_store_spec(entry: Entry) -> SqlStoreSpec:
    """The store.sql an entry describes; DefinitionError naming the first bad field otherwise."""
    spec, found = _store_spec(entry)
    if spec is None:
        raise found[0]
    return spec


register_kind_check(DB_KINDS, lambda entry: _db_spec(entry)[1])
register_kind_check(["store.sql"], lambda entry: _store_spec(entry)[1])


class SqlNull:
    """SQL NULL as a parameter value (Lua's sql.NULL; a Lua array cannot hold nil)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "sql.NULL"


#: the one NULL parameter value
NULL = SqlNull()


class TypedValue:
    """A parameter with the SQL type its maker chose (sql.as.int/float/text/binary): ``value`` is
    an int, a float, a str or bytes."""

    __slots__ = ("kind", "value")

    def __init__(self, kind: str, value: int | float | str | bytes) -> None:
        self.kind = kind
        self.value = value

    def __repr__(self) -> str:
        return f"sql.as.{self.kind}({self.value!r})"


def plain_param(value: Any) -> Any:
    """A parameter as a driver takes it: NULL as None, a TypedValue as its value."""
    if value is NULL:
        return None
    if isinstance(value, TypedValue):
        return value.value
    return value
