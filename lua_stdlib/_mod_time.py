"""`time`: Go's time package for Lua, as Wippy exposes it (the Lua side is lua/time.lua).

    time.now() -> Time                          time.unix(sec, nsec) -> Time (local zone)
    time.date(y, mo, d, h, mi, s, ns, loc?) -> Time   (Go normalisation: month 13 is next January)
    time.parse(layout, s, loc?) -> Time, err    time.parse_duration(d) -> Duration, err
    time.load_location(name) -> Location, err   time.fixed_zone(name, offset_seconds) -> Location
    time.utc, time.localtz                      Location: loc:string(), tostring(loc)
    time.sleep(d); time.after(d) -> channel; time.timer(d) -> Timer; time.ticker(d) -> Ticker
        timer/ticker:response() / :channel() / :stop(); timer:reset(d); channels deliver Time values
    Time: add sub add_date before after equal format format_rfc3339 unix unix_nano date clock year
        month day hour minute second nanosecond weekday year_day is_zero utc in_local in_location
        location round truncate; tostring = Go's Time.String(); == < <= compare instants
    Duration: hours minutes seconds milliseconds microseconds nanoseconds; tostring = Go's form
    Constants: NANOSECOND .. HOUR; Go's layouts under Wippy's names (RFC3339, RFC3339NANO, RFC822(Z),
        RFC850, RFC1123(Z), KITCHEN, STAMP(_MILLI/_MICRO/_NANO), DATE_TIME, DATE_ONLY, TIME_ONLY) plus
        the ones Wippy does not name (ANSIC, UNIX_DATE, RUBY_DATE, LAYOUT); JANUARY .. DECEMBER (1..12),
        SUNDAY .. SATURDAY (0..6)
Errors: bad layouts/values, durations and empty zone names are INVALID values, unknown zones
NOT_FOUND; a duration <= 0 for after/timer/ticker is INVALID; wrong argument types raise, as in Wippy.
Durations in arguments: a number of nanoseconds, a Go duration string ("1h30m") or a Duration.
Instants are integer Unix seconds plus nanoseconds, so nanosecond precision is never lost.
"""

from __future__ import annotations

import asyncio
import time as _time
from typing import Any

from ._durations import format_go_duration, parse_go_duration
from ._host import LuaHost, register_module
from ._time_calendar import date_to_unix, fields
from ._time_layout import LAYOUTS, format_time
from ._time_parse import ParseError, parse_time
from ._time_zone import LOCAL, UTC, UnknownZone, Zone, load
from ._vm import _source

_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1
_MONO_BASE = _time.monotonic_ns()


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _now() -> tuple[int, int, int]:
    ns = _time.time_ns()
    return ns // 1_000_000_000, ns % 1_000_000_000, _time.monotonic_ns() - _MONO_BASE


def _parse_duration(text: Any) -> tuple[int | None, str | None]:
    try:
        return parse_go_duration(_text(text)), None
    except ValueError as exc:
        return None, str(exc)


def _date(  # noqa: PLR0917 - called from Lua
    year: int, month: int, day: int, hour: int, minute: int, sec: int, nsec: int, zone: Zone,
) -> tuple[int | None, int | str]:
    s, ns = date_to_unix(int(year), int(month), int(day), int(hour), int(minute), int(sec), int(nsec), zone)
    if not _INT_MIN <= s <= _INT_MAX:
        return None, "time out of range"
    return s, ns


def _parse(layout: Any, value: Any, zone: Zone) -> tuple[Any, Any, Any]:
    try:
        s, ns, found = parse_time(_text(layout), _text(value), zone, zone)
    except ParseError as exc:
        return None, str(exc), None
    if not _INT_MIN <= s <= _INT_MAX:
        return None, f"parsing time {value!r}: time out of range", None
    return s, ns, 0 if found is zone else 1 if found is UTC else found


def _round(sec: int, nsec: int, d: int, nearest: bool) -> tuple[int, int]:
    """Go's Time.Round / Time.Truncate: multiples of ``d`` counted from Go's zero time (year 1)."""
    if d <= 0:
        return sec, nsec
    total = (sec + 62135596800) * 1_000_000_000 + nsec
    r = total % d
    total = total + d - r if nearest and r + r >= d else total - r
    s, ns = divmod(total, 1_000_000_000)
    return s - 62135596800, ns


def _load_location(name: Any) -> tuple[Any, str | None]:
    try:
        return load(_text(name)), None
    except UnknownZone as exc:
        return None, str(exc)


def _fixed_zone(name: Any, offset: int) -> Zone:
    return Zone.fixed(_text(name), int(offset))


def _build(host: LuaHost) -> Any:
    vm = host.vm

    def call_later(seconds: float, fn: Any) -> asyncio.TimerHandle:
        def fire() -> None:
            fn()
            vm.schedule_pump()

        return asyncio.get_running_loop().call_later(max(0.0, float(seconds)), fire)

    def cancel(handle: Any) -> None:
        if isinstance(handle, asyncio.TimerHandle):
            handle.cancel()

    bridge = vm.rt.table_from({
        "call_later": call_later, "cancel": cancel, "now": _now, "now_ns": _time.time_ns,
        "parse_duration": _parse_duration, "format_duration": format_go_duration,
        "fields": fields, "format": lambda layout, s, ns, zone: format_time(_text(layout), s, ns, zone),
        "parse": _parse, "date": _date, "round": _round, "load_location": _load_location,
        "fixed_zone": _fixed_zone, "zone_name": lambda zone: zone.name, "utc": UTC, "localtz": LOCAL,
        "layouts": vm.rt.table_from(LAYOUTS),
    })
    return vm.rt.execute(_source("time.lua"), vm.S, vm.channel, vm.errors, bridge)


register_module("time", _build)
