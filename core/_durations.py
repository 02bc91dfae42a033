"""Go durations: parsing ("1h30m", "500ms", "1.5s", "-2m") and Go's ``Duration.String()`` form.

Both follow Go's ``time`` package exactly: integer nanoseconds, at most 1<<63-1 in size, units
``ns us µs μs ms s m h``, fractions computed the way Go computes them, and Go's error messages.
"""

from __future__ import annotations

MAX_DURATION = (1 << 63) - 1
MIN_DURATION = -(1 << 63)

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_LIMIT = 1 << 63


def go_quote(text: str) -> str:
    """A string quoted the way Go's time package quotes it in error messages."""
    out = ['"']
    for ch in text:
        if ord(ch) >= 0x80 or ord(ch) < 0x20:
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogatepass"))
        else:
            if ch in '"\\':
                out.append("\\")
            out.append(ch)
    out.append('"')
    return "".join(out)


def _leading_int(s: str) -> tuple[int, str]:
    x = 0
    i = 0
    while i < len(s) and "0" <= s[i] <= "9":
        if x > _LIMIT // 10:
            raise OverflowError
        x = x * 10 + ord(s[i]) - 48
        if x > _LIMIT:
            raise OverflowError
        i += 1
    return x, s[i:]


def _leading_fraction(s: str) -> tuple[int, float, str]:
    x, scale, i, overflow = 0, 1.0, 0, False
    while i < len(s) and "0" <= s[i] <= "9":
        if not overflow:
            if x > (_LIMIT - 1) // 10:
                overflow = True
            else:
                y = x * 10 + ord(s[i]) - 48
                if y > _LIMIT:
                    overflow = True
                else:
                    x = y
                    scale *= 10
        i += 1
    return x, scale, s[i:]


def parse_go_duration(text: str) -> int:
    """Nanoseconds in a Go duration string; ValueError with Go's message when it is not one."""
    orig, s = text, text
    invalid = f"time: invalid duration {go_quote(orig)}"
    neg = False
    if s and s[0] in "+-":
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(invalid)
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise ValueError(invalid)
        before = len(s)
        try:
            v, s = _leading_int(s)
        except OverflowError:
            raise ValueError(invalid) from None
        pre = before != len(s)
        f, scale, post = 0, 1.0, False
        if s and s[0] == ".":
            s = s[1:]
            before = len(s)
            f, scale, s = _leading_fraction(s)
            post = before != len(s)
        if not pre and not post:
            raise ValueError(invalid)
        i = 0
        while i < len(s) and not (s[i] == "." or "0" <= s[i] <= "9"):
            i += 1
        if i == 0:
            raise ValueError(f"time: missing unit in duration {go_quote(orig)}")
        unit_name, s = s[:i], s[i:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise ValueError(f"time: unknown unit {go_quote(unit_name)} in duration {go_quote(orig)}")
        if v > _LIMIT // unit:
            raise ValueError(invalid)
        v *= unit
        if f > 0:
            # float64, as Go does, to stay nanosecond-accurate for fractions of hours
            v += int(float(f) * (float(unit) / scale))
            if v > _LIMIT:
                raise ValueError(invalid)
        total += v
        if total > _LIMIT:
            raise ValueError(invalid)
    if neg:
        return -total
    if total > MAX_DURATION:
        raise ValueError(invalid)
    return total


def _frac(v: int, prec: int) -> tuple[str, int]:
    digits = []
    printed = False
    for _ in range(prec):
        digit = v % 10
        printed = printed or digit != 0
        if printed:
            digits.append(chr(48 + digit))
        v //= 10
    if printed:
        digits.append(".")
    return "".join(reversed(digits)), v


def format_go_duration(ns: int) -> str:
    """Go's ``Duration.String()``: "1h30m0s", "1.5s", "500ms", "2µs", "0s"."""
    u = -ns if ns < 0 else ns
    sign = "-" if ns < 0 else ""
    if u < 1_000_000_000:
        if u == 0:
            return "0s"
        if u < 1_000:
            unit, prec = "ns", 0
        elif u < 1_000_000:
            unit, prec = "µs", 3
        else:
            unit, prec = "ms", 6
        frac, u = _frac(u, prec)
        return f"{sign}{u}{frac}{unit}"
    frac, u = _frac(u, 9)
    out = f"{u % 60}{frac}s"
    u //= 60
    if u > 0:
        out = f"{u % 60}m{out}"
        u //= 60
        if u > 0:
            out = f"{u}h{out}"
    return sign + out
