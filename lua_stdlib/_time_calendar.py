"""The proleptic Gregorian calendar on integer Unix seconds, for any year (Go's ``time`` does the
same: year 0 and negative years exist; ``time.parse("15:04", ...)`` lands in year 0).

Instants are (Unix seconds, nanoseconds 0..999999999); wall fields come from seconds plus the
zone offset in effect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._time_zone import Zone

_DAY = 86400
_DAYS_BEFORE = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365)
#: Unix seconds of Go's zero Time, January 1, year 1, 00:00:00 UTC
ZERO_UNIX = -62135596800


def is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_in(month: int, year: int) -> int:
    if month == 2:
        return 29 if is_leap(year) else 28
    return _DAYS_BEFORE[month] - _DAYS_BEFORE[month - 1]


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to year-month-day (month 1..12; day may run past the month)."""
    y = year - 1 if month <= 2 else year
    era = y // 400
    yoe = y - era * 400
    mp = (month + 9) % 12
    doy = (153 * mp + 2) // 5
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468 + day - 1


def civil_from_days(days: int) -> tuple[int, int, int]:
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if month <= 2 else 0), month, day


def split_unix(sec: int) -> tuple[int, int]:
    """(days since 1970-01-01, seconds into that day), flooring before the epoch."""
    return sec // _DAY, sec % _DAY


def fields(sec: int, zone: Zone) -> tuple[int, int, int, int, int, int, int, int, int, str]:
    """(year, month, day, hour, minute, second, weekday 0=Sunday, year day 1..366, offset, abbreviation)."""
    name, off, _, _, _ = zone.lookup(sec)
    days, rem = split_unix(sec + off)
    year, month, day = civil_from_days(days)
    yday = _DAYS_BEFORE[month - 1] + day + (1 if month > 2 and is_leap(year) else 0)
    return year, month, day, rem // 3600, rem // 60 % 60, rem % 60, (days + 4) % 7, yday, off, name


def _norm(hi: int, lo: int, base: int) -> tuple[int, int]:
    return hi + lo // base, lo % base


def date_to_unix(  # noqa: PLR0917 - Go's time.Date
    year: int, month: int, day: int, hour: int, minute: int, sec: int, nsec: int, zone: Zone,
) -> tuple[int, int]:
    """Go's ``time.Date``: fields normalised (month 13 is January of the next year, second 60 the
    next minute, ...) and the wall time placed in ``zone`` the way Go does around transitions."""
    year, m = _norm(year, month - 1, 12)
    sec, nsec = _norm(sec, nsec, 1_000_000_000)
    minute, sec = _norm(minute, sec, 60)
    hour, minute = _norm(hour, minute, 60)
    day, hour = _norm(day, hour, 24)
    wall = (days_from_civil(year, m + 1, 1) + day - 1) * _DAY + hour * 3600 + minute * 60 + sec
    # Go: take the offset in effect at `wall` read as UTC; if the instant that gives falls outside
    # that offset's span, use the offset in effect at that instant instead.
    _, off, start, end, _ = zone.lookup(wall)
    if off != 0:
        utc = wall - off
        if utc < start or utc >= end:
            _, off, _, _, _ = zone.lookup(utc)
        wall -= off
    return wall, nsec
