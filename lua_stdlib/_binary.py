"""Binary Lua strings in host functions.

A Lua string is bytes; lupa hands it to Python decoded as UTF-8 and fails on anything else, so a
module function that takes data (hash, base64, crypto) could not see binary strings at all.
``lua/binary.lua`` lets them through: ``wrap(host, fn)`` makes a Lua function that calls ``fn``
directly and, only when lupa could not decode an argument, again with the binary strings as
``Raw`` objects. ``host_copy(host, table)`` copies a table with its binary strings as ``Raw``
objects, for functions that read tables holding binary data. ``guard(host, fn, label)`` is for
functions that take text only: a binary argument gives a clear INVALID error. Returning ``bytes`` to Lua is
always safe (lupa passes them through as Lua strings).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lupa.lua54 import lua_type  # type: ignore[import-untyped]

from ._vm import _source


class Raw:
    """A Lua string that is not UTF-8 text (made by lua/binary.lua)."""

    __slots__ = ("data",)

    def __init__(self, wide: str) -> None:
        # binary.lua maps each byte onto the code point of the same value
        self.data = wide.encode("latin-1")

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")

    def __str__(self) -> str:
        return self.text()


def _bridge(host: Any) -> Any:
    bridge = host.extras.get("binary")
    if bridge is None:
        host.vm.settle()  # rt.execute may run inside a Lua call (see _vm)
        bridge = host.vm.rt.execute(_source("binary.lua"), Raw, host.vm._is_error, host.vm.errors)
        host.extras["binary"] = bridge = (bridge.wrap, bridge.host_copy, bridge.guard)
    return bridge


def wrap(host: Any, fn: Callable[..., Any]) -> Any:
    """A Lua function calling ``fn``, binary string arguments arriving as ``Raw``."""
    return _bridge(host)[0](fn)


def guard(host: Any, fn: Callable[..., Any], label: str, errpos: int | None = 2) -> Any:
    """A Lua function calling ``fn``; a binary (not UTF-8) string argument, at any depth, gives an
    INVALID error naming ``label`` instead of lupa's decoding exception: returned as result number
    ``errpos`` (after nils), or raised when ``errpos`` is None."""
    return _bridge(host)[2](fn, label, errpos)


def guard_all(host: Any, funcs: dict[str, Any], label: str, errpos: int | None = 2,
              positions: dict[str, int | None] | None = None) -> dict[str, Any]:
    """``funcs`` with every callable guarded (see ``guard``); ``positions`` overrides ``errpos`` by name."""
    where = positions or {}
    return {name: guard(host, fn, label, where.get(name, errpos)) if callable(fn) and lua_type(fn) is None else fn
            for name, fn in funcs.items()}


def host_copy(host: Any, value: Any) -> Any:
    """``value`` (a Lua table) copied with its binary strings as ``Raw`` objects."""
    return _bridge(host)[1](value)


def as_bytes(value: Any) -> bytes | None:
    """The bytes of a Lua string argument (text or Raw); None when it is not a string."""
    if isinstance(value, str):
        return value.encode("utf-8", errors="surrogatepass")
    if isinstance(value, Raw):
        return value.data
    if isinstance(value, bytes):
        return value
    return None


def type_name(value: Any) -> str:
    """The Lua type name of a value a host function received."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str | Raw | bytes):
        return "string"
    if isinstance(value, list | dict):  # a table already converted to Python data
        return "table"
    return str(lua_type(value) or "userdata")
