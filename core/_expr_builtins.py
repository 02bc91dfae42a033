"""expr-lang's builtin functions over plain data (those that take a predicate are in
``_expr_predicates``).

``FUNCTIONS`` maps a name to ``(impl, min_args, max_args)``; ``max_args`` None means variadic.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from ._expr_errors import OpError
from ._expr_values import go_string, is_number, kind, less, to_int

Impl = Callable[[list[Any]], Any]
MAX_STRING = 10_000_000

_INT_TEXT = re.compile(r"[+-]?\d+")
_FLOAT_TEXT = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)", re.IGNORECASE)


def _str(v: Any, fn: str) -> str:
    if not isinstance(v, str):
        raise OpError(f"invalid argument for {fn} (type {kind(v)}, want string)")
    return v


def _array(v: Any, fn: str) -> list[Any] | tuple[Any, ...]:
    if not isinstance(v, list | tuple):
        raise OpError(f"invalid argument for {fn} (type {kind(v)}, want array)")
    return v


def _map(v: Any, fn: str) -> Mapping[Any, Any]:
    if not isinstance(v, Mapping):
        raise OpError(f"invalid argument for {fn} (type {kind(v)}, want map)")
    return v


def _num(v: Any, fn: str) -> int | float:
    if not is_number(v):
        raise OpError(f"invalid argument for {fn} (type {kind(v)}, want number)")
    return v  # type: ignore[no-any-return]


def _int(v: Any) -> int:
    if isinstance(v, bool):
        raise OpError("invalid operation: int(bool)")
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise OpError(f"invalid operation: int({v})")
        return int(v)
    if isinstance(v, str) and _INT_TEXT.fullmatch(v):
        return int(v)
    raise OpError(f"invalid operation: int({v if isinstance(v, str) else kind(v)})")


def _float(v: Any) -> float:
    if is_number(v):
        return float(v)
    if isinstance(v, str) and _FLOAT_TEXT.fullmatch(v):
        return float(v)
    raise OpError(f"invalid operation: float({v if isinstance(v, str) else kind(v)})")


def _round(v: Any) -> float:
    x = float(_num(v, "round"))
    if not math.isfinite(x):
        return x
    t = float(math.trunc(x))
    return t + math.copysign(1.0, x) if abs(x - t) >= 0.5 else t


def _numbers_in(args: list[Any], fn: str, depth: int = 0) -> list[int | float]:
    out: list[int | float] = []
    for a in args:
        if isinstance(a, list | tuple) and depth < 16:
            out.extend(_numbers_in(list(a), fn, depth + 1))
        else:
            out.append(_num(a, fn))
    return out


def _max(args: list[Any]) -> Any:
    best: Any = None
    for x in _numbers_in(args, "max"):
        if best is None or less(best, x):
            best = x
    return best


def _min(args: list[Any]) -> Any:
    best: Any = None
    for x in _numbers_in(args, "min"):
        if best is None or less(x, best):
            best = x
    return best


def sum_numbers(items: Any, fn: str = "sum") -> int | float:
    total: int | float = 0
    for x in _array(items, fn):
        total += _num(x, fn)
    return total


def _mean(args: list[Any]) -> float:
    nums = _numbers_in(args, "mean")
    return sum(nums) / len(nums) if nums else 0.0


def _median(args: list[Any]) -> float:
    nums = sorted(_numbers_in(args, "median"))
    n = len(nums)
    if not n:
        return 0.0
    return float(nums[n // 2]) if n % 2 else (nums[n // 2 - 1] + nums[n // 2]) / 2


def _split(args: list[Any], *, after: bool) -> list[str]:
    fn = "splitAfter" if after else "split"
    s, sep = _str(args[0], fn), _str(args[1], fn)
    n = to_int(args[2], "count") if len(args) > 2 else -1
    if n == 0:
        return []
    if sep == "":
        chars = list(s)
        return chars if n < 0 or n >= len(chars) else [*chars[: n - 1], "".join(chars[n - 1 :])]
    parts = s.split(sep) if n < 0 else s.split(sep, n - 1)
    if after:
        parts = [p + sep for p in parts[:-1]] + parts[-1:]
    return parts


def _replace(args: list[Any]) -> str:
    s, old, new = (_str(a, "replace") for a in args[:3])
    n = to_int(args[3], "count") if len(args) > 3 else -1
    return s.replace(old, new, n)


def _repeat(args: list[Any]) -> str:
    s, n = _str(args[0], "repeat"), to_int(args[1], "count")
    if n < 0:
        raise OpError(f"invalid argument for repeat (expected positive integer, got {n})")
    if len(s) * n > MAX_STRING:
        raise OpError("repeat: result too large")
    return s * n


def _join(args: list[Any]) -> str:
    glue = _str(args[1], "join") if len(args) > 1 else ""
    return glue.join(_str(x, "join") for x in _array(args[0], "join"))


def _trim(args: list[Any]) -> str:
    s = _str(args[0], "trim")
    return s.strip(_str(args[1], "trim")) if len(args) > 1 else s.strip()


def _trim_prefix(args: list[Any]) -> str:
    return _str(args[0], "trimPrefix").removeprefix(_str(args[1], "trimPrefix"))


def _trim_suffix(args: list[Any]) -> str:
    return _str(args[0], "trimSuffix").removesuffix(_str(args[1], "trimSuffix"))


def _first(args: list[Any]) -> Any:
    v = args[0]
    return v[0] if isinstance(v, list | tuple | str) and len(v) else None


def _last(args: list[Any]) -> Any:
    v = args[0]
    return v[-1] if isinstance(v, list | tuple | str) and len(v) else None


def _get(args: list[Any]) -> Any:
    v, key = args
    if isinstance(v, Mapping):
        try:
            return v.get(key)
        except TypeError:
            return None
    if isinstance(v, list | tuple | str) and is_number(key):
        i = to_int(key, "index")
        return v[i] if -len(v) <= i < len(v) else None
    return None


def _len(args: list[Any]) -> int:
    v = args[0]
    if isinstance(v, str | list | tuple | Mapping):
        return len(v)
    raise OpError(f"invalid argument for len (type {kind(v)})")


def _abs(args: list[Any]) -> int | float:
    return abs(_num(args[0], "abs"))


def _uniq(args: list[Any]) -> list[Any]:
    out: list[Any] = []
    for x in _array(args[0], "uniq"):
        if not any(type(x) is type(y) and x == y for y in out):
            out.append(x)
    return out


def _flatten(v: Any, depth: int = 0) -> list[Any]:
    out: list[Any] = []
    for x in _array(v, "flatten"):
        out.extend(_flatten(x, depth + 1) if isinstance(x, list | tuple) and depth < 64 else [x])
    return out


def sort_order(args: list[Any], i: int) -> bool:
    order = _str(args[i], "sort") if len(args) > i else "asc"
    if order not in ("asc", "desc"):
        raise OpError(f"invalid order {order}, expected asc or desc")
    return order == "desc"


def sort_by_keys(items: list[Any], keys: list[Any], desc: bool) -> list[Any]:
    for k in keys:
        if not (is_number(k) or isinstance(k, str)) or isinstance(k, str) != isinstance(keys[0], str):
            raise OpError(f"cannot sort values of type {kind(k)} with {kind(keys[0])}")
    order = sorted(range(len(items)), key=lambda i: keys[i], reverse=desc)
    return [items[i] for i in order]


def _sort(args: list[Any]) -> list[Any]:
    items = list(_array(args[0], "sort"))
    return sort_by_keys(items, items, sort_order(args, 1))


def _from_pairs(args: list[Any]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for pair in _array(args[0], "fromPairs"):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise OpError(f"invalid pair {go_string(pair)}")
        out[pair[0]] = pair[1]
    return out


def _to_json(args: list[Any]) -> str:
    try:
        return json.dumps(args[0], indent=2, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise OpError(f"toJSON: {exc}") from None


def _from_json(args: list[Any]) -> Any:
    try:
        return json.loads(_str(args[0], "fromJSON"), parse_int=float)
    except ValueError as exc:
        raise OpError(f"fromJSON: {exc}") from None


def _from_base64(args: list[Any]) -> str:
    try:
        return base64.b64decode(_str(args[0], "fromBase64"), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError) as exc:
        raise OpError(f"fromBase64: {exc}") from None


def _bits(fn: Callable[[int, int], int], name: str, *, shift: bool = False) -> Impl:
    def impl(args: list[Any]) -> int:
        x, y = (_bit_int(a, name) for a in args)
        if shift and y < 0:
            raise OpError(f"invalid operation: negative shift count {y} (type int)")
        return fn(x, y)

    return impl


def _bit_int(v: Any, fn: str) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise OpError(f"invalid argument for {fn} (type {kind(v)}, want int)")


def _to_int64(x: int) -> int:
    x &= (1 << 64) - 1
    return x - (1 << 64) if x >= 1 << 63 else x


FUNCTIONS: dict[str, tuple[Impl, int, int | None]] = {
    "len": (_len, 1, 1),
    "type": (lambda a: kind(a[0]), 1, 1),
    "abs": (_abs, 1, 1),
    "ceil": (lambda a: float(math.ceil(_num(a[0], "ceil"))), 1, 1),
    "floor": (lambda a: float(math.floor(_num(a[0], "floor"))), 1, 1),
    "round": (lambda a: _round(a[0]), 1, 1),
    "int": (lambda a: _int(a[0]), 1, 1),
    "float": (lambda a: _float(a[0]), 1, 1),
    "string": (lambda a: go_string(a[0]), 1, 1),
    "upper": (lambda a: _str(a[0], "upper").upper(), 1, 1),
    "lower": (lambda a: _str(a[0], "lower").lower(), 1, 1),
    "trim": (_trim, 1, 2),
    "trimPrefix": (_trim_prefix, 2, 2),
    "trimSuffix": (_trim_suffix, 2, 2),
    "split": (lambda a: _split(a, after=False), 2, 3),
    "splitAfter": (lambda a: _split(a, after=True), 2, 3),
    "replace": (_replace, 3, 4),
    "repeat": (_repeat, 2, 2),
    "join": (_join, 1, 2),
    "indexOf": (lambda a: _str(a[0], "indexOf").find(_str(a[1], "indexOf")), 2, 2),
    "lastIndexOf": (lambda a: _str(a[0], "lastIndexOf").rfind(_str(a[1], "lastIndexOf")), 2, 2),
    "hasPrefix": (lambda a: _str(a[0], "hasPrefix").startswith(_str(a[1], "hasPrefix")), 2, 2),
    "hasSuffix": (lambda a: _str(a[0], "hasSuffix").endswith(_str(a[1], "hasSuffix")), 2, 2),
    "max": (_max, 1, None),
    "min": (_min, 1, None),
    "mean": (_mean, 1, None),
    "median": (_median, 1, None),
    "toJSON": (_to_json, 1, 1),
    "fromJSON": (_from_json, 1, 1),
    "toBase64": (lambda a: base64.b64encode(_str(a[0], "toBase64").encode()).decode(), 1, 1),
    "fromBase64": (_from_base64, 1, 1),
    "first": (_first, 1, 1),
    "last": (_last, 1, 1),
    "get": (_get, 2, 2),
    "take": (lambda a: list(_array(a[0], "take"))[: max(to_int(a[1], "count"), 0)], 2, 2),
    "keys": (lambda a: list(_map(a[0], "keys").keys()), 1, 1),
    "values": (lambda a: list(_map(a[0], "values").values()), 1, 1),
    "toPairs": (lambda a: [[k, v] for k, v in _map(a[0], "toPairs").items()], 1, 1),
    "fromPairs": (_from_pairs, 1, 1),
    "reverse": (lambda a: list(reversed(_array(a[0], "reverse"))), 1, 1),
    "uniq": (_uniq, 1, 1),
    "concat": (lambda a: [x for arr in a for x in _array(arr, "concat")], 1, None),
    "flatten": (lambda a: _flatten(a[0]), 1, 1),
    "sort": (_sort, 1, 2),
    "bitand": (_bits(lambda x, y: x & y, "bitand"), 2, 2),
    "bitor": (_bits(lambda x, y: x | y, "bitor"), 2, 2),
    "bitxor": (_bits(lambda x, y: x ^ y, "bitxor"), 2, 2),
    "bitnand": (_bits(lambda x, y: x & ~y, "bitnand"), 2, 2),
    "bitnot": (lambda a: ~_bit_int(a[0], "bitnot"), 1, 1),
    "bitshl": (_bits(lambda x, y: _to_int64(x << min(y, 64)), "bitshl", shift=True), 2, 2),
    "bitshr": (_bits(lambda x, y: x >> y, "bitshr", shift=True), 2, 2),
    "bitushr": (_bits(lambda x, y: (x & ((1 << 64) - 1)) >> y, "bitushr", shift=True), 2, 2),
}
