"""`json`: encode/decode with Wippy's rules, and JSON Schema validation.

    json.encode(v) -> string, err   nil -> null; an empty table -> []; a table with keys 1..n -> an
                                    array; other tables -> objects (string keys); NaN and infinities
                                    -> null; sparse or mixed tables and functions are errors; at most
                                    128 levels deep; bytes that are not UTF-8 become U+FFFD
    json.decode(s) -> value, err    (err: an INVALID error object)
    json.validate(schema, v) -> true | false, err
                                    schema: a table or JSON text (draft 2020-12 unless it names
                                    another with $schema; `format` is an annotation, as in Wippy);
                                    err (INVALID) lists each failing path ($.items[0].name: ...) and
                                    carries them as details {errors = {{path, message}, ...}}; a bad
                                    schema is an INVALID error too
    json.validate_string(schema, json_text) -> true | false, err

An empty Lua table cannot say whether it is an empty array or an empty object, so validation
accepts it as either, and in a schema given as a table it means `{}` (except under keywords whose
value is a list, such as `required` and `enum`). Compiled schemas are cached by their text.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import orjson
from jsonschema import validators
from jsonschema.exceptions import SchemaError
from referencing.exceptions import Unresolvable

from ._binary import Raw, as_bytes, host_copy, type_name, wrap
from ._host import LuaHost, register_module

_MAX_DEPTH = 128
_PLAIN = frozenset({str, int, bool})
_I64 = 2**63


class JsonValueError(Exception):
    """A Lua value JSON cannot represent (a function, a sparse array, too deep)."""


class _EmptyTable(dict[str, Any]):
    """An empty Lua table being validated: it passes as an array and as an object."""


#: Schema keywords whose value is a list: an empty Lua table there stays [].
_LIST_KEYWORDS = frozenset({"required", "enum", "type", "allOf", "anyOf", "oneOf", "prefixItems", "examples"})


def _key_problem(items: list[tuple[Any, Any]]) -> str:
    kinds = {type(k) for k, _ in items}
    for k, _ in items:
        if type(k) not in (str, int, Raw):
            return f"cannot encode a table key of type {type_name(k)}"
    if int in kinds and len(kinds) > 1:
        return "cannot encode a table mixing array items and named keys"
    return "cannot encode a sparse array (integer keys with gaps)"


def _schema_shape(value: Any, key: str | None = None) -> Any:
    """A schema converted from a table: empty tables become {} except under list keywords."""
    if isinstance(value, dict):
        return {k: _schema_shape(v, k) for k, v in value.items()}
    if isinstance(value, list):
        if not value and key not in _LIST_KEYWORDS:
            return {}
        return [_schema_shape(v) for v in value]
    return value


@functools.lru_cache(maxsize=128)
def _validator_class(base: type[Any]) -> type[Any]:
    checker = base.TYPE_CHECKER.redefine(
        "array", lambda _checker, v: isinstance(v, list) or type(v) is _EmptyTable)
    extended: type[Any] = validators.extend(base, type_checker=checker)  # type: ignore[no-untyped-call]
    return extended


@functools.lru_cache(maxsize=100)
def _compile(text: str) -> Any:
    """A validator for a schema's JSON text. Raises ValueError (bad JSON) or SchemaError."""
    schema = orjson.loads(text)
    base = validators.validator_for(schema, default=validators.Draft202012Validator)
    base.check_schema(schema)
    return _validator_class(base)(schema)


def no_big_ints(value: Any) -> Any:
    """Integers beyond Lua's 64-bit range, as floats (what Lua does with them)."""
    if isinstance(value, int) and not isinstance(value, bool) and not -_I64 <= value < _I64:
        return float(value)
    if isinstance(value, list):
        return [no_big_ints(v) for v in value]
    if isinstance(value, dict):
        return {k: no_big_ints(v) for k, v in value.items()}
    return value


def lua_to_json(host: LuaHost, binary: Callable[[Raw], Any] | None = None) -> Callable[..., Any]:
    """``to_python(value, empty=list)``: a Lua value as JSON-ready Python data by Wippy's rules.

    ``empty()`` makes the value of an empty table. Raises ``JsonValueError`` for what JSON cannot hold.
    A binary (non-UTF-8) string becomes ``binary(raw)``, or its text with bad bytes replaced.
    """
    vm = host.vm
    is_error = vm._is_error
    plain = vm._plain
    table_type = type(vm.rt.table())

    def conv(value: Any, depth: int, empty: Callable[[], Any]) -> Any:
        t = type(value)
        if t is str or t is int or t is bool or value is None:
            return value
        if t is float:
            if not math.isfinite(value):
                return None
            return int(value) if value.is_integer() and abs(value) < 1e15 else value
        if t is table_type:
            if depth >= _MAX_DEPTH:
                raise JsonValueError(f"value nested more than {_MAX_DEPTH} levels deep (or a table contains itself)")
            items = list(value.items())
            if not items:
                items = list(plain(value).items())  # a frozen table keeps its contents behind __pairs
                if not items:
                    return empty()
            depth += 1
            n = len(items)
            if type(items[0][0]) is int:  # an array: keys exactly 1..n
                slots: list[Any] = [None] * n
                for k, v in items:
                    if type(k) is not int or not 0 < k <= n:
                        break
                    slots[k - 1] = v
                else:
                    return [v if type(v) in _PLAIN else conv(v, depth, empty) for v in slots]
            out: dict[str, Any] = {}
            try:
                for k, v in items:
                    if type(k) is str:
                        key = k
                    elif type(k) is Raw:
                        key = k.text()
                    else:
                        raise JsonValueError(_key_problem(items))
                    out[key] = v if type(v) in _PLAIN else conv(v, depth, empty)
            except JsonValueError:
                if is_error(value):  # an error object encodes as its message, whatever its details hold
                    return str(value)
                raise
            if "_kind" in out and is_error(value):
                return str(value)
            return out
        if t is Raw:
            return value.text() if binary is None else binary(value)
        raise JsonValueError(f"cannot encode a {type_name(value)}")

    def to_python(value: Any, empty: Callable[[], Any] = list) -> Any:
        try:
            return conv(value, 0, empty)
        except UnicodeDecodeError:  # a string in the table is not UTF-8: read a copy with Raw strings
            return conv(host_copy(host, value), 0, empty)

    return to_python


class _Validation:
    """json.validate and json.validate_string for one host."""

    def __init__(self, vm: Any, to_python: Callable[..., Any]) -> None:
        self.vm = vm
        self.to_python = to_python
        self.table_type = type(vm.rt.table())

    def validator(self, fn: str, schema: Any) -> tuple[Any, Any]:
        if isinstance(schema, str | Raw):
            text = schema if isinstance(schema, str) else schema.text()
        elif type(schema) is self.table_type:
            try:
                shaped = _schema_shape(self.to_python(schema, dict))
            except JsonValueError as exc:
                return None, self.vm.error("INVALID", f"json.{fn}: schema: {exc}")
            text = orjson.dumps(shaped, option=orjson.OPT_SORT_KEYS).decode()
        elif schema is None:
            return None, self.vm.error("INVALID", f"json.{fn}: schema is required")
        else:
            return None, self.vm.error("INVALID", f"json.{fn}: schema must be a table or a JSON string, "
                                             f"got {type_name(schema)}")
        try:
            return _compile(text), None
        except orjson.JSONDecodeError as exc:
            return None, self.vm.error("INVALID", f"json.{fn}: schema is not valid JSON: {exc}")
        except SchemaError as exc:
            return None, self.vm.error("INVALID", f"json.{fn}: invalid schema at {exc.json_path}: {exc.message}")

    def check(self, fn: str, compiled: Any, instance: Any) -> Any:
        try:
            found = sorted(compiled.iter_errors(instance), key=lambda e: (list(map(str, e.path)), e.message))
        except Unresolvable as exc:
            return False, self.vm.error("INVALID", f"json.{fn}: schema reference cannot be resolved: {exc}")
        if not found:
            return True, None
        listed = [{"path": e.json_path, "message": e.message} for e in found]
        summary = "; ".join(f"{e['path']}: {e['message']}" for e in listed[:10])
        more = f" (and {len(listed) - 10} more)" if len(listed) > 10 else ""
        return False, self.vm.error("INVALID", f"json.{fn}: validation failed: {summary}{more}",
                               details={"errors": listed})

    def validate(self, schema: Any = None, data: Any = None, *_: Any) -> Any:
        compiled, err = self.validator("validate", schema)
        if err is not None:
            return False, err
        if data is None:
            return False, self.vm.error("INVALID", "json.validate: data is required")
        try:
            instance = self.to_python(data, _EmptyTable)
        except JsonValueError as exc:
            return False, self.vm.error("INVALID", f"json.validate: data: {exc}")
        return self.check("validate", compiled, instance)

    def validate_string(self, schema: Any = None, text: Any = None, *_: Any) -> Any:
        compiled, err = self.validator("validate_string", schema)
        if err is not None:
            return False, err
        raw = as_bytes(text)
        if raw is None:
            return False, self.vm.error("INVALID", f"json.validate_string: data must be a JSON string, "
                                              f"got {type_name(text)}")
        try:
            instance = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return False, self.vm.error("INVALID", f"json.validate_string: data is not valid JSON: {exc}")
        return self.check("validate_string", compiled, instance)



def _build(host: LuaHost) -> Any:
    vm = host.vm
    to_python = lua_to_json(host)

    def encode(value: Any = None, *_: Any) -> Any:
        try:
            return orjson.dumps(to_python(value)).decode()
        except JsonValueError as exc:
            return None, vm.error("INVALID", f"json.encode: {exc}")

    def decode(text: Any = None, *_: Any) -> Any:
        if type(text) is not str:
            if type(text) is not Raw:
                return None, vm.error("INVALID", f"json.decode: expected a string, got {type_name(text)}")
            text = text.data
        if not text:
            return None, vm.error("INVALID", "json.decode: an empty string is not valid JSON")
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return None, vm.error("INVALID", f"json.decode: {exc}")
        try:
            return vm.to_lua(value), None
        except OverflowError:
            return vm.to_lua(no_big_ints(value)), None

    checks = _Validation(vm, to_python)
    return vm.rt.table_from({name: wrap(host, fn) for name, fn in {
        "encode": encode, "decode": decode, "validate": checks.validate, "validate_string": checks.validate_string,
    }.items()})


register_module("json", _build)
