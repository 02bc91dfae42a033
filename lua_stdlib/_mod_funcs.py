"""`funcs` and `ctx`: calling function.lua entries (the call path itself is Lua: lua/funcs.lua).

An id the registry lacks may still name a function the runtime provides (a system agent's tool,
when the app enabled that agent's component); an app's own entry under that id wins.
"""

from __future__ import annotations

from typing import Any

from ._durations import parse_go_duration
from ._host import LuaCodeError, LuaHost, register_module
from ._vm import _source


def _duration_ms(value: Any) -> float | None:
    """A retry delay: milliseconds as a number, or a Go duration string; None when absent or invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        try:
            return parse_go_duration(value) / 1e6
        except ValueError:
            return None
    return None


def _native_entry(registry: Any, entry_id: str) -> Any:
    """The runtime's own function under ``entry_id`` when the registry has none: the tools of the
    system agents an app enabled (services/_system_agents.py)."""
    from wippy.services._system_agents import native_entry  # services import this package

    return native_entry(registry, entry_id)


def _library(host: LuaHost) -> Any:
    """The Lua side of funcs/ctx for this host (built once)."""
    cached = host.extras.get("funcs")
    if cached is not None:
        return cached
    vm = host.vm
    entries: dict[str, tuple[Any, Any]] = {}

    def resolve(entry_id: str) -> tuple[Any, Any]:
        entry = host.ctx.registry.get(entry_id) or _native_entry(host.ctx.registry, entry_id)
        if entry is None:
            return None, vm.error("NOT_FOUND", f"function {entry_id} does not exist")
        found = entries.get(entry_id)
        if found is not None and found[0] is entry:
            return found[1], None
        if entry.kind != "function.lua":
            return None, vm.error("INVALID", f"{entry_id} is a {entry.kind}, not a function.lua")
        try:
            fn = host.callable(entry)
        except LuaCodeError as exc:
            return None, vm.error("INTERNAL", str(exc))
        entries[entry_id] = (entry, fn)
        return fn, None

    lib = vm.rt.execute(_source("funcs.lua"), vm.S, vm.errors, vm.channel, host.payload, resolve,
                        host.readonly, host.security, _duration_ms)
    host.extras["funcs"] = lib
    return lib


register_module("funcs", lambda host: _library(host).funcs)
# funcs.call with the permission check skipped, for the benchmark that measures the check's cost
register_module("wippy.bench.funcs", lambda host: host.vm.rt.table_from({"call": _library(host).call_unchecked}))
register_module("ctx", lambda host: _library(host).ctx)
