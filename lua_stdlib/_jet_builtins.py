"""Jet's built-in functions, as Jet ships them (its "default variables").

Strings: ``lower upper hasPrefix hasSuffix repeat replace split trimSpace`` (Go's ``strings``),
``html`` (escape), ``url`` (query escape), ``json`` (Go's ``json.Marshal``: keys sorted, ``<>&``
escaped). Data: ``len`` (strings count bytes, as in Go), ``isset``, ``map(k, v, ...)``, ``slice(...)``
/ ``array(...)``, ``ints(from, to)`` (a range of integers, ``to`` excluded). Templates:
``includeIfExists(name, context?)``. Writers, which must end an action: ``raw`` / ``unsafe`` (no
escaping), ``safeHtml``, ``safeJs`` (``writeJson`` writes JSON plus a newline, unescaped, and may
stand anywhere). ``range_items`` is what ``range`` walks.
Not provided: ``exec`` (it reads ``return``, which is not supported) and ``dump``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ._jet_values import (
    WRITERS,
    JetValueError,
    Rendered,
    html_escape_string,
    is_number,
    sprint,
    to_int,
    to_json,
    type_name,
    url_escape,
)

#: Go's unicode.IsSpace set, for trimSpace
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
            "\u2028\u2029\u202f\u205f\u3000"


class Builtin:
    """A function templates can call. ``mode``: value (called with values), runtime (with the
    renderer first), nodes (with the renderer, the unevaluated arguments and the piped value),
    writer (text in, output text out; ends an action)."""

    __slots__ = ("fn", "mode", "name")

    def __init__(self, name: str, fn: Callable[..., Any], mode: str = "value") -> None:
        self.name, self.fn, self.mode = name, fn, mode

    def __repr__(self) -> str:
        return f"<func {self.name}>"


class Ints:
    """What ``ints(from, to)`` returns: a ranger over ``from .. to-1``."""

    __slots__ = ("start", "stop")

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = start, stop


class CaughtError:
    """The error a ``catch err`` clause binds; ``err.Error()`` is its message, as in Jet."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def field(self, name: str) -> Builtin | None:
        return Builtin("Error", lambda: self.message) if name == "Error" else None

    def __str__(self) -> str:
        return self.message


def range_items(value: Any) -> Iterable[tuple[Any, Any]]:
    """What ``range`` walks: (index, element) of a list or ``ints()``, (key, value) of a map."""
    if isinstance(value, list):
        return enumerate(value)
    if isinstance(value, dict):
        return ((k, value[k]) for k in sorted(value))  # Go's map order is random; sorted is one of them
    if isinstance(value, Ints):
        return ((i, value.start + i) for i in range(value.stop - value.start))
    if value is None:
        raise JetValueError("can't range over nil")
    raise JetValueError(f"value {sprint(value)} ({type_name(value)}) is not rangeable")


def _typed(name: str, params: str, fn: Callable[..., Any]) -> Builtin:
    """A Go function: one letter per parameter, ``s`` a string, ``i`` an integer, ``v`` any non-nil value."""

    def call(*args: Any) -> Any:
        if len(args) != len(params):
            raise JetValueError(f"{name}() needs {len(params)} arguments, but has {len(args)}")
        values: list[Any] = []
        for i, (code, arg) in enumerate(zip(params, args, strict=True), 1):
            if arg is None:
                raise JetValueError(f"{name}(): argument {i} is nil")
            if code == "s" and not isinstance(arg, str):
                raise JetValueError(f"{name}(): argument {i} must be a string, not a {type_name(arg)}")
            if code == "i" and not is_number(arg):
                raise JetValueError(f"{name}(): argument {i} must be a number, not a {type_name(arg)}")
            values.append(to_int(arg) if code == "i" else arg)
        return fn(*values)

    return Builtin(name, call)


def _repeat(text: str, count: int) -> str:
    if count < 0:
        raise JetValueError("repeat(): negative repeat count")
    return text * count


def _split(text: str, sep: str) -> list[Any]:
    return list(text) if sep == "" else list(text.split(sep))


def _len(value: Any) -> int:
    if value is None:
        raise JetValueError("len(): argument is not a valid value")
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, list | dict):
        return len(value)
    raise JetValueError(f"len(): invalid value type {type_name(value)}")


def _map(*args: Any) -> dict[str, Any]:
    if len(args) % 2:
        raise JetValueError("map(): incomplete key-value pair (even number of arguments required)")
    out: dict[str, Any] = {}
    for i in range(0, len(args), 2):
        if not isinstance(args[i], str):
            raise JetValueError(f"map(): key argument at position {i} must be a string, not a {type_name(args[i])}")
        out[args[i]] = args[i + 1]
    return out


def _ints(*args: Any) -> Ints:
    if len(args) != 2 or not all(is_number(a) for a in args):
        raise JetValueError("ints() takes two numbers: from and to")
    start, stop = to_int(args[0]), to_int(args[1])
    if stop <= start:
        raise JetValueError("invalid range for ints ranger: 'from' must be smaller than 'to'")
    return Ints(start, stop)


BUILTINS: dict[str, Builtin] = {
    b.name: b for b in (
        _typed("lower", "s", str.lower),
        _typed("upper", "s", str.upper),
        _typed("hasPrefix", "ss", str.startswith),
        _typed("hasSuffix", "ss", str.endswith),
        _typed("repeat", "si", _repeat),
        _typed("replace", "sssi", lambda s, old, new, n: s.replace(old, new, n if n >= 0 else -1)),
        _typed("split", "ss", _split),
        _typed("trimSpace", "s", lambda s: s.strip(_GO_SPACE)),
        _typed("html", "s", html_escape_string),
        _typed("url", "s", url_escape),
        _typed("json", "v", to_json),
        _typed("writeJson", "v", lambda v: Rendered(to_json(v) + "\n")),
        Builtin("len", _len),
        Builtin("map", _map),
        Builtin("slice", lambda *a: list(a)),
        Builtin("array", lambda *a: list(a)),
        Builtin("ints", _ints),
        Builtin("isset", lambda rt, args, piped: rt.isset(args, piped), "nodes"),
        Builtin("includeIfExists", lambda rt, *a: rt.include_if_exists(*a), "runtime"),
        *(Builtin(name, writer, "writer") for name, writer in WRITERS.items()),
    )
}
