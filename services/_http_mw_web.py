"""Middleware that shapes responses: `cors` and `compress`, and the helpers that put what middleware
adds onto whatever response goes out (``before_prepare`` for responses a handler streams)."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import orjson
from aiohttp import hdrs, web
from aiohttp.compression_utils import ZLibCompressor
from multidict import CIMultiDict

from ._http_keys import COMPRESS, RESPONSE_HEADERS, Handler

# -- responses ------------------------------------------------------------------------------------

def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"error": message}), content_type="application/json",
                        headers=headers)


def merge_headers(target: CIMultiDict[str], extra: Mapping[str, str]) -> None:
    """Set ``extra`` on ``target``; Vary tokens are added to the ones already there."""
    for name, value in extra.items():
        if name.lower() != "vary":
            target[name] = value
            continue
        have = [v.strip() for v in target.get(hdrs.VARY, "").split(",") if v.strip()]
        lower = {v.lower() for v in have}
        have += [v.strip() for v in value.split(",") if v.strip() and v.strip().lower() not in lower]
        target[hdrs.VARY] = ", ".join(have)


def add_response_headers(request: web.BaseRequest, extra: Mapping[str, str]) -> None:
    found = request.get(RESPONSE_HEADERS)
    if found is None:
        found = request[RESPONSE_HEADERS] = CIMultiDict()
    merge_headers(found, extra)


def before_prepare(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """Give a response the server is about to prepare what middleware added: cors headers, and the
    compression compress chose (not for Server-Sent Events, which must reach the client at once)."""
    extra = request.get(RESPONSE_HEADERS)
    if extra:
        merge_headers(response.headers, extra)
    coding = request.get(COMPRESS)
    if coding is not None and compressible(request, response):
        merge_headers(response.headers, {hdrs.VARY: "Accept-Encoding"})
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





class Cors:
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
            merge_headers(headers, self._origin_headers(origin))
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
        add_response_headers(request, extra)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            merge_headers(exc.headers, extra)
            raise
        if not response.prepared:
            merge_headers(response.headers, extra)
        return response

def same_origin(request: web.BaseRequest, origin: str) -> bool:
    """Whether a browser's Origin names the host the request came to."""
    return origin.strip().lower().partition("://")[2] == (request.host or "").lower()

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


def compressible(request: web.BaseRequest, response: web.StreamResponse) -> bool:
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


class Compress:
    def __init__(self, o: Mapping[str, Any]) -> None:
        self.level: int = o["level"]
        self.min_length: int = o["min.length"]

    async def __call__(self, request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        coding = _coding(request.headers.get(hdrs.ACCEPT_ENCODING, ""))
        if coding is not None:
            request[COMPRESS] = coding
        response = await handler(request)
        if response.prepared or not compressible(request, response):
            return response
        body = response.body if isinstance(response, web.Response) else None
        if isinstance(response, web.Response) and (body is None or (isinstance(body, bytes | bytearray)
                                                                   and len(body) < self.min_length)):
            return response
        merge_headers(response.headers, {hdrs.VARY: "Accept-Encoding"})
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

