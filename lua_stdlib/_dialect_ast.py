"""The type syntax tree of Wippy annotations, and the Lua code a ``type`` declaration becomes.

:func:`emit` turns a tree into calls on the runtime type library (``lua/types.lua``) through
two chunk locals: ``__wt`` (the library) and ``__ws`` (the chunk's scope of named types).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._dialect_lex import DialectSyntax


@dataclass(frozen=True, slots=True)
class Prim:
    name: str


@dataclass(frozen=True, slots=True)
class Lit:
    text: str  # a Lua literal: a string token, ``true`` or ``false``


@dataclass(frozen=True, slots=True)
class Ref:
    name: str  # possibly dotted: ``time.Time``


@dataclass(frozen=True, slots=True)
class Opt:
    inner: TypeNode


@dataclass(frozen=True, slots=True)
class Union:
    parts: tuple[TypeNode, ...]


@dataclass(frozen=True, slots=True)
class Inter:
    parts: tuple[TypeNode, ...]


@dataclass(frozen=True, slots=True)
class Array:
    elem: TypeNode


@dataclass(frozen=True, slots=True)
class Map:
    key: TypeNode
    value: TypeNode


@dataclass(frozen=True, slots=True)
class Field:
    key: str  # a Lua string literal
    type: TypeNode
    optional: bool


@dataclass(frozen=True, slots=True)
class Record:
    fields: tuple[Field, ...]
    indexer: tuple[TypeNode, TypeNode] | None


@dataclass(frozen=True, slots=True)
class Func:
    pass


@dataclass(frozen=True, slots=True)
class Tuple:
    items: tuple[TypeNode, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Variadic:
    inner: TypeNode
    pos: int


@dataclass(frozen=True, slots=True)
class Checked:
    inner: TypeNode
    rules: tuple[tuple[str, tuple[str, ...]], ...]


TypeNode = Prim | Lit | Ref | Opt | Union | Inter | Array | Map | Record | Func | Tuple | Variadic | Checked


# -- emission -------------------------------------------------------------------------------------
LIB = "__wt"  # the chunk's local alias of the runtime type library
SCOPE = "__ws"  # the chunk's type scope (named types, looked up lazily)
_KEYWORD_PRIMS = frozenset({"nil", "function"})


_LONG_BRACKET = re.compile(r"\[(=*)\[(.*)\]\1\]\Z", re.DOTALL)
_SPLICE = re.compile(r"\\z\s*|\\(\r\n|\n\r|\n|\r)")


def one_line(literal: str) -> str:
    """A Lua string literal rewritten without line breaks (generated code must keep lines)."""
    if "\n" not in literal and "\r" not in literal:
        return literal
    m = _LONG_BRACKET.match(literal)
    if m is None:  # a short string continued with ``\<newline>`` or ``\z``
        return _SPLICE.sub(lambda s: "\\n" if s.group(1) else "", literal)
    body = m.group(2)
    if body.startswith(("\r\n", "\n\r")):
        body = body[2:]
    elif body.startswith(("\n", "\r")):
        body = body[1:]
    escaped = "".join(_ESCAPES.get(c, c) for c in body)
    return f'"{escaped}"'


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"}


def emit(t: TypeNode, names: frozenset[str], params: frozenset[str]) -> str:
    """Lua code building the runtime type value of ``t``.

    ``names`` are the type names declared anywhere in the chunk (referenced lazily through the
    scope, so forward and recursive references work); ``params`` are the declaration's generic
    parameters, which the runtime treats as ``any``.
    """
    match t:
        case Prim(name):
            return f'{LIB}["{name}"]' if name in _KEYWORD_PRIMS else f"{LIB}.{name}"
        case Lit(text):
            return f"{LIB}.lit({one_line(text)})"
        case Ref(name):
            if name in params:
                return f"{LIB}.any"
            if name in names:
                return f'{SCOPE}:ref("{name}")'
            return f'{LIB}.ext(function() return {name} end, "{name}")'
        case Opt(inner):
            return f"{LIB}.opt({emit(inner, names, params)})"
        case Union(parts):
            return f"{LIB}.union({{{', '.join(emit(p, names, params) for p in parts)}}})"
        case Inter(parts):
            return f"{LIB}.inter({{{', '.join(emit(p, names, params) for p in parts)}}})"
        case Array(elem):
            return f"{LIB}.array({emit(elem, names, params)})"
        case Map(key, value):
            return f"{LIB}.map({emit(key, names, params)}, {emit(value, names, params)})"
        case Record(fields, indexer):
            specs = ", ".join(
                f"{{{f.key}, {emit(f.type, names, params)}{', true' if f.optional else ''}}}" for f in fields
            )
            if indexer is None:
                return f"{LIB}.record({{{specs}}})"
            k, v = (emit(x, names, params) for x in indexer)
            return f"{LIB}.record({{{specs}}}, {k}, {v})"
        case Func():
            return f'{LIB}["function"]'
        case Checked(inner, rules):
            specs = ", ".join("{" + ", ".join([f'"{name}"', *map(one_line, args)]) + "}" for name, args in rules)
            return f"{LIB}.check({emit(inner, names, params)}, {{{specs}}})"
        case Tuple(_, pos):
            raise DialectSyntax(pos, "a list of types is only allowed as a function's return type")
        case Variadic(_, pos):
            raise DialectSyntax(pos, "'...' is only allowed in function types")
