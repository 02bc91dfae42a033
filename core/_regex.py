"""Regular expressions with Go's RE2 semantics (google-re2): linear time, no backtracking, so a
pattern from an app or a user cannot stall the runtime. Used by policy `matches` conditions and
expr-lang's `matches`; errors name the pattern.
"""

from __future__ import annotations

import functools
from typing import Any

import re2  # type: ignore[import-untyped]

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 reports bad patterns through the exception, not on stderr


class RegexError(ValueError):
    """A pattern RE2 does not accept."""


@functools.lru_cache(maxsize=1024)
def compile_re2(pattern: str) -> Any:
    """The compiled pattern (``.search(text)``, ``.fullmatch``, ...); RegexError when invalid."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", errors="replace")
        raise RegexError(f"invalid regular expression {pattern!r}: {reason}") from None


def re2_search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches anywhere in ``text`` (Go's ``regexp.MatchString``)."""
    return compile_re2(pattern).search(text) is not None
