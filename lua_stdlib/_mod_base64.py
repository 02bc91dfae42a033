"""`base64`: standard base64 (RFC 4648, with padding) of Lua strings, binary data included.

    base64.encode(data) -> string, err
    base64.decode(text) -> string (the bytes), err     err: INVALID for malformed base64

Decoding is strict about the alphabet and the padding and, like Go's decoder, skips line breaks.
"""

from __future__ import annotations

import binascii
from typing import Any

from ._binary import as_bytes, type_name, wrap
from ._host import LuaHost, register_module


def _build(host: LuaHost) -> Any:
    vm = host.vm

    def encode(data: Any = None, *_: Any) -> Any:
        b = as_bytes(data)
        if b is None:
            return None, vm.error("INVALID", f"base64.encode: data must be a string, got {type_name(data)}")
        return binascii.b2a_base64(b, newline=False).decode("ascii"), None

    def decode(text: Any = None, *_: Any) -> Any:
        b = as_bytes(text)
        if b is None:
            return None, vm.error("INVALID", f"base64.decode: data must be a string, got {type_name(text)}")
        if b"\n" in b or b"\r" in b:
            b = b.replace(b"\r", b"").replace(b"\n", b"")
        try:
            return binascii.a2b_base64(b, strict_mode=True), None
        except binascii.Error as exc:
            return None, vm.error("INVALID", f"base64.decode: invalid base64 data ({exc})")

    return vm.rt.table_from({"encode": wrap(host, encode), "decode": wrap(host, decode)})


register_module("base64", _build)
