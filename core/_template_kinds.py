"""`template.set` and `template.jet` entries, checked when they are applied.

A ``template.set`` configures its Jet engine::

    engine:
      delimiters: {left: "[[", right: "]]"}       # default {{ }}
      extensions: ["", ".jet", ".html.jet"]       # tried after a name (Jet's defaults)
      globals: {site: "Example"}                  # variables every template sees
      development_mode: true                      # accepted; templates always follow the registry

A ``template.jet`` belongs to one set (``set``) and holds Jet source (``source``: the text; the app
loader inlines ``file://`` sources). Its name in the set is the entry's name, or ``meta.name``.

Applying a template whose source does not parse is refused, naming the entry, the template and the
line, and so is a set whose new delimiters would break its templates, and two templates of one
set with the same name. Names used by ``extends`` / ``include`` are resolved when rendering.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._entry import Entry
from ._errors import DefinitionError
from ._jet_lex import JetSyntaxError
from ._jet_parse import parse_template
from ._validate import register_changeset_check, register_kind_check

SET_KIND = "template.set"
TEMPLATE_KIND = "template.jet"
DEFAULT_EXTENSIONS = ("", ".jet", ".html.jet", ".jet.html")


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSpec:
    """A template set's engine settings."""

    left: str = "{{"
    right: str = "}}"
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    globals: Mapping[str, Any] = field(default_factory=dict)
    development_mode: bool = False


def engine_spec(entry: Entry) -> tuple[EngineSpec | None, list[DefinitionError]]:
    """The engine a template.set configures, or the problems with its fields."""
    errors: list[DefinitionError] = []

    def bad(where: str, message: str) -> None:
        errors.append(DefinitionError(message, entry=entry.id, field=where))

    engine = entry.data.get("engine")
    if engine is None:
        return EngineSpec(), []
    if not isinstance(engine, dict):
        bad("engine", "must be a mapping (delimiters, extensions, globals, development_mode)")
        return None, errors
    left, right = "{{", "}}"
    delims = engine.get("delimiters")
    if delims is not None and not isinstance(delims, dict):
        bad("engine.delimiters", "must be a mapping with left and right")
    elif delims:
        for side in ("left", "right"):
            value = delims.get(side)
            if value is not None and (not isinstance(value, str) or not value.strip() or value != value.strip()):
                bad(f"engine.delimiters.{side}", "must be a non-empty string without surrounding spaces")
        left = delims.get("left") or left
        right = delims.get("right") or right
    extensions = engine.get("extensions")
    if extensions is not None and (not isinstance(extensions, list) or not extensions
                                   or not all(isinstance(x, str) for x in extensions)):
        bad("engine.extensions", "must be a non-empty list of name suffixes (\"\" for the name as written)")
    globals_ = engine.get("globals")
    if globals_ is not None and not isinstance(globals_, dict):
        bad("engine.globals", "must be a mapping of names to values")
    mode = engine.get("development_mode")
    if mode is not None and not isinstance(mode, bool):
        bad("engine.development_mode", "must be true or false")
    if errors:
        return None, errors
    return EngineSpec(left=left, right=right, extensions=tuple(extensions or DEFAULT_EXTENSIONS),
                      globals=dict(globals_ or {}), development_mode=bool(mode)), []


def template_name(entry: Entry) -> str:
    """A template's name within its set: ``meta.name``, else the entry's name."""
    name = entry.meta.get("name")
    return name if isinstance(name, str) and name else entry.name


def _template_errors(entry: Entry) -> list[DefinitionError]:
    errors: list[DefinitionError] = []
    target = entry.data.get("set")
    if not isinstance(target, str) or not target:
        errors.append(DefinitionError("must name the template.set this template belongs to", entry=entry.id,
                                      field="set"))
    source = entry.data.get("source")
    if not isinstance(source, str):
        errors.append(DefinitionError("must be the template's Jet text (or file://path in the app's files)",
                                      entry=entry.id, field="source"))
    elif source.startswith("file://"):
        errors.append(DefinitionError(f"{source} was not read: file:// sources are read when the app's files "
                                      "are loaded; a change applied at run time must carry the text",
                                      entry=entry.id, field="source"))
    name = entry.meta.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        errors.append(DefinitionError("must be a non-empty template name", entry=entry.id, field="meta.name"))
    return errors


def _syntax_errors(template: Entry, engine: EngineSpec) -> list[DefinitionError]:
    source = template.data.get("source")
    if not isinstance(source, str):
        return []
    try:
        parse_template(source, template_name(template), engine.left, engine.right)
    except JetSyntaxError as exc:
        return [DefinitionError(f"Jet syntax error: {exc}", entry=template.id, field="source")]
    return []


def _changeset_errors(post: Callable[[str], Entry | None], referrers: Callable[[str], set[str]],
                      changed: list[Entry]) -> list[DefinitionError]:
    """Templates parse with their set's delimiters; names are unique within a set."""
    sets = {e.id for e in changed if e.kind == SET_KIND}
    sets |= {e.data["set"] for e in changed if e.kind == TEMPLATE_KIND and isinstance(e.data.get("set"), str)}
    changed_ids = {e.id for e in changed}
    errors: list[DefinitionError] = []
    for set_id in sorted(sets):
        owner = post(set_id)
        members = sorted((t for t in (post(r) for r in referrers(set_id))
                          if t is not None and t.kind == TEMPLATE_KIND and t.data.get("set") == set_id),
                         key=lambda t: t.id)
        if owner is None:
            continue  # the reference check reports it
        if owner.kind != SET_KIND:
            errors.extend(DefinitionError(f"names {set_id}, which is a {owner.kind}, not a {SET_KIND}",
                                          entry=t.id, field="set") for t in members if t.id in changed_ids)
            continue
        engine, _problems = engine_spec(owner)
        if engine is None:
            continue  # the set's own check reports it
        by_name: dict[str, list[Entry]] = {}
        for member in members:
            if member.id in changed_ids or set_id in changed_ids:
                errors.extend(_syntax_errors(member, engine))
            by_name.setdefault(template_name(member), []).append(member)
        for name, group in by_name.items():
            for member in [m for m in group if m.id in changed_ids] or group[1:] if len(group) > 1 else ():
                others = ", ".join(o.id for o in group if o is not member)
                errors.append(DefinitionError(f"template name {name!r} is also used by {others} in {set_id}",
                                              entry=member.id, field="meta.name"))
    return errors


register_kind_check([SET_KIND], lambda entry: engine_spec(entry)[1])
register_kind_check([TEMPLATE_KIND], _template_errors)
register_changeset_check(_changeset_errors)
