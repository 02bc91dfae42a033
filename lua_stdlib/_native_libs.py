"""Framework libraries the runtime ships itself, as Lua source under ``lua/lib/<entry id>.lua``.

Wippy's framework features are hub components of plain Lua that an app declares with an
``ns.dependency`` and imports by entry id (``imports: {actor: wippy.actor:actor}``). This runtime
provides some of them natively: each library here is registered with its component (so the loader
accepts the dependency without a vendored copy) and served by ``native_library`` when an import
names an id the registry does not hold. A vendored or app-defined entry with the same id wins.
A component may also bring entries of its own (``components/<org.module>/``, e.g. the views HTTP
API), which the loader links into the app like a vendored module's.

A native library is an ordinary ``library.lua`` entry built from the shipped file, with its own
``modules:`` allowlist and ``imports:``; it is compiled and sandboxed like any other entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from wippy.core import Entry, NativeComponent, register_native_component


@dataclass(frozen=True, slots=True)
class _Library:
    component: str
    modules: tuple[str, ...]
    comment: str
    #: local name -> library entry id, as an entry's ``imports:`` (resolved like an app's: the
    #: registry's entry under that id first, else the runtime's native one)
    imports: tuple[tuple[str, str], ...] = ()


_COMPONENTS = (
    NativeComponent("wippy/actor", "Actor pattern library: topic handlers over the process inbox and events"),
    NativeComponent("wippy/llm", "LLM library: generate, structured output, embeddings and the prompt builder"),
    NativeComponent("wippy/agent", "Agent library: declarative agents with tools, traits, delegates and a run loop"),
    NativeComponent("wippy/embeddings", "Embeddings library: vectors in a DuckDB target_db, search by text or vector"),
    NativeComponent("wippy/views", "Views library: server-rendered Jet pages, the page, component and resource "
                                   "registries, env mappings, and their HTTP API on the app's api_router",
                    bundle=Path(str(resources.files("wippy.lua_stdlib").joinpath("components", "wippy.views")))),
)

_LIBRARIES: dict[str, _Library] = {
    "wippy.actor:actor": _Library(
        component="wippy/actor",
        modules=("time",),
        comment="Actor pattern library: handlers by message topic, events and channels, in one loop",
    ),
    "wippy.llm:llm": _Library(
        component="wippy/llm",
        modules=("llm_host", "contract", "logger"),
        comment="LLM calls by model name or class: generate, structured_output, embed, status, discovery",
    ),
    "wippy.llm:output": _Library(
        component="wippy/llm",
        modules=("llm_host", "logger"),
        comment="LLM output: stream chunks to a process (buffered), error types and kinds, structured errors",
    ),
    "wippy.llm:prompt": _Library(
        component="wippy/llm",
        modules=("json",),
        comment="Prompt builder: roles, multi-turn, function calls and results, cache markers, images",
    ),
    "wippy.agent:context": _Library(
        component="wippy/agent",
        modules=("agent_host", "funcs", "json", "contract"),
        comment="Agent context: load agents by id or name, step them, run their tool and delegation loop",
        imports=(("llm", "wippy.llm:llm"), ("prompt", "wippy.llm:prompt")),
    ),
    "wippy.embeddings:embedding_repo": _Library(
        component="wippy/embeddings",
        modules=("embeddings_host",),
        comment="Embedding repository: store vectors in the target_db, exact top-k search, by origin or entry",
    ),
    "wippy.embeddings:embeddings": _Library(
        component="wippy/embeddings",
        modules=("embeddings_host",),
        comment="Embeddings: embed texts with the configured model, store them, search by text",
    ),
    "wippy.views:renderer": _Library(
        component="wippy/views",
        modules=("templates", "funcs", "env"),
        comment="Page renderer: a template page's data function, resources and env, rendered by its Jet set",
        imports=(("page_registry", "wippy.views:page_registry"), ("resource_registry", "wippy.views:resource_registry"),
                 ("env_loader", "wippy.views:env_loader")),
    ),
    "wippy.views:page_registry": _Library(
        component="wippy/views",
        modules=("registry", "security", "env"),
        comment="View pages (meta.type view.page): list, get, base URLs, mount routes, access",
    ),
    "wippy.views:component_registry": _Library(
        component="wippy/views",
        modules=("registry", "security"),
        imports=(("page_registry", "wippy.views:page_registry"),),
        comment="View components (meta.type view.component): list, get, by tag name, base URLs, access",
    ),
    "wippy.views:resource_registry": _Library(
        component="wippy/views",
        modules=("registry",),
        comment="Page resources (meta.type view.resource): global, per template set or per page, grouped by type",
    ),
    "wippy.views:env_loader": _Library(
        component="wippy/views",
        modules=("registry", "env"),
        comment="Env mappings (meta.type view.env_mapping) merged by priority and resolved to values",
    ),
}

#: the contracts these components declare, by id: (component, comment, ((method, description), ...)).
#: Apps bind them (a usage tracker, a model or agent resolver) as with Wippy's vendored components.
_CONTRACTS: dict[str, tuple[str, str, tuple[tuple[str, str], ...]]] = {
    "wippy.llm:usage_tracker": ("wippy/llm", "Records the token usage of each LLM call", (
        ("track_usage", "Record the tokens of one call (model, prompt, completion, thinking, cache read and "
                        "write, options); returns the usage record's id"),)),
    "wippy.llm:model_resolver": ("wippy/llm", "Resolves a model name or class to a model card before the registry",
                                 (("resolve", "Resolve {model} to a model card with its providers, or nothing"),)),
    "wippy.agent:resolver": ("wippy/agent", "Resolves an agent id to an agent specification before the registry",
                             (("resolve", "Resolve {agent_id} to an agent spec, or nothing"),)),
    "wippy.views:env_contract": ("wippy/views", "Provides and resolves the env variable mappings of views", (
        ("load_mappings", "Load the env mappings ({filter?}) -> {success, mappings | error}"),
        ("resolve_env_values", "Resolve {context} (name -> env variable) -> {success, resolved | error}"))),
}

for _component in _COMPONENTS:
    register_native_component(_component)


@cache
def native_contract(entry_id: str) -> Entry | None:
    """The ``contract.definition`` entry the runtime provides under ``entry_id``, or None (an app's
    own definition with that id wins)."""
    found = _CONTRACTS.get(entry_id)
    if found is None:
        return None
    component, comment, methods = found
    return Entry(entry_id, "contract.definition", {"comment": comment, "component": component},
                 {"methods": [{"name": name, "description": text} for name, text in methods]})


@cache
def native_library(entry_id: str) -> Entry | None:
    """The ``library.lua`` entry the runtime provides under ``entry_id``, or None.

    Built once per process and returned as the same object every time, so each Lua host compiles
    it once.
    """
    lib = _LIBRARIES.get(entry_id)
    if lib is None:
        return None
    source = resources.files("wippy.lua_stdlib").joinpath("lua", "lib", f"{entry_id.replace(':', '.')}.lua")
    return Entry(
        entry_id,
        "library.lua",
        {"comment": lib.comment, "component": lib.component},
        {"source": source.read_text(encoding="utf-8"), "modules": list(lib.modules),
         **({"imports": dict(lib.imports)} if lib.imports else {})},
    )
