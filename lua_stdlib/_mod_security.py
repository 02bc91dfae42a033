"""`security` and `store` for Lua (the Lua sides: lua/security.lua, lua/store.lua)."""

from __future__ import annotations

import inspect
from typing import Any

from wippy.core import WippyError

from ._host import LuaHost, ModuleUnavailable, register_module
from ._vm import _source


def _security(host: LuaHost) -> Any:
    return host.security.module


def _store(host: LuaHost) -> Any:
    hub = host.ctx.stores
    if hub is None:
        raise ModuleUnavailable("no stores are available to this process")
    vm = host.vm

    def call(fn: Any, convert: Any = None) -> Any:
        """A bridge function: ``fn(backend, ...)`` on the store; a coroutine result is awaited
        (store.kv.raft, store.sql), a plain one returned at once (store.memory)."""
        def failed(exc: WippyError) -> tuple[Any, Any]:
            return None, vm.error(exc.kind, str(exc), retryable=exc.retryable or None)

        def run(store_id: str, *args: Any) -> Any:
            try:
                out = fn(hub.get(str(store_id)), *args)
            except WippyError as exc:
                return failed(exc)
            if inspect.isawaitable(out):
                async def wait() -> tuple[Any, ...]:
                    try:
                        value = await out
                    except WippyError as exc:
                        return failed(exc)
                    return (convert(value) if convert else value), None
                return vm.pending(wait())
            return (convert(out) if convert else out), None
        return vm.asyncify(run)

    def ttl_of(raw: Any) -> float | None:
        return float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) and raw > 0 else None

    def options(raw: Any) -> dict[str, Any]:
        o = vm.from_lua(raw) or {}
        return o if isinstance(o, dict) else {}

    def set_(s: Any, key: str, value: Any = None, ttl: Any = None) -> Any:
        return s.set(key, vm.from_lua(value), ttl_of(ttl))

    def put(s: Any, key: str, value: Any = None, opts: Any = None) -> Any:
        o = options(opts)
        v = o.get("if_version")
        return s.put(key, vm.from_lua(value), ttl=ttl_of(o.get("ttl")), only_if_absent=bool(o.get("only_if_absent")),
                     if_version=int(v) if isinstance(v, int | float) else None)

    def list_(s: Any, opts: Any = None) -> Any:
        o = options(opts)
        return s.list(prefix=str(o.get("prefix") or ""), after=o.get("after"), limit=int(o.get("limit") or 100))

    to_lua = vm.to_lua
    bridge = vm.rt.table_from({
        "get": call(lambda s, k: s.get(k), to_lua), "entry": call(lambda s, k: s.entry(k), to_lua),
        "has": call(lambda s, k: s.has(k)), "delete": call(lambda s, k: s.delete(k)),
        "set": call(set_, lambda _: True), "put": call(put, to_lua), "list": call(list_, to_lua),
        "info": call(lambda s: s.info(), to_lua), "exists": call(lambda s: True),
    })
    return vm.rt.execute(_source("store.lua"), bridge, vm.errors, host.security)


register_module("security", _security)
register_module("store", _store)
