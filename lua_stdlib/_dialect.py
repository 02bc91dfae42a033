"""Wippy's Lua dialect (Lua 5.3 + Luau-style types) translated to plain Lua 5.4 for lupa.

Pipeline: a Lua lexer (``_dialect_lex``) -> a statement scanner that finds annotations, casts,
``type`` declarations and the other dialect forms (``_dialect_scan``, with the type parser in
``_dialect_types`` and the type tree and its Lua form in ``_dialect_ast``) -> a syntax check of
the remaining plain Lua with tree-sitter-luau (``_dialect_syntax``) -> the output text. Luau-only
forms that Lua 5.4 rejects (``+=``, ``continue``, if-expressions, backticks) are DialectErrors.

What the output keeps and changes:

- Every line stays on its line: erased text becomes spaces (columns are kept too), and a
  ``type`` declaration becomes one statement on its first line followed by as many line breaks
  as it spanned. Lua errors therefore name the user's file and line.
- Annotations on locals, loop variables, parameters and returns, generic parameter lists, casts
  ``x :: T`` / ``x as T`` and validators on locals or parameters are erased.
- ``x!`` (non-nil assertion) is erased, as in Wippy, where it only informs the type checker and
  emits no runtime check.
- ``type Name<T> = <type>`` (and ``export type``) becomes
  ``Name = __ws:define("Name", <constructor calls>);`` where ``__ws`` is the chunk's type scope.
  Top-level names are declared ``local`` on line 1 (types are hoisted, so a function defined
  above a declaration sees it); a declaration inside a block or function stays a ``local`` there.
  References to types declared anywhere in the chunk go through the scope lazily, so forward and
  recursive references work; generic parameters are ``any`` at run time; ``typeof(x)`` is
  ``any``; other names (``time.Time``, a global) are looked up when a value is validated and
  count as ``any`` when they do not hold a type value.
- A chunk with declarations starts with
  ``local __wt, __ws = __wippy_types, __wippy_types.scope(); local Name, ...;`` on line 1;
  ``Translated.uses_types`` tells the host to put the library (``types.lua``) in the chunk's
  environment under :data:`TYPES_GLOBAL`.

Translations are cached by the SHA-256 of the source (a small LRU).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

from wippy.core import DefinitionError

from ._dialect_ast import LIB, SCOPE, emit
from ._dialect_lex import DialectSyntax, tokenize
from ._dialect_scan import scan
from ._dialect_syntax import check_syntax

TYPES_GLOBAL = "__wippy_types"
_PREFIX = f"local {LIB}, {SCOPE} = {TYPES_GLOBAL}, {TYPES_GLOBAL}.scope(); "
_CACHE_SIZE = 256


class DialectError(DefinitionError):
    """Wippy Lua source that cannot be translated: names the chunk, line and column (1-based)."""

    def __init__(self, reason: str, *, chunk: str, line: int, column: int) -> None:
        super().__init__(reason, where=f"{chunk}:{line}:{column}")
        self.chunk = chunk
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class Translated:
    code: str  #: plain Lua 5.4, line for line with the source
    uses_types: bool  #: ``code`` reads :data:`TYPES_GLOBAL` from its environment


_cache: OrderedDict[bytes, Translated] = OrderedDict()
_cache_lock = threading.Lock()


def translate(source: str, chunk: str) -> Translated:
    """Translate one Wippy Lua chunk; raise DialectError naming ``chunk`` on bad input."""
    key = hashlib.sha256(source.encode("utf-8", "surrogatepass")).digest()
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    try:
        result = _translate(source)
    except DialectSyntax as exc:
        line, column = _position(source, exc.pos)
        raise DialectError(exc.reason, chunk=chunk, line=line, column=column) from exc
    except RecursionError as exc:
        raise DialectError("code or type nested too deeply", chunk=chunk, line=1, column=1) from exc
    with _cache_lock:
        _cache[key] = result
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return result


def _translate(source: str) -> Translated:
    if source.startswith("\ufeff"):  # a byte-order mark, which load() would reject
        source = " " + source[1:]
    toks = tokenize(source)
    found = scan(toks)
    names = frozenset(d.name for d in found.decls)
    output = [(start, end, _blank(source[start:end])) for start, end in found.erase]
    masked = output + found.mask + [(d.start, d.end, _blank(source[d.start : d.end])) for d in found.decls]
    check_syntax(_apply(source, masked), source)
    for d in found.decls:
        value = emit(d.type, names, d.params)
        code = f'{"" if d.top_level else "local "}{d.name} = {SCOPE}:define("{d.name}", {value});'
        output.append((d.start, d.end, code + "".join(_BREAK.findall(source, d.start, d.end))))
    code = _apply(source, output)
    if found.decls:
        hoisted = list(dict.fromkeys(d.name for d in found.decls if d.top_level))
        code = _PREFIX + (f"local {', '.join(hoisted)}; " if hoisted else "") + code
    return Translated(code, bool(found.decls))


_BREAK = re.compile(r"\r\n|\n\r|\n|\r")
_NOT_BREAK = re.compile(r"[^\r\n]+")


def _blank(text: str) -> str:
    return _NOT_BREAK.sub(lambda m: " " * len(m.group()), text)


def _apply(source: str, edits: list[tuple[int, int, str]]) -> str:
    edits.sort()
    pieces: list[str] = []
    pos = 0
    for start, end, text in edits:
        if start < pos:  # never produced by the scanner; keep the first edit if it happens
            continue
        pieces.append(source[pos:start])
        pieces.append(text)
        pos = end
    pieces.append(source[pos:])
    return "".join(pieces)


def _position(source: str, pos: int) -> tuple[int, int]:
    line = source.count("\n", 0, pos) + 1
    column = pos - (source.rfind("\n", 0, pos) + 1) + 1
    return line, column
