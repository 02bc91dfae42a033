"""SQL databases of a node: one backend (a connection or a pool) per `db.sql.*` entry.

``SqlHub`` makes a backend on first use from the registry entry and hands out leases on it;
``sql.get`` in Lua and ``store.sql`` both go through it. A changed entry (a new Entry object
for the id) gets a new backend; the old one is closed once its last lease is returned.

Backends (each in its own module) share one shape: ``query``/``execute``/``begin``/``prepare``
coroutines taking an optional transaction, ``stats()``, ``aclose()``; SQLite also answers
``query_now``/``execute_now``/``begin_now`` at once when it can (see services._sql_sqlite).

- ``db.sql.sqlite``: one connection (Wippy's rule), WAL for files; statements run on the event
  loop thread under a small time budget and move to the connection's worker thread when they
  would take longer.
- ``db.sql.postgres``: an asyncpg pool. ``?`` is not rewritten: Postgres takes ``$1``.
- ``db.sql.duckdb`` (ours): one DuckDB database, statements on worker threads.
- ``db.sql.mysql``: refused when used (UNAVAILABLE: not implemented).

Errors are ``SqlError`` with a Wippy kind: INVALID for what the caller got wrong (syntax, unknown
table or column, constraint, bad parameter), UNAVAILABLE (retryable) for connection trouble and
lock or serialization conflicts, INTERNAL otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from wippy.core import (
    DB_KINDS,
    DefinitionError,
    DuckdbSpec,
    Entry,
    NotFoundError,
    NotImplementedFeatureError,
    ServerSpec,
    SqliteSpec,
    WippyError,
    db_spec,
)

log = logging.getLogger("wippy.sql")

#: Wippy's isolation level names, accepted by ``begin``
ISOLATION_LEVELS = frozenset({"default", "read_uncommitted", "read_committed", "write_committed",
                              "repeatable_read", "serializable"})


class SqlError(WippyError):
    """A statement, transaction or connection the database refused."""

    def __init__(self, message: str, *, kind: str = "INTERNAL", retryable: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable


class Lease:
    """One user's hold on a backend; ``release`` is idempotent."""

    __slots__ = ("_hub", "db", "released")

    def __init__(self, hub: SqlHub, db: Any) -> None:
        self._hub = hub
        self.db = db
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._hub._returned(self.db)


class SqlHub:
    """The node's SQL databases, made on first use from their registry entries.

    ``env`` (the node's EnvService, optional) resolves env placeholders in entry fields; ``cwd``
    is where relative SQLite/DuckDB paths start (the process's working directory by default).
    """

    def __init__(self, registry: Any, *, env: Any = None, cwd: str | os.PathLike[str] | None = None) -> None:
        self._registry = registry
        self._env = env
        self._cwd = os.fspath(cwd) if cwd is not None else None
        self._dbs: dict[str, tuple[Entry, Any]] = {}
        self._leases: dict[int, int] = {}  # id(backend) -> leases out
        self._retired: dict[int, Any] = {}  # replaced backends waiting for their last lease
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    def acquire(self, db_id: str) -> Lease:
        """A lease on the database ``db_id``: NotFoundError, DefinitionError (not a database, bad
        fields) or NotImplementedFeatureError (mysql) otherwise. Opens nothing yet."""
        if self._closed:
            raise SqlError("the node's databases are closed (the node is stopping)", kind="UNAVAILABLE")
        db = self._backend(db_id)
        self._leases[id(db)] = self._leases.get(id(db), 0) + 1
        return Lease(self, db)

    def _backend(self, db_id: str) -> Any:
        entry = self._registry.get(db_id)
        if entry is None:
            raise NotFoundError(f"database {db_id} does not exist")
        found = self._dbs.get(db_id)
        if found is not None and found[0] is entry:
            return found[1]
        if entry.kind not in DB_KINDS:
            raise DefinitionError(f"{db_id} is a {entry.kind}, not a database (db.sql.*)")
        resolved = self._env.resolve(entry) if self._env is not None else entry
        spec = db_spec(resolved)
        backend = self._make(spec)
        if found is not None:
            self._retire(found[1])
        self._dbs[db_id] = (entry, backend)
        return backend

    def _make(self, spec: Any) -> Any:
        if isinstance(spec, SqliteSpec):
            from ._sql_sqlite import SqliteDatabase

            return SqliteDatabase(spec.id, self._path(spec.file))
        if isinstance(spec, DuckdbSpec):
            from ._sql_duckdb import DuckDatabase

            return DuckDatabase(spec.id, self._path(spec.file), read_only=spec.read_only)
        assert isinstance(spec, ServerSpec)
        if spec.kind == "db.sql.mysql":
            raise NotImplementedFeatureError(
                f"database {spec.id}: db.sql.mysql is not implemented in this runtime (use postgres or sqlite)")
        from ._sql_postgres import PostgresDatabase

        return PostgresDatabase(spec)

    def _path(self, file: str) -> str:
        if file == ":memory:":
            return file
        base = self._cwd if self._cwd is not None else os.getcwd()
        return os.path.normpath(os.path.join(base, os.path.expanduser(file)))

    def _returned(self, db: Any) -> None:
        left = self._leases.get(id(db), 0) - 1
        if left > 0:
            self._leases[id(db)] = left
            return
        self._leases.pop(id(db), None)
        if self._retired.pop(id(db), None) is not None:
            self._close_later(db)

    def _retire(self, db: Any) -> None:
        if self._leases.get(id(db), 0) > 0:
            self._retired[id(db)] = db
        else:
            self._close_later(db)

    def _close_later(self, db: Any) -> None:
        async def close() -> None:
            try:
                await db.aclose()
            except Exception:
                log.exception("closing database %s failed", db.id)

        try:
            task = asyncio.get_running_loop().create_task(close())
        except RuntimeError:  # no loop (a synchronous caller): backends close their own resources
            db.close_now()
            return
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def stats(self) -> dict[str, Any]:
        """Leases out per database id (for diagnostics)."""
        return {db_id: self._leases.get(id(db), 0) for db_id, (_e, db) in self._dbs.items()}

    async def aclose(self) -> None:
        """Close every backend (open transactions are rolled back by the databases). Idempotent."""
        self._closed = True
        dbs = [db for _e, db in self._dbs.values()] + list(self._retired.values())
        self._dbs.clear()
        self._retired.clear()
        for db in dbs:
            try:
                await db.aclose()
            except Exception:
                log.exception("closing database %s failed", db.id)
        while self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)
