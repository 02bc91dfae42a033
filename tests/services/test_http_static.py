"""Static sites over real HTTP on loopback: files, indexes, SPA fallback, caching, a root that no
request path leaves, and roots that follow the fs.directory rules (env placeholders, auto_init)."""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from wippy.core import Changeset, DefinitionError, Entry, Op
from wippy.services import Node, RuntimeSettings, StateDir
from wippy.services._http_middleware import Middleware, MiddlewareDeps, build_chain, compose
from wippy.services._http_static import StaticSite, mount_path, resolve_under, static_errors, static_volume

JS = "console.log('hello');\n" * 400


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    """public/ (served) next to a secret file and directory that must never be served."""
    root = tmp_path / "public"
    (root / "css").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "empty").mkdir()
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "app.js").write_text(JS)
    (root / "logo.png").write_bytes(b"\x89PNG" + b"\0" * 4000)
    (root / "css" / "style.css").write_text("body{}")
    (root / "docs" / "index.html").write_text("<h1>docs</h1>")
    (root / "docs" / "a page.html").write_text("spaced")
    (tmp_path / "secret.txt").write_text("top secret")
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "index.html").write_text("private index")
    os.symlink(tmp_path / "secret.txt", root / "leak.txt")
    os.symlink(tmp_path / "private", root / "outside")
    os.symlink(root / "css" / "style.css", root / "alias.css")
    os.symlink(root / "loop", root / "loop")
    return root


def static(path: str = "/", **data: Any) -> Entry:
    return Entry("app:site", "http.static", {"server": "app:gw"}, {"path": path, "directory": "./public", **data})


def _under(path: str, mount: str) -> str | None:
    if mount == "/":
        return path[1:]
    if path == mount:
        return ""
    return path[len(mount) + 1:] if path.startswith(mount + "/") else None


@asynccontextmanager
async def serve(site: StaticSite, pre: Sequence[Middleware] = ()) -> AsyncIterator[str]:
    async def inner(request: web.BaseRequest) -> web.StreamResponse:
        rel = _under(request.path, site.mount)
        if rel is None:
            return web.Response(status=418)
        return await site.handle(request, rel)

    handler = compose(list(pre), inner)
    runner = web.ServerRunner(web.Server(handler))
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def fetch(session: aiohttp.ClientSession, method: str, url: str | URL,
                **kw: Any) -> tuple[int, Any, bytes]:
    async with session.request(method, url, allow_redirects=False, **kw) as r:
        return r.status, r.headers, await r.read()


async def test_files_indexes_and_errors(site_dir: Path) -> None:
    site = StaticSite(static("/static/", static_options={"index": "index.html", "cache": "public, max-age=60"}),
                      root=site_dir)
    assert site.mount == "/static"
    async with serve(site) as url, aiohttp.ClientSession() as s:
        status, h, body = await fetch(s, "GET", url + "/static/css/style.css")
        assert (status, body) == (200, b"body{}") and h["Content-Type"].startswith("text/css")
        assert h["Cache-Control"] == "public, max-age=60" and "ETag" in h and "Last-Modified" in h
        status, h, body = await fetch(s, "HEAD", url + "/static/app.js")
        assert status == 200 and body == b"" and int(h["Content-Length"]) == len(JS)
        assert (await fetch(s, "GET", url + "/static/docs/a%20page.html"))[2] == b"spaced"
        # directories: the index, after a redirect that adds the slash; no listings
        status, h, _ = await fetch(s, "GET", url + "/static/docs?x=1")
        assert status == 301 and h["Location"] == "/static/docs/?x=1"
        assert (await fetch(s, "GET", url + "/static/docs/"))[2] == b"<h1>docs</h1>"
        assert (await fetch(s, "GET", url + "/static"))[0] == 301
        assert (await fetch(s, "GET", url + "/static/"))[2] == b"<h1>home</h1>"
        status, h, body = await fetch(s, "GET", url + "/static/empty/")
        assert (status, body) == (404, b'{"error":"not found"}') and h["Content-Type"] == "application/json"
        assert (await fetch(s, "GET", url + "/static/nope.js"))[0] == 404
        status, h, body = await fetch(s, "POST", url + "/static/app.js")
        assert status == 405 and h["Allow"] == "GET, HEAD" and b"POST is not allowed" in body
        # symlinks inside the root are followed; ones pointing outside are not there
        assert (await fetch(s, "GET", url + "/static/alias.css"))[2] == b"body{}"
        for path in ("leak.txt", "outside/index.html", "outside/", "loop", "%2e%2e/secret.txt",
                     "docs/%2e%2e/%2e%2e/secret.txt", "..%2fsecret.txt", "css%00.css", "..%5csecret.txt"):
            status, _, body = await fetch(s, "GET", URL(url + "/static/" + path, encoded=True))
            assert status == 404 and b"secret" not in body and b"private" not in body, path


async def test_caching_and_ranges(site_dir: Path) -> None:
    site = StaticSite(static(), root=site_dir)
    async with serve(site) as url, aiohttp.ClientSession() as s:
        status, h, _ = await fetch(s, "GET", url + "/app.js")
        assert status == 200 and "Cache-Control" not in h
        etag, modified = h["ETag"], h["Last-Modified"]
        assert (await fetch(s, "GET", url + "/app.js", headers={"If-None-Match": etag}))[0] == 304
        assert (await fetch(s, "GET", url + "/app.js", headers={"If-Modified-Since": modified}))[0] == 304
        status, h, body = await fetch(s, "GET", url + "/app.js", headers={"Range": "bytes=0-6"})
        assert (status, body) == (206, b"console") and h["Content-Range"] == f"bytes 0-6/{len(JS)}"
        assert (await fetch(s, "GET", url + "/"))[0] == 404  # no index configured, no listing


async def test_spa_fallback_and_legacy_options(site_dir: Path) -> None:
    for data in ({"static_options": {"spa": True, "index": "index.html"}},
                 {"options": {"spa": "true", "index": "index.html"}}):  # how older apps say it
        site = StaticSite(static(**data), root=site_dir)
        async with serve(site) as url, aiohttp.ClientSession() as s:
            assert (await fetch(s, "GET", url + "/users/123"))[2] == b"<h1>home</h1>"
            assert (await fetch(s, "GET", url + "/empty/"))[2] == b"<h1>home</h1>"
            assert (await fetch(s, "GET", url + "/app.js"))[2] == JS.encode()  # files win
            assert (await fetch(s, "GET", url + "/docs/"))[2] == b"<h1>docs</h1>"
            status, _, body = await fetch(s, "GET", URL(url + "/%2e%2e/secret.txt", encoded=True))
            assert status == 200 and body == b"<h1>home</h1>"
            assert (await fetch(s, "DELETE", url + "/users/123"))[0] == 405


async def test_compress_and_cors_wrap_a_site(site_dir: Path) -> None:
    site = StaticSite(static(), root=site_dir)
    pre = build_chain(["cors", "compress"], {"cors.allow.origins": "*", "compress.level": "best"},
                      deps=MiddlewareDeps(registry=None), post=False)
    async with serve(site, pre) as url, aiohttp.ClientSession(auto_decompress=False) as s:
        status, h, body = await fetch(s, "GET", url + "/app.js",
                                      headers={"Accept-Encoding": "gzip", "Origin": "https://x.io"})
        assert status == 200 and h["Content-Encoding"] == "gzip" and gzip.decompress(body).decode() == JS
        assert h["Access-Control-Allow-Origin"] == "*"
        for headers in ({"Accept-Encoding": "gzip", "Range": "bytes=0-6"}, {"Accept-Encoding": "identity"}):
            _, h, _ = await fetch(s, "GET", url + "/app.js", headers=headers)
            assert "Content-Encoding" not in h
        _, h, _ = await fetch(s, "GET", url + "/logo.png", headers={"Accept-Encoding": "gzip"})
        assert "Content-Encoding" not in h
        # bodiless answers stay uncompressed (and the kept-alive connection stays usable after them)
        etag = h["ETag"]
        status, h, body = await fetch(s, "GET", url + "/logo.png", headers={"Accept-Encoding": "gzip",
                                                                             "If-None-Match": etag})
        assert (status, body) == (304, b"")
        status, h, body = await fetch(s, "HEAD", url + "/app.js", headers={"Accept-Encoding": "gzip"})
        assert (status, body) == (200, b"") and "Content-Encoding" not in h
        assert (await fetch(s, "GET", url + "/app.js", headers={"Accept-Encoding": "gzip"}))[0] == 200


# -- roots from fs.directory volumes, on a real node ------------------------------------------------

GATEWAY = Entry("app:gw", "http.service", {}, {"addr": "127.0.0.1:0", "lifecycle": {"auto_start": True}})
OS_ENV = Entry("app:os", "env.storage.os", {}, {})
SITE_DIR = Entry("app:site_dir", "env.variable", {}, {"storage": "app:os", "variable": "SITE_DIR"})


def volume(**data: Any) -> Entry:
    return Entry("app:files", "fs.directory", {}, data)


def site_over_volume(**options: Any) -> Entry:
    return Entry("app:site", "http.static", {"server": "app:gw"},
                 {"path": "/", "fs": "app:files", "static_options": {"index": "index.html", **options}})


@asynccontextmanager
async def node_serving(nats_url: str, namespace: str, app_dir: Path, *entries: Entry,
                       environ: dict[str, str] | None = None) -> AsyncIterator[str]:
    """A node (app directory ``app_dir``, OS environment ``environ``) serving ``entries``; its URL."""
    settings = RuntimeSettings(state_dir=app_dir / "state", nats_url=nats_url, namespace=namespace, node="n1",
                               app_dir=app_dir, environ=environ or {})
    state = StateDir(settings.state_dir)
    assert state.try_own()
    try:
        async with Node(settings, state) as node:
            await node.registry.apply(Changeset(ops=tuple(Op("create", e.id, e) for e in (GATEWAY, *entries))))
            assert node.http is not None and await node.http.start() == ["app:gw"]
            yield f"http://127.0.0.1:{node.http.port('app:gw')}"
    finally:
        state.release()


async def test_a_site_over_a_volume_whose_directory_is_an_env_placeholder(
        nats_url: str, namespace: str, site_dir: Path, tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    entries = (OS_ENV, SITE_DIR, volume(directory="${env:SITE_DIR}"), site_over_volume())
    async with (node_serving(nats_url, namespace, app_dir, *entries, environ={"SITE_DIR": str(site_dir)}) as url,
                aiohttp.ClientSession() as s):
        assert (await fetch(s, "GET", url + "/"))[2] == b"<h1>home</h1>"
        assert (await fetch(s, "GET", url + "/css/style.css"))[2] == b"body{}"
        for path in ("leak.txt", "outside/index.html", "%2e%2e/secret.txt"):  # still confined to the root
            status, _, body = await fetch(s, "GET", URL(url + "/" + path, encoded=True))
            assert status == 404 and b"secret" not in body and b"private" not in body, path


async def test_auto_init_creates_a_missing_directory_under_the_app_directory(
        nats_url: str, namespace: str, tmp_path: Path) -> None:
    www = tmp_path / "site" / "www"
    async with (node_serving(nats_url, namespace, tmp_path, volume(directory="site/www", auto_init=True),
                             site_over_volume()) as url,
                aiohttp.ClientSession() as s):
        assert www.is_dir()
        assert (await fetch(s, "GET", url + "/"))[0] == 404  # empty until files arrive
        (www / "index.html").write_text("<h1>fresh</h1>")
        assert (await fetch(s, "GET", url + "/"))[2] == b"<h1>fresh</h1>"


async def test_a_missing_directory_without_auto_init_is_logged_and_served_once_it_exists(
        nats_url: str, namespace: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    later = tmp_path / "later"
    with caplog.at_level(logging.WARNING, logger="wippy.http"):
        async with (node_serving(nats_url, namespace, tmp_path, volume(directory="later"), site_over_volume()) as url,
                    aiohttp.ClientSession() as s):
            assert not later.exists() and (await fetch(s, "GET", url + "/"))[0] == 404
            later.mkdir()
            (later / "index.html").write_text("<h1>late</h1>")
            assert (await fetch(s, "GET", url + "/"))[2] == b"<h1>late</h1>"
    assert any("app:site" in r.getMessage() and "auto_init: true creates it" in r.getMessage()
               for r in caplog.records), caplog.records


def test_a_volume_the_site_cannot_use_is_named(tmp_path: Path) -> None:
    site = site_over_volume()
    with pytest.raises(DefinitionError, match="app:files, which does not exist") as info:
        static_volume(site, {}, env=None, base_dir=tmp_path)
    assert (info.value.entry, info.value.field) == ("app:site", "fs")
    other = Entry("app:files", "fs.embed", {}, {})
    with pytest.raises(DefinitionError, match=r"a fs\.embed, not an fs\.directory"):
        static_volume(site, {"app:files": other}, env=None, base_dir=tmp_path)
    # without a volume, the site's own directory follows the same rules: relative to the app directory
    own = static_volume(static(), {}, env=None, base_dir=tmp_path)
    assert own.root == tmp_path / "public" and not own.spec.auto_init


# -- definitions ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "field", "words"), [
    ({"path": "static"}, "path", "starting with '/'"),
    ({"path": "/a/../b"}, "path", "plain URL path"),
    ({"directory": None, "fs": None}, "fs", "is required"),
    ({"fs": 3}, "fs", "fs.directory"),
    ({"static_options": ["spa"]}, "static_options", "mapping"),
    ({"static_options": {"spa": True}}, "static_options.index", "required when spa"),
    ({"static_options": {"spa": "maybe", "index": "i.html"}}, "static_options.spa", "true or false"),
    ({"static_options": {"index": "../index.html"}}, "static_options.index", "inside the served directory"),
    ({"options": {"index": 5}}, "options.index", "file name"),
    ({"static_options": {"cache": "public\r\nSet-Cookie: x"}}, "static_options.cache", "Cache-Control"),
])
def test_bad_definitions_name_the_field(data: dict[str, Any], field: str, words: str) -> None:
    entry = static(**data)
    errors = static_errors(Entry(entry.id, entry.kind, entry.meta,
                                 {k: v for k, v in entry.data.items() if v is not None}))
    assert [(e.entry, e.field) for e in errors] == [("app:site", field)], errors
    assert words in errors[0].reason


def test_good_definitions() -> None:
    assert static_errors(static(static_options={"spa": True, "index": "app/index.html", "cache": "no-cache"})) == []
    assert static_errors(Entry("app:s", "http.static", {"server": "app:gw"}, {"path": "/", "fs": "app:files"})) == []
    assert static_errors(Entry("app:s", "http.static", {}, {"path": "/", "fs": "app:f"}))[0].field == "meta.server"
    with pytest.raises(DefinitionError, match=r"static_options\.index"):
        StaticSite(static(static_options={"spa": True}), root=Path("/nonexistent"))
    assert [mount_path(p) for p in ("/", "//", "/static/", "/a/b")] == ["/", "/", "/static", "/a/b"]


# -- no path leaves the root ----------------------------------------------------------------------

_segment = st.one_of(st.sampled_from(["..", ".", "", "css", "docs", "leak.txt", "outside", "alias.css", "loop",
                                      "index.html", "...", "..\\..", "%2e%2e", "\0"]),
                     st.text(max_size=12))


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(_segment, max_size=8), lead=st.sampled_from(["", "/", "//"]))
def test_no_relative_path_resolves_outside_the_root(site_dir: Path, parts: list[str], lead: str) -> None:
    root = site_dir.resolve()
    found = resolve_under(root, lead + "/".join(parts))
    if found is not None:
        assert found.is_relative_to(root)
        assert found == found.resolve()  # what was checked is what would be served
        assert not found.is_relative_to(site_dir.parent / "private")
        assert found != (site_dir.parent / "secret.txt").resolve()
