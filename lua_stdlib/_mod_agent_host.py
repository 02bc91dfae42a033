"""`agent_host`: the bridge from the native ``wippy.agent:context`` library to agent compilation.

Only that library lists it in its ``modules:``. It reads the process's registry
(``host.ctx.registry``) and answers as Wippy's agent functions do, ``value`` or
``nil, error_string``:

    compile(agent_id_or_spec, config) -> compiled spec
        config: {context, tools, delegates, active_traits, active_tools, model, memory_contract,
                 delegate_tools = {enabled, description_suffix, default_schema}, contributions}
    library(entry_id) -> the library an ``imports:`` of that id would give (the registry's entry,
        else the runtime's native one): how the agent library reaches wippy.llm:llm and
        wippy.llm:prompt, since a native library declares modules only

The compiler itself (services/_agents.py) is pure: it only reads registry entries.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from ._host import LuaCodeError, LuaHost, register_module
from ._native_libs import native_library


def _list(value: Any) -> list[Any]:
    """A Lua array as a list (an empty table arrives as {})."""
    if isinstance(value, list):
        return value
    return []


def _options(config: Mapping[str, Any]) -> Any:
    from wippy.services._agents import DELEGATE_SCHEMA, CompileOptions  # services import this package

    delegate_tools = config.get("delegate_tools")
    delegate_tools = delegate_tools if isinstance(delegate_tools, dict) else {}
    contributions = config.get("contributions")
    schema = delegate_tools.get("default_schema")
    traits, tools = config.get("active_traits"), config.get("active_tools")
    memory_contract, context = config.get("memory_contract"), config.get("context")
    return CompileOptions(
        context=context if isinstance(context, dict) else {},
        tools=_list(config.get("tools")),
        delegates=_list(config.get("delegates")),
        traits_overlay=_list(traits) if traits is not None else None,
        tools_overlay=_list(tools) if tools is not None else None,
        model=str(config["model"]) if config.get("model") else None,
        memory_contract=memory_contract if isinstance(memory_contract, dict) else None,
        delegate_tools=delegate_tools.get("enabled") is not False,
        delegate_suffix=str(delegate_tools["description_suffix"]) if delegate_tools.get("description_suffix")
        else None,
        delegate_schema=schema if isinstance(schema, dict) and schema else DELEGATE_SCHEMA,
        contributions=contributions if isinstance(contributions, dict) else {},
    )


def _build(host: LuaHost) -> Any:
    from wippy.services._agents import AgentDefinitionError, AgentNotFoundError, compile_agent

    vm = host.vm

    def compile_(agent: Any = None, config: Any = None) -> Any:
        ref = vm.from_lua(agent)
        if isinstance(ref, dict) and not ref:
            ref = None
        if not isinstance(ref, str | dict) or ref == "":
            return None, "Agent spec or identifier is required"
        cfg = vm.from_lua(config) if config is not None else {}
        name = ref if isinstance(ref, str) else str(ref.get("id") or ref.get("name") or "inline-agent")
        try:
            compiled = compile_agent(host.ctx.registry, ref, _options(cfg if isinstance(cfg, dict) else {}))
        except AgentNotFoundError as exc:
            return None, f"Failed to load agent '{name}': {exc}"
        except AgentDefinitionError as exc:
            where = f"{exc.field}: " if exc.field else ""
            inside = f" (in {exc.entry})" if exc.entry and exc.entry != name else ""
            return None, f"Failed to compile agent '{name}': {where}{exc.reason}{inside}"
        return vm.to_lua(compiled.to_data()), None

    def library(entry_id: Any = None) -> Any:
        target = str(entry_id)
        lib = host.ctx.registry.get(target) or native_library(target)
        if lib is None:
            return None, f"library {target} does not exist"
        try:
            return host.load(lib), None
        except LuaCodeError as exc:
            return None, f"library {target}: {exc}"

    def run_id() -> str:
        return uuid.uuid4().hex

    return vm.rt.table_from({"compile": compile_, "library": library, "run_id": run_id})


register_module("agent_host", _build)
