"""Parsing with Go layouts, following Go's ``time.ParseInLocation`` step by step: the same
elements, the same leniencies (any one- or two-digit day, fractions after seconds the layout does
not mention, runs of spaces), the same zone rules, and Go's error messages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ._durations import go_quote
from ._time_calendar import date_to_unix, days_in, is_leap
from ._time_layout import ISO_ZONES, LONG_DAYS, LONG_MONTHS, NUM_ZONES, SHORT_DAYS, SHORT_MONTHS, Std, chunks
from ._time_zone import UTC, Zone

_DAYS_BEFORE = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365)


class ParseError(ValueError):
    """A value that does not match its layout; the message is Go's."""

    def __init__(self, layout: str, value: str, layout_elem: str, value_elem: str, message: str) -> None:
        if message:
            text = f"parsing time {go_quote(value)}{message}"
        else:
            text = (f"parsing time {go_quote(value)} as {go_quote(layout)}: cannot parse {go_quote(value_elem)}"
                    f" as {go_quote(layout_elem)}")
        super().__init__(text)


class _Bad(Exception):
    """The value does not match the layout element."""


_DIGITS = frozenset("0123456789")


def _digit(s: str, i: int) -> bool:
    return s[i:i + 1] in _DIGITS


def _getnum(s: str, fixed: bool) -> tuple[int, str]:
    """One or two leading digits (two when ``fixed``), as Go's getnum."""
    if s[:1] not in _DIGITS:
        raise _Bad
    if s[1:2] not in _DIGITS:
        if fixed:
            raise _Bad
        return ord(s[0]) - 48, s[1:]
    return (ord(s[0]) - 48) * 10 + ord(s[1]) - 48, s[2:]


def _getnum3(s: str, fixed: bool) -> tuple[int, str]:
    n = i = 0
    while i < 3 and _digit(s, i):
        n = n * 10 + ord(s[i]) - 48
        i += 1
    if i == 0 or (fixed and i != 3):
        raise _Bad
    return n, s[i:]


def _leading_int(s: str) -> tuple[int, str]:
    x = i = 0
    while _digit(s, i):
        x = x * 10 + ord(s[i]) - 48
        if x > 1 << 63:
            raise _Bad
        i += 1
    return x, s[i:]


def _atoi(s: str) -> int:
    neg = s[:1] == "-"
    if s[:1] in ("+", "-"):
        s = s[1:]
    x, rest = _leading_int(s)
    if rest:
        raise _Bad
    return -x if neg else x


def _lookup(names: tuple[str, ...], value: str) -> tuple[int, str]:
    for i, name in enumerate(names):
        if len(value) >= len(name) and value[:len(name)].lower() == name.lower() and value[:len(name)].isascii():
            return i, value[len(name):]
    raise _Bad


def _skip(value: str, prefix: str) -> str:
    while prefix:
        if prefix[0] == " ":
            if value and value[0] != " ":
                raise _Bad
            prefix = prefix.lstrip(" ")
            value = value.lstrip(" ")
            continue
        if not value or value[0] != prefix[0]:
            raise _Bad
        prefix, value = prefix[1:], value[1:]
    return value


def _signed_offset(value: str) -> int:
    if value[0] not in "+-":
        return 0
    try:
        x, rest = _leading_int(value[1:])
    except _Bad:
        return 0
    if rest == value[1:] or x > 23:
        return 0
    return len(value) - len(rest)


def _zone_name_length(value: str) -> int:
    """How much of ``value`` looks like a zone abbreviation (Go's parseTimeZone); 0 for none."""
    if len(value) < 3:
        return 0
    if value[:4] in ("ChST", "MeST"):
        return 4
    if value[:3] == "GMT":
        return 3 + (_signed_offset(value[3:]) if len(value) > 3 else 0)
    if value[0] in "+-":
        return _signed_offset(value)
    upper = 0
    while upper < 6 and upper < len(value) and "A" <= value[upper] <= "Z":
        upper += 1
    if upper == 3:
        return 3
    if upper == 4 and (value[3] == "T" or value[:4] == "WITA"):
        return 4
    if upper == 5 and value[4] == "T":
        return 5
    return 0


def _nanoseconds(value: str, nbytes: int) -> int:
    if value[0] not in ".,":
        raise _Bad
    nbytes = min(nbytes, 10)
    ns = _atoi(value[1:nbytes])
    if ns < 0:
        raise _Range("fractional second")
    return ns * int(10 ** (10 - nbytes))  # scaled by the digits missing from nine


class _Range(Exception):
    """A number out of range for its element (Go reports it before a malformed element)."""


@dataclass(slots=True)
class _Fields:
    year: int = 0
    month: int = -1
    day: int = -1
    yday: int = -1
    hour: int = 0
    minute: int = 0
    sec: int = 0
    nsec: int = 0
    am: bool = False
    pm: bool = False
    zone: Zone | None = None
    zone_offset: int = -1
    zone_name: str = ""


# One reader per layout element: (fields, value, element, rest of the layout) -> rest of the value.
_Reader = Callable[[_Fields, str, Std, str], str]


def _year2(f: _Fields, value: str, std: Std, layout: str) -> str:
    if len(value) < 2:
        raise _Bad
    year = _atoi(value[:2])
    f.year = year + (1900 if year >= 69 else 2000)  # Unix time starts Dec 31 1969 in some zones
    return value[2:]


def _year4(f: _Fields, value: str, std: Std, layout: str) -> str:
    if len(value) < 4 or not _digit(value, 0):
        raise _Bad
    f.year = _atoi(value[:4])
    return value[4:]


def _month_name(f: _Fields, value: str, std: Std, layout: str) -> str:
    month, value = _lookup(SHORT_MONTHS if std.code == "Jan" else LONG_MONTHS, value)
    f.month = month + 1
    return value


def _month_number(f: _Fields, value: str, std: Std, layout: str) -> str:
    f.month, value = _getnum(value, std.code == "01")
    if not 0 < f.month <= 12:
        raise _Range("month")
    return value


def _weekday(f: _Fields, value: str, std: Std, layout: str) -> str:
    return _lookup(SHORT_DAYS if std.code == "Mon" else LONG_DAYS, value)[1]  # checked, then ignored


def _day(f: _Fields, value: str, std: Std, layout: str) -> str:
    if std.code == "_2" and value[:1] == " ":
        value = value[1:]
    f.day, value = _getnum(value, std.code == "02")  # any one- or two-digit day; checked at the end
    return value


def _year_day(f: _Fields, value: str, std: Std, layout: str) -> str:
    for _ in range(2):
        if std.code == "__2" and value[:1] == " ":
            value = value[1:]
    f.yday, value = _getnum3(value, std.code == "002")
    return value


def _hour(f: _Fields, value: str, std: Std, layout: str) -> str:
    f.hour, value = _getnum(value, std.code == "03")
    if not 0 <= f.hour < (24 if std.code == "15" else 13):
        raise _Range("hour")
    return value


def _minute(f: _Fields, value: str, std: Std, layout: str) -> str:
    f.minute, value = _getnum(value, std.code == "04")
    if not 0 <= f.minute < 60:
        raise _Range("minute")
    return value


def _second(f: _Fields, value: str, std: Std, layout: str) -> str:
    f.sec, value = _getnum(value, std.code == "05")
    if not 0 <= f.sec < 60:
        raise _Range("second")
    # a fraction in the value that the layout does not mention right here
    if len(value) >= 2 and value[0] in ".," and _digit(value, 1):
        follow = chunks(layout)[0][1]
        if follow is None or not follow.code.startswith("frac"):
            n = 2
            while _digit(value, n):
                n += 1
            f.nsec = _nanoseconds(value, n)
            value = value[n:]
    return value


def _meridiem(f: _Fields, value: str, std: Std, layout: str) -> str:
    if len(value) < 2:
        raise _Bad
    p = value[:2]
    if p == ("PM" if std.code == "PM" else "pm"):
        f.pm = True
    elif p == ("AM" if std.code == "PM" else "am"):
        f.am = True
    else:
        raise _Bad
    return value[2:]


def _offset(f: _Fields, value: str, std: Std, layout: str) -> str:
    if std.code in ISO_ZONES and value[:1] == "Z":
        f.zone = UTC
        return value[1:]
    f.zone_offset, value = _numeric_zone(std.code, value)
    return value


def _zone_abbreviation(f: _Fields, value: str, std: Std, layout: str) -> str:
    if value[:3] == "UTC":
        f.zone = UTC
        return value[3:]
    n = _zone_name_length(value)
    if n == 0:
        raise _Bad
    f.zone_name = value[:n]
    return value[n:]


def _fraction(f: _Fields, value: str, std: Std, layout: str) -> str:
    if std.code == "frac0":  # exactly as many digits as the layout has
        ndigit = 1 + std.digits
        if len(value) < ndigit:
            raise _Bad
        f.nsec = _nanoseconds(value, ndigit)
        return value[ndigit:]
    if len(value) < 2 or value[0] not in ".," or not _digit(value, 1):
        return value  # ".999": the fraction may be left out
    i = 0
    while _digit(value, i + 1):  # any number of digits, as after seconds
        i += 1
    f.nsec = _nanoseconds(value, 1 + i)
    return value[1 + i:]


_READERS: dict[str, _Reader] = {
    "06": _year2, "2006": _year4, "Jan": _month_name, "January": _month_name, "1": _month_number,
    "01": _month_number, "Mon": _weekday, "Monday": _weekday, "2": _day, "_2": _day, "02": _day,
    "__2": _year_day, "002": _year_day, "15": _hour, "3": _hour, "03": _hour, "4": _minute, "04": _minute,
    "5": _second, "05": _second, "PM": _meridiem, "pm": _meridiem, "MST": _zone_abbreviation,
    "frac0": _fraction, "frac9": _fraction,
    **dict.fromkeys(ISO_ZONES | NUM_ZONES, _offset),
}


def parse_time(layout: str, value: str, default: Zone, local: Zone) -> tuple[int, int, Zone]:
    """(Unix seconds, nanoseconds, zone) for ``value`` read with ``layout``; ParseError if it does
    not match. ``default`` applies when the value names no zone; ``local`` is the zone whose
    offsets and abbreviations are recognised (Go's ParseInLocation passes the same for both)."""
    avalue = value
    f = _Fields()
    for prefix, std, element, rest in chunks(layout):
        try:
            value = _skip(value, prefix)
        except _Bad:
            raise ParseError(layout, avalue, prefix, value, "") from None
        if std is None:
            if value:
                raise ParseError(layout, avalue, "", value, ": extra text: " + go_quote(value))
            break
        hold = value
        try:
            value = _READERS[std.code](f, value, std, rest)
        except _Range as exc:
            raise ParseError(layout, avalue, element, value, f": {exc.args[0]} out of range") from None
        except _Bad:
            raise ParseError(layout, avalue, element, hold, "") from None
    return _assemble(f, layout, avalue, value, default=default, local=local)


def _numeric_zone(code: str, value: str) -> tuple[int, str]:
    kind = code[1:]
    if kind == "07:00":
        if len(value) < 6 or value[3] != ":":
            raise _Bad
        sign, hh, mm, ss, value = value[0], value[1:3], value[4:6], "00", value[6:]
    elif kind == "07":
        if len(value) < 3:
            raise _Bad
        sign, hh, mm, ss, value = value[0], value[1:3], "00", "00", value[3:]
    elif kind == "07:00:00":
        if len(value) < 9 or value[3] != ":" or value[6] != ":":
            raise _Bad
        sign, hh, mm, ss, value = value[0], value[1:3], value[4:6], value[7:9], value[9:]
    elif kind == "070000":
        if len(value) < 7:
            raise _Bad
        sign, hh, mm, ss, value = value[0], value[1:3], value[3:5], value[5:7], value[7:]
    else:
        if len(value) < 5:
            raise _Bad
        sign, hh, mm, ss, value = value[0], value[1:3], value[3:5], "00", value[5:]
    hr = mi = se = 0
    bad = False
    try:  # as Go: a range error found before a malformed part wins
        hr = _getnum(hh, True)[0]
        mi = _getnum(mm, True)[0]
        se = _getnum(ss, True)[0]
    except _Bad:
        bad = True
    # Go checks with > (offsets of 24 hours or 60 minutes are written in the wild)
    if se > 60:
        raise _Range("time zone offset second")
    if mi > 60:
        raise _Range("time zone offset minute")
    if hr > 24:
        raise _Range("time zone offset hour")
    offset = (hr * 60 + mi) * 60 + se
    if bad or sign not in "+-":
        raise _Bad
    return (-offset if sign == "-" else offset), value


def _assemble(f: _Fields, alayout: str, avalue: str, rest: str, *, default: Zone,
              local: Zone) -> tuple[int, int, Zone]:
    year, month, day, yday, hour = f.year, f.month, f.day, f.yday, f.hour
    if f.pm and hour < 12:
        hour += 12
    elif f.am and hour == 12:
        hour = 0
    if yday >= 0:
        m = d = 0
        if is_leap(year):
            if yday == 31 + 29:
                m, d = 2, 29
            elif yday > 31 + 29:
                yday -= 1
        if yday < 1 or yday > 365:
            raise ParseError(alayout, avalue, "", rest, ": day-of-year out of range")
        if m == 0:
            m = (yday - 1) // 31 + 1
            if _DAYS_BEFORE[m] < yday:
                m += 1
            d = yday - _DAYS_BEFORE[m - 1]
        if month >= 0 and month != m:
            raise ParseError(alayout, avalue, "", rest, ": day-of-year does not match month")
        month = m
        if day >= 0 and day != d:
            raise ParseError(alayout, avalue, "", rest, ": day-of-year does not match day")
        day = d
    else:
        month = 1 if month < 0 else month
        day = 1 if day < 0 else day
    if day < 1 or day > days_in(month, year):
        raise ParseError(alayout, avalue, "", rest, ": day out of range")
    wall = (year, month, day, hour, f.minute, f.sec, f.nsec)
    if f.zone is not None:
        return (*date_to_unix(*wall, f.zone), f.zone)
    if f.zone_offset != -1:
        s, ns = date_to_unix(*wall, UTC)
        s -= f.zone_offset
        # the local zone, when it had that offset (and abbreviation) then; else a made-up zone
        name, off, _, _, _ = local.lookup(s)
        if off == f.zone_offset and (not f.zone_name or name == f.zone_name):
            return s, ns, local
        return s, ns, Zone.fixed(f.zone_name, f.zone_offset)
    if f.zone_name:
        s, ns = date_to_unix(*wall, UTC)
        found = local.lookup_name(f.zone_name, s)
        if found is not None:
            return s - found, ns, local
        # an unknown abbreviation: Go records it with offset 0 (GMT+n: n hours), the clock unchanged
        offset = _atoi(f.zone_name[3:]) * 3600 if len(f.zone_name) > 3 and f.zone_name[:3] == "GMT" else 0
        return s, ns, Zone.fixed(f.zone_name, offset)
    return (*date_to_unix(*wall, default), default)
