"""Decoding expr-lang number and string literals exactly as its lexer does."""

from __future__ import annotations

import re

from ._expr_errors import OpError

_MAX_INT = (1 << 63) - 1

_ESCAPE = re.compile(
    r"\\(?:u\{([0-9a-fA-F]{1,6})\}|[xX]([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})"
    r"|([0-3][0-7]{2})|([abfnrtv\\'\"`?])|(.?))",
    re.DOTALL,
)
_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def number(text: str) -> int | float:
    """An integer (decimal, 0x, 0o, 0b; ``_`` separators) or a float literal."""
    digits = text.replace("_", "")
    low = digits.lower()
    try:
        if low.startswith(("0x", "0o", "0b")):
            value: int | float = int(digits, 0)
        elif "." in low or "e" in low:
            value = float(digits)
            if value == float("inf"):
                raise OpError(f"float literal is too large: {text}")
            return value
        else:
            value = int(digits, 10)
    except ValueError:
        raise OpError(f"invalid number literal: {text}") from None
    if value > _MAX_INT:
        raise OpError(f"integer literal is too large: {text}")
    return value


def _rune(code: int) -> str:
    if code > 0x10FFFF:
        raise OpError("invalid unicode escape in string literal")
    return "\ufffd" if 0xD800 <= code <= 0xDFFF else chr(code)


def _unescape(m: re.Match[str]) -> str:
    brace, hex2, hex4, hex8, octal, simple, bad = m.groups()
    if simple is not None:
        return _SIMPLE.get(simple, simple)
    if octal is not None:
        return _rune(int(octal, 8))
    code = brace or hex2 or hex4 or hex8
    if code is not None:
        return _rune(int(code, 16))
    raise OpError(f"invalid escape sequence in string literal: \\{bad}")


def string(token: str) -> str:
    """A quoted string (``"..."`` or ``'...'``) with its escapes decoded."""
    body = token[1:-1].replace("\r\n", "\n").replace("\r", "\n")
    return _ESCAPE.sub(_unescape, body) if "\\" in body else body


def raw_string(token: str) -> str:
    """A backtick string: no escapes, a doubled backtick stands for one."""
    return token[1:-1].replace("``", "`")
