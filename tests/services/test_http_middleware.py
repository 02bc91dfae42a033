"""HTTP middleware over real HTTP on loopback: a low-level aiohttp server runs the chain around a
handler that echoes what it saw; token stores and policies live in a real registry on NATS."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from wippy.core import (
    Changeset,
    DefinitionError,
    DefinitionErrors,
    Entry,
    Grant,
    JetStreamEventStore,
    Op,
    TokenService,
    evaluate_expr,
    parse_go_duration,
)
from wippy.projections import ProjectionDB, RegistryProjection
from wippy.services import EnvService, RegistryService, Telemetry
from wippy.services import _http_keys as keys
from wippy.services._http_middleware import (
    POST,
    PRE,
    Middleware,
    MiddlewareDeps,
    TokenBuckets,
    before_prepare,
    build_chain,
    compose,
    middleware_errors,
    origin_allowed,
)
from wippy.services._stores import StoreHub

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
BIG = "all work and no play " * 300  # ~6 KB, compresses well


async def echo(request: web.BaseRequest) -> web.StreamResponse:
    """What the handler saw, or one of a few response shapes chosen by path."""
    path = request.path
    if path == "/big":
        return web.Response(text=BIG, content_type="text/plain", headers={"ETag": '"v1"'})
    if path == "/small":
        return web.Response(text="tiny", content_type="text/plain")
    if path == "/png":
        return web.Response(body=BIG.encode(), content_type="image/png")
    if path == "/encoded":
        return web.Response(body=gzip.compress(BIG.encode()), headers={"Content-Encoding": "gzip"},
                            content_type="text/plain")
    if path in {"/sse", "/stream"}:
        ctype = "text/event-stream" if path == "/sse" else "text/plain"
        resp = web.StreamResponse(headers={"Content-Type": ctype})
        before_prepare(request, resp)
        await resp.prepare(request)
        await resp.write(f"data: {BIG}\n\n".encode())
        await resp.write_eof()
        return resp
    if path == "/missing":
        raise web.HTTPNotFound(text="gone")
    return web.json_response({"security": request.get(keys.SECURITY), "remote": request.get(keys.REMOTE_ADDR),
                              "endpoint": request.get(keys.ENDPOINT), "path": path})


@asynccontextmanager
async def serve(pre: Sequence[Middleware] = (), post: Sequence[Middleware] = (), *,
                security: dict[str, Any] | None = None, inner: Handler = echo) -> AsyncIterator[str]:
    """A server on a free loopback port: router pre chain -> (endpoint matched) post chain -> inner."""

    async def endpoint(request: web.BaseRequest) -> web.StreamResponse:
        request[keys.ENDPOINT] = "app:ep"
        return await compose(list(post), inner)(request)

    chain = compose(list(pre), endpoint)

    async def root(request: web.BaseRequest) -> web.StreamResponse:
        request[keys.ROUTER] = "app:api"
        if security is not None:
            request[keys.SECURITY] = security
        return await chain(request)

    runner = web.ServerRunner(web.Server(root))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


DEPS = MiddlewareDeps(registry=None)


def chain(names: Sequence[str], options: dict[str, Any] | None = None, *, deps: MiddlewareDeps = DEPS,
          post: bool = False) -> list[Middleware]:
    assert middleware_errors(list(names), options, entry="app:api", field="m", options_field="o", post=post) == []
    return build_chain(names, options or {}, deps=deps, post=post)


async def fetch(session: aiohttp.ClientSession, method: str, url: str,
                **kw: Any) -> tuple[int, Any, bytes]:
    async with session.request(method, url, **kw) as r:
        return r.status, r.headers, await r.read()


# -- cors -----------------------------------------------------------------------------------------

async def test_cors_preflight_and_responses() -> None:
    opts = {"cors.allow.origins": "https://app.example.com, *.trusted.org", "cors.allow.credentials": "true",
            "cors.expose.headers": "X-Total", "cors.max.age": 600, "cors.allow.private.network": True}
    async with serve(chain(["cors"], opts)) as url, aiohttp.ClientSession() as s:
        status, h, body = await fetch(s, "OPTIONS", url + "/x", headers={
            "Origin": "https://a.trusted.org", "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Private-Network": "true"})
        assert status == 204 and body == b""
        assert h["Access-Control-Allow-Origin"] == "https://a.trusted.org"  # credentials: never "*"
        assert h["Access-Control-Allow-Credentials"] == "true"
        assert "PUT" in h["Access-Control-Allow-Methods"] and "Authorization" in h["Access-Control-Allow-Headers"]
        assert h["Access-Control-Max-Age"] == "600" and h["Access-Control-Allow-Private-Network"] == "true"
        assert "Origin" in h["Vary"]
        # a preflight from an origin that is not allowed: answered, without a grant
        status, h, _ = await fetch(s, "OPTIONS", url + "/x", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        assert status == 204 and "Access-Control-Allow-Origin" not in h
        # actual requests reach the handler; allowed origins get the headers, others do not
        status, h, _ = await fetch(s, "GET", url + "/x", headers={"Origin": "https://app.example.com"})
        assert status == 200 and h["Access-Control-Allow-Origin"] == "https://app.example.com"
        assert h["Access-Control-Expose-Headers"] == "X-Total" and h["Vary"] == "Origin"
        status, h, _ = await fetch(s, "GET", url + "/x", headers={"Origin": "https://app.example.com.evil.io"})
        assert status == 200 and "Access-Control-Allow-Origin" not in h and h["Vary"] == "Origin"
        # an error raised by the handler carries them too; no Origin, no CORS headers
        status, h, _ = await fetch(s, "GET", url + "/missing", headers={"Origin": "https://app.example.com"})
        assert status == 404 and h["Access-Control-Allow-Origin"] == "https://app.example.com"
        status, h, _ = await fetch(s, "GET", url + "/x")
        assert status == 200 and "Access-Control-Allow-Origin" not in h
        # a streamed response gets them through before_prepare
        _, h, _ = await fetch(s, "GET", url + "/stream", headers={"Origin": "https://app.example.com"})
        assert h["Access-Control-Allow-Origin"] == "https://app.example.com"
        # OPTIONS without Access-Control-Request-Method is an ordinary request
        status, _, _ = await fetch(s, "OPTIONS", url + "/x", headers={"Origin": "https://app.example.com"})
        assert status == 200


async def test_cors_defaults_and_legacy_keys() -> None:
    async with serve(chain(["cors"])) as url, aiohttp.ClientSession() as s:
        _, h, _ = await fetch(s, "GET", url + "/x", headers={"Origin": "https://anyone.io"})
        assert h["Access-Control-Allow-Origin"] == "*" and "Vary" not in h
        status, h, _ = await fetch(s, "OPTIONS", url + "/x", headers={
            "Origin": "https://anyone.io", "Access-Control-Request-Method": "PATCH"})
        assert status == 204 and h["Access-Control-Max-Age"] == "86400"
        assert h["Access-Control-Allow-Methods"] == "GET, POST, PUT, DELETE, OPTIONS, PATCH"
    legacy = {"allow_origins": "https://a.io", "cors_allow_headers": "*"}
    async with serve(chain(["cors"], legacy)) as url, aiohttp.ClientSession() as s:
        _, h, _ = await fetch(s, "OPTIONS", url + "/x", headers={
            "Origin": "https://a.io", "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "X-Custom, X-Other"})
        assert h["Access-Control-Allow-Origin"] == "https://a.io"
        assert h["Access-Control-Allow-Headers"] == "X-Custom, X-Other"  # "*" echoes what was asked


_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_scheme = st.sampled_from(["http", "https"])


@given(scheme=_scheme, labels=st.lists(_label, min_size=1, max_size=3), port=st.none() | st.integers(1, 65535))
def test_wildcard_origins_match_subdomains_only(scheme: str, labels: list[str], port: int | None) -> None:
    sub = ".".join(labels)
    suffix = f":{port}" if port else ""
    assert origin_allowed(["*.example.com"], f"{scheme}://{sub}.example.com") is True
    assert origin_allowed([f"{scheme}://*.example.com"], f"{scheme.upper()}://{sub}.EXAMPLE.com") is True
    # a look-alike host never matches, whatever its labels
    assert origin_allowed(["*.example.com"], f"{scheme}://{sub}example.com{suffix}") is False
    assert origin_allowed(["*.example.com"], f"{scheme}://{sub}.example.com.{labels[0]}.io") is False
    assert origin_allowed(["https://*.example.com"], f"http://{sub}.example.com") is False
    assert origin_allowed(["*.example.com"], f"{scheme}://{sub}.example.com{suffix}") is (port is None)


@given(a=st.tuples(_scheme, _label, _label), b=st.tuples(_scheme, _label, _label))
def test_exact_origins_match_only_themselves(a: tuple[str, str, str], b: tuple[str, str, str]) -> None:
    oa, ob = f"{a[0]}://{a[1]}.{a[2]}", f"{b[0]}://{b[1]}.{b[2]}"
    assert origin_allowed([oa], oa.upper()) is True
    assert origin_allowed([oa], ob) is (oa == ob)
    assert origin_allowed(["*"], ob) is True
    assert origin_allowed([oa], "") is False


# -- compress -------------------------------------------------------------------------------------

async def test_compress_negotiates_and_skips_what_it_should() -> None:
    mw = chain(["compress"], {"compress.level": "best", "compress.min.length": "100"})
    async with serve(mw) as url, aiohttp.ClientSession(auto_decompress=False) as s:
        status, h, body = await fetch(s, "GET", url + "/big", headers={"Accept-Encoding": "gzip, deflate"})
        assert status == 200 and h["Content-Encoding"] == "gzip" and gzip.decompress(body).decode() == BIG
        assert len(body) < len(BIG) / 10 and h["Vary"] == "Accept-Encoding" and h["ETag"] == 'W/"v1"'
        _, h, body = await fetch(s, "GET", url + "/big", headers={"Accept-Encoding": "gzip;q=0, deflate"})
        assert h["Content-Encoding"] == "deflate" and zlib.decompress(body).decode() == BIG
        _, h, body = await fetch(s, "GET", url + "/big", headers={"Accept-Encoding": "identity"})
        assert "Content-Encoding" not in h and body.decode() == BIG and h["Vary"] == "Accept-Encoding"
        _, h, body = await fetch(s, "GET", url + "/big", headers={"Accept-Encoding": "*"})
        assert h["Content-Encoding"] == "gzip"
        for path in ("/small", "/png"):  # under min.length; an image format that is compressed already
            _, h, _ = await fetch(s, "GET", url + path, headers={"Accept-Encoding": "gzip"})
            assert "Content-Encoding" not in h, path
        _, h, body = await fetch(s, "GET", url + "/encoded", headers={"Accept-Encoding": "gzip"})
        assert h["Content-Encoding"] == "gzip" and gzip.decompress(body).decode() == BIG  # not twice
        # a streamed response compresses when the server calls before_prepare; SSE never does
        _, h, body = await fetch(s, "GET", url + "/stream", headers={"Accept-Encoding": "gzip"})
        assert h["Content-Encoding"] == "gzip" and gzip.decompress(body).decode() == f"data: {BIG}\n\n"
        _, h, body = await fetch(s, "GET", url + "/sse", headers={"Accept-Encoding": "gzip"})
        assert "Content-Encoding" not in h and body.decode() == f"data: {BIG}\n\n"
        status, h, body = await fetch(s, "HEAD", url + "/big", headers={"Accept-Encoding": "gzip"})
        assert (status, body) == (200, b"") and "Content-Encoding" not in h
        status, _, _ = await fetch(s, "GET", url + "/missing", headers={"Accept-Encoding": "gzip"})
        assert status == 404


# -- real_ip --------------------------------------------------------------------------------------

async def test_real_ip_trusts_only_proxies() -> None:
    async with serve(chain(["real_ip"])) as url, aiohttp.ClientSession() as s:  # loopback is trusted by default
        async def remote(headers: dict[str, str]) -> str:
            _, _, body = await fetch(s, "GET", url + "/x", headers=headers)
            return str(json.loads(body)["remote"])

        assert await remote({}) == "127.0.0.1"
        assert await remote({"X-Forwarded-For": "203.0.113.7"}) == "203.0.113.7"
        # the nearest address our proxies did not add wins: the left one may be forged by the client
        assert await remote({"X-Forwarded-For": "1.1.1.1, 203.0.113.7, 10.0.0.2"}) == "203.0.113.7"
        assert await remote({"X-Forwarded-For": "10.0.0.3, 10.0.0.2"}) == "10.0.0.3"
        assert await remote({"X-Forwarded-For": "203.0.113.7", "X-Real-IP": "198.51.100.1"}) == "198.51.100.1"
        assert await remote({"X-Real-IP": "198.51.100.1", "True-Client-IP": "2001:db8::1"}) == "2001:db8::1"
        assert await remote({"X-Real-IP": "not an ip", "X-Forwarded-For": "[2001:db8::2]:443"}) == "2001:db8::2"
    async with serve(chain(["real_ip"], {"real_ip.trusted.subnets": "10.0.0.0/8"})) as url, \
            aiohttp.ClientSession() as s:
        _, _, body = await fetch(s, "GET", url + "/x", headers={"X-Real-IP": "198.51.100.1"})
        assert json.loads(body)["remote"] == "127.0.0.1"  # the peer is no trusted proxy
    async with serve(chain(["real_ip"], {"real_ip.trusted.subnets": "10.0.0.0/8", "trust_all": "true"})) as url, \
            aiohttp.ClientSession() as s:
        _, _, body = await fetch(s, "GET", url + "/x", headers={"X-Forwarded-For": "1.1.1.1, 203.0.113.7"})
        assert json.loads(body)["remote"] == "1.1.1.1"


# -- ratelimit ------------------------------------------------------------------------------------

async def test_ratelimit_answers_429_per_key() -> None:
    mw = chain(["real_ip", "ratelimit"], {"ratelimit.requests": "2", "ratelimit.window": "1h",
                                          "ratelimit.key": "header:X-API-Key"})
    async with serve(mw) as url, aiohttp.ClientSession() as s:
        for _ in range(2):
            assert (await fetch(s, "GET", url + "/x", headers={"X-API-Key": "a"}))[0] == 200
        status, h, body = await fetch(s, "GET", url + "/x", headers={"X-API-Key": "a"})
        assert status == 429 and body == b'{"error":"too many requests"}'
        assert int(h["Retry-After"]) >= 1 and h["X-RateLimit-Limit"] == "2" and h["X-RateLimit-Window"] == "1h0m0s"
        assert (await fetch(s, "GET", url + "/x", headers={"X-API-Key": "b"}))[0] == 200
        # no key header: the client address is the key
        assert [(await fetch(s, "GET", url + "/x"))[0] for _ in range(3)] == [200, 200, 429]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@settings(max_examples=60)
@given(rate=st.floats(0.1, 50), capacity=st.integers(1, 20),
       steps=st.lists(st.tuples(st.floats(0, 5), st.sampled_from("abc")), max_size=80))
def test_token_buckets_never_allow_more_than_capacity_plus_refill(rate: float, capacity: int,
                                                                  steps: list[tuple[float, str]]) -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=rate, capacity=float(capacity), ttl=1e9, cleanup=1e9, max_entries=10, clock=clock)
    allowed = dict.fromkeys("abc", 0)
    for dt, key in steps:
        clock.now += dt
        wait = buckets.wait(key)
        if wait == 0:
            allowed[key] += 1
        else:  # told to wait: after that long there is a token
            assert wait > 0
    for n in allowed.values():
        assert n <= capacity + rate * clock.now + 1e-6


def test_token_buckets_memory_is_bounded() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=1.0, capacity=1.0, ttl=10.0, cleanup=5.0, max_entries=3, clock=clock)
    for key in "abcdef":
        assert buckets.wait(key) == 0
    assert len(buckets) == 3  # the least recently used went
    assert buckets.wait("f") > 0
    clock.now = 100.0
    buckets.wait("z")  # the sweep drops keys idle for longer than ttl
    assert len(buckets) == 1
    assert buckets.wait("f") == 0  # f was forgotten: a fresh bucket


# -- a registry with token stores and policies ------------------------------------------------------

def policy(name: str, actions: Any, resources: Any, effect: str = "allow", groups: Sequence[str] = (),
           expression: str | None = None) -> Entry:
    body: dict[str, Any] = {"actions": actions, "resources": resources, "effect": effect}
    kind = "security.policy"
    if expression is not None:
        body["expression"] = expression
        kind = "security.policy.expr"
    return Entry(f"app:{name}", kind, {}, {"policy": body, "groups": list(groups)})


SECURITY = (
    Entry("app:kv", "store.memory", {}, {}),
    Entry("app:mem", "env.storage.memory", {}, {}),
    Entry("app:key", "env.variable", {}, {"storage": "app:mem", "variable": "TOKEN_KEY", "default": "s3cret"}),
    Entry("app:tokens", "security.token_store", {}, {"store": "app:kv", "token_key": "${env:TOKEN_KEY}"}),
    policy("ep_access", "access", "app:ep", groups=["app:users"]),
    policy("deny_all", "*", "*", effect="deny"),
    policy("admins", "*", "*", expression='actor.meta.role == "admin"'),
)


class Sec:
    def __init__(self, svc: RegistryService) -> None:
        self.svc = svc
        self.stores = StoreHub(svc)
        self.env = EnvService(svc)
        self.deps = MiddlewareDeps(registry=svc, stores=self.stores, env=self.env, expr=evaluate_expr)
        self.tokens = TokenService(svc, self.stores, parse_go_duration, env=self.env.lookup)

    async def apply(self, *entries: Entry) -> None:
        ops = [Op("update" if self.svc.get(e.id) else "create", e.id, e) for e in entries]
        await self.svc.apply(Changeset(ops=tuple(ops)))

    async def token(self, actor: str, policies: Sequence[str], meta: dict[str, Any] | None = None) -> str:
        return await self.tokens.create("app:tokens", Grant(actor, meta or {}, tuple(policies)), expiration="1h")


@pytest.fixture
async def sec(store: JetStreamEventStore, tmp_path: Path) -> AsyncIterator[Sec]:
    db = ProjectionDB(tmp_path / "p.duckdb")
    proj = RegistryProjection(store, db)
    await proj.start()
    try:
        s = Sec(RegistryService(proj, node="n1"))
        await s.apply(*SECURITY)
        yield s
    finally:
        await proj.aclose()
        db.close()


async def test_token_auth_sets_the_actor_and_never_blocks(sec: Sec) -> None:
    token = await sec.token("u1", ["app:ep_access"], {"role": "user"})
    assert "." in token  # signed with the key from the env
    default = {"actor": {"id": "service", "meta": {}}, "policies": []}
    mw = chain(["token_auth"], {"token_auth.store": "app:tokens"}, deps=sec.deps)
    want = {"actor": {"id": "u1", "meta": {"role": "user"}}, "policies": ["app:ep_access"]}
    async with serve(mw, security=default) as url, aiohttp.ClientSession() as s:
        async def seen(**kw: Any) -> Any:
            status, _, body = await fetch(s, "GET", url + "/x", **kw)
            assert status == 200
            return json.loads(body)["security"]

        assert await seen(headers={"Authorization": f"Bearer {token}"}) == want
        assert await seen(headers={"Authorization": f"bearer {token}"}) == want
        assert await seen(params={"x-auth-token": token}) == want
        assert await seen(headers={"Cookie": f"x-auth-token={token}"}) == want
        # bad, forged, revoked or absent tokens leave the service default in place
        assert await seen(headers={"Authorization": "Bearer nope"}) == default
        assert await seen(headers={"Authorization": f"Bearer {token[:-2]}xx"}) == default
        assert await seen(headers={"Authorization": f"Basic {token}"}) == default
        assert await seen() == default
        await sec.tokens.revoke("app:tokens", token)
        assert await seen(headers={"Authorization": f"Bearer {token}"}) == default
    other = await sec.token("u2", [])
    custom = {"token_store": "app:tokens", "token_auth.header.name": "X-Token", "token_auth.header.prefix": "",
              "token_auth.query.param": "", "token_auth.cookie.name": ""}
    async with serve(chain(["token_auth"], custom, deps=sec.deps)) as url, aiohttp.ClientSession() as s:
        _, _, body = await fetch(s, "GET", url + "/x", headers={"X-Token": other})
        assert json.loads(body)["security"]["actor"]["id"] == "u2"
        _, _, body = await fetch(s, "GET", url + "/x", params={"x-auth-token": other})
        assert json.loads(body)["security"] is None


async def test_endpoint_firewall_decides_with_the_policies(sec: Sec) -> None:
    pre = chain(["token_auth"], {"token_auth.store": "app:tokens"}, deps=sec.deps)
    post = chain(["endpoint_firewall"], deps=sec.deps, post=True)
    cases = {
        "allowed": (await sec.token("u1", ["app:ep_access"]), 200),
        "denied wins": (await sec.token("u2", ["app:ep_access", "app:deny_all"]), 403),
        "undefined denies": (await sec.token("u3", []), 403),
        "expression": (await sec.token("a1", ["app:admins"], {"role": "admin"}), 200),
        "expression false": (await sec.token("u4", ["app:admins"], {"role": "user"}), 403),
        "policy gone": (await sec.token("u5", ["app:ep_access", "app:gone"]), 403),
    }
    async with serve(pre, post) as url, aiohttp.ClientSession() as s:
        for name, (token, want) in cases.items():
            status, _, body = await fetch(s, "GET", url + "/x", headers={"Authorization": f"Bearer {token}"})
            assert status == want, name
            if want == 403:
                assert body == b'{"error":"permission denied"}'
        status, h, body = await fetch(s, "GET", url + "/x")
        assert status == 401 and h["WWW-Authenticate"] == "Bearer"
        assert body == b'{"error":"authentication required"}'
    write = chain(["endpoint_firewall"], {"endpoint_firewall.action": "write"}, deps=sec.deps, post=True)
    async with serve(pre, write) as url, aiohttp.ClientSession() as s:
        status, _, _ = await fetch(s, "GET", url + "/x", headers={"Authorization": f"Bearer {cases['allowed'][0]}"})
        assert status == 403
    # a service default naming a group: the group's policies count
    service = {"actor": {"id": "svc"}, "groups": ["app:users"]}
    async with serve((), post, security=service) as url, aiohttp.ClientSession() as s:
        assert (await fetch(s, "GET", url + "/x"))[0] == 200


async def test_resource_firewall_checks_its_target(sec: Sec) -> None:
    await sec.apply(policy("panel", "admin", "app:admin-panel"))
    pre = chain(["token_auth"], {"token_auth.store": "app:tokens"}, deps=sec.deps)
    post = chain(["resource_firewall"], {"resource_firewall.action": "admin",
                                         "resource_firewall.target": "app:admin-panel"}, deps=sec.deps, post=True)
    async with serve(pre, post) as url, aiohttp.ClientSession() as s:
        ok = await sec.token("a1", ["app:panel"])
        no = await sec.token("u1", ["app:ep_access"])
        assert (await fetch(s, "GET", url + "/x", headers={"Authorization": f"Bearer {ok}"}))[0] == 200
        assert (await fetch(s, "GET", url + "/x", headers={"Authorization": f"Bearer {no}"}))[0] == 403


async def test_bad_middleware_is_refused_when_applied(sec: Sec) -> None:
    gw = Entry("app:gw", "http.service", {}, {"addr": "127.0.0.1:0"})
    router = Entry("app:r", "http.router", {"server": "app:gw"}, {
        "middleware": ["cors", "sendfile", "endpoint_firewall", "token_auth"],
        "options": {"cors.allow.orgins": "*", "ratelimit.requests": "many"},
        "post_middleware": ["endpoint_firewall", "gzip"], "post_options": {"endpoint_firewall.action": ""}})
    static = Entry("app:s", "http.static", {"server": "app:gw"}, {
        "path": "/", "directory": "./public", "middleware": ["compress"], "options": {"compress.level": "max"}})
    with pytest.raises(DefinitionErrors) as info:
        await sec.apply(gw, router, static)
    found = {(e.entry, e.field): e.reason for e in info.value.errors}
    assert "not implemented" in found[("app:r", "middleware[1]")]
    assert "post_middleware" in found[("app:r", "middleware[2]")]
    assert "is required by token_auth" in found[("app:r", "options.token_auth.store")]
    assert "is not an option of cors" in found[("app:r", "options.cors.allow.orgins")]
    assert ("app:r", "options.ratelimit.requests") not in found  # ratelimit is not listed: its keys are not read
    assert "unknown middleware 'gzip'" in found[("app:r", "post_middleware[1]")]
    assert "must not be empty" in found[("app:r", "post_options.endpoint_firewall.action")]
    assert "fastest, default, best" in found[("app:s", "options.compress.level")]
    good = Entry("app:r", "http.router", {"server": "app:gw"}, {
        "middleware": ["real_ip", "cors", "compress", "ratelimit", "metrics", "token_auth", "otel"],
        "options": {"token_store": "app:tokens", "allow_origins": "*", "ratelimit.window": "30s",
                    "unrelated.key": "kept for other readers"},
        "post_middleware": ["endpoint_firewall", "websocket_relay"], "post_options": {"wsrelay.allowed.origins": "*"}})
    await sec.apply(gw, good)


# -- option checks --------------------------------------------------------------------------------

@pytest.mark.parametrize(("options", "field", "words"), [
    ({"ratelimit.requests": "abc"}, "o.ratelimit.requests", "whole number"),
    ({"ratelimit.requests": 0}, "o.ratelimit.requests", "at least 1"),
    ({"ratelimit.window": "60"}, "o.ratelimit.window", "missing unit"),
    ({"ratelimit.window": 60}, "o.ratelimit.window", "with a unit"),
    ({"ratelimit.window": "-1m"}, "o.ratelimit.window", "positive"),
    ({"ratelimit.key": "cookie:x"}, "o.ratelimit.key", "header:<Name>"),
    ({"real_ip.trusted.subnets": "10.0.0.0/33"}, "o.real_ip.trusted.subnets", "not a subnet"),
    ({"real_ip_trust_all": "maybe"}, "o.real_ip_trust_all", "true or false"),
    ({"cors.allow.credentials": 2}, "o.cors.allow.credentials", "true or false"),
    ({"cors.allow.methods": "GET,PO ST"}, "o.cors.allow.methods", "valid HTTP name"),
    ({"cors.allow.origins": {"a": 1}}, "o.cors.allow.origins", "comma-separated"),
    ({"cors.max.age": "1d"}, "o.cors.max.age", "whole number"),
    ({"compress.min.length": -5}, "o.compress.min.length", "at least 0"),
    ({"token_store": "tokens"}, "o.token_store", "security.token_store"),
    ({"token_auth.store": "app:t", "token_auth.header.name": "Bad Header"}, "o.token_auth.header.name",
     "header name"),
])
def test_option_values_are_checked(options: dict[str, Any], field: str, words: str) -> None:
    names = list(PRE - {"otel", "metrics"})
    if not any(k.startswith("token") for k in options):
        options = {**options, "token_auth.store": "app:t"}
    errors = middleware_errors(names, options, entry="app:r", field="m", options_field="o", post=False)
    assert [(e.entry, e.field) for e in errors] == [("app:r", field)], errors
    assert words in errors[0].reason
    with pytest.raises(DefinitionError):
        build_chain(names, options, deps=DEPS, post=False)


def test_list_and_map_shapes() -> None:
    errs = middleware_errors("cors", [1], entry="app:r", field="middleware", options_field="options", post=False)
    assert [(e.field, e.reason) for e in errs] == [("middleware", "must be a list of middleware names"),
                                                   ("options", "must be a mapping of option names to values")]
    errs = middleware_errors(["token_auth"], {1: "x"}, entry="app:r", field="middleware", options_field="options",
                             post=False)
    assert [e.field for e in errs] == ["options"]
    assert middleware_errors(None, None, entry="app:r", field="m", options_field="o", post=True) == []


_known_keys = ["cors.allow.origins", "cors.max.age", "allow_origins", "ratelimit.requests", "ratelimit.window",
               "ratelimit.burst", "ratelimit.key", "real_ip.trusted.subnets", "trust_all", "token_auth.store",
               "token_store", "token_auth.header.prefix", "compress.level", "compress.min.length",
               "endpoint_firewall.action", "resource_firewall.target", "wsrelay.allowed.origins", "cors.bogus"]
_values = st.one_of(st.text(max_size=30), st.integers(-10**20, 10**20), st.floats(), st.booleans(), st.none(),
                    st.lists(st.text(max_size=10), max_size=3), st.dictionaries(st.text(max_size=3), st.integers()))


@settings(max_examples=200)
@given(names=st.lists(st.sampled_from(sorted(PRE | POST | {"sendfile", "nope"})), max_size=5),
       options=st.dictionaries(st.one_of(st.sampled_from(_known_keys), st.text(max_size=20)), _values, max_size=8),
       post=st.booleans())
def test_option_checks_only_ever_report(names: list[str], options: dict[str, Any], post: bool) -> None:
    errors = middleware_errors(names, options, entry="app:r", field="m", options_field="o", post=post)
    assert all(isinstance(e, DefinitionError) and e.entry == "app:r" for e in errors)
    try:
        built = build_chain(names, options, deps=DEPS, post=post)
    except DefinitionError:
        assert errors
    else:
        assert not errors and len(built) == len(names)


# -- metrics and otel -----------------------------------------------------------------------------

async def test_metrics_count_time_and_track_in_flight() -> None:
    telemetry = Telemetry()
    try:
        mw = chain(["metrics"], deps=MiddlewareDeps(registry=None, telemetry=telemetry))
        async with serve(mw) as url, aiohttp.ClientSession() as s:
            for path in ("/x", "/x", "/missing"):
                await fetch(s, "GET", url + path)
        got = telemetry.read()
        counts = {(p["labels"]["status"], p["labels"]["endpoint"]): p["value"]
                  for p in got["wippy_http_requests_total"]}
        assert counts == {("200", "app:ep"): 2, ("404", "app:ep"): 1}
        assert sum(p["count"] for p in got["wippy_http_request_duration_seconds"]) == 3
        assert got["wippy_http_requests_in_flight"] == [{"labels": {"router": "app:api"}, "value": 0.0}]
    finally:
        telemetry.close()
    async with serve(chain(["metrics"])) as url, aiohttp.ClientSession() as s:  # no telemetry: a no-op
        assert (await fetch(s, "GET", url + "/x"))[0] == 200


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


async def test_otel_continues_the_callers_trace(spans: InMemorySpanExporter) -> None:
    seen: list[Any] = []

    async def inner(request: web.BaseRequest) -> web.StreamResponse:
        seen.append(trace.get_current_span().get_span_context())
        return await echo(request)

    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    async with serve(chain(["otel"]), inner=inner) as url, aiohttp.ClientSession() as s:
        await fetch(s, "GET", url + "/x", headers={"traceparent": f"00-{trace_id}-{parent}-01"})
        await fetch(s, "GET", url + "/missing")
    mine = [sp for sp in spans.get_finished_spans() if sp.name.startswith("GET app:ep")]
    assert len(mine) == 2
    first, second = mine
    assert first.kind == trace.SpanKind.SERVER
    assert f"{first.context.trace_id:032x}" == trace_id and f"{first.parent.span_id:016x}" == parent
    assert first.attributes["http.response.status_code"] == 200 and first.attributes["url.path"] == "/x"
    assert seen[0].span_id == first.context.span_id  # the handler runs inside the span
    assert second.parent is None and second.attributes["http.response.status_code"] == 404
    assert second.status.status_code == trace.StatusCode.UNSET  # a 404 is not a server error


async def test_relays_pass_through() -> None:
    async with serve((), chain(["websocket_relay", "sse_relay"], {"sserelay.allowed.origins": "*.example.com"},
                               post=True)) as url, aiohttp.ClientSession() as s:
        assert (await fetch(s, "GET", url + "/x"))[0] == 200
