"""The HTTP API the native ``wippy/views`` component brings, on a real node over real HTTP.

The app declares the component with its ``api_router`` parameter; the runtime's bundle then mounts
Wippy's view endpoints on that router (``/pages/list``, ``/pages/routes``, ``/pages/content/{id}``,
``/pages/public/{id}``, ``/components/list``, ``/components/by-tag/{tag}``), answering with
Wippy's JSON shapes and status codes. Without the parameter the app still runs, without them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from wippy.core import load_app
from wippy.services import Node, RuntimeSettings, StateDir

HEAD = """version: "1.0"
namespace: shop
entries:
  - {name: web, kind: http.service, addr: "127.0.0.1:0", lifecycle: {auto_start: true}}
  - {name: api, kind: http.router, meta: {server: shop:web}, prefix: /api/public}
  - {name: ping, kind: function.lua, method: handler, modules: [http],
     source: 'return {handler = function() require("http").response():write("pong") end}'}
  - {name: ping.ep, kind: http.endpoint, meta: {router: shop:api}, method: GET, path: /ping, func: shop:ping}
"""

DEPENDENCY = """
  - name: views
    kind: ns.dependency
    component: wippy/views
    version: "*"
    parameters:
      - {name: api_router, value: shop:api}
"""

DEPENDENCY_WITHOUT_ROUTER = """
  - {name: views, kind: ns.dependency, component: wippy/views, version: "*"}
"""

PAGES = """
  - {name: consts, kind: env.storage.static, values: {PUBLIC_API_URL: "https://shop.test"}}
  - {name: public_api_url, kind: env.variable, storage: shop:consts, variable: PUBLIC_API_URL}
  - {name: pages, kind: template.set}
  - name: home
    kind: template.jet
    set: shop:pages
    meta: {type: view.page, name: home, title: Home, announced: true, order: 2, icon: house,
           group: Shop, group_order: 1, group_icon: cart}
    data_func: home_data
    source: "<h1>{{ data.title }}</h1><p>{{ route_params.id }}|{{ query_params.q }}</p>"
  - name: about
    kind: template.jet
    set: shop:pages
    meta: {type: view.page, title: About, announced: true, order: 1, group: Shop, group_order: 1,
           content_type: text/plain, inline: true}
    source: "About us"
  - name: help
    kind: template.jet
    set: shop:pages
    meta: {type: view.page, title: Help, public: true}
    source: "Help"
  - name: hidden
    kind: template.jet
    set: shop:pages
    meta: {type: view.page, title: Hidden, mountRoute: "/hidden/:part(.*)*"}
    source: "Hidden"
  - name: admin
    kind: template.jet
    set: shop:pages
    meta: {type: view.page, title: Admin, announced: true, secure: true, mountRoute: "/admin/:part(.*)*"}
    source: "Admin"
  - name: broken
    kind: template.jet
    set: shop:pages
    meta: {type: view.page, title: Broken}
    data_func: explode
    source: "{{ data.never }}"
  - name: gallery
    kind: registry.entry
    meta: {type: view.page, title: Gallery, announced: true, group: Media, group_order: 0, url: /apps/gallery,
           base_path: dist, entry_point: app.html, config_overrides: {theme: dark},
           mountRoute: "/gallery/:part(.*)*"}
  - name: home_data
    kind: function.lua
    method: load
    source: |
      return {load = function() return {title = "Shop home"} end}
  - name: explode
    kind: function.lua
    method: load
    source: |
      return {load = function() error("stock database is down") end}

  - {name: badge, kind: registry.entry,
     meta: {type: view.component, name: badge, title: Badge, description: A small badge, tag_name: shop-badge,
            url: /c/badge, entry_point: badge.js, auto_register: true, announced: true,
            props: {label: {type: string}}, events: [clicked]}}
  - {name: cart, kind: registry.entry,
     meta: {type: view.component, name: cart, tag_name: shop-cart, url: "https://cdn.test/cart", announced: true}}
  - {name: vault, kind: registry.entry,
     meta: {type: view.component, name: vault, tag_name: shop-vault, url: /c/vault, announced: true, secure: true}}
  - {name: draft, kind: registry.entry,
     meta: {type: view.component, name: draft, tag_name: shop-draft, url: /c/draft}}
"""

CLASHING_ROUTES = """
  - {name: one, kind: registry.entry, meta: {type: view.page, url: /a, mountRoute: "/x/:part(.*)*"}}
  - {name: two, kind: registry.entry, meta: {type: view.page, url: /b, mountRoute: "/x/:part(.*)*"}}
  - {name: bad, kind: registry.entry, meta: {type: view.page, url: /c, mountRoute: "/Bad"}}
"""


def write_app(root: Path, text: str) -> Path:
    app = root / "shop"
    (app / "src").mkdir(parents=True)
    (app / "src" / "_index.yaml").write_text(text)
    return app


@asynccontextmanager
async def serve(app: Path, nats_url: str, namespace: str, state_dir: Path) -> AsyncIterator[str]:
    """The app on a node of its own; yields the base URL of the view API's router."""
    settings = RuntimeSettings(state_dir=state_dir, nats_url=nats_url, namespace=namespace, node="n1",
                               app_dir=app)
    state = StateDir(settings.state_dir)
    assert state.try_own()
    try:
        async with Node(settings, state) as node:
            await node.registry.apply_files(app)
            await node.start_services()
            assert node.http is not None
            yield f"http://127.0.0.1:{node.http.port('shop:web')}/api/public"
    finally:
        state.release()


@pytest.fixture
async def shop(nats_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[str]:
    app = write_app(tmp_path, HEAD + DEPENDENCY + PAGES)
    async with serve(app, nats_url, namespace, tmp_path / "state") as url:
        yield url


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as r:
        if r.content_type == "application/json":
            return r.status, await r.json()
        return r.status, (r.content_type, await r.text())


def test_the_bundle_is_linked_to_the_apps_router(tmp_path: Path) -> None:
    loaded = load_app(write_app(tmp_path, HEAD + DEPENDENCY + PAGES))
    entries = {e.entry.id: e.entry for e in loaded.entries}
    assert entries["wippy.views.api:list_pages.endpoint"].meta["router"] == "shop:api"
    assert entries["wippy.views.api:find_by_tag.endpoint"].data["path"] == "/components/by-tag/{tag}"
    assert dict(loaded.native_dependencies)["wippy/views"] == {"api_router": "shop:api"}
    assert loaded.warnings == ()


async def test_pages_list_has_the_announced_pages_the_caller_may_see(shop: str) -> None:
    async with aiohttp.ClientSession() as s:
        status, out = await get(s, f"{shop}/pages/list")
    assert status == 200 and out["success"] is True
    # groups by groupOrder (Media 0, Shop 1, then the ungrouped help), inside a group by order;
    # the secure admin page is left out without an actor, the unannounced ones always
    assert [p["id"] for p in out["pages"]] == ["shop:gallery", "shop:about", "shop:home", "shop:help"]
    assert out["count"] == 4
    home = out["pages"][2]
    assert home == {
        "id": "shop:home", "name": "home", "title": "Home", "icon": "house", "order": 2, "placement": "default",
        "group": "Shop", "groupIcon": "cart", "groupOrder": 1, "groupPlacement": "default", "secure": False,
        "announced": True, "internal": "", "hidden": 0,
    }
    about, gallery, help_ = out["pages"][1], out["pages"][0], out["pages"][3]
    assert about["hidden"] == 1 and about["name"] == ""
    assert gallery["configOverrides"] == {"theme": "dark"} and gallery["mountRoute"] == "/gallery/:part(.*)*"
    assert (help_["order"], help_["groupOrder"], help_["announced"]) == (9999, 9999, True)


async def test_pages_routes_maps_mount_routes_to_visible_pages(shop: str) -> None:
    async with aiohttp.ClientSession() as s:
        status, out = await get(s, f"{shop}/pages/routes")
    # the hidden page keeps its URL; the secure admin page's route is not shown without access
    assert status == 200
    assert out == {"success": True, "count": 2,
                   "routes": {"/gallery/:part(.*)*": "shop:gallery", "/hidden/:part(.*)*": "shop:hidden"}}


async def test_pages_routes_fails_on_bad_or_clashing_mount_routes(
    nats_url: str, namespace: str, tmp_path: Path
) -> None:
    app = write_app(tmp_path, HEAD + DEPENDENCY + CLASHING_ROUTES)
    async with serve(app, nats_url, namespace, tmp_path / "state") as url, aiohttp.ClientSession() as s:
        status, out = await get(s, f"{url}/pages/routes")
    assert status == 500 and out["success"] is False
    problems = out["error"].split("\n")
    assert len(problems) == 2
    assert any('has invalid mountRoute "/Bad"' in p for p in problems)
    assert any('both claim "/x/:part(.*)*"' in p for p in problems)


async def test_pages_content_renders_a_template_page(shop: str) -> None:
    async with aiohttp.ClientSession() as s:
        status, (content_type, text) = await get(s, f"{shop}/pages/content/shop:home?q=fresh")
        assert status == 200 and content_type == "text/html"
        assert text == "<h1>Shop home</h1><p>shop:home|fresh</p>"
        status, (content_type, text) = await get(s, f"{shop}/pages/content/shop:about")
        assert (status, content_type, text) == (200, "text/plain", "About us")


async def test_pages_content_describes_a_component_page(shop: str) -> None:
    async with aiohttp.ClientSession() as s:
        status, out = await get(s, f"{shop}/pages/content/shop:gallery")
    assert status == 200
    assert out == {
        "name": "shop:gallery", "version": "1.0.0", "specification": "wippy-component-1.0", "title": "Gallery",
        "baseUrl": "https://shop.test/apps/gallery/dist/",
        "wippy": {"type": "page", "path": "app.html", "proxy": {"enabled": True},
                  "configOverrides": {"theme": "dark"}},
    }


async def test_pages_content_errors(shop: str) -> None:
    async with aiohttp.ClientSession() as s:
        status, out = await get(s, f"{shop}/pages/content/shop:nope")
        assert status == 404 and out["success"] is False and out["error"] == "Page not found"
        assert out["details"].startswith("Page not found: ")
        status, out = await get(s, f"{shop}/pages/content/shop:badge")
        assert status == 200 and out["wippy"]["type"] == "page"  # a view.component loads as a page too
        status, out = await get(s, f"{shop}/pages/content/shop:web")
        assert (status, out["error"], out["details"]) == (404, "Page not found", "Invalid page type for ID: shop:web")
        status, out = await get(s, f"{shop}/pages/content/shop:admin")
        assert (status, out) == (401, {"success": False, "error": "Access denied",
                                       "details": "You do not have permission to view this page"})
        status, out = await get(s, f"{shop}/pages/content/shop:broken")
        assert status == 500 and out["error"] == "Failed to render page"
        assert out["details"].startswith("Failed to get page data from 'shop:explode': ")
        assert "stock database is down" in out["details"]


async def test_pages_public_gives_the_base_url(shop: str) -> None:
    async with aiohttp.ClientSession() as s:
        assert await get(s, f"{shop}/pages/public/shop:gallery") == (
            200, {"baseUrl": "https://shop.test/apps/gallery/dist/"})
        assert await get(s, f"{shop}/pages/public/shop:home") == (200, {"baseUrl": ""})
        assert await get(s, f"{shop}/pages/public/shop:nope") == (404, {"error": "Page not found"})
        assert await get(s, f"{shop}/pages/public/shop:admin") == (401, {"error": "Access denied"})


async def test_components_list_has_the_announced_components_the_caller_may_use(shop: str) -> None:
    async with aiohttp.ClientSession() as s:
        status, out = await get(s, f"{shop}/components/list")
        _, auto = await get(s, f"{shop}/components/list?auto_register=true")
    assert status == 200 and out["success"] is True and out["count"] == 2
    badge, cart = out["components"]
    assert badge == {
        "id": "shop:badge", "name": "badge", "version": "1.0.0", "specification": "wippy-component-1.0",
        "title": "Badge", "description": "A small badge", "baseUrl": "https://shop.test/c/badge/",
        "browser": "badge.js",
        "wippy": {"tagName": "shop-badge", "type": "widget", "props": {"label": {"type": "string"}},
                  "events": ["clicked"], "autoRegister": True},
    }
    assert (cart["title"], cart["baseUrl"], cart["browser"], cart["wippy"]["autoRegister"]) == (
        "", "https://cdn.test/cart/", "index.js", False)
    assert "description" not in cart
    assert auto["count"] == 1 and [c["id"] for c in auto["components"]] == ["shop:badge"]


async def test_components_by_tag(shop: str) -> None:
    async with aiohttp.ClientSession() as s:
        status, out = await get(s, f"{shop}/components/by-tag/shop-cart")
        assert status == 200 and out["success"] is True and out["component"]["id"] == "shop:cart"
        assert await get(s, f"{shop}/components/by-tag/shop-none") == (
            404, {"success": False, "error": "No view.component registered for tag: shop-none"})
        assert await get(s, f"{shop}/components/by-tag/shop-draft") == (
            404, {"success": False, "error": "Component is not announced"})
        assert await get(s, f"{shop}/components/by-tag/shop-vault") == (
            403, {"success": False, "error": "Access denied"})


async def test_without_an_api_router_the_app_runs_without_the_api(
    nats_url: str, namespace: str, tmp_path: Path
) -> None:
    app = write_app(tmp_path, HEAD + DEPENDENCY_WITHOUT_ROUTER + PAGES)
    loaded = load_app(app)
    ids = {e.entry.id for e in loaded.entries}
    assert "wippy.views.api:list_pages.endpoint" not in ids and "wippy.views.api:list_pages" in ids
    not_provided, left_out = loaded.warnings
    assert "requirement wippy.views:api_router is not provided" in not_provided
    assert "leaves out what wippy.views:api_router would wire: wippy.views.api:find_by_tag.endpoint" in left_out
    async with serve(app, nats_url, namespace, tmp_path / "state") as url, aiohttp.ClientSession() as s:
        async with s.get(f"{url}/ping") as r:
            assert r.status == 200 and await r.text() == "pong"
        async with s.get(f"{url}/pages/list") as r:
            assert r.status == 404
