"""`websocket`: a WebSocket client for Lua code, on aiohttp (the Lua side is lua/websocket.lua).

    websocket.connect(url, options?) -> Client | nil, err        url: ws:// or wss://
        options: headers {name = value}, protocols {"p1", ...}, dial_timeout / read_timeout /
        write_timeout (milliseconds, or a Go duration string such as "5s"; 0: none, and 45 s for
        the dial), compression (COMPRESSION.* or "disabled" / "context_takeover" /
        "no_context_takeover"), compression_threshold (0..100 MiB; accepted, but aiohttp
        compresses every message once the server agrees), read_limit (largest message in bytes,
        0..128 MiB; 0: 128 MiB), channel_capacity (1..10000, default 32); other keys are ignored
    client:send(data, websocket.TEXT | websocket.BINARY?) -> true | nil, err   text must be UTF-8;
        the type may also be "text" / "binary" (TYPE_TEXT / TYPE_BINARY)
    client:ping() -> true | nil, err
    client:channel() / client:receive() -> the channel of {type = "text" | "binary", data} messages,
        closed when the connection ends (either side closed it, a read timeout, a message over
        read_limit, a lost connection); what is buffered stays readable. Closing the channel
        yourself closes the connection when the next message finds it closed
    client:close(code?, reason?) -> true | nil, err   code 1000 by default; idempotent
    Constants: TEXT = 1, BINARY = 2, TYPE_TEXT / TYPE_BINARY / TYPE_PING / TYPE_PONG / TYPE_CLOSE,
        COMPRESSION.DISABLED / CONTEXT_TAKEOVER / NO_CONTEXT, CLOSE_CODES.NORMAL (1000) ..
        TLS_HANDSHAKE (1015)

Errors: a bad argument is INVALID and names it; permissions ``websocket.connect`` (resource "")
and then ``websocket.connect.url`` (the URL) give PERMISSION_DENIED; a failed connection is
INTERNAL and retryable (as in Wippy), a timeout TIMEOUT (retryable); using a closed connection is
INTERNAL and says why it closed.

Flow control: each connection is read by a Lua task that puts its messages on a channel of
``channel_capacity``. When the consumer falls behind, that task waits on the full channel and stops
reading the socket, so aiohttp stops reading the transport and TCP pushes back on the server:
nothing is dropped and memory stays bounded. The reader belongs to the process that connected;
when that process ends, the connection is closed (1001, going away). Outside a process, and for
everything still open, the host's close closes the connections and the aiohttp session.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from wippy.core import WippyError

from ._binary import as_bytes, wrap
from ._durations import format_go_duration, parse_go_duration
from ._host import LuaHost, register_module
from ._vm import LuaVM, _source

#: the handshake deadline when dial_timeout is 0 (gorilla/websocket's default dialer's)
DEFAULT_DIAL_SECONDS = 45.0
#: how long closing waits for the server's close frame when there is no write_timeout
CLOSE_WAIT_SECONDS = 10.0
#: how long the host's close waits for each connection it closes
SHUTDOWN_SECONDS = 2.0
#: the largest message read when read_limit is 0 (the largest read_limit Wippy accepts)
MAX_MESSAGE_BYTES = 128 * 1024 * 1024
NORMAL, GOING_AWAY = 1000, 1001
NO_CONTEXT = 2  # COMPRESSION.NO_CONTEXT


class WebSocketError(WippyError):
    """The connection failed or broke (network, handshake, the server): retryable, INTERNAL as in Wippy."""

    kind = "INTERNAL"
    retryable = True


class WebSocketTimeout(WippyError):
    """Dialing or a write did not finish within its timeout."""

    kind = "TIMEOUT"
    retryable = True


class ClosedError(WippyError):
    """The connection is closed (by this client, the server, a read timeout): it cannot be used again."""

    kind = "INTERNAL"


class InvalidInput(WippyError):
    """A URL or header aiohttp refuses, found only when dialing."""

    kind = "INVALID"


@dataclass(frozen=True, slots=True, kw_only=True)
class DialOptions:
    """Connection options as lua/websocket.lua checked them; durations in seconds, 0 for none."""

    headers: dict[str, str]
    protocols: tuple[str, ...]
    dial: float
    read: float
    write: float
    compression: int
    read_limit: int

    @classmethod
    def from_lua(cls, spec: dict[str, Any]) -> DialOptions:
        headers, protocols = spec.get("headers"), spec.get("protocols")
        return cls(
            headers={str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {},
            protocols=tuple(str(p) for p in protocols) if isinstance(protocols, list) else (),
            dial=float(spec.get("dial", 0)), read=float(spec.get("read", 0)), write=float(spec.get("write", 0)),
            compression=int(spec.get("compression", 0)), read_limit=int(spec.get("read_limit", 0)),
        )


def _seconds(value: float) -> str:
    return format_go_duration(round(value * 1e9))


class Connection:
    """One open socket, the settings every operation on it uses, and why it ended (once it did)."""

    __slots__ = ("compress_each", "ended", "read_timeout", "url", "write_timeout", "ws")

    def __init__(self, ws: aiohttp.ClientWebSocketResponse[Any], url: str, options: DialOptions) -> None:
        self.ws = ws
        self.url = url
        self.read_timeout = options.read
        self.write_timeout = options.write
        # no context takeover: a fresh compressor per message (always allowed to the sender)
        self.compress_each: int | None = ws.compress if options.compression == NO_CONTEXT and ws.compress else None
        self.ended: str | None = None


class Sockets:
    """The websocket connections of one Lua host and the aiohttp session they share."""

    def __init__(self, vm: LuaVM) -> None:
        self._vm = vm
        self._session: aiohttp.ClientSession | None = None
        self._open: set[Connection] = set()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            # no pool limit (an upgraded connection holds its slot) and no session deadline: each
            # operation has its own
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                                  timeout=aiohttp.ClientTimeout())
        return self._session

    async def connect(self, url: str, options: DialOptions) -> tuple[Any, ...]:
        where = f"websocket.connect {url}"
        dial = options.dial or DEFAULT_DIAL_SECONDS
        try:
            async with asyncio.timeout(dial):
                ws = await self._client().ws_connect(
                    url, headers=options.headers, protocols=options.protocols,
                    compress=15 if options.compression else 0,
                    max_msg_size=options.read_limit or MAX_MESSAGE_BYTES,
                    timeout=aiohttp.ClientWSTimeout(ws_close=options.write or CLOSE_WAIT_SECONDS),
                    decode_text=False,  # text arrives as its UTF-8 bytes: Lua strings, no round trip
                )
        except TimeoutError as exc:
            raise WebSocketTimeout(f"{where}: no connection within the dial timeout ({_seconds(dial)})") from exc
        except aiohttp.WSServerHandshakeError as exc:
            detail = f": {exc.message}" if exc.message else ""
            raise WebSocketError(f"{where}: the server refused the WebSocket handshake "
                                 f"(HTTP {exc.status}{detail})") from exc
        except aiohttp.InvalidURL as exc:
            raise InvalidInput(f"{where}: not a valid URL") from exc
        except aiohttp.ClientError as exc:
            raise WebSocketError(f"{where}: {exc or type(exc).__name__}") from exc
        except ValueError as exc:  # aiohttp refuses a header or URL part
            raise InvalidInput(f"{where}: {exc}") from exc
        conn = Connection(ws, url, options)
        self._open.add(conn)
        return conn, None

    async def read(self, conn: Connection) -> tuple[Any, ...]:
        """The next message as (type, bytes); (None,) once the connection has ended."""
        if conn.ended is not None:
            return (None,)
        try:
            msg = await conn.ws.receive(timeout=conn.read_timeout or None)
        except TimeoutError:
            await self._shut(conn, f"no message arrived within the read timeout ({_seconds(conn.read_timeout)})",
                             NORMAL, "read timeout")
            return (None,)
        if msg.type is aiohttp.WSMsgType.TEXT:
            return "text", msg.data
        if msg.type is aiohttp.WSMsgType.BINARY:
            return "binary", msg.data
        if conn.ended is None:
            conn.ended = self._why(conn, msg)
            self._open.discard(conn)
        return (None,)

    @staticmethod
    def _why(conn: Connection, msg: aiohttp.WSMessage) -> str:
        code = conn.ws.close_code
        if msg.type is aiohttp.WSMsgType.CLOSE:
            reason = f", {msg.extra!r}" if msg.extra else ""
            return f"the server closed it: code {msg.data}{reason}"
        if msg.type is aiohttp.WSMsgType.ERROR:
            return f"it failed: {msg.data} (code {code})"
        return f"the connection was lost (code {code})"

    def _usable(self, conn: Connection, what: str) -> None:
        if conn.ended is not None:
            raise ClosedError(f"client:{what}: the connection to {conn.url} is closed ({conn.ended})")

    async def _write(self, conn: Connection, what: str, op: Callable[[], Awaitable[None]]) -> tuple[Any, ...]:
        self._usable(conn, what)
        try:
            async with asyncio.timeout(conn.write_timeout or None):
                await op()
        except TimeoutError as exc:
            raise WebSocketTimeout(f"client:{what}: not sent within the write timeout "
                                   f"({_seconds(conn.write_timeout)})") from exc
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise WebSocketError(f"client:{what}: the connection to {conn.url} broke: {exc}") from exc
        return (True,)

    async def send(self, conn: Connection, data: bytes, binary: bool) -> tuple[Any, ...]:
        opcode = aiohttp.WSMsgType.BINARY if binary else aiohttp.WSMsgType.TEXT
        return await self._write(conn, "send", lambda: conn.ws.send_frame(data, opcode, compress=conn.compress_each))

    async def ping(self, conn: Connection) -> tuple[Any, ...]:
        return await self._write(conn, "ping", conn.ws.ping)

    async def close(self, conn: Connection, code: int, reason: str) -> tuple[Any, ...]:
        if conn.ended is None:
            await self._shut(conn, "this client closed it", code, reason)
        return (True,)

    def release(self, conn: Connection, why: str) -> None:
        """The reader task stopped: close the connection if it is still open (why: "owner" when
        the process that opened it ended, "channel" when its channel was closed)."""
        if conn.ended is None:
            if why == "channel":
                self._vm.background(self._shut(conn, "its channel was closed", NORMAL, ""))
            else:
                self._vm.background(self._shut(conn, "the process that opened it ended", GOING_AWAY, ""))

    async def _shut(self, conn: Connection, why: str, code: int, reason: str,
                    wait: float | None = None) -> None:
        conn.ended = why
        self._open.discard(conn)
        # aiohttp waits for the server's close frame (ws_close); this bounds the write as well
        with contextlib.suppress(TimeoutError, aiohttp.ClientError, ConnectionError):
            async with asyncio.timeout(wait or conn.write_timeout or CLOSE_WAIT_SECONDS):
                await conn.ws.close(code=code, message=reason.encode())

    async def aclose(self) -> None:
        """Close every connection still open (1001, going away), then the session. Idempotent."""
        conns, self._open = list(self._open), set()
        async with asyncio.TaskGroup() as tg:
            for conn in conns:
                tg.create_task(self._shut(conn, "its host closed", GOING_AWAY, "", SHUTDOWN_SECONDS))
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _duration(text: str) -> tuple[int | None, str | None]:
    try:
        return parse_go_duration(str(text)), None
    except ValueError as exc:
        return None, str(exc)


def _build(host: LuaHost) -> Any:
    vm = host.vm
    sockets = Sockets(vm)
    host.on_close(sockets.aclose)

    def connect(url: str, spec: Any) -> Any:
        return vm.pending(sockets.connect(str(url), DialOptions.from_lua(vm.from_lua(spec))))

    def send(conn: Connection, data: Any, binary: bool) -> Any:
        payload = as_bytes(data)
        if payload is None:
            raise TypeError("client:send: data must be a string")  # lua/websocket.lua checked it
        return vm.pending(sockets.send(conn, payload, bool(binary)))

    bridge = vm.rt.table_from({
        "connect": vm.asyncify(connect),
        "read": vm.asyncify(lambda conn: vm.pending(sockets.read(conn))),
        "send": wrap(host, vm.asyncify(send)),
        "ping": vm.asyncify(lambda conn: vm.pending(sockets.ping(conn))),
        "close": vm.asyncify(lambda conn, code, reason: vm.pending(sockets.close(conn, int(code), str(reason)))),
        "release": sockets.release,
        "duration": _duration,
    })
    return vm.rt.execute(_source("websocket.lua"), bridge, vm.S, vm.channel, vm.errors, host.security,
                         host.readonly)


register_module("websocket", _build)
