"""The runaway watchdog: stops Lua code that keeps the event loop for too long, at no cost
until it does.

An instruction-count hook would slow every Lua instruction down (Lua 5.4 checks hooks on each
one: about 2x on a tight loop). Instead, every task thread carries a *disarmed* Lua hook, and a
watchdog thread checks each VM's current run: when one has gone on longer than the VM's slice
limit, it arms the hook on that VM's task threads with ``lua_sethook`` (which Lua allows to be
called asynchronously, as its own interpreter does from a signal handler). The hook then raises
"runaway code stopped" in the task that is running; threads armed while suspended disarm
themselves on their next resume.

The call is made with the GIL held (``PyDLL``), and threads are unregistered (under the GIL)
before Lua may free them, so the watchdog never touches a freed thread.
"""

from __future__ import annotations

import ctypes
import threading
import time
import weakref
from typing import Any, Protocol

import lupa.lua54 as lua  # type: ignore[import-untyped]

_LUA_MASKCOUNT = 1 << 3
_lib = ctypes.PyDLL(lua.__file__)
_lib.lua_sethook.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
_lib.lua_sethook.restype = None
_lib.lua_gethook.argtypes = [ctypes.c_void_p]
_lib.lua_gethook.restype = ctypes.c_void_p

_HOOKF: int | None = None


def lua_hook_dispatcher(rt: Any) -> int:
    """The address of Lua's debug-library hook dispatcher (the C function `debug.sethook`
    installs), read once from a throwaway thread."""
    global _HOOKF  # noqa: PLW0603 - a process-wide constant, computed once
    if _HOOKF is None:
        ptr = rt.execute(
            "local co = coroutine.create(function() end)\n"
            "debug.sethook(co, function() end, '', 1000)\n"
            "local p = tostring(co):match('0x%x+')\n"
            "return p, co"
        )[0]
        found = _lib.lua_gethook(int(ptr, 16))
        if not found:
            raise RuntimeError("cannot find Lua's hook dispatcher")
        _HOOKF = int(found)
    return _HOOKF


class Watched(Protocol):
    run_started: float | None
    slice_limit: float
    threads: set[int]
    threads_lock: threading.Lock


class Watchdog:
    """One per OS process; started with the first watched VM."""

    _instance: Watchdog | None = None
    _guard = threading.Lock()

    def __init__(self) -> None:
        self._vms: weakref.WeakSet[Any] = weakref.WeakSet()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="wippy-lua-watchdog", daemon=True)
        self._armed: dict[int, float] = {}
        self._thread.start()

    @classmethod
    def get(cls) -> Watchdog:
        with cls._guard:
            if cls._instance is None:
                cls._instance = Watchdog()
            return cls._instance

    def watch(self, vm: Watched) -> None:
        self._vms.add(vm)

    def _loop(self) -> None:
        # A daemon thread: it holds no resources and only reads VM state under the GIL.
        while True:
            self._wake.wait(0.05)
            now = time.monotonic()
            for vm in list(self._vms):
                started = vm.run_started
                if started is None or vm.slice_limit <= 0 or now - started < vm.slice_limit:
                    continue
                if self._armed.get(id(vm)) == started:
                    continue
                self._armed[id(vm)] = started
                hookf = _HOOKF
                if hookf is None:
                    continue
                with vm.threads_lock:  # unregistering waits for this: no thread is freed meanwhile
                    for ptr in vm.threads:
                        _lib.lua_sethook(ptr, hookf, _LUA_MASKCOUNT, 1)
