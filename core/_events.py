"""The event bus as records: one ``events.event`` record per `events.send`, and Wippy's patterns.

An event is ``{system, kind, path, data}``; its record goes to ``<ns>.events.<node>`` (the node
that sent it), so the stream keeps every event in order per node and any node can read them all.

Patterns (``events.subscribe(system, kind)``) match dot-separated names segment by segment: ``*``
is one segment, ``**`` any number (none included), ``(a|b)`` one of the alternatives, anything
else literally; a segment may mix them (``user.(created|deleted)``, ``order*``). A missing kind
pattern matches every kind.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from ._errors import WippyError
from ._records import register_type

EVENT = "events.event"
register_type(EVENT, 1)


class PatternError(WippyError):
    """An event pattern that cannot compile."""

    kind = "INVALID"


def _segment(seg: str, pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(seg):
        ch = seg[i]
        if ch == "*":
            out.append("[^.]*")
        elif ch == "(":
            end = seg.find(")", i)
            if end < 0:
                raise PatternError(f"event pattern {pattern!r}: '(' without ')'")
            alternatives = seg[i + 1:end].split("|")
            if any(not a or any(c in a for c in "()*") for a in alternatives):
                raise PatternError(f"event pattern {pattern!r}: (a|b) takes plain names, got {seg[i:end + 1]!r}")
            out.append("(?:" + "|".join(re.escape(a) for a in alternatives) + ")")
            i = end
        elif ch in ")|":
            raise PatternError(f"event pattern {pattern!r}: {ch!r} outside (a|b)")
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The regex a system or kind pattern compiles to, matched against ``"." + name`` (each segment
    brings its dot, so ``**`` can stand for none); PatternError if it cannot compile."""
    if not isinstance(pattern, str) or not pattern:
        raise PatternError("an event pattern must be a non-empty string")
    regex = []
    for seg in pattern.split("."):
        if seg == "**":
            regex.append(r"(?:\.[^.]+)*")
        elif seg == "":
            raise PatternError(f"event pattern {pattern!r}: an empty segment")
        elif "**" in seg:
            raise PatternError(f"event pattern {pattern!r}: ** must be a whole segment")
        else:
            regex.append(r"\." + _segment(seg, pattern))
    return re.compile("".join(regex))


def matches(pattern: str | None, name: str) -> bool:
    """Whether ``name`` (a system or kind) matches ``pattern`` (None: anything)."""
    return pattern is None or compile_pattern(pattern).fullmatch("." + name) is not None


def event_body(system: str, kind: str, path: str, data: Any) -> dict[str, Any]:
    return {"system": system, "kind": kind, "path": path, "data": data}
