"""What the HTTP server and its middleware share: request storage keys, handler types, and what
middleware reads from the node."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from ._http_routes import Match

#: the http.service entry serving the request
SERVICE = web.RequestKey("wippy.service", str)
#: the router whose middleware runs (the matched route's, or the one whose prefix holds the path)
ROUTER = web.RequestKey("wippy.router", str)
#: the matched http.endpoint (set before post-match middleware runs)
ENDPOINT = web.RequestKey("wippy.endpoint", str)
#: the security context handlers run with: {"actor": {"id", "meta"}, "policies": [ids]}; the
#: service's lifecycle.security sets a default, token_auth replaces it
SECURITY = web.RequestKey("wippy.security", dict[str, Any])
#: the client's address as real_ip determined it
REMOTE_ADDR = web.RequestKey("wippy.remote_addr", str)
#: the route match (services._http_routes.Match)
MATCH = web.RequestKey("wippy.match", Match)
#: (static site, path below its mount)
STATIC = web.RequestKey("wippy.static", tuple)
#: headers middleware adds to the response (cors); merged into whatever response goes out
RESPONSE_HEADERS = web.RequestKey("wippy.response_headers", CIMultiDict[str])
#: the content coding compress chose for this request (streamed responses compress with it)
COMPRESS = web.RequestKey("wippy.compress", web.ContentCoding)

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.BaseRequest, Handler], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True, kw_only=True)
class MiddlewareDeps:
    """What middleware reads from the node."""

    registry: Any  # .get(id) -> Entry | None, .current() -> Mapping[str, Entry]
    stores: Any = None  # StoreHub: token stores keep tokens there
    env: Any = None  # EnvService: token_key placeholders
    telemetry: Any = None  # Telemetry (metrics); None: metrics records nothing
    expr: Any = None  # (expression, env) -> value, for security.policy.expr
    strict: bool = False  # security.strict_mode
