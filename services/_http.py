"""The node's HTTP servers, built from `http.*` registry entries and rebuilt live.

Each `http.service` with ``lifecycle.auto_start`` is one aiohttp low-level server. Its routes are
an immutable table (routers, endpoints, static sites, their middleware chains) built from the
current registry; a new registry version that touches an HTTP entry builds a new table and swaps
it in, so requests already running finish on the table they started with, and nothing restarts.
A changed address or TLS setting binds the new listener first, then closes the old one gracefully.

A request runs its endpoint's `function.lua` as a function call with a pid of its own on the
service's Lua host (``ProcessRuntime.call``); the `http` module finds the request through that pid.
A handler that fails gives a 500 with a JSON error body and an error log naming the endpoint,
the function and the Lua location; the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from wippy.core import (
    EndpointSpec,
    Entry,
    Pipeline,
    Record,
    RouterSpec,
    ServiceSpec,
    WippyError,
    endpoint_spec,
    join_path,
    parse_path,
    register_type,
    router_spec,
    service_spec,
)

from . import _http_keys as keys
from ._follow import RegistryFollower
from ._http_exchange import Exchange
from ._http_middleware import MiddlewareDeps, build_chain, compose, relay_origins
from ._http_relay import Relays
from ._http_routes import Conflict, Match, RouteTree
from ._http_static import StaticSite, static_volume
from ._supervisor import security_option

log = logging.getLogger("wippy.http")

HTTP_KINDS = frozenset({"http.service", "http.router", "http.endpoint", "http.static", "fs.directory"})
Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
ACCESS_RECORD = "http.request"
register_type(ACCESS_RECORD, 1)


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"error": message}), content_type="application/json",
                        headers=headers)


@dataclass(frozen=True, slots=True)
class Route:
    endpoint: str
    func: str
    router: str
    param_names: tuple[str, ...]
    tail_name: str | None
    #: the post-match middleware around the handler call
    handler: Handler
    #: the router's pre-match middleware around dispatch (shared by the router's routes)
    pre: Handler
    #: no middleware before or after: the server calls the handler directly
    direct: bool
    #: origins other than the server's own that may open a relay ("ws"/"sse" -> patterns or None)
    relay_origins: dict[str, tuple[str, ...] | None]


@dataclass(frozen=True, slots=True)
class _Mount:
    path: str  # "/" or "/static" (no trailing slash)
    pre: Handler
    site: StaticSite | None = None  # None: a router prefix (404s under it run its middleware)


class Table:
    """Everything one server routes, for one registry version. Paths no route matches go to the
    longest mount that holds them: a static site, or a router prefix (a 404 through the router's
    middleware); a static site wins over a router with the same prefix."""

    def __init__(self, tree: RouteTree, mounts: list[_Mount]) -> None:
        self.tree = tree
        self.mounts = sorted(mounts, key=lambda m: (len(m.path), m.site is not None), reverse=True)


def _under(path: str, mount: str) -> str | None:
    """The part of ``path`` below ``mount`` ("" for the mount itself), or None."""
    if mount == "/":
        return path[1:]
    if path == mount:
        return ""
    if path.startswith(mount) and path[len(mount)] == "/":
        return path[len(mount) + 1:]
    return None


class _Server:
    """One http.service: its listener and the route table requests are served from."""

    def __init__(self, owner: HttpServers, spec: ServiceSpec, table: Table) -> None:
        self.owner = owner
        self.spec = spec
        self.table = table
        self.runner: web.ServerRunner | None = None
        self.site: web.TCPSite | None = None
        self.port = 0
        self.security = security_option(dict(spec.security) if spec.security else None, owner.registry)
        self._tls_dir: tempfile.TemporaryDirectory[str] | None = None

    async def start(self) -> None:
        spec = self.spec
        server = web.Server(self.handle, handler_cancellation=True,
                            keepalive_timeout=spec.idle_timeout if spec.idle_timeout is not None else 75.0,
                            access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=spec.stop_timeout)
        await runner.setup()
        try:
            site = web.TCPSite(runner, spec.host, spec.port, ssl_context=self._ssl(), reuse_port=spec.reuse_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self.runner, self.site = runner, site
        self.port = bound_port(site, spec.port)
        log.info("http server listening", extra={"fields": {"service": spec.id, "host": spec.host or "*",
                                                             "port": self.port, "tls": spec.tls is not None}})

    def _ssl(self) -> ssl.SSLContext | None:
        tls = self.spec.tls
        if tls is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert, key = self._pem_file(tls.cert, "cert"), self._pem_file(tls.key, "key")
        ctx.load_cert_chain(cert, key)
        if tls.client_ca:
            ctx.load_verify_locations(cafile=self._pem_file(tls.client_ca, "client_ca"))
        if tls.client_auth in ("require_any", "require_and_verify"):
            ctx.verify_mode = ssl.CERT_REQUIRED
        elif tls.client_auth in ("request", "verify_if_given"):
            ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    def _pem_file(self, value: str, name: str) -> str:
        """A path ssl can load: the file named, or the inline PEM written to a private temp file."""
        if "-----BEGIN" not in value:
            path = value.removeprefix("file://")
            base = self.owner.base_dir
            full = Path(path) if Path(path).is_absolute() or base is None else base / path
            if not full.is_file():
                raise WippyError(f"{self.spec.id}: tls.{name}: no such file {full}")
            return str(full)
        if self._tls_dir is None:
            self._tls_dir = tempfile.TemporaryDirectory(prefix="wippy-tls-")
        target = Path(self._tls_dir.name) / f"{name}.pem"
        target.write_text(value)
        target.chmod(0o600)
        return str(target)

    async def stop(self) -> None:
        runner, self.runner = self.runner, None
        self.site = None
        if runner is not None:
            await runner.cleanup()
        if self._tls_dir is not None:
            self._tls_dir.cleanup()
            self._tls_dir = None

    # -- requests ------------------------------------------------------------------------------
    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        table = self.table  # this request finishes on this table, whatever is applied meanwhile
        started = time.perf_counter() if self.spec.access_log else 0.0
        response: web.StreamResponse | None = None
        endpoint: str | None = None
        try:
            match = table.tree.match(request.method, request.path)
            if match is not None and match.route is not None and match.route.direct:
                # no middleware on this route: nothing needs the request's storage
                endpoint = match.route.endpoint
                response = await self.call(request, match.route, match.params, self.security)
                return response
            request[keys.SERVICE] = self.spec.id
            if self.security is not None:
                request[keys.SECURITY] = self.security
            if match is not None:
                request[keys.MATCH] = match
                route: Route = match.any_route
                request[keys.ROUTER] = route.router
                response = await route.pre(request)
                endpoint = request.get(keys.ENDPOINT)
            else:
                response = await self._unmatched(table, request)
            return response
        finally:
            if self.spec.access_log:
                self.owner.access(self.spec.id, request, response, time.perf_counter() - started, endpoint)

    async def _unmatched(self, table: Table, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        for mount in table.mounts:
            rel = _under(path, mount.path)
            if rel is not None:
                if mount.site is not None:
                    request[keys.STATIC] = (mount.site, rel)
                return await mount.pre(request)
        return error_response(404, f"no route for {path}")

    async def call(self, request: web.BaseRequest, route: Route, params: dict[str, str],
                   security: dict[str, Any] | None) -> web.StreamResponse:
        spec = self.spec
        x = Exchange(request, params, max_body=spec.max_body, read_timeout=spec.read_timeout)
        if (length := request.content_length) is not None and length > spec.max_body:
            return error_response(413, f"the request body ({length} bytes) is larger than the limit of "
                                       f"{spec.max_body} bytes")
        processes = self.owner.processes
        owner = self.owner
        owner.in_flight += 1
        try:
            ok, results, _pid = await processes.call(route.func, spec.id, [], security=security, data=x,
                                                     timeout=spec.write_timeout)
        except TimeoutError:
            log.error("http handler timed out", extra={"fields": {
                "service": spec.id, "endpoint": route.endpoint, "func": route.func,
                "timeout_s": spec.write_timeout}})
            return await self._failed(x, 503, "the handler did not finish in time")
        except WippyError as exc:
            log.error("http handler could not start", extra={"fields": {
                "service": spec.id, "endpoint": route.endpoint, "func": route.func, "error": str(exc)}})
            return await self._failed(x, 500, str(exc))
        finally:
            owner.in_flight -= 1
        failure = None
        if not ok:
            failure = results[0] if results else "the handler stopped"
        elif len(results) >= 2 and results[1] is not None:
            failure = results[1]
        if failure is not None:
            message = processes.host(spec.id, calls=True).process.text(failure)
            if x.too_large:
                return await self._failed(x, 413, message)
            if x.timed_out:
                return await self._failed(x, 408, message)
            log.error("http handler failed", extra={"fields": {
                "service": spec.id, "endpoint": route.endpoint, "func": route.func, "method": request.method,
                "path": request.path, "error": message}})
            return await self._failed(x, 500, message)
        if not x.started and x.status == 200:  # the handler carried on without the body
            if x.too_large:
                return error_response(413, f"the request body is larger than the limit of {spec.max_body} bytes")
            if x.timed_out:
                return error_response(408, "the request body did not arrive within the read timeout")
        relay = self.owner.relays.wanted(x)
        if relay is not None:
            return await self.owner.relays.serve(request, x, relay, route, spec.id)
        return await x.finish()

    async def _failed(self, x: Exchange, status: int, message: str) -> web.StreamResponse:
        if x.started:  # the status went out already: end the stream, the client sees it cut short
            with contextlib.suppress(Exception):
                await x.finish()
            return x.stream_response()
        return error_response(status, message)


def bound_port(site: web.TCPSite, default: int) -> int:
    """The port a started site listens on (``default`` if it cannot tell): what port 0 picked."""
    server = site._server  # aiohttp keeps the asyncio server private; its sockets tell the bound port
    sockets = list(getattr(server, "sockets", None) or [])
    return int(sockets[0].getsockname()[1]) if sockets else default


class HttpServers:
    """Every HTTP server of the node. Use from the node's event loop."""

    def __init__(self, *, registry: Any, processes: Any, deps: MiddlewareDeps, node: str, store: Any = None,
                 base_dir: Path | None = None) -> None:
        self.registry = registry
        self.processes = processes
        self.deps = deps
        self.node = node
        self.store = store
        self.base_dir = base_dir
        #: handler calls running now
        self.in_flight = 0
        self.servers: dict[str, _Server] = {}
        self.relays = Relays(self)
        self._follower = RegistryFollower(registry, HTTP_KINDS, self.reload, "http")
        self._lock = asyncio.Lock()
        self._access: Pipeline | None = None
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> list[str]:
        """Start every auto_start http.service; follow registry versions from now on."""
        self._follower.start()
        await self.reload()
        return sorted(self.servers)

    def port(self, service_id: str) -> int:
        """The port a running service listens on (useful with ``addr: 127.0.0.1:0``)."""
        return self.servers[service_id].port

    async def settled(self) -> None:
        """Return once every registry version seen so far is applied to the servers."""
        await self._follower.settled()

    async def reload(self) -> None:
        async with self._lock:
            await self._reload()

    async def _reload(self) -> None:
        entries = self.registry.current()
        specs = {e.id: spec for e in entries.values() if e.kind == "http.service"
                 for spec in [service_spec(e)[0]] if spec is not None and spec.auto_start}
        for sid in [s for s in self.servers if s not in specs]:
            await self.servers.pop(sid).stop()
            await self.processes.drop_host(sid)
            log.info("http server stopped", extra={"fields": {"service": sid}})
        for sid, spec in specs.items():
            try:
                table = self._table(spec, entries)
            except WippyError as exc:
                log.error("http: %s keeps its routes: %s", sid, exc)
                continue
            server = self.servers.get(sid)
            if server is None:
                server = _Server(self, spec, table)
                try:
                    await server.start()
                except (OSError, WippyError, ssl.SSLError) as exc:
                    log.error("http server failed to start", extra={"fields": {"service": sid, "error": str(exc)}})
                    continue
                self.servers[sid] = server
            elif server.spec.bind != spec.bind:
                fresh = _Server(self, spec, table)
                try:
                    await fresh.start()
                except (OSError, WippyError, ssl.SSLError) as exc:
                    log.error("http server keeps its old address", extra={"fields": {"service": sid,
                                                                                      "error": str(exc)}})
                    server.table = table
                    continue
                self.servers[sid] = fresh
                await server.stop()
            else:
                server.spec = spec
                server.security = security_option(dict(spec.security) if spec.security else None, self.registry)
                server.table = table
        if any(s.spec.access_log for s in self.servers.values()) and self._access is None and self.store is not None:
            await self._start_access_log()

    def _table(self, spec: ServiceSpec, entries: Mapping[str, Entry]) -> Table:
        routers: dict[str, RouterSpec] = {}
        for e in entries.values():
            if e.kind == "http.router" and e.meta.get("server") == spec.id:
                r = router_spec(e)[0]
                if r is not None:
                    routers[e.id] = r
        tree = RouteTree()
        mounts: list[_Mount] = []
        pres: dict[str, Handler] = {}
        for rid, r in sorted(routers.items()):
            pre = compose(build_chain(r.middleware, r.options or {}, deps=self.deps, post=False), self._dispatch)
            pres[rid] = pre
            mounts.append(_Mount(join_path(r.prefix, "/"), pre))
        endpoints: list[tuple[EndpointSpec, RouterSpec]] = []
        for e in sorted(entries.values(), key=lambda e: e.id):
            if e.kind == "http.endpoint" and e.meta.get("router") in routers:
                ep = endpoint_spec(e)[0]
                if ep is not None:
                    endpoints.append((ep, routers[ep.router]))
        for ep, r in endpoints:
            full = join_path(r.prefix, ep.path)
            segments = parse_path(full)
            post = build_chain(r.post_middleware, r.post_options or {}, deps=self.deps, post=True)
            route = Route(endpoint=ep.id, func=ep.func, router=r.id,
                          param_names=tuple(s.param for s in segments if s.param is not None and not s.tail),
                          tail_name=next((s.param for s in segments if s.tail), None),
                          handler=compose(post, self._endpoint_call(spec.id)), pre=pres[r.id],
                          direct=not post and not r.middleware,
                          relay_origins={k: relay_origins(k, r.post_middleware, r.post_options or {})
                                         for k in ("ws", "sse")})
            try:
                tree.add(ep.method, segments, route)
            except Conflict:
                log.warning("http: %s %s on %s is claimed twice; %s is ignored", ep.method, full, spec.id, ep.id)
        for e in entries.values():
            if e.kind == "http.static" and e.meta.get("server") == spec.id:
                root = self._static_root(e, entries)
                if root is None:
                    continue
                site = StaticSite(e, root=root)
                chain = build_chain(_strings(e.data.get("middleware")), e.data.get("options") or {}, deps=self.deps,
                                    post=False)
                mounts.append(_Mount(site.mount, compose(chain, _static_inner), site))
        return Table(tree, mounts)

    def _static_root(self, entry: Entry, entries: Mapping[str, Entry]) -> Path | None:
        """The directory a static site serves (see static_volume); None when it names none usable."""
        try:
            volume = static_volume(entry, entries, env=self.deps.env, base_dir=self.base_dir)
        except WippyError as exc:
            log.error("http: %s serves nothing: %s", entry.id, exc)
            return None
        try:
            volume.prepare()  # auto_init: true creates the directory
        except WippyError as exc:  # served all the same: its files appear once the directory does
            log.warning("http: %s: %s; its requests are not found until it exists", entry.id, exc)
        return volume.root

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        """After a router's pre-match middleware: the method's route, a 405, or a 404."""
        match: Match | None = request.get(keys.MATCH)
        if match is None:
            return error_response(404, f"no route for {request.path}")
        if match.route is None:
            return error_response(405, f"{request.method} is not allowed on {request.path}",
                                  {"Allow": ", ".join(match.allowed)})
        request[keys.ENDPOINT] = match.route.endpoint
        return await match.route.handler(request)  # type: ignore[no-any-return]

    def _endpoint_call(self, service_id: str) -> Handler:
        async def call(request: web.BaseRequest) -> web.StreamResponse:
            server = self.servers.get(service_id)
            if server is None:
                return error_response(503, f"{service_id} is stopping")
            match = request[keys.MATCH]
            assert match.route is not None
            return await server.call(request, match.route, match.params, request.get(keys.SECURITY))

        return call

    # -- access log ----------------------------------------------------------------------------
    async def _start_access_log(self) -> None:
        stream = self.store.subjects.http_stream
        pipeline = Pipeline(self.store, stream)
        await pipeline.start(await self.store.last_seq(stream))
        self._access = pipeline

    def access(self, service_id: str, request: web.BaseRequest, response: web.StreamResponse | None,
               seconds: float, endpoint: str | None) -> None:
        pipeline = self._access
        if pipeline is None:
            return
        body = {"service": service_id, "method": request.method, "path": request.path,
                "status": response.status if response is not None else 499,
                "ms": round(seconds * 1000, 3), "endpoint": endpoint,
                "remote": request.get(keys.REMOTE_ADDR) or request.remote,
                "bytes": response.body_length if response is not None else 0}
        record = Record(type=ACCESS_RECORD, body=body, node=self.node)
        pipeline.emit(self.store.subjects.http(self.node), record.encode())

    async def aclose(self) -> None:
        """Stop listening, let running requests finish (each service's stop_timeout). Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._follower.aclose()
        await self.relays.aclose()
        servers, self.servers = self.servers, {}
        await asyncio.gather(*(s.stop() for s in servers.values()), return_exceptions=True)
        if self._access is not None:
            await self._access.aclose()


async def _static_inner(request: web.BaseRequest) -> web.StreamResponse:
    site, rel = request[keys.STATIC]
    return await site.handle(request, rel)  # type: ignore[no-any-return]


def _strings(raw: Any) -> list[str]:
    return [x for x in raw if isinstance(x, str)] if isinstance(raw, list) else []
