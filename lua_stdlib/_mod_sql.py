"""`sql`: the node's SQL databases from Lua (lua/sql.lua, lua/sql_builder.lua).

The node's SqlHub (services) does the work; this is the bridge. It is built for the hot path: a
statement's parameters arrive as call arguments, rows leave as one flat table plus the column
names (Lua builds the row tables), and an SQLite statement that can answer at once never leaves
the Lua call (see services._sql_sqlite). Everything else yields the task until the database
answers.

Handles a process or a host call did not release are released when it ends, and its open
transactions rolled back: the Lua side tracks who took what, and this host runs its sweep
every ``SWEEP_INTERVAL`` seconds while anything is held, and at once when another user waits for
an SQLite connection a transaction holds. Whatever is left when the host closes is released then.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from wippy.core import SQL_NULL as NULL
from wippy.core import TypedValue, WippyError, format_go_duration

from ._binary import Raw
from ._host import LuaHost, ModuleUnavailable, register_module
from ._vm import _source

log = logging.getLogger("wippy.sql")

#: seconds between sweeps for handles whose process or call has ended
SWEEP_INTERVAL = 1.0


class _Target:
    """What Lua runs statements on: a database lease (``tx`` None) or a transaction."""

    __slots__ = ("db", "lease", "st", "tx")

    def __init__(self, st: _HostSql, db: Any, lease: Any = None, tx: Any = None) -> None:
        self.st = st
        self.db = db
        self.lease = lease
        self.tx = tx

    def entries(self) -> tuple[Any, ...]:
        """The bound functions Lua calls: query, execute, and (SQLite) ``statement(sql)``: a
        function of the parameters that answers at once (last_insert_id alone when one row
        changed, else (last_insert_id, rows_affected)) or gives None (then use ``execute``).
        Lua keeps one per statement text, so the text crosses once, not on every call."""
        owner = self.tx if self.tx is not None else self.db
        return self.query, self.execute, getattr(owner, "statement", None)

    # Results: (n, flat rows, columns) / (last_insert_id, rows_affected) when done; else
    # (nil, 1, pending), (nil, 2, error), or (nil, 3, the token of the transaction holding the
    # only connection: Lua checks it is not its own before waiting with `wait`).
    def query(self, sql: str, *params: Any) -> Any:
        now = getattr(self.db, "run_now", None)
        if now is not None:
            try:
                out = now(self.tx, sql, params, True)
            except WippyError as exc:
                return None, 2, self.st.failed(exc)
            if out is not None:
                return self.st.rows(out)
            if self.tx is None and (holder := self.db.holder()) is not None:
                return None, 3, holder
        return None, 1, self.st.vm.pending(self.st.later(self, sql, params, True))

    def execute(self, sql: str, *params: Any) -> Any:
        now = getattr(self.db, "run_now", None)
        if now is not None:
            try:
                out = now(self.tx, sql, params, False)
            except WippyError as exc:
                return None, 2, self.st.failed(exc)
            if out is not None:
                return out
            if self.tx is None and (holder := self.db.holder()) is not None:
                return None, 3, holder
        return None, 1, self.st.vm.pending(self.st.later(self, sql, params, False))


#: sqlite3's refusal of a Lua value it got as a parameter (the fast path does not check them first)
_LUA_TYPE = re.compile(r"Error binding parameter (\d+): type '(?:[\w.]*\.)?_Lua(\w+)' is not supported")


def _typed(kind: str, value: Any) -> TypedValue:
    """sql.as.*: Lua normalized the value; binary arrives with its bytes widened to text (binary.lua's way)."""
    if kind == "binary":
        return TypedValue("binary", str(value).encode("latin-1"))
    return TypedValue(str(kind), value)


def _bytes(params: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(p.data if isinstance(p, Raw) else p for p in params)


class _HostSql:
    """One host's side of the module: its handles, its open transactions, the sweep timer."""

    def __init__(self, host: LuaHost) -> None:
        self.host = host
        self.vm = host.vm
        self.handles: set[_Target] = set()
        self.txs: set[Any] = set()
        self.sweep: Any = None  # the Lua sweep function
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def failed(self, exc: WippyError) -> Any:
        message = _LUA_TYPE.sub(lambda m: f"parameter {m[1]} is a {m[2].lower()}; parameters are strings, numbers, "
                                          "booleans, sql.NULL or sql.as.* values", str(exc))
        return self.vm.error(exc.kind, message, retryable=exc.retryable or None)

    def rows(self, out: Any) -> tuple[Any, ...]:
        cols, rows = out
        n = len(rows)
        if n == 0:
            return 0, None, None
        flat = [v for r in rows for v in r]
        table_from = self.vm.rt.table_from
        return n, table_from(flat, recursive=True), table_from(list(cols))

    async def later(self, target: _Target, sql: str, params: tuple[Any, ...], fetch: bool) -> tuple[Any, ...]:
        try:
            if fetch:
                return self.rows(await target.db.query(target.tx, sql, params))
            return tuple(await target.db.execute(target.tx, sql, params))
        except WippyError as exc:
            return None, 2, self.failed(exc)

    # -- the sweep ---------------------------------------------------------------------------
    def track(self) -> None:
        if self._timer is None and not self._closed:
            self._schedule(SWEEP_INTERVAL)

    def sweep_soon(self) -> None:
        if not self._closed:
            if self._timer is not None:
                self._timer.cancel()
            self._schedule(0)

    def _schedule(self, delay: float) -> None:
        try:
            self._timer = asyncio.get_running_loop().call_later(delay, self._tick)
        except RuntimeError:  # Lua ran outside the event loop (a module loaded by a synchronous caller)
            self._timer = None

    def _tick(self) -> None:
        self._timer = None
        if self._closed or self.sweep is None:
            return
        try:
            more = self.sweep()
        except Exception:
            log.exception("%s: releasing abandoned database handles failed", self.host.ctx.pid)
            more = True
        if more:
            self.track()

    async def _rollback(self, tx: Any) -> None:
        try:
            await tx.db.end(tx, False)
        except WippyError as exc:
            log.warning("rolling back an abandoned transaction on %s failed: %s", tx.db.id, exc)

    def abandon(self, tx: Any) -> None:
        if tx in self.txs:
            self.txs.discard(tx)
            self.vm.background(self._rollback(tx))

    async def aclose(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        txs, self.txs = list(self.txs), set()
        for tx in txs:
            await self._rollback(tx)
        handles, self.handles = list(self.handles), set()
        for h in handles:
            h.lease.release()


class _Bridge:
    """The functions lua/sql.lua calls (results as described at ``_Target``; others give (0, ...)
    when done, (1, pending) to wait, (2, error), or (3, holder) from an SQLite begin)."""

    def __init__(self, st: _HostSql, hub: Any) -> None:
        self.st = st
        self.hub = hub
        self.vm = st.vm

    def open(self, db_id: Any) -> Any:
        try:
            lease = self.hub.acquire(str(db_id))
        except WippyError as exc:
            return 2, self.st.failed(exc)
        t = _Target(self.st, lease.db, lease)
        self.st.handles.add(t)
        return (0, t, lease.db.type, *t.entries())

    def release(self, t: _Target) -> None:
        if t in self.st.handles:
            self.st.handles.discard(t)
            t.lease.release()

    def wait(self, t: _Target, sql: str, fetch: bool, binary: bool, *params: Any) -> Any:
        return None, 1, self.vm.pending(self.st.later(t, sql, _bytes(params) if binary else params, bool(fetch)))

    def binary(self, t: _Target, fetch: bool, sql: str, *params: Any) -> Any:
        return (t.query if fetch else t.execute)(sql, *_bytes(params))

    def _opened(self, db: Any, tx: Any) -> tuple[Any, ...]:
        self.st.txs.add(tx)
        if hasattr(tx, "on_contention"):
            tx.on_contention = self.st.sweep_soon
        t = _Target(self.st, db, tx=tx)
        return (0, t, *t.entries())

    async def _begin_later(self, db: Any, isolation: str, read_only: bool, token: int) -> tuple[Any, ...]:
        try:
            tx = await db.begin(isolation, read_only, token)
        except WippyError as exc:
            return 2, self.st.failed(exc)
        return self._opened(db, tx)

    def begin(self, t: _Target, isolation: str, read_only: bool, token: int) -> Any:
        db = t.db
        begin_now = getattr(db, "begin_now", None)
        if begin_now is not None:
            try:
                tx = begin_now(isolation, bool(read_only), token)
            except WippyError as exc:
                return 2, self.st.failed(exc)
            if tx is not None:
                return self._opened(db, tx)
            if (holder := db.holder()) is not None:
                return 3, holder
        return self.begin_wait(t, isolation, read_only, token)

    def begin_wait(self, t: _Target, isolation: str, read_only: bool, token: int) -> Any:
        return 1, self.vm.pending(self._begin_later(t.db, str(isolation), bool(read_only), token))

    async def _finish_later(self, tx: Any, commit: bool) -> tuple[Any, ...]:
        try:
            await tx.db.end(tx, commit)
        except WippyError as exc:
            return 2, self.st.failed(exc)
        finally:
            self.st.txs.discard(tx)
        return 0, True

    def finish(self, t: _Target, commit: bool) -> Any:
        tx = t.tx
        end_now = getattr(t.db, "end_now", None)
        if end_now is not None:
            try:
                done = end_now(tx, bool(commit))
            except WippyError as exc:
                self.st.txs.discard(tx)
                return 2, self.st.failed(exc)
            if done:
                self.st.txs.discard(tx)
                return 0, True
        return 1, self.vm.pending(self._finish_later(tx, bool(commit)))

    async def _prepare_later(self, t: _Target, sql: str) -> tuple[Any, ...]:
        try:
            await t.db.prepare(t.tx, sql)
        except WippyError as exc:
            return 2, self.st.failed(exc)
        return 0, True

    def prepare(self, t: _Target, sql: str) -> Any:
        prepare_now = getattr(t.db, "prepare_now", None)
        if prepare_now is not None:
            try:
                if prepare_now(t.tx, sql):
                    return 0, True
            except WippyError as exc:
                return 2, self.st.failed(exc)
        return 1, self.vm.pending(self._prepare_later(t, sql))

    def stats(self, t: _Target) -> Any:
        out = dict(t.db.stats())
        out["wait_duration"] = format_go_duration(int(float(out.get("wait_duration") or 0) * 1e9))
        return self.vm.to_lua(out)

    def raised(self, exc: Any) -> Any:
        """A Python exception a fast entry raised (caught by pcall in Lua) as an error value."""
        if isinstance(exc, WippyError):
            return self.st.failed(exc)
        log.error("sql: a database call failed: %r", exc)
        return self.vm.error("INTERNAL", f"internal error: {exc}")

    def abandon(self, t: _Target) -> None:
        self.st.abandon(t.tx)

    def table(self) -> Any:
        names = ("open", "release", "wait", "binary", "begin", "begin_wait", "finish", "prepare", "stats", "raised",
                 "abandon")
        return self.vm.rt.table_from({**{n: getattr(self, n) for n in names}, "track": self.st.track,
                                      "NULL": NULL, "typed": _typed})


def _build(host: LuaHost) -> Any:
    hub = host.ctx.databases
    if hub is None:
        raise ModuleUnavailable("no SQL databases here (sql needs a node)")
    vm = host.vm
    st = _HostSql(host)
    host.on_close(st.aclose)
    make_builder = vm.rt.execute(_source("sql_builder.lua"), vm.errors)
    module, sweep = vm.rt.execute(_source("sql.lua"), _Bridge(st, hub).table(), vm.errors, vm.S, host.security,
                                  make_builder, Raw)
    st.sweep = sweep
    return module


register_module("sql", _build)
