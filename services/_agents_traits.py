"""Traits: reusable parts of agents (``registry.entry`` with ``meta.type: agent.trait``).

A trait gives an agent a prompt fragment, tools, a context for those tools, and functions the
Lua side runs: ``build_func_id`` (once, when the agent loads: more prompt, tools, delegates,
context), ``prompt_func_id`` (at every step: dynamic prompt text) and ``step_func_id`` (kept in the
compiled spec, as Wippy keeps it). An agent names a trait by id, or by ``meta.name``, as
``name`` or ``{id, context}``.

``time_aware`` is built in: when the registry holds no trait of that id or name, the runtime's
own one adds "The current date and time is ..." (rounded to ``time_interval`` minutes, default
15, in ``timezone``, default UTC), the same text Wippy's trait produces.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from wippy.core import Entry

from ._agents_tools import RegistryReader, SpecError, ToolRef, parse_tool_refs

TRAIT_TYPE = "agent.trait"
TIME_AWARE_ID = "wippy.agent.traits:time_aware"
_TIME_AWARE_NAMES = frozenset({"time_aware", "Time Aware", TIME_AWARE_ID})
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")


@dataclass(frozen=True, slots=True, kw_only=True)
class TraitRef:
    """A trait as an agent names it: its id or name, and the context given with it."""

    key: str
    where: str
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Trait:
    """A resolved trait. ``context`` is the trait's own context with the agent's instance context
    over it; ``tools`` carry the trait's id so they get that context."""

    id: str
    name: str
    prompt: str
    tools: tuple[ToolRef, ...]
    context: Mapping[str, Any]
    build_func_id: str | None = None
    prompt_func_id: str | None = None
    step_func_id: str | None = None


def parse_trait_refs(raw: object, field: str) -> list[TraitRef]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise SpecError(field, "must be a list of trait names or {id, context} tables")
    out = []
    for i, item in enumerate(raw, 1):
        where = f"{field}[{i}]"
        if isinstance(item, str) and item:
            out.append(TraitRef(key=item, where=where))
        elif isinstance(item, dict):
            key, context = item.get("id") or item.get("name"), item.get("context")
            if not isinstance(key, str) or not key:
                raise SpecError(f"{where}.id", "a trait table needs an id (or a name)")
            if context is not None and not isinstance(context, dict):
                raise SpecError(f"{where}.context", "must be a table of named values")
            out.append(TraitRef(key=key, where=where, context=context or {}))
        else:
            raise SpecError(where, "must be a trait name or an {id, context} table")
    return out


def find_trait(registry: RegistryReader, key: str) -> Entry | None:
    """The trait entry under an id, else (for a key without ':') the one with that meta.name."""
    entry = registry.get(key) if ":" in key else None
    if entry is not None:
        return entry
    if ":" in key:
        return None
    named = sorted((e for e in registry.current().values()
                    if e.meta.get("type") == TRAIT_TYPE and e.meta.get("name") == key), key=lambda e: e.id)
    return named[0] if named else None


def resolve_trait(registry: RegistryReader, ref: TraitRef, now: datetime | None) -> Trait:
    entry = find_trait(registry, ref.key)
    if entry is None:
        if ref.key in _TIME_AWARE_NAMES:
            return _time_aware(ref, now)
        raise SpecError(ref.where, f"no trait {ref.key!r} (looked up as an entry id, then as a trait's meta.name)")
    if entry.meta.get("type") != TRAIT_TYPE:
        raise SpecError(ref.where, f"{entry.id} is not a trait: its meta.type is {entry.meta.get('type')!r}, "
                                   f"not {TRAIT_TYPE!r}")
    data = entry.data
    prompt, own_context = data.get("prompt") or "", data.get("context") or {}
    if not isinstance(prompt, str):
        raise SpecError(ref.where, f"trait {entry.id}: prompt must be text")
    if not isinstance(own_context, dict):
        raise SpecError(ref.where, f"trait {entry.id}: context must be a table of named values")
    funcs = {}
    for key in ("build_func_id", "prompt_func_id", "step_func_id"):
        value = data.get(key)
        if value is not None and (not isinstance(value, str) or ":" not in value):
            raise SpecError(ref.where, f"trait {entry.id}: {key} must be a function id ('namespace:name')")
        funcs[key] = value
    try:
        tools = parse_tool_refs(data.get("tools"), f"{ref.where} (trait {entry.id}) tools", trait=entry.id)
    except SpecError as exc:
        raise SpecError(ref.where, f"{exc.field}: {exc.message}") from exc
    return Trait(id=entry.id, name=str(entry.meta.get("name") or ""), prompt=prompt, tools=tuple(tools),
                 context={**own_context, **ref.context}, **funcs)


def _time_aware(ref: TraitRef, now: datetime | None) -> Trait:
    context = {"time_interval": 15, "timezone": "UTC", **ref.context}
    return Trait(id=TIME_AWARE_ID, name="Time Aware", prompt=time_aware_prompt(context, now, ref.where),
                 tools=(), context=context)


def time_aware_prompt(context: Mapping[str, Any], now: datetime | None, field: str = "traits") -> str:
    """Wippy's time_aware text: the time now, rounded down to ``time_interval`` minutes (so the
    prompt, and a provider's prompt cache, stay the same within the interval)."""
    zone_name, interval = context.get("timezone") or "UTC", context.get("time_interval") or 15
    if not isinstance(interval, int | float) or isinstance(interval, bool) or interval <= 0:
        raise SpecError(f"{field}.context.time_interval", "must be a positive number of minutes")
    try:
        zone = ZoneInfo(str(zone_name))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SpecError(f"{field}.context.timezone", f"unknown time zone {zone_name!r}") from exc
    t = (now or datetime.now(UTC)).astimezone(zone)
    minute = int(t.minute // interval * interval)
    return (f"The current date and time is {_WEEKDAYS[t.weekday()]}, {_MONTHS[t.month - 1]} {t.day}, {t.year} "
            f"at {t.hour:02d}:{minute:02d} {zone_name}. Use this temporal context when relevant to your responses.")
