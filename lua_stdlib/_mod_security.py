"""`security` and `store` for Lua (the Lua sides: lua/security.lua, lua/store.lua)."""

from __future__ import annotations

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

    def call(fn: Any) -> Any:
        def run(store_id: str, *args: Any) -> Any:
            try:
                return fn(hub.get(str(store_id)), *args)
            except WippyError as exc:
                return None, vm.error(exc.kind, str(exc))
        return run

    def ttl_of(raw: Any) -> float | None:
        return float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) and raw > 0 else None

    def get(s: Any, key: str) -> Any:
        return vm.to_lua(s.get(key)), None

    def entry(s: Any, key: str) -> Any:
        return vm.to_lua(s.entry(key)), None

    def has(s: Any, key: str) -> Any:
        return s.has(key), None

    def delete(s: Any, key: str) -> Any:
        return s.delete(key), None

    def set_(s: Any, key: str, value: Any = None, ttl: Any = None) -> Any:
        s.set(key, vm.from_lua(value), ttl_of(ttl))
        return True, None

    def put(s: Any, key: str, value: Any = None, opts: Any = None) -> Any:
        o = vm.from_lua(opts) or {}
        if not isinstance(o, dict):
            o = {}
        v = o.get("if_version")
        return vm.to_lua(s.put(key, vm.from_lua(value), ttl=ttl_of(o.get("ttl")),
                               only_if_absent=bool(o.get("only_if_absent")),
                               if_version=int(v) if isinstance(v, int | float) else None)), None

    def list_(s: Any, opts: Any = None) -> Any:
        o = vm.from_lua(opts) or {}
        if not isinstance(o, dict):
            o = {}
        return vm.to_lua(s.list(prefix=str(o.get("prefix") or ""), after=o.get("after"),
                                limit=int(o.get("limit") or 100))), None

    def info(s: Any) -> Any:
        return vm.to_lua(s.info()), None

    def exists(s: Any) -> Any:
        return True, None

    bridge = vm.rt.table_from({
        "get": call(get), "entry": call(entry), "has": call(has), "delete": call(delete), "set": call(set_),
        "put": call(put), "list": call(list_), "info": call(info), "exists": call(exists),
    })
    return vm.rt.execute(_source("store.lua"), bridge, vm.errors, host.security)


register_module("security", _security)
register_module("store", _store)
