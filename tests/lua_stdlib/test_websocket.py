"""The `websocket` client module against real aiohttp websocket servers on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wippy.core import Entry
from wippy.lua_stdlib import HostContext, LuaHost

from .helpers import Entries, Node, fn, run_entry


class Server:
    """An aiohttp app with one websocket route per behaviour; close codes it saw go to `closed`."""

    def __init__(self) -> None:
        self.closed: asyncio.Queue[int | None] = asyncio.Queue()
        self.sent = 0  # messages /flood has handed to its socket
        self.compressed: list[int] = []
        self.port = 0
        app = web.Application()
        app.router.add_get("/echo", self.echo)
        app.router.add_get("/hello", self.hello)
        app.router.add_get("/bye", self.bye)
        app.router.add_get("/flood", self.flood)
        app.router.add_get("/silent", self.silent)
        app.router.add_get("/big", self.big)
        app.router.add_get("/plain", self.plain)
        self.runner = web.AppRunner(app)

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self.runner.addresses[0][1])

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    async def _finish(self, ws: web.WebSocketResponse) -> web.WebSocketResponse:
        async for _ in ws:
            pass
        self.closed.put_nowait(ws.close_code)
        return ws

    async def echo(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.compressed.append(ws.compress)
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type is WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        self.closed.put_nowait(ws.close_code)
        return ws

    async def hello(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("v2.chat", "chat"))
        await ws.prepare(request)
        await ws.send_str(f"{request.headers.get('X-Token')}|{ws.ws_protocol}")
        return await self._finish(ws)

    async def bye(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("bye")
        await ws.close(code=4001, message=b"done")
        return ws

    async def flood(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        n, size = int(request.query["n"]), int(request.query["size"])
        for i in range(n):
            await ws.send_bytes(i.to_bytes(4, "big") + bytes(size - 4))
            self.sent += 1
        return await self._finish(ws)

    async def silent(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        return await self._finish(ws)

    async def big(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("x" * 100)
        return await self._finish(ws)

    async def plain(self, request: web.Request) -> web.Response:
        return web.Response(status=403, text="no websockets here")


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.runner.cleanup()


def ws_fn(body: str, *, modules: tuple[str, ...] = ()) -> Entry:
    """An entry whose `call(url, ...)` runs `body` with `websocket` (and `modules`) required."""
    requires = "".join(f"local {m} = require('{m}')\n" for m in ("websocket", *modules))
    return fn("app:t", f"{requires}return {{ call = function(url, ...)\n{body}\nend }}",
              modules=["websocket", *modules])


async def run(body: str, *args: Any, modules: tuple[str, ...] = (), **ctx: Any) -> Any:
    ok, res = await run_entry(ws_fn(body, modules=modules), args=args, **ctx)
    assert ok, res
    return res[0] if res else None


async def closed_code(srv: Server) -> int | None:
    return await asyncio.wait_for(srv.closed.get(), 5)


# -- messages ------------------------------------------------------------------------------------
async def test_text_and_binary_messages_round_trip(server: Server) -> None:
    res = await run("""
        local c, err = websocket.connect(url, {dial_timeout = "2s", write_timeout = 2000})
        if not c then return {err:message()} end
        local ch = c:channel()
        local sent = {c:send("héllo"), c:send("\\0\\1\\255", websocket.BINARY), c:send(42), c:ping()}
        local a, b, n = ch:receive(), ch:receive(), ch:receive()
        return {sent, a.type, a.data, b.type, b.data == "\\0\\1\\255", n.data, c:receive() == ch, c:close()}
    """, server.url("/echo"))
    assert res == [[True, True, True, True], "text", "héllo", "binary", True, "42", True, True]
    assert await closed_code(server) == 1000


async def test_constants() -> None:
    res = await run("""
        local cc = websocket.CLOSE_CODES
        local ok = pcall(function() websocket.CLOSE_CODES.NORMAL = 1 end)
        return {websocket.TEXT, websocket.BINARY, websocket.TYPE_TEXT, websocket.TYPE_BINARY, websocket.TYPE_PING,
                websocket.TYPE_PONG, websocket.TYPE_CLOSE, websocket.COMPRESSION.DISABLED,
                websocket.COMPRESSION.CONTEXT_TAKEOVER, websocket.COMPRESSION.NO_CONTEXT, cc.NORMAL, cc.GOING_AWAY,
                cc.NO_STATUS, cc.ABNORMAL_CLOSURE, cc.MESSAGE_TOO_BIG, cc.TLS_HANDSHAKE, ok}
    """)
    assert res == [1, 2, "text", "binary", "ping", "pong", "close", 0, 1, 2, 1000, 1001, 1005, 1006, 1009, 1015,
                   False]


async def test_handshake_sends_headers_and_negotiates_a_subprotocol(server: Server) -> None:
    res = await run("""
        local c = websocket.connect(url, {headers = {["X-Token"] = "abc", ["X-Num"] = 7}, protocols = {"chat"}})
        local m = c:channel():receive()
        c:close()
        return m.data
    """, server.url("/hello"))
    assert res == "abc|chat"


@pytest.mark.parametrize("mode", ['"context_takeover"', "websocket.COMPRESSION.NO_CONTEXT"])
async def test_compressed_messages_round_trip(server: Server, mode: str) -> None:
    res = await run(f"""
        local c = websocket.connect(url, {{compression = {mode}}})
        local text = string.rep("compress me ", 2000)
        c:send(text); c:send(text)
        local ch = c:channel()
        local a, b = ch:receive(), ch:receive()
        c:close()
        return {{a.data == text, b.data == text}}
    """, server.url("/echo"))
    assert res == [True, True]
    assert server.compressed == [15]  # the server agreed to permessage-deflate


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(max_size=200), min_size=1, max_size=5))
async def test_any_unicode_text_round_trips(server: Server, texts: list[str]) -> None:
    res = await run("""
        local c = websocket.connect(url)
        local msgs = {...}
        for _, m in ipairs(msgs) do c:send(m) end
        local ch, out = c:channel(), {}
        for i = 1, #msgs do
            local m = ch:receive()
            out[i] = m.type .. ":" .. m.data
        end
        c:close()
        return out
    """, server.url("/echo"), *texts)
    assert res == [f"text:{t}" for t in texts]


# -- the end of a connection ---------------------------------------------------------------------
async def test_server_close_ends_the_channel_and_later_sends_fail(server: Server) -> None:
    res = await run("""
        local c = websocket.connect(url)
        local ch = c:channel()
        local m = ch:receive()
        local gone, ok = ch:receive()
        local _, err = c:send("more?")
        local _, perr = c:ping()
        return {m.data, gone == nil, ok, err:kind(), err:message(), perr:kind(), c:close()}
    """, server.url("/bye"))
    data, gone, ok, kind, message, pkind, closed = res
    assert (data, gone, ok, kind, pkind, closed) == ("bye", True, False, "INTERNAL", "INTERNAL", True)
    assert "closed (the server closed it: code 4001, 'done')" in message


async def test_using_a_closed_client_fails_and_close_is_idempotent(server: Server) -> None:
    res = await run("""
        local c = websocket.connect(url)
        local first = c:close(websocket.CLOSE_CODES.GOING_AWAY, "leaving")
        local v, ok = c:channel():receive()
        local _, err = c:send("late")
        return {first, c:close(), ok, err:kind(), err:retryable(), err:message()}
    """, server.url("/echo"))
    assert res[:5] == [True, True, False, "INTERNAL", False]
    assert res[5].endswith("is closed (this client closed it)")
    assert await closed_code(server) == 1001


async def test_read_timeout_closes_the_connection(server: Server) -> None:
    res = await run("""
        local c = websocket.connect(url, {read_timeout = 50})
        local v, ok = c:channel():receive()
        local _, err = c:send("x")
        return {ok, err:message()}
    """, server.url("/silent"))
    assert res[0] is False
    assert "no message arrived within the read timeout (50ms)" in res[1]
    assert await closed_code(server) == 1000


async def test_a_message_over_read_limit_ends_the_connection(server: Server) -> None:
    res = await run("""
        local c = websocket.connect(url, {read_limit = 10})
        local v, ok = c:channel():receive()
        local _, err = c:send("x")
        return {ok, err:message()}
    """, server.url("/big"))
    assert res[0] is False
    assert "code 1009" in res[1]


async def test_closing_the_channel_closes_the_connection(server: Server) -> None:
    res = await run("""
        local c = websocket.connect(url)
        c:channel():close()
        c:send("x") -- the echo finds the channel closed
        local _, err = nil, nil
        repeat time.sleep("5ms"); _, err = c:ping() until err
        return err:message()
    """, server.url("/echo"), modules=("time",))
    assert res.endswith("is closed (its channel was closed)")
    assert await closed_code(server) == 1000


async def test_the_host_closes_connections_left_open(server: Server) -> None:
    # the sleep lets the reader's first read start: a host operation cancelled before it ever ran
    # leaves its coroutine un-awaited (a RuntimeWarning; see the report on _vm.LuaVM._await)
    res = await run("""
        local c = websocket.connect(url)
        time.sleep("1ms")
        return c ~= nil
    """, server.url("/silent"), modules=("time",))
    assert res is True
    assert await closed_code(server) == 1001


async def test_a_process_that_ends_closes_its_connections(server: Server, nats_url: str, namespace: str,
                                                         tmp_path: Path) -> None:
    from wippy.core import Changeset, Op
    from wippy.services import Node as RuntimeNode
    from wippy.services import RuntimeSettings, StateDir

    proc = Entry("app:p", "process.lua", {}, {"method": "main", "modules": ["websocket"], "source": """
        local websocket = require("websocket")
        return { main = function(url)
            local c = websocket.connect(url)
            coroutine.spawn(function() c:channel():receive() end) -- a reader of its own, killed too
            return c:send("hi")
        end }
    """})
    settings = RuntimeSettings(state_dir=tmp_path / "state", nats_url=nats_url, namespace=namespace, node="n1")
    state = StateDir(settings.state_dir)
    assert state.try_own()
    try:
        async with RuntimeNode(settings, state) as node:
            entries = (Entry("app:procs", "process.host", {}, {}), proc)
            await node.registry.apply(Changeset(ops=tuple(Op("create", e.id, e) for e in entries)))
            assert node.processes is not None
            pid = node.processes.spawn(None, "app:p", "app:procs", {}, [server.url("/echo")])
            assert await asyncio.wait_for(node.processes.wait(pid), 10) == (True, None)
            assert await closed_code(server) == 1001  # while the node (and its host) still runs
    finally:
        state.release()


# -- flow control ----------------------------------------------------------------------------------
FLOOD = """
local websocket = require("websocket")
local time = require("time")
local client, ch
return {
    open = function(url)
        client = websocket.connect(url, {channel_capacity = 2})
        ch = client:channel()
        while #ch < 2 do time.sleep("5ms") end
        return #ch
    end,
    buffered = function() return #ch end,
    drain = function(n)
        for i = 0, n - 1 do
            local m, ok = ch:receive()
            if not ok then return "closed after " .. i end
            if #ch > 2 then return "buffered " .. #ch end
            local seq = string.unpack(">I4", m.data)
            if seq ~= i or m.type ~= "binary" then return "message " .. i .. " was " .. seq end
        end
        client:close()
        return n
    end,
}
"""


async def test_a_slow_reader_holds_the_server_back_and_loses_nothing(server: Server) -> None:
    n, size = 96, 256 * 1024  # 24 MiB: more than the socket buffers on both sides hold
    entry = fn("app:flood", FLOOD, method=None, modules=["websocket", "time"])
    host = LuaHost(HostContext(registry=Entries(entry), node="n1", pid="{n1@app:t|0x00001}"))
    try:
        mod = host.load(entry)
        vm = host.vm
        ok, res = await vm.run(vm.get(mod, "open"), server.url(f"/flood?n={n}&size={size}"))
        assert (ok, res) == (True, (2,))
        await asyncio.sleep(0.2)  # room for the server to run ahead, if anything let it
        ok, res = await vm.run(vm.get(mod, "buffered"))
        assert (ok, res) == (True, (2,))  # the channel holds its capacity, no more
        assert 0 < server.sent < n  # the server is held back by TCP, not buffered without bound
        ok, res = await vm.run(vm.get(mod, "drain"), n)
        assert (ok, res) == (True, (n,))
        assert server.sent == n
    finally:
        await host.aclose()


# -- failures ------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_refused_connection_is_a_retryable_error() -> None:
    url = f"ws://127.0.0.1:{_free_port()}/x"
    res = await run("""
        local c, err = websocket.connect(url, {dial_timeout = "5s"})
        return {c == nil, err:kind(), err:retryable(), err:message()}
    """, url)
    assert res[:3] == [True, "INTERNAL", True]
    assert res[3].startswith(f"websocket.connect {url}: ")


async def test_a_handshake_that_never_answers_times_out() -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    srv = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        res = await run("""
            local c, err = websocket.connect(url, {dial_timeout = 100})
            return {c == nil, err:kind(), err:retryable(), err:message()}
        """, f"ws://127.0.0.1:{port}/")
    finally:
        srv.close()
        await srv.wait_closed()
    assert res[:3] == [True, "TIMEOUT", True]
    assert "no connection within the dial timeout (100ms)" in res[3]


async def test_a_refused_handshake_names_the_status(server: Server) -> None:
    res = await run("""
        local c, err = websocket.connect(url)
        return {err:kind(), err:message()}
    """, server.url("/plain"))
    assert res[0] == "INTERNAL"
    assert "refused the WebSocket handshake (HTTP 403" in res[1]


BAD_CONNECT = [
    ("42", "websocket.connect: url must be a string, got number"),
    ('"http://127.0.0.1/"', "url must be a ws:// or wss:// URL with a host"),
    ('"ws://"', "url must be a ws:// or wss:// URL with a host"),
    ('url, "fast"', "websocket.connect: options must be a table, got string"),
    ('url, {headers = "x"}', "options.headers must be a table of header names to values"),
    ('url, {headers = {["bad name"] = "v"}}', '"bad name" is not a header name'),
    ('url, {headers = {X = {}}}', 'options.headers["X"] must be a string on one line, got table'),
    ('url, {headers = {X = "a\\r\\nY: b"}}', 'options.headers["X"] must be a string on one line'),
    ('url, {protocols = "chat"}', "options.protocols must be a list of subprotocol names"),
    ('url, {protocols = {"ok", 5}}', "options.protocols[2] must be a subprotocol name, got 5"),
    ('url, {dial_timeout = "soon"}', "options.dial_timeout: "),
    ('url, {read_timeout = {}}', "options.read_timeout must be milliseconds (a number) or a Go duration"),
    ('url, {write_timeout = -1}', "options.write_timeout must be a number of milliseconds from 0 to 9223372036854, "
                                  "got -1"),
    ('url, {dial_timeout = 1e300}', "options.dial_timeout must be a number of milliseconds from 0 to"),
    ('url, {write_timeout = "-2s"}', "options.write_timeout must be a duration of 0 or more"),
    ('url, {compression = 7}', "options.compression must be websocket.COMPRESSION.*"),
    ('url, {compression = "gzip"}', "options.compression must be websocket.COMPRESSION.*"),
    ('url, {compression_threshold = 1e12}', "options.compression_threshold must be an integer from 0 to"),
    ('url, {read_limit = -1}', "options.read_limit must be an integer from 0 to 134217728, got -1"),
    ('url, {read_limit = 1.5}', "options.read_limit must be an integer"),
    ('url, {channel_capacity = 0}', "options.channel_capacity must be an integer from 1 to 10000, got 0"),
    ('url, {channel_capacity = "many"}', 'options.channel_capacity must be an integer from 1 to 10000, got "many"'),
]


@pytest.mark.parametrize(("args", "message"), BAD_CONNECT)
async def test_bad_connect_arguments_are_invalid(args: str, message: str) -> None:
    res = await run(f"""
        local c, err = websocket.connect({args})
        return {{c == nil, err:kind(), err:message()}}
    """, "ws://127.0.0.1:1/")
    assert res[:2] == [True, "INVALID"]
    assert message in res[2]


ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(), st.text(max_size=12),
    st.binary(min_size=1, max_size=6).map(lambda b: b + b"\xff"),
    st.lists(st.one_of(st.integers(-3, 3), st.text(max_size=5)), max_size=3),
    st.dictionaries(st.text(max_size=6), st.one_of(st.integers(-3, 3), st.text(max_size=8)), max_size=3),
)
OPTION_NAMES = ["headers", "protocols", "dial_timeout", "read_timeout", "write_timeout", "compression",
                "compression_threshold", "read_limit", "channel_capacity", "other"]


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.sampled_from(OPTION_NAMES), ODD_VALUES, max_size=4))
async def test_any_options_give_a_client_or_a_clear_error(options: dict[str, Any]) -> None:
    entry = ws_fn("""
        local c, err = websocket.connect(url, ...)
        if c then c:close(); return "connected" end
        return {err:kind(), err:message()}
    """)
    host = LuaHost(HostContext(registry=Entries(entry), node="n1", pid="{n1@app:t|0x00001}"))
    try:
        opts = host.vm.to_lua(options)
        ok, res = await host.vm.run(host.callable(entry), f"ws://127.0.0.1:{_free_port()}/", opts)
        assert ok, res
        kind, message = host.vm.from_lua(res[0])
    finally:
        await host.aclose()
    assert kind in {"INVALID", "INTERNAL", "TIMEOUT"}, message
    assert message.startswith("websocket.connect"), message
    if kind == "INVALID":
        assert "options." in message, message


async def test_bad_client_calls_are_invalid(server: Server) -> None:
    res = await run("""
        local c = websocket.connect(url)
        local out = {}
        local function msg(_, err) out[#out + 1] = err:kind() .. " " .. err:message() end
        msg(c:send({}))
        msg(c:send("x", 3))
        msg(c:send("\\255", websocket.TEXT))
        msg(c:close(999))
        msg(c:close(1005))
        msg(c:close(1000, string.rep("x", 200)))
        local ok, raised = pcall(c.send, "x")
        out[#out + 1] = tostring(raised)
        out[#out + 1] = c:send("\\255", websocket.BINARY)
        out[#out + 1] = c:channel():receive().data == "\\255"
        c:close()
        return out
    """, server.url("/echo"))
    assert res[:6] == [
        "INVALID client:send: data must be a string, got table",
        "INVALID client:send: the message type must be websocket.TEXT (1) or websocket.BINARY (2), got 3",
        "INVALID client:send: a text message must be UTF-8 text; send other bytes with websocket.BINARY",
        "INVALID client:close: code must be a close code that may be sent (1000-1003, 1007-1014 or 3000-4999), "
        "got 999",
        "INVALID client:close: code must be a close code that may be sent (1000-1003, 1007-1014 or 3000-4999), "
        "got 1005",
        "INVALID client:close: reason must be UTF-8 text of at most 123 bytes, got 200 bytes",
    ]
    assert "client:send: call it on a websocket client, as client:send(...)" in res[6]
    assert res[7:] == [True, True]


# -- permissions -----------------------------------------------------------------------------------
async def test_strict_mode_denies_connecting_without_an_actor(server: Server) -> None:
    res = await run("""
        local c, err = websocket.connect(url)
        return {c == nil, err:kind(), err:message()}
    """, server.url("/echo"), strict=True)
    assert res == [True, "PERMISSION_DENIED", "permission denied: websocket.connect on  (strict mode: no actor)"]


def _policy(name: str, actions: Any, resources: Any, group: str) -> Entry:
    body = {"actions": actions, "resources": resources, "effect": "allow"}
    return Entry(f"app.sec:{name}", "security.policy", {}, {"policy": body, "groups": [f"app.sec:{group}"]})


async def test_policies_decide_by_action_and_url(node: Node, server: Server) -> None:
    dialer = fn("app:dial", """
        local websocket = require("websocket")
        return { call = function(url)
            local c, err = websocket.connect(url)
            if c == nil then return err:kind() .. " " .. err:message() end
            c:send("hi")
            local m = c:channel():receive()
            c:close()
            return m.data
        end }
    """, modules=["websocket"])
    echo = server.url("/echo")
    policies = (_policy("ws", "websocket.connect", "*", "echo"),  # the resource is ""
                _policy("ws_echo", "websocket.connect.url", echo, "echo"),
                _policy("urls", "websocket.connect.url", "*", "urls_only"))
    ok, res = await node.run(fn("app:t", """
        local security = require("security")
        local funcs = require("funcs")
        return { call = function(echo, other)
            local function as(group)
                return funcs.new():with_actor(security.new_actor("u1")):with_scope(security.named_scope(group))
            end
            return {as("app.sec:echo"):call("app:dial", echo), as("app.sec:echo"):call("app:dial", other),
                    as("app.sec:urls_only"):call("app:dial", echo)}
        end }
    """, modules=["security", "funcs"]), dialer, *policies, args=(echo, server.url("/hello")))
    assert ok, res
    assert res[0] == [
        "hi",
        f"PERMISSION_DENIED permission denied: websocket.connect.url on {server.url('/hello')} for actor u1",
        "PERMISSION_DENIED permission denied: websocket.connect on  for actor u1",
    ]
