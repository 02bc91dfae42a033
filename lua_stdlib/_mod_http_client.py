"""`http_client`: outgoing HTTP requests on aiohttp (the Lua side is lua/http_client.lua).

    get/post/put/patch/delete/head(url, opts?) -> resp | nil, err
    request(method, url, opts?)               -> resp | nil, err
    request_batch({{method, url, opts?}, ...}) -> responses, errors | nil   (nil, err: a bad item)
    encode_uri(s) -> string                   decode_uri(s) -> string | nil, err

A request crosses three times, because permission checks must run inside the calling Lua task (they
read its actor and scope): ``prepare`` validates the options (INVALID errors name the option) and
gives Lua an opaque request; ``resolve`` looks up the host's addresses, so Lua can check
``http_client.private_ip`` on the private ones; ``send`` makes one hop. Redirects are followed one
hop at a time, each hop checked again in Lua, so a redirect cannot lead past the checks to a
private address. The addresses Lua approved are pinned for the connection (``_PinnedResolver``):
a second DNS answer cannot swap in another address.

Errors: INVALID (bad options), TIMEOUT (retryable), UNAVAILABLE (cannot connect or resolve;
retryable), INTERNAL (TLS failures, protocol errors, a body over ``max_response_body``).
One ``aiohttp.ClientSession`` per Lua host (plus one per unix socket), made on first use, closed
with the host. It keeps no cookies between requests.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import math
import re
import socket
import ssl
import tempfile
import weakref
from collections import OrderedDict
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp.abc import ResolveResult
from multidict import CIMultiDict
from yarl import URL

from wippy.core import WippyError

from ._binary import Raw, as_bytes, guard, host_copy, type_name
from ._durations import MAX_DURATION, parse_go_duration
from ._host import LuaHost, register_module
from ._vm import _source

#: Largest buffered response body when ``max_response_body`` is 0 or absent (streams: no limit).
DEFAULT_MAX_BODY = 64 * 1024 * 1024
#: Without a ``timeout``: how long connecting may take, and how long a read may wait for data.
CONNECT_TIMEOUT = timedelta(seconds=30)
IDLE_READ_TIMEOUT = timedelta(minutes=5)
#: Redirects followed before the request fails (as Go's client).
MAX_REDIRECTS = 10
_SSL_CACHE_SIZE = 32
_MAX_READ = 16 * 1024 * 1024  # bytes one stream:read may ask for

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\r\n\0]")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_OPTIONS = frozenset({"headers", "body", "query", "form", "files", "cookies", "auth", "timeout", "stream",
                      "max_response_body", "unix_socket", "tls", "overlay_network"})

#: host -> addresses the calling task approved, for the request being sent in this asyncio task
_PINS: ContextVar[dict[str, list[str]] | None] = ContextVar("wippy_http_client_pins", default=None)


class HttpClientError(WippyError):
    """A request that failed; ``kind`` and ``retryable`` say how (see the module docstring)."""

    def __init__(self, kind: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable


def _invalid(label: str, message: str) -> HttpClientError:
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
    raise _invalid(label, f"expected a string, got {type_name(value)}")


def _pairs(value: Any, label: str) -> list[tuple[str, Any]]:
    """A ``{name = value}`` option table as pairs sorted by name (Go encodes maps sorted)."""
    if not isinstance(value, dict):
        got = "a list" if isinstance(value, list) else type_name(value)
        raise _invalid(label, f"expected a table of name = value, got {got}")
    return sorted(value.items())


def _string_map(value: Any, label: str) -> list[tuple[str, str]]:
    return [(k, ("true" if v else "false") if isinstance(v, bool) else _text(v, f"{label}.{k}"))
            for k, v in _pairs(value, label)]


def _timeout(value: Any, label: str) -> float | None:
    """Seconds (a number) or a Go duration string; None for 0 (no timeout of the caller's own)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Raw):
        raise _invalid(label, f"expected seconds (a number) or a duration string like \"30s\", got "
                              f"{type_name(value)}")
    if isinstance(value, str | Raw):
        try:
            seconds = parse_go_duration(_text(value, label)) / 1e9
        except ValueError as exc:
            raise _invalid(label, str(exc)) from None
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise _invalid(label, f"the timeout must be 0 or more, got {value}")
    if seconds > MAX_DURATION / 1e9:
        raise _invalid(label, f"the timeout {value} is longer than a Go duration can be (about 292 years)")
    return seconds or None


def _limit(value: Any, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or value < 0:
        raise _invalid(label, f"expected a number of bytes (0 or more), got {type_name(value)} {value!r}")
    return int(min(value, 2**62))


def _bytes_of(value: Any, label: str) -> bytes:
    data = as_bytes(value)
    if data is None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _text(value, label).encode()
        raise _invalid(label, f"expected a string, got {type_name(value)}")
    return data


@dataclass(frozen=True, slots=True)
class _File:
    name: str
    filename: str
    content: bytes
    content_type: str


def _files(value: Any, label: str) -> list[_File]:
    if isinstance(value, dict) and not value:
        return []
    if not isinstance(value, list):
        raise _invalid(label, f"expected a list of {{name, filename, content}} tables, got {type_name(value)}")
    out = []
    for i, f in enumerate(value, 1):
        where = f"{label}[{i}]"
        if not isinstance(f, dict):
            raise _invalid(where, f"expected a table {{name, filename, content}}, got {type_name(f)}")
        if f.get("name") in (None, ""):
            raise _invalid(where, "the form field name (name) is missing")
        if "content" not in f:
            raise _invalid(where, "content (or reader) is missing")
        name = _text(f["name"], f"{where}.name")
        out.append(_File(name, _text(f.get("filename", name), f"{where}.filename"),
                         _bytes_of(f["content"], f"{where}.content"),
                         _text(f.get("content_type", "application/octet-stream"), f"{where}.content_type")))
    return out


@dataclass(frozen=True, slots=True)
class _Tls:
    ca: str | None
    cert: str | None
    key: str | None
    insecure: bool


def _tls(value: Any, label: str) -> tuple[_Tls | None, str | None]:
    """TLS settings (None when there are none) and the server name to verify."""
    if not isinstance(value, dict):
        raise _invalid(label, f"expected a table, got {type_name(value)}")
    given: dict[str, str | None] = {}
    for k in ("ca", "cert", "key", "server_name"):
        raw = value.get(k)
        given[k] = None if raw is None else (_text(raw, f"{label}.{k}") or None)
    insecure = value.get("insecure_skip_verify", False)
    if not isinstance(insecure, bool):
        raise _invalid(f"{label}.insecure_skip_verify", f"expected a boolean, got {type_name(insecure)}")
    if (given["cert"] is None) != (given["key"] is None):
        raise _invalid(label, "cert and key must be given together (client certificate and its private key)")
    if given["ca"] is None and given["cert"] is None and not insecure:
        return None, given["server_name"]
    return _Tls(given["ca"], given["cert"], given["key"], insecure), given["server_name"]


@dataclass(slots=True, eq=False)
class _Request:
    """One request on its way: its current hop (url, method, body) and what stays across hops."""

    label: str
    method: str
    url: URL
    headers: CIMultiDict[str]
    body: bytes | None
    files: list[_File]
    form: list[tuple[str, str]]
    timeout: float | None
    max_body: int
    stream: bool
    unix_socket: str | None
    tls: _Tls | None
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


def prepare(label: str, method: str, url: str, opts: dict[str, Any], *, batch: bool = False) -> _Request:
    """A request from Lua's arguments (``opts`` as Python data); errors start with ``label``."""
    try:
        return _parse(label, method, url, opts, batch)
    except HttpClientError as exc:
        raise HttpClientError(exc.kind, f"{label}: {exc}", retryable=exc.retryable) from None


def _parse(label: str, method: str, url: str, opts: dict[str, Any], batch: bool) -> _Request:
    if not _TOKEN.fullmatch(method):
        raise _invalid("method", f"{method!r} is not an HTTP method name")
    try:
        target = URL(url)
        host = target.raw_host
    except (ValueError, TypeError) as exc:
        raise _invalid("url", f"{url!r} is not a URL: {exc}") from None
    if target.scheme not in ("http", "https"):
        raise _invalid("url", f"{url!r}: the scheme must be http or https")
    if not host:
        raise _invalid("url", f"{url!r} has no host")
    unknown = sorted(set(opts) - _OPTIONS)
    if unknown:
        raise _invalid(f"opts.{unknown[0]}", f"unknown option (known: {', '.join(sorted(_OPTIONS))})")
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
        raise _invalid("opts.stream", f"expected a boolean, got {type_name(stream)}")
    if stream and batch:
        raise _invalid("opts.stream", "streaming not supported in batch requests")
    socket_path = opts.get("unix_socket")
    if socket_path is not None:
        socket_path = _text(socket_path, "opts.unix_socket")
        if not socket_path:
            raise _invalid("opts.unix_socket", "empty path")
    tls, server_name = _tls(opts.get("tls", {}), "opts.tls")
    limit = _limit(opts.get("max_response_body", 0), "opts.max_response_body")
    return _Request(label=label, method=method, url=target, headers=headers, body=body, files=files, form=form,
                    timeout=_timeout(opts.get("timeout", 0), "opts.timeout"),
                    max_body=limit or (0 if stream else DEFAULT_MAX_BODY), stream=stream,
                    unix_socket=socket_path, tls=tls, server_name=server_name)


def _headers(opts: dict[str, Any]) -> CIMultiDict[str]:
    """Request headers from opts.headers, opts.cookies (a Cookie header) and opts.auth (basic)."""
    headers: CIMultiDict[str] = CIMultiDict()
    for k, v in _string_map(opts.get("headers", {}), "opts.headers"):
        if not _TOKEN.fullmatch(k) or _BAD_VALUE.search(v):
            raise _invalid("opts.headers", f"{k!r} = {v!r} is not a valid header")
        headers.add(k, v)
    cookies = _string_map(opts.get("cookies", {}), "opts.cookies")
    if cookies:
        jar = "; ".join(f"{k}={v}" for k, v in cookies)
        if _BAD_VALUE.search(jar):
            raise _invalid("opts.cookies", "names and values cannot hold line breaks")
        headers["Cookie"] = f"{headers['Cookie']}; {jar}" if "Cookie" in headers else jar
    auth = opts.get("auth")
    if auth is not None:
        if not isinstance(auth, dict) or "user" not in auth:
            raise _invalid("opts.auth", "expected {user = ..., pass = ...}")
        pair = _bytes_of(auth["user"], "opts.auth.user") + b":" + _bytes_of(auth.get("pass", ""), "opts.auth.pass")
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    return headers


def _body(opts: dict[str, Any], headers: CIMultiDict[str]) -> tuple[bytes | None, list[tuple[str, str]], list[_File]]:
    """The raw body (opts.body, or opts.form urlencoded), and the form and files of a multipart body."""
    body = None if opts.get("body") is None else _bytes_of(opts["body"], "opts.body")
    form = _string_map(opts.get("form", {}), "opts.form")
    files = _files(opts.get("files", {}), "opts.files")
    if body is not None and (form or files):
        raise _invalid("opts.body", "cannot be combined with opts.form or opts.files")
    if form and not files:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return urlencode(form).encode("ascii"), [], []
    return body, form, files


# -- the wire --------------------------------------------------------------------------------
class _PinnedResolver(aiohttp.ThreadedResolver):
    """Resolves as usual, except hosts whose addresses the calling task approved (``_PINS``)."""

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        pins = _PINS.get()
        if pins is None or host not in pins:
            return await super().resolve(host, port, family)
        out: list[ResolveResult] = []
        for ip in pins[host]:
            fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
            if family in (socket.AF_UNSPEC, fam):
                out.append(ResolveResult(hostname=host, host=ip, port=port, family=fam, proto=socket.IPPROTO_TCP,
                                         flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV))
        if not out:
            raise OSError(f"no approved address of {host} in the requested family")
        return out


def _failure(req: _Request, exc: BaseException) -> HttpClientError:
    """A transport exception as the error Lua sees."""
    where = f"{req.method} {req.url}"
    if isinstance(exc, HttpClientError):
        return exc
    if isinstance(exc, TimeoutError):
        after = f" after {req.timeout:g}s" if req.timeout else ""
        return HttpClientError("TIMEOUT", f"{where}: timed out{after}", retryable=True)
    if isinstance(exc, aiohttp.ClientSSLError):
        return HttpClientError("INTERNAL", f"{where}: TLS failed: {exc}")
    if isinstance(exc, ValueError):  # aiohttp's InvalidURL is one too
        return HttpClientError("INVALID", f"{where}: {exc}")
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return HttpClientError("UNAVAILABLE", f"{where}: {exc}", retryable=True)
    if isinstance(exc, OSError):
        return HttpClientError("UNAVAILABLE", f"{where}: {exc.strerror or exc}", retryable=True)
    return HttpClientError("INTERNAL", f"{where}: {type(exc).__name__}: {exc}", retryable=True)


def _too_large(req: _Request) -> HttpClientError:
    return HttpClientError("INTERNAL", f"{req.method} {req.url}: the response body exceeds "
                                       f"max_response_body ({req.max_body} bytes)")


class _Stream:
    """A response body read in chunks by Lua (``resp.stream``)."""

    __slots__ = ("__weakref__", "closed", "position", "req", "resp")

    def __init__(self, req: _Request, resp: aiohttp.ClientResponse) -> None:
        self.req, self.resp = req, resp
        self.position = 0
        self.closed = False

    async def read(self, size: int) -> bytes | None:
        if self.closed:
            raise HttpClientError("INTERNAL", "stream closed")
        try:
            data = await (self.resp.content.read(size) if size > 0 else self.resp.content.readany())
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            self.close()
            raise _failure(self.req, exc) from exc
        if not data:
            return None
        self.position += len(data)
        if self.req.max_body and self.position > self.req.max_body:
            self.close()
            raise _too_large(self.req)
        return data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.resp.release()

    def stat(self) -> dict[str, Any]:
        size = self.resp.content_length
        return {"size": -1 if size is None else size, "position": self.position, "readable": not self.closed,
                "writable": False, "seekable": False}


async def _read_body(req: _Request, resp: aiohttp.ClientResponse) -> bytes:
    if req.method != "HEAD" and (resp.content_length or 0) > req.max_body:
        raise _too_large(req)
    buf = bytearray()
    while chunk := await resp.content.readany():
        buf += chunk
        if len(buf) > req.max_body:
            raise _too_large(req)
    return bytes(buf)


def _response(resp: aiohttp.ClientResponse, body: bytes | None, stream: _Stream | None) -> dict[str, Any]:
    headers: dict[str, str] = {}
    for k, v in resp.headers.items():
        headers.setdefault(canonical_header(k), v)  # the first value of each, as Wippy's
    out: dict[str, Any] = {
        "status_code": resp.status, "url": str(resp.url), "headers": headers,
        "cookies": {name: morsel.value for name, morsel in resp.cookies.items()},
    }
    if stream is not None:
        out["stream"], out["body_size"] = stream, -1
    else:
        out["body"], out["body_size"] = body or b"", len(body or b"")
    return out


def _pem_context(tls: _Tls) -> ssl.SSLContext:
    """An SSL context for custom TLS settings (blocking: loads certificates)."""
    try:
        ctx = ssl.create_default_context(cadata=tls.ca) if tls.ca else ssl.create_default_context()
    except (ssl.SSLError, ValueError) as exc:
        raise HttpClientError("INVALID", f"opts.tls.ca: not a PEM certificate: {exc}") from None
    if tls.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.cert and tls.key:
        with tempfile.TemporaryDirectory(prefix="wippy-tls-") as tmp:  # ssl loads key pairs from files only
            cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
            cert.write_text(tls.cert)
            key.touch(mode=0o600)
            key.write_text(tls.key)
            try:
                ctx.load_cert_chain(cert, key)
            except (ssl.SSLError, ValueError) as exc:
                raise HttpClientError("INVALID", f"opts.tls.cert/key: not a PEM certificate and its "
                                                 f"private key: {exc}") from None
    return ctx


class HttpClient:
    """One Lua host's HTTP client: its sessions (shared, and one per unix socket) and TLS contexts."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._unix: dict[str, aiohttp.ClientSession] = {}
        self._ssl: OrderedDict[_Tls, ssl.SSLContext] = OrderedDict()
        self._streams: weakref.WeakSet[_Stream] = weakref.WeakSet()
        self._closed = False

    def _new_session(self, connector: aiohttp.BaseConnector) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                     max_line_size=65536, max_field_size=65536)

    def session(self, unix_socket: str | None) -> aiohttp.ClientSession:
        if self._closed:
            raise HttpClientError("UNAVAILABLE", "the process is shutting down")
        if unix_socket is not None:
            found = self._unix.get(unix_socket)
            if found is None:
                found = self._unix[unix_socket] = self._new_session(aiohttp.UnixConnector(path=unix_socket))
            return found
        if self._session is None:
            self._session = self._new_session(aiohttp.TCPConnector(resolver=_PinnedResolver(), use_dns_cache=False))
        return self._session

    async def _ssl_for(self, req: _Request) -> ssl.SSLContext | bool:
        if req.tls is None or req.url.scheme != "https":
            return True
        if req.tls.insecure and not (req.tls.ca or req.tls.cert):
            return False
        ctx = self._ssl.get(req.tls)
        if ctx is None:
            try:
                ctx = await asyncio.to_thread(_pem_context, req.tls)
            except HttpClientError as exc:
                raise HttpClientError(exc.kind, f"{req.label}: {exc}") from None
            self._ssl[req.tls] = ctx
            if len(self._ssl) > _SSL_CACHE_SIZE:
                self._ssl.popitem(last=False)
        self._ssl.move_to_end(req.tls)
        return ctx

    async def resolve(self, req: _Request) -> tuple[list[str], None]:
        """The private addresses of the request's host (a name), all its addresses pinned for the next hop."""
        host = req.url.raw_host or ""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(req.client_timeout(loop).total or CONNECT_TIMEOUT.total_seconds()):
                infos = await loop.getaddrinfo(host, req.url.port, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise HttpClientError("TIMEOUT", f"{req.method} {req.url}: resolving {host} timed out",
                                  retryable=True) from None
        except OSError as exc:
            raise HttpClientError("UNAVAILABLE", f"{req.method} {req.url}: cannot resolve {host}: "
                                                 f"{exc.strerror or exc}", retryable=True) from None
        ips = list(dict.fromkeys(str(info[4][0]) for info in infos))
        req.pins = ips
        return [ip for ip in ips if is_private(ipaddress.ip_address(ip))], None

    async def send(self, req: _Request) -> tuple[dict[str, Any], None]:
        """One hop: the response, or ``{"redirect": url}`` when Lua must check the next hop first."""
        loop = asyncio.get_running_loop()
        token = _PINS.set({req.url.raw_host or "": req.pins}) if req.pins is not None else None
        try:
            resp = await self.session(req.unix_socket).request(
                req.method, req.url, headers=req.headers, data=req.payload(), allow_redirects=False,
                ssl=await self._ssl_for(req), server_hostname=req.server_name, timeout=req.client_timeout(loop),
                skip_auto_headers=() if "Content-Type" in req.headers or req.files else ("Content-Type",))
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            raise _failure(req, exc) from exc
        finally:
            if token is not None:
                _PINS.reset(token)
        keep = False
        try:
            target = req.follow(resp)
            if target is not None:
                return {"redirect": str(target)}, None
            if req.stream:
                stream = _Stream(req, resp)
                self._streams.add(stream)
                keep = True
                return _response(resp, None, stream), None
            return _response(resp, await _read_body(req, resp), None), None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _failure(req, exc) from exc
        finally:
            if not keep:
                resp.release()

    async def send_all(self, reqs: list[_Request]) -> tuple[list[dict[str, Any]], None]:
        """Every request's hop at once; a failure is ``{"error": {kind, message, retryable}}``."""
        async def one(req: _Request) -> dict[str, Any]:
            try:
                return (await self.send(req))[0]
            except WippyError as exc:
                return {"error": {"kind": exc.kind, "message": str(exc), "retryable": exc.retryable}}

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(r)) for r in reqs]
        return [t.result() for t in tasks], None

    async def aclose(self) -> None:
        """Release open streams and close the sessions. Idempotent."""
        self._closed = True
        for stream in list(self._streams):
            stream.close()
        sessions = [s for s in (self._session, *self._unix.values()) if s is not None]
        self._session, self._unix = None, {}
        for s in sessions:
            await s.close()


def _build(host: LuaHost) -> Any:
    vm = host.vm
    client = HttpClient()
    host.on_close(client.aclose)

    def failed(exc: WippyError) -> tuple[None, Any]:
        return None, vm.error(exc.kind, str(exc), retryable=exc.retryable)

    def prepare_(label: str, method: str, url: str, opts: Any, batch: bool) -> tuple[Any, Any]:
        try:
            data = {} if opts is None else vm.from_lua(host_copy(host, opts))
            if not isinstance(data, dict):
                raise _invalid(str(label), f"opts must be a table of options, got {type_name(data)}")
            req = prepare(str(label), str(method).upper(), str(url), data, batch=bool(batch))
        except WippyError as exc:
            return failed(exc)
        info = vm.table(url=str(url), unix_socket=req.unix_socket, insecure=bool(req.tls and req.tls.insecure))
        return req, info

    def resolve_(req: _Request) -> Any:
        """Lua's view of the host: the private addresses it must check (a name is looked up)."""
        if req.unix_socket is not None:
            return vm.to_lua([]), None
        try:
            ip = ipaddress.ip_address(req.url.raw_host or "")
        except ValueError:
            return vm.pending(client.resolve(req))
        return vm.to_lua([str(ip)] if is_private(ip) else []), None

    def send_all_(reqs: Any) -> Any:
        return vm.pending(client.send_all(list(vm.from_lua(reqs))))

    async def read(stream: _Stream, size: int) -> tuple[bytes | None, None]:
        return await stream.read(size), None

    def stream_read(stream: _Stream, size: Any) -> Any:
        if stream.closed:
            return None, vm.error("INTERNAL", "stream closed")
        return vm.pending(read(stream, int(min(float(size or 0), _MAX_READ))))

    def stream_close(stream: _Stream) -> tuple[bool, None]:
        stream.close()
        return True, None

    bridge = vm.rt.table_from({
        "prepare": guard(host, prepare_, "http_client"),
        "resolve": vm.asyncify(resolve_),
        "send": vm.asyncify(lambda req: vm.pending(client.send(req))),
        "send_all": vm.asyncify(send_all_),
        "stream_read": vm.asyncify(stream_read),
        "stream_close": stream_close,
        "stream_stat": lambda stream: (vm.to_lua(stream.stat()), None),
    })
    return vm.rt.execute(_source("http_client.lua"), bridge, vm.errors, host.security)


register_module("http_client", _build)
