"""`json`: encode/decode with Wippy's rules.

    json.encode(v) -> string        nil -> null; an empty table -> []; a table with keys 1..n -> an
                                    array; other tables -> objects (string keys); sparse or mixed
                                    tables, functions and NaN are errors; at most 128 levels deep
    json.decode(s) -> value, err    (err: an INVALID error object)
    json.validate(...)              UNAVAILABLE until the JSON Schema part of the json module lands
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from lupa.lua54 import lua_type  # type: ignore[import-untyped]

from ._host import LuaHost, register_module

_MAX_DEPTH = 128


class _EncodeError(Exception):
    pass


def _plain(vm: Any, value: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise _EncodeError(f"value nested more than {_MAX_DEPTH} levels deep")
    kind = lua_type(value)
    if kind is None:
        if isinstance(value, float):
            if not math.isfinite(value):
                raise _EncodeError(f"cannot encode {value} (not a finite number)")
            if value.is_integer() and abs(value) < 1e15:
                return int(value)
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
        if value is None or isinstance(value, bool | int | float | str):
            return value
        raise _EncodeError(f"cannot encode a {type(value).__name__}")
    if kind != "table":
        raise _EncodeError(f"cannot encode a {kind}")
    if vm._is_error(value):
        return str(value)
    items = list(vm._plain(value).items())
    if not items:
        return []
    int_keys = [k for k, _ in items if isinstance(k, int) and not isinstance(k, bool)]
    if len(int_keys) == len(items):
        n = len(items)
        if min(int_keys) == 1 and max(int_keys) == n:
            by_key = dict(items)
            return [_plain(vm, by_key[i], depth + 1) for i in range(1, n + 1)]
        raise _EncodeError("cannot encode a sparse array (integer keys with gaps)")
    if int_keys:
        raise _EncodeError("cannot encode a table mixing array items and named keys")
    out: dict[str, Any] = {}
    for raw_key, v in items:
        key = raw_key.decode("utf-8", errors="replace") if isinstance(raw_key, bytes) else raw_key
        if not isinstance(key, str):
            raise _EncodeError(f"cannot encode a table key of type {type(key).__name__}")
        out[key] = _plain(vm, v, depth + 1)
    return out


def _build(host: LuaHost) -> Any:
    vm = host.vm

    def encode(value: Any = None, *_ignored: Any) -> Any:
        try:
            return orjson.dumps(_plain(vm, value, 0)).decode()
        except _EncodeError as exc:
            return None, vm.error("INVALID", f"json.encode: {exc}")

    def decode(text: Any = None, *_ignored: Any) -> Any:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        if not isinstance(text, str):
            got = lua_type(text) or type(text).__name__
            return None, vm.error("INVALID", f"json.decode: expected a string, got {got}")
        try:
            return vm.to_lua(orjson.loads(text)), None
        except orjson.JSONDecodeError as exc:
            return None, vm.error("INVALID", f"json.decode: {exc}")

    def unavailable(*_a: Any) -> Any:
        return None, vm.error("UNAVAILABLE", "json.validate is not implemented in this runtime yet")

    return vm.rt.table_from({"encode": encode, "decode": decode, "validate": unavailable,
                             "validate_string": unavailable})


register_module("json", _build)
