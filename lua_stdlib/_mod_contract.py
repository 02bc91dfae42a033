"""`contract`: typed interfaces implemented by function.lua entries (the Lua side: lua/contract.lua).

    contract.get(contract_id) -> Contract, err
    contract.open(binding_id ["?k=v&..."], scope?, options?) -> Instance, err
    contract.find_implementations(contract_id) -> {binding_id...}, err
    contract.is(instance, contract_id) -> bool

Definitions and bindings are read from the registry at each open (a new registry version is seen by
the next open); their Lua form is built once per entry version.
"""

from __future__ import annotations

from typing import Any

from wippy.core import CONTRACT_BINDING_KIND, CONTRACT_DEFINITION_KIND, Entry, bound_contracts

from ._host import LuaHost, register_module
from ._mod_funcs import _library as _funcs_library
from ._native_libs import native_contract
from ._vm import _source


def _build(host: LuaHost) -> Any:
    vm = host.vm
    registry = host.ctx.registry
    built: dict[str, tuple[Entry, Any]] = {}

    def lookup(entry_id: str, kind: str, what: str) -> tuple[Entry | None, Any]:
        entry = registry.get(entry_id)
        if entry is None and kind == CONTRACT_DEFINITION_KIND:
            entry = native_contract(entry_id)  # declared by a component the runtime provides
        if entry is None or entry.kind != kind:
            return None, vm.error("NOT_FOUND", f"{what} '{entry_id}' not found", retryable=False)
        return entry, None

    def cached(entry: Entry, make: Any) -> Any:
        found = built.get(entry.id)
        if found is not None and found[0] is entry:
            return found[1]
        table = make(entry)
        built[entry.id] = (entry, table)
        return table

    def definition_table(entry: Entry) -> Any:
        methods = []
        for m in entry.data.get("methods") or ():
            out: dict[str, Any] = {"name": m.get("name"), "description": m.get("description") or ""}
            for key in ("input_schemas", "output_schemas"):
                if m.get(key):
                    out[key] = m[key]
            methods.append(out)
        return vm.to_lua({"id": entry.id, "methods": methods})

    def binding_table(entry: Entry) -> Any:
        return vm.to_lua({"id": entry.id, "contracts": [
            {"contract": bc.contract, "methods": bc.methods, "context_required": list(bc.context_required),
             "default": bc.default}
            for bc in bound_contracts(entry)
        ]})

    def definition(contract_id: str) -> tuple[Any, Any]:
        entry, err = lookup(str(contract_id), CONTRACT_DEFINITION_KIND, "contract definition")
        if entry is None:
            return None, err
        return cached(entry, definition_table), None

    def binding(binding_id: str) -> tuple[Any, Any]:
        entry, err = lookup(str(binding_id), CONTRACT_BINDING_KIND, "contract binding")
        if entry is None:
            return None, err
        return cached(entry, binding_table), None

    def bindings_of(contract_id: str) -> list[tuple[str, bool]]:
        out = []
        for entry in registry.current().values():
            if entry.kind != CONTRACT_BINDING_KIND:
                continue
            for bc in bound_contracts(entry):
                if bc.contract == contract_id:
                    out.append((entry.id, bc.default))
                    break
        out.sort()
        return out

    def implementations(contract_id: str) -> Any:
        return vm.to_lua([bid for bid, _ in bindings_of(str(contract_id))])

    def default_binding(contract_id: str) -> tuple[Any, Any]:
        cid = str(contract_id)
        defaults = [bid for bid, is_default in bindings_of(cid) if is_default]
        if not defaults:
            return None, vm.error("NOT_FOUND", f"no default binding for contract '{cid}'", retryable=False)
        # several bindings marked default: the first by id, so every node picks the same one
        return defaults[0], None

    bridge = vm.rt.table_from({"definition": definition, "binding": binding, "implementations": implementations,
                               "default_binding": default_binding})
    return vm.rt.execute(_source("contract.lua"), vm.S, vm.errors, bridge, _funcs_library(host), host.security)


register_module("contract", _build)
