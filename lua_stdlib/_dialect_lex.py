"""The Lua lexer under the dialect translator.

It knows what a Lua 5.4 lexer knows (short and long strings, long comments, numbers, names,
operators) plus the few dialect tokens (``?``, ``!``, ``@``, ``->``), so the passes above it never
mistake the inside of a string or comment for code. Comments and whitespace are dropped; every
token keeps its character offsets into the source, which is how edits are made without moving
any line.

``<`` and ``>`` are always single tokens (``<<`` comes out as two adjacent ``<``), because a
closing generic list (``Box<Map<K, V>>``) and a shift operator look the same to a lexer.
"""

from __future__ import annotations

import re
from typing import NamedTuple

NAME = "name"
KEYWORD = "kw"
NUMBER = "num"
STRING = "str"
OP = "op"
EOF = "eof"

KEYWORDS = frozenset(
    ["and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"]
)


class Token(NamedTuple):
    kind: str
    text: str
    start: int  # offset of the first character in the source
    end: int  # offset just past the last character


class DialectSyntax(Exception):
    """A syntax problem at a source offset; the public layer turns it into a DialectError."""

    def __init__(self, pos: int, reason: str) -> None:
        super().__init__(reason)
        self.pos = pos
        self.reason = reason


_TOKEN = re.compile(
    r"""
     (?P<ws>[ \t\r\n\f\v]+)
    |(?P<lcomment>--\[(?P<ceq>=*)\[.*?\](?P=ceq)\])
    |(?P<badlcomment>--\[=*\[)
    |(?P<comment>--[^\r\n]*)
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<num>0[xX][0-9a-fA-F]*(?:\.[0-9a-fA-F]*)?(?:[pP][+-]?[0-9]+)?
            |(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
    |(?P<lstr>\[(?P<seq>=*)\[.*?\](?P=seq)\])
    |(?P<badlstr>\[=*\[)
    |(?P<str>"(?:[^"\\\r\n]|\\z\s*|\\\r\n|\\\n\r|\\[^z])*+"
            |'(?:[^'\\\r\n]|\\z\s*|\\\r\n|\\\n\r|\\[^z])*+')
    |(?P<badstr>["'])
    |(?P<op>\.\.\.|\.\.|::|->|==|~=|<=|>=|//|[-+*/%^\#&~|<>=(){}\[\];:,.?!@])
    |(?P<bad>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_NUMBER_TAIL = re.compile(r"[A-Za-z0-9_.]")


def tokenize(source: str) -> list[Token]:
    """All significant tokens of ``source``, ending with an EOF token at ``len(source)``."""
    out: list[Token] = []
    append = out.append
    for m in _TOKEN.finditer(source):
        kind = m.lastgroup
        if kind == "ws" or kind == "comment" or kind == "lcomment":
            continue
        text = m.group()
        start, end = m.span()
        if kind == "name":
            append(Token(KEYWORD if text in KEYWORDS else NAME, text, start, end))
        elif kind == "op":
            append(Token(OP, text, start, end))
        elif kind == "str" or kind == "lstr":
            append(Token(STRING, text, start, end))
        elif kind == "num":
            if (end < len(source) and _NUMBER_TAIL.match(source, end)) or text.lower() == "0x":
                raise DialectSyntax(start, f"malformed number near '{source[start:end + 1]}'")
            append(Token(NUMBER, text, start, end))
        elif kind == "badlcomment":
            raise DialectSyntax(start, "unfinished long comment")
        elif kind == "badlstr":
            raise DialectSyntax(start, "unfinished long string")
        elif kind == "badstr":
            raise DialectSyntax(start, "unfinished string")
        else:
            raise DialectSyntax(start, f"unexpected character {text!r}")
    append(Token(EOF, "", len(source), len(source)))
    return out
