"""A Jet template set: templates by name, how names resolve, and rendering one of them.

Names resolve as in Jet: relative to the naming template (``include "x"`` from ``pages/a`` finds
``pages/x``), ``/x`` from the top, ``./`` and ``../`` allowed, each tried with the set's name
extensions (``""``, ``.jet``, ``.html.jet``, ``.jet.html`` unless configured). A name written with
one of those extensions also finds a template registered without it, so ``extends "layout.jet"``
finds the entry named ``layout``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from wippy.core import JetSyntaxError
from wippy.core import parse_jet_template as parse_template
from wippy.core.jet import Block, Ref, Template

from ._jet_render import Runtime
from ._jet_values import JetLimitError, JetRenderError, TemplateNotFound

DEFAULT_EXTENSIONS = ("", ".jet", ".html.jet", ".jet.html")


class JetSet:
    """Templates by name (source text each), parsed on first use; immutable once built."""

    def __init__(self, sources: Mapping[str, str], *, left: str = "{{", right: str = "}}",
                 globals_: Mapping[str, Any] | None = None,
                 extensions: tuple[str, ...] = DEFAULT_EXTENSIONS) -> None:
        self.sources = {name.lstrip("/"): text for name, text in sources.items()}
        self.left, self.right = left, right
        self.globals: Mapping[str, Any] = MappingProxyType(dict(globals_ or {}))
        self.extensions = extensions
        self._blocks: dict[str, Mapping[str, Block]] = {}

    def resolve(self, name: str, sibling: str) -> str | None:
        """The registered name ``name`` means when ``sibling`` names it, or None."""
        path = name.replace("\\", "/")
        if not path.startswith("/"):
            path = posixpath.join(posixpath.dirname("/" + sibling), path)
        key = posixpath.normpath(path).lstrip("/")
        for ext in self.extensions:
            if key + ext in self.sources:
                return key + ext
        for ext in self.extensions:
            if ext and key.endswith(ext) and key[:-len(ext)] in self.sources:
                return key[:-len(ext)]
        return None

    def find(self, name: str, sibling: str) -> Template | None:
        key = self.resolve(name, sibling)
        if key is None:
            return None
        try:
            return parse_template(self.sources[key], key, self.left, self.right)
        except JetSyntaxError as exc:
            raise JetRenderError(key, exc.line, exc.reason) from None

    def _required(self, ref: Ref, by: Template) -> Template:
        found = self.find(ref.name, by.name)
        if found is None:
            raise JetRenderError(by.name, ref.line, f"template {ref.name} could not be found")
        return found

    def root(self, template: Template) -> Template:
        """The top of the extends chain: the template that actually renders."""
        seen = [template.name]
        while template.extends is not None:
            template = self._required(template.extends, template)
            if template.name in seen:
                raise JetRenderError(seen[0], 1, "templates extend each other in a circle: "
                                     + " -> ".join([*seen, template.name]))
            seen.append(template.name)
        return template

    def blocks(self, template: Template, _path: tuple[str, ...] = ()) -> Mapping[str, Block]:
        """The blocks a template sees: its parent's, its imports', then its own (which win)."""
        found = self._blocks.get(template.name)
        if found is not None:
            return found
        if template.name in _path:
            raise JetRenderError(_path[0], 1, "templates extend or import each other in a circle: "
                                 + " -> ".join([*_path, template.name]))
        path = (*_path, template.name)
        merged: dict[str, Block] = {}
        for ref in ([template.extends] if template.extends is not None else []) + list(template.imports):
            merged.update(self.blocks(self._required(ref, template), path))
        merged.update(template.blocks)
        self._blocks[template.name] = result = MappingProxyType(merged)
        return result

    def render(self, name: str, data: Any) -> str:
        """Render the template ``name`` with ``data`` (its top-level keys are variables, and it is
        the context ``.``). Raises TemplateNotFound, JetRenderError or JetLimitError."""
        template = self.find(name, "")
        if template is None:
            raise TemplateNotFound(f"template not found: {name}")
        try:
            return Runtime(self).render(template, data)
        except RecursionError:
            raise JetLimitError(f"template {name!r}: nested too deeply to render") from None
