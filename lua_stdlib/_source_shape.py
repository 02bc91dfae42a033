"""What Lua code visibly does, from its tokens alone (never by running it): the modules it
``require``s by a literal name and what its chunk returns (a table and the keys it visibly gets,
or a function). ``wippy lint`` uses it to check ``modules:``/``imports:`` and ``method:``.

The code is what the dialect translator gives (plain Lua 5.4); a text the lexer refuses answers
nothing (lint reports syntax errors from the compiler, not from here).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from ._dialect_lex import EOF, KEYWORD, NAME, DialectSyntax, Token, tokenize


@dataclass(frozen=True, slots=True)
class SourceShape:
    """What a chunk's top-level ``return`` returns."""

    kind: Literal["table", "function"]
    line: int  #: where the returned expression (or the local it names) is
    keys: frozenset[str] | None  #: names the table visibly defines (None: cannot tell)


def required_names(code: str) -> list[tuple[int, str]]:
    """(line, name) of each ``require("name")`` / ``require "name"`` with a literal name."""
    tokens = _tokens(code)
    return [] if tokens is None else [(_line_of(code, tok.start), name) for tok, name in _requires(tokens)]


def returned_shape(code: str) -> SourceShape | None:
    """What the chunk's top-level ``return`` returns, when that is plain from the text."""
    tokens = _tokens(code)
    found = None if tokens is None else _returned(tokens)
    if found is None:
        return None
    return SourceShape(found.kind, _line_of(code, found.start), found.keys)


def _tokens(code: str) -> list[Token] | None:
    try:
        return tokenize(code)
    except DialectSyntax:
        return None


def _line_of(code: str, offset: int) -> int:
    return code.count("\n", 0, offset) + 1


_OPENERS = frozenset({"function", "if", "while", "for", "do", "repeat"})


def _depths(tokens: list[Token]) -> Iterator[tuple[int, Token]]:
    """Each token with the block depth it sits at (0: the chunk's top level)."""
    stack: list[bool] = []  # per open block: waiting for the `do` of its while/for header
    for tok in tokens:
        if tok.kind == KEYWORD and tok.text == "do" and stack and stack[-1]:
            stack[-1] = False
            yield len(stack) - 1, tok
            continue
        if tok.kind == KEYWORD and tok.text in ("end", "until") and stack:
            stack.pop()
            yield len(stack), tok
            continue
        yield len(stack), tok
        if tok.kind == KEYWORD and tok.text in _OPENERS:
            stack.append(tok.text in ("while", "for"))


def _requires(tokens: list[Token]) -> Iterator[tuple[Token, str]]:
    """``require("name")`` / ``require "name"`` calls with a literal name."""
    for i, tok in enumerate(tokens[:-1]):
        if tok.kind != NAME or tok.text != "require" or (i and tokens[i - 1].text in (".", ":")):
            continue
        nxt = tokens[i + 1]
        arg = tokens[i + 2] if nxt.text == "(" and i + 2 < len(tokens) else nxt
        if arg.kind == "str":
            name = _string_value(arg.text)
            if name is not None:
                yield tok, name


def _string_value(text: str) -> str | None:
    """A short literal without escapes (what module names are); None for anything else."""
    if len(text) >= 2 and text[0] in "'\"" and text[-1] == text[0] and "\\" not in text:
        return text[1:-1]
    return None


@dataclass(frozen=True, slots=True)
class _Shape:
    kind: Literal["table", "function"]
    start: int  #: offset of the returned expression
    keys: frozenset[str] | None  #: names the table visibly defines (None: cannot tell)


def _returned(tokens: list[Token]) -> _Shape | None:
    """What the chunk's top-level ``return`` returns, when that is plain from the text."""
    leveled = list(_depths(tokens))
    top = [(i, t) for i, (d, t) in enumerate(leveled) if d == 0]
    rets = [i for i, t in top if t.kind == KEYWORD and t.text == "return"]
    if not rets:
        return None
    i = rets[-1]
    rest = [t for t in tokens[i + 1:] if t.kind != EOF and t.text != ";"]
    if not rest:
        return None
    first = rest[0]
    if first.text == "{":
        return _Shape("table", first.start, _constructor_keys(leveled, i + 1))
    if first.text == "function" and first.kind == KEYWORD:
        return _Shape("function", first.start, None)
    if first.kind == NAME and len(rest) == 1:
        return _local_shape(tokens, leveled, first)
    return None


def _local_shape(tokens: list[Token], leveled: list[tuple[int, Token]], name: Token) -> _Shape | None:
    """The shape of a top-level local returned by name: ``local M = {...}`` or ``local function f``."""
    shape: _Shape | None = None
    keys: set[str] | None = set()
    for i, (depth, tok) in enumerate(leveled):
        if tok.text != name.text or tok.kind != NAME or tok.start >= name.start:
            continue
        prev = tokens[i - 1] if i else None
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if depth == 0 and prev is not None and prev.text == "local" and nxt is not None and nxt.text == "=":
            after = tokens[i + 2] if i + 2 < len(tokens) else None
            if after is not None and after.text == "{":
                shape = _Shape("table", name.start, None)
                found = _constructor_keys(leveled, i + 2)
                keys = None if found is None else set(found)
            elif after is not None and after.text == "function":
                shape = _Shape("function", name.start, None)
            else:
                shape = None
        elif prev is not None and prev.text == "function" and depth == 1 and i >= 2 and tokens[i - 2].text == "local":
            shape = _Shape("function", name.start, None)
        elif nxt is not None and nxt.text == "=" and (prev is None or prev.text not in (".", ":")):
            shape = None  # assigned again: what it holds at the end is not plain from the text
        elif shape is not None and shape.kind == "table" and keys is not None and nxt is not None:
            keys = _note_key(tokens, i, keys)
    if shape is None or shape.kind == "function":
        return shape
    return _Shape("table", shape.start, None if keys is None else frozenset(keys))


def _note_key(tokens: list[Token], i: int, keys: set[str]) -> set[str] | None:
    """After ``M`` at ``i``: ``M.k``/``M:k`` adds k; ``M[...]`` or passing ``M`` along means unknown."""
    nxt = tokens[i + 1]
    if nxt.text in (".", ":") and i + 2 < len(tokens) and tokens[i + 2].kind == NAME:
        return keys | {tokens[i + 2].text}
    if nxt.text in ("[", ",", ")"):
        return None  # computed keys, reassignment, or handed to code that may fill it
    return keys


def _constructor_keys(leveled: list[tuple[int, Token]], open_index: int) -> frozenset[str] | None:
    """``k = ...`` and ``["k"] = ...`` keys at the top level of the constructor opened at ``open_index``.

    Tokens inside function bodies in the constructor (a deeper block) are skipped.
    """
    keys: set[str] = set()
    block = leveled[open_index][0]
    depth = 0
    for i in range(open_index, len(leveled)):
        level, tok = leveled[i]
        if level > block or tok.kind == EOF:
            if tok.kind == EOF:
                return None
            continue
        before = leveled[i - 1][1].text
        if tok.text in ("{", "(", "["):
            depth += 1
        elif tok.text in ("}", ")", "]"):
            depth -= 1
            if depth == 0:
                return frozenset(keys)
        elif depth == 1 and tok.kind == NAME and before in ("{", ",", ";") and leveled[i + 1][1].text == "=":
            keys.add(tok.text)
        elif depth == 2 and tok.kind == "str" and before == "[" and leveled[i - 2][1].text in ("{", ",", ";"):
            value = _string_value(tok.text)
            if value is None:
                return None
            keys.add(value)
    return None
