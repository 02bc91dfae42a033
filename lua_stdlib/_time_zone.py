"""Time zones with Go's semantics: TZif data (system zoneinfo, else the ``tzdata`` package),
POSIX TZ rules past the last transition (``_time_posix``), fixed zones, UTC and the process's
local zone (``$TZ``, else /etc/localtime, else UTC, as Go decides it).

``Zone.lookup(unix_seconds)`` answers what Go's ``Location.lookup`` answers: the abbreviation,
the offset, and the span of seconds during which they hold.
"""

from __future__ import annotations

import os
import struct
from bisect import bisect_right
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ._time_posix import ALPHA, OMEGA, parse_posix_tz

_SOURCES = ("/usr/share/zoneinfo/", "/usr/share/lib/zoneinfo/", "/usr/lib/locale/TZ/", "/etc/zoneinfo/")


@dataclass(frozen=True, slots=True)
class Period:
    name: str
    offset: int
    is_dst: bool


class UnknownZone(Exception):
    """No time zone of that name (message in Go's words)."""


class Zone:
    """A Location: a name, its periods, the transitions between them and a POSIX rule after them."""

    __slots__ = ("extend", "name", "periods", "rule", "tx_index", "tx_when")

    def __init__(self, name: str, periods: list[Period], tx_when: list[int], tx_index: list[int],
                 extend: str = "") -> None:
        self.name = name
        self.periods = periods
        self.tx_when = tx_when
        self.tx_index = tx_index
        self.extend = extend
        self.rule = parse_posix_tz(extend) if extend else None

    @classmethod
    def fixed(cls, name: str, offset: int) -> Zone:
        return cls(name, [Period(name, offset, False)], [ALPHA], [0])

    def __repr__(self) -> str:
        return f"Zone({self.name!r})"

    def _first_period(self) -> int:
        if 0 not in self.tx_index:
            return 0
        if self.tx_index and self.periods[self.tx_index[0]].is_dst:
            for i in range(self.tx_index[0] - 1, -1, -1):
                if not self.periods[i].is_dst:
                    return i
        for i, p in enumerate(self.periods):
            if not p.is_dst:
                return i
        return 0

    def lookup(self, sec: int) -> tuple[str, int, int, int, bool]:
        """(abbreviation, offset, start, end, is_dst) in effect at Unix second ``sec``."""
        if not self.periods:
            return "UTC", 0, ALPHA, OMEGA, False
        if not self.tx_when or sec < self.tx_when[0]:
            p = self.periods[self._first_period()]
            return p.name, p.offset, ALPHA, self.tx_when[0] if self.tx_when else OMEGA, p.is_dst
        lo = bisect_right(self.tx_when, sec) - 1
        end = self.tx_when[lo + 1] if lo + 1 < len(self.tx_when) else OMEGA
        p = self.periods[self.tx_index[lo]]
        if lo == len(self.tx_when) - 1 and self.rule is not None:
            return self.rule.lookup(self.tx_when[lo], sec)
        return p.name, p.offset, self.tx_when[lo], end, p.is_dst

    def offset(self, sec: int) -> tuple[int, str]:
        name, off, _, _, _ = self.lookup(sec)
        return off, name

    def lookup_name(self, name: str, sec: int) -> int | None:
        """The offset of the period called ``name`` around ``sec`` (Go's lookupName), or None."""
        for p in self.periods:
            if p.name == name:
                found, off, _, _, _ = self.lookup(sec - p.offset)
                if found == p.name:
                    return off
        for p in self.periods:
            if p.name == name:
                return p.offset
        return None


UTC = Zone("UTC", [], [], [])


# -- TZif ---------------------------------------------------------------------------------------
def from_tzif(name: str, data: bytes) -> Zone:
    """A Zone from TZif bytes (RFC 8536), the way Go's LoadLocationFromTZData reads them."""
    if len(data) < 44 or data[:4] != b"TZif":
        raise ValueError("malformed time zone information")
    version = data[4]
    pos, time_size = 0, 4
    counts = struct.unpack(">6l", data[20:44])
    if version in (ord("2"), ord("3"), ord("4")):
        isut, isstd, leap, timecnt, typecnt, charcnt = counts
        pos = 44 + timecnt * 5 + typecnt * 6 + charcnt + leap * 8 + isstd + isut
        if data[pos:pos + 4] != b"TZif":
            raise ValueError("malformed time zone information")
        counts = struct.unpack(">6l", data[pos + 20:pos + 44])
        time_size = 8
    isut, isstd, leap, timecnt, typecnt, charcnt = counts
    p = pos + 44
    fmt = f">{timecnt}q" if time_size == 8 else f">{timecnt}l"
    when = list(struct.unpack(fmt, data[p:p + timecnt * time_size]))
    p += timecnt * time_size
    index = list(data[p:p + timecnt])
    p += timecnt
    raw_types = [struct.unpack(">lBB", data[p + 6 * i:p + 6 * i + 6]) for i in range(typecnt)]
    p += typecnt * 6
    chars = data[p:p + charcnt]
    p += charcnt + leap * (time_size + 4) + isstd + isut
    if typecnt == 0 or any(i >= typecnt for i in index):
        raise ValueError("malformed time zone information")
    periods = []
    for off, dst, abbr in raw_types:
        end = chars.find(b"\0", abbr)
        periods.append(Period(chars[abbr:end if end >= 0 else None].decode("latin-1"), off, bool(dst)))
    extend = ""
    if time_size == 8 and data[p:p + 1] == b"\n":
        nl = data.find(b"\n", p + 1)
        if nl > p:
            extend = data[p + 1:nl].decode("latin-1")
    if not when:
        when, index = [ALPHA], [0]
    return Zone(name, periods, when, index, extend)


def _read_zone_file(name: str) -> bytes | None:
    for base in _SOURCES:
        path = Path(base + name)
        try:
            if path.is_file():
                return path.read_bytes()
        except OSError:
            continue
    try:
        ref = resources.files("tzdata.zoneinfo").joinpath(*name.split("/"))
        if ref.is_file():
            return ref.read_bytes()
    except (ModuleNotFoundError, OSError, ValueError):
        return None
    return None


_CACHE: dict[str, Zone] = {}


def load(name: str) -> Zone:
    """Go's LoadLocation for an IANA name ("" and "UTC" give UTC, "Local" the local zone)."""
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        return LOCAL
    if ".." in name or name[0] in "/\\" or "\0" in name:
        raise UnknownZone("time: invalid location name")
    found = _CACHE.get(name)
    if found is None:
        data = _read_zone_file(name)
        if data is None:
            raise UnknownZone(f"unknown time zone {name}")
        try:
            found = from_tzif(name, data)
        except (ValueError, struct.error):
            raise UnknownZone(f"unknown time zone {name}") from None
        _CACHE[name] = found
    return found


def _local() -> Zone:
    tz = os.environ.get("TZ")
    if tz is None:
        try:
            return _renamed(from_tzif("Local", Path("/etc/localtime").read_bytes()), "Local")
        except (OSError, ValueError, struct.error):
            return UTC
    if tz == "":
        return UTC
    tz = tz[1:] if tz.startswith(":") else tz
    try:
        if tz.startswith("/"):
            return _renamed(from_tzif(tz, Path(tz).read_bytes()), "Local" if tz == "/etc/localtime" else tz)
        return load(tz) if tz != "UTC" else UTC
    except (OSError, ValueError, struct.error, UnknownZone):
        return UTC


def _renamed(zone: Zone, name: str) -> Zone:
    return Zone(name, zone.periods, zone.tx_when, zone.tx_index, zone.extend)


LOCAL = _local()
