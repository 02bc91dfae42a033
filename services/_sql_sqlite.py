"""`db.sql.sqlite`: one connection per database; statements on the event loop under a budget.

Wippy gives SQLite one connection; so does this backend. Who may use it is decided by a gate: a
transaction holds it from ``begin`` to ``commit``/``rollback``; a statement outside one runs when
no transaction holds it (else it waits, as Go's one-connection pool makes it wait).

Where a statement runs is decided per SQL text by its compiled program (``EXPLAIN``, cached):

- a read runs on the loop thread under a time budget (``INLINE_BUDGET``); SQLite's progress
  handler interrupts it past the budget and it runs again on the connection's worker thread
  (interrupting a read changes nothing);
- a write outside a transaction does the same on ``:memory:`` (SQLite undoes an interrupted
  autocommit statement); on a file it runs on the worker, since its commit syncs the disk;
- a write inside a transaction runs on the loop when its program has no loop (an INSERT ...
  VALUES, an UPDATE or DELETE by key: bounded work), else on the worker: SQLite rolls the whole
  transaction back when a write is interrupted, so writes in a transaction are never interrupted;
- COMMIT of a file database, several statements in one string, and schema changes run on the
  worker.

So 10,000 INSERTs in one transaction cost one loop-thread call each, and nothing long ever runs
on the loop thread. The worker is one thread per database; the loop uses the connection only
while the worker is idle, so the two never share it. A locked database file (another process
writing) is waited for on the worker, up to ``BUSY_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from wippy.core import SqlNull, TypedValue

from ._sql import SqlError
from ._sql_sqlite_plan import DATA, LONG, MULTI, READ, SCHEMA, SHORT, classify, error, is_busy, split_statements
from ._sql_values import sqlite_bool, sqlite_time

#: seconds a statement may run on the event loop thread before it moves to the worker
INLINE_BUDGET = 0.002
#: seconds to wait for a database file another connection has locked
BUSY_TIMEOUT = 5.0
for _name in ("DATETIME", "TIMESTAMP", "DATE"):
    sqlite3.register_converter(_name, sqlite_time)  # process-wide: only connections with PARSE_DECLTYPES
sqlite3.register_converter("BOOLEAN", sqlite_bool)
# parameters: sql.NULL and sql.as.* values bind with no conversion pass over every parameter list
sqlite3.register_adapter(SqlNull, lambda _v: None)
sqlite3.register_adapter(TypedValue, lambda v: v.value)

Rows = tuple[tuple[str, ...], list[tuple[Any, ...]]]


class SqliteTx:
    """A transaction: holds the database's one connection until it ends."""

    __slots__ = ("active", "db", "on_contention", "read_only", "token")

    def __init__(self, db: SqliteDatabase, read_only: bool, token: Any) -> None:
        self.db = db
        self.read_only = read_only
        self.active = True
        self.token = token
        #: called when another user starts waiting for the connection this transaction holds
        self.on_contention: Callable[[], None] | None = None

    def execute_now(self, sql: str, *params: Any) -> tuple[int, int] | None:
        """(last_insert_id, rows_affected) at once, or None: then ``db.execute`` must be awaited."""
        return self.db.run_now(self, sql, params, False)  # type: ignore[no-any-return]

    def statement(self, sql: str) -> Callable[..., int | tuple[int, int] | None]:
        """``execute_now`` of one statement text, made for a caller that runs it many times (the
        text need not cross again). The common case, an INSERT or an UPDATE/DELETE by key, goes
        straight to the connection; when it changed exactly one row the answer is its
        last_insert_id alone (one value is cheaper to hand back than two)."""
        tx = self
        db = self.db
        conn = db._conn
        plans = db._plans
        hot = SHORT | DATA
        run_now = db.run_now
        if conn is None or self.read_only:
            return lambda *params: run_now(tx, sql, params, False)
        cur = conn.cursor()  # one cursor for every run of this text: none is made per call
        execute = cur.execute

        def now(*params: Any) -> int | tuple[int, int] | None:
            if db._owner is tx and not db._busy and plans.get(sql) == hot:
                try:
                    execute(sql, params)
                except sqlite3.Error as exc:
                    if not conn.in_transaction:  # SQLite ended it (a full disk, say)
                        db._finish(tx)
                    raise error(exc) from exc
                n = cur.rowcount
                return (cur.lastrowid or 0) if n == 1 else (cur.lastrowid or 0, n)
            return run_now(tx, sql, params, False)  # type: ignore[no-any-return]

        return now


class SqliteDatabase:
    type = "sqlite"

    def __init__(self, db_id: str, path: str) -> None:
        self.id = db_id
        self.path = path
        self._file = path != ":memory:"
        self._conn: sqlite3.Connection | None = None
        self._worker: concurrent.futures.ThreadPoolExecutor | None = None
        self._owner: Any = None  # the transaction (or waiting statement) holding the connection
        self._waiters: deque[tuple[Any, asyncio.Future[None]]] = deque()
        self._busy = 0  # statements queued on or running on the worker
        self._deadline = math.inf
        self._plans: dict[str, int] = {}
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.wait_count = 0
        self.wait_seconds = 0.0

    # -- the connection ----------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        if self._closed:
            raise SqlError(f"database {self.id} is closed", kind="UNAVAILABLE")
        try:
            if self._file:
                os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False,
                                   detect_types=sqlite3.PARSE_DECLTYPES, cached_statements=512)
            if self._file:
                conn.execute("PRAGMA journal_mode=WAL")
        except (sqlite3.Error, OSError) as exc:
            raise SqlError(f"cannot open sqlite database {self.path} ({self.id}): {exc}", kind="UNAVAILABLE") from exc
        conn.set_progress_handler(self._progress, 1000)
        self._conn = conn
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite:{self.id}")
        return conn

    def _progress(self) -> bool:
        return time.perf_counter() > self._deadline

    def _plan(self, conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int:
        """What kind of statement ``sql`` is, from its compiled program (cached per text)."""
        plan = self._plans.get(sql)
        if plan is not None:
            return plan
        try:
            program = conn.execute("EXPLAIN " + sql, params).fetchall()
        except sqlite3.ProgrammingError as exc:
            if "one statement at a time" in str(exc):
                plan = MULTI | SCHEMA | DATA
                self._plans[sql] = plan
                return plan
            return READ  # bad bindings: the statement itself fails the same way before running
        except sqlite3.Error:
            return READ  # it does not compile: running it fails at once, before doing anything
        plan = classify(program)
        if len(self._plans) >= 2048:
            self._plans.clear()
        self._plans[sql] = plan
        return plan

    def _run(self, conn: sqlite3.Connection, sql: str, params: Sequence[Any], fetch: bool, plan: int) -> Any:
        """Run one statement (or a script) on the calling thread; the result or a SqlError."""
        try:
            if plan & 7 == MULTI:
                if params:
                    raise SqlError("several statements in one string take no parameters; run them one by one",
                                   kind="INVALID")
                cur = None
                for statement in split_statements(sql):
                    cur = conn.execute(statement)
                out: Any = ((), []) if fetch else ((cur.lastrowid or 0) if cur is not None else 0, 0)
            else:
                cur = conn.execute(sql, params)
                if fetch:
                    rows = cur.fetchall()
                    desc = cur.description
                    out = (tuple(d[0] for d in desc) if desc else (), rows)
                else:
                    out = (cur.lastrowid or 0, cur.rowcount if cur.rowcount > 0 else 0)
        except sqlite3.Error as exc:
            raise error(exc) from exc
        if plan & SCHEMA:
            self._plans.clear()
        return out

    # -- where statements run ------------------------------------------------------------------
    def _inline(self, conn: sqlite3.Connection, sql: str, params: Sequence[Any], fetch: bool, plan: int, *,
                interruptible: bool) -> Any:
        """Run on the loop thread; None when it must run on the worker instead (over budget, locked)."""
        if interruptible:
            self._deadline = time.perf_counter() + INLINE_BUDGET
        try:
            return self._run(conn, sql, params, fetch, plan)
        except SqlError as exc:
            cause = exc.__cause__
            if isinstance(cause, sqlite3.Error) and (is_busy(cause) or str(cause) == "interrupted"):
                return None
            raise
        finally:
            self._deadline = math.inf

    def _blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """On the worker thread: ``fn(*args)``, waiting out a locked database file."""
        deadline = time.monotonic() + BUSY_TIMEOUT
        delay = 0.001
        while True:
            try:
                return fn(*args)
            except SqlError as exc:
                cause = exc.__cause__
                if not (isinstance(cause, sqlite3.Error) and is_busy(cause)) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def _on_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        assert self._worker is not None
        loop = self._loop = asyncio.get_running_loop()
        self._busy += 1
        fut = self._worker.submit(self._blocking, fn, *args)
        # registered first, so the count drops before the waiting task resumes; and only when the
        # worker is really done with the connection (a cancelled wait leaves it running)
        fut.add_done_callback(lambda _f: loop.call_soon_threadsafe(self._idle))
        return await asyncio.wrap_future(fut)

    def _idle(self) -> None:
        self._busy -= 1

    # -- the gate --------------------------------------------------------------------------------
    async def _take(self, who: Any) -> None:
        if self._owner is None and not self._waiters:
            self._owner = who
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((who, fut))
        self.wait_count += 1
        started = time.monotonic()
        holder = self._owner
        if isinstance(holder, SqliteTx) and holder.on_contention is not None:
            holder.on_contention()
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and self._owner is who:
                self._give(who)
            else:
                self._waiters = deque(w for w in self._waiters if w[1] is not fut)
            raise
        finally:
            self.wait_seconds += time.monotonic() - started

    def _give(self, who: Any) -> None:
        if self._owner is not who:
            return
        self._owner = None
        while self._waiters:
            nxt, fut = self._waiters.popleft()
            if not fut.done():
                self._owner = nxt
                fut.set_result(None)
                return

    def holder(self) -> Any:
        """The token of the transaction holding the connection, if one does."""
        owner = self._owner
        return owner.token if isinstance(owner, SqliteTx) else None

    def _active(self, tx: SqliteTx) -> None:
        if not tx.active or self._owner is not tx:
            raise SqlError("transaction is not active", kind="INVALID")

    def _after(self, conn: sqlite3.Connection, tx: SqliteTx | None) -> None:
        """A statement ran: keep the gate's view and SQLite's transaction state in step."""
        if tx is None:
            if conn.in_transaction:  # BEGIN (or SAVEPOINT) sent as a plain statement
                conn.execute("ROLLBACK")
                raise SqlError("transactions start with db:begin(), not with BEGIN or SAVEPOINT statements "
                               "(the statement was rolled back)", kind="INVALID")
        elif not conn.in_transaction:  # ended by COMMIT/ROLLBACK sent as a statement, or by SQLite
            self._finish(tx)

    def _finish(self, tx: SqliteTx) -> None:
        tx.active = False
        self._give(tx)

    # -- statements ------------------------------------------------------------------------------
    def run_now(self, tx: SqliteTx | None, sql: str, params: Sequence[Any], fetch: bool) -> Any:
        """The result at once, or None: then ``run`` must be awaited (the connection is busy or
        held, or the statement belongs on the worker)."""
        conn = self._conn or self._open()
        if self._busy:
            return None
        if tx is None:
            if self._owner is not None or self._waiters:
                return None
        else:
            self._active(tx)
        plan = self._plan(conn, sql, params)
        kind = plan & 7
        if kind == MULTI:
            return None
        if tx is None:
            if kind != READ and self._file:
                return None  # its commit syncs the file
            interruptible = True
        else:
            if tx.read_only and plan & DATA:
                raise SqlError("cannot write in a read-only transaction", kind="INVALID")
            if kind == LONG:
                return None
            interruptible = kind == READ
        try:
            out = self._inline(conn, sql, params, fetch, plan, interruptible=interruptible)
        except SqlError:
            if tx is not None and not conn.in_transaction:
                self._finish(tx)
            raise
        if out is None:
            if tx is not None and not conn.in_transaction:  # never expected: reads leave a transaction be
                self._finish(tx)
                raise SqlError("the statement was interrupted and the database rolled the transaction back",
                               kind="UNAVAILABLE", retryable=True)
            return None
        self._after(conn, tx)
        return out

    def execute_now(self, sql: str, *params: Any) -> tuple[int, int] | None:
        """A statement outside any transaction: (last_insert_id, rows_affected) at once, or None."""
        return self.run_now(None, sql, params, False)  # type: ignore[no-any-return]

    def statement(self, sql: str) -> Callable[..., tuple[int, int] | None]:
        """``execute_now`` of one statement text (see SqliteTx.statement)."""
        return lambda *params: self.run_now(None, sql, params, False)

    async def run(self, tx: SqliteTx | None, sql: str, params: Sequence[Any], fetch: bool) -> Any:
        conn = self._conn or self._open()
        token = None
        if tx is None:
            token = object()
            await self._take(token)
        else:
            self._active(tx)
        try:
            return await self._on_worker(self._run_checked, conn, tx, sql, params, fetch)
        finally:
            if token is not None:
                self._give(token)

    def _run_checked(self, conn: sqlite3.Connection, tx: SqliteTx | None, sql: str, params: Sequence[Any],
                     fetch: bool) -> Any:
        plan = self._plan(conn, sql, params)
        if tx is not None and tx.read_only and plan & DATA:
            raise SqlError("cannot write in a read-only transaction", kind="INVALID")
        try:
            out = self._run(conn, sql, params, fetch, plan)
        except SqlError:
            if tx is not None and not conn.in_transaction:
                self._finish_soon(tx)
            raise
        if tx is None:
            self._after(conn, None)
        elif not conn.in_transaction:
            self._finish_soon(tx)
        return out

    def _finish_soon(self, tx: SqliteTx) -> None:
        """From the worker: the transaction ended inside SQLite; the gate moves on the loop thread."""
        tx.active = False
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._give, tx)

    async def query(self, tx: SqliteTx | None, sql: str, params: Sequence[Any] = ()) -> Rows:
        out = self.run_now(tx, sql, params, True)
        return out if out is not None else await self.run(tx, sql, params, True)  # type: ignore[no-any-return]

    async def execute(self, tx: SqliteTx | None, sql: str, params: Sequence[Any] = ()) -> tuple[int, int]:
        out = self.run_now(tx, sql, params, False)
        return out if out is not None else await self.run(tx, sql, params, False)  # type: ignore[no-any-return]

    def prepare_now(self, tx: SqliteTx | None, sql: str) -> bool | None:
        """Check that ``sql`` compiles (True), or None: ``prepare`` must be awaited."""
        conn = self._conn or self._open()
        if tx is not None:
            self._active(tx)
        if self._busy:
            return None
        self._compile(conn, sql)
        return True

    async def prepare(self, tx: SqliteTx | None, sql: str) -> bool:
        conn = self._conn or self._open()
        return await self._on_worker(self._compile, conn, sql)  # type: ignore[no-any-return]

    def _compile(self, conn: sqlite3.Connection, sql: str) -> bool:
        if sql in self._plans:
            return True
        try:
            conn.execute("EXPLAIN " + sql, [None] * sql.count("?")).fetchall()
        except sqlite3.ProgrammingError as exc:
            if "one statement at a time" not in str(exc) and "bindings" not in str(exc):
                raise error(exc) from exc
        except sqlite3.Error as exc:
            raise error(exc) from exc
        return True

    # -- transactions ------------------------------------------------------------------------------
    def begin_now(self, isolation: str, read_only: bool, token: Any = None) -> SqliteTx | None:
        """A transaction at once, or None: ``begin`` must be awaited. SQLite transactions are
        serializable whatever ``isolation`` asks; ``read_only`` refuses writes in it."""
        conn = self._conn or self._open()
        if self._owner is not None or self._waiters or self._busy:
            return None
        tx = SqliteTx(self, read_only, token)
        self._owner = tx
        if self._inline(conn, *self._begin_sql(read_only), False, SHORT, interruptible=False) is None:
            self._owner = None  # the file is locked: wait for it on the worker
            return None
        return tx

    async def begin(self, isolation: str, read_only: bool, token: Any = None) -> SqliteTx:
        out = self.begin_now(isolation, read_only, token)
        if out is not None:
            return out
        conn = self._conn or self._open()
        tx = SqliteTx(self, read_only, token)
        await self._take(tx)
        try:
            await self._on_worker(self._run, conn, *self._begin_sql(read_only), False, SHORT)
        except BaseException:
            tx.active = False
            self._give(tx)
            raise
        return tx

    @staticmethod
    def _begin_sql(read_only: bool) -> tuple[str, tuple[()]]:
        # a writer takes the write lock at once: no lock upgrade (and no deadlock) halfway through
        return ("BEGIN" if read_only else "BEGIN IMMEDIATE"), ()

    def end_now(self, tx: SqliteTx, commit: bool) -> bool | None:
        """Commit or roll back at once (True), or None: ``end`` must be awaited (a file's commit
        syncs the disk, so it runs on the worker)."""
        self._active(tx)
        conn = self._conn
        if conn is None or self._busy or (commit and self._file):
            return None
        try:
            self._end(conn, commit)
        finally:
            self._finish(tx)
        return True

    async def end(self, tx: SqliteTx, commit: bool) -> bool:
        if self.end_now(tx, commit):
            return True
        conn = self._conn
        assert conn is not None
        try:
            await self._on_worker(self._end, conn, commit)
        finally:
            self._finish(tx)
        return True

    def _end(self, conn: sqlite3.Connection, commit: bool) -> None:
        if not conn.in_transaction:
            if commit:
                raise SqlError("the transaction was rolled back by the database; nothing was committed",
                               kind="INVALID")
            return
        try:
            conn.execute("COMMIT" if commit else "ROLLBACK")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")  # a failed commit ends the transaction, as Go's does
            raise error(exc) from exc

    # -- the rest ----------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        open_ = 1 if self._conn is not None else 0
        in_use = 1 if (self._owner is not None or self._busy) and open_ else 0
        return {"max_open_connections": 1, "open_connections": open_, "in_use": in_use, "idle": open_ - in_use,
                "wait_count": self.wait_count, "wait_duration": self.wait_seconds, "max_idle_closed": 0,
                "max_idle_time_closed": 0, "max_lifetime_closed": 0}

    async def aclose(self) -> None:
        """Roll back an open transaction, refuse waiters, close the connection. Idempotent."""
        self._closed = True
        while self._waiters:
            _who, fut = self._waiters.popleft()
            if not fut.done():
                fut.set_exception(SqlError(f"database {self.id} was closed", kind="UNAVAILABLE"))
        worker = self._worker
        if worker is not None:
            await asyncio.get_running_loop().run_in_executor(worker, self.close_now)
            worker.shutdown(wait=False)
        else:
            self.close_now()

    def close_now(self) -> None:
        conn, self._conn = self._conn, None
        self._closed = True
        owner, self._owner = self._owner, None
        if isinstance(owner, SqliteTx):
            owner.active = False
        if conn is not None:
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            finally:
                conn.close()
        if self._worker is not None:
            self._worker.shutdown(wait=False)
