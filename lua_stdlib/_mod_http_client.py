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
import ipaddress
import socket
import ssl
import tempfile
import weakref
from collections import OrderedDict
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult

from wippy.core import WippyError

from ._binary import guard, host_copy, type_name
from ._host import LuaHost, register_module
from ._http_client_options import (
    CONNECT_TIMEOUT,
    HttpClientError,
    Request,
    Tls,
    canonical_header,
    invalid,
    is_private,
    prepare,
)
from ._streams import stream_lib
from ._vm import _source

_SSL_CACHE_SIZE = 32
_MAX_READ = 16 * 1024 * 1024  # bytes one stream:read may ask for
#: host -> addresses the calling task approved, for the request being sent in this asyncio task
_PINS: ContextVar[dict[str, list[str]] | None] = ContextVar("wippy_http_client_pins", default=None)


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


def _failure(req: Request, exc: BaseException) -> HttpClientError:
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


def _too_large(req: Request) -> HttpClientError:
    return HttpClientError("INTERNAL", f"{req.method} {req.url}: the response body exceeds "
                                       f"max_response_body ({req.max_body} bytes)")


class _Stream:
    """A response body read in chunks by Lua (``resp.stream``)."""

    __slots__ = ("__weakref__", "closed", "position", "req", "resp")

    def __init__(self, req: Request, resp: aiohttp.ClientResponse) -> None:
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


async def _read_body(req: Request, resp: aiohttp.ClientResponse) -> bytes:
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


def _pem_context(tls: Tls) -> ssl.SSLContext:
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
        self._ssl: OrderedDict[Tls, ssl.SSLContext] = OrderedDict()
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

    async def _ssl_for(self, req: Request) -> ssl.SSLContext | bool:
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

    async def resolve(self, req: Request) -> tuple[list[str], None]:
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

    async def send(self, req: Request) -> tuple[dict[str, Any], None]:
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

    async def send_all(self, reqs: list[Request]) -> tuple[list[dict[str, Any]], None]:
        """Every request's hop at once; a failure is ``{"error": {kind, message, retryable}}``."""
        async def one(req: Request) -> dict[str, Any]:
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
                raise invalid(str(label), f"opts must be a table of options, got {type_name(data)}")
            req = prepare(str(label), str(method).upper(), str(url), data, batch=bool(batch))
        except WippyError as exc:
            return failed(exc)
        info = vm.table(url=str(url), unix_socket=req.unix_socket, insecure=bool(req.tls and req.tls.insecure))
        return req, info

    def resolve_(req: Request) -> Any:
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
    return vm.rt.execute(_source("http_client.lua"), bridge, vm.errors, host.security, stream_lib(host))


register_module("http_client", _build)

