"""``wippy.system_agents``: the Lua module the system agents' tools use beside ``registry``.

    check_source(entry_id, source) -> true | nil, error(INVALID)
        translates Wippy's Lua dialect and compiles the result as ``LuaHost.load`` would, without
        running it; the error names the entry, line and column
    versions(limit) -> {{version, at, author, message, ops}, ...} newest first | nil, error
        the registry's version log (who changed what, when), which ``registry.versions()`` lacks

Neither changes anything, so any entry may list the module; the tools list it with ``registry``.
"""

from __future__ import annotations

from typing import Any

import orjson

from wippy.core import DefinitionError
from wippy.lua_stdlib import LuaHost, register_module, translate

MODULE = "wippy.system_agents"


def _build(host: LuaHost) -> Any:
    vm = host.vm
    compile_ = vm.get(host.sandbox, "compile")  # read here, not inside a call (see lua_stdlib._vm)

    def check_source(entry_id: Any = None, source: Any = None) -> Any:
        if not isinstance(entry_id, str | bytes) or not isinstance(source, str | bytes):
            return None, vm.error("INVALID", "check_source(entry_id, source): both must be text")
        name = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        text = source.decode("utf-8", errors="replace") if isinstance(source, bytes) else source
        try:
            code = translate(text, name).code
        except DefinitionError as exc:
            return None, vm.error("INVALID", f"{name} does not compile: {exc}")
        compiled = compile_(code, name, vm.rt.table())
        if isinstance(compiled, tuple):  # load() failed: nil, message
            return None, vm.error("INVALID", f"{name} does not compile: {compiled[1]}")
        return True, None

    async def _versions(limit: int) -> tuple[Any, ...]:
        rows = await host.ctx.registry.versions()
        newest = list(reversed(rows))[:limit]
        return orjson.loads(orjson.dumps(newest, default=str)), None

    def versions(limit: Any = None) -> Any:
        count = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else 20
        if not callable(getattr(host.ctx.registry, "versions", None)):
            return None, vm.error("UNAVAILABLE", "this registry keeps no version log")
        return vm.pending(_versions(count))

    return vm.rt.table_from({"check_source": check_source, "versions": vm.asyncify(versions)})


register_module(MODULE, _build)
