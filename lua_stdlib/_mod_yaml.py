"""`yaml`: YAML text to Lua values and back, with Wippy's (Go's) YAML rules.

    yaml.encode(table, {field_order = {...}, sort_unordered = bool}?) -> string, err
        keys 1..n -> a sequence; an empty table -> {}; other tables -> mappings (number and boolean
        keys as text). Mapping keys are sorted, as Go's encoder sorts them (digit runs by value:
        a2 before a10); keys named in field_order come first, in that order, at every level.
        sort_unordered is accepted and changes nothing: the other keys are sorted either way.
        Strings that are not UTF-8 text are written as !!binary (base64), as Go writes them.
        err: INVALID when the value is not a table or holds a function; INTERNAL when encoding fails.
    yaml.decode(text) -> value, err
        YAML 1.2 core schema plus Go's habits (0600 is octal, merge keys merge, yes/on stay
        strings, timestamps stay strings); err: INVALID for a non-string or empty input, INTERNAL
        (with the line) for invalid YAML.

Output uses two-space indentation (Wippy indents by four unless options are given). A text
holding several documents is an error here (Go reads the first one).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from wippy.core import YamlError, load_yaml

from ._binary import Raw, host_copy, type_name, wrap
from ._host import LuaHost, register_module
from ._mod_json import no_big_ints

_MAX_DEPTH = 128
_DIGITS = re.compile(r"(\d+)")
_NO_WRAP = 2**31


class _GoStyleDumper(yaml.SafeDumper):
    """PyYAML's safe emitter writing the way Go's YAML encoder does: sequences indented under
    their key, double quotes, literal blocks for multi-line strings, no line wrapping. Strings that
    YAML 1.1 or 1.2 would read as something else (yes, 0600, 1_000, null) are quoted."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def choose_scalar_style(self) -> str:
        style: str = super().choose_scalar_style()
        return '"' if style == "'" else style


# PyYAML's resolver knows YAML 1.1; readers following 1.2 (Go, yaml-rs) also read these as numbers
_GoStyleDumper.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."))
_GoStyleDumper.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:0o[0-7]+|0x[0-9a-fA-F]+)$"), ["0"])
_NUMBER_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # a literal block only for plain multi-line text: other line breaks (\x85, \u2028, \r) and
    # control characters do not survive one, so such strings go double-quoted
    style = "|" if "\n" in data and all(c in "\n\t" or c.isprintable() for c in data) else None
    # yaml-rs (our reader) drops underscores from numerals ("_0" reads as 0): quote such strings
    if style is None and "_" in data:
        tag = dumper.resolve(yaml.ScalarNode, data.replace("_", ""), (True, False))  # type: ignore[no-untyped-call]
        if tag in _NUMBER_TAGS:
            style = '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_GoStyleDumper.add_representer(str, _represent_str)


class _EncodeError(Exception):
    pass


def _natural(key: str) -> tuple[Any, ...]:
    """Sort key putting digit runs in numeric order (a2 < a10), as Go's YAML encoder does."""
    parts = _DIGITS.split(key)
    return tuple((int(p), len(p)) if i % 2 else p for i, p in enumerate(parts))


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int | float):
        return str(int(key)) if isinstance(key, float) and key.is_integer() else str(key)
    if isinstance(key, Raw):
        raise _EncodeError("a table key is a binary string (not UTF-8 text)")
    raise _EncodeError(f"cannot encode a table key of type {type_name(key)}")


def _field_order(vm: Any, options: Any) -> dict[str, int]:
    """Each field_order name with its place."""
    try:
        fields = vm.from_lua(options)
    except UnicodeDecodeError:  # binary junk in the options: no usable field names
        return {}
    wanted = fields.get("field_order") if isinstance(fields, dict) else None
    order: dict[str, int] = {}
    for name in wanted if isinstance(wanted, list) else ():
        if isinstance(name, str) and name not in order:
            order[name] = len(order)
    return order


def _build(host: LuaHost) -> Any:
    vm = host.vm
    table_type = type(vm.rt.table())
    is_error = vm._is_error
    plain = vm._plain

    def conv(value: Any, depth: int, order: dict[str, int]) -> Any:
        t = type(value)
        if t is str or t is int or t is bool:
            return value
        if t is float:
            return int(value) if value.is_integer() and abs(value) < 1e15 else value
        if t is table_type:
            if depth >= _MAX_DEPTH:
                raise _EncodeError(f"value nested more than {_MAX_DEPTH} levels deep (or a table contains itself)")
            items = list(value.items()) or list(plain(value).items())
            n = len(items)
            if n and all(type(k) is int for k, _ in items):
                by_key = dict(items)
                if all(i in by_key for i in range(1, n + 1)):
                    return [conv(by_key[i], depth + 1, order) for i in range(1, n + 1)]
            if any(k == "_kind" for k, _ in items) and is_error(value):
                return str(value)
            pairs = [(_key_text(k), v) for k, v in items]
            last = len(order)
            pairs.sort(key=lambda kv: (order.get(kv[0], last), _natural(kv[0])))
            return {k: conv(v, depth + 1, order) for k, v in pairs}
        if t is Raw:
            return value.data  # written as !!binary (base64), as Go writes a string that is not UTF-8
        raise _EncodeError(f"cannot encode a {type_name(value)}")

    def encode(value: Any = None, options: Any = None, *_: Any) -> Any:
        if type(value) is not table_type:
            return None, vm.error("INVALID", f"yaml.encode: data must be a table, got {type_name(value)}")
        order = _field_order(vm, options) if type(options) is table_type else {}
        try:
            try:
                data = conv(value, 0, order)
            except UnicodeDecodeError:  # binary strings inside: read a copy holding Raw strings
                data = conv(host_copy(host, value), 0, order)
        except _EncodeError as exc:
            return None, vm.error("INVALID", f"yaml.encode: {exc}")
        try:
            return yaml.dump(data, Dumper=_GoStyleDumper, indent=2, width=_NO_WRAP, allow_unicode=True,
                             sort_keys=False, default_flow_style=False), None
        except (yaml.YAMLError, RecursionError) as exc:
            return None, vm.error("INTERNAL", f"yaml.encode: {exc}")

    def decode(text: Any = None, *_: Any) -> Any:
        if type(text) is Raw:
            return None, vm.error("INVALID", "yaml.decode: the input is not UTF-8 text")
        if type(text) is not str:
            return None, vm.error("INVALID", f"yaml.decode: data must be a string, got {type_name(text)}")
        if not text:
            return None, vm.error("INVALID", "yaml.decode: input cannot be empty")
        try:
            value = load_yaml(text)
        except YamlError as exc:
            return None, vm.error("INTERNAL", f"yaml.decode: {exc}")
        try:
            return vm.to_lua(value), None
        except OverflowError:
            return vm.to_lua(no_big_ints(value)), None

    return vm.rt.table_from({"encode": wrap(host, encode), "decode": wrap(host, decode)})


register_module("yaml", _build)
