"""`db.sql.duckdb` (ours): a DuckDB database file (or ``:memory:``) per entry.

Statements run on worker threads (DuckDB queries are analytical: long by nature), each on a
cursor of its own; a transaction keeps one cursor until it ends. DuckDB transactions are snapshot
isolated whatever level is asked; ``read_only`` is DuckDB's own. Two things differ from SQLite and
Postgres, as DuckDB decides: there are no savepoints, and a failed statement aborts the whole
transaction (later statements fail until it is rolled back). ``read_only: true`` on the entry
opens the file read-only (it must exist). ``?`` and ``$1`` placeholders both work.
last_insert_id is always 0 (DuckDB has no row ids to report).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import duckdb

from wippy.core import plain_param

from ._sql import SqlError
from ._sql_values import plain

_WORKERS = 4


def _error(exc: BaseException) -> SqlError:
    if isinstance(exc, duckdb.IOException | duckdb.OutOfMemoryException | duckdb.ConnectionException):
        return SqlError(str(exc), kind="UNAVAILABLE", retryable=True)
    if isinstance(exc, duckdb.TransactionException) and "conflict" in str(exc).lower():
        return SqlError(str(exc), kind="UNAVAILABLE", retryable=True)
    if isinstance(exc, duckdb.PermissionException):
        return SqlError(str(exc), kind="PERMISSION_DENIED")
    if isinstance(exc, duckdb.InternalException | duckdb.FatalException):
        return SqlError(str(exc), kind="INTERNAL")
    return SqlError(str(exc), kind="INVALID")


class DuckTx:
    """A transaction on a cursor of its own."""

    __slots__ = ("active", "cur", "db", "lock", "read_only", "token")

    def __init__(self, db: DuckDatabase, cur: Any, read_only: bool, token: Any) -> None:
        self.db = db
        self.cur = cur
        self.read_only = read_only
        self.token = token
        self.active = True
        self.lock = asyncio.Lock()  # a cursor runs one statement at a time


class DuckDatabase:
    type = "duckdb"

    def __init__(self, db_id: str, path: str, *, read_only: bool = False) -> None:
        self.id = db_id
        self.path = path
        self.read_only = read_only
        self._conn: Any = None
        self._open_lock = threading.Lock()
        self._idle: list[Any] = []  # cursors free for statements outside transactions
        self._in_use = 0
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=_WORKERS,
                                                             thread_name_prefix=f"duckdb:{db_id}")
        self._closed = False

    def _connection(self) -> Any:
        with self._open_lock:
            if self._closed:
                raise SqlError(f"database {self.id} is closed", kind="UNAVAILABLE")
            if self._conn is None:
                try:
                    if self.path != ":memory:" and not self.read_only:
                        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
                    self._conn = duckdb.connect(self.path, read_only=self.read_only)
                except (duckdb.Error, OSError) as exc:
                    raise SqlError(f"cannot open duckdb database {self.path} ({self.id}): {exc}",
                                   kind="UNAVAILABLE") from exc
            return self._conn

    def _cursor(self) -> Any:
        with self._open_lock:
            if self._idle:
                return self._idle.pop()
        return self._connection().cursor()

    async def _on_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    def _run(self, cur: Any, sql: str, params: Sequence[Any], fetch: bool) -> Any:
        args = [plain_param(p) for p in params]
        try:
            res = cur.execute(sql, args) if args else cur.execute(sql)
            desc = res.description
            rows = res.fetchall() if desc else []
        except duckdb.Error as exc:
            raise _error(exc) from exc
        if fetch:
            if not desc:
                return (), []
            return tuple(d[0] for d in desc), [tuple(plain(v) for v in r) for r in rows]
        if desc and len(desc) == 1 and desc[0][0] == "Count" and rows:
            return 0, int(rows[0][0])
        return 0, 0

    def _pooled(self, sql: str, params: Sequence[Any], fetch: bool) -> Any:
        cur = self._cursor()
        with self._open_lock:
            self._in_use += 1
        try:
            return self._run(cur, sql, params, fetch)
        finally:
            with self._open_lock:
                self._in_use -= 1
                if not self._closed:
                    self._idle.append(cur)

    async def _statement(self, tx: DuckTx | None, sql: str, params: Sequence[Any], fetch: bool) -> Any:
        if tx is None:
            return await self._on_worker(self._pooled, sql, params, fetch)
        async with tx.lock:
            if not tx.active:
                raise SqlError("transaction is not active", kind="INVALID")
            return await self._on_worker(self._run, tx.cur, sql, params, fetch)

    async def query(self, tx: DuckTx | None, sql: str, params: Sequence[Any] = ()) -> tuple[tuple[str, ...], list[Any]]:
        return await self._statement(tx, sql, params, True)  # type: ignore[no-any-return]

    async def execute(self, tx: DuckTx | None, sql: str, params: Sequence[Any] = ()) -> tuple[int, int]:
        return await self._statement(tx, sql, params, False)  # type: ignore[no-any-return]

    async def prepare(self, tx: DuckTx | None, sql: str) -> bool:
        def parse() -> bool:
            try:
                self._connection().extract_statements(sql)
            except duckdb.Error as exc:
                raise _error(exc) from exc
            return True

        return await self._on_worker(parse)  # type: ignore[no-any-return]

    async def begin(self, isolation: str, read_only: bool, token: Any = None) -> DuckTx:
        def start() -> Any:
            cur = self._connection().cursor()
            try:
                cur.execute("BEGIN TRANSACTION READ ONLY" if read_only else "BEGIN TRANSACTION")
            except duckdb.Error as exc:
                cur.close()
                raise _error(exc) from exc
            return cur

        return DuckTx(self, await self._on_worker(start), read_only, token)

    async def end(self, tx: DuckTx, commit: bool) -> bool:
        def finish() -> None:
            try:
                tx.cur.execute("COMMIT" if commit else "ROLLBACK")
            except duckdb.Error as exc:
                if commit:
                    with contextlib.suppress(duckdb.Error):  # DuckDB may have ended it already
                        tx.cur.execute("ROLLBACK")
                    raise _error(exc) from exc
                if "no transaction is active" not in str(exc).lower():
                    raise _error(exc) from exc
            finally:
                tx.cur.close()

        async with tx.lock:
            if not tx.active:
                raise SqlError("transaction is not active", kind="INVALID")
            tx.active = False
            await self._on_worker(finish)
        return True

    def stats(self) -> dict[str, Any]:
        open_ = len(self._idle) + self._in_use
        return {"max_open_connections": 0, "open_connections": open_, "in_use": self._in_use,
                "idle": len(self._idle), "wait_count": 0, "wait_duration": 0.0, "max_idle_closed": 0,
                "max_idle_time_closed": 0, "max_lifetime_closed": 0}

    async def aclose(self) -> None:
        """Close the database once running statements end (open transactions roll back)."""
        await asyncio.get_running_loop().run_in_executor(None, self.close_now)

    def close_now(self) -> None:
        with self._open_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        self._worker.shutdown(wait=True)
        for cur in idle:
            cur.close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
