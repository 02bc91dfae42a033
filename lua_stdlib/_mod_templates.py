"""`templates`: Jet template sets from the registry (the Lua side: lua/templates.lua).

    templates.get(set_id) -> set | nil, err     NOT_FOUND: no such entry; INVALID: not a template.set
    set:render(name, data?) -> text | nil, err  NOT_FOUND: no such template; INTERNAL: the render failed
    set:release() -> true

A set's templates are the ``template.jet`` entries whose ``set`` is the set's id, each named by its
entry name (or ``meta.name``). The set is read from the registry at each render and rebuilt when
the registry version or the set entry (with its env placeholders resolved) changes; parsed
templates are cached by content, so an unchanged template is not parsed again. Render data is
plain data: its top-level keys become variables and the whole table is the context ``.``;
functions and other non-data values in it read as nil, binary (non-UTF-8) strings are refused
(INVALID). Permission: ``template.get`` on the set id (the action Wippy checks and its framework's
policies grant).
"""

from __future__ import annotations

from typing import Any

from wippy.core import TEMPLATE_JET_KIND as TEMPLATE_KIND
from wippy.core import TEMPLATE_SET_KIND as SET_KIND
from wippy.core import DefinitionError, Entry, NotFoundError, WippyError, template_name
from wippy.core import template_engine_spec as engine_spec

from ._binary import guard
from ._host import LuaHost, register_module
from ._jet_set import JetSet
from ._jet_values import JetLimitError, JetRenderError, TemplateNotFound
from ._vm import _source


def plain_data(value: Any) -> Any:
    """Render data as Jet sees it: containers, strings, numbers, booleans; anything else is nil."""
    if isinstance(value, dict):
        return {k: plain_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_data(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return None


class _Sets:
    """The template sets one host renders with, rebuilt when the registry or the set changes."""

    def __init__(self, host: LuaHost) -> None:
        self.host = host
        self.cache: dict[str, tuple[tuple[int, str], JetSet]] = {}

    def entry(self, set_id: str) -> Entry:
        entry = self.host.ctx.registry.get(set_id)
        if entry is None:
            raise NotFoundError(f"template set {set_id} does not exist")
        if entry.kind != SET_KIND:
            raise DefinitionError(f"{set_id} is a {entry.kind}, not a {SET_KIND}")
        if self.host.ctx.env is not None:
            entry = self.host.ctx.env.resolve(entry)
        assert isinstance(entry, Entry)
        return entry

    def get(self, set_id: str) -> JetSet:
        entry = self.entry(set_id)
        registry = self.host.ctx.registry
        version = getattr(registry, "version", None)
        key = (version, entry.digest()) if isinstance(version, int) else None
        cached = self.cache.get(set_id)
        if key is not None and cached is not None and cached[0] == key:
            return cached[1]
        engine, problems = engine_spec(entry)
        if engine is None:
            raise problems[0]
        sources = {
            template_name(e): e.data["source"] for e in registry.current().values()
            if e.kind == TEMPLATE_KIND and e.data.get("set") == set_id and isinstance(e.data.get("source"), str)
        }
        jet = JetSet(sources, left=engine.left, right=engine.right, globals_=engine.globals,
                     extensions=engine.extensions)
        if key is not None:
            self.cache[set_id] = (key, jet)
        return jet


def _build(host: LuaHost) -> Any:
    vm = host.vm
    sets = _Sets(host)

    def exists(set_id: str) -> tuple[Any, Any]:
        try:
            sets.entry(str(set_id))
        except WippyError as exc:
            return None, vm.error(exc.kind, str(exc))
        return True, None

    def render(set_id: str, name: str, data: Any = None) -> tuple[Any, Any]:
        try:
            jet = sets.get(str(set_id))
        except WippyError as exc:
            return None, vm.error(exc.kind, str(exc))
        try:
            values = plain_data(vm.from_lua(data)) if data is not None else {}
        except WippyError as exc:  # a table nested too deeply (or holding itself)
            return None, vm.error("INVALID", f"set:render: data: {exc}")
        try:
            return jet.render(str(name), values), None
        except TemplateNotFound as exc:
            return None, vm.error("NOT_FOUND", f"{exc} (set {set_id})")
        except (JetRenderError, JetLimitError) as exc:
            return None, vm.error("INTERNAL", f"failed to render template: {exc}")

    bridge = vm.rt.table_from({"exists": guard(host, exists, "templates.get"),
                               "render": guard(host, render, "set:render")})
    return vm.rt.execute(_source("templates.lua"), bridge, vm.errors, host.security)


register_module("templates", _build)
