"""Go duration strings ("1h30m", "500ms", "1.5s", "-2m") to nanoseconds, as Wippy accepts them."""

from __future__ import annotations

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def parse_go_duration(text: str) -> int:
    """Nanoseconds in a Go duration string; ValueError naming the text when it is not one."""
    s = text.strip()
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    sign = 1
    if s[0] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    total = 0.0
    i = 0
    while i < len(s):
        start = i
        while i < len(s) and (s[i].isdigit() or s[i] == "."):
            i += 1
        number = s[start:i]
        if not number or number == "." or number.count(".") > 1:
            raise ValueError(f"invalid duration {text!r}")
        start = i
        while i < len(s) and not (s[i].isdigit() or s[i] == "."):
            i += 1
        unit = s[start:i]
        if unit not in _UNITS:
            raise ValueError(f"invalid duration {text!r}: unknown unit {unit!r}" if unit else
                             f"invalid duration {text!r}: missing unit")
        total += float(number) * _UNITS[unit]
    return sign * round(total)
