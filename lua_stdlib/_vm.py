"""The Lua VM: one lupa runtime (Lua 5.4), its scheduler, and the bridge to asyncio.

Lua code runs in coroutines ("tasks") driven by the Lua-side scheduler (``lua/scheduler.lua``).
Channel operations switch tasks inside Lua. An operation that waits on the outside world yields a
request: either a table ``{kind = ...}`` or a ``Pending`` (a Python awaitable a module function
returned); ``pump`` hands those to asyncio and resumes the task when the result is ready. A call
that can answer at once (a buffered channel, a registry read) never leaves Lua or never yields.

A lupa pitfall this module contains: reading a Lua table field (``t[k]``, ``t.k``) or running
``rt.execute`` from Python while Lua code is running further down the same state (inside any
Python function Lua called, and inside any task) returns the wrong values: lupa collects results
from the bottom of the current stack frame, which then still holds the caller's values. A Lua
*call* resets that frame first. So reads go through ``get``/``from_lua`` (a call, or iteration,
which is relative to the top), and code that must use ``execute`` or field reads inside a
callback calls ``settle()`` first (a no-op Lua call).

Isolation: Lua sees Python objects only as opaque handles (every attribute access is refused),
the ``python`` global is removed, and each entry runs in its own environment (``lua/sandbox.lua``).
Memory is bounded per VM (``max_memory``); runaway code is stopped by the watchdog after
``max_slice_seconds`` without yielding, and a task can be given a CPU budget (``LuaSettings``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from importlib import resources
from typing import Any

import lupa.lua54 as lua  # type: ignore[import-untyped]

from wippy.core import WippyError

from ._watchdog import Watchdog, lua_hook_dispatcher

log = logging.getLogger("wippy.lua")

LuaError = lua.LuaError
LuaMemoryError = lua.LuaMemoryError
#: what a VM must have left below its limit before Python calls into it (see LuaVM._check_room)
_HEADROOM = 64 * 1024
LuaTable = Any  # lupa's _LuaTable; untyped


@dataclass(frozen=True, slots=True, kw_only=True)
class LuaSettings:
    """Limits for Lua code; 0 means unlimited."""

    #: Bytes of memory one VM (one process and the functions it calls) may use.
    max_memory: int = 256 * 1024 * 1024
    #: Seconds Lua code may run without yielding before it is stopped (a runaway loop).
    max_slice_seconds: float = 10.0
    #: CPU seconds one task may use in all (checked when it yields).
    max_task_seconds: float = 0.0


def _refuse_attributes(obj: object, name: object, is_setting: bool) -> object:
    raise AttributeError("Lua code cannot reach into host objects")


def _source(name: str) -> str:
    return resources.files("wippy.lua_stdlib").joinpath("lua", name).read_text(encoding="utf-8")


class Pending:
    """A host operation a Lua task waits for: an awaitable whose result resumes the task.

    The awaitable's result is a tuple of Python values, converted to Lua values on resume.
    """

    __slots__ = ("_awaitable",)

    def __init__(self, awaitable: Awaitable[tuple[Any, ...]]) -> None:
        self._awaitable = awaitable


TaskDone = Callable[[bool, tuple[Any, ...]], None]


class LuaVM:
    """One Lua runtime with its scheduler. Not thread-safe: use it from its event loop."""

    def __init__(self, settings: LuaSettings | None = None, *, label: str = "vm") -> None:
        self.settings = settings or LuaSettings()
        self.label = label
        self.rt = lua.LuaRuntime(
            unpack_returned_tuples=True,
            register_eval=False,
            register_builtins=False,
            attribute_filter=_refuse_attributes,
            max_memory=self.settings.max_memory,
        )
        g = self.rt.globals()
        g.python = None
        # the runaway watchdog's view of this VM (see _watchdog)
        self.run_started: float | None = None
        self.slice_limit = self.settings.max_slice_seconds
        self.threads: set[int] = set()
        self.threads_lock = threading.Lock()
        lua_hook_dispatcher(self.rt)
        #: host calls running (vm.call): token -> what to tell when the call's function returns,
        #: and when its coroutines have ended too
        self._call_done: dict[int, TaskDone] = {}
        self._call_released: dict[int, Callable[[], None]] = {}
        self.S = self.rt.execute(_source("scheduler.lua"), self._register_thread, self._unregister_thread,
                                 self._host_done, self._host_released)
        self.S.is_pending = lambda v: isinstance(v, Pending)
        self.S.slice_limit = self.settings.max_slice_seconds
        self.S.total_limit = self.settings.max_task_seconds
        if self.slice_limit > 0:
            Watchdog.get().watch(self)
        self.channel = self.rt.execute(_source("channel.lua"), self.S)
        self.errors = self.rt.execute(_source("errors.lua"), g.debug.getinfo)
        self._helpers = self.rt.execute(_HELPERS, self.S, self.errors)
        # Lua functions the host calls from inside callbacks: fetched once, here, where reading
        # a table field is safe (see the module docstring).
        self._get = self._helpers.get
        self._plain = self._helpers.plain
        self.settle = self.rt.eval("function() end")
        self._is_error = self.errors._is
        self._make_error = self.errors._make
        self._asyncify = self._helpers.asyncify
        self._wake = self.S.wake
        self._spawn = self.S.spawn
        self._spawn_call = self.S.spawn_call
        self._run = self.S.run
        self.tostring = g.tostring
        self._pump_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def _register_thread(self, ptr: str) -> None:
        with self.threads_lock:
            self.threads.add(int(ptr, 16))

    def _unregister_thread(self, ptr: str) -> None:
        with self.threads_lock:
            self.threads.discard(int(ptr, 16))

    # -- values ------------------------------------------------------------------------------
    def to_lua(self, value: Any) -> Any:
        """Python data (dict/list/str/int/float/bool/None) as Lua values (tables for containers)."""
        if isinstance(value, dict | list | tuple):
            return self.rt.table_from(value, recursive=True)
        return value

    def get(self, table: Any, key: Any) -> Any:
        """``table[key]``, safe to use anywhere (see the module docstring)."""
        return self._get(table, key)

    def from_lua(self, value: Any, *, depth: int = 0) -> Any:
        """Lua values as Python data: array-like tables become lists, others dicts."""
        if depth > 100:
            raise WippyError("value nested more than 100 levels deep")
        if lua.lua_type(value) != "table":
            return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
        if self._is_error(value):
            return str(value)
        items = list(self._plain(value).items())
        n = len(items)
        if n and all(isinstance(k, int) and not isinstance(k, bool) for k, _ in items):
            by_key = dict(items)
            if min(by_key) == 1 and max(by_key) == n:
                return [self.from_lua(by_key[i], depth=depth + 1) for i in range(1, n + 1)]
        return {str(k): self.from_lua(v, depth=depth + 1) for k, v in items}

    def error(self, kind: str, message: str, *, retryable: bool | None = None, details: Any = None) -> Any:
        """A Lua error object (the ``errors`` module's) for a module function to return."""
        return self._make_error(kind, message, retryable, self.to_lua(details) if details else None, None)

    def table(self, **fields: Any) -> Any:
        return self.rt.table_from(fields)

    # -- tasks ---------------------------------------------------------------------------------
    def spawn(self, fn: Any, args: tuple[Any, ...], done: TaskDone | None = None, *, parent: Any = None) -> Any:
        """Run ``fn(*args)`` as a new task; ``done(ok, results)`` gets its return values."""
        def finished(ok: bool, *results: Any) -> None:
            if done is not None:
                try:
                    done(ok, results)
                except Exception:  # a host bug: report it, and never stop the scheduler's run
                    log.exception("%s: a task's completion handler failed", self.label)

        self._check_room()
        _co, task = self._spawn(fn, finished, parent, *args)
        self.schedule_pump()
        return task

    def _check_room(self) -> None:
        """Refuse to enter Lua from Python when the VM is nearly at its memory limit: lupa pushes
        arguments outside a protected call, and an allocation failing there aborts the process."""
        limit = self.settings.max_memory
        if limit and limit - (self.rt.get_memory_used() or 0) < _HEADROOM:
            raise LuaMemoryError(f"not enough memory: the Lua memory limit of {self.label} "
                                 f"({limit // (1024 * 1024)} MB) was reached")

    def _host_done(self, token: int, ok: bool, *results: Any) -> None:
        done = self._call_done.pop(token, None)
        if done is not None:
            try:
                done(ok, results)
            except Exception:  # a host bug: report it, and never stop the scheduler's run
                log.exception("%s: a call's completion handler failed", self.label)

    def _host_released(self, token: int) -> None:
        released = self._call_released.pop(token, None)
        if released is not None:
            try:
                released()
            except Exception:
                log.exception("%s: a call's release handler failed", self.label)

    def call(self, fn: Any, args: tuple[Any, ...], token: int, *, done: TaskDone,
             released: Callable[[], None], data: Any = None) -> Any:
        """Run ``fn(*args)`` as a task on a pooled worker coroutine (a short host call); ``token``
        (unique per VM while the call runs) names it to the scheduler and to the process side (the
        call's pid). ``done(ok, results)`` when the function returns, ``released()`` once the
        coroutines it started have ended too (at once if it started none). ``data`` rides on the
        task (``task.call_data``: the HTTP request of a handler). Returns the task."""
        self._check_room()
        self._call_done[token] = done
        self._call_released[token] = released
        task = self._spawn_call(fn, token, data, *args)
        self.schedule_pump()
        return task

    def forget(self, token: int) -> None:
        """The call ``token`` was stopped (killed): neither of its callbacks will be called."""
        self._call_done.pop(token, None)
        self._call_released.pop(token, None)

    def kill(self, task: Any) -> None:
        """Stop a task (and the tasks it started) now; its ``done`` is not called."""
        self.S.kill(task.co)

    def run(self, fn: Any, *args: Any) -> asyncio.Future[tuple[bool, tuple[Any, ...]]]:
        """Run ``fn(*args)`` as a task; the future gets (ok, results) when it ends."""
        fut: asyncio.Future[tuple[bool, tuple[Any, ...]]] = asyncio.get_running_loop().create_future()

        def done(ok: bool, results: tuple[Any, ...]) -> None:
            if not fut.done():
                fut.set_result((ok, results))

        self.spawn(fn, args, done)
        return fut

    def wake(self, co: Any, *values: Any) -> None:
        self._wake(co, *values)
        self.schedule_pump()

    @property
    def busy(self) -> bool:
        """Tasks are ready to run (a turn of the scheduler is due)."""
        return self._pump_scheduled

    def schedule_pump(self) -> None:
        if not self._pump_scheduled and not self._closed:
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self.pump)

    def pump(self) -> None:
        """Run every ready task, then hand their outside waits to asyncio."""
        self._pump_scheduled = False
        if self._closed:
            return
        self.run_started = time.monotonic()
        try:
            requests, more = self._run()
        except LuaMemoryError:
            self.run_started = None
            self._out_of_memory()
            return
        finally:
            self.run_started = None
        if more:
            self.schedule_pump()
        if requests is None:
            return
        for i in range(1, len(requests) + 1):
            item = requests[i]
            co, req = item[1], item[2]
            self._dispatch(co, req)

    def _out_of_memory(self) -> None:
        """The scheduler itself hit the memory limit: fail the task it ran, free what can be, go on."""
        message = (f"not enough memory: the Lua memory limit of {self.label} "
                   f"({self.settings.max_memory // (1024 * 1024)} MB) was reached")
        log.error("%s", message)
        try:
            self.S.out_of_memory(message)
            self.rt.globals().collectgarbage("collect")
        except LuaMemoryError:
            log.error("%s: still out of memory after a collection", self.label)
        # the rest of the ready tasks run later: let what frees memory (exits, kills) happen first
        asyncio.get_running_loop().call_later(0.01, self.schedule_pump)

    def _dispatch(self, co: Any, req: Any) -> None:
        if isinstance(req, Pending):
            self._await(co, req._awaitable)
            return
        kind = req["kind"] if lua.lua_type(req) == "table" else None
        if kind == "sleep":
            loop = asyncio.get_running_loop()
            loop.call_later(max(0.0, float(req["seconds"])), self.wake, co)
            return
        self.wake(co, None, self.error("INTERNAL", f"unknown scheduler request {kind!r}"))

    def _await(self, co: Any, awaitable: Awaitable[tuple[Any, ...]]) -> None:
        async def waiter() -> None:
            try:
                result = await awaitable
            except WippyError as exc:
                self.wake(co, None, self.error(exc.kind, str(exc), retryable=exc.retryable))
                return
            except Exception as exc:  # a host bug must not leave the task hanging forever
                log.exception("%s: host operation failed", self.label)
                self.wake(co, None, self.error("INTERNAL", f"internal error: {exc}"))
                return
            self.wake(co, *(self.to_lua(v) for v in result))

        task = asyncio.get_running_loop().create_task(waiter())
        self._tasks.add(task)

        def finished(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            # cancelled before it ran (the VM closed): the operation was never awaited; close it
            # so it is not reported as a coroutine never awaited
            if t.cancelled() and inspect.iscoroutine(awaitable):
                awaitable.close()

        task.add_done_callback(finished)

    def background(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run host work no task waits for (an audit record); owned by the VM, cancelled on close."""
        async def guarded() -> None:
            try:
                await coro
            except Exception:
                log.exception("%s: background host operation failed", self.label)

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def asyncify(self, fn: Callable[..., Any]) -> Any:
        """A Lua function calling ``fn``; when ``fn`` returns a Pending, the task waits for it."""
        return self._asyncify(fn)

    def pending(self, coro: Coroutine[Any, Any, tuple[Any, ...]]) -> Pending:
        return Pending(coro)

    async def aclose(self) -> None:
        """Stop pumping and cancel outstanding host operations. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


# Small Lua helpers the VM needs (loaded with the scheduler and errors module).
_HELPERS = """
local S, errors = ...
local pack, unpack, yield = table.pack, table.unpack, coroutine.yield
local is_pending = S.is_pending
local H = {}
function H.get(t, k) return t[k] end
-- a table whose contents live behind __pairs (table.freeze keeps them off the raw table) as a
-- plain table; others as they are
function H.plain(t)
    if next(t) ~= nil then return t end
    local out = {}
    for k, v in pairs(t) do out[k] = v end
    return out
end
function H.asyncify(pyfn)
    return function(...)
        local r = pack(pyfn(...))
        if r.n >= 1 and type(r[1]) == "userdata" and is_pending(r[1]) then return yield(r[1]) end
        return unpack(r, 1, r.n)
    end
end
return H
"""
