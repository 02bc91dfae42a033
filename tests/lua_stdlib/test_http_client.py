"""The `http_client` module on a real host, against real aiohttp servers on loopback (TCP, TLS, unix
socket): methods and options, redirects, streams, batches, errors by kind, and permission checks."""

from __future__ import annotations

import asyncio
import datetime
import json
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from aiohttp import BodyPartReader, web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wippy.core import Entry
from wippy.lua_stdlib._mod_http_client import HttpClient, HttpClientError, prepare

from .helpers import fn, run_entry

# Lua helpers every snippet gets: `sum(resp, err)` as plain data
PRELUDE = """
local http = require("http_client")
local json = require("json")
local function sum(resp, err)
    if err ~= nil then
        return {ok = false, kind = err:kind(), message = err:message(), retryable = err:retryable() or false}
    end
    local echo = nil
    if resp.headers["Content-Type"] == "application/json; charset=utf-8" and resp.body ~= "" then
        echo = json.decode(resp.body)
    end
    return {ok = true, status = resp.status_code, body = resp.body, size = resp.body_size, url = resp.url,
            headers = resp.headers, cookies = resp.cookies, echo = echo}
end
"""


async def lua(body: str, *args: Any, extra: tuple[Entry, ...] = (), **ctx: Any) -> Any:
    """Run ``function(...) <body> end`` (with the prelude) as a task; its first result."""
    source = PRELUDE + "return { call = function(...)\n" + body + "\nend }"
    ok, res = await run_entry(fn("app:t", source, modules=["http_client", "json", "security", "funcs"]), *extra,
                              args=args, **ctx)
    assert ok, res
    return res[0]


# -- the servers ---------------------------------------------------------------------------------
@dataclass
class Server:
    url: str
    sock: str
    release: asyncio.Event


def _app(release: asyncio.Event) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({
            "method": request.method, "path": request.path, "query": dict(request.query),
            "headers": dict(request.headers), "body": body.decode("utf-8", "replace"), "cookies": dict(request.cookies),
        })

    async def slow(request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), 30)
        return web.Response(text="late")

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for i in range(int(request.query.get("n", "5"))):
            await resp.write(f"line {i}\r\n".encode())
            await asyncio.sleep(0)
        await resp.write("héllo wörld tail".encode())
        await resp.write_eof()
        return resp

    async def upload(request: web.Request) -> web.Response:
        parts = []
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            assert isinstance(part, BodyPartReader)
            data = await part.read()
            parts.append({"name": part.name, "filename": part.filename,
                          "type": part.headers.get("Content-Type"), "content": bytes(data).decode("latin-1")})
        return web.json_response(parts)

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=int(request.query.get("code", "302")), headers={"Location": request.query["to"]})

    async def loop(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/loop"})

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.query["n"]))

    async def chunked_big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()  # no Content-Length: the limit is found while reading
        await resp.prepare(request)
        for _ in range(int(request.query["n"])):
            await resp.write(b"y" * 1000)
        await resp.write_eof()
        return resp

    async def cookies(request: web.Request) -> web.Response:
        resp = web.Response(text="ok", headers={"x-lower": "v"})
        resp.headers.add("X-Multi", "first")
        resp.headers.add("X-Multi", "second")
        resp.set_cookie("session", "abc123")
        resp.set_cookie("theme", "dark")
        return resp

    async def whoami(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        if not peer:
            return web.Response(text="anonymous")
        return web.Response(text=dict(x[0] for x in peer["subject"])["commonName"])

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    app.router.add_get("/slow", slow)
    app.router.add_get("/stream", stream)
    app.router.add_post("/upload", upload)
    app.router.add_route("*", "/redirect", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/big", big)
    app.router.add_get("/chunked", chunked_big)
    app.router.add_get("/cookies", cookies)
    app.router.add_get("/whoami", whoami)
    return app


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    release = asyncio.Event()
    runner = web.AppRunner(_app(release), shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    sock = str(tmp_path / "http.sock")
    await web.UnixSite(runner, sock).start()
    port = next(a for a in runner.addresses if isinstance(a, tuple))[1]
    try:
        yield Server(f"http://127.0.0.1:{port}", sock, release)
    finally:
        release.set()
        await runner.cleanup()


@dataclass
class Pki:
    url: str
    ca: str
    client_cert: str
    client_key: str


def _cert(name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey, *,
          ca: bool = False, sans: list[x509.GeneralName] | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                                        critical=True)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[Pki]:
    """An HTTPS server with a certificate for `wippy.test` from a private CA (client certificates optional)."""
    ca_key, srv_key, cli_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Wippy Test CA")])
    ca = _cert("Wippy Test CA", ca_key, ca_name, ca_key, ca=True)
    srv = _cert("wippy.test", srv_key, ca_name, ca_key, sans=[x509.DNSName("wippy.test")])
    cli = _cert("client-one", cli_key, ca_name, ca_key)
    (tmp_path / "srv.pem").write_text(_pem(srv))
    (tmp_path / "srv.key").write_text(_key_pem(srv_key))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp_path / "srv.pem", tmp_path / "srv.key")
    ctx.load_verify_locations(cadata=_pem(ca))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    runner = web.AppRunner(_app(asyncio.Event()), shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Pki(f"https://127.0.0.1:{port}", _pem(ca), _pem(cli), _key_pem(cli_key))
    finally:
        await runner.cleanup()


# -- requests and responses ------------------------------------------------------------------------
async def test_methods_send_what_the_options_say(server: Server) -> None:
    got = await lua("""
        local base = ...
        local out = {}
        out.get = sum(http.get(base .. "/echo/a?keep=1", {
            query = {q = "lua programming", page = 2}, headers = {["X-Token"] = "t1", Accept = "text/plain"},
            cookies = {a = "1", b = "two"}, auth = {user = "admin", pass = "s3cret"}}))
        out.post = sum(http.post(base .. "/echo", {body = '{"x":1}',
                                                   headers = {["Content-Type"] = "application/json"}}))
        out.raw = sum(http.put(base .. "/echo", {body = "plain\\255\\0"}))
        out.patch = sum(http.patch(base .. "/echo", {body = "p"}))
        out.delete = sum(http.delete(base .. "/echo"))
        out.head = sum(http.head(base .. "/echo"))
        out.custom = sum(http.request("propfind", base .. "/echo", {headers = {Depth = "1"}}))
        out.form = sum(http.post(base .. "/echo", {form = {user = "alice", msg = "a b&c"}}))
        return out
    """, server.url)
    g = got["get"]
    assert g["ok"] and g["status"] == 200 and g["echo"]["method"] == "GET" and g["echo"]["path"] == "/echo/a"
    assert g["echo"]["query"] == {"keep": "1", "q": "lua programming", "page": "2"}
    assert g["echo"]["headers"]["X-Token"] == "t1" and g["echo"]["headers"]["Accept"] == "text/plain"
    assert g["echo"]["headers"]["Authorization"] == "Basic YWRtaW46czNjcmV0"
    assert g["echo"]["cookies"] == {"a": "1", "b": "two"}
    assert g["url"].startswith(server.url + "/echo/a?") and g["size"] == len(g["body"].encode())
    assert got["post"]["echo"]["body"] == '{"x":1}'
    assert got["post"]["echo"]["headers"]["Content-Type"] == "application/json"
    assert got["raw"]["echo"]["method"] == "PUT" and "Content-Type" not in got["raw"]["echo"]["headers"]
    assert got["raw"]["echo"]["body"] == "plain\ufffd\x00"  # binary bodies cross intact
    assert got["patch"]["echo"]["method"] == "PATCH" and got["delete"]["echo"]["method"] == "DELETE"
    assert got["head"]["status"] == 200 and got["head"]["body"] == "" and got["head"]["size"] == 0
    assert got["custom"]["echo"]["method"] == "PROPFIND" and got["custom"]["echo"]["headers"]["Depth"] == "1"
    form = got["form"]["echo"]
    assert form["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert form["body"] == "msg=a+b%26c&user=alice"


async def test_multipart_files_and_readers(server: Server) -> None:
    got = await lua("""
        local base = ...
        -- a reader: any object with a read method (here a streamed response body)
        local src = http.get(base .. "/stream?n=2", {stream = true})
        local resp, err = http.post(base .. "/upload", {
            form = {title = "Doc"},
            files = {
                {name = "attachment", filename = "a.txt", content = "hello\\0\\255", content_type = "text/plain"},
                {name = "raw", content = ""},
                {name = "piped", filename = "p.txt", reader = src.stream},
            }})
        src.stream:close()
        return {err = err, parts = resp and json.decode(resp.body)}
    """, server.url)
    assert got.get("err") is None
    parts = {p["name"]: p for p in got["parts"]}
    assert parts["title"]["content"] == "Doc" and parts["title"].get("filename") is None
    assert parts["attachment"]["filename"] == "a.txt" and parts["attachment"]["type"] == "text/plain"
    assert parts["attachment"]["content"] == "hello\x00\xff"
    assert parts["raw"]["filename"] == "raw" and parts["raw"]["type"] == "application/octet-stream"
    assert parts["raw"]["content"] == ""
    assert parts["piped"]["content"] == "line 0\r\nline 1\r\nhéllo wörld tail".encode().decode("latin-1")


async def test_response_headers_cookies_and_status(server: Server) -> None:
    got = await lua("""
        local base = ...
        return {sum(http.get(base .. "/cookies")), sum(http.get(base .. "/nowhere"))}
    """, server.url)
    ok, missing = got
    assert ok["status"] == 200 and ok["body"] == "ok"
    assert ok["headers"]["X-Multi"] == "first"  # the first value, as Wippy's
    assert ok["headers"]["X-Lower"] == "v"  # keys written as Go canonicalizes them
    assert ok["cookies"] == {"session": "abc123", "theme": "dark"}
    assert missing["ok"] and missing["status"] == 404  # an HTTP error status is a response, not an error


async def test_redirects_are_followed_and_rechecked(server: Server) -> None:
    got = await lua("""
        local base = ...
        local enc = http.encode_uri
        return {
            see_other = sum(http.post(base .. "/redirect?code=303&to=" .. enc("/echo/after"), {body = "gone"})),
            temporary = sum(http.post(base .. "/redirect?code=307&to=" .. enc(base .. "/echo/kept"), {body = "kept",
                auth = {user = "u", pass = "p"}})),
            cross_host = sum(http.get(base .. "/redirect?to=" .. enc(base:gsub("127.0.0.1", "localhost") .. "/echo"),
                {auth = {user = "u", pass = "p"}, cookies = {c = "1"}})),
            looping = sum(http.get(base .. "/loop")),
            missing_location = sum(http.get(base .. "/redirect?to=")),
        }
    """, server.url)
    so = got["see_other"]
    assert so["ok"] and so["echo"]["method"] == "GET" and so["echo"]["body"] == ""
    assert so["url"] == server.url + "/echo/after"
    tmp = got["temporary"]["echo"]
    assert tmp["method"] == "POST" and tmp["body"] == "kept" and tmp["headers"]["Authorization"].startswith("Basic")
    cross = got["cross_host"]["echo"]
    assert "Authorization" not in cross["headers"] and cross["cookies"] == {}  # credentials stay with their host
    assert got["looping"] == {"ok": False, "kind": "INTERNAL", "retryable": False,
                              "message": f"GET {server.url}/loop: stopped after 10 redirects"}
    assert got["missing_location"]["ok"] and got["missing_location"]["status"] == 302


async def test_timeouts(server: Server) -> None:
    got = await lua("""
        local base = ...
        return {sum(http.get(base .. "/slow", {timeout = 0.2})), sum(http.get(base .. "/slow", {timeout = "150ms"})),
                sum(http.get(base .. "/echo", {timeout = "1m30s"})), sum(http.get(base .. "/echo", {timeout = 5}))}
    """, server.url)
    for failed in got[:2]:
        assert failed["kind"] == "TIMEOUT" and failed["retryable"] is True and "timed out" in failed["message"]
    assert got[2]["status"] == 200 and got[3]["status"] == 200


async def test_max_response_body(server: Server) -> None:
    got = await lua("""
        local base = ...
        return {sum(http.get(base .. "/big?n=5000", {max_response_body = 4999})),
                sum(http.get(base .. "/chunked?n=20", {max_response_body = 10000})),
                sum(http.get(base .. "/big?n=5000", {max_response_body = 5000})),
                sum(http.get(base .. "/big?n=300000"))}
    """, server.url)
    for over in got[:2]:
        assert over["kind"] == "INTERNAL" and "exceeds max_response_body" in over["message"]
    assert got[2]["size"] == 5000 and got[3]["size"] == 300000


async def test_streaming_reads_in_chunks(server: Server) -> None:
    got = await lua("""
        local base = ...
        local resp = http.get(base .. "/stream?n=3", {stream = true})
        local parts, reads = {}, 0
        while true do
            local chunk, err = resp.stream:read(4)
            if err then return {err = err:message()} end
            if chunk == nil then break end
            assert(#chunk <= 4)
            parts[#parts + 1] = chunk
            reads = reads + 1
        end
        local stat = resp.stream:stat()
        local closed = resp.stream:close()
        local after, after_err = resp.stream:read(10)
        local _, bad_size = resp.stream:read(-1)
        local _, not_writable = resp.stream:write("x")

        local lines = {}
        local s2 = http.get(base .. "/stream?n=3", {stream = true}).stream
        local sc = s2:scanner()
        while sc:scan() do lines[#lines + 1] = sc:text() end
        s2:close()
        local words = {}
        local sw = http.get(base .. "/stream?n=1", {stream = true}).stream:scanner("words")
        while sw:scan() do words[#words + 1] = sw:text() end
        local runes = {}
        local sr = http.get(base .. "/stream?n=0", {stream = true}).stream:scanner("runes")
        while sr:scan() do runes[#runes + 1] = sr:text() end
        local _, bad_split = s2:scanner("sentences")
        return {body = table.concat(parts), reads = reads, size = resp.body_size, has_body = resp.body ~= nil,
                stat = stat, closed = closed, after = after == nil, after_err = after_err and after_err:message(),
                bad_size = bad_size:kind(), not_writable = not_writable:kind(), lines = lines, words = words,
                runes = #runes, first_runes = runes[1] .. runes[2], bad_split = bad_split:kind()}
    """, server.url)
    assert got["body"] == "line 0\r\nline 1\r\nline 2\r\nhéllo wörld tail"
    assert got["reads"] > 5 and got["size"] == -1 and got["has_body"] is False
    assert got["stat"]["position"] == len(got["body"].encode()) and got["stat"]["seekable"] is False
    assert got["closed"] is True and got["after"] and got["after_err"] == "stream closed"
    assert got["bad_size"] == "INVALID" and got["not_writable"] == "INTERNAL"
    assert got["lines"] == ["line 0", "line 1", "line 2", "héllo wörld tail"]
    assert got["words"] == ["line", "0", "héllo", "wörld", "tail"]
    assert got["runes"] == len("héllo wörld tail") and got["first_runes"] == "hé"
    assert got["bad_split"] == "INVALID"


async def test_unix_socket(server: Server) -> None:
    got = await lua("""
        local base, sock = ...
        return {sum(http.get("http://localhost/echo/unix", {unix_socket = sock})),
                sum(http.get("http://localhost/echo", {unix_socket = sock .. ".missing"}))}
    """, server.url, server.sock)
    assert got[0]["echo"]["path"] == "/echo/unix"
    assert got[1]["kind"] == "UNAVAILABLE" and got[1]["retryable"] is True


async def test_tls_options(tls_server: Pki) -> None:
    got = await lua("""
        local base, ca, cert, key = ...
        return {
            default = sum(http.get(base .. "/whoami")),
            insecure = sum(http.get(base .. "/whoami", {tls = {insecure_skip_verify = true}})),
            ca = sum(http.get(base .. "/whoami", {tls = {ca = ca, server_name = "wippy.test"}})),
            wrong_name = sum(http.get(base .. "/whoami", {tls = {ca = ca, server_name = "other.test"}})),
            mtls = sum(http.get(base .. "/whoami",
                                {tls = {ca = ca, server_name = "wippy.test", cert = cert, key = key}})),
            half = sum(http.get(base .. "/whoami", {tls = {cert = cert}})),
            bad_ca = sum(http.get(base .. "/whoami", {tls = {ca = "not a pem"}})),
        }
    """, tls_server.url, tls_server.ca, tls_server.client_cert, tls_server.client_key)
    assert got["default"]["kind"] == "INTERNAL" and "TLS" in got["default"]["message"]
    assert got["insecure"]["body"] == "anonymous"
    assert got["ca"]["body"] == "anonymous"
    assert got["wrong_name"]["kind"] == "INTERNAL"
    assert got["mtls"]["body"] == "client-one"
    assert got["half"]["kind"] == "INVALID" and "cert and key" in got["half"]["message"]
    assert got["bad_ca"]["kind"] == "INVALID" and "opts.tls.ca" in got["bad_ca"]["message"]


async def test_batch(server: Server) -> None:
    got = await lua("""
        local base, sock = ...
        local responses, errs = http.request_batch({
            {"GET", base .. "/echo/1"},
            {"post", base .. "/echo/2", {body = "two"}},
            {"GET", base .. "/slow", {timeout = 0.2}},
            {"GET", base .. "/redirect?to=/echo/3"},
        })
        local all_ok, none = http.request_batch({{"GET", base .. "/echo/a"}, {"GET", base .. "/echo/b"}})
        local r = {
            statuses = {responses[1].status_code, responses[2].status_code, responses[3] == nil, responses[4].url},
            bodies = {json.decode(responses[2].body).body},
            errs = {errs[1] == nil, errs[2] == nil, errs[3]:kind(), errs[4] == nil},
            all_ok = #all_ok, none = none == nil,
        }
        local function bad(...)
            local v, e = http.request_batch(...)
            return {v == nil, e and e:kind(), e and e:message()}
        end
        r.empty = bad({})
        r.not_table = bad({"GET"})
        r.stream = bad({{"GET", base .. "/echo", {stream = true}}})
        r.bad_url = bad({{"GET", base .. "/echo"}, {"GET", 42}})
        r.nothing = bad()
        return r
    """, server.url, server.sock)
    assert got["statuses"] == [200, 200, True, server.url + "/echo/3"]
    assert got["bodies"] == ["two"]
    assert got["errs"] == [True, True, "TIMEOUT", True]
    assert got["all_ok"] == 2 and got["none"] is True
    assert got["empty"] == [True, "INVALID", "http_client.request_batch: requests table cannot be empty"]
    assert got["not_table"][:2] == [True, "INVALID"] and "requests[1]" in got["not_table"][2]
    assert got["stream"][:2] == [True, "INVALID"] and "streaming not supported" in got["stream"][2]
    assert got["bad_url"] == [True, "INVALID",
                              "http_client.request_batch: requests[2]: url must be a string, got number"]
    assert got["nothing"][:2] == [True, "INVALID"]


async def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    got = await lua("""
        return sum(http.get("http://127.0.0.1:" .. ... .. "/"))
    """, port)
    assert got["kind"] == "UNAVAILABLE" and got["retryable"] is True


async def test_bad_input_is_invalid_and_named(server: Server) -> None:
    got = await lua("""
        local base = ...
        local function k(resp, err) return err and {err:kind(), err:message()} or {"OK"} end
        return {
            k(http.get(42)), k(http.get("ftp://example.com/x")), k(http.get("http://")), k(http.get("")),
            k(http.request("GE T", base)), k(http.request(nil, base)), k(http.get(base, "opts")),
            k(http.get(base, {timeout = "soon"})), k(http.get(base, {timeout = -1})), k(http.get(base, {timeout = {}})),
            k(http.post(base, {files = {{filename = "x", content = "y"}}})),
            k(http.post(base, {files = {{name = "f"}}})),
            k(http.get(base, {headers = {["X-A"] = "a\\r\\nInjected: 1"}})), k(http.get(base, {headers = {"a", "b"}})),
            k(http.get(base, {frobnicate = true})), k(http.get(base, {stream = "yes"})),
            k(http.get(base, {max_response_body = -5})), k(http.post(base, {body = "x", form = {a = "b"}})),
            k(http.get("http://\\255\\254/")), k(http.get(base, {auth = {pass = "p"}})),
            k(http.get(base, {overlay_network = "app:tor"})), k(http.get(base, {query = {q = {}}})),
            k(http.post(base, {files = {{name = "f", reader = 5}}})), k(http.get(base, {timeout = 1e300})),
        }
    """, server.url)
    expect = [
        ("INVALID", "http_client.get: url must be a string, got number"),
        ("INVALID", "http_client.get: url: 'ftp://example.com/x': the scheme must be http or https"),
        ("INVALID", "http_client.get: url"),
        ("INVALID", "http_client.get: url is empty"),
        ("INVALID", "http_client.request: method: 'GE T' is not an HTTP method name"),
        ("INVALID", "http_client.request: method must be a string, got nil"),
        ("INVALID", "http_client.get: opts must be a table, got string"),
        ("INVALID", 'http_client.get: opts.timeout: time: invalid duration "soon"'),
        ("INVALID", "http_client.get: opts.timeout: the timeout must be 0 or more"),
        ("INVALID", "http_client.get: opts.timeout: expected seconds"),
        ("INVALID", "http_client.post: opts.files[1]: the form field name (name) is missing"),
        ("INVALID", "http_client.post: opts.files[1]: content (or reader) is missing"),
        ("INVALID", "http_client.get: opts.headers:"),
        ("INVALID", "http_client.get: opts.headers: expected a table of name = value, got a list"),
        ("INVALID", "http_client.get: opts.frobnicate: unknown option"),
        ("INVALID", "http_client.get: opts.stream: expected a boolean, got string"),
        ("INVALID", "http_client.get: opts.max_response_body:"),
        ("INVALID", "http_client.post: opts.body: cannot be combined with opts.form or opts.files"),
        ("INVALID", "http_client.get: url must be text (UTF-8), not binary data"),
        ("INVALID", "http_client.get: opts.auth: expected {user = ..., pass = ...}"),
        ("UNAVAILABLE", "http_client.get: opts.overlay_network: overlay networks are not supported"),
        ("INVALID", "http_client.get: opts.query.q: expected a string, got table"),
        ("INVALID", "http_client.post: opts.files[1].reader: expected an object with a read method"),
        ("INVALID", "http_client.get: opts.timeout: the timeout 1e+300 is longer than a Go duration can be"),
    ]
    assert len(got) == len(expect)
    for (kind, message), (want_kind, prefix) in zip(got, expect, strict=True):
        assert kind == want_kind and message.startswith(prefix), (kind, message, prefix)


async def test_approved_addresses_are_the_ones_connected_to(server: Server) -> None:
    """Once the calling task approved a name's addresses, the connection goes there without a second
    lookup (a DNS answer that changes in between cannot lead elsewhere). `.invalid` never resolves."""
    port = server.url.rsplit(":", 1)[1]
    client = HttpClient()
    try:
        req = prepare("t", "GET", f"http://pinned.invalid:{port}/echo", {})
        req.pins = ["127.0.0.1"]
        resp, _ = await client.send(req)
        assert resp["status_code"] == 200 and json.loads(resp["body"])["headers"]["Host"] == f"pinned.invalid:{port}"
        with pytest.raises(HttpClientError) as bad:
            prepare("t", "GET", server.url, {"timeout": "1x"})
        assert bad.value.kind == "INVALID"
        assert str(bad.value) == 't: opts.timeout: time: unknown unit "x" in duration "1x"'
    finally:
        await client.aclose()


# -- permissions -------------------------------------------------------------------------------
def policy(name: str, actions: Any, resources: Any = "*", effect: str = "allow") -> Entry:
    return Entry(f"app.sec:{name}", "security.policy", {},
                 {"policy": {"actions": actions, "resources": resources, "effect": effect}, "groups": ["app.sec:g"]})


FETCH = fn("app:fetch", PRELUDE + """
return { call = function(method, url, opts_json)
    local opts = opts_json and json.decode(opts_json) or nil
    if method == "BATCH" then
        local rs, err = http.request_batch({{"GET", url, opts}})
        if rs == nil then return sum(nil, err) end
        return err and sum(nil, err[1]) or sum(rs[1])
    end
    return sum(http.request(method, url, opts))
end }
""", modules=["http_client", "json"])

AS_USER = """
local security = require("security")
local funcs = require("funcs")
local scope = security.named_scope("app.sec:g")
return funcs.new():with_actor(security.new_actor("u1")):with_scope(scope):call("app:fetch", ...)
"""


async def test_private_addresses_need_permission(server: Server) -> None:
    public_only = (FETCH, policy("req", "http_client.request"))
    port = server.url.rsplit(":", 1)[1]
    for url in (server.url + "/echo", f"http://localhost:{port}/echo"):
        got = await lua(AS_USER, "GET", url, extra=public_only)
        assert got["kind"] == "PERMISSION_DENIED" and "http_client.private_ip" in got["message"], got
        assert (await lua(AS_USER, "BATCH", url, extra=public_only))["kind"] == "PERMISSION_DENIED"
    allowed = (*public_only, policy("private", "http_client.private_ip", ["127.0.0.1", "::1"]))
    got = await lua(AS_USER, "GET", f"http://localhost:{port}/echo", extra=allowed)
    assert got["ok"] and got["status"] == 200
    # without an actor and a scope every check passes (strict mode off)
    assert (await lua("return sum(http.get(...))", server.url + "/echo"))["status"] == 200


async def test_each_permission_is_checked(server: Server) -> None:
    base = (FETCH, policy("private", "http_client.private_ip"))
    got = await lua(AS_USER, "GET", server.url + "/echo", extra=(*base, policy("other", "http_client.request",
                                                                             "https://api.example.com/*")))
    assert got["kind"] == "PERMISSION_DENIED" and "http_client.request" in got["message"]
    allowed = (*base, policy("req", "http_client.request"))
    got = await lua(AS_USER, "GET", "http://localhost/echo", json.dumps({"unix_socket": server.sock}), extra=allowed)
    assert got["kind"] == "PERMISSION_DENIED" and "http_client.unix_socket" in got["message"]
    got = await lua(AS_USER, "GET", "https://127.0.0.1:1/", json.dumps({"tls": {"insecure_skip_verify": True}}),
                    extra=allowed)
    assert got["kind"] == "PERMISSION_DENIED" and "http_client.insecure_tls" in got["message"]
    # a redirect to a URL the policy does not allow is refused before it is requested
    only_echo = (*base, policy("echo", "http_client.request", f"{server.url}/redirect*"))
    got = await lua(AS_USER, "GET", f"{server.url}/redirect?to=/echo", extra=only_echo)
    assert got["kind"] == "PERMISSION_DENIED" and f"{server.url}/echo" in got["message"]
    got = await lua(AS_USER, "GET", "http://localhost/echo", json.dumps({"unix_socket": server.sock}),
                    extra=(*allowed, policy("sock", "http_client.unix_socket", server.sock)))
    assert got["status"] == 200


async def test_strict_mode_denies_without_an_actor(server: Server) -> None:
    got = await lua("return sum(http.get(...))", server.url + "/echo", strict=True)
    assert got["kind"] == "PERMISSION_DENIED"


# -- URL encoding and properties ---------------------------------------------------------------
async def test_encode_and_decode_uri() -> None:
    got = await lua("""
        local function k(v, err) return {v or false, err and err:kind() or false, err and err:message() or false} end
        return {http.encode_uri("hello world"), http.encode_uri("a+b/c?d=é~_.-"), http.encode_uri(12),
                k(http.decode_uri("hello+world%21")), k(http.decode_uri("%zz")), k(http.decode_uri("100%")),
                k(http.encode_uri({}))}
    """)
    assert got[:3] == ["hello+world", "a%2Bb%2Fc%3Fd%3D%C3%A9~_.-", "12"]
    assert got[3] == ["hello world!", False, False]
    assert got[4] == [False, "INVALID", 'http_client.decode_uri: invalid URL escape "%zz"']
    assert got[5] == [False, "INVALID", 'http_client.decode_uri: invalid URL escape "%"']
    assert got[6][1:] == ["INVALID", "http_client.encode_uri: expected a string, got table"]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=20))
async def test_uri_round_trip(values: list[bytes]) -> None:
    encoded = [quote_plus(v, safe="") for v in values]  # what Go's url.QueryEscape gives
    ok, res = await run_entry(fn("app:t", """
        local http = require("http_client")
        return { call = function(...)
            local out = {}
            for i, s in ipairs({...}) do
                local e = http.encode_uri(s)
                local d = http.decode_uri(e)
                out[i] = {e, d == s}
            end
            return out
        end }
    """, modules=["http_client"]), args=tuple(values))
    assert ok, res
    assert [e for e, _ in res[0]] == encoded and all(same for _, same in res[0])


TIMEOUT_VALUES = st.one_of(
    st.text(max_size=12), st.from_regex(r"\A-?[0-9]{0,3}(\.[0-9]{0,2})?(ns|us|ms|s|m|h)?\Z"),
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**63), 2**63 - 1), st.booleans(), st.none(),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(TIMEOUT_VALUES, min_size=1, max_size=8))
async def test_any_timeout_value_gives_a_response_or_an_error(server: Server, values: list[Any]) -> None:
    ok, res = await run_entry(fn("app:t", """
        local http = require("http_client")
        return { call = function(url, ...)
            local out = {}
            for i = 1, select("#", ...) do
                local resp, err = http.get(url, {timeout = (select(i, ...))})
                out[i] = resp and resp.status_code or err:kind()
            end
            return out
        end }
    """, modules=["http_client"]), args=(server.url + "/echo", *values))
    assert ok, res
    assert set(res[0]) <= {200, "INVALID", "TIMEOUT"}, res
