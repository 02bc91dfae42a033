"""Jet templates: evaluating expressions (names, fields, indexes, calls, operators, ``isset``).

``Evaluator`` holds what expressions read: the scopes of variables, the context ``.`` and the set's
globals; ``Runtime`` (in _jet_render) adds the statements. A name is looked up in the scopes
(innermost first), then the set's globals, then the built-in functions. ``x.a`` on a map whose last
key is missing is nil, as in Jet, while ``.a`` on the context and a missing middle key are errors.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Protocol

from wippy.core.jet import (
    Binary,
    Block,
    Call,
    Chain,
    Expr,
    Field,
    Ident,
    Index,
    Lit,
    Logic,
    Not,
    Slice,
    Template,
    Ternary,
    Unary,
    Underscore,
)

from ._jet_builtins import BUILTINS, Builtin, CaughtError
from ._jet_values import (
    JetRenderError,
    JetValueError,
    arithmetic,
    compare,
    equal,
    is_number,
    sprint,
    to_int,
    truthy,
    type_name,
)

NOPIPE: Any = object()  # no value is piped into this call
_MISSING: Any = object()


class TemplateSource(Protocol):
    """What the renderer needs from a template set (``JetSet``)."""

    globals: Mapping[str, Any]

    def find(self, name: str, sibling: str) -> Template | None: ...
    def root(self, template: Template) -> Template: ...
    def blocks(self, template: Template) -> Mapping[str, Block]: ...


class Scope:
    """Variables of one scope, the blocks visible from it, and the scope around it."""

    __slots__ = ("blocks", "parent", "vars")

    def __init__(self, parent: Scope | None, blocks: Mapping[str, Block], variables: dict[str, Any]) -> None:
        self.parent, self.blocks, self.vars = parent, blocks, variables


def describe(e: Expr) -> str:
    if isinstance(e, Ident):
        return e.name
    if isinstance(e, Field):
        return "." + ".".join(e.names)
    if isinstance(e, Chain):
        return describe(e.base) + "." + ".".join(e.names)
    return "expression"


class Evaluator:
    """The state expressions read: variables, the context, the template set."""

    def __init__(self, templates: TemplateSource) -> None:
        self.set = templates
        self.scope = Scope(None, {}, {})
        self.context: Any = None
        #: a copy per render: ``{{ g.k = 1 }}`` must not change the set (or the registry entry)
        self.globals = copy.deepcopy(dict(templates.globals))

    def resolve(self, name: str) -> Any:
        if name == ".":
            return self.context
        scope: Scope | None = self.scope
        while scope is not None:
            if name in scope.vars:
                return scope.vars[name]
            scope = scope.parent
        if name in self.globals:
            return self.globals[name]
        found = BUILTINS.get(name)
        if found is None:
            raise JetValueError(f"identifier {name!r} not available in current (render or parent) scope, global, "
                                "or default variables")
        return found

    @staticmethod
    def field(base: Any, name: str) -> Any:
        """``base.name``; a key missing from a map gives _MISSING."""
        if isinstance(base, dict):
            return base.get(name, _MISSING)
        if isinstance(base, CaughtError) and (method := base.field(name)) is not None:
            return method
        if base is None:
            raise JetValueError(f"there is no field or method {name!r} in nil")
        raise JetValueError(f"there is no field or method {name!r} in a {type_name(base)}")

    def eval(self, e: Expr) -> Any:
        if isinstance(e, Ident):
            return self.resolve(e.name)
        if isinstance(e, Lit):
            return e.value
        if isinstance(e, Chain | Field):
            value = self.eval(e.base) if isinstance(e, Chain) else self.context
            for i, name in enumerate(e.names):
                found = self.field(value, name)
                if found is _MISSING:
                    if isinstance(e, Chain) and i == len(e.names) - 1:
                        return None  # Jet: a map's missing last key is nil
                    raise JetValueError(f"there is no field or method {name!r} in a map ({describe(e)})")
                value = found
            return value
        if isinstance(e, Index):
            return self.index(self.eval(e.base), self.eval(e.index))
        if isinstance(e, Call):
            return self.call(self.eval(e.func), e.args, NOPIPE)
        if isinstance(e, Binary):
            left, right = self.eval(e.left), self.eval(e.right)
            if e.op == "==":
                return equal(left, right)
            if e.op == "!=":
                return not equal(left, right)
            if e.op in ("<", "<=", ">", ">="):
                return compare(e.op, left, right)
            return arithmetic(e.op, left, right)
        if isinstance(e, Logic):
            left_true = truthy(self.eval(e.left))
            if e.op == "&&":
                return left_true and truthy(self.eval(e.right))
            return left_true or truthy(self.eval(e.right))
        if isinstance(e, Not):
            return not truthy(self.eval(e.operand))
        if isinstance(e, Ternary):
            return self.eval(e.yes) if truthy(self.eval(e.cond)) else self.eval(e.no)
        if isinstance(e, Unary):
            value = self.eval(e.operand)
            if not is_number(value):
                raise JetValueError(f"unary {e.op} needs a number, not a {type_name(value)}")
            return -value if e.op == "-" else value
        if isinstance(e, Slice):
            return self.slice(e)
        raise JetValueError("_ can only stand for the piped value in a call")

    @staticmethod
    def index(base: Any, key: Any) -> Any:
        if isinstance(base, dict):
            if not isinstance(key, str):
                raise JetValueError(f"can't use {sprint(key)} ({type_name(key)}) as a key of a map")
            return base.get(key)
        if isinstance(base, list | str):
            if not is_number(key):
                raise JetValueError(f"cannot index slice/array/string with type {type_name(key)}")
            i = to_int(key)
            items: list[Any] | bytes = base if isinstance(base, list) else base.encode("utf-8")
            if not 0 <= i < len(items):
                raise JetValueError(f"index out of range: {i}")
            return items[i]
        raise JetValueError(f"can't index a {type_name(base)}")

    def slice(self, e: Slice) -> Any:
        base = self.eval(e.base)
        if not isinstance(base, list | str):
            raise JetValueError(f"can't slice a {type_name(base)}")
        items: list[Any] | bytes = base if isinstance(base, list) else base.encode("utf-8")
        bounds = []
        for bound, default in ((e.start, 0), (e.end, len(items))):
            value = default if bound is None else self.eval(bound)
            if not is_number(value):
                raise JetValueError(f"non numeric value in index expression ({type_name(value)})")
            bounds.append(to_int(value))
        start, end = bounds
        if start < 0 or end < start or end > len(items):
            raise JetValueError(f"slice bounds out of range [{start}:{end}] with length {len(items)}")
        part = items[start:end]
        return part.decode("utf-8", errors="replace") if isinstance(part, bytes) else part

    def call(self, fn: Any, args: tuple[Expr, ...], piped: Any) -> Any:
        if not isinstance(fn, Builtin):
            raise JetValueError(f"a {type_name(fn)} is not a function")
        if fn.mode == "writer":
            raise JetValueError(f"{fn.name} writes to the output: use it as the last command of an action")
        if fn.mode == "nodes":
            return fn.fn(self, args, piped)
        slot = any(isinstance(a, Underscore) for a in args)
        values = [piped] if piped is not NOPIPE and not slot else []
        for a in args:
            if isinstance(a, Underscore):
                if piped is NOPIPE:
                    raise JetValueError("_ stands for a piped value, but nothing is piped into this call")
                values.append(piped)
            else:
                values.append(self.eval(a))
        return fn.fn(self, *values) if fn.mode == "runtime" else fn.fn(*values)

    def isset(self, args: tuple[Expr, ...], piped: Any) -> bool:
        if not args and piped is NOPIPE:
            raise JetValueError("isset() needs at least one argument")
        return all(piped is not NOPIPE if isinstance(a, Underscore) else self._is_set(a) for a in args)

    def _is_set(self, e: Expr) -> bool:
        try:
            if isinstance(e, Ident):
                return self.resolve(e.name) is not None
            if isinstance(e, Field):
                value = self.context
                for name in e.names:
                    value = self.field(value, name)
                    if value is _MISSING or value is None:
                        return False
                return True
            if isinstance(e, Chain | Index):
                return self.eval(e) is not None
        except (JetValueError, JetRenderError):
            return False
        return True
