"""Go's ``regexp`` API on RE2 (google-re2), for ``text.regexp``.

Wippy compiles patterns with Go's ``regexp`` package, which is RE2 syntax and semantics (linear
time, no backreferences or lookarounds, leftmost-first). google-re2 is the same engine; what
this module adds is Go's API on top of it:

* Matching works on the UTF-8 bytes of the subject, so every offset is a byte offset, as a Lua
  string index is (Wippy turns them into 1-based inclusive ``{start, end}`` pairs).
* "All" functions find successive non-overlapping matches and ignore an empty match that abuts
  the previous match (Go's rule; Python's ``finditer`` keeps it).
* ``replace_all`` expands ``$1``, ``${1}``, ``$name``, ``${name}`` and ``$$`` in the template as
  Go's ``Regexp.Expand`` does: ``$name`` takes the longest run of letters, digits and ``_`` (so
  ``$1x`` means group ``1x``, which does not exist and expands to nothing); a ``$`` not followed
  by a valid reference is kept as is.
* ``split`` follows Go's ``Regexp.Split`` (``n`` < 0: all parts; ``n`` == 0: none; an empty match
  at the start does not produce an empty first part).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import re2  # type: ignore[import-untyped]

#: Go's ``Expand`` stops reading a group number at 1e8.
_MAX_GROUP_NUMBER = 100_000_000

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a bad pattern is the caller's error value, not a line on stderr

Spans = list[tuple[int, int]]
Template = list[bytes | int]


class RegexpError(ValueError):
    """The pattern is not valid RE2 syntax."""


def _rune_width(data: bytes, pos: int) -> int:
    """Bytes of the UTF-8 sequence starting at ``pos`` (1 for an invalid lead byte)."""
    lead = data[pos]
    if lead < 0xC0:
        return 1
    width = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    end = min(pos + width, len(data))
    for i in range(pos + 1, end):
        if data[i] & 0xC0 != 0x80:
            return 1
    return width if pos + width <= len(data) else 1


class GoRegexp:
    """A compiled pattern with Go's matching rules; every method takes and returns bytes."""

    __slots__ = ("_names", "_re", "groups", "source")

    def __init__(self, pattern: str) -> None:
        try:
            self._re: Any = re2.compile(pattern, _OPTIONS)
        except re2.error as exc:
            reason = exc.args[0] if exc.args else exc
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            raise RegexpError(f"error parsing regexp: {reason}") from None
        self.source = pattern
        self.groups: int = self._re.groups
        names = [""] * (self.groups + 1)
        for name, index in self._re.groupindex.items():
            names[index] = name
        self._names = names

    @property
    def names(self) -> list[str]:
        """Go's ``SubexpNames``: one per group, index 0 (the whole match) and unnamed groups ""."""
        return list(self._names)

    # -- matching -----------------------------------------------------------------------------

    def _spans(self, data: bytes, pos: int) -> Spans | None:
        m = self._re.search(data, pos)
        if m is None:
            return None
        return [m.span(g) for g in range(self.groups + 1)]

    def first(self, data: bytes) -> Spans | None:
        """The leftmost match: one (start, end) per group, (-1, -1) for a group that did not take part."""
        return self._spans(data, 0)

    def all(self, data: bytes, n: int = -1) -> Iterator[Spans]:
        """Successive matches (at most ``n`` when ``n`` >= 0), with Go's empty-match rule."""
        pos, prev_end, found, end = 0, -1, 0, len(data)
        while (n < 0 or found < n) and pos <= end:
            spans = self._spans(data, pos)
            if spans is None:
                return
            start, stop = spans[0]
            accept = True
            if stop == pos:  # an empty match here
                if start == prev_end:
                    accept = False  # right after the previous match: Go skips it
                pos += _rune_width(data, pos) if pos < end else 1
            else:
                pos = stop
            prev_end = stop
            if accept:
                found += 1
                yield spans

    def matches(self, data: bytes) -> bool:
        return self._re.search(data) is not None

    # -- replacing and splitting ----------------------------------------------------------------

    def template(self, text: str) -> Template:
        """Parse a replacement template once: literal bytes and group numbers."""
        out: Template = []
        i = 0
        while True:
            j = text.find("$", i)
            if j < 0:
                out.append(text[i:].encode())
                return out
            out.append(text[i:j].encode())
            if text.startswith("$", j + 1):
                out.append(b"$")
                i = j + 2
                continue
            ref = _reference(text, j + 1)
            if ref is None:
                out.append(b"$")
                i = j + 1
                continue
            name, i = ref
            group = self._group_of(name)
            if group is not None:
                out.append(group)

    def _group_of(self, name: str) -> int | None:
        num = _group_number(name)
        if num is not None:
            return num if num <= self.groups else None
        for index, known in enumerate(self._names):
            if index and known == name:
                return index
        return None

    def replace_all(self, data: bytes, template: Template) -> bytes:
        """Go's ``ReplaceAllString``: every match replaced by the expanded template."""
        out: list[bytes] = []
        last_end, search, end = 0, 0, len(data)
        while search <= end:
            spans = self._spans(data, search)
            if spans is None:
                break
            start, stop = spans[0]
            out.append(data[last_end:start])
            # no replacement for an empty match right after the previous one (Go's rule)
            if stop > last_end or start == 0:
                out.extend(_expand(template, data, spans))
            last_end = stop
            width = _rune_width(data, search) if search < end else 0
            if search + width > stop:
                search += width
            elif search + 1 > stop:
                search += 1
            else:
                search = stop
        out.append(data[last_end:])
        return b"".join(out)

    def split(self, data: bytes, n: int) -> list[bytes]:
        """Go's ``Split``: the pieces between matches, at most ``n`` when ``n`` > 0."""
        if n == 0:
            return []
        if self.source and not data:
            return [b""]
        parts: list[bytes] = []
        begin = end = 0
        for spans in self.all(data, n):
            if n > 0 and len(parts) == n - 1:
                break
            start, stop = spans[0]
            end = start
            if stop != 0:
                parts.append(data[begin:end])
            begin = stop
        if end != len(data):
            parts.append(data[begin:])
        return parts


def _reference(text: str, i: int) -> tuple[str, int] | None:
    """A group reference after a ``$`` at ``i``: (name, index after it), or None when malformed."""
    brace = text.startswith("{", i)
    j = i + 1 if brace else i
    k = j
    while k < len(text) and (text[k].isalpha() or text[k].isdecimal() or text[k] == "_"):
        k += 1
    if k == j:
        return None
    name = text[j:k]
    if brace:
        if not text.startswith("}", k):
            return None
        k += 1
    return name, k


def _group_number(name: str) -> int | None:
    if not name.isascii() or not name.isdigit() or (len(name) > 1 and name[0] == "0"):
        return None
    num = int(name)
    return num if num < _MAX_GROUP_NUMBER else None


def _expand(template: Template, data: bytes, spans: Spans) -> Iterator[bytes]:
    for piece in template:
        if isinstance(piece, bytes):
            yield piece
            continue
        start, stop = spans[piece]
        if start >= 0:
            yield data[start:stop]
