"""POSIX TZ strings ("EST5EDT,M3.2.0,M11.1.0"), the rule a TZif file gives for times after its
last transition. Parsed once per zone and evaluated the way Go's ``tzset`` evaluates them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._time_calendar import civil_from_days, days_from_civil, days_in, is_leap

ALPHA = -(1 << 63)
OMEGA = (1 << 63) - 1
_DAY = 86400


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str  # "J" (1..365, no leap day), "N" (0..365) or "M" (month.week.day)
    day: int
    week: int
    mon: int
    time: int

    def seconds(self, year: int, off: int) -> int:
        """Seconds after the start of ``year`` (UTC) at which the rule fires, in a zone at ``off``."""
        if self.kind == "J":
            s = (self.day - 1) * _DAY
            if is_leap(year) and self.day >= 60:
                s += _DAY
        elif self.kind == "N":
            s = self.day * _DAY
        else:
            first = days_from_civil(year, self.mon, 1)
            d = (self.day - (first + 4) % 7) % 7  # 1970-01-01 was a Thursday
            for _ in range(1, self.week):
                if d + 7 >= days_in(self.mon, year):
                    break
                d += 7
            s = (first - days_from_civil(year, 1, 1) + d) * _DAY
        return s + self.time - off


@dataclass(frozen=True, slots=True)
class PosixTZ:
    std_name: str
    std_off: int
    dst_name: str = ""
    dst_off: int = 0
    start: _Rule | None = None
    end: _Rule | None = None

    def lookup(self, last_tx: int, sec: int) -> tuple[str, int, int, int, bool]:
        """(abbreviation, offset, start, end, is_dst) at Unix second ``sec`` (Go's tzset)."""
        if self.start is None or self.end is None:
            return self.std_name, self.std_off, last_tx, OMEGA, False
        year = civil_from_days(sec // _DAY)[0]
        year_start = days_from_civil(year, 1, 1) * _DAY
        ysec = sec - year_start
        std_name, std_off, dst_name, dst_off = self.std_name, self.std_off, self.dst_name, self.dst_off
        start, end = self.start.seconds(year, std_off), self.end.seconds(year, dst_off)
        dst_is_dst, std_is_dst = True, False
        if end < start:  # southern hemisphere: the labels swap
            start, end = end, start
            std_name, dst_name = dst_name, std_name
            std_off, dst_off = dst_off, std_off
            std_is_dst, dst_is_dst = dst_is_dst, std_is_dst
        if ysec < start:
            return std_name, std_off, year_start, start + year_start, std_is_dst
        if ysec >= end:
            return std_name, std_off, end + year_start, year_start + 365 * _DAY, std_is_dst
        return dst_name, dst_off, start + year_start, end + year_start, dst_is_dst


def parse_posix_tz(s: str) -> PosixTZ | None:
    """The rule in a POSIX TZ string, or None when Go would not accept it either."""
    found = _name(s)
    std = _offset(found[1]) if found else None
    if found is None or std is None:
        return None
    std_name, (std_off, s) = found[0], std
    std_off = -std_off  # POSIX offsets are added to local time to get UTC; ours the other way
    if not s or s[0] == ",":
        return PosixTZ(std_name, std_off)
    found = _name(s)
    if found is None:
        return None
    dst_name, s = found
    if not s or s[0] == ",":
        dst_off = std_off + 3600
    else:
        dst = _offset(s)
        if dst is None:
            return None
        dst_off, s = -dst[0], dst[1]
    if not s:
        s = ",M3.2.0,M11.1.0"  # tzcode's default DST rules
    if s[0] not in ",;":
        return None
    start = _rule(s[1:])
    if start is None or not start[1] or start[1][0] != ",":
        return None
    end = _rule(start[1][1:])
    if end is None or end[1]:
        return None
    return PosixTZ(std_name, std_off, dst_name, dst_off, start[0], end[0])


def _name(s: str) -> tuple[str, str] | None:
    if not s:
        return None
    if s[0] != "<":
        for i, ch in enumerate(s):
            if ch in "0123456789,-+":
                return (s[:i], s[i:]) if i >= 3 else None
        return (s, "") if len(s) >= 3 else None
    end = s.find(">")
    return (s[1:end], s[end + 1:]) if end >= 0 else None


def _num(s: str, lo: int, hi: int) -> tuple[int, str] | None:
    n = i = 0
    while i < len(s) and "0" <= s[i] <= "9":
        n = n * 10 + ord(s[i]) - 48
        if n > hi:
            return None
        i += 1
    if i == 0 or n < lo:
        return None
    return n, s[i:]


def _offset(s: str) -> tuple[int, str] | None:
    if not s:
        return None
    neg = s[0] == "-"
    if s[0] in "+-":
        s = s[1:]
    parts = []
    found = _num(s, 0, 24 * 7)
    while found is not None:
        n, s = found
        parts.append(n)
        if len(parts) == 3 or not s or s[0] != ":":
            break
        found = _num(s[1:], 0, 59)
    if found is None:
        return None
    off = parts[0] * 3600 + (parts[1] * 60 if len(parts) > 1 else 0) + (parts[2] if len(parts) > 2 else 0)
    return (-off if neg else off), s


def _rule(s: str) -> tuple[_Rule, str] | None:
    if not s:
        return None
    if s[0] == "J":
        found = _num(s[1:], 1, 365)
        if found is None:
            return None
        kind, day, week, mon, s = "J", found[0], 0, 0, found[1]
    elif s[0] == "M":
        m = _num(s[1:], 1, 12)
        w = _num(m[1][1:], 1, 5) if m and m[1][:1] == "." else None
        d = _num(w[1][1:], 0, 6) if w and w[1][:1] == "." else None
        if m is None or w is None or d is None:
            return None
        kind, day, week, mon, s = "M", d[0], w[0], m[0], d[1]
    else:
        found = _num(s, 0, 365)
        if found is None:
            return None
        kind, day, week, mon, s = "N", found[0], 0, 0, found[1]
    at = 2 * 3600
    if s[:1] == "/":
        off = _offset(s[1:])
        if off is None:
            return None
        at, s = off
    return _Rule(kind, day, week, mon, at), s
