"""`store.sql`: a key-value store in a table of a `db.sql.*` database (SQLite, Postgres, DuckDB).

The table must exist (Wippy's rule); its key column must be its primary key (or unique), e.g.::

    CREATE TABLE kv_store (key VARCHAR(255) PRIMARY KEY, value BYTEA NOT NULL, expires_at BIGINT);

Values are stored as JSON (bytes into a BLOB/bytea column, text into a text/json one); expiry is
Unix seconds in ``expires_at`` (NULL: never). Expired rows are never returned, and are deleted
every ``cleanup_interval`` (on the next access after it passed; 0: never, as Wippy's default).

Versions: the table has no version column (Wippy's layout), so an entry's version is derived
from its value: a 48-bit hash of its JSON with sorted keys (so a jsonb column's normalising does
not change it). ``put(..., if_version=v)`` succeeds when the
stored value still hashes to ``v``, and the write itself compares the stored value (so a change
between the read and the write is a CONFLICT, never a lost update). Writing a value equal to the
current one keeps the version: a change away and back (A -> B -> A) is not detected.

The methods are coroutines; the store takes a lease on the database per operation.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

import orjson

from wippy.core import ConflictError, DefinitionError, Entry, NotFoundError, WippyError, sql_store_spec

from ._stores import AlreadyExistsError

_TEXT_TYPES = ("text", "character varying", "varchar", "character", "json", "jsonb", "bpchar")


def version_of(value: Any) -> int:
    """The version of a value: 48 bits of a hash of its canonical JSON (exact in Lua and JSON)."""
    canonical = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return int.from_bytes(hashlib.blake2b(canonical, digest_size=6).digest(), "big")


class SqlStore:
    """A store.sql entry's store (see the module docstring)."""

    def __init__(self, entry: Entry, databases: Any) -> None:
        self.spec = spec = sql_store_spec(entry)
        self.id = entry.id
        self._hub = databases
        self._checked: dict[int, bool] = {}  # id(backend) -> payload column takes text (else bytes)
        self._next_sweep = time.monotonic() + spec.cleanup_interval if spec.cleanup_interval else math.inf
        t, k, v, x = spec.table, spec.id_column, spec.payload_column, spec.expire_column
        self._sql = {
            "get": f"SELECT {v} FROM {t} WHERE {k} = ? AND ({x} IS NULL OR {x} > ?)",
            "has": f"SELECT 1 FROM {t} WHERE {k} = ? AND ({x} IS NULL OR {x} > ?)",
            "upsert": f"INSERT INTO {t} ({k}, {v}, {x}) VALUES (?, ?, ?) ON CONFLICT ({k}) DO UPDATE SET "
                      f"{v} = excluded.{v}, {x} = excluded.{x}",
            "insert": f"INSERT INTO {t} ({k}, {v}, {x}) VALUES (?, ?, ?) ON CONFLICT ({k}) DO NOTHING",
            "swap": f"UPDATE {t} SET {v} = ?, {x} = ? WHERE {k} = ? AND {v} = ? AND ({x} IS NULL OR {x} > ?)",
            "drop_expired_key": f"DELETE FROM {t} WHERE {k} = ? AND {x} IS NOT NULL AND {x} <= ?",
            "delete": f"DELETE FROM {t} WHERE {k} = ? AND ({x} IS NULL OR {x} > ?)",
            "sweep": f"DELETE FROM {t} WHERE {x} IS NOT NULL AND {x} <= ?",
            "count": f"SELECT COUNT(*) FROM {t} WHERE ({x} IS NULL OR {x} > ?)",
            "probe": f"SELECT {k}, {v}, {x} FROM {t} WHERE 1 = 0",
        }

    # -- plumbing ------------------------------------------------------------------------------
    def _text(self, sql: str, db: Any) -> str:
        """``sql`` in the database's placeholder style (Postgres: $1, $2, ...)."""
        if db.type != "postgres":
            return sql
        parts = sql.split("?")
        return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))

    async def _db(self) -> Any:
        lease = self._hub.acquire(self.spec.database)
        try:
            db = lease.db
            if id(db) not in self._checked:
                self._checked[id(db)] = await self._check(db)
            if time.monotonic() >= self._next_sweep:
                self._next_sweep = time.monotonic() + self.spec.cleanup_interval
                await db.execute(None, self._text(self._sql["sweep"], db), (int(time.time()),))
        except BaseException:
            lease.release()
            raise
        return lease

    async def _check(self, db: Any) -> bool:
        """The table is there with its columns; True when the payload column takes text."""
        s = self.spec
        try:
            await db.query(None, self._sql["probe"], ())
        except WippyError as exc:
            raise DefinitionError(
                f"store {self.id}: table {s.table} in database {s.database} is missing or lacks the columns "
                f"{s.id_column}, {s.payload_column}, {s.expire_column} (create it before use): {exc}",
                entry=self.id, field="table_name") from exc
        if db.type == "sqlite":
            return False  # a BLOB binds into any column unchanged
        schema, _, table = s.table.rpartition(".")
        sql = "SELECT data_type FROM information_schema.columns WHERE table_name = ? AND column_name = ?"
        params: tuple[Any, ...] = (table, s.payload_column)
        if schema:
            sql += " AND table_schema = ?"
            params += (schema,)
        _cols, rows = await db.query(None, self._text(sql, db), params)
        return bool(rows) and str(rows[0][0]).lower() in _TEXT_TYPES

    async def _run(self, name: str, params: tuple[Any, ...], *, fetch: bool = False) -> Any:
        lease = await self._db()
        try:
            db = lease.db
            sql = self._text(self._sql[name], db)
            if fetch:
                return (await db.query(None, sql, params))[1]
            return (await db.execute(None, sql, params))[1]
        finally:
            lease.release()

    def _payload(self, key: str, value: Any, text: bool) -> Any:
        try:
            data = orjson.dumps(value)
        except TypeError as exc:
            raise DefinitionError(f"store {self.id}: value for {key!r} cannot be stored: {exc}") from exc
        return data.decode() if text else data

    @staticmethod
    def _bytes(raw: Any) -> bytes:
        if isinstance(raw, bytes):
            return raw
        if isinstance(raw, str):
            return raw.encode()
        return orjson.dumps(raw)  # a JSON column handed back as a value

    @staticmethod
    def _expiry(ttl: float | None) -> int | None:
        return math.ceil(time.time() + ttl) if ttl is not None and ttl > 0 else None

    # -- the store API (as MemoryStore's, awaited) -----------------------------------------------
    async def _current(self, key: str) -> bytes | None:
        rows = await self._run("get", (key, int(time.time())), fetch=True)
        return self._bytes(rows[0][0]) if rows else None

    async def get(self, key: str) -> Any:
        raw = await self._current(key)
        if raw is None:
            raise NotFoundError(f"key {key!r} not found in store {self.id}")
        return orjson.loads(raw)

    async def entry(self, key: str) -> dict[str, Any]:
        raw = await self._current(key)
        if raw is None:
            raise NotFoundError(f"key {key!r} not found in store {self.id}")
        value = orjson.loads(raw)
        return {"key": key, "value": value, "version": version_of(value)}

    async def has(self, key: str) -> bool:
        return bool(await self._run("has", (key, int(time.time())), fetch=True))

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        await self.put(key, value, ttl=ttl)

    async def put(self, key: str, value: Any, *, ttl: float | None = None, only_if_absent: bool = False,
                  if_version: int | None = None) -> dict[str, Any]:
        lease = await self._db()
        try:
            db = lease.db
            text = self._checked[id(db)]
            payload = self._payload(key, value, text)
            now = int(time.time())
            expires = self._expiry(ttl)
            if only_if_absent:
                await db.execute(None, self._text(self._sql["drop_expired_key"], db), (key, now))
                _last, n = await db.execute(None, self._text(self._sql["insert"], db), (key, payload, expires))
                if n == 0:
                    raise AlreadyExistsError(f"key {key!r} already exists in store {self.id}")
            elif if_version is not None:
                _cols, rows = await db.query(None, self._text(self._sql["get"], db), (key, now))
                current = rows[0][0] if rows else None
                have = version_of(orjson.loads(self._bytes(current))) if current is not None else None
                if have != if_version:
                    raise ConflictError(f"key {key!r} in store {self.id} is at version "
                                        f"{have if have is not None else 'none'}, not {if_version}")
                _last, n = await db.execute(None, self._text(self._sql["swap"], db),
                                            (payload, expires, key, current, now))
                if n == 0:
                    raise ConflictError(f"key {key!r} in store {self.id} changed while it was written")
            else:
                await db.execute(None, self._text(self._sql["upsert"], db), (key, payload, expires))
        finally:
            lease.release()
        return {"key": key, "value": value, "version": version_of(value)}

    async def delete(self, key: str) -> bool:
        return bool(await self._run("delete", (key, int(time.time()))))

    async def list(self, *, prefix: str = "", after: str | None = None, limit: int = 100) -> dict[str, Any]:
        s = self.spec
        k, v, x = s.id_column, s.payload_column, s.expire_column
        sql = f"SELECT {k}, {v} FROM {s.table} WHERE ({x} IS NULL OR {x} > ?)"
        params: list[Any] = [int(time.time())]
        lease = await self._db()
        try:
            db = lease.db
            if prefix:
                if db.type == "sqlite":  # SQLite's text functions stop at a NUL; bytes do not
                    sql += f" AND substr(CAST({k} AS BLOB), 1, ?) = CAST(? AS BLOB)"
                    params += [len(prefix.encode()), prefix]
                else:
                    sql += f" AND substr({k}, 1, ?) = ?"
                    params += [len(prefix), prefix]
            if after is not None:
                sql += f" AND {k} > ?"
                params.append(str(after))
            limit = max(1, int(limit))
            sql += f" ORDER BY {k} LIMIT {limit + 1}"
            _cols, rows = await db.query(None, self._text(sql, db), tuple(params))
        finally:
            lease.release()
        page = rows[:limit]
        items = []
        for key, raw in page:
            value = orjson.loads(self._bytes(raw))
            items.append({"key": key, "value": value, "version": version_of(value)})
        return {"items": items, "cursor": page[-1][0] if page else None, "has_more": len(rows) > limit}

    async def info(self) -> dict[str, Any]:
        rows = await self._run("count", (int(time.time()),), fetch=True)
        return {"id": self.id, "kind": "store.sql", "size": int(rows[0][0]) if rows else 0,
                "database": self.spec.database, "table": self.spec.table}
