"""Jet's value semantics over plain data (truth, equality, arithmetic, printing, escaping) and its errors.

Render data arrives as Python data from Lua tables and YAML (None, bool, int, float, str, list,
dict). Jet runs on Go values, so the rules here are Go's as Jet applies them:

- every number literal in a template is a float; integers come from data, indices and ``len``;
  ``int op float`` promotes to float, ``int / int`` truncates toward zero;
- the left operand decides: ``"a" + 1`` is ``"a1"``, ``1 + "2"`` is ``3``, ``"a" - 1`` is an error;
- truth: nil, false, 0 and "" are false; every list and map (even an empty one) is true;
- output prints numbers without exponent (``1e21`` prints all its digits), ``+`` into a string uses
  Go's ``%v`` (``1e+06``), lists print as ``[a b]`` and maps as ``map[k:v]``;
- action output is HTML-escaped the way Go's ``template.HTMLEscape`` does it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import quote_plus

from wippy.core import WippyError


class JetValueError(Exception):
    """An operation the values do not allow; the renderer adds the template and line."""


class JetRenderError(WippyError):
    """Rendering failed; names the template and the line. ``try`` / ``catch`` in a template catch it."""

    kind = "INTERNAL"

    def __init__(self, template: str, line: int, reason: str) -> None:
        super().__init__(f"template {template!r}, line {line}: {reason}")
        self.reason = reason


class JetLimitError(WippyError):
    """A render went past a limit (nesting, loop iterations, output size); ``try`` does not catch it."""

    kind = "INTERNAL"


class TemplateNotFound(WippyError):
    """The template to render is not in the set."""

    kind = "NOT_FOUND"


class Rendered:
    """A value that writes itself to the output unescaped (``writeJson``)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class Hidden:
    """A boolean that prints nothing (``includeIfExists``)."""

    __slots__ = ("value",)

    def __init__(self, value: bool) -> None:
        self.value = value


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def type_name(v: Any) -> str:
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "bool"
    return {int: "int", float: "float", str: "string", list: "slice", dict: "map"}.get(type(v), type(v).__name__)


def truthy(v: Any) -> bool:
    if isinstance(v, Hidden):
        return v.value
    if v is None or v is False:
        return False
    if is_number(v):
        return bool(v)
    if isinstance(v, str):
        return v != ""
    return True


def equal(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if is_number(a):
        if not is_number(b):
            return False
        return a == to_int(b) if isinstance(a, int) else a == float(b)
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return len(a) == len(b) and all(k in b and equal(v, b[k]) for k, v in a.items())
    return a is b


def to_int(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            raise JetValueError(f"{v} can't be converted to an integer")
        return int(v)
    if isinstance(v, str):
        body = v[1:] if v[:1] in "+-" else v
        if body.isascii() and body.isdecimal():
            return int(v)
        raise JetValueError(f'strconv.ParseInt: parsing "{v}": invalid syntax')
    raise JetValueError(f"invalid value {type_name(v)} can't be converted to an integer")


def to_float(v: Any) -> float:
    if is_number(v):
        return float(v)
    if isinstance(v, str) and v.strip() == v and "_" not in v:
        try:
            return float(v)
        except ValueError:
            pass
        raise JetValueError(f'strconv.ParseFloat: parsing "{v}": invalid syntax')
    raise JetValueError(f"invalid value {type_name(v)} can't be converted to a float")


def _idiv(a: int, b: int) -> int:
    """Go's integer division: truncates toward zero."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def arithmetic(op: str, a: Any, b: Any) -> Any:
    if a is None:
        raise JetValueError(f"left side of '{op}' is nil")
    if b is None:
        raise JetValueError(f"right side of '{op}' is nil")
    if op == "+" and isinstance(a, str):
        return a + sprint(b)
    if not is_number(a):
        if op == "-" and isinstance(a, str):
            raise JetValueError("minus sign is not allowed with strings")
        raise JetValueError(f"left side of '{op}' is a {type_name(a)}, not a number")
    if op == "%":
        left, right = (a if isinstance(a, int) else int(a)), to_int(b)
        if right == 0:
            raise JetValueError("division by zero")
        return left - right * _idiv(left, right)
    if op == "/" and ((is_number(b) and b == 0) or b in ("", False)):
        raise JetValueError("division by zero")
    if isinstance(a, int):
        if isinstance(b, float):
            a = float(a)
        else:
            right = to_int(b)
            if op == "/":
                if right == 0:
                    raise JetValueError("division by zero")
                return _idiv(a, right)
            return a + right if op == "+" else a - right if op == "-" else a * right
    right_f = to_float(b)
    return a + right_f if op == "+" else a - right_f if op == "-" else a * right_f if op == "*" else a / right_f


def compare(op: str, a: Any, b: Any) -> bool:
    """``< <= > >=``: the left side must be a number; the right converts to its kind."""
    if not is_number(a):
        raise JetValueError(f"a non numeric value ({type_name(a)}) in numeric comparative expression")
    right: float | int = float(b) if isinstance(a, int) and isinstance(b, float) else (
        to_int(b) if isinstance(a, int) else to_float(b))
    left = float(a) if isinstance(right, float) else a
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left >= right


# -- printing ----------------------------------------------------------------------------------


def _digits(x: float) -> tuple[str, int]:
    """The shortest decimal digits of ``|x|`` (x != 0) and the decimal point's position."""
    _sign, digits, exp = Decimal(repr(abs(x))).normalize().as_tuple()
    assert isinstance(exp, int)
    text = "".join(map(str, digits))
    return text, len(text) + exp


def _special(x: float) -> str | None:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "-0" if math.copysign(1, x) < 0 else "0"
    return None


def format_float(x: float) -> str:
    """A float as Jet prints it: shortest digits, never an exponent."""
    special = _special(x)
    if special is not None:
        return special
    digits, dp = _digits(x)
    sign = "-" if x < 0 else ""
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return sign + digits + "0" * (dp - len(digits))
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def format_float_v(x: float) -> str:
    """A float as Go's ``%v`` prints it (shortest ``%g``: ``1e+06``, ``0.0001``, ``1.5e-05``)."""
    special = _special(x)
    if special is not None:
        return special
    digits, dp = _digits(x)
    exp = dp - 1
    if -4 <= exp < 6:
        return format_float(x)
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{'-' if x < 0 else ''}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def sprint(v: Any) -> str:
    """Go's ``fmt.Sprint`` of a value (used when ``+`` joins a value onto a string)."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return format_float_v(v)
    if isinstance(v, list):
        return "[" + " ".join(sprint(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{sprint(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, Hidden):
        return sprint(v.value)
    return str(v)


def output_text(v: Any) -> str:
    """What an action prints for a value (before escaping)."""
    if isinstance(v, float):
        return format_float(v)
    if isinstance(v, str):
        return v
    return sprint(v)


# -- escaping ----------------------------------------------------------------------------------

_HTML = str.maketrans({'"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;", "\0": "\ufffd"})
_HTML_STRING = str.maketrans({'"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;"})
_JS = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026", "=": "\\u003D"}


def html_escape(text: str) -> str:
    """Go's ``template.HTMLEscape``: what Jet applies to every action's output."""
    return text.translate(_HTML)


def html_escape_string(text: str) -> str:
    """Go's ``html.EscapeString`` (the ``html`` function)."""
    return text.translate(_HTML_STRING)


def js_escape(text: str) -> str:
    """Go's ``template.JSEscape`` (``safeJs``)."""
    out: list[str] = []
    for ch in text:
        if ch in _JS:
            out.append(_JS[ch])
        elif ch < " ":
            out.append(f"\\u00{ord(ch):02X}")
        elif ch > "\x7f" and not ch.isprintable():
            code = ord(ch)  # beyond the BMP: a surrogate pair, valid JavaScript (Go writes \\u plus 5 digits)
            pairs = [code] if code < 0x10000 else [0xD800 + ((code - 0x10000) >> 10), 0xDC00 + (code & 0x3FF)]
            out.extend(f"\\u{unit:04X}" for unit in pairs)
        else:
            out.append(ch)
    return "".join(out)


def url_escape(text: str) -> str:
    """Go's ``url.QueryEscape``."""
    return quote_plus(text, safe="")


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                 "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _json_float(x: float) -> str:
    if math.isnan(x) or math.isinf(x):
        raise JetValueError(f"json: unsupported value: {format_float(x)}")
    if x != 0 and (abs(x) < 1e-6 or abs(x) >= 1e21):
        mantissa, _, exp = format_float_v(x).partition("e")
        if exp[0] == "-" and len(exp) == 3 and exp[1] == "0":  # Go writes e-7, not e-07
            exp = "-" + exp[2]
        return f"{mantissa}e{exp}"
    return format_float(x)


def to_json(v: Any) -> str:
    """Go's ``json.Marshal`` (keys sorted, ``<``, ``>``, ``&`` escaped)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _json_float(v)
    if isinstance(v, str):
        return '"' + "".join(_JSON_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if c < " " else c) for c in v) + '"'
    if isinstance(v, list):
        return "[" + ",".join(to_json(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{to_json(str(k))}:{to_json(v[k])}" for k in sorted(v)) + "}"
    raise JetValueError(f"json: unsupported type {type_name(v)}")


#: the writers an action can end in: text -> what reaches the output
WRITERS: dict[str, Callable[[str], str]] = {
    "raw": lambda t: t, "unsafe": lambda t: t, "safeHtml": html_escape, "safeJs": js_escape,
}
