"""asyncpg codecs for Postgres times, dates and bytea, the way Lua code hands values over and wants
them back (see services._sql_postgres).

Decoding: ``timestamp``/``timestamptz`` as RFC 3339 in UTC without fractions (Go's
``time.RFC3339``), ``date`` as its midnight in the same form. Encoding: a datetime or date as is,
ISO 8601 / RFC 3339 text (``2024-01-02T03:04:05Z``, ``2024-01-02 03:04:05+02``, ``2024-01-02``),
or Unix seconds; ``bytea`` also from text (its UTF-8 bytes).
"""

from __future__ import annotations

import datetime
from typing import Any

from ._sql_values import rfc3339

_UTC = datetime.UTC
_EPOCH = datetime.datetime(2000, 1, 1, tzinfo=_UTC)
_EPOCH_DATE = datetime.date(2000, 1, 1)
_MAX = (1 << 63) - 1
_MIN = -(1 << 63)


def _moment(value: Any) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=_UTC)
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day, tzinfo=_UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.datetime.fromtimestamp(value, _UTC)
    if isinstance(value, str):
        text = value.strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a time (use RFC 3339, like 2024-01-02T03:04:05Z)") from None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=_UTC)
    raise ValueError(f"a {type(value).__name__} is not a time")


def _encode_ts(value: Any) -> tuple[int]:
    delta = _moment(value) - _EPOCH
    return ((delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds,)


def _decode_ts(parts: tuple[int]) -> str:
    micros = parts[0]
    if micros in (_MAX, _MIN):
        return "infinity" if micros == _MAX else "-infinity"
    return rfc3339(_EPOCH + datetime.timedelta(microseconds=micros))


def _encode_date(value: Any) -> tuple[int]:
    day = value if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime) \
        else _moment(value).astimezone(_UTC).date()
    return ((day - _EPOCH_DATE).days,)


def _decode_date(parts: tuple[int]) -> str:
    days = parts[0]
    if days in (0x7FFFFFFF, -0x80000000):
        return "infinity" if days > 0 else "-infinity"
    return rfc3339(_EPOCH_DATE + datetime.timedelta(days=days))


def _encode_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)


async def install(conn: Any) -> None:
    """Set the codecs on a new connection."""
    for name in ("timestamptz", "timestamp"):
        await conn.set_type_codec(name, schema="pg_catalog", encoder=_encode_ts, decoder=_decode_ts, format="tuple")
    await conn.set_type_codec("date", schema="pg_catalog", encoder=_encode_date, decoder=_decode_date,
                              format="tuple")
    await conn.set_type_codec("bytea", schema="pg_catalog", encoder=_encode_bytes, decoder=bytes, format="binary")
