"""Database values as Lua-ready data, the way Wippy hands them to Lua.

Wippy formats times as RFC 3339 in UTC without fractions (Go's ``time.RFC3339``); SQLite columns
declared DATETIME/TIMESTAMP/DATE come back as times too (Go's sqlite driver parses them), and
BOOLEAN columns as booleans. NUMERIC/DECIMAL values become numbers (an integer when whole),
UUIDs text, arrays and structs tables, intervals and times of day text.
"""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal
from typing import Any

_UTC = datetime.UTC


def rfc3339(value: datetime.datetime | datetime.date) -> str:
    """Go's ``t.UTC().Format(time.RFC3339)``: a naive time is taken as UTC; a date as its midnight."""
    if not isinstance(value, datetime.datetime):
        value = datetime.datetime(value.year, value.month, value.day, tzinfo=_UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=_UTC)
    return value.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sqlite_time(raw: bytes) -> str:
    """A DATETIME/TIMESTAMP/DATE column value as RFC 3339 (text as is when it is no time).

    Accepts the layouts Go's sqlite driver parses (``2006-01-02 15:04:05.999-07:00``, with ``T``
    or a space, down to a bare date, a trailing ``Z``) and Unix times (seconds, or milliseconds
    past 1e12)."""
    text = raw.decode("utf-8", errors="replace")
    s = text.strip()
    if s.lstrip("-").isdigit():
        n = int(s)
        seconds = n / 1000 if abs(n) > 10**12 else n
        try:
            return rfc3339(datetime.datetime.fromtimestamp(seconds, _UTC))
        except (OverflowError, OSError, ValueError):
            return text
    s = s.removesuffix("Z").removesuffix("z")
    try:
        return rfc3339(datetime.datetime.fromisoformat(s))
    except ValueError:
        return text


def sqlite_bool(raw: bytes) -> Any:
    """A BOOLEAN column value: integers as booleans (Go's driver does the same), text as is."""
    text = raw.decode("utf-8", errors="replace")
    if text.lstrip("-").isdigit():
        return int(text) > 0
    return text


def number(value: Decimal) -> int | float:
    if value.is_finite() and value == value.to_integral_value():
        as_int = int(value)
        if -(1 << 63) <= as_int < (1 << 63):
            return as_int
    return float(value)


def plain(value: Any) -> Any:
    """A driver value (asyncpg, DuckDB) as data Lua takes: None, bool, int, float, str, bytes,
    lists and dicts of those."""
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return value
    if isinstance(value, datetime.datetime | datetime.date):
        return rfc3339(value)
    if isinstance(value, Decimal):
        return number(value)
    if isinstance(value, datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta | uuid.UUID):
        return str(value)
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)
