"""Plain-Lua syntax check of a translated chunk, with tree-sitter-luau.

The scanner hands over a masked copy of the source: dialect constructs blanked and Lua 5.4 forms
Luau lacks rewritten to same-length stand-ins, so every character offset still points into the
user's file. A tree with an ERROR or MISSING node becomes a DialectSyntax at the first one.
"""

from __future__ import annotations

import re
import threading

import tree_sitter as ts
import tree_sitter_luau  # type: ignore[import-untyped,unused-ignore]

from ._dialect_lex import EOF, KEYWORD, DialectSyntax, tokenize

_lock = threading.Lock()
_parser: ts.Parser | None = None
_TOKEN_AT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d[\w.]*|\S{1,3}")


def _get_parser() -> ts.Parser:
    global _parser  # noqa: PLW0603 - one parser per process, built on first use
    if _parser is None:
        _parser = ts.Parser(ts.Language(tree_sitter_luau.language()))
    return _parser


def check_syntax(masked: str, source: str) -> None:
    """Raise DialectSyntax at the first syntax error of ``masked`` (offsets as in ``source``)."""
    # tree-sitter's Lua scanner takes a NUL for the end of input; Lua allows one in a string (and
    # refuses one elsewhere when it compiles), so the syntax check reads it as a space, same offsets
    data = masked.replace("\x00", " ").encode("utf-8", "surrogatepass")
    with _lock:
        tree = _get_parser().parse(data)
    root = tree.root_node
    if not root.has_error:
        return
    _check_blocks(masked)  # an unclosed or stray block gets Lua's own kind of message
    node = _first_error(root)

    def offset(byte: int) -> int:
        return len(data[:byte].decode("utf-8", "surrogatepass"))

    pos = offset(node.start_byte)
    if node.is_missing:
        reason = "expression expected" if node.type == "identifier" else f"'{node.type}' expected"
        opener = node.parent
        if opener is not None and opener.child_count and node.type == "end":
            first = opener.children[0]
            line = first.start_point[0] + 1
            reason += f" (to close '{data[first.start_byte:first.end_byte].decode()}' at line {line})"
        reason += f" near {_near(source, pos)}"
    else:
        pos = _skip_space(source, pos)
        reason = f"unexpected {_near(source, pos)}"
        if source.startswith("continue", pos):
            reason += " ('continue' is Luau, not Lua: use 'goto continue' and a '::continue::' label)"
    raise DialectSyntax(pos, reason)


_OPENERS = frozenset({"function", "if", "while", "for", "do", "repeat"})


def _check_blocks(masked: str) -> None:
    """Match block keywords the way Lua does; report the innermost unclosed block at EOF."""
    stack: list[tuple[str, int, bool]] = []  # keyword, offset, waiting for its 'do'
    for tok in tokenize(masked):
        if tok.kind != KEYWORD:
            if tok.kind == EOF and stack:
                word, pos, _ = stack[-1]
                closer = "until" if word == "repeat" else "end"
                line = masked.count("\n", 0, pos) + 1
                reason = f"'{closer}' expected (to close '{word}' at line {line}) near end of file"
                raise DialectSyntax(tok.start, reason)
            continue
        text = tok.text
        if text == "do" and stack and stack[-1][2]:
            stack[-1] = (stack[-1][0], stack[-1][1], False)
        elif text in _OPENERS:
            stack.append((text, tok.start, text in ("while", "for")))
        elif text in ("end", "until"):
            if not stack or (stack[-1][0] == "repeat") != (text == "until"):
                raise DialectSyntax(tok.start, f"unexpected '{text}'")
            stack.pop()


def _first_error(node: ts.Node) -> ts.Node:
    while True:
        for child in node.children:
            if child.is_missing or child.type == "ERROR":
                return child
            if child.has_error:
                node = child
                break
        else:
            return node


def _skip_space(source: str, pos: int) -> int:
    while pos < len(source) and source[pos].isspace():
        pos += 1
    return pos


def _near(source: str, pos: int) -> str:
    m = _TOKEN_AT.match(source, _skip_space(source, pos))
    return repr(m.group()) if m else "end of file"
