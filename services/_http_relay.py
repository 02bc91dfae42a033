"""WebSocket and SSE relays: a client connection that is addressable by pid.

A handler that answers with an ``X-WS-Relay`` (or ``X-SSE-Relay``) header holding JSON
``{target_pid, message_topic, heartbeat_interval, metadata}`` turns its connection into an
endpoint with a pid of its own on the node. The target process gets ``ws.join`` / ``ws.leave``
``{client_pid, metadata}``, ``ws.heartbeat`` ``{client_pid, uptime, message_count, metadata}``
and each client frame on ``message_topic`` (text as a string, binary as bytes; ``msg:from()`` is
the client pid). Any process may ``process.send(client_pid, topic, data)``: the client gets a
text frame ``{"topic": ..., "data": ...}`` (an SSE event named by the topic). ``ws.close``
closes the connection, ``ws.control {target_pid, message_topic}`` moves it to another process.
The relay monitors its target: when the target exits, the connection closes (SSE clients get a
``done`` event first). Every message either way is a record on the ``proc`` stream. Processes
may monitor the client pid (EXIT when the connection closes) and link to it (a linked process
that fails closes the connection). A browser's connection from
another origin needs the relay middleware's ``allowed.origins`` option on the router.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from wippy.core import WippyError, parse_go_duration

from ._http_exchange import Exchange
from ._http_mw_web import before_prepare, origin_allowed, same_origin

log = logging.getLogger("wippy.http.relay")

_HEADERS = {"ws": "X-WS-Relay", "sse": "X-SSE-Relay"}
_QUEUE = 1024  # messages waiting for a slow client before further ones are dead letters


def _duration(raw: Any, default: float | None) -> float | None:
    if raw is None or raw == "":
        return default
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw) / 1000.0 if raw > 0 else None
    if isinstance(raw, str):
        return parse_go_duration(raw) / 1e9 or None
    raise ValueError(f"{raw!r} is not a duration")


def _json_data(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {k: _json_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_data(v) for v in value]
    return value


class _Endpoint:
    """The pid side of one relayed connection (what ProcessRuntime delivers to)."""

    def __init__(self, relays: Relays, kind: str, config: dict[str, Any]) -> None:
        self.relays = relays
        self.kind = kind
        self.pid = ""
        self.target: str | None = config.get("target_pid") or None
        self.topic = config.get("message_topic") or f"{kind}.message"
        self.metadata = config.get("metadata")
        self.heartbeat = _duration(config.get("heartbeat_interval"), 30.0)
        self.outbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(_QUEUE)
        self.closed = asyncio.Event()
        self.close_reason: str | None = None
        self.messages = 0
        self.started = time.monotonic()
        #: processes monitoring this connection's pid (they get EXIT when it closes)
        self.watchers: set[str] = set()
        #: processes linked to it (one that fails closes the connection)
        self.links: set[str] = set()

    # -- what the process runtime calls ----------------------------------------------------------
    def deliver(self, _to: str, topic: str, _sender: str | None, args: list[Any]) -> str:
        if self.closed.is_set():
            return "gone"
        data = args[0] if len(args) == 1 else (args or None)
        if topic == f"{self.kind}.close":
            self.close_reason = data if isinstance(data, str) else None
            self.closed.set()
        elif topic == f"{self.kind}.control":
            self._control(data)
        else:
            try:
                self.outbox.put_nowait((topic, data))
            except asyncio.QueueFull:
                return "full"
        return "ok"

    def event(self, _to: str, event: dict[str, Any]) -> bool:
        if event.get("kind") == "pid.exit" and event.get("from") == self.target:
            self.close_reason = "the target process exited"
            self.closed.set()
        elif event.get("kind") == "pid.link.down":
            self.close_reason = f"linked process {event.get('from')} failed"
            self.closed.set()
        return True

    def kill(self, _pid: str) -> None:
        self.closed.set()

    def detach(self, _pid: str) -> None:
        return

    # -- the conversation with the target --------------------------------------------------------
    def _control(self, data: Any) -> None:
        if not isinstance(data, dict):
            return
        if isinstance(data.get("message_topic"), str) and data["message_topic"]:
            self.topic = data["message_topic"]
        if "target_pid" in data:
            new = data.get("target_pid") or None
            if new != self.target:
                self.leave()
                self.target = new
                self.join()

    def _tell(self, topic: str, payload: Any) -> None:
        if self.target is None:
            return
        try:
            self.relays.processes.send(self.pid, self.target, topic, [payload])
        except WippyError as exc:
            log.warning("relay %s: cannot reach %s: %s", self.pid, self.target, exc)
            self.close_reason = f"the target {self.target} cannot be reached"
            self.closed.set()

    def join(self) -> None:
        if self.target is None:
            return
        try:
            self.relays.processes.monitor(self.pid, self.target)
        except WippyError as exc:
            self.close_reason = str(exc)
            self.closed.set()
            return
        self._tell(f"{self.kind}.join", {"client_pid": self.pid, "metadata": self.metadata})

    def leave(self) -> None:
        if self.target is None:
            return
        self._tell(f"{self.kind}.leave", {"client_pid": self.pid, "metadata": self.metadata})
        with contextlib.suppress(WippyError):
            self.relays.processes.unmonitor(self.pid, self.target)

    def received(self, payload: Any) -> None:
        self.messages += 1
        self._tell(self.topic, payload)

    async def beat(self) -> None:
        if self.heartbeat is None:
            return
        while not self.closed.is_set():
            await asyncio.sleep(self.heartbeat)
            self._tell(f"{self.kind}.heartbeat", {
                "client_pid": self.pid, "uptime": round(time.monotonic() - self.started, 3),
                "message_count": self.messages, "metadata": self.metadata})


class Relays:
    """The relayed connections of a node's HTTP servers."""

    def __init__(self, servers: Any) -> None:
        self.servers = servers
        self._live: set[asyncio.Task[Any]] = set()

    @property
    def processes(self) -> Any:
        return self.servers.processes

    def wanted(self, x: Exchange) -> tuple[str, str] | None:
        """("ws"|"sse", the header's JSON) when the handler asked for a relay."""
        for kind, header in _HEADERS.items():
            raw = x.headers.get(header)
            if raw is not None:
                return kind, raw
        return None

    async def serve(self, request: web.BaseRequest, x: Exchange, relay: tuple[str, str], route: Any,
                    service: str) -> web.StreamResponse:
        kind, raw = relay
        try:
            config = orjson.loads(raw)
            if not isinstance(config, dict):
                raise ValueError("expected a JSON object")
            endpoint = _Endpoint(self, kind, config)
        except (ValueError, orjson.JSONDecodeError) as exc:
            log.error("relay header of %s is not valid: %s", route.endpoint, exc)
            return _error(500, f"the {_HEADERS[kind]} header is not valid: {exc}")
        if kind == "ws" and request.headers.get("Upgrade", "").lower() != "websocket":
            return _error(400, "this endpoint relays a WebSocket; connect with a WebSocket upgrade")
        origin = request.headers.get("Origin")
        if origin is not None and not same_origin(request, origin):
            allowed = route.relay_origins.get(kind)
            if allowed is None or not origin_allowed(allowed, origin):
                option = "wsrelay.allowed.origins" if kind == "ws" else "sserelay.allowed.origins"
                return _error(403, f"origin {origin} may not open this relay (allow it with {option})")
        endpoint.pid = self.processes.open_endpoint(service, endpoint)
        task = asyncio.current_task()
        if task is not None:
            self._live.add(task)
        try:
            if kind == "ws":
                return await self._websocket(request, endpoint)
            return await self._sse(request, x, endpoint)
        finally:
            endpoint.closed.set()
            endpoint.leave()
            self.processes.close_endpoint(endpoint.pid, endpoint.close_reason or "closed")
            if task is not None:
                self._live.discard(task)

    async def _websocket(self, request: web.BaseRequest, ep: _Endpoint) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        ep.join()

        async def pump_out() -> None:
            while True:
                topic, data = await ep.outbox.get()
                await ws.send_str(orjson.dumps({"topic": topic, "data": _json_data(data)}).decode())

        async def pump_in() -> None:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    ep.received(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    ep.received({"$bytes": base64.b64encode(msg.data).decode("ascii")})
            ep.closed.set()

        await self._run(ep, pump_out(), pump_in())
        if not ws.closed:
            await ws.close(message=(ep.close_reason or "").encode()[:120])
        return ws

    async def _sse(self, request: web.BaseRequest, x: Exchange, ep: _Endpoint) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                                       "X-Accel-Buffering": "no"})
        resp.enable_chunked_encoding()
        before_prepare(request, resp)  # cors headers (compression is never applied to SSE)
        await resp.prepare(request)
        if ep.target is None:
            await resp.write(_event("ready", {"stream_pid": ep.pid, "message_topic": ep.topic}))
        ep.join()

        async def pump_out() -> None:
            while True:
                topic, data = await ep.outbox.get()
                await resp.write(_event(topic, _json_data(data)))

        # a client that goes away cancels this handler (the server runs with handler_cancellation)
        await self._run(ep, pump_out())
        with contextlib.suppress(ConnectionError, RuntimeError):
            if ep.close_reason == "the target process exited":
                await resp.write(_event("done", {"reason": ep.close_reason}))
            await resp.write_eof()
        del x
        return resp

    async def _run(self, ep: _Endpoint, *jobs: Any) -> None:
        tasks = [asyncio.ensure_future(j) for j in (*jobs, ep.beat())]
        closed = asyncio.ensure_future(ep.closed.wait())
        try:
            await asyncio.wait([closed, *tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (*tasks, closed):
                t.cancel()
            for t in (*tasks, closed):
                with contextlib.suppress(asyncio.CancelledError, ConnectionError, RuntimeError):
                    await t

    async def aclose(self) -> None:
        for task in list(self._live):
            task.cancel()


def _event(name: str, data: Any) -> bytes:
    payload = orjson.dumps(data)
    return b"event: " + name.encode() + b"\ndata: " + payload + b"\n\n"


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"error": message}), content_type="application/json")
