"""The admin API of a running node over HTTP: off by default, loopback only, token-protected.

    GET  /health                     {"status": "ok", "node", "version"}      (no token needed)
    GET  /ready                      200 {"ready": true} once the node's services started, else 503
    GET  /versions                   the registry's versions
    GET  /processes                  the processes running now (the ``processes`` table)
    POST /query   {"sql", "at"?, "params"?}   rows of a read-only query (as `wippy query`)
    GET  /events?system=P&kind=K&from=start|SEQ|ISO_TIME
                                     Server-Sent Events: each event as ``data: {seq, at, system,
                                     kind, path, data}`` (from now unless ``from`` says otherwise)

Every route but /health wants ``Authorization: Bearer <token>`` (`.wippy.yaml`
``admin.token``); a wrong or missing token is 401. Errors are JSON ``{"error": ...}`` with 400
for bad input (SQL errors included) and 404 for what does not exist.
"""

from __future__ import annotations

import datetime
import hmac
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from wippy.core import ConfigError, WippyError, parse_addr

from ._commands import execute
from ._events import EventBus, EventSubscription
from ._http import bound_port
from ._registry import RegistryService

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminHttpSettings:
    #: "127.0.0.1:7070"; None: the HTTP admin API is off
    addr: str | None = None
    token: str | None = None

    def check(self) -> None:
        if self.addr is None:
            return
        try:
            host, _port = parse_addr(self.addr)
        except ValueError as exc:
            raise ConfigError(f".wippy.yaml admin.http: {exc}") from exc
        if host not in _LOOPBACK:
            raise ConfigError(f".wippy.yaml admin.http: the admin API listens on loopback only, not {host or '*'}")
        if not self.token or len(self.token) < 16:
            raise ConfigError(".wippy.yaml admin.token: the HTTP admin API needs a token of 16 characters or more")


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(value, default=str), content_type="application/json")


class AdminHttp:
    """The HTTP admin API of one node."""

    def __init__(self, settings: AdminHttpSettings, *, registry: RegistryService, bus: EventBus, node: str) -> None:
        settings.check()
        self.settings = settings
        self.registry = registry
        self.bus = bus
        self.node = node
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._streams: set[EventSubscription] = set()

    async def start(self) -> None:
        assert self.settings.addr is not None
        host, port = parse_addr(self.settings.addr)
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/health", self._health)
        app.router.add_get("/ready", self._ready)
        app.router.add_get("/versions", self._versions)
        app.router.add_get("/processes", self._processes)
        app.router.add_post("/query", self._query)
        app.router.add_get("/events", self._events)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        self.port = bound_port(site, port)

    async def aclose(self) -> None:
        for sub in list(self._streams):  # event streams end, so their requests finish
            sub.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path != "/health":
            given = request.headers.get("Authorization", "")
            expected = f"Bearer {self.settings.token}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return _json({"error": "the admin API wants Authorization: Bearer <admin.token>"}, 401)
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except WippyError as exc:
            return _json({"error": str(exc), "kind": exc.kind}, 404 if exc.kind == "NOT_FOUND" else 400)

    async def _health(self, _request: web.Request) -> web.Response:
        return _json({"status": "ok", "node": self.node, "version": self.registry.version})

    async def _ready(self, _request: web.Request) -> web.Response:
        ready = self.registry.ready
        return _json({"ready": ready}, 200 if ready else 503)

    async def _versions(self, _request: web.Request) -> web.Response:
        return _json(await self.registry.versions())

    async def _processes(self, _request: web.Request) -> web.Response:
        return _json(await execute(self.registry, "processes", {}))

    async def _query(self, request: web.Request) -> web.Response:
        try:
            body = await request.json(loads=orjson.loads)
        except ValueError:
            return _json({"error": "send JSON: {\"sql\": \"...\"}"}, 400)
        if not isinstance(body, dict) or not isinstance(body.get("sql"), str):
            return _json({"error": "send JSON: {\"sql\": \"...\"}"}, 400)
        at, params = body.get("at"), body.get("params")
        if at is not None and (not isinstance(at, int) or isinstance(at, bool)):
            return _json({"error": "at must be a version number"}, 400)
        if params is not None and not isinstance(params, list):
            return _json({"error": "params must be an array"}, 400)
        return _json(await self.registry.query(body["sql"], at=at, params=params))

    async def _events(self, request: web.Request) -> web.StreamResponse:
        system = request.query.get("system") or "**"
        kind = request.query.get("kind") or None
        start = request.query.get("from")
        sub: EventSubscription
        if start is None:
            sub = self.bus.subscribe(system, kind)
        else:
            sub = await self.bus.subscribe_from(system, kind, int(start) if start.isdigit() else start)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        self._streams.add(sub)
        try:
            await resp.prepare(request)
            while True:
                batch = await sub.next_batch()
                if batch is None:
                    break
                for e in batch:
                    at = datetime.datetime.fromtimestamp(e["at"] / 1e9, tz=datetime.UTC).isoformat()
                    data = {"seq": e["seq"], "at": at, "system": e["system"], "kind": e["kind"], "path": e["path"],
                            "data": e.get("data")}
                    await resp.write(b"data: " + orjson.dumps(data) + b"\n\n")
        finally:
            sub.close()
            self._streams.discard(sub)
        return resp
