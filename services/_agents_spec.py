"""Agent definitions as written (``agent.gen1`` entries or inline tables), checked, and merged
along ``inherit``.

``RawAgent`` is one definition with every field checked and in its Python type; a wrong field is
a ``SpecError`` naming it. ``lineage`` finds the ancestors an agent inherits from (depth first,
each once, parents before children; a cycle is refused) and ``merge`` folds them with the agent:

- ``prompt``: the ancestors' prompts, then the agent's, separated by blank lines;
- ``traits`` (by trait id or name), ``tools`` (by tool id), ``delegates`` (by name): one list,
  a later definition replacing an earlier one's item in place;
- ``memory``: all items, each once; ``context``: merged, later keys win;
- ``model``, ``max_tokens``, ``temperature``, ``thinking_effort``, ``memory_contract``: the
  nearest definition that sets it (the agent's own first).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from wippy.core import Entry

from ._agents_tools import RegistryReader, SpecError

AGENT_TYPE = "agent.gen1"
DEFAULT_MAX_TOKENS = 512


@dataclass(frozen=True, slots=True, kw_only=True)
class RawAgent:
    """One agent definition, fields checked. ``tools``/``traits``/``delegates`` stay as written
    (lists of ids or tables): they are resolved when the agent compiles."""

    id: str
    name: str = ""
    title: str = ""
    description: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)
    prompt: str = ""
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    thinking_effort: float | None = None
    tools: tuple[Any, ...] = ()
    traits: tuple[Any, ...] = ()
    delegates: tuple[Any, ...] = ()
    memory: tuple[str, ...] = ()
    memory_contract: Mapping[str, Any] | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    inherit: tuple[str, ...] = ()


def from_entry(entry: Entry) -> RawAgent:
    """The definition an ``agent.gen1`` entry holds (its id, ``meta.name``, ``meta.comment``)."""
    meta = entry.meta
    return from_data(entry.id, entry.data, meta=meta, name=meta.get("name"), title=meta.get("title"),
                     description=meta.get("comment"))


def from_inline(spec: Mapping[str, Any]) -> RawAgent:
    """An inline spec table (``load_agent{id=..., prompt=...}``), as Wippy takes it."""
    agent_id = spec.get("id") or spec.get("name") or "inline-agent"
    meta = spec.get("meta")
    return from_data(str(agent_id), spec, meta=meta if isinstance(meta, dict) else {}, name=spec.get("name"),
                     title=spec.get("title"), description=spec.get("description"))


def from_data(agent_id: str, data: Mapping[str, Any], *, meta: Mapping[str, Any], name: Any, title: Any,
              description: Any) -> RawAgent:
    inherit = data.get("inherit")
    if isinstance(inherit, str):
        inherit = [inherit]
    memory_contract = data.get("memory_contract")
    if memory_contract is not None and not isinstance(memory_contract, dict):
        raise SpecError("memory_contract", "must be a table {implementation_id, context, options}")
    return RawAgent(
        id=agent_id, name=str(name or ""), title=str(title or ""), description=str(description or ""), meta=meta,
        prompt=_text(data.get("prompt"), "prompt"),
        model=_model(data.get("model")),
        max_tokens=_positive_int(data.get("max_tokens"), "max_tokens"),
        temperature=_number(data.get("temperature"), "temperature", 0, 2),
        thinking_effort=_number(data.get("thinking_effort"), "thinking_effort", 0, 100),
        tools=_list(data.get("tools"), "tools"),
        traits=_list(data.get("traits"), "traits"),
        delegates=_list(data.get("delegates"), "delegates"),
        memory=_strings(data.get("memory"), "memory"),
        memory_contract=memory_contract,
        context=_table(data.get("context"), "context"),
        inherit=_strings(inherit, "inherit"),
    )


def _text(value: Any, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SpecError(field, "must be text")
    return value


def _model(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SpecError("model", "must be a model name, a class name or 'class:<name>'")
    return value


def _positive_int(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise SpecError(field, f"must be a positive whole number, not {value!r}")
    return value


def _number(value: Any, field: str, low: float, high: float) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise SpecError(field, f"must be a number from {low:g} to {high:g}, not {value!r}")
    return value


def _list(value: Any, field: str) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, dict) and not value:  # an empty Lua table reaches us as {}
        return ()
    if not isinstance(value, list):
        raise SpecError(field, "must be a list")
    return tuple(value)


def _strings(value: Any, field: str) -> tuple[str, ...]:
    items = _list(value, field)
    for i, item in enumerate(items, 1):
        if not isinstance(item, str) or not item:
            raise SpecError(f"{field}[{i}]", "must be non-empty text")
    return items


def _table(value: Any, field: str) -> Mapping[str, Any]:
    if value is None or value == []:
        return {}
    if not isinstance(value, dict):
        raise SpecError(field, "must be a table of named values")
    return value


def find_agent(registry: RegistryReader, ref: str) -> Entry | None:
    """The agent under a registry id, else the one whose ``meta.name`` is ``ref``."""
    entry = registry.get(ref) if ref.count(":") == 1 else None
    if entry is not None and entry.meta.get("type") == AGENT_TYPE:
        return entry
    named = sorted((e for e in registry.current().values()
                    if e.meta.get("type") == AGENT_TYPE and e.meta.get("name") == ref), key=lambda e: e.id)
    return named[0] if named else entry


def lineage(registry: RegistryReader, agent: RawAgent, load: Any) -> list[RawAgent]:
    """The agents ``agent`` inherits from, nearest last. ``load(entry)`` reads one (and raises a
    definition error naming it when it is wrong)."""
    order: list[RawAgent] = []
    seen: set[str] = set()

    def visit(child: RawAgent, path: tuple[str, ...]) -> None:
        for i, ref in enumerate(child.inherit, 1):
            entry = find_agent(registry, ref)
            where = f"inherit[{i}]" if child is agent else f"inherit[{i}] (in {child.id})"
            if entry is None or entry.meta.get("type") != AGENT_TYPE:
                raise SpecError(where, f"no agent {ref!r} to inherit from (looked up by id, then by meta.name)")
            if entry.id in path:
                cycle = " -> ".join((*path[path.index(entry.id):], entry.id))
                raise SpecError(where, f"inherit cycle: {cycle}")
            if entry.id in seen:
                continue
            parent = load(entry)
            visit(parent, (*path, entry.id))
            seen.add(entry.id)
            order.append(parent)

    visit(agent, (agent.id,))
    return order


def merge(ancestors: list[RawAgent], agent: RawAgent) -> RawAgent:
    """``agent`` with what it inherits folded in (see the module docstring)."""
    if not ancestors:
        return agent
    chain = [*ancestors, agent]
    prompt = "\n\n".join(a.prompt for a in chain if a.prompt)
    context: dict[str, Any] = {}
    memory: dict[str, None] = {}
    for a in chain:
        context.update(a.context)
        memory.update(dict.fromkeys(a.memory))

    def nearest(name: str) -> Any:
        for a in reversed(chain):
            value = getattr(a, name)
            if value is not None:
                return value
        return None

    return replace(
        agent, prompt=prompt, context=context, memory=tuple(memory),
        model=nearest("model"), max_tokens=nearest("max_tokens"), temperature=nearest("temperature"),
        thinking_effort=nearest("thinking_effort"), memory_contract=nearest("memory_contract"),
        traits=_merged_items(chain, "traits", _trait_key),
        tools=_merged_items(chain, "tools", _id_key),
        delegates=_merged_items(chain, "delegates", _delegate_key),
        inherit=(),
    )


def _merged_items(chain: list[RawAgent], name: str, key: Any) -> tuple[Any, ...]:
    merged: dict[Any, Any] = {}
    for a in chain:
        for i, item in enumerate(getattr(a, name)):
            k = key(item)
            merged[k if k is not None else (a.id, i)] = item
    return tuple(merged.values())


def _id_key(item: Any) -> Any:
    return item if isinstance(item, str) else item.get("id") if isinstance(item, dict) else None


def _trait_key(item: Any) -> Any:
    if isinstance(item, dict):
        return item.get("id") or item.get("name")
    return item if isinstance(item, str) else None


def _delegate_key(item: Any) -> Any:
    return item.get("name") if isinstance(item, dict) else None
