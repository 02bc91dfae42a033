"""HTTP servers from registry entries, end to end: a real node, real HTTP over loopback.

The servers listen on ``127.0.0.1:0``; ``node.http.port(id)`` tells the port bound. Live-reload
tests apply a registry version and wait for the servers to take it (``http.settled()``), never
by sleeping.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wippy.core import Changeset, DefinitionErrors, Entry, Op, Record

from .conftest import ProcNode, lua

SERVER = Entry("app:gateway", "http.service", {}, {"addr": "127.0.0.1:0", "lifecycle": {"auto_start": True}})
ROUTER = Entry("app:api", "http.router", {"server": "app:gateway"}, {"prefix": "/api"})


def endpoint(name: str, method: str, path: str, func: str, router: str = "app:api") -> Entry:
    return Entry(f"app:{name}", "http.endpoint", {"router": router}, {"method": method, "path": path, "func": func})


def handler(name: str, body: str, modules: tuple[str, ...] = ("http",)) -> Entry:
    requires = "".join(f"local {m} = require('{m}')\n" for m in modules)
    return lua(f"app:{name}", f"{requires}return {{ handler = function()\n{body}\nend }}",
               kind="function.lua", method="handler", modules=list(modules))


HELLO = handler("hello", """
    local res = http.response()
    res:set_content_type(http.CONTENT.JSON)
    res:set_status(http.STATUS.OK)
    res:write_json({message = "hello world"})
""")

ECHO = handler("echo", """
    local req = http.request()
    local res = http.response()
    local body, err = req:body_json()
    res:write_json({
        method = req:method(), path = req:path(), id = req:param("id"), params = req:params(),
        q = req:query("q"), query = req:query_params(), agent = req:header("X-Test"),
        ctype = req:content_type(), has_body = req:has_body(), json = body,
        err = err and tostring(err) or nil, accepts_json = req:accepts("application/json"),
        is_json = req:is_content_type("application/json"),
    })
""")


class Http:
    """The node, its HTTP servers, and a client session."""

    def __init__(self, app: ProcNode, session: aiohttp.ClientSession) -> None:
        self.app = app
        self.session = session

    @property
    def servers(self) -> Any:
        assert self.app.node.http is not None
        return self.app.node.http

    async def apply(self, *entries: Entry, delete: tuple[str, ...] = ()) -> int:
        ops = [Op("update" if self.app.node.registry.get(e.id) else "create", e.id, e) for e in entries]
        ops += [Op("delete", d, None) for d in delete]
        version = int((await self.app.node.registry.apply(Changeset(ops=tuple(ops)))).version)
        await self.servers.settled()
        return version

    def url(self, path: str, service: str = "app:gateway", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.servers.port(service)}{path}"

    async def get(self, path: str, **kw: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        return await self.request("GET", path, **kw)

    async def request(self, method: str, path: str, **kw: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        async with self.session.request(method, self.url(path), **kw) as resp:
            raw = await resp.read()
            body: Any = raw
            if resp.content_type == "application/json" and raw:
                body = await resp.json()
            return resp.status, body, resp


@pytest.fixture
async def http(proc_node: ProcNode) -> AsyncIterator[Http]:
    await proc_node.apply(SERVER, ROUTER, HELLO, ECHO, endpoint("hello.ep", "GET", "/hello", "app:hello"),
                          endpoint("echo.ep", "POST", "/echo/{id}", "app:echo"),
                          endpoint("echo.get", "GET", "/echo/{id}", "app:echo"))
    assert proc_node.node.http is not None
    assert await proc_node.node.http.start() == ["app:gateway"]
    async with aiohttp.ClientSession() as session:
        yield Http(proc_node, session)


async def test_hello_world_json(http: Http) -> None:
    status, body, resp = await http.get("/api/hello")
    assert (status, body) == (200, {"message": "hello world"})
    assert resp.headers["Content-Type"] == "application/json"
    status, body, _ = await http.request("HEAD", "/api/hello")  # HEAD falls back to GET, without a body
    assert (status, body) == (200, b"")


async def test_request_fields_params_query_headers_and_json_body(http: Http) -> None:
    status, body, _ = await http.request("POST", "/api/echo/42?q=a&q=b&x=1", json={"n": [1, 2]},
                                         headers={"X-Test": "yes", "Accept": "application/json"})
    assert status == 200
    assert body["method"] == "POST" and body["path"] == "/api/echo/42" and body["id"] == "42"
    assert body["params"] == {"id": "42"} and body["q"] == "a" and body["query"] == {"q": "a,b", "x": "1"}
    assert body["agent"] == "yes" and body["ctype"] == "application/json" and body["has_body"] is True
    assert body["json"] == {"n": [1, 2]} and body["accepts_json"] is True and body["is_json"] is True
    # malformed JSON: body_json gives an INVALID error the handler can answer with
    status, body, _ = await http.request("POST", "/api/echo/1", data=b"{not json",
                                         headers={"Content-Type": "application/json"})
    assert status == 200 and "json" not in body and "not valid JSON" in body["err"]
    # GET without a body: body_json says so
    status, body, _ = await http.get("/api/echo/7/")  # a trailing slash matches too
    assert status == 200 and body["has_body"] is False and "no body" in body["err"]


async def test_unknown_routes_404_and_wrong_methods_405(http: Http) -> None:
    status, body, _ = await http.get("/api/nothing")
    assert status == 404 and "no route" in body["error"]
    status, body, _ = await http.get("/elsewhere")
    assert status == 404
    status, body, resp = await http.request("DELETE", "/api/echo/1")
    assert status == 405 and resp.headers["Allow"] == "GET, HEAD, POST"


async def test_a_failing_handler_gives_500_with_location_and_the_server_keeps_serving(
        http: Http, caplog: pytest.LogCaptureFixture) -> None:
    await http.apply(handler("boom", "error('kaboom')"), endpoint("boom.ep", "GET", "/boom", "app:boom"),
                     handler("fail_ret", "return nil, errors.new({message = 'typed', kind = errors.INVALID})"),
                     endpoint("fail.ep", "GET", "/fail", "app:fail_ret"))
    with caplog.at_level(logging.ERROR, logger="wippy.http"):
        status, body, _ = await http.get("/api/boom")
    assert status == 500 and "kaboom" in body["error"] and "app:boom:" in body["error"]
    failed = [r for r in caplog.records if r.getMessage() == "http handler failed"]
    assert failed and failed[0].fields["endpoint"] == "app:boom.ep"  # type: ignore[attr-defined]
    assert "app:boom:" in failed[0].fields["error"]  # type: ignore[attr-defined]
    status, body, _ = await http.get("/api/fail")
    assert status == 500 and "typed" in body["error"]
    status, body, _ = await http.get("/api/hello")
    assert status == 200


async def test_oversized_bodies_get_413(http: Http) -> None:
    small = Entry("app:gateway", "http.service", {}, {"addr": "127.0.0.1:0", "max_body": "1KB",
                                                       "lifecycle": {"auto_start": True}})
    await http.apply(small)
    status, body, _ = await http.request("POST", "/api/echo/1", data=b"x" * 2000)
    assert status == 413 and "1024" in body["error"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: found out while reading
        for _ in range(4):
            yield b"y" * 500

    status, body, _ = await http.request("POST", "/api/echo/1", data=chunks())
    assert status == 413
    status, body, _ = await http.request("POST", "/api/echo/1", json={"ok": True})
    assert status == 200 and body["json"] == {"ok": True}


async def test_streaming_chunks_and_server_sent_events(http: Http) -> None:
    await http.apply(
        handler("chunks", """
            local res = http.response()
            res:set_header("X-Kind", "chunks")
            res:write("one,")
            res:flush()
            res:write("two,")
            res:write("three")
            local err = res:set_status(201)  -- too late: the headers went out with the flush
            res:write(err and (" | " .. tostring(err)) or "")
        """),
        handler("events", """
            local res = http.response()
            for i = 1, 3 do res:write_event({name = "tick", data = {n = i}}) end
        """),
        endpoint("chunks.ep", "GET", "/chunks", "app:chunks"), endpoint("events.ep", "GET", "/events", "app:events"))
    async with http.session.get(http.url("/api/chunks")) as resp:
        assert resp.status == 200 and resp.headers["X-Kind"] == "chunks"
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        text = await resp.text()
    assert text.startswith("one,two,three | ") and "already sent" in text
    async with http.session.get(http.url("/api/events")) as resp:
        assert resp.headers["Content-Type"] == "text/event-stream"
        text = await resp.text()
    assert text == "".join(f'event: tick\ndata: {{"n":{i}}}\n\n' for i in range(1, 4))


async def test_multipart_form_with_a_file(http: Http) -> None:
    await http.apply(handler("upload", """
        local req = http.request()
        local form, err = req:parse_multipart()
        if err then return nil, err end
        local f = form.files.doc[1]
        local s = f:stream()
        local first = s:read(3)
        local rest = s:read()
        http.response():write_json({title = form.values.title, tags = form.values.tag, name = f:name(),
            size = f:size(), ctype = f:header("Content-Type"), content = first .. "|" .. rest})
    """), endpoint("upload.ep", "POST", "/upload", "app:upload"))
    form = aiohttp.FormData()
    form.add_field("title", "report")
    form.add_field("tag", "a")
    form.add_field("tag", "b")
    form.add_field("doc", b"hello file", filename="r.txt", content_type="text/plain")
    status, body, _ = await http.request("POST", "/api/upload", data=form)
    assert status == 200, body
    assert body == {"title": "report", "tags": ["a", "b"], "name": "r.txt", "size": 10, "ctype": "text/plain",
                    "content": "hel|lo file"}
    status, body, _ = await http.request("POST", "/api/upload", data=b"plain")
    assert status == 500 and "multipart" in body["error"]


async def test_live_reload_adds_changes_and_removes_routes(http: Http) -> None:
    await http.apply(handler("v", "http.response():write('one')"), endpoint("v.ep", "GET", "/v", "app:v"))
    assert (await http.get("/api/v"))[1] == b"one"
    await http.apply(handler("v", "http.response():write('two')"))  # new code, same route
    assert (await http.get("/api/v"))[1] == b"two"
    await http.apply(endpoint("v.ep", "GET", "/v2", "app:v"))  # the route moves
    assert (await http.get("/api/v"))[0] == 404 and (await http.get("/api/v2"))[1] == b"two"
    await http.apply(Entry("app:api", "http.router", {"server": "app:gateway"}, {"prefix": "/v1"}))
    assert (await http.get("/v1/v2"))[1] == b"two" and (await http.get("/api/v2"))[0] == 404
    await http.apply(delete=("app:v.ep",))
    assert (await http.get("/v1/v2"))[0] == 404 and (await http.get("/v1/hello"))[0] == 200


async def test_in_flight_requests_finish_on_the_version_they_started_with(http: Http) -> None:
    await http.apply(handler("slow", """
        local time = require("time")
        time.sleep("300ms")
        http.response():write("slow done")
    """, ("http", "time")), endpoint("slow.ep", "GET", "/slow", "app:slow"))
    slow = asyncio.ensure_future(http.get("/api/slow"))
    while not http.servers.in_flight:  # noqa: ASYNC110 - no event marks a handler start; the test timeout bounds it
        await asyncio.sleep(0.01)
    await http.apply(delete=("app:slow.ep",))
    assert (await http.get("/api/slow"))[0] == 404
    status, body, _ = await slow
    assert (status, body) == (200, b"slow done")


async def test_a_port_change_rebinds_and_a_new_service_starts(http: Http) -> None:
    old = http.servers.port("app:gateway")
    await http.apply(Entry("app:gateway", "http.service", {}, {"addr": "127.0.0.1:0", "timeouts": {"idle": "5s"},
                                                                "lifecycle": {"auto_start": True}}))
    assert http.servers.port("app:gateway") != old
    assert (await http.get("/api/hello"))[0] == 200
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.session.get(f"http://127.0.0.1:{old}/api/hello") as resp:
            await resp.read()
    await http.apply(Entry("app:admin", "http.service", {}, {"addr": "127.0.0.1:0", "lifecycle": {"auto_start": True}}),
                     Entry("app:admin_api", "http.router", {"server": "app:admin"}, {"prefix": "/"}),
                     endpoint("admin_hello", "GET", "/hi", "app:hello", router="app:admin_api"))
    async with http.session.get(http.url("/hi", "app:admin")) as resp:
        assert resp.status == 200 and await resp.json() == {"message": "hello world"}
    await http.apply(delete=("app:admin_hello", "app:admin_api", "app:admin"))
    assert "app:admin" not in http.servers.servers


@pytest.mark.parametrize(("entry", "field"), [
    (endpoint("bad1", "FETCH", "/x", "app:hello"), "method"),
    (endpoint("bad2", "GET", "x", "app:hello"), "path"),
    (endpoint("bad3", "GET", "/a/{p...}/b", "app:hello"), "path"),
    (endpoint("bad4", "GET", "/x", "app:gateway"), "func"),
    (endpoint("bad5", "GET", "/x", "app:hello", router="app:gateway"), "meta.router"),
    (Entry("app:bad6", "http.service", {}, {"addr": "localhost"}), "addr"),
    (Entry("app:bad7", "http.service", {}, {"addr": ":80", "timeouts": {"read": "soon"}}), "timeouts.read"),
    (Entry("app:bad8", "http.router", {"server": "app:gateway"}, {"prefix": "api"}), "prefix"),
    (Entry("app:bad9", "http.service", {}, {"addr": ":80", "tls": {"mode": "manual"}}), "tls.cert"),
])
async def test_invalid_definitions_are_refused_at_apply_and_the_server_is_untouched(
        http: Http, entry: Entry, field: str) -> None:
    with pytest.raises(DefinitionErrors) as info:
        await http.apply(entry)
    assert any(e.entry == entry.id and e.field == field for e in info.value.errors), info.value
    assert (await http.get("/api/hello"))[0] == 200


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.text(alphabet="abc/{}.%-_", max_size=30), method=st.sampled_from(["GET", "POST", "TRACE", "FOO"]))
async def test_any_path_and_method_gets_an_answer_never_a_crash(http: Http, path: str, method: str) -> None:
    async with http.session.request(method, http.url("/api/" + path.lstrip("/"))) as resp:
        assert resp.status in (200, 400, 404, 405, 413)


async def test_handlers_reach_processes_with_request_reply(http: Http) -> None:
    await http.app.apply(lua("app:doubler", """return { main = function()
        local inbox = process.inbox()
        while true do
            local m = inbox:receive()
            process.send(m:from(), "answer", m:payload():data() * 2)
        end
    end }"""))
    pid = http.app.spawn("app:doubler")
    await http.apply(handler("ask", f"""
        local n = tonumber(http.request():query("n"))
        process.send("{pid}", "ask", n)
        local answer = process.listen("answer"):receive()
        http.response():write_json({{answer = answer, me = process.pid()}})
    """), endpoint("ask.ep", "GET", "/ask", "app:ask"))
    results = await asyncio.gather(*(http.get(f"/api/ask?n={n}") for n in range(8)))
    assert [r[1]["answer"] for r in results] == [n * 2 for n in range(8)]
    assert len({r[1]["me"] for r in results}) == 8  # each request had a pid of its own


async def test_http_outside_a_handler_is_an_error(http: Http) -> None:
    await http.app.apply(lua("app:outside", """local http = require("http")
        return { main = function()
            local req, err = http.request()
            return { req = req == nil, err = tostring(err), kind = err:kind() }
        end }""", modules=["http"]))
    value, error = await http.app.run("app:outside")
    assert error is None and value["req"] is True and value["kind"] == "INTERNAL"
    assert "no HTTP request context" in value["err"]


async def test_access_log_records(http: Http) -> None:
    await http.apply(Entry("app:gateway", "http.service", {}, {"addr": "127.0.0.1:0", "access_log": True,
                                                                "lifecycle": {"auto_start": True}}))
    assert (await http.get("/api/hello"))[0] == 200
    assert (await http.get("/api/none"))[0] == 404
    store = http.app.node.store
    stream = store.subjects.http_stream
    for _ in range(200):
        if await store.last_seq(stream) >= 2:
            break
        await asyncio.sleep(0.02)
    rows = [r.body for _seq, r in await store.read(stream)]
    assert [(r["path"], r["status"], r["endpoint"]) for r in rows[-2:]] == [
        ("/api/hello", 200, "app:hello.ep"), ("/api/none", 404, None)]
    assert all(isinstance(r["ms"], float) for r in rows)
    assert isinstance(rows[0], dict) and Record  # the body is plain JSON data


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_tls_with_a_cert_file_and_inline_pem(http: Http, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    for tls in ({"mode": "manual", "cert": str(cert), "key": str(key)},
                {"mode": "manual", "cert": cert.read_text(), "key": key.read_text()}):
        await http.apply(Entry("app:gateway", "http.service", {}, {"addr": "127.0.0.1:0", "tls": tls,
                                                                    "lifecycle": {"auto_start": True}}))
        async with http.session.get(http.url("/api/hello", scheme="https"), ssl=ctx) as resp:
            assert resp.status == 200 and await resp.json() == {"message": "hello world"}


ROOM = lua("app:room", """return { main = function()
    local inbox = process.inbox()
    while true do
        local m = inbox:receive()
        local topic, data = m:topic(), m:payload():data()
        if topic == "ws.join" then
            process.send(data.client_pid, "welcome",
                {meta = data.metadata, from_is_client = m:from() == data.client_pid})
        elseif topic == "ws.message" then
            if data == "quit" then return "bye" end
            process.send(m:from(), "echo", data)
        elseif topic == "ws.leave" then
            return "left"
        end
    end
end }""")

STREAMER = lua("app:streamer", """return { main = function()
    local m = process.inbox():receive()  -- sse.join
    local client = m:payload():data().client_pid
    for i = 1, 3 do process.send(client, "tick", {n = i}) end
    return "done"
end }""")


async def test_websocket_relay_makes_the_connection_a_process(http: Http) -> None:
    await http.app.apply(ROOM, STREAMER)
    await http.apply(handler("ws", """
        local pid = process.spawn("app:room", "app:procs")
        http.response():set_header("X-WS-Relay", json.encode({target_pid = pid, metadata = {user = "ann"}}))
    """, ("http", "json")), endpoint("ws.ep", "GET", "/ws", "app:ws"))
    async with http.session.ws_connect(http.url("/api/ws")) as ws:
        welcome = await asyncio.wait_for(ws.receive_json(), 10)
        assert welcome == {"topic": "welcome", "data": {"meta": {"user": "ann"}, "from_is_client": True}}
        await ws.send_str("hello")
        assert await asyncio.wait_for(ws.receive_json(), 10) == {"topic": "echo", "data": "hello"}
        await ws.send_str("quit")  # the target exits: the relay closes the socket
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    status, body, _ = await http.get("/api/ws")  # not a WebSocket upgrade
    assert status == 400 and "WebSocket" in body["error"]


async def test_sse_relay_streams_messages_as_events_until_the_target_exits(http: Http) -> None:
    await http.app.apply(ROOM, STREAMER)
    await http.apply(handler("sse", """
        local pid = process.spawn("app:streamer", "app:procs")
        http.response():set_header("X-SSE-Relay", json.encode({target_pid = pid}))
    """, ("http", "json")), endpoint("sse.ep", "GET", "/sse", "app:sse"))
    async with http.session.get(http.url("/api/sse")) as resp:
        assert resp.headers["Content-Type"] == "text/event-stream", await resp.text()
        text = await asyncio.wait_for(resp.text(), 10)
    events = [block for block in text.split("\n\n") if block]
    assert events[:3] == [f'event: tick\ndata: {{"n":{i}}}' for i in range(1, 4)]
    assert events[3].startswith("event: done")


async def test_a_slow_client_gets_408_and_others_are_served_meanwhile(http: Http) -> None:
    await http.apply(Entry("app:gateway", "http.service", {}, {"addr": "127.0.0.1:0", "timeouts": {"read": "300ms"},
                                                                "lifecycle": {"auto_start": True}}))
    reader, writer = await asyncio.open_connection("127.0.0.1", http.servers.port("app:gateway"))
    writer.write(b"POST /api/echo/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{\"half\":")  # and then nothing more
    await writer.drain()
    assert (await http.get("/api/hello"))[0] == 200  # the stalled request holds nobody up
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 408")
    writer.close()


async def test_a_handler_past_the_write_timeout_gets_503_and_is_stopped(http: Http) -> None:
    await http.apply(Entry("app:gateway", "http.service", {}, {"addr": "127.0.0.1:0", "timeouts": {"write": "200ms"},
                                                                "lifecycle": {"auto_start": True}}),
                     handler("stuck", "process.listen('never'):receive()"),
                     endpoint("stuck.ep", "GET", "/stuck", "app:stuck"))
    status, body, _ = await http.get("/api/stuck")
    assert status == 503 and "in time" in body["error"]
    assert http.servers.in_flight == 0 and not http.app.processes.calls  # its pid is released
    assert (await http.get("/api/hello"))[0] == 200


async def test_coroutines_of_a_handler_share_its_request_and_pid(http: Http) -> None:
    await http.apply(handler("co", """
        local done = channel.new(1)
        local mine = process.pid()
        coroutine.spawn(function()
            http.response():write_json({q = http.request():query("q"), same_pid = process.pid() == mine})
            done:send(true)
        end)
        done:receive()
    """), endpoint("co.ep", "GET", "/co", "app:co"))
    status, body, _ = await http.get("/api/co?q=7")
    assert (status, body) == (200, {"q": "7", "same_pid": True})


WATCHER = lua("app:watcher", """return { main = function()
    process.registry.register("watcher")
    local inbox, events = process.inbox(), process.events()
    while true do
        local r = channel.select({ inbox:case_receive(), events:case_receive() })
        if r.channel == inbox then
            local m = r.value
            if m:topic() == "ws.join" then
                local client = m:payload():data().client_pid
                process.monitor(client)
                process.send(client, "ready", true)
            end
        elseif r.value.kind == process.event.EXIT then
            return { from = r.value.from, result = r.value.result }
        end
    end
end }""")


async def test_relay_pids_can_be_monitored_and_other_origins_need_allowing(http: Http) -> None:
    await http.app.apply(WATCHER)
    await http.apply(handler("wsw", """
        local pid = process.spawn("app:watcher", "app:procs")
        http.response():set_header("X-WS-Relay", json.encode({target_pid = pid}))
    """, ("http", "json")), endpoint("wsw.ep", "GET", "/wsw", "app:wsw"))
    async with http.session.ws_connect(http.url("/api/wsw")) as ws:
        assert await asyncio.wait_for(ws.receive_json(), 10) == {"topic": "ready", "data": True}
        watcher = http.app.processes.names["watcher"]
        await ws.close()
    value, error = await asyncio.wait_for(http.app.processes.wait(watcher), 10)
    assert error is None and value["from"].startswith("{n1@app:gateway|") and value["result"] == {"value": "closed"}
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:  # a browser page from elsewhere
        await http.session.ws_connect(http.url("/api/wsw"), origin="http://elsewhere.example")
    assert refused.value.status == 403
    # the router allows the other origin for its relays
    await http.apply(Entry("app:api", "http.router", {"server": "app:gateway"}, {
        "prefix": "/api", "post_middleware": ["websocket_relay"],
        "post_options": {"wsrelay.allowed.origins": "http://*.example"}}))
    async with http.session.ws_connect(http.url("/api/wsw"), origin="http://elsewhere.example") as ws:
        await ws.close()


async def test_two_endpoints_claiming_one_route_are_refused_at_apply(http: Http) -> None:
    with pytest.raises(DefinitionErrors) as info:
        await http.apply(endpoint("dup", "GET", "/hello/", "app:echo"))
    assert [(e.entry, e.field) for e in info.value.errors] in ([("app:hello.ep", "path")], [("app:dup", "path")])
    assert "also served by" in str(info.value)
    with pytest.raises(DefinitionErrors, match="also served by"):  # through another router's prefix
        await http.apply(Entry("app:api2", "http.router", {"server": "app:gateway"}, {"prefix": "/api/echo"}),
                         endpoint("dup2", "GET", "/{n}", "app:echo", router="app:api2"))
    # a parameter's name does not make a route different; another method does
    await http.apply(endpoint("echo.put", "PUT", "/echo/{other}", "app:echo"))
    body = (await http.request("PUT", "/api/echo/5"))[1]
    assert body["params"] == {"other": "5"} and "id" not in body


async def test_coroutines_a_handler_starts_run_on_after_the_response(http: Http) -> None:
    await http.app.apply(lua("app:collector", """return { main = function()
        process.registry.register("collector")
        local m = process.inbox():receive()
        return m:payload():data()
    end }"""))
    collector = http.app.spawn("app:collector")
    await http.apply(handler("bg", """
        local res = http.response()
        coroutine.spawn(function()
            time.sleep("100ms")  -- the response has gone by now
            local err = res:write("late")
            process.send("collector", "done", {late_write = tostring(err)})
        end)
        res:set_status(202)
        res:write("accepted")
    """, ("http", "time")), endpoint("bg.ep", "POST", "/bg", "app:bg"))
    status, body, _ = await http.request("POST", "/api/bg")
    assert (status, body) == (202, b"accepted")
    value, error = await asyncio.wait_for(http.app.processes.wait(collector), 10)
    assert error is None and "already sent" in value["late_write"]


def _issue(name: str, key: Any, issuer: Any, issuer_key: Any, *, ca: bool = False) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer or subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


async def test_mutual_tls_requires_a_client_certificate_from_the_ca(http: Http, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    def pem_key(k: Any) -> bytes:
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("test ca", ca_key, None, None, ca=True)
    files = {}
    for who in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(who, key, ca.subject, ca_key)
        files[who] = (tmp_path / f"{who}.pem", tmp_path / f"{who}.key")
        files[who][0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[who][1].write_bytes(pem_key(key))
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    await http.apply(Entry("app:gateway", "http.service", {}, {
        "addr": "127.0.0.1:0", "lifecycle": {"auto_start": True},
        "tls": {"mode": "manual", "cert": str(files["server"][0]), "key": str(files["server"][1]),
                "client_ca": str(ca_file), "client_auth": "require_and_verify"}}))
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.check_hostname = False
    with pytest.raises(aiohttp.ClientError):  # no client certificate: the handshake fails
        async with http.session.get(http.url("/api/hello", scheme="https"), ssl=ctx) as resp:
            await resp.read()
    ctx.load_cert_chain(str(files["client"][0]), str(files["client"][1]))
    async with http.session.get(http.url("/api/hello", scheme="https"), ssl=ctx) as resp:
        assert resp.status == 200


LINKER = lua("app:linker", """return { main = function()
    local inbox = process.inbox()
    while true do
        local m = inbox:receive()
        local topic, data = m:topic(), m:payload():data()
        if topic == "ws.join" then
            process.link(data.client_pid)
            process.send(data.client_pid, "ready", true)
        elseif topic == "ws.message" and data == "die" then
            error("the linked process fails")
        elseif topic == "ws.leave" then
            return "still here after the client left"
        end
    end
end }""")


async def test_a_linked_process_that_fails_closes_the_relay_and_a_normal_close_is_no_failure(http: Http) -> None:
    await http.app.apply(LINKER)
    await http.apply(handler("wsl", """
        local pid = process.spawn("app:linker", "app:procs")
        http.response():set_header("X-WS-Relay", json.encode({target_pid = pid}))
    """, ("http", "json")), endpoint("wsl.ep", "GET", "/wsl", "app:wsl"))
    async with http.session.ws_connect(http.url("/api/wsl")) as ws:
        assert await asyncio.wait_for(ws.receive_json(), 10) == {"topic": "ready", "data": True}
        await ws.send_str("die")
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    before = set(http.app.processes.procs)
    async with http.session.ws_connect(http.url("/api/wsl")) as ws:
        assert await asyncio.wait_for(ws.receive_json(), 10) == {"topic": "ready", "data": True}
        linker = next(iter(set(http.app.processes.procs) - before))
        await ws.close()
    value, error = await asyncio.wait_for(http.app.processes.wait(linker), 10)
    assert (value, error) == ("still here after the client left", None)  # not killed by the link


async def test_streamed_request_bodies_cookies_and_request_details(http: Http) -> None:
    await http.apply(handler("upload_stream", """
        local req, res = http.request(), http.response()
        local s, err = req:stream()
        if err then return nil, err end
        local chunks, total = 0, 0
        while true do
            local chunk = s:read(4096)
            if chunk == nil then break end
            chunks = chunks + 1
            total = total + #chunk
        end
        s:close()
        res:set_cookie({name = "seen", value = tostring(total), path = "/", http_only = true})
        res:write_json({total = total, chunks = chunks, length = req:content_length(), host = req:host(),
                        remote = req:remote_addr(), cookie = req:cookie("session"),
                        agent = req:headers()["X-Agent"], has_body = req:has_body()})
    """), endpoint("us.ep", "POST", "/stream", "app:upload_stream"))
    data = bytes(range(256)) * 100  # 25,600 binary bytes
    async with http.session.post(http.url("/api/stream"), data=data,
                                 headers={"Cookie": "session=abc", "X-Agent": "tests"}) as resp:
        assert resp.status == 200
        body = await resp.json()
        assert resp.cookies["seen"].value == "25600" and resp.cookies["seen"]["httponly"]
    assert body["total"] == 25600 and body["chunks"] >= 1 and body["length"] == 25600
    assert body["cookie"] == "abc" and body["agent"] == "tests" and body["has_body"] is True
    assert body["host"].startswith("127.0.0.1:") and body["remote"].startswith("127.0.0.1:")


MOVER = lua("app:mover", """return { main = function(next_pid)
    local inbox = process.inbox()
    while true do
        local m = inbox:receive()
        local topic, data = m:topic(), m:payload():data()
        if topic == "ws.join" then
            -- hand the connection to the next process, which closes it
            process.send(data.client_pid, "ws.control", {target_pid = next_pid, message_topic = "chat"})
        elseif topic == "ws.leave" then
            return "left"
        end
    end
end }""")

CLOSER = lua("app:closer", """return { main = function()
    local inbox = process.inbox()
    local beats = 0
    while true do
        local m = inbox:receive()
        local topic, data = m:topic(), m:payload():data()
        if topic == "ws.heartbeat" then
            beats = beats + 1
            if beats == 1 then process.send(data.client_pid, "ready", true) end  -- the connection is ours
        end
        if topic == "chat" then
            process.send(m:from(), "said", {text = data, beats = beats > 0})
            process.send(m:from(), "ws.close", "bye")
            return "closed it"
        end
    end
end }""")


async def test_relay_control_moves_the_connection_and_close_ends_it(http: Http) -> None:
    await http.app.apply(MOVER, CLOSER)
    await http.apply(handler("wsm", """
        local closer = process.spawn("app:closer", "app:procs")
        local mover = process.spawn("app:mover", "app:procs", closer)
        http.response():set_header("X-WS-Relay", json.encode({target_pid = mover, heartbeat_interval = "50ms"}))
    """, ("http", "json")), endpoint("wsm.ep", "GET", "/wsm", "app:wsm"))
    async with http.session.ws_connect(http.url("/api/wsm")) as ws:
        assert await asyncio.wait_for(ws.receive_json(), 10) == {"topic": "ready", "data": True}
        await ws.send_str("hello")
        said = await asyncio.wait_for(ws.receive_json(), 10)
        assert said == {"topic": "said", "data": {"text": "hello", "beats": True}}
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
