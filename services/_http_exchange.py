"""One request and its response, as a Lua handler sees them through the `http` module.

The response is buffered until the handler returns (one ``web.Response``, the fast path), unless
the handler streams: ``flush()``, ``set_transfer()`` or ``write_event()`` send the status and
headers at once, and later writes go to the client as they are made (chunked, or Server-Sent
Events). The request body is read on demand, bounded by the server's ``max_body`` (or the
handler's smaller limit) and the read timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from http.cookies import Morsel
from typing import Any

from aiohttp import BodyPartReader, web
from multidict import CIMultiDict

from wippy.core import WippyError

from . import _http_keys as keys
from ._http_mw_web import before_prepare

_MULTIPART_MEMORY = 32 * 1024 * 1024


class BodyError(WippyError):
    """The request body cannot be read as asked (too large, absent, malformed)."""

    kind = "INVALID"


class BodyTimeoutError(WippyError):
    kind = "TIMEOUT"


class Exchange:
    """The request a handler serves and the response it builds (one per handler call)."""

    __slots__ = (
        "_body",
        "_read",
        "_reading",
        "_stream",
        "_timed_out",
        "_too_large",
        "blobs",
        "closed",
        "cookies",
        "headers",
        "max_body",
        "params",
        "read_timeout",
        "request",
        "sse",
        "status",
        "written",
    )

    def __init__(self, request: web.BaseRequest, params: Mapping[str, str], *, max_body: int,
                 read_timeout: float | None) -> None:
        self.request = request
        self.params = params
        self.max_body = max_body
        self.read_timeout = read_timeout
        self.status = 200
        self.headers: CIMultiDict[str] = CIMultiDict()
        self.cookies: list[dict[str, Any]] = []
        self.written: list[bytes] = []
        self.sse = False
        self._stream: web.StreamResponse | None = None
        self._body: bytes | None = None
        self._reading = False
        self._read = 0
        self._too_large = False
        self._timed_out = False
        #: the response went out: background coroutines of the handler can no longer change it
        self.closed = False
        #: the contents of uploaded files (the `http` module hands them to Lua one by one)
        self.blobs: list[bytes] = []

    # -- the request --------------------------------------------------------------------------
    def info(self) -> dict[int, Any]:
        r = self.request
        remote = r.get(keys.REMOTE_ADDR)
        if remote is None:
            peer = r.transport.get_extra_info("peername") if r.transport is not None else None
            remote = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else (r.remote or "")
        length = r.content_length
        has_body = r.body_exists
        ctype = r.headers.get("Content-Type")
        return {1: r.method, 2: r.path, 3: r.host, 4: remote, 5: ctype,
                6: length if length is not None else (-1 if has_body else 0), 7: has_body}

    def header(self, name: str) -> str | None:
        values = self.request.headers.getall(str(name), None)
        return ", ".join(values) if values else None

    def request_headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for k, v in self.request.headers.items():
            out[k] = f"{out[k]}, {v}" if k in out else v
        return out

    def query(self, name: str) -> str | None:
        return self.request.query.get(str(name))

    def query_params(self) -> dict[str, str]:
        q = self.request.query
        return {k: ",".join(q.getall(k)) for k in q}

    def param(self, name: str) -> str | None:
        return self.params.get(str(name))

    def accepts(self, ctype: str) -> bool:
        accept = self.request.headers.get("Accept", "")
        if not accept:
            return True  # no Accept header: anything goes
        want = str(ctype).lower()
        major = want.split("/", 1)[0]
        for item in accept.split(","):
            media = item.split(";", 1)[0].strip().lower()
            if media in ("*/*", want, f"{major}/*"):
                return True
        return False

    def cookie(self, name: str) -> str | None:
        return self.request.cookies.get(str(name))

    def _limit(self, max_body: Any) -> int:
        if isinstance(max_body, int | float) and not isinstance(max_body, bool) and max_body > 0:
            return min(int(max_body), self.max_body)
        return self.max_body

    async def body(self, max_body: Any = None, timeout: float | None = None) -> bytes:
        if self._body is not None:
            return self._body
        if self._reading:
            raise BodyError("the request body is being read as a stream")
        limit = self._limit(max_body)
        r = self.request
        if not r.body_exists:
            self._body = b""
            return b""
        if r.content_length is not None and r.content_length > limit:
            self._too_large = True
            raise BodyError(f"the request body ({r.content_length} bytes) is larger than the limit of {limit} bytes")
        deadline = timeout if timeout is not None else self.read_timeout
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(deadline):
                async for chunk in r.content.iter_chunked(65536):
                    size += len(chunk)
                    if size > limit:
                        self._too_large = True
                        raise BodyError(f"the request body is larger than the limit of {limit} bytes")
                    chunks.append(chunk)
        except TimeoutError as exc:
            self._timed_out = True
            raise BodyTimeoutError(f"reading the request body took longer than {deadline} s") from exc
        self._body = b"".join(chunks)
        return self._body

    def open_stream(self, max_body: Any = None) -> None:
        if self._body is not None or self._reading:
            raise BodyError("the request body was already read")
        limit = self._limit(max_body)
        length = self.request.content_length
        if length is not None and length > limit:
            self._too_large = True
            raise BodyError(f"the request body ({length} bytes) is larger than the limit of {limit} bytes")
        self._reading = True

    async def read(self, n: int) -> bytes | None:
        content = self.request.content
        try:
            async with asyncio.timeout(self.read_timeout):
                chunk = await content.read(n if n > 0 else -1)
        except TimeoutError as exc:
            self._timed_out = True
            raise BodyTimeoutError(f"reading the request body took longer than {self.read_timeout} s") from exc
        if not chunk:
            return None
        self._read += len(chunk)
        if self._read > self.max_body:
            self._too_large = True
            raise BodyError(f"the request body is larger than the limit of {self.max_body} bytes")
        return chunk

    async def multipart(self, max_memory: Any, max_body: Any) -> dict[str, Any]:
        ctype = self.request.headers.get("Content-Type", "")
        if not ctype.lower().startswith("multipart/form-data"):
            raise BodyError(f"the request is not multipart/form-data (Content-Type: {ctype or 'none'})")
        if self._body is not None or self._reading:
            raise BodyError("the request body was already read")
        self._reading = True
        memory = int(max_memory) if isinstance(max_memory, int | float) and max_memory > 0 else _MULTIPART_MEMORY
        limit = min(self._limit(max_body), memory)
        values: dict[str, Any] = {}
        files: dict[str, list[dict[str, Any]]] = {}
        total = 0
        try:
            async with asyncio.timeout(self.read_timeout):
                reader = await self.request.multipart()
                async for part in reader:
                    if not isinstance(part, BodyPartReader):
                        continue
                    data = bytes(await part.read(decode=False))
                    total += len(data)
                    if total > limit:
                        self._too_large = True
                        raise BodyError(f"the multipart form is larger than the limit of {limit} bytes")
                    name = part.name or ""
                    if part.filename is not None:
                        self.blobs.append(data)
                        files.setdefault(name, []).append({
                            "name": part.filename, "size": len(data), "blob": len(self.blobs) - 1,
                            "headers": {k.lower(): v for k, v in part.headers.items()},
                        })
                    else:
                        text = data.decode("utf-8", errors="replace")
                        old = values.get(name)
                        values[name] = text if old is None else ([*old, text] if isinstance(old, list) else [old, text])
        except TimeoutError as exc:
            self._timed_out = True
            raise BodyTimeoutError(f"reading the multipart form took longer than {self.read_timeout} s") from exc
        except ValueError as exc:  # aiohttp's parser on a malformed body
            raise BodyError(f"the multipart form is malformed: {exc}") from exc
        return {"values": values, "files": files}

    @property
    def too_large(self) -> bool:
        return self._too_large

    @property
    def timed_out(self) -> bool:
        """The client did not send the body within the read timeout."""
        return self._timed_out

    # -- the response -------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._stream is not None

    def set_status(self, code: Any) -> str | None:
        if self.closed:
            return _SENT
        if self._stream is not None:
            return "response:set_status: the headers were already sent"
        if not isinstance(code, int) or isinstance(code, bool) or not 100 <= code <= 999:
            return f"response:set_status: {code!r} is not a status code"
        self.status = code
        return None

    def set_header(self, name: str, value: str) -> str | None:
        if self.closed:
            return _SENT
        if self._stream is not None:
            return "response:set_header: the headers were already sent"
        if "\n" in name or "\r" in name or "\n" in value or "\r" in value or not name:
            return f"response:set_header: header {name!r} has a line break or is empty"
        self.headers[name] = value
        return None

    def set_cookie(self, cookie: Any) -> str | None:
        if self.closed:
            return _SENT
        if self._stream is not None:
            return "response:set_cookie: the headers were already sent"
        if not isinstance(cookie, dict) or not isinstance(cookie.get("name"), str):
            return "response:set_cookie: expected a table with name and value"
        try:
            Morsel[str]().set(cookie["name"], str(cookie.get("value", "")), str(cookie.get("value", "")))
        except Exception as exc:  # http.cookies raises CookieError for illegal names
            return f"response:set_cookie: {exc}"
        self.cookies.append(cookie)
        return None

    def set_transfer(self, mode: str) -> str | None:
        if self.closed:
            return _SENT
        if self._stream is not None:
            return "response:set_transfer: the headers were already sent"
        if mode == "sse":
            self._sse_headers()
        else:
            self.headers.popall("Content-Length", None)
        self._stream = self._new_stream()
        return None

    def _sse_headers(self) -> None:
        self.sse = True
        self.headers["Content-Type"] = "text/event-stream"
        self.headers["Cache-Control"] = "no-cache"
        self.headers.setdefault("X-Accel-Buffering", "no")

    def _new_stream(self) -> web.StreamResponse:
        resp = web.StreamResponse(status=self.status, headers=self.headers)
        resp.enable_chunked_encoding()
        self._cookies_to(resp)
        return resp

    def _cookies_to(self, resp: web.StreamResponse) -> None:
        for c in self.cookies:
            kwargs: dict[str, Any] = {}
            for key in ("path", "domain", "max_age", "expires", "secure", "httponly", "samesite"):
                if c.get(key) is not None:
                    kwargs[key] = c[key]
            if "http_only" in c:
                kwargs["httponly"] = c["http_only"]
            resp.set_cookie(c["name"], str(c.get("value", "")), **kwargs)

    def write(self, data: bytes) -> Awaitable[None] | str | None:
        if self.closed:
            return _SENT
        stream = self._stream
        if stream is None:
            self.written.append(data)
            return None
        return self._send(data)

    def write_json(self, data: bytes) -> Awaitable[None] | str | None:
        if self._stream is None and "Content-Type" not in self.headers:
            self.headers["Content-Type"] = "application/json"
        return self.write(data)

    async def _send(self, data: bytes) -> None:
        stream = self._stream
        assert stream is not None
        try:
            if not stream.prepared:
                before_prepare(self.request, stream)  # cors headers, compression
                await stream.prepare(self.request)
                pending, self.written = self.written, []
                if self.request.method != "HEAD":  # aiohttp would send a HEAD's body bytes
                    for chunk in pending:
                        await stream.write(chunk)
            if data and self.request.method != "HEAD":
                await stream.write(data)
        except (ConnectionError, RuntimeError) as exc:
            raise WriteError(f"the client went away: {exc}") from exc

    def flush(self) -> Awaitable[None] | str:
        if self.closed:
            return _SENT
        if self._stream is None:
            self.headers.popall("Content-Length", None)
            self._stream = self._new_stream()
        return self._send(b"")

    def write_event(self, name: str, data: bytes) -> Awaitable[None] | str:
        if self.closed:
            return _SENT
        if self._stream is None:
            self._sse_headers()
            self._stream = self._new_stream()
        elif not self.sse:
            return _fail(WriteError("response:write_event: the response is already streaming, not as SSE"))
        lines = b"".join(b"data: " + line + b"\n" for line in data.split(b"\n"))
        return self._send(b"event: " + name.encode() + b"\n" + lines + b"\n")

    def stream_response(self) -> web.StreamResponse:
        """The streaming response already sent (only when ``started``)."""
        assert self._stream is not None
        return self._stream

    async def finish(self) -> web.StreamResponse:
        """The response to send once the handler returned."""
        self.closed = True
        stream = self._stream
        if stream is None:
            body = b"".join(self.written)
            if body and "Content-Type" not in self.headers:
                self.headers["Content-Type"] = "text/plain; charset=utf-8"
            resp = web.Response(status=self.status, headers=self.headers, body=body)
            if self.cookies:
                self._cookies_to(resp)
            return resp
        if not stream.prepared:
            await self._send(b"")
        await stream.write_eof()
        return stream


_SENT = "the response was already sent (the handler returned)"


class WriteError(WippyError):
    kind = "INTERNAL"


async def _fail(exc: Exception) -> None:
    raise exc
