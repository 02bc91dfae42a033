"""Declarative agents: ``agent.gen1`` registry entries compiled into what a runner needs.

An agent is a ``registry.entry`` with ``meta.type: agent.gen1`` (``meta.name``, ``meta.comment``)
and the fields ``prompt``, ``model``, ``max_tokens`` (512), ``temperature``, ``thinking_effort``,
``tools`` (ids, ``"ns:*"``, ``{id, alias, description, context}``), ``traits`` (names or
``{id, context}``), ``delegates`` (``{id, name, rule, context}``: other agents offered to the model
as tools), ``memory`` (text items), ``context`` and, as this runtime's extension,
``inherit: [agent ids or names]`` (see ``_agents_spec``).

``compile_agent`` resolves all of it against the registry into a ``CompiledAgent``: the system
prompt (the agent's prompt, its traits' prompts, its memory), the model options, the tools with
their JSON Schemas and contexts, and the delegates. The ``wippy.agent:context`` Lua library
(``lua/lib/wippy.agent.context.lua``) gets it through the ``agent_host`` module and runs it. The
result follows Wippy's agent compiler, so a model sees the same prompt and tools as on Wippy.
The system agents an app enables (``wippy.registry:agent``, ``wippy.coder:agent``; see
``_system_agents``) and their tools resolve as if they were the app's own entries.

Errors::

    AgentNotFoundError (NotFoundError)       no agent under that id or meta.name
    AgentDefinitionError (DefinitionError)   a field of an agent, trait or tool is wrong;
                                             ``entry`` names the agent, ``field`` the field
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from wippy.core import DefinitionError, Entry, NotFoundError

from ._agents_spec import AGENT_TYPE, DEFAULT_MAX_TOKENS, RawAgent, find_agent, from_entry, from_inline, lineage, merge
from ._agents_tools import (
    RegistryReader,
    SpecError,
    ToolRef,
    ToolSpec,
    check_name,
    expand,
    parse_tool_refs,
    resolve,
)
from ._agents_traits import Trait, parse_trait_refs, resolve_trait
from ._system_agents import with_native_entries

#: the arguments schema of a delegate tool, unless the context configures another (Wippy's default)
DELEGATE_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {"message": {"type": "string", "description": "The message to forward to the agent"}},
    "required": ["message"],
}


class AgentNotFoundError(NotFoundError):
    """No agent is registered under the id or name asked for."""


class AgentDefinitionError(DefinitionError):
    """An agent definition (or a trait or tool it uses) has a wrong field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CompileOptions:
    """What the agent context adds to a definition when it loads an agent."""

    #: the context's base context; the agent's own ``context`` wins over it
    context: Mapping[str, Any] = field(default_factory=dict)
    #: tools added with ``ctx:add_tools`` (appended to the agent's)
    tools: Sequence[Any] = ()
    #: delegates added with ``ctx:add_delegates``
    delegates: Sequence[Any] = ()
    #: ``set_active_traits`` / ``set_active_tools``: when set, they replace the agent's own lists
    traits_overlay: Sequence[Any] | None = None
    tools_overlay: Sequence[Any] | None = None
    #: ``load_agent(id, {model = ...})`` / ``switch_to_model``
    model: str | None = None
    memory_contract: Mapping[str, Any] | None = None
    #: offer delegates to the model as tools
    delegate_tools: bool = True
    delegate_suffix: str | None = None
    delegate_schema: Mapping[str, Any] = field(default_factory=lambda: DELEGATE_SCHEMA)
    #: what traits' build functions returned, by trait id ({prompt, tools, delegates, context})
    contributions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: the clock for time_aware (None: now)
    now: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FuncRef:
    """A trait's function the runner calls (``build``, ``prompt`` or ``step``), with its context."""

    trait_id: str
    func_id: str
    context: Mapping[str, Any]
    prompt: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CompiledAgent:
    id: str
    name: str
    title: str
    description: str
    meta: Mapping[str, Any]
    model: str
    max_tokens: int
    temperature: float | None
    thinking_effort: float | None
    #: the agent's and its traits' prompts
    prompt: str
    #: ``prompt`` with the memory items appended: what the model gets as the system message
    system_prompt: str
    #: tools and delegate tools, by name
    tools: tuple[ToolSpec, ...]
    memory: tuple[str, ...]
    memory_contract: Mapping[str, Any] | None
    context: Mapping[str, Any]
    build_funcs: tuple[FuncRef, ...] = ()
    prompt_funcs: tuple[FuncRef, ...] = ()
    step_funcs: tuple[FuncRef, ...] = ()

    @property
    def delegates(self) -> dict[str, str]:
        """Delegate tool name -> the agent it hands the task to."""
        return {t.name: t.agent_id for t in self.tools if t.agent_id is not None}

    def to_data(self) -> dict[str, Any]:
        """Plain data for Lua."""
        def funcs(refs: tuple[FuncRef, ...]) -> list[dict[str, Any]]:
            return [{"trait_id": f.trait_id, "func_id": f.func_id, "context": dict(f.context), "prompt": f.prompt}
                    for f in refs]

        out: dict[str, Any] = {
            "id": self.id, "name": self.name, "title": self.title, "description": self.description,
            "meta": dict(self.meta), "model": self.model, "max_tokens": self.max_tokens,
            "prompt": self.prompt, "system_prompt": self.system_prompt,
            "tools": [t.to_data() for t in self.tools], "delegates": self.delegates,
            "memory": list(self.memory), "context": dict(self.context),
            "build_funcs": funcs(self.build_funcs), "prompt_funcs": funcs(self.prompt_funcs),
            "step_funcs": funcs(self.step_funcs),
        }
        for key in ("temperature", "thinking_effort", "memory_contract"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


def compile_agent(registry: RegistryReader, agent: str | Mapping[str, Any],
                  options: CompileOptions | None = None) -> CompiledAgent:
    """The agent under ``agent`` (registry id, else ``meta.name``; or an inline spec table),
    with its inheritance, traits, tools and delegates resolved. The system entries the app enabled
    are laid under ``registry``."""
    options = options or CompileOptions()
    registry = with_native_entries(registry)
    raw = load_definition(registry, agent)
    try:
        raw = merge(lineage(registry, raw, _read), raw)
        return _compile(registry, raw, options)
    except SpecError as exc:
        raise AgentDefinitionError(exc.message, entry=raw.id, field=exc.field) from exc


def load_definition(registry: RegistryReader, agent: str | Mapping[str, Any]) -> RawAgent:
    if isinstance(agent, str):
        entry = find_agent(registry, agent)
        if entry is None:
            raise AgentNotFoundError(f"No agent found with name: {agent}")
        if entry.meta.get("type") != AGENT_TYPE:
            raise AgentNotFoundError(f"Entry is not a gen1 agent: {agent}")
        return _read(entry)
    try:
        return from_inline(agent)
    except SpecError as exc:
        raise AgentDefinitionError(exc.message, entry=str(agent.get("id") or "inline-agent"),
                                   field=exc.field) from exc


def _read(entry: Entry) -> RawAgent:
    try:
        return from_entry(entry)
    except SpecError as exc:
        raise AgentDefinitionError(exc.message, entry=entry.id, field=exc.field) from exc


def _compile(registry: RegistryReader, raw: RawAgent, options: CompileOptions) -> CompiledAgent:
    model = options.model or raw.model
    if not model:
        raise SpecError("model", "required: a model name, a class name or 'class:<name>'")
    context = {**options.context, **raw.context}
    trait_refs = parse_trait_refs(list(options.traits_overlay) if options.traits_overlay is not None
                                  else list(raw.traits), "traits")
    traits = [resolve_trait(registry, ref, options.now) for ref in trait_refs]
    own_tools = list(options.tools_overlay) if options.tools_overlay is not None else list(raw.tools)
    tool_refs = parse_tool_refs(own_tools + list(options.tools), "tools")
    delegates = list(raw.delegates) + list(options.delegates)

    prompts = [raw.prompt] if raw.prompt else []
    trait_contexts: dict[str, Mapping[str, Any]] = {}
    trait_tools: list[ToolRef] = []
    for trait in traits:
        contribution = options.contributions.get(trait.id) or {}
        trait_contexts[trait.id] = {**trait.context, **_mapping(contribution.get("context"))}
        prompts += [p for p in (trait.prompt, contribution.get("prompt")) if isinstance(p, str) and p]
        trait_tools += trait.tools
        trait_tools += parse_tool_refs(contribution.get("tools") or None, f"traits ({trait.id} build) tools",
                                       trait=trait.id)
        built_delegates = contribution.get("delegates")
        delegates += built_delegates if isinstance(built_delegates, list) else []

    tools = _tools(registry, expand(registry, [*tool_refs, *trait_tools]), raw, context, trait_contexts)
    if options.delegate_tools:
        tools = _with_delegates(tools, delegates, raw, context, options)
    prompt = "\n\n".join(prompts)
    memory_contract = options.memory_contract or raw.memory_contract
    return CompiledAgent(
        id=raw.id, name=raw.name, title=raw.title, description=raw.description, meta=raw.meta, model=model,
        max_tokens=raw.max_tokens or DEFAULT_MAX_TOKENS, temperature=raw.temperature,
        thinking_effort=raw.thinking_effort, prompt=prompt, system_prompt=_with_memory(prompt, raw.memory),
        tools=tuple(sorted(tools.values(), key=lambda t: t.name)), memory=raw.memory,
        memory_contract=memory_contract, context=context,
        build_funcs=_funcs(traits, "build_func_id", trait_contexts, context=context, agent_id=raw.id,
                           built=options.contributions),
        prompt_funcs=_funcs(traits, "prompt_func_id", trait_contexts, agent_id=raw.id),
        step_funcs=_funcs(traits, "step_func_id", trait_contexts, agent_id=raw.id),
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _tools(registry: RegistryReader, refs: list[ToolRef], raw: RawAgent, context: Mapping[str, Any],
           trait_contexts: Mapping[str, Mapping[str, Any]]) -> dict[str, ToolSpec]:
    """Each tool by name; a second reference to the same tool and name replaces the first, two
    different tools under one name are an error."""
    out: dict[str, ToolSpec] = {}
    for ref in refs:
        merged = {**(trait_contexts.get(ref.trait, {}) if ref.trait else {}), **context, **ref.context,
                  "agent_id": raw.id}
        tool = resolve(registry, ref, merged)
        taken = out.get(tool.name)
        if taken is not None and taken.registry_id != tool.registry_id:
            raise SpecError(ref.where, f"two tools are named {tool.name!r} ({taken.registry_id} and "
                                       f"{tool.registry_id}): give one an alias")
        out[tool.name] = tool
    return out


def _with_delegates(tools: dict[str, ToolSpec], delegates: list[Any], raw: RawAgent, context: Mapping[str, Any],
                    options: CompileOptions) -> dict[str, ToolSpec]:
    out = dict(tools)
    for i, item in enumerate(delegates, 1):
        where = f"delegates[{i}]"
        if not isinstance(item, dict):
            raise SpecError(where, "must be a table {id, name, rule, context}")
        agent_id, name, rule = item.get("id"), item.get("name"), item.get("rule")
        own_context = item.get("context")
        if not isinstance(agent_id, str) or not agent_id:
            raise SpecError(f"{where}.id", "needs the id (or meta.name) of the agent to delegate to")
        if not isinstance(name, str) or not name:
            raise SpecError(f"{where}.name", "needs the tool name the model calls to delegate")
        check_name(name, f"{where}.name")
        if rule is not None and not isinstance(rule, str):
            raise SpecError(f"{where}.rule", "must be text")
        if own_context is not None and not isinstance(own_context, dict):
            raise SpecError(f"{where}.context", "must be a table of named values")
        if name in tools:
            raise SpecError(f"{where}.name", f"{name!r} is already the name of tool {tools[name].registry_id}")
        description = "Forward the request to " + (rule or "when appropriate") + (options.delegate_suffix or "")
        own_schema = item.get("schema")
        schema: Mapping[str, Any] = own_schema if isinstance(own_schema, dict) else options.delegate_schema
        out[name] = ToolSpec(name=name, description=description, schema=schema, agent_id=agent_id,
                             context={**context, **(own_context or {})})
    return out


def _with_memory(prompt: str, memory: tuple[str, ...]) -> str:
    if not memory:
        return prompt
    return prompt + "\n\n## Your memory contains:" + "".join(f"\n- {item}" for item in memory)


def _funcs(traits: list[Trait], key: str, trait_contexts: Mapping[str, Mapping[str, Any]], *, agent_id: str,
           context: Mapping[str, Any] | None = None, built: Mapping[str, Any] | None = None) -> tuple[FuncRef, ...]:
    """The traits' functions of one kind (``key``), each with its context: the trait's, then
    (``context``, for build functions) the agent's. Traits already ``built`` are left out."""
    out = []
    for trait in traits:
        func_id = getattr(trait, key)
        if func_id is None or (built is not None and trait.id in built):
            continue
        merged = {**trait_contexts[trait.id], **(context or {}), "agent_id": agent_id}
        out.append(FuncRef(trait_id=trait.id, func_id=func_id, context=merged, prompt=trait.prompt))
    return tuple(out)
