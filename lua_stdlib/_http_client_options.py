"""The options of an `http_client` request, checked and turned into what the wire side sends:
INVALID errors name the option (``http_client.get: opts.timeout: ...``), and nothing is sent
until every option is good."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from wippy.core import WippyError

from ._binary import Raw, as_bytes, type_name
from ._durations import MAX_DURATION, parse_go_duration

#: Largest buffered response body when ``max_response_body`` is 0 or absent (streams: no limit).
DEFAULT_MAX_BODY = 64 * 1024 * 1024
#: Without a ``timeout``: how long connecting may take, and how long a read may wait for data.
CONNECT_TIMEOUT = timedelta(seconds=30)
IDLE_READ_TIMEOUT = timedelta(minutes=5)
#: Redirects followed before the request fails (as Go's client).
MAX_REDIRECTS = 10

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\0]")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_OPTIONS = frozenset({"headers", "body", "query", "form", "files", "cookies", "auth", "timeout", "stream",
                      "max_response_body", "unix_socket", "tls", "overlay_network"})




class HttpClientError(WippyError):
    """A request that failed; ``kind`` and ``retryable`` say how (see the module docstring)."""

    def __init__(self, kind: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable


def invalid(label: str, message: str) -> HttpClientError:
    return HttpClientError("INVALID", f"{label}: {message}")


def is_private(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether an address is not a public unicast one: loopback, private, link-local, shared,
    unspecified, reserved or documentation ranges (an IPv4-mapped IPv6 address counts as its IPv4)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def canonical_header(name: str) -> str:
    """A header name as Go writes it (``content-type`` -> ``Content-Type``), as Wippy's tables key them."""
    if not _TOKEN.fullmatch(name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


# -- options -----------------------------------------------------------------------------------
def _text(value: Any, label: str) -> str:
    """A string option; a number is taken as its text (whole numbers without a decimal point)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Raw):
        return value.text()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    raise invalid(label, f"expected a string, got {type_name(value)}")


def _pairs(value: Any, label: str) -> list[tuple[str, Any]]:
    """A ``{name = value}`` option table as pairs sorted by name (Go encodes maps sorted)."""
    if not isinstance(value, dict):
        got = "a list" if isinstance(value, list) else type_name(value)
        raise invalid(label, f"expected a table of name = value, got {got}")
    return sorted(value.items())


def _string_map(value: Any, label: str) -> list[tuple[str, str]]:
    return [(k, ("true" if v else "false") if isinstance(v, bool) else _text(v, f"{label}.{k}"))
            for k, v in _pairs(value, label)]


def _timeout(value: Any, label: str) -> float | None:
    """Seconds (a number) or a Go duration string; None for 0 (no timeout of the caller's own)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Raw):
        raise invalid(label, f"expected seconds (a number) or a duration string like \"30s\", got "
                              f"{type_name(value)}")
    if isinstance(value, str | Raw):
        try:
            seconds = parse_go_duration(_text(value, label)) / 1e9
        except ValueError as exc:
            raise invalid(label, str(exc)) from None
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise invalid(label, f"the timeout must be 0 or more, got {value}")
    if seconds > MAX_DURATION / 1e9:
        raise invalid(label, f"the timeout {value} is longer than a Go duration can be (about 292 years)")
    return seconds or None


def _limit(value: Any, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or value < 0:
        raise invalid(label, f"expected a number of bytes (0 or more), got {type_name(value)} {value!r}")
    return int(min(value, 2**62))


def _bytes_of(value: Any, label: str) -> bytes:
    data = as_bytes(value)
    if data is None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _text(value, label).encode()
        raise invalid(label, f"expected a string, got {type_name(value)}")
    return data


@dataclass(frozen=True, slots=True)
class FormFile:
    name: str
    filename: str
    content: bytes
    content_type: str


def _files(value: Any, label: str) -> list[FormFile]:
    if isinstance(value, dict) and not value:
        return []
    if not isinstance(value, list):
        raise invalid(label, f"expected a list of {{name, filename, content}} tables, got {type_name(value)}")
    out = []
    for i, f in enumerate(value, 1):
        where = f"{label}[{i}]"
        if not isinstance(f, dict):
            raise invalid(where, f"expected a table {{name, filename, content}}, got {type_name(f)}")
        if f.get("name") in (None, ""):
            raise invalid(where, "the form field name (name) is missing")
        if "content" not in f:
            raise invalid(where, "content (or reader) is missing")
        name = _text(f["name"], f"{where}.name")
        out.append(FormFile(name, _text(f.get("filename", name), f"{where}.filename"),
                         _bytes_of(f["content"], f"{where}.content"),
                         _text(f.get("content_type", "application/octet-stream"), f"{where}.content_type")))
    return out


@dataclass(frozen=True, slots=True)
class Tls:
    ca: str | None
    cert: str | None
    key: str | None
    insecure: bool


def _tls(value: Any, label: str) -> tuple[Tls | None, str | None]:
    """TLS settings (None when there are none) and the server name to verify."""
    if not isinstance(value, dict):
        raise invalid(label, f"expected a table, got {type_name(value)}")
    given: dict[str, str | None] = {}
    for k in ("ca", "cert", "key", "server_name"):
        raw = value.get(k)
        given[k] = None if raw is None else (_text(raw, f"{label}.{k}") or None)
    insecure = value.get("insecure_skip_verify", False)
    if not isinstance(insecure, bool):
        raise invalid(f"{label}.insecure_skip_verify", f"expected a boolean, got {type_name(insecure)}")
    if (given["cert"] is None) != (given["key"] is None):
        raise invalid(label, "cert and key must be given together (client certificate and its private key)")
    if given["ca"] is None and given["cert"] is None and not insecure:
        return None, given["server_name"]
    return Tls(given["ca"], given["cert"], given["key"], insecure), given["server_name"]


@dataclass(slots=True, eq=False)
class Request:
    """One request on its way: its current hop (url, method, body) and what stays across hops."""

    label: str
    method: str
    url: URL
    headers: CIMultiDict[str]
    body: bytes | None
    files: list[FormFile]
    form: list[tuple[str, str]]
    timeout: float | None
    max_body: int
    stream: bool
    unix_socket: str | None
    tls: Tls | None
    server_name: str | None
    pins: list[str] | None = None
    hops: int = 0
    deadline: float | None = None  # loop time: set by the first hop when the caller gave a timeout

    def payload(self) -> bytes | aiohttp.FormData | None:
        if not self.files:
            return self.body
        data = aiohttp.FormData()  # single use: a new one for every hop
        for k, v in self.form:
            data.add_field(k, v)
        for f in self.files:
            data.add_field(f.name, f.content, filename=f.filename, content_type=f.content_type)
        return data

    def follow(self, resp: aiohttp.ClientResponse) -> URL | None:
        """The next hop's URL when ``resp`` redirects (the request is moved there), else None."""
        location = resp.headers.get("Location")
        if resp.status not in _REDIRECTS or not location:
            return None
        if self.hops >= MAX_REDIRECTS:
            raise HttpClientError("INTERNAL", f"{self.method} {self.url}: stopped after {MAX_REDIRECTS} redirects")
        try:
            target = resp.url.join(URL(location))
        except ValueError as exc:
            raise HttpClientError("INTERNAL", f"{self.method} {self.url}: bad redirect location "
                                              f"{location!r}: {exc}") from None
        if target.scheme not in ("http", "https") or not target.raw_host:
            raise HttpClientError("INTERNAL", f"{self.method} {self.url}: redirect to {target} "
                                              "is not an http(s) URL")
        self.hops += 1
        if resp.status in (301, 302, 303) and self.method not in ("GET", "HEAD"):
            self.method, self.body, self.files, self.form = "GET", None, [], []
            self.headers.popall("Content-Type", None)
        if target.host != self.url.host:  # credentials stay with the host they were meant for
            self.headers.popall("Authorization", None)
            self.headers.popall("Cookie", None)
        self.url, self.pins = target, None
        return target

    def client_timeout(self, loop: asyncio.AbstractEventLoop) -> aiohttp.ClientTimeout:
        if self.timeout is None:
            return aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT.total_seconds(),
                                         sock_read=IDLE_READ_TIMEOUT.total_seconds())
        if self.deadline is None:  # the caller's timeout covers every hop, as Go's client does
            self.deadline = loop.time() + self.timeout
        left = self.deadline - loop.time()
        if left <= 0:
            raise HttpClientError("TIMEOUT", f"{self.method} {self.url}: timed out after {self.timeout:g}s",
                                  retryable=True)
        return aiohttp.ClientTimeout(total=left)


def prepare(label: str, method: str, url: str, opts: dict[str, Any], *, batch: bool = False) -> Request:
    """A request from Lua's arguments (``opts`` as Python data); errors start with ``label``."""
    try:
        return _parse(label, method, url, opts, batch)
    except HttpClientError as exc:
        raise HttpClientError(exc.kind, f"{label}: {exc}", retryable=exc.retryable) from None


def _parse(label: str, method: str, url: str, opts: dict[str, Any], batch: bool) -> Request:
    if not _TOKEN.fullmatch(method):
        raise invalid("method", f"{method!r} is not an HTTP method name")
    try:
        target = URL(url)
        host = target.raw_host
    except (ValueError, TypeError) as exc:
        raise invalid("url", f"{url!r} is not a URL: {exc}") from None
    if target.scheme not in ("http", "https"):
        raise invalid("url", f"{url!r}: the scheme must be http or https")
    if not host:
        raise invalid("url", f"{url!r} has no host")
    unknown = sorted(set(opts) - _OPTIONS)
    if unknown:
        raise invalid(f"opts.{unknown[0]}", f"unknown option (known: {', '.join(sorted(_OPTIONS))})")
    if opts.get("overlay_network") is not None:
        raise HttpClientError("UNAVAILABLE", "opts.overlay_network: overlay networks are not supported by this "
                                             "runtime")
    query = _string_map(opts.get("query", {}), "opts.query")
    if query:
        target = target.update_query(query)
    headers = _headers(opts)
    body, form, files = _body(opts, headers)
    stream = opts.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid("opts.stream", f"expected a boolean, got {type_name(stream)}")
    if stream and batch:
        raise invalid("opts.stream", "streaming not supported in batch requests")
    socket_path = opts.get("unix_socket")
    if socket_path is not None:
        socket_path = _text(socket_path, "opts.unix_socket")
        if not socket_path:
            raise invalid("opts.unix_socket", "empty path")
    tls, server_name = _tls(opts.get("tls", {}), "opts.tls")
    limit = _limit(opts.get("max_response_body", 0), "opts.max_response_body")
    return Request(label=label, method=method, url=target, headers=headers, body=body, files=files, form=form,
                    timeout=_timeout(opts.get("timeout", 0), "opts.timeout"),
                    max_body=limit or (0 if stream else DEFAULT_MAX_BODY), stream=stream,
                    unix_socket=socket_path, tls=tls, server_name=server_name)


def _headers(opts: dict[str, Any]) -> CIMultiDict[str]:
    """Request headers from opts.headers, opts.cookies (a Cookie header) and opts.auth (basic)."""
    headers: CIMultiDict[str] = CIMultiDict()
    for k, v in _string_map(opts.get("headers", {}), "opts.headers"):
        if not _TOKEN.fullmatch(k) or _BAD_VALUE.search(v):
            raise invalid("opts.headers", f"{k!r} = {v!r} is not a valid header")
        headers.add(k, v)
    cookies = _string_map(opts.get("cookies", {}), "opts.cookies")
    if cookies:
        jar = "; ".join(f"{k}={v}" for k, v in cookies)
        if _BAD_VALUE.search(jar):
            raise invalid("opts.cookies", "names and values cannot hold line breaks")
        headers["Cookie"] = f"{headers['Cookie']}; {jar}" if "Cookie" in headers else jar
    auth = opts.get("auth")
    if auth is not None:
        if not isinstance(auth, dict) or "user" not in auth:
            raise invalid("opts.auth", "expected {user = ..., pass = ...}")
        pair = _bytes_of(auth["user"], "opts.auth.user") + b":" + _bytes_of(auth.get("pass", ""), "opts.auth.pass")
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    return headers


def _body(opts: dict[str, Any], headers: CIMultiDict[str]
          ) -> tuple[bytes | None, list[tuple[str, str]], list[FormFile]]:
    """The raw body (opts.body, or opts.form urlencoded), and the form and files of a multipart body."""
    body = None if opts.get("body") is None else _bytes_of(opts["body"], "opts.body")
    form = _string_map(opts.get("form", {}), "opts.form")
    files = _files(opts.get("files", {}), "opts.files")
    if body is not None and (form or files):
        raise invalid("opts.body", "cannot be combined with opts.form or opts.files")
    if form and not files:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return urlencode(form).encode("ascii"), [], []
    return body, form, files

