"""HTTP middleware of routers and static sites: Wippy's names and options as aiohttp handler wrappers.

A router lists pre-match middleware (``middleware`` + ``options``: every request under its prefix,
before the route is matched) and post-match middleware (``post_middleware`` + ``post_options``: a
matched endpoint, named by the request's ``wippy.endpoint``). A middleware is
``async (request, next) -> response``; ``build_chain`` makes them from names and options (first =
outermost) and ``middleware_errors`` refuses a bad list or option value when the entry is applied.

Options are ``<middleware>.<option>`` keys (``cors.allow.origins``) with string values (numbers and
booleans are taken too). The older underscore keys are read when the dotted one is absent: the key
with ``_`` for ``.`` (``cors_allow_origins``), and the bare ``allow_origins``-style keys of cors,
``trusted_subnets``/``trust_all`` and ``token_store``. A key under a listed middleware's prefix that
it does not know is refused: a typo such as ``cors.allow.orgins`` would otherwise fall back to the
default (``*``) without a word.

What middleware leaves on a request (keys in ``_http_keys``, plus two here): ``REMOTE_ADDR``
(real_ip), ``SECURITY`` (token_auth replaces the service default), ``RESPONSE_HEADERS`` (cors) and
``COMPRESS`` (compress). The last two are applied to the response a handler returns; a handler
that streams calls ``before_prepare`` before preparing its response, so they reach it too.

``sendfile`` is not built (refused when applied). ``websocket_relay`` and ``sse_relay`` pass the
request on: the server does the relaying and reads their ``wsrelay.*``/``sserelay.*`` options.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import mimetypes
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from aiohttp import hdrs, web
from aiohttp.compression_utils import ZLibCompressor
from multidict import CIMultiDict
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from wippy.core import (
    Authorizer,
    DefinitionError,
    Entry,
    TokenService,
    WippyError,
    format_go_duration,
    parse_go_duration,
    register_kind_check,
)

from . import _http_keys as keys

log = logging.getLogger("wippy.http.middleware")

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.BaseRequest, Handler], Awaitable[web.StreamResponse]]
IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: headers middleware adds to the response (cors); merged into whatever response goes out
RESPONSE_HEADERS = web.RequestKey("wippy.response_headers", CIMultiDict[str])
#: the content coding compress chose for this request (streamed responses compress with it)
COMPRESS = web.RequestKey("wippy.compress", web.ContentCoding)


@dataclass(frozen=True, slots=True, kw_only=True)
class MiddlewareDeps:
    """What middleware reads from the node."""

    registry: Any  # .get(id) -> Entry | None, .current() -> Mapping[str, Entry]
    stores: Any = None  # StoreHub: token stores keep tokens there
    env: Any = None  # EnvService: token_key placeholders
    telemetry: Any = None  # Telemetry (metrics); None: metrics records nothing
    expr: Any = None  # (expression, env) -> value, for security.policy.expr
    strict: bool = False  # security.strict_mode


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


def _read(name: str, options: Mapping[Any, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
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


def _name_problem(name: str, post: bool) -> str | None:
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
            problem = _name_problem(name, post)
            if problem is None:
                listed.append(name)
            else:
                errors.append(DefinitionError(problem, entry=entry, field=f"{field}[{i}]"))
    if options is not None and not (isinstance(options, dict) and all(isinstance(k, str) for k in options)):
        errors.append(DefinitionError("must be a mapping of option names to values", entry=entry,
                                      field=options_field))
        return errors
    for name in dict.fromkeys(listed):
        for key, reason in _read(name, options or {})[1]:
            errors.append(DefinitionError(reason, entry=entry, field=f"{options_field}.{key}"))
    return errors


# -- responses ------------------------------------------------------------------------------------

def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"error": message}), content_type="application/json",
                        headers=headers)


def _merge_headers(target: CIMultiDict[str], extra: Mapping[str, str]) -> None:
    """Set ``extra`` on ``target``; Vary tokens are added to the ones already there."""
    for name, value in extra.items():
        if name.lower() != "vary":
            target[name] = value
            continue
        have = [v.strip() for v in target.get(hdrs.VARY, "").split(",") if v.strip()]
        lower = {v.lower() for v in have}
        have += [v.strip() for v in value.split(",") if v.strip() and v.strip().lower() not in lower]
        target[hdrs.VARY] = ", ".join(have)


def _add_response_headers(request: web.BaseRequest, extra: Mapping[str, str]) -> None:
    found = request.get(RESPONSE_HEADERS)
    if found is None:
        found = request[RESPONSE_HEADERS] = CIMultiDict()
    _merge_headers(found, extra)


def before_prepare(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """Give a response the server is about to prepare what middleware added: cors headers, and the
    compression compress chose (not for Server-Sent Events, which must reach the client at once)."""
    extra = request.get(RESPONSE_HEADERS)
    if extra:
        _merge_headers(response.headers, extra)
    coding = request.get(COMPRESS)
    if coding is not None and _compressible(request, response):
        _merge_headers(response.headers, {hdrs.VARY: "Accept-Encoding"})
        response.enable_compression(coding)


# -- cors -----------------------------------------------------------------------------------------

@lru_cache(maxsize=1024)
def _origin_glob(pattern: str) -> re.Pattern[str]:
    return re.compile("".join("[^/]*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern)))


def origin_allowed(patterns: Sequence[str], origin: str) -> bool:
    """Whether an Origin matches one of the patterns (lower case): ``*``, an exact origin, or a glob
    such as ``https://*.example.com``; a pattern without a scheme (``*.example.com``) matches the
    origin's host[:port] under any scheme."""
    origin = origin.strip().lower()
    if not origin:
        return False
    scheme_sep = "://" in origin
    host = origin.partition("://")[2] if scheme_sep else origin
    for pattern in patterns:
        if pattern == "*":
            return True
        target = origin if "://" in pattern or not scheme_sep else host
        if ("*" in pattern and _origin_glob(pattern).fullmatch(target)) or pattern == target:
            return True
    return False


def relay_origins(kind: str, names: Sequence[str], options: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The origins a relay route accepts (``wsrelay.allowed.origins`` / ``sserelay...``): None
    when the relay middleware is not listed or names none (then only same-origin browsers)."""
    name = "websocket_relay" if kind == "ws" else "sse_relay"
    if name not in names:
        return None
    values, _problems = _read(name, options)  # checked when the router was applied
    found = values.get("allowed.origins")
    return tuple(found) if found else None


def same_origin(request: web.BaseRequest, origin: str) -> bool:
    """Whether a browser's Origin names the host the request came to."""
    return origin.strip().lower().partition("://")[2] == (request.host or "").lower()


class _Cors:
    def __init__(self, o: Mapping[str, Any]) -> None:
        self.origins: tuple[str, ...] = o["allow.origins"]
        self.any_origin = "*" in self.origins
        self.methods = ", ".join(o["allow.methods"])
        self.headers: tuple[str, ...] = o["allow.headers"]
        self.expose = ", ".join(o["expose.headers"])
        self.credentials: bool = o["allow.credentials"]
        self.max_age: int = o["max.age"]
        self.private_network: bool = o["allow.private.network"]

    def _origin_headers(self, origin: str) -> CIMultiDict[str]:
        out: CIMultiDict[str] = CIMultiDict()
        if self.any_origin and not self.credentials:
            out[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = "*"
        else:  # a specific origin (the only form credentials allow): caches must key on it
            out[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            out[hdrs.VARY] = "Origin"
        if self.credentials:
            out[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"
        return out

    def _preflight(self, request: web.BaseRequest, origin: str) -> web.Response:
        headers: CIMultiDict[str] = CIMultiDict(
            {hdrs.VARY: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"})
        if origin_allowed(self.origins, origin):
            _merge_headers(headers, self._origin_headers(origin))
            headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = self.methods
            asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, "")
            allow = asked if "*" in self.headers and asked else ", ".join(self.headers)
            if allow:
                headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = allow
            if self.max_age > 0:
                headers[hdrs.ACCESS_CONTROL_MAX_AGE] = str(self.max_age)
            if self.private_network and request.headers.get("Access-Control-Request-Private-Network") == "true":
                headers["Access-Control-Allow-Private-Network"] = "true"
        return web.Response(status=204, headers=headers)

    async def __call__(self, request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None:
            return await handler(request)
        if request.method == hdrs.METH_OPTIONS and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers:
            return self._preflight(request, origin)
        if not origin_allowed(self.origins, origin):
            extra: CIMultiDict[str] = CIMultiDict({hdrs.VARY: "Origin"} if not self.any_origin else {})
        else:
            extra = self._origin_headers(origin)
            if self.expose:
                extra[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = self.expose
        if not extra:
            return await handler(request)
        _add_response_headers(request, extra)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            _merge_headers(exc.headers, extra)
            raise
        if not response.prepared:
            _merge_headers(response.headers, extra)
        return response


# -- compress -------------------------------------------------------------------------------------

_INCOMPRESSIBLE = re.compile(
    r"^(image/(?!svg)|audio/|video/|font/woff|application/(zip|gzip|x-gzip|zstd|x-bzip2|x-xz|x-7z-compressed|"
    r"x-rar-compressed|vnd\.rar)|text/event-stream)")


def _coding(accept: str) -> web.ContentCoding | None:
    """The best of gzip and deflate an Accept-Encoding allows (q > 0); gzip wins ties."""
    quality: dict[str, float] = {}
    for part in accept.lower().split(","):
        name, _, params = part.strip().partition(";")
        q = 1.0
        m = re.search(r"q\s*=\s*([0-9.]+)", params)
        if m:
            try:
                q = float(m.group(1))
            except ValueError:
                q = 0.0
        if name.strip():
            quality[name.strip()] = q
    star = quality.get("*", 0.0)
    best = max(("gzip", "deflate"), key=lambda c: quality.get(c, star))
    return web.ContentCoding(best) if quality.get(best, star) > 0 else None


_CONDITIONAL = (hdrs.IF_NONE_MATCH, hdrs.IF_MODIFIED_SINCE, hdrs.IF_MATCH, hdrs.IF_UNMODIFIED_SINCE)


def _compressible(request: web.BaseRequest, response: web.StreamResponse) -> bool:
    if response.status < 200 or response.status in {204, 206, 304}:
        return False
    # aiohttp writes a compressed stream's trailer even where a response has no body (HEAD, and a
    # file response that turns into a 304 when prepared): that would corrupt the connection
    if request.method == hdrs.METH_HEAD or (isinstance(response, web.FileResponse)
                                            and any(h in request.headers for h in _CONDITIONAL)):
        return False
    if hdrs.CONTENT_ENCODING in response.headers or hdrs.RANGE in request.headers:
        return False
    if "no-transform" in response.headers.get(hdrs.CACHE_CONTROL, "").lower():
        return False
    ctype = response.headers.get(hdrs.CONTENT_TYPE)
    if ctype is None and not isinstance(response, web.Response):
        ctype = mimetypes.guess_type(request.path)[0]  # a file response sets its type when prepared
    return ctype is None or _INCOMPRESSIBLE.match(ctype.lower()) is None


class _Compress:
    def __init__(self, o: Mapping[str, Any]) -> None:
        self.level: int = o["level"]
        self.min_length: int = o["min.length"]

    async def __call__(self, request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        coding = _coding(request.headers.get(hdrs.ACCEPT_ENCODING, ""))
        if coding is not None:
            request[COMPRESS] = coding
        response = await handler(request)
        if response.prepared or not _compressible(request, response):
            return response
        body = response.body if isinstance(response, web.Response) else None
        if isinstance(response, web.Response) and (body is None or (isinstance(body, bytes | bytearray)
                                                                   and len(body) < self.min_length)):
            return response
        _merge_headers(response.headers, {hdrs.VARY: "Accept-Encoding"})
        if coding is None:
            return response
        if isinstance(response, web.Response) and isinstance(body, bytes | bytearray):
            compressor = ZLibCompressor(encoding=coding.value, level=self.level)
            response.body = await compressor.compress(body) + compressor.flush()
            response.headers[hdrs.CONTENT_ENCODING] = coding.value
            response.headers.popall(hdrs.CONTENT_LENGTH, None)
            etag = response.headers.get(hdrs.ETAG)
            if etag and not etag.startswith("W/"):  # the bytes differ from the identity ones
                response.headers[hdrs.ETAG] = "W/" + etag
        else:
            response.enable_compression(coding)
        return response


# -- real_ip --------------------------------------------------------------------------------------

def _ip(text: str | None) -> IP | None:
    """An address from a header or the peer: plain, ``[v6]:port`` or ``v4:port``; v4-mapped v6 as v4."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class _RealIp:
    def __init__(self, o: Mapping[str, Any]) -> None:
        self.subnets: tuple[Network, ...] = o["trusted.subnets"]
        self.trust_all: bool = o["trust_all"]

    def _trusted(self, ip: IP) -> bool:
        return self.trust_all or any(ip in net for net in self.subnets)

    def _client(self, request: web.BaseRequest) -> IP | None:
        for name in ("True-Client-IP", "X-Real-IP"):
            ip = _ip(request.headers.get(name))
            if ip is not None:
                return ip
        hops = [ip for part in ",".join(request.headers.getall("X-Forwarded-For", ())).split(",")
                if (ip := _ip(part)) is not None]
        if not hops or self.trust_all:
            return hops[0] if hops else None
        # the nearest hop our proxies did not add: everything to its right is a trusted proxy
        for ip in reversed(hops):
            if not self._trusted(ip):
                return ip
        return hops[0]

    async def __call__(self, request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        peer = _ip(request.remote)
        client = self._client(request) if peer is not None and self._trusted(peer) else None
        address = client or peer
        request[keys.REMOTE_ADDR] = str(address) if address is not None else (request.remote or "")
        return await handler(request)


# -- ratelimit ------------------------------------------------------------------------------------

class TokenBuckets:
    """A token bucket per key (``capacity`` tokens, refilled at ``rate`` per second), least recently used
    first. Memory is bounded: past ``max_entries`` the least recently used key goes, and every
    ``cleanup`` seconds keys idle for ``ttl`` are dropped, lazily, on the next request."""

    def __init__(self, *, rate: float, capacity: float, ttl: float, cleanup: float, max_entries: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = capacity
        self.ttl = ttl
        self.cleanup = cleanup
        self.max_entries = max_entries
        self.clock = clock
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # key -> [tokens, last refill]
        self._next_sweep = clock() + cleanup

    def __len__(self) -> int:
        return len(self._buckets)

    def wait(self, key: str) -> float:
        """Take a token for ``key``: 0.0 when there was one, else the seconds until there is one."""
        now = self.clock()
        buckets = self._buckets
        if now >= self._next_sweep:
            self._next_sweep = now + self.cleanup
            while buckets and now - next(iter(buckets.values()))[1] > self.ttl:
                buckets.popitem(last=False)
        bucket = buckets.get(key)
        if bucket is None:
            while len(buckets) >= self.max_entries:
                buckets.popitem(last=False)
            bucket = buckets[key] = [self.capacity, now]
        else:
            buckets.move_to_end(key)
            bucket[0] = min(self.capacity, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return 0.0
        return (1.0 - bucket[0]) / self.rate


class _RateLimit:
    def __init__(self, o: Mapping[str, Any]) -> None:
        self.requests: int = o["requests"]
        self.window_ns: int = o["window"]
        # Wippy's default burst is 20; here it is never above the per-window allowance
        capacity = o["burst"] if o["burst"] is not None else min(20, self.requests)
        self.buckets = TokenBuckets(rate=self.requests / (self.window_ns / 1e9), capacity=float(capacity),
                                    ttl=o["entry_ttl"] / 1e9, cleanup=o["cleanup_interval"] / 1e9,
                                    max_entries=o["max_entries"])
        self.key: tuple[str, str] = o["key"]

    def _key(self, request: web.BaseRequest) -> str:
        kind, name = self.key
        value = request.headers.get(name) if kind == "header" else request.query.get(name) if kind == "query" else None
        if value:
            return f"{kind}:{value}"
        return "ip:" + (request.get(keys.REMOTE_ADDR) or request.remote or "")

    async def __call__(self, request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        wait = self.buckets.wait(self._key(request))
        if wait > 0:
            return _error(429, "too many requests", {
                hdrs.RETRY_AFTER: str(max(1, math.ceil(wait))), "X-RateLimit-Limit": str(self.requests),
                "X-RateLimit-Window": format_go_duration(self.window_ns)})
        return await handler(request)


# -- token_auth -----------------------------------------------------------------------------------

class _TokenAuth:
    def __init__(self, o: Mapping[str, Any], deps: MiddlewareDeps) -> None:
        self.store: str = o["store"]
        self.header: str = o["header.name"]
        self.prefix: str = o["header.prefix"]
        self.query: str = o["query.param"]
        self.cookie: str = o["cookie.name"]
        env = deps.env.lookup if deps.env is not None else None
        self.tokens = TokenService(deps.registry, deps.stores, parse_go_duration, env=env)

    def _token(self, request: web.BaseRequest) -> str | None:
        value = request.headers.get(self.header) if self.header else None
        if value:
            if not self.prefix:
                return value.strip() or None
            if value[:len(self.prefix)].lower() == self.prefix.lower() and value[len(self.prefix):].strip():
                return value[len(self.prefix):].strip()
        return (request.query.get(self.query) if self.query else None) or \
            (request.cookies.get(self.cookie) if self.cookie else None) or None

    async def __call__(self, request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        token = self._token(request)
        if token:
            try:
                grant = self.tokens.validate(self.store, token)
            except (WippyError, LookupError, TypeError, ValueError, AttributeError) as exc:
                # no valid token is no actor: authorization (the firewalls) decides what that allows
                log.debug("token_auth: %s", exc)
            else:
                request[keys.SECURITY] = {"actor": {"id": grant.actor_id, "meta": dict(grant.actor_meta)},
                                          "policies": list(grant.policy_ids)}
        return await handler(request)


# -- metrics and otel -----------------------------------------------------------------------------

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})


class _Metrics:
    def __init__(self, telemetry: Any) -> None:
        self.telemetry = telemetry

    def _record(self, action: Callable[[], None]) -> None:
        try:
            action()
        except WippyError as exc:  # a closed telemetry: metrics never fail a request
            log.debug("metrics: %s", exc)

    async def __call__(self, request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        t = self.telemetry
        if t is None:
            return await handler(request)
        router = request.get(keys.ROUTER) or ""
        flight = {"router": router}
        self._record(lambda: t.gauge_add("wippy_http_requests_in_flight", 1, flight))
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away
            raise
        finally:
            labels = {"method": request.method if request.method in _METHODS else "OTHER", "status": str(status),
                      "router": router, "endpoint": request.get(keys.ENDPOINT) or ""}
            elapsed = time.perf_counter() - started
            self._record(lambda: t.counter_add("wippy_http_requests_total", 1, labels))
            self._record(lambda: t.histogram_record("wippy_http_request_duration_seconds", elapsed, labels))
            self._record(lambda: t.gauge_add("wippy_http_requests_in_flight", -1, flight))


_PROPAGATOR = TraceContextTextMapPropagator()


class _Otel:
    """A server span per request, child of the caller's W3C traceparent; current while the handler runs.
    Without a configured TracerProvider the API's no-op tracer makes this nearly free."""

    def __init__(self) -> None:
        self.tracer = trace.get_tracer("wippy.http")

    async def __call__(self, request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        parent = _PROPAGATOR.extract(request.headers)
        attributes = {"http.request.method": request.method, "url.path": request.path, "url.scheme": request.scheme,
                      "server.address": request.host, "client.address": request.remote or "",
                      "user_agent.original": request.headers.get(hdrs.USER_AGENT, "")}
        with self.tracer.start_as_current_span(request.method, context=parent, kind=trace.SpanKind.SERVER,
                                               attributes=attributes, record_exception=False,
                                               set_status_on_exception=False) as span:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                self._finish(span, request, exc.status)
                raise
            except Exception as exc:
                span.record_exception(exc)
                self._finish(span, request, 500)
                raise
            self._finish(span, request, response.status)
            return response

    @staticmethod
    def _finish(span: trace.Span, request: web.BaseRequest, status: int) -> None:
        span.set_attribute("http.response.status_code", status)
        endpoint = request.get(keys.ENDPOINT)
        if endpoint:
            span.set_attribute("wippy.endpoint", endpoint)
            span.update_name(f"{request.method} {endpoint}")
        if status >= 500:
            span.set_status(trace.Status(trace.StatusCode.ERROR))


# -- firewalls ------------------------------------------------------------------------------------

class _Firewall:
    """401 without an actor; 403 unless the request's policies allow ``action`` on the resource (the
    matched endpoint, or a fixed ``target``). Policies that are gone or broken deny."""

    def __init__(self, deps: MiddlewareDeps, action: str, target: str | None) -> None:
        self.registry = deps.registry
        self.auth = Authorizer(deps.registry, strict=deps.strict, expr_eval=deps.expr)
        self.action = action
        self.target = target

    def _policies(self, security: Mapping[str, Any]) -> list[str]:
        ids = [p for p in security.get("policies") or () if isinstance(p, str)]
        groups = {g for g in security.get("groups") or () if isinstance(g, str)}
        if groups:  # a service default may name groups; their policies count too
            ids += [e.id for e in self.registry.current().values()
                    if e.kind.startswith("security.policy") and groups & set(e.data.get("groups") or ())]
        return ids

    async def __call__(self, request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        security = request.get(keys.SECURITY)
        if not isinstance(security, dict):
            security = {}
        actor = security.get("actor")
        if not isinstance(actor, Mapping) or not isinstance(actor.get("id"), str) or not actor["id"]:
            return _error(401, "authentication required", {hdrs.WWW_AUTHENTICATE: "Bearer"})
        resource = self.target or request.get(keys.ENDPOINT)
        meta = actor.get("meta")
        try:
            if not resource:
                raise WippyError("no resource to check")  # never reached for a matched endpoint: fail closed
            self.auth.check((actor["id"], meta if isinstance(meta, Mapping) else {}), self._policies(security),
                            self.action, resource)
        except WippyError as exc:
            log.debug("firewall: %s", exc)
            return _error(403, "permission denied")
        return await handler(request)


async def _pass(request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
    return await handler(request)


# -- chains ---------------------------------------------------------------------------------------

_FACTORIES: dict[str, Callable[[dict[str, Any], MiddlewareDeps], Middleware]] = {
    "cors": lambda o, _d: _Cors(o),
    "compress": lambda o, _d: _Compress(o),
    "real_ip": lambda o, _d: _RealIp(o),
    "ratelimit": lambda o, _d: _RateLimit(o),
    "token_auth": _TokenAuth,
    "metrics": lambda _o, d: _Metrics(d.telemetry),
    "otel": lambda _o, _d: _Otel(),
    "endpoint_firewall": lambda o, d: _Firewall(d, o["action"], None),
    "resource_firewall": lambda o, d: _Firewall(d, o["action"], o["target"]),
    "websocket_relay": lambda _o, _d: _pass,
    "sse_relay": lambda _o, _d: _pass,
}


def build_chain(names: Sequence[str], options: Mapping[str, Any], *, deps: MiddlewareDeps,
                post: bool) -> list[Middleware]:
    """The middleware for ``names``, in order (first = outermost); DefinitionError for a name or an
    option that ``middleware_errors`` would have refused."""
    chain: list[Middleware] = []
    for name in names:
        problem = _name_problem(name, post)
        if problem is not None:
            raise DefinitionError(problem, field="post_middleware" if post else "middleware")
        values, problems = _read(name, options)
        if problems:
            key, reason = problems[0]
            raise DefinitionError(reason, field=f"{'post_options' if post else 'options'}.{key}")
        chain.append(_FACTORIES[name](values, deps))
    return chain


def compose(chain: Sequence[Middleware], inner: Handler) -> Handler:
    """One handler: ``chain[0]`` runs first and ``inner`` last."""
    handler = inner
    for mw in reversed(chain):
        handler = _bind(mw, handler)
    return handler


def _bind(mw: Middleware, nxt: Handler) -> Handler:
    async def run(request: web.BaseRequest) -> web.StreamResponse:
        return await mw(request, nxt)

    return run


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
