"""`uuid`: generating, checking and taking apart UUIDs, with Wippy's rules.

    uuid.v1() / v4() / v7() -> string, err      v1: time + a random node id chosen once per process;
                                                v7 (RFC 9562): Unix milliseconds, a sub-millisecond
                                                fraction that keeps ids from one process increasing,
                                                and 62 random bits
    uuid.v3(namespace, name) / v5(...) -> string, err   (MD5 / SHA-1 of namespace + name)
    uuid.validate(x) -> boolean                 true for a string in a form `parse` accepts
    uuid.version(id) -> integer, err
    uuid.variant(id) -> "RFC4122" | "Microsoft" | "Future" | "Reserved", err
    uuid.parse(id) -> {version, variant, timestamp?, node?}, err
                                                timestamp: Unix seconds (v1, v7); node: the six
                                                node bytes, raw (v1), as Wippy returns them
    uuid.format(id, "standard" | "simple" | "urn") -> string, err

Accepted forms (Go's uuid.Parse): 8-4-4-4-12 hex, the same in braces, with a urn:uuid: prefix,
or 32 hex digits; any case. Output is lower case. Bad input gives ``nil, err`` (INVALID).
The variant names follow Go's uuid package, which reports the NCS range (0xxx) as "Reserved".
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
import uuid as _uuid
from typing import Any

from ._binary import Raw, as_bytes, type_name, wrap
from ._host import LuaHost, register_module

_FORMS = re.compile(
    r"(?P<std>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"|\{(?P<braced>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}"
    r"|(?i:urn:uuid:)(?P<urn>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"|(?P<simple>[0-9a-fA-F]{32})"
)
#: 100-nanosecond intervals between the Gregorian epoch (1582-10-15) and the Unix epoch
_GREGORIAN_OFFSET = 0x01B21DD213814000


def parse_uuid(text: str) -> bytes | None:
    """The 16 bytes of a UUID in one of the accepted forms, or None."""
    m = _FORMS.fullmatch(text)
    if m is None:
        return None
    digits = next(g for g in m.groups() if g is not None)
    return bytes.fromhex(digits.replace("-", ""))


def variant_name(raw: bytes) -> str:
    b = raw[8]
    if b & 0xC0 == 0x80:
        return "RFC4122"
    if b & 0xE0 == 0xC0:
        return "Microsoft"
    if b & 0xE0 == 0xE0:
        return "Future"
    return "Reserved"


def _name_based(namespace: bytes, name: bytes, algo: str, version: int) -> str:
    digest = bytearray(hashlib.new(algo, namespace + name, usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | (version << 4)
    digest[8] = (digest[8] & 0x3F) | 0x80
    return str(_uuid.UUID(bytes=bytes(digest)))


class _V7Clock:
    """Millisecond timestamps with a 12-bit sub-millisecond fraction, strictly increasing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def next(self) -> int:
        ns = time.time_ns()
        now = ((ns // 1_000_000) << 12) | ((ns % 1_000_000) * 4096 // 1_000_000)
        with self._lock:
            if now <= self._last:
                now = self._last + 1
            self._last = now
        return now


_V7 = _V7Clock()
#: v1 node id: random, with the multicast bit set as RFC 9562 asks of ids that are not a MAC
_NODE = int.from_bytes(os.urandom(6), "big") | (1 << 40)


def uuid7() -> str:
    stamp = _V7.next()
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = ((stamp >> 12) << 80) | (0x7 << 76) | ((stamp & 0xFFF) << 64) | (0b10 << 62) | rand
    return str(_uuid.UUID(int=value))


def uuid4() -> str:
    return str(_uuid.uuid4())


def _unix_seconds(raw: bytes, version: int) -> int:
    if version == 7:
        return int.from_bytes(raw[:6], "big") // 1000
    ticks = int.from_bytes(raw[6:8], "big") & 0x0FFF
    ticks = (ticks << 48) | (int.from_bytes(raw[4:6], "big") << 32) | int.from_bytes(raw[0:4], "big")
    since = ticks - _GREGORIAN_OFFSET
    return since // 10_000_000 if since >= 0 else -(-since // 10_000_000)  # Go truncates toward zero


def _build(host: LuaHost) -> Any:
    vm = host.vm

    def parsed(fn: str, value: Any) -> tuple[bytes | None, Any]:
        if isinstance(value, Raw):
            return None, vm.error("INVALID", f"uuid.{fn}: invalid UUID format (binary data)")
        if not isinstance(value, str):
            return None, vm.error("INVALID", f"uuid.{fn}: input must be a string, got {type_name(value)}")
        raw = parse_uuid(value)
        if raw is None:
            return None, vm.error("INVALID", f"uuid.{fn}: invalid UUID format: {value[:64]!r}")
        return raw, None

    def v1(*_: Any) -> Any:
        return str(_uuid.uuid1(node=_NODE)), None

    def v4(*_: Any) -> Any:
        return uuid4(), None

    def v7(*_: Any) -> Any:
        return uuid7(), None

    def name_based(fn: str, algo: str, version: int) -> Any:
        def run(namespace: Any = None, name: Any = None, *_: Any) -> Any:
            data = as_bytes(name)
            if not isinstance(namespace, str | Raw) or data is None:
                return None, vm.error("INVALID", f"uuid.{fn}: namespace and name must be strings")
            ns = parse_uuid(namespace) if isinstance(namespace, str) else None
            if ns is None:
                return None, vm.error("INVALID", f"uuid.{fn}: invalid namespace UUID")
            return _name_based(ns, data, algo, version), None

        return run

    def validate(value: Any = None, *_: Any) -> Any:
        return isinstance(value, str) and parse_uuid(value) is not None, None

    def version(value: Any = None, *_: Any) -> Any:
        raw, err = parsed("version", value)
        return (None, err) if raw is None else (raw[6] >> 4, None)

    def variant(value: Any = None, *_: Any) -> Any:
        raw, err = parsed("variant", value)
        return (None, err) if raw is None else (variant_name(raw), None)

    def parse(value: Any = None, *_: Any) -> Any:
        raw, err = parsed("parse", value)
        if raw is None:
            return None, err
        ver = raw[6] >> 4
        info: dict[str, Any] = {"version": ver, "variant": variant_name(raw)}
        if ver in (1, 7):
            info["timestamp"] = _unix_seconds(raw, ver)
        if ver == 1:
            info["node"] = raw[10:16]
        return vm.rt.table_from(info), None

    def format_(value: Any = None, form: Any = None, *_: Any) -> Any:
        raw, err = parsed("format", value)
        if raw is None:
            return None, err
        text = str(_uuid.UUID(bytes=raw))
        style = form if isinstance(form, str) else "standard"
        if style == "standard":
            return text, None
        if style == "simple":
            return text.replace("-", ""), None
        if style == "urn":
            return "urn:uuid:" + text, None
        return None, vm.error("INVALID", f"uuid.format: unsupported format {style!r} "
                                         "(standard, simple or urn)")

    funcs = {"v1": v1, "v4": v4, "v7": v7, "v3": name_based("v3", "md5", 3), "v5": name_based("v5", "sha1", 5),
             "validate": validate, "version": version, "variant": variant, "parse": parse, "format": format_}
    return vm.rt.table_from({name: wrap(host, fn) for name, fn in funcs.items()})


register_module("uuid", _build)
