"""`env`: the node's env variables (the Lua side is lua/env.lua).

    env.get(name) -> value | nil, err     name: a variable's public name or entry id (a bare name
                                          also finds one in the caller's namespace); an unset
                                          variable gives its default; NOT_FOUND when there is
                                          neither, or no such variable (OS variables are reached
                                          only through env.variable entries); INVALID: empty name
    env.set(name, value) -> true | nil, err   PERMISSION_DENIED on a read-only variable or a
                                          read-only storage (os, static); file writes wait off
                                          the event loop
    env.get_all() -> table                every storage's contents and every variable's value,
                                          limited to the names env.get allows

Permissions: ``env.get`` / ``env.set`` on the name as given.
"""

from __future__ import annotations

from typing import Any

from wippy.core import WippyError

from ._host import LuaHost, ModuleUnavailable, register_module
from ._vm import _source


def _build(host: LuaHost) -> Any:
    service = host.ctx.env
    if service is None:
        raise ModuleUnavailable("no env registry is available to this process")
    vm = host.vm

    def get(name: str, ns: str | None = None) -> tuple[Any, Any]:
        try:
            return service.get(str(name), ns), None
        except WippyError as exc:
            return None, vm.error(exc.kind, str(exc))

    def set_(name: str, value: str, ns: str | None = None) -> Any:
        async def write() -> tuple[Any, ...]:
            await service.aset(str(name), str(value), ns)
            return True, None

        return vm.pending(write())

    def all_() -> tuple[Any, Any]:
        try:
            return vm.to_lua(service.all()), None
        except WippyError as exc:
            return None, vm.error(exc.kind, str(exc))

    bridge = vm.rt.table_from({"get": get, "set": vm.asyncify(set_), "all": all_})
    return vm.rt.execute(_source("env.lua"), bridge, vm.errors, vm.rt.globals().debug.getinfo, host.security)


register_module("env", _build)
