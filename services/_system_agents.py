"""System agents: ``wippy.registry:agent`` and ``wippy.coder:agent``, entries the runtime provides itself.

An app opts in per agent by declaring the component in an ``ns.dependency`` entry::

    - name: dep.coder
      kind: ns.dependency
      component: wippy/coder          # or wippy/registry
      version: "*"
      parameters:
        - name: model                 # the model (name, class, or "class:<name>") the agent uses;
          value: gpt-4o               # default "class:balanced"; load_agent(id, {model = ...}) wins

Then ``agent_context.new():load_agent("wippy.coder:agent")`` (or by ``meta.name``: ``wippy.coder``)
gives a runner like any app agent's. The entries:

- ``wippy/registry``: ``wippy.registry:agent`` with the tools ``wippy.registry:list_entries``,
  ``get_entry``, ``create_entry``, ``update_entry``, ``delete_entry``, ``list_versions`` and
  ``rollback``;
- ``wippy/coder``: ``wippy.coder:agent`` with ``wippy.coder:list_code``, ``read_source``,
  ``write_source`` and ``edit_source``, which change the ``source`` of ``function.lua`` and
  ``library.lua`` entries only after it translates and compiles (``wippy.system_agents`` module).

These entries are never written to the registry: ``with_native_entries`` lays them over a registry
reader for agent compilation, and ``native_entry`` is ``funcs.call``'s fallback for an id the
registry lacks. An entry the app defines under the same id wins, as with native libraries.

The tools are Lua (``lua/system/*.lua``) running in the calling task, so the caller's security
context decides what they may do: ``funcs.call`` on the tool, then ``registry.get``,
``registry.apply`` and ``registry.apply_version`` inside it, exactly as for the app's own code.
Declaring the component is the grant that lets code with ``funcs`` reach them at all. A change
they make for an agent (the task's context has ``agent_id``, as the agent runner sets it) is a
registry version whose author is ``agent:<agent id>`` and whose message names the tool and the
task's actor; called without one, the change is by the caller as usual (``lua_stdlib/_mod_registry``).
The components are registered when this module is imported.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from wippy.core import Entry, NativeComponent, register_native_component

from ._agents_spec import AGENT_TYPE
from ._agents_tools import RegistryReader
from ._system_catalog import AGENTS, SystemAgent
from ._system_module import MODULE as SYSTEM_MODULE  # importing it registers the module

DEFAULT_MODEL = "class:balanced"

for _agent in AGENTS:
    register_native_component(NativeComponent(_agent.component, _agent.description))


@dataclass(frozen=True, slots=True)
class _Native:
    """Which component provides an id, and how to build its entry."""

    agent: SystemAgent
    tool: str | None  # the tool's name, or None for the agent entry itself


def _index() -> dict[str, _Native]:
    out: dict[str, _Native] = {}
    for agent in AGENTS:
        out[agent.id] = _Native(agent, None)
        for tool in agent.tools:
            out[f"{agent.ns}:{tool.name}"] = _Native(agent, tool.name)
    return out


_BY_ID = _index()


def native_ids() -> frozenset[str]:
    """Every id the system components provide (whether an app enabled them or not)."""
    return frozenset(_BY_ID)


def enabled_components(registry: RegistryReader) -> dict[str, Mapping[str, Any]]:
    """The system components the app declares (``ns.dependency``), with their parameters by name."""
    names = {agent.component for agent in AGENTS}
    out: dict[str, Mapping[str, Any]] = {}
    if not hasattr(registry, "current"):  # a reader of single entries (some hosts'): it declares nothing
        return out
    for entry in registry.current().values():
        if entry.kind != "ns.dependency":
            continue
        component = entry.data.get("component")
        if isinstance(component, str) and component in names:
            params = dict(out.get(component, {}))
            raw = entry.data.get("parameters")
            for item in raw if isinstance(raw, list) else []:
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    params.setdefault(str(item["name"]), item.get("value"))
            out[component] = params
    return out


def native_entry(registry: RegistryReader, entry_id: str) -> Entry | None:
    """The system entry under ``entry_id`` when the app enabled its component and does not define
    that id itself; else None."""
    found = _BY_ID.get(entry_id)
    if found is None or registry.get(entry_id) is not None:
        return None
    params = enabled_components(registry).get(found.agent.component)
    if params is None:
        return None
    return _build(found, params)


def is_native_tool(registry: RegistryReader, entry_id: str) -> bool:
    """``entry_id`` is a system tool the registry serves from the runtime (not an app override)."""
    found = _BY_ID.get(entry_id)
    return found is not None and found.tool is not None and native_entry(registry, entry_id) is not None


def agent_author(agent_id: str) -> str:
    """The author recorded for a change a system tool makes for an agent."""
    return f"agent:{agent_id}"


def _build(found: _Native, params: Mapping[str, Any]) -> Entry:
    if found.tool is None:
        model = params.get("model")
        return _agent_entry(found.agent.id, model if isinstance(model, str) and model else DEFAULT_MODEL)
    return _tool_entry(found.agent.id, found.tool)


@cache
def _agent_entry(agent_id: str, model: str) -> Entry:
    """Built once per model, so hosts and caches see the same object."""
    agent = next(a for a in AGENTS if a.id == agent_id)
    meta: dict[str, Any] = {"type": AGENT_TYPE, "name": agent.name, "title": agent.title,
                            "comment": agent.description, "component": agent.component}
    data: dict[str, Any] = {"prompt": agent.prompt, "model": model, "max_tokens": agent.max_tokens,
                            "tools": [f"{agent.ns}:{t.name}" for t in agent.tools]}
    return Entry(agent.id, "registry.entry", meta, data)


@cache
def _tool_entry(agent_id: str, name: str) -> Entry:
    agent = next(a for a in AGENTS if a.id == agent_id)
    tool = next(t for t in agent.tools if t.name == name)
    source = resources.files("wippy.lua_stdlib").joinpath("lua", "system", agent.source).read_text(encoding="utf-8")
    meta: dict[str, Any] = {"type": "tool", "llm_description": tool.description, "input_schema": tool.schema,
                            "comment": tool.description, "component": agent.component}
    data: dict[str, Any] = {"source": source, "method": tool.name, "modules": [*agent.modules, SYSTEM_MODULE]}
    return Entry(f"{agent.ns}:{name}", "function.lua", meta, data)


class NativeEntries:
    """A registry reader with the enabled system entries under the app's own (the app's win)."""

    def __init__(self, registry: RegistryReader) -> None:
        self._registry = registry
        enabled = enabled_components(registry)
        app = registry.current()
        self._native: dict[str, Entry] = {
            eid: _build(found, enabled[found.agent.component])
            for eid, found in _BY_ID.items() if found.agent.component in enabled and eid not in app
        }

    def get(self, entry_id: str) -> Entry | None:
        return self._registry.get(entry_id) or self._native.get(entry_id)

    def current(self) -> Mapping[str, Entry]:
        if not self._native:
            return self._registry.current()
        return _Overlay(self._native, self._registry.current())


class _Overlay(Mapping[str, Entry]):
    """The app's entries with the system ones added, without copying the app's."""

    def __init__(self, native: Mapping[str, Entry], app: Mapping[str, Entry]) -> None:
        self._native = native
        self._app = app

    def __getitem__(self, key: str) -> Entry:
        found = self._app.get(key)
        return found if found is not None else self._native[key]

    def __iter__(self) -> Iterator[str]:
        yield from self._app
        yield from (k for k in self._native if k not in self._app)

    def __len__(self) -> int:
        return len(self._app) + sum(1 for k in self._native if k not in self._app)


def with_native_entries(registry: RegistryReader) -> RegistryReader:
    """``registry`` with the system entries the app enabled laid under it (for agent compilation)."""
    if isinstance(registry, NativeEntries):
        return registry
    return NativeEntries(registry)
