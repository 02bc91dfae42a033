"""expr-lang value semantics over plain Python data.

Values are ``None`` (nil), ``bool``, ``int``, ``float``, ``str``, lists/tuples (arrays) and
mappings (maps); callables are functions. ``bool`` is never a number here (``true == 1`` is
false, ``true + 1`` an error), unlike in Python. Helpers raise OpError; the compiled node that
called them adds where it happened.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from ._expr_errors import OpError
from ._regex import RegexError, compile_re2

NUMBER_TYPES = (int, float)
MAX_RANGE = 1_000_000


def kind(v: Any) -> str:
    """expr-lang's name for the type of ``v`` (what ``type(v)`` returns)."""
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list | tuple):
        return "array"
    if isinstance(v, Mapping):
        return "map"
    if callable(v):
        return "func"
    return type(v).__name__


def is_number(v: Any) -> bool:
    return isinstance(v, NUMBER_TYPES) and not isinstance(v, bool)


def to_int(v: Any, what: str) -> int:
    """An index or count: ints as they are, floats truncated (Go's ToInt)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, float) and math.isfinite(v):
        return int(v)
    raise OpError(f"{what} must be an integer, got {kind(v)}")


def equal(a: Any, b: Any) -> bool:
    """``==``: numbers compare by value across int/float, everything else needs equal types."""
    ta, tb = type(a), type(b)
    if ta is tb and ta is not list and ta is not dict and ta is not tuple:
        return bool(a == b)
    if is_number(a) and is_number(b):
        return bool(a == b)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, bool) and isinstance(b, bool):
        return a is b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    return a is None and b is None


def _orderable(a: Any, b: Any, op: str) -> None:
    if (is_number(a) and is_number(b)) or (isinstance(a, str) and isinstance(b, str)):
        return
    raise OpError(f"invalid operation: {kind(a)} {op} {kind(b)}")


COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: bool(a < b),
    ">": lambda a, b: bool(a > b),
    "<=": lambda a, b: bool(a <= b),
    ">=": lambda a, b: bool(a >= b),
}


def compare(op: str, a: Any, b: Any) -> bool:
    _orderable(a, b, op)
    return COMPARE[op](a, b)


def less(a: Any, b: Any) -> bool:
    """Go ``runtime.Less``: the order used by sort, sortBy, min and max."""
    return compare("<", a, b)


def _numbers(a: Any, b: Any, op: str) -> None:
    if not (is_number(a) and is_number(b)):
        raise OpError(f"invalid operation: {kind(a)} {op} {kind(b)}")


def add(a: Any, b: Any) -> Any:
    if isinstance(a, str) and isinstance(b, str):
        return a + b
    _numbers(a, b, "+")
    return _checked(lambda: a + b)


def sub(a: Any, b: Any) -> Any:
    _numbers(a, b, "-")
    return _checked(lambda: a - b)


def mul(a: Any, b: Any) -> Any:
    _numbers(a, b, "*")
    return _checked(lambda: a * b)


def div(a: Any, b: Any) -> float:
    """``/`` is always float division; dividing by zero gives ±Inf or NaN as in Go."""
    _numbers(a, b, "/")
    x, y = _checked(lambda: float(a)), _checked(lambda: float(b))
    if y == 0:
        if x == 0 or math.isnan(x):
            return math.nan
        return math.copysign(math.inf, x) * math.copysign(1.0, y)
    return float(x / y)


def mod(a: Any, b: Any) -> int:
    """``%`` on integers only, truncating toward zero like Go (``-7 % 3 == -1``)."""
    if not (isinstance(a, int) and isinstance(b, int)) or isinstance(a, bool) or isinstance(b, bool):
        raise OpError(f"invalid operation: {kind(a)} % {kind(b)}")
    if b == 0:
        raise OpError("integer divide by zero")
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def power(a: Any, b: Any) -> float:
    """``**``/``^`` always yields a float (Go ``math.Pow``)."""
    _numbers(a, b, "**")
    try:
        return math.pow(float(a), float(b))
    except OverflowError:
        return math.inf
    except ValueError:
        return math.nan


def _checked(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except OverflowError as exc:
        raise OpError(f"numeric overflow: {exc}") from None


def negate(v: Any) -> Any:
    if not is_number(v):
        raise OpError(f"invalid operation: -{kind(v)}")
    return -v


def plus(v: Any) -> Any:
    if not is_number(v):
        raise OpError(f"invalid operation: +{kind(v)}")
    return v


def make_range(a: Any, b: Any) -> list[int]:
    if not (isinstance(a, int) and isinstance(b, int)) or isinstance(a, bool) or isinstance(b, bool):
        raise OpError(f"invalid operation: {kind(a)}..{kind(b)} (range bounds must be integers)")
    if b - a >= MAX_RANGE:
        raise OpError(f"range {a}..{b} is too large (more than {MAX_RANGE} items)")
    return list(range(a, b + 1))


def fetch(obj: Any, key: Any) -> Any:
    """``obj.key`` / ``obj[key]``: a missing map key is nil, a bad array index an error."""
    if isinstance(obj, Mapping):
        try:
            return obj.get(key)
        except TypeError:
            raise OpError(f"cannot use {kind(key)} as a map key") from None
    if isinstance(obj, list | tuple | str):
        if isinstance(key, str):
            raise OpError(f"cannot fetch {key} from {kind(obj)}")
        i = to_int(key, "index")
        n = len(obj)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise OpError(f"index out of range: {key} (array length is {n})")
        return obj[i]
    raise OpError(f"cannot fetch {key} from {kind(obj)}")


def slice_of(obj: Any, start: Any, stop: Any) -> Any:
    """``obj[start:stop]`` with Go's clamping; negative bounds count from the end."""
    if not isinstance(obj, list | tuple | str):
        raise OpError(f"cannot slice {kind(obj)}")
    n = len(obj)
    a = 0 if start is None else to_int(start, "slice bound")
    b = n if stop is None else to_int(stop, "slice bound")
    a = max(a + n if a < 0 else a, 0)
    b = min(max(b + n if b < 0 else b, 0), n)
    a = min(a, b)
    return obj[a:b] if isinstance(obj, str) else list(obj[a:b])


def member_in(needle: Any, haystack: Any) -> bool:
    """``in``: an element of an array or a key of a map (not a substring: use contains)."""
    if haystack is None:
        return False
    if isinstance(haystack, list | tuple):
        return any(equal(x, needle) for x in haystack)
    if isinstance(haystack, Mapping):
        try:
            return needle in haystack
        except TypeError:
            return False
    raise OpError(f'operator "in" not defined on {kind(haystack)}')


def string_test(op: str, a: Any, b: Any) -> bool:
    """``contains``/``startsWith``/``endsWith``/``matches``: false when either side is nil."""
    if a is None or b is None:
        return False
    if not (isinstance(a, str) and isinstance(b, str)):
        raise OpError(f"invalid operation: {kind(a)} {op} {kind(b)} (both sides must be strings)")
    if op == "contains":
        return b in a
    if op == "startsWith":
        return a.startswith(b)
    if op == "endsWith":
        return a.endswith(b)
    return regex(b).search(a) is not None


def regex(pattern: str) -> Any:
    """A compiled ``matches`` pattern, with Go's RE2 semantics."""
    try:
        return compile_re2(pattern)
    except RegexError as exc:
        raise OpError(str(exc)) from None


def go_string(v: Any) -> str:
    """Go's ``fmt.Sprintf("%v", v)``: what ``string(v)`` returns."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, str | int):
        return str(v)
    if isinstance(v, list | tuple):
        return "[" + " ".join(go_string(x) for x in v) + "]"
    if isinstance(v, Mapping):
        items = sorted((go_string(k), go_string(x)) for k, x in v.items())
        return "map[" + " ".join(f"{k}:{x}" for k, x in items) + "]"
    return f"<{kind(v)}>"


def go_float(f: float) -> str:
    """Go's ``%v`` for float64: shortest digits, exponent form below 1e-4 and from 1e6."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, f) < 0 else ""
    if f == 0:
        return sign + "0"
    parts = Decimal(repr(abs(f))).normalize().as_tuple()
    digits = "".join(map(str, parts.digits))
    exp = len(digits) + int(parts.exponent) - 1
    if exp < -4 or exp >= 6:
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{body}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{sign}0.{'0' * (-exp - 1)}{digits}"
    if len(digits) <= exp + 1:
        return sign + digits + "0" * (exp + 1 - len(digits))
    return f"{sign}{digits[: exp + 1]}.{digits[exp + 1 :]}"
