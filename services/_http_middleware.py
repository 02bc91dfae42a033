"""HTTP middleware of routers and static sites: Wippy's names and options as aiohttp handler wrappers.

A router lists pre-match middleware (``middleware`` + ``options``: every request under its prefix,
before the route is matched) and post-match middleware (``post_middleware`` + ``post_options``: a
matched endpoint, named by the request's ``wippy.endpoint``). A middleware is
``async (request, next) -> response``; ``build_chain`` makes them from names and options (first =
outermost) and ``middleware_errors`` refuses a bad list or option value when the entry is applied.

The middleware live by family in ``_http_mw_web`` (cors, compress), ``_http_mw_guard`` (real_ip,
ratelimit, token_auth, the firewalls) and ``_http_mw_observe`` (metrics, otel); their names and
``<mw>.<opt>`` options in ``_http_options``.

What middleware leaves on a request (keys in ``_http_keys``): ``REMOTE_ADDR``
(real_ip), ``SECURITY`` (token_auth replaces the service default), ``RESPONSE_HEADERS`` (cors) and
``COMPRESS`` (compress). The last two are applied to the response a handler returns; a handler
that streams calls ``before_prepare`` before preparing its response, so they reach it too.

``sendfile`` is not built (refused when applied). ``websocket_relay`` and ``sse_relay`` pass the
request on: the server does the relaying and reads their ``wsrelay.*``/``sserelay.*`` options."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from wippy.core import DefinitionError

from ._http_keys import Handler, Middleware, MiddlewareDeps
from ._http_mw_guard import Firewall, RateLimit, RealIp, TokenAuth, TokenBuckets
from ._http_mw_observe import Metrics, Otel
from ._http_mw_web import Compress, Cors, before_prepare, origin_allowed, same_origin
from ._http_options import NOT_BUILT, POST, PRE, middleware_errors, name_problem, read_options, relay_origins

__all__ = ["NOT_BUILT", "POST", "PRE", "Handler", "Middleware", "MiddlewareDeps", "TokenBuckets", "before_prepare",
           "build_chain", "compose", "middleware_errors", "origin_allowed", "relay_origins", "same_origin"]


async def _pass(request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
    return await handler(request)


# -- chains ---------------------------------------------------------------------------------------

_FACTORIES: dict[str, Callable[[dict[str, Any], MiddlewareDeps], Middleware]] = {
    "cors": lambda o, _d: Cors(o),
    "compress": lambda o, _d: Compress(o),
    "real_ip": lambda o, _d: RealIp(o),
    "ratelimit": lambda o, _d: RateLimit(o),
    "token_auth": TokenAuth,
    "metrics": lambda _o, d: Metrics(d.telemetry),
    "otel": lambda _o, _d: Otel(),
    "endpoint_firewall": lambda o, d: Firewall(d, o["action"], None),
    "resource_firewall": lambda o, d: Firewall(d, o["action"], o["target"]),
    "websocket_relay": lambda _o, _d: _pass,
    "sse_relay": lambda _o, _d: _pass,
}


def build_chain(names: Sequence[str], options: Mapping[str, Any], *, deps: MiddlewareDeps,
                post: bool) -> list[Middleware]:
    """The middleware for ``names``, in order (first = outermost); DefinitionError for a name or an
    option that ``middleware_errors`` would have refused."""
    chain: list[Middleware] = []
    for name in names:
        problem = name_problem(name, post)
        if problem is not None:
            raise DefinitionError(problem, field="post_middleware" if post else "middleware")
        values, problems = read_options(name, options)
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

