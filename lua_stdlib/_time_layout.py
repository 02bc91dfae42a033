"""Go layouts ("2006-01-02T15:04:05Z07:00", "Jan _2", ".000", "MST", "-0700", "PM", ...): the
layout scanner and formatting, following Go's ``time/format.go`` element by element.

Layout elements (anything else is literal text):
    year 2006 06 | month January Jan 1 01 | weekday Monday Mon | day 2 _2 02 | year day __2 002
    hour 15 3 03 | minute 4 04 | second 5 05 | PM pm | zone MST, Z0700 Z070000 Z07 Z07:00
    Z07:00:00 -0700 -070000 -07 -07:00 -07:00:00 | fraction .0.. ,0.. (fixed) .9.. ,9.. (trimmed)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple

from ._time_calendar import fields
from ._time_zone import Zone

LONG_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
               "October", "November", "December")
SHORT_MONTHS = tuple(m[:3] for m in LONG_MONTHS)
LONG_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
SHORT_DAYS = tuple(d[:3] for d in LONG_DAYS)

#: Go's layout constants under Wippy's names.
LAYOUTS = {
    "LAYOUT": "01/02 03:04:05PM '06 -0700",
    "ANSIC": "Mon Jan _2 15:04:05 2006",
    "UNIX_DATE": "Mon Jan _2 15:04:05 MST 2006",
    "RUBY_DATE": "Mon Jan 02 15:04:05 -0700 2006",
    "RFC822": "02 Jan 06 15:04 MST",
    "RFC822Z": "02 Jan 06 15:04 -0700",
    "RFC850": "Monday, 02-Jan-06 15:04:05 MST",
    "RFC1123": "Mon, 02 Jan 2006 15:04:05 MST",
    "RFC1123Z": "Mon, 02 Jan 2006 15:04:05 -0700",
    "RFC3339": "2006-01-02T15:04:05Z07:00",
    "RFC3339NANO": "2006-01-02T15:04:05.999999999Z07:00",
    "KITCHEN": "3:04PM",
    "STAMP": "Jan _2 15:04:05",
    "STAMP_MILLI": "Jan _2 15:04:05.000",
    "STAMP_MICRO": "Jan _2 15:04:05.000000",
    "STAMP_NANO": "Jan _2 15:04:05.000000000",
    "DATE_TIME": "2006-01-02 15:04:05",
    "DATE_ONLY": "2006-01-02",
    "TIME_ONLY": "15:04:05",
}
STRING_LAYOUT = "2006-01-02 15:04:05.999999999 -0700 MST"


class Std(NamedTuple):
    """One layout element: its code, and for fractions the digit count and separator."""

    code: str
    digits: int = 0
    sep: str = "."


_ZERO_X = ("01", "02", "03", "04", "05", "06")  # "0" followed by 1..6
_ZONES_DASH = ("-070000", "-07:00:00", "-0700", "-07:00", "-07")
_ZONES_Z = ("Z070000", "Z07:00:00", "Z0700", "Z07:00", "Z07")
ISO_ZONES = frozenset(_ZONES_Z)
NUM_ZONES = frozenset(_ZONES_DASH)


def _lower_next(s: str, i: int) -> bool:
    return i < len(s) and "a" <= s[i] <= "z"


def next_std(layout: str) -> tuple[str, Std | None, str]:
    """(literal prefix, first element, rest) of a layout, as Go's nextStdChunk scans it."""
    n = len(layout)
    for i in range(n):
        c = layout[i]
        if c == "J" and layout.startswith("Jan", i):
            if layout.startswith("January", i):
                return layout[:i], Std("January"), layout[i + 7:]
            if not _lower_next(layout, i + 3):
                return layout[:i], Std("Jan"), layout[i + 3:]
        elif c == "M" and n >= i + 3:
            if layout.startswith("Mon", i):
                if layout.startswith("Monday", i):
                    return layout[:i], Std("Monday"), layout[i + 6:]
                if not _lower_next(layout, i + 3):
                    return layout[:i], Std("Mon"), layout[i + 3:]
            if layout.startswith("MST", i):
                return layout[:i], Std("MST"), layout[i + 3:]
        elif c == "0":
            if i + 1 < n and "1" <= layout[i + 1] <= "6":
                return layout[:i], Std(_ZERO_X[ord(layout[i + 1]) - 49]), layout[i + 2:]
            if layout.startswith("002", i):
                return layout[:i], Std("002"), layout[i + 3:]
        elif c == "1":
            if i + 1 < n and layout[i + 1] == "5":
                return layout[:i], Std("15"), layout[i + 2:]
            return layout[:i], Std("1"), layout[i + 1:]
        elif c == "2":
            if layout.startswith("2006", i):
                return layout[:i], Std("2006"), layout[i + 4:]
            return layout[:i], Std("2"), layout[i + 1:]
        elif c == "_":
            if i + 1 < n and layout[i + 1] == "2":
                if layout.startswith("2006", i + 1):  # "_2006" is a literal "_" and the year
                    return layout[:i + 1], Std("2006"), layout[i + 5:]
                return layout[:i], Std("_2"), layout[i + 2:]
            if layout.startswith("__2", i):
                return layout[:i], Std("__2"), layout[i + 3:]
        elif c in "345":
            return layout[:i], Std(c), layout[i + 1:]
        elif c == "P" and layout.startswith("PM", i):
            return layout[:i], Std("PM"), layout[i + 2:]
        elif c == "p" and layout.startswith("pm", i):
            return layout[:i], Std("pm"), layout[i + 2:]
        elif c in "-Z":
            for zone in _ZONES_DASH if c == "-" else _ZONES_Z:
                if layout.startswith(zone, i):
                    return layout[:i], Std(zone), layout[i + len(zone):]
        elif c in ".," and i + 1 < n and layout[i + 1] in "09":
            ch = layout[i + 1]
            j = i + 1
            while j < n and layout[j] == ch:
                j += 1
            # only a fraction when the run of digits ends here ("5.000000q" is not)
            if not (j < n and "0" <= layout[j] <= "9"):
                return layout[:i], Std("frac" + ch, j - (i + 1), c), layout[j:]
    return layout, None, ""


Chunk = tuple[str, Std | None, str, str]


@lru_cache(maxsize=512)
def chunks(layout: str) -> tuple[Chunk, ...]:
    """A layout scanned once: (literal prefix, element, the element's text, the layout after it)
    for each element, the last with element None."""
    out: list[Chunk] = []
    while True:
        prefix, std, rest = next_std(layout)
        out.append((prefix, std, layout[len(prefix):len(layout) - len(rest)], rest))
        if std is None:
            return tuple(out)
        layout = rest


def go_int(x: int, width: int) -> str:
    """Go's appendInt: zero padded to ``width`` digits, the sign in front."""
    return ("-" if x < 0 else "") + str(abs(x)).rjust(width, "0")


def _tdiv(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _trem(a: int, b: int) -> int:
    return a - b * _tdiv(a, b)


def _nano(nsec: int, std: Std) -> str:
    trim = std.code == "frac9"
    if trim and (std.digits == 0 or nsec == 0):
        return ""
    digits = str(nsec).rjust(9, "0")[:std.digits]
    if trim:
        digits = digits.rstrip("0")
        return std.sep + digits if digits else ""
    return std.sep + digits


def _zone(std: str, offset: int) -> str:
    if offset == 0 and std in ISO_ZONES:
        return "Z"
    zone = _tdiv(offset, 60)
    absoffset = offset
    out = "+"
    if zone < 0:
        out = "-"
        zone, absoffset = -zone, -absoffset
    out += go_int(_tdiv(zone, 60), 2)
    if std in ("Z07:00", "-07:00", "Z07:00:00", "-07:00:00"):
        out += ":"
    if std not in ("-07", "Z07"):
        out += go_int(_trem(zone, 60), 2)
    if std in ("Z070000", "-070000", "Z07:00:00", "-07:00:00"):
        if std in ("-07:00:00", "Z07:00:00"):
            out += ":"
        out += go_int(_trem(absoffset, 60), 2)
    return out


class _Wall(NamedTuple):
    year: int
    month: int
    day: int
    hour: int
    minute: int
    second: int
    wday: int
    yday: int
    offset: int
    name: str
    nsec: int


def _abbreviation(w: _Wall) -> str:
    if w.name:
        return w.name
    zone_min = _tdiv(w.offset, 60)  # no abbreviation known: Go writes -0700
    return ("-" if zone_min < 0 else "+") + go_int(abs(zone_min) // 60, 2) + go_int(abs(zone_min) % 60, 2)


_WRITERS: dict[str, Callable[[_Wall, Std], str]] = {
    "06": lambda w, _: go_int(abs(w.year) % 100, 2),
    "2006": lambda w, _: go_int(w.year, 4),
    "Jan": lambda w, _: SHORT_MONTHS[w.month - 1],
    "January": lambda w, _: LONG_MONTHS[w.month - 1],
    "1": lambda w, _: str(w.month),
    "01": lambda w, _: go_int(w.month, 2),
    "Mon": lambda w, _: SHORT_DAYS[w.wday],
    "Monday": lambda w, _: LONG_DAYS[w.wday],
    "2": lambda w, _: str(w.day),
    "_2": lambda w, _: str(w.day).rjust(2),
    "02": lambda w, _: go_int(w.day, 2),
    "__2": lambda w, _: str(w.yday).rjust(3),
    "002": lambda w, _: go_int(w.yday, 3),
    "15": lambda w, _: go_int(w.hour, 2),
    "3": lambda w, _: str(w.hour % 12 or 12),  # noon is 12PM, midnight 12AM
    "03": lambda w, _: go_int(w.hour % 12 or 12, 2),
    "4": lambda w, _: str(w.minute),
    "04": lambda w, _: go_int(w.minute, 2),
    "5": lambda w, _: str(w.second),
    "05": lambda w, _: go_int(w.second, 2),
    "PM": lambda w, _: "PM" if w.hour >= 12 else "AM",
    "pm": lambda w, _: "pm" if w.hour >= 12 else "am",
    "MST": lambda w, _: _abbreviation(w),
    "frac0": lambda w, std: _nano(w.nsec, std),
    "frac9": lambda w, std: _nano(w.nsec, std),
    **{code: (lambda w, std: _zone(std.code, w.offset)) for code in ISO_ZONES | NUM_ZONES},
}


def format_time(layout: str, sec: int, nsec: int, zone: Zone) -> str:
    """Go's ``Time.Format`` for the instant (Unix ``sec``, ``nsec``) shown in ``zone``."""
    wall = _Wall(*fields(sec, zone), nsec)
    out: list[str] = []
    for prefix, std, _, _ in chunks(layout):
        out.append(prefix)
        if std is not None:
            out.append(_WRITERS[std.code](wall, std))
    return "".join(out)
