"""Tools for agents: ``function.lua`` entries with ``meta.type: tool`` turned into what a model sees.

A tool reference in an agent (or trait) is a registry id, ``"ns:*"`` (every tool in that
namespace), or ``{id, alias, description, context, schema}``. Each resolves to a ``ToolSpec``:
the name the model calls (alias, else ``meta.llm_alias``, else the entry name in snake_case), the
description (``meta.llm_description``, ``meta.description``, ``meta.comment``), the JSON Schema of
its arguments (``meta.input_schema`` as a table or JSON text) and the registry id ``funcs.call``
runs. Naming and the empty-schema placeholder follow Wippy's tool resolver, so prompts reach the
model as they do on Wippy.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from wippy.core import Entry

#: what a provider accepts as a tool name (OpenAI's rule, the strictest of the three)
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

#: Wippy sends this property when a tool declares no arguments (some providers refuse none)
_PLACEHOLDER = {"placeholder": {"type": "object", "description": "Empty placeholder parameter", "default": {}}}

#: meta fields that say what the tool is, not how it behaves: not passed on in ``ToolSpec.meta``
_DESCRIPTIVE_META = frozenset({
    "input_schema", "llm_description", "llm_descirtion", "llm_alias", "title", "description", "comment", "type",
    "name",
})


class RegistryReader(Protocol):
    """What agent compilation reads: one entry, and all current entries (for names and ``ns:*``)."""

    def get(self, entry_id: str) -> Entry | None: ...
    def current(self) -> Mapping[str, Entry]: ...


class SpecError(Exception):
    """A field of a definition is wrong. ``field`` is its path inside the agent ("tools[2]")."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolSpec:
    """One tool as the runner offers it: to the model (name, description, schema) and to
    ``funcs.call`` (registry id, context). Delegates are tools with an ``agent_id`` instead."""

    name: str
    description: str
    schema: Mapping[str, Any]
    registry_id: str | None = None
    agent_id: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "description": self.description, "schema": dict(self.schema),
            "context": dict(self.context), "meta": dict(self.meta),
        }
        if self.registry_id is not None:
            out["registry_id"] = self.registry_id
        if self.agent_id is not None:
            out["agent_id"] = self.agent_id
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolRef:
    """A reference to one tool as written, with where it came from (for errors and contexts)."""

    id: str
    where: str
    alias: str | None = None
    description: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    schema: Mapping[str, Any] | None = None
    trait: str | None = None


def sanitize_name(name: str) -> str:
    """Wippy's tool name from an entry name: non-alphanumerics become ``_``, camelCase becomes
    snake_case, runs of ``_`` collapse and one leading ``_`` goes."""
    out = re.sub(r"[^A-Za-z0-9]", "_", name)
    out = re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), out)
    out = re.sub(r"__+", "_", out)
    return out[1:] if out.startswith("_") else out


def parse_tool_refs(raw: object, field: str, *, trait: str | None = None) -> list[ToolRef]:
    """The tool references of a ``tools:`` list (``field`` names the list in errors)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise SpecError(field, "must be a list of tool ids or {id, alias, context} tables")
    return [_parse_ref(item, f"{field}[{i}]", trait) for i, item in enumerate(raw, 1)]


def _parse_ref(item: object, field: str, trait: str | None) -> ToolRef:
    if isinstance(item, str):
        return ToolRef(id=_tool_id(item, field), where=field, trait=trait)
    if not isinstance(item, dict):
        raise SpecError(field, f"must be a tool id or an {{id, alias, context}} table, not {_describe(item)}")
    alias, description = item.get("alias"), item.get("description")
    context, schema = item.get("context"), item.get("schema")
    if alias is not None and not isinstance(alias, str):
        raise SpecError(f"{field}.alias", "must be a string")
    if description is not None and not isinstance(description, str):
        raise SpecError(f"{field}.description", "must be a string")
    if context is not None and not isinstance(context, dict):
        raise SpecError(f"{field}.context", "must be a table of named values")
    if schema is not None and not isinstance(schema, dict):
        raise SpecError(f"{field}.schema", "must be a JSON Schema table")
    return ToolRef(id=_tool_id(item.get("id"), f"{field}.id"), where=field, alias=alias, description=description,
                   context=context or {}, schema=schema, trait=trait)


def _tool_id(value: object, field: str) -> str:
    if not isinstance(value, str) or value.count(":") != 1 or value.startswith(":") or value.endswith(":"):
        raise SpecError(field, f"{_describe(value)} is not a tool id ('namespace:name' or 'namespace:*')")
    return value


def _describe(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "nothing"
    return {dict: "a table", list: "a list", bool: "a boolean"}.get(type(value), type(value).__name__)


def is_tool(entry: Entry) -> bool:
    return entry.kind.startswith("function.") and entry.meta.get("type") == "tool"


def expand(registry: RegistryReader, refs: Iterable[ToolRef]) -> list[ToolRef]:
    """``ns:*`` references replaced by one reference per tool of that namespace, by tool name;
    the wildcard's alias is dropped (it cannot name several tools), its context kept."""
    out: list[ToolRef] = []
    for ref in refs:
        if not ref.id.endswith(":*"):
            out.append(ref)
            continue
        ns = ref.id[:-2]
        found = sorted((e for e in registry.current().values() if e.ns == ns and is_tool(e)),
                       key=lambda e: (tool_name(e), e.id))
        taken: set[str] = set()
        for entry in found:
            name = tool_name(entry)
            if name in taken:  # Wippy keeps the first of two tools with one name
                continue
            taken.add(name)
            out.append(ToolRef(id=entry.id, where=ref.where, description=ref.description, context=ref.context,
                               trait=ref.trait))
    return out


def tool_name(entry: Entry) -> str:
    alias = entry.meta.get("llm_alias")
    if isinstance(alias, str) and alias:
        return alias
    return sanitize_name(entry.name)


def resolve(registry: RegistryReader, ref: ToolRef, context: Mapping[str, Any]) -> ToolSpec:
    """The tool a reference names, with ``context`` (already merged for it)."""
    entry = registry.get(ref.id)
    if entry is None:
        raise SpecError(ref.where, f"tool {ref.id} does not exist")
    if not entry.kind.startswith("function."):
        raise SpecError(ref.where, f"{ref.id} is a {entry.kind}, not a function entry (tools are function.lua)")
    if entry.meta.get("type") != "tool":
        raise SpecError(ref.where, f"{ref.id} is not a tool: its meta.type is {entry.meta.get('type')!r}, not 'tool'")
    name = ref.alias or tool_name(entry)
    if not _TOOL_NAME.fullmatch(name):
        where = f"{ref.where}.alias" if ref.alias else ref.where
        raise SpecError(where, f"tool name {name!r} ({ref.id}) must be 1-64 letters, digits, '_' or '-'")
    schema = dict(ref.schema) if ref.schema is not None else input_schema(entry, ref.where)
    return ToolSpec(name=name, description=ref.description or _description(entry), schema=schema,
                    registry_id=entry.id, context=context,
                    meta={k: v for k, v in entry.meta.items() if k not in _DESCRIPTIVE_META})


def input_schema(entry: Entry, field: str) -> dict[str, Any]:
    """The tool's ``meta.input_schema`` as a table (decoded when written as JSON text)."""
    raw = entry.meta.get("input_schema")
    if raw is None:
        return {"type": "object", "properties": dict(_PLACEHOLDER)}
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise SpecError(field, f"tool {entry.id}: meta.input_schema is not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise SpecError(field, f"tool {entry.id}: meta.input_schema must be a JSON Schema object")
    schema = dict(raw)
    props = schema.get("properties")
    if props is not None and not isinstance(props, dict):
        raise SpecError(field, f"tool {entry.id}: meta.input_schema.properties must be an object")
    if not props:
        schema["properties"] = dict(_PLACEHOLDER)
    return schema


def _description(entry: Entry) -> str:
    for key in ("llm_description", "description", "llm_descirtion", "comment"):
        value = entry.meta.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def check_name(name: str, field: str) -> None:
    if not _TOOL_NAME.fullmatch(name):
        raise SpecError(field, f"tool name {name!r} must be 1-64 letters, digits, '_' or '-'")
