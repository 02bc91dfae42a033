"""Middleware names and options: what routers and static sites may list, how their `<mw>.<opt>`
values parse, and the checks that refuse a bad list or option when an entry is applied.

Options are ``<middleware>.<option>`` keys (``cors.allow.origins``) with string values (numbers and
booleans are taken too). The older underscore keys are read when the dotted one is absent: the key
with ``_`` for ``.`` (``cors_allow_origins``), and the bare ``allow_origins``-style keys of cors,
``trusted_subnets``/``trust_all`` and ``token_store``. A key under a listed middleware's prefix that
it does not know is refused: a typo such as ``cors.allow.orgins`` would otherwise fall back to the
default (``*``) without a word."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wippy.core import (
    DefinitionError,
    Entry,
    parse_go_duration,
    register_kind_check,
)

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

PRE = frozenset({"cors", "compress", "real_ip", "ratelimit", "token_auth", "metrics", "otel"})
POST = frozenset({"endpoint_firewall", "resource_firewall", "websocket_relay", "sse_relay"})
#: documented Wippy middleware this runtime does not build (refused with a clear error)
NOT_BUILT = frozenset({"sendfile"})

# -- option values --------------------------------------------------------------------------------

_REQUIRED = object()
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP token (RFC 9110): names, methods
_TRUE = frozenset({"1", "t", "true", "yes", "on"})
_FALSE = frozenset({"0", "f", "false", "no", "off"})
_LEVELS = {"fastest": 1, "default": 6, "best": 9}
PRIVATE_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16",
                    "::1/128", "fc00::/7", "fe80::/10")


def _string(raw: Any) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ValueError("must be a string")
    return str(raw)


def _items(raw: Any) -> list[str]:
    """A comma-separated string (or a list of strings) as its non-empty, trimmed items."""
    if isinstance(raw, list | tuple):
        parts = [_string(x) for x in raw]
    elif isinstance(raw, str):
        parts = raw.split(",")
    else:
        raise ValueError("must be a comma-separated list")
    return [p.strip() for p in parts if p.strip()]


def _bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower() if isinstance(raw, str | int) else None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"must be true or false, not {raw!r}")


def _int(low: int, high: int | None = None) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        if isinstance(raw, bool):
            raise ValueError("must be a whole number")
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        if isinstance(raw, str) and re.fullmatch(r"\s*[+-]?\d{1,18}\s*", raw):
            raw = int(raw)
        if not isinstance(raw, int):
            raise ValueError(f"must be a whole number, not {raw!r}")
        if raw < low or (high is not None and raw > high):
            raise ValueError(f"must be between {low} and {high}" if high is not None else f"must be at least {low}")
        return raw

    return parse


def _duration(raw: Any) -> int:
    """A positive Go duration, in nanoseconds; bare numbers are refused (their unit would be a guess)."""
    if not isinstance(raw, str):
        raise ValueError(f"must be a duration with a unit, such as '1m' or '30s', not {raw!r}")
    ns = parse_go_duration(raw.strip())
    if ns <= 0:
        raise ValueError("must be a positive duration")
    return ns


def _level(raw: Any) -> int:
    if isinstance(raw, str) and raw.strip().lower() in _LEVELS:
        return _LEVELS[raw.strip().lower()]
    try:
        return _int(1, 9)(raw)
    except ValueError:
        raise ValueError(f"must be fastest, default, best or 1-9, not {raw!r}") from None


def _networks(raw: Any) -> tuple[Network, ...]:
    out = []
    for item in _items(raw):
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not a subnet (CIDR such as 10.0.0.0/8) or an IP address") from None
    return tuple(out)


def _origins(raw: Any) -> tuple[str, ...]:
    out = []
    for item in _items(raw):
        if any(c.isspace() for c in item):
            raise ValueError(f"origin {item!r} has a space in it")
        out.append(item.lower().removesuffix("/"))  # browsers send origins without the slash
    return tuple(out)


def _tokens(upper: bool) -> Callable[[Any], tuple[str, ...]]:
    def parse(raw: Any) -> tuple[str, ...]:
        items = _items(raw)
        bad = [x for x in items if not _TOKEN.match(x)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a valid HTTP name")
        return tuple(x.upper() if upper else x for x in items)

    return parse


def _header_name(raw: Any) -> str:
    text = _string(raw).strip()
    if text and not _TOKEN.match(text):
        raise ValueError(f"{text!r} is not a valid header name")
    return text


def _rate_key(raw: Any) -> tuple[str, str]:
    text = _string(raw).strip()
    kind, _, name = text.partition(":")
    kind = kind.lower()
    if kind == "ip" and not name:
        return "ip", ""
    if kind == "header" and _TOKEN.match(name.strip()):
        return "header", name.strip()
    if kind == "query" and name.strip():
        return "query", name.strip()
    raise ValueError(f"must be ip, header:<Name> or query:<name>, not {text!r}")


def _store_id(raw: Any) -> str:
    text = _string(raw).strip()
    if ":" not in text or text.startswith(":") or text.endswith(":"):
        raise ValueError(f"must be the id of a security.token_store, such as app:tokens, not {text!r}")
    return text


def _nonempty(raw: Any) -> str:
    text = _string(raw).strip()
    if not text:
        raise ValueError("must not be empty")
    return text


@dataclass(frozen=True, slots=True)
class _Opt:
    name: str  # after the prefix: "allow.origins"
    parse: Callable[[Any], Any]
    default: Any  # a parsed value, None (off) or _REQUIRED
    legacy: tuple[str, ...] = ()


_CORS = (
    _Opt("allow.origins", _origins, ("*",), ("allow_origins",)),
    _Opt("allow.methods", _tokens(upper=True), ("GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"),
         ("allow_methods",)),
    _Opt("allow.headers", _tokens(upper=False),
         ("Origin", "Content-Type", "Accept", "Authorization", "X-Requested-With"), ("allow_headers",)),
    _Opt("expose.headers", _tokens(upper=False), (), ("expose_headers",)),
    _Opt("allow.credentials", _bool, False, ("allow_credentials",)),
    _Opt("max.age", _int(0), 86400, ("max_age",)),
    _Opt("allow.private.network", _bool, False, ("allow_private_network",)),
)
_OPTIONS: dict[str, tuple[str, tuple[_Opt, ...]]] = {
    "cors": ("cors", _CORS),
    "compress": ("compress", (_Opt("level", _level, 6), _Opt("min.length", _int(0), 1024))),
    "real_ip": ("real_ip", (
        _Opt("trusted.subnets", _networks, _networks(PRIVATE_NETWORKS), ("trusted_subnets",)),
        _Opt("trust_all", _bool, False, ("trust_all",)),
    )),
    "ratelimit": ("ratelimit", (
        _Opt("requests", _int(1), 100), _Opt("window", _duration, 60 * 10**9),
        _Opt("burst", _int(1), None), _Opt("key", _rate_key, ("ip", "")),
        _Opt("cleanup_interval", _duration, 300 * 10**9), _Opt("entry_ttl", _duration, 600 * 10**9),
        _Opt("max_entries", _int(1), 100_000),
    )),
    "token_auth": ("token_auth", (
        _Opt("store", _store_id, _REQUIRED, ("token_store",)),
        _Opt("header.name", _header_name, "Authorization"), _Opt("header.prefix", _string, "Bearer "),
        _Opt("query.param", lambda raw: _string(raw).strip(), "x-auth-token"),
        _Opt("cookie.name", lambda raw: _string(raw).strip(), "x-auth-token"),
    )),
    "metrics": ("metrics", ()),
    "otel": ("otel", ()),
    "endpoint_firewall": ("endpoint_firewall", (_Opt("action", _nonempty, "access"),)),
    "resource_firewall": ("resource_firewall", (
        _Opt("action", _nonempty, "access"), _Opt("target", _nonempty, _REQUIRED),
    )),
    "websocket_relay": ("wsrelay", (_Opt("allowed.origins", _origins, None),)),
    "sse_relay": ("sserelay", (_Opt("allowed.origins", _origins, None),)),
}


def read_options(name: str, options: Mapping[Any, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """One middleware's option values (by option name) and the problems found, as (key, reason)."""
    prefix, specs = _OPTIONS[name]
    known = {f"{prefix}.{o.name}" for o in specs}
    problems = [(key, f"is not an option of {name} (its options: {', '.join(sorted(known)) or 'none'})")
                for key in options if isinstance(key, str) and key.startswith(prefix + ".") and key not in known]
    values: dict[str, Any] = {}
    for o in specs:
        key = f"{prefix}.{o.name}"
        used = next((k for k in (key, key.replace(".", "_"), *o.legacy) if options.get(k) is not None), None)
        if used is None:
            if o.default is _REQUIRED:
                problems.append((key, f"is required by {name}"))
            values[o.name] = o.default
            continue
        try:
            values[o.name] = o.parse(options[used])
        except ValueError as exc:
            problems.append((used, str(exc)))
    return values, problems


def name_problem(name: str, post: bool) -> str | None:
    if name in (POST if post else PRE):
        return None
    if name in NOT_BUILT:
        return f"{name} middleware is not implemented in this runtime"
    if name in (PRE if post else POST):
        return (f"{name} is pre-match middleware: list it under middleware" if post
                else f"{name} is post-match middleware: list it under post_middleware")
    return f"unknown middleware {name!r} (known: {', '.join(sorted(POST if post else PRE))})"


def middleware_errors(names: Any, options: Any, *, entry: str, field: str, options_field: str,
                      post: bool) -> list[DefinitionError]:
    """Everything wrong with a middleware list and its options map, each naming entry and field."""
    errors: list[DefinitionError] = []
    listed: list[str] = []
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        errors.append(DefinitionError("must be a list of middleware names", entry=entry, field=field))
    elif names:
        for i, name in enumerate(names):
            problem = name_problem(name, post)
            if problem is None:
                listed.append(name)
            else:
                errors.append(DefinitionError(problem, entry=entry, field=f"{field}[{i}]"))
    if options is not None and not (isinstance(options, dict) and all(isinstance(k, str) for k in options)):
        errors.append(DefinitionError("must be a mapping of option names to values", entry=entry,
                                      field=options_field))
        return errors
    for name in dict.fromkeys(listed):
        for key, reason in read_options(name, options or {})[1]:
            errors.append(DefinitionError(reason, entry=entry, field=f"{options_field}.{key}"))
    return errors

def relay_origins(kind: str, names: Sequence[str], options: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The origins a relay route accepts (``wsrelay.allowed.origins`` / ``sserelay...``): None
    when the relay middleware is not listed or names none (then only same-origin browsers)."""
    name = "websocket_relay" if kind == "ws" else "sse_relay"
    if name not in names:
        return None
    values, _problems = read_options(name, options)  # checked when the router was applied
    found = values.get("allowed.origins")
    return tuple(found) if found else None


# -- checks when entries are applied --------------------------------------------------------------

def _router_errors(entry: Entry) -> list[DefinitionError]:
    # core's router check already refuses a list or map of the wrong shape: pass only well-shaped ones,
    # so each mistake is reported once
    def names(field: str) -> Any:
        raw = entry.data.get(field)
        return raw if isinstance(raw, list) and all(isinstance(n, str) for n in raw) else None

    def opts(field: str) -> Any:
        raw = entry.data.get(field)
        return raw if isinstance(raw, dict) else None

    return (middleware_errors(names("middleware"), opts("options"), entry=entry.id, field="middleware",
                              options_field="options", post=False)
            + middleware_errors(names("post_middleware"), opts("post_options"), entry=entry.id,
                                field="post_middleware", options_field="post_options", post=True))


def _static_middleware_errors(entry: Entry) -> list[DefinitionError]:
    return middleware_errors(entry.data.get("middleware"), entry.data.get("options"), entry=entry.id,
                             field="middleware", options_field="options", post=False)


register_kind_check(["http.router"], _router_errors)
register_kind_check(["http.static"], _static_middleware_errors)

