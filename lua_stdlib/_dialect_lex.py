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
    [
        "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
        "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
    ]
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
    [ \t\r\n\f\v]*
    (?:
     (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<op>\.\.\.|\.\.|::|->|==|~=|<=|>=|//|[+*/%^\#&~|<>=(){}\];:,?!@]|-(?!-)|\.(?![0-9])|\[(?!=*\[))
    |(?P<num>0[xX][0-9a-fA-F]*(?:\.[0-9a-fA-F]*)?(?:[pP][+-]?[0-9]+)?
            |(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
    |(?P<str>"(?:[^"\\\r\n]|\\z\s*|\\\r\n|\\\n\r|\\[^z])*+"
            |'(?:[^'\\\r\n]|\\z\s*|\\\r\n|\\\n\r|\\[^z])*+')
    |(?P<lcomment>--\[(?P<ceq>=*)\[.*?\](?P=ceq)\])
    |(?P<badlcomment>--\[=*\[)
    |(?P<comment>--[^\r\n]*)
    |(?P<lstr>\[(?P<seq>=*)\[.*?\](?P=seq)\])
    |(?P<badlstr>\[=*\[)
    |(?P<badstr>["'])
    |(?P<end>\Z)
    |(?P<bad>.)
    )
    """,
    re.VERBOSE | re.DOTALL,
)
_NUMBER_TAIL = re.compile(r"[A-Za-z0-9_.]")
_GROUP = _TOKEN.groupindex
_NAME, _OP, _NUM, _STR, _LSTR = _GROUP["name"], _GROUP["op"], _GROUP["num"], _GROUP["str"], _GROUP["lstr"]
_SKIP = frozenset({_GROUP["comment"], _GROUP["lcomment"], _GROUP["end"]})
_FAILURES = {
    _GROUP["badlcomment"]: "unfinished long comment",
    _GROUP["badlstr"]: "unfinished long string",
    _GROUP["badstr"]: "unfinished string",
}


def tokenize(source: str) -> list[Token]:
    """All significant tokens of ``source``, ending with an EOF token at ``len(source)``."""
    out: list[Token] = []
    append = out.append
    for m in _TOKEN.finditer(source):
        group = m.lastindex
        if group == _NAME:
            start, end = m.span(group)
            text = source[start:end]
            append(Token(KEYWORD if text in KEYWORDS else NAME, text, start, end))
        elif group == _OP:
            start, end = m.span(group)
            append(Token(OP, source[start:end], start, end))
        elif group in _SKIP:
            continue
        elif group in (_STR, _LSTR):
            start, end = m.span(group)
            append(Token(STRING, source[start:end], start, end))
        elif group == _NUM:
            start, end = m.span(group)
            text = source[start:end]
            if (end < len(source) and _NUMBER_TAIL.match(source, end)) or text.lower() == "0x":
                raise DialectSyntax(start, f"malformed number near '{source[start:end + 1]}'")
            append(Token(NUMBER, text, start, end))
        else:
            assert group is not None
            start = m.start(group)
            reason = _FAILURES.get(group) or f"unexpected character {source[start]!r}"
            raise DialectSyntax(start, reason)
    append(Token(EOF, "", len(source), len(source)))
    return out
