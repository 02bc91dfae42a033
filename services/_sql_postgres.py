"""`db.sql.postgres`: an asyncpg pool per database entry.

Placeholders are Postgres's own (``$1``); ``?`` is not rewritten (Wippy passes SQL through too).
Wippy's Go driver sends parameters as text and lets the server convert them; asyncpg binds typed
values. Where the two differ (a number for a text column, a string for a timestamp or an integer
column), a parameter asyncpg refuses is converted to the type the statement expects and the
statement bound again; the refusal happens before anything is sent, so nothing runs twice.
Times and dates come back as RFC 3339 text in UTC, NUMERIC as numbers, bytea as strings.

Pool: ``max_open`` connections at most (10 when 0: asyncpg needs a bound), none kept open when
idle for five minutes, each replaced after ``max_lifetime``. ``options`` go into the connection
string (sslmode, sslrootcert, application_name, ...); ``connect_timeout`` (seconds) bounds a connect.
Transactions: ``BEGIN ISOLATION LEVEL ... [READ ONLY]``; a failed statement leaves the
transaction aborted, as the server decides.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from wippy.core import ServerSpec, plain_param

from ._sql import SqlError
from ._sql_values import plain

_ISOLATION = {"default": "", "read_uncommitted": " ISOLATION LEVEL READ UNCOMMITTED",
              "read_committed": " ISOLATION LEVEL READ COMMITTED",
              "repeatable_read": " ISOLATION LEVEL REPEATABLE READ", "serializable": " ISOLATION LEVEL SERIALIZABLE"}
_INTS = frozenset({"int2", "int4", "int8", "oid"})
_FLOATS = frozenset({"float4", "float8", "numeric"})
_TEXTS = frozenset({"text", "varchar", "bpchar", "name", "char", "citext", "json", "jsonb", "xml", "uuid"})


def _error(exc: BaseException, db_id: str) -> SqlError:
    """An asyncpg/OS exception as a SqlError with a Wippy kind (by SQLSTATE class)."""
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", "") or ""
        cls = state[:2]
        if state == "42501" or cls == "28":
            return SqlError(str(exc), kind="PERMISSION_DENIED")
        if cls in ("08", "53", "57", "40", "55"):  # connection, resources, shutdown, serialization, lock
            return SqlError(str(exc), kind="UNAVAILABLE", retryable=True)
        if cls in ("42", "22", "23", "25", "2B", "2D", "3B", "0A", "21", "44", "26", "34", "3D", "3F"):
            return SqlError(str(exc), kind="INVALID")
        return SqlError(str(exc), kind="INTERNAL")
    if isinstance(exc, asyncpg.DataError | asyncpg.InterfaceError) and "another operation" not in str(exc):
        return SqlError(str(exc), kind="INVALID")
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError | asyncpg.ClientConfigurationError):
        return SqlError(f"database {db_id} is unreachable: {exc}", kind="UNAVAILABLE", retryable=True)
    return SqlError(f"{type(exc).__name__}: {exc}", kind="INTERNAL")


def _coerce(value: Any, type_name: str) -> Any:
    """A parameter as the statement's parameter type wants it, the way the server would read its text."""
    if value is None:
        return None
    try:
        if type_name in _INTS:
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str):
                return int(value.strip())
            if isinstance(value, bool):
                return int(value)
        elif type_name in _FLOATS and isinstance(value, str):
            return float(value.strip())
        elif type_name in _TEXTS and not isinstance(value, str | bytes):
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, float) and value.is_integer():
                return str(int(value))
            return str(value)
        elif type_name == "bool":
            if isinstance(value, str):
                return value.strip().lower() in ("t", "true", "1", "yes", "on", "y")
            if isinstance(value, int | float):
                return bool(value)
        elif type_name == "bytea" and isinstance(value, str):
            return value.encode("utf-8")
    except ValueError:
        return value  # asyncpg's refusal says what was wrong
    return value


def _affected(status: str) -> int:
    tail = status.rsplit(" ", 1)[-1] if status else ""
    return int(tail) if tail.isdigit() else 0


class _Conn(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection that knows its age (for ``max_lifetime``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.born = time.monotonic()


async def _init(conn: Any) -> None:
    """Times and dates: decoded as RFC 3339 text (no datetime objects on the way to Lua), encoded
    from datetimes, ISO text or Unix seconds; bytea also from text."""
    from ._sql_codecs import install

    await install(conn)


class PgTx:
    """A transaction on one pooled connection, held until it ends."""

    __slots__ = ("active", "conn", "db", "lock", "read_only", "token")

    def __init__(self, db: PostgresDatabase, conn: Any, read_only: bool, token: Any) -> None:
        self.db = db
        self.conn = conn
        self.read_only = read_only
        self.token = token
        self.active = True
        self.lock = asyncio.Lock()  # asyncpg runs one operation per connection at a time


class PostgresDatabase:
    type = "postgres"

    def __init__(self, spec: ServerSpec) -> None:
        self.id = spec.id
        self.spec = spec
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._closed = False
        self.wait_count = 0
        self.wait_seconds = 0.0
        self.lifetime_closed = 0

    def _dsn(self) -> tuple[str, float | None]:
        s = self.spec
        q = urllib.parse.quote
        options = dict(s.options)
        timeout = options.pop("connect_timeout", None)
        auth = q(s.username, safe="") + (":" + q(s.password, safe="") if s.password else "")
        host = f"[{s.host}]" if ":" in s.host else s.host
        dsn = f"postgresql://{auth}@{host}:{s.port}/{q(s.database, safe='')}"
        if options:
            dsn += "?" + urllib.parse.urlencode(options)
        try:
            return dsn, float(timeout) if timeout is not None else None
        except ValueError:
            raise SqlError(f"database {self.id}: options.connect_timeout must be a number of seconds",
                           kind="INVALID") from None

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        async with self._opening:
            if self._closed:
                raise SqlError(f"database {self.id} is closed", kind="UNAVAILABLE")
            if self._pool is None:
                dsn, timeout = self._dsn()
                extra: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
                try:
                    self._pool = await asyncpg.create_pool(
                        dsn, min_size=0, max_size=self.spec.pool.max_open or 10, init=_init, connection_class=_Conn,
                        max_inactive_connection_lifetime=300.0, **extra)
                except (asyncpg.PostgresError, OSError, TimeoutError, asyncpg.InterfaceError,
                        asyncpg.ClientConfigurationError) as exc:
                    raise _error(exc, self.id) from exc
            return self._pool

    async def _acquire(self) -> Any:
        pool = await self._get_pool()
        full = pool.get_idle_size() == 0 and pool.get_size() >= pool.get_max_size()
        started = time.monotonic()
        try:
            conn = await pool.acquire()
        except (asyncpg.PostgresError, OSError, TimeoutError, asyncpg.InterfaceError) as exc:
            raise _error(exc, self.id) from exc
        if full:  # it had to wait for another user's connection
            self.wait_count += 1
            self.wait_seconds += time.monotonic() - started
        return conn

    async def _release(self, conn: Any) -> None:
        lifetime = self.spec.pool.max_lifetime
        pool = self._pool
        if lifetime and time.monotonic() - conn.born > lifetime:
            self.lifetime_closed += 1
            conn.terminate()
        if pool is not None:
            await pool.release(conn)

    async def _call(self, conn: Any, sql: str, params: Sequence[Any], fetch: bool) -> Any:
        args = [plain_param(p) for p in params]
        try:
            try:
                if fetch:
                    return await conn.fetch(sql, *args)
                return await conn.execute(sql, *args)
            except asyncpg.DataError:
                if not args:
                    raise
                stmt = await conn.prepare(sql)
                types = [t.name for t in stmt.get_parameters()]
                coerced = [_coerce(a, t) for a, t in zip(args, types, strict=False)]
                if fetch:
                    return await stmt.fetch(*coerced)
                return _status(await stmt.fetch(*coerced), stmt)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            raise _error(exc, self.id) from exc

    async def _run(self, tx: PgTx | None, sql: str, params: Sequence[Any], fetch: bool) -> Any:
        if tx is None:
            conn = await self._acquire()
            try:
                return await self._call(conn, sql, params, fetch)
            finally:
                await self._release(conn)
        async with tx.lock:
            if not tx.active:
                raise SqlError("transaction is not active", kind="INVALID")
            return await self._call(tx.conn, sql, params, fetch)

    async def query(self, tx: PgTx | None, sql: str, params: Sequence[Any] = ()) -> tuple[tuple[str, ...], list[Any]]:
        records = await self._run(tx, sql, params, True)
        if not records:
            return (), []
        cols = tuple(records[0].keys())
        return cols, [tuple(plain(v) for v in r) for r in records]

    async def execute(self, tx: PgTx | None, sql: str, params: Sequence[Any] = ()) -> tuple[int, int]:
        status = await self._run(tx, sql, params, False)
        return 0, status if isinstance(status, int) else _affected(status)

    async def prepare(self, tx: PgTx | None, sql: str) -> bool:
        async def compile_(conn: Any) -> None:
            try:
                await conn.prepare(sql)
            except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise _error(exc, self.id) from exc

        if tx is None:
            conn = await self._acquire()
            try:
                await compile_(conn)
            finally:
                await self._release(conn)
        else:
            async with tx.lock:
                await compile_(tx.conn)
        return True

    async def begin(self, isolation: str, read_only: bool, token: Any = None) -> PgTx:
        level = _ISOLATION.get(isolation)
        if level is None:
            raise SqlError(f"isolation level {isolation} is not supported by postgres", kind="INVALID")
        conn = await self._acquire()
        try:
            await conn.execute("BEGIN" + level + (" READ ONLY" if read_only else ""))
        except BaseException as exc:
            await self._release(conn)
            if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError | OSError):
                raise _error(exc, self.id) from exc
            raise
        return PgTx(self, conn, read_only, token)

    async def end(self, tx: PgTx, commit: bool) -> bool:
        async with tx.lock:
            if not tx.active:
                raise SqlError("transaction is not active", kind="INVALID")
            tx.active = False
            try:
                await tx.conn.execute("COMMIT" if commit else "ROLLBACK")
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                raise _error(exc, self.id) from exc
            finally:
                await self._release(tx.conn)
        return True

    def stats(self) -> dict[str, Any]:
        pool = self._pool
        size = pool.get_size() if pool is not None else 0
        idle = pool.get_idle_size() if pool is not None else 0
        return {"max_open_connections": self.spec.pool.max_open or 10, "open_connections": size,
                "in_use": size - idle, "idle": idle, "wait_count": self.wait_count,
                "wait_duration": self.wait_seconds, "max_idle_closed": 0, "max_idle_time_closed": 0,
                "max_lifetime_closed": self.lifetime_closed}

    async def aclose(self) -> None:
        """Close the pool (connections in open transactions are closed, so they roll back)."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 10)
            except TimeoutError:
                pool.terminate()

    def close_now(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()


def _status(rows: list[Any], stmt: Any) -> str:
    """The command status of a statement run through a prepared statement (for rows_affected)."""
    status = stmt.get_statusmsg() if hasattr(stmt, "get_statusmsg") else ""
    return str(status or f"SELECT {len(rows)}")
