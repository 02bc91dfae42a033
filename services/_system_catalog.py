"""What the system agents are: their ids, prompts, and tools with descriptions and JSON Schemas.

Plain data read by ``_system_agents``, which turns it into registry entries. Each agent's tools
share one Lua source (``lua/system/<source>``) and differ by ``method``; a tool's entry name is
its method name and the name the model calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemTool:
    name: str
    description: str
    schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemAgent:
    #: the ``ns.dependency`` component that enables it
    component: str
    #: the namespace of the agent and its tools; the agent is ``<ns>:agent``
    ns: str
    name: str
    title: str
    description: str
    prompt: str
    source: str
    #: the modules its tools require (the ``wippy.system_agents`` module is added to these)
    modules: tuple[str, ...]
    tools: tuple[SystemTool, ...]
    max_tokens: int = 4096

    @property
    def id(self) -> str:
        return f"{self.ns}:agent"


def _obj(required: tuple[str, ...] = (), **props: Mapping[str, Any]) -> Mapping[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": dict(props), "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


_ID = {"type": "string", "pattern": "^[^:]+:[^:]+$", "description": "The entry id, 'namespace:name'"}
_TABLE = {"type": "object"}

REGISTRY_TOOLS = (
    SystemTool(
        name="list_entries",
        description="List registry entries (id, kind, meta.type, comment), optionally filtered. "
                    "namespace and kind accept * and ? wildcards.",
        schema=_obj(
            namespace={"type": "string", "description": "Namespace or pattern, e.g. 'app' or 'app.*'"},
            kind={"type": "string", "description": "Entry kind or pattern, e.g. 'function.lua'"},
            type={"type": "string", "description": "Only entries whose meta.type equals this"},
            limit={"type": "integer", "minimum": 1, "maximum": 1000, "description": "At most this many (100)"},
        ),
    ),
    SystemTool(
        name="get_entry",
        description="Read one registry entry in full: id, kind, meta and data.",
        schema=_obj(("id",), id=_ID),
    ),
    SystemTool(
        name="create_entry",
        description="Create a registry entry. Fails if the id exists. Returns the new registry version.",
        schema=_obj(("id", "kind"), id=_ID,
                    kind={"type": "string", "description": "The entry kind, e.g. 'registry.entry', 'function.lua'"},
                    meta={**_TABLE, "description": "The entry's meta fields"},
                    data={**_TABLE, "description": "The entry's other fields (source, method, ...)"}),
    ),
    SystemTool(
        name="update_entry",
        description="Change a registry entry. meta and data are merged into the entry's key by key unless "
                    "replace is true, when they replace it. Returns the new registry version.",
        schema=_obj(("id",), id=_ID,
                    kind={"type": "string", "description": "A new kind (optional)"},
                    meta={**_TABLE, "description": "Meta fields to set"},
                    data={**_TABLE, "description": "Data fields to set"},
                    replace={"type": "boolean", "description": "Replace meta and data instead of merging"}),
    ),
    SystemTool(
        name="delete_entry",
        description="Delete a registry entry. Returns the new registry version.",
        schema=_obj(("id",), id=_ID),
    ),
    SystemTool(
        name="list_versions",
        description="The latest registry versions, newest first: version, time, author, message, ops.",
        schema=_obj(limit={"type": "integer", "minimum": 1, "maximum": 500, "description": "How many (20)"}),
    ),
    SystemTool(
        name="rollback",
        description="Make the registry as it was at an earlier version (recorded as a new version).",
        schema=_obj(("version",), version={"type": "integer", "minimum": 0, "description": "The version to restore"}),
    ),
)

CODER_TOOLS = (
    SystemTool(
        name="list_code",
        description="List the function.lua and library.lua entries whose source can be edited.",
        schema=_obj(namespace={"type": "string", "description": "Namespace or pattern, e.g. 'app' or 'app.*'"}),
    ),
    SystemTool(
        name="read_source",
        description="Read the Lua source of a function.lua or library.lua entry, with its method, modules "
                    "and imports.",
        schema=_obj(("id",), id=_ID),
    ),
    SystemTool(
        name="write_source",
        description="Replace the whole Lua source of a function.lua or library.lua entry. The source must "
                    "compile; otherwise nothing changes and the error says where. Returns the new version.",
        schema=_obj(("id", "source"), id=_ID, source={"type": "string", "description": "The complete new source"}),
    ),
    SystemTool(
        name="edit_source",
        description="Replace one exact passage of an entry's Lua source (old_text must occur exactly once). "
                    "The result must compile; otherwise nothing changes. Returns the new version.",
        schema=_obj(("id", "old_text", "new_text"), id=_ID,
                    old_text={"type": "string", "minLength": 1, "description": "The text to replace, verbatim"},
                    new_text={"type": "string", "description": "What replaces it"}),
    ),
)

AGENTS = (
    SystemAgent(
        component="wippy/registry",
        ns="wippy.registry",
        name="wippy.registry",
        title="Registry agent",
        description="Reads and changes the app's registry entries, lists versions and rolls back",
        prompt=(
            "You manage the registry of a running Wippy application: the entries (id 'namespace:name', kind, "
            "meta, data) that make up the app. Use the tools to look before you change anything: list_entries "
            "and get_entry to read, create_entry, update_entry and delete_entry to change, list_versions and "
            "rollback to undo. Every change becomes a new registry version. Make only the changes asked for, "
            "and say which entries you changed and the version each change produced."
        ),
        source="registry_tools.lua",
        modules=("registry",),
        tools=REGISTRY_TOOLS,
    ),
    SystemAgent(
        component="wippy/coder",
        ns="wippy.coder",
        name="wippy.coder",
        title="Coder agent",
        description="Reads and edits the Lua source of the app's function.lua and library.lua entries",
        prompt=(
            "You edit the Lua code of a running Wippy application. Its code lives in registry entries of kind "
            "function.lua and library.lua. Read an entry's source with read_source before changing it; prefer "
            "edit_source for small changes and write_source to rewrite a whole file. The code is Lua 5.3 with "
            "optional Luau-style type annotations; modules come from require() of names listed in the entry's "
            "modules. A change that does not compile is refused with the error: fix it and try again. Each "
            "change becomes a new registry version; say which entries you changed."
        ),
        source="coder_tools.lua",
        modules=("registry",),
        tools=CODER_TOOLS,
    ),
)
