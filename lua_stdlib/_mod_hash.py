"""`hash`: digests, HMACs and FNV hashes of Lua strings (binary data included).

    hash.md5(data, raw?) / sha1 / sha256 / sha512 -> hex string (raw = true: the digest bytes), err
    hash.hmac_md5(data, secret, raw?) / hmac_sha1 / hmac_sha256 / hmac_sha512 -> hex | bytes, err
    hash.fnv32(data) -> integer, err        FNV-1, 32 bits
    hash.fnv64(data) -> number, err         FNV-1, 64 bits, as a float (what Wippy returns)

Note the argument order: data first, secret second (crypto.hmac takes the key first). A value
that is not a string gives ``nil, err`` (INVALID). Wippy's spec says FNV-1a, but its code (Go's
``fnv.New32``/``New64``) computes FNV-1, so this module computes FNV-1 too.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from ._binary import as_bytes, type_name, wrap
from ._host import LuaHost, register_module

_DIGESTS = ("md5", "sha1", "sha256", "sha512")

_FNV32_OFFSET, _FNV32_PRIME = 0x811C9DC5, 0x01000193
_FNV64_OFFSET, _FNV64_PRIME = 0xCBF29CE484222325, 0x100000001B3


def fnv1_32(data: bytes) -> int:
    h = _FNV32_OFFSET
    for byte in data:
        h = ((h * _FNV32_PRIME) & 0xFFFFFFFF) ^ byte
    return h


def fnv1_64(data: bytes) -> int:
    h = _FNV64_OFFSET
    for byte in data:
        h = ((h * _FNV64_PRIME) & 0xFFFFFFFFFFFFFFFF) ^ byte
    return h


def _build(host: LuaHost) -> Any:
    vm = host.vm

    def invalid(fn: str, what: str, value: Any) -> tuple[None, Any]:
        return None, vm.error("INVALID", f"hash.{fn}: {what} must be a string, got {type_name(value)}")

    def digest(name: str) -> Callable[..., Any]:
        new = getattr(hashlib, name)

        def run(data: Any = None, raw: Any = None, *_: Any) -> Any:
            if type(data) is str:  # the common case first
                h = new(data.encode())
            else:
                b = as_bytes(data)
                if b is None:
                    return invalid(name, "data", data)
                h = new(b)
            # the digest alone: the missing error reads as nil, and one result crosses faster
            return h.hexdigest() if raw is None or raw is False else h.digest()

        return run

    def keyed(name: str) -> Callable[..., Any]:
        algo = name.removeprefix("hmac_")

        def run(data: Any = None, secret: Any = None, raw: Any = None, *_: Any) -> Any:
            msg = as_bytes(data)
            if msg is None:
                return invalid(name, "data", data)
            key = as_bytes(secret)
            if key is None:
                return invalid(name, "secret", secret)
            mac = hmac.new(key, msg, algo)
            return (mac.hexdigest() if raw is None or raw is False else mac.digest()), None

        return run

    def fnv(name: str, fn: Callable[[bytes], int], as_float: bool) -> Callable[..., Any]:
        def run(data: Any = None, *_: Any) -> Any:
            b = as_bytes(data)
            if b is None:
                return invalid(name, "data", data)
            h = fn(b)
            return (float(h) if as_float else h), None

        return run

    funcs: dict[str, Callable[..., Any]] = {name: digest(name) for name in _DIGESTS}
    funcs.update({f"hmac_{name}": keyed(f"hmac_{name}") for name in _DIGESTS})
    funcs["fnv32"] = fnv("fnv32", fnv1_32, False)
    funcs["fnv64"] = fnv("fnv64", fnv1_64, True)
    return vm.rt.table_from({name: wrap(host, fn) for name, fn in funcs.items()})


register_module("hash", _build)
