"""What the HTTP server and its middleware keep on a request (aiohttp request storage keys)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

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
