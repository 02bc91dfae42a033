"""The native ``wippy/views`` component in a small shop app on a real node, over real HTTP.

The app declares the component with an ``ns.dependency`` (and its ``api_router`` parameter), keeps
Jet pages in a template set with a data function, view resources and env mappings in the
registry, and serves handlers that call the renderer, the page registry, the resource registry
and the env loader. Bad input must give Wippy's error strings.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wippy.core import load_app
from wippy.services import Node, RuntimeSettings, StateDir

APP = """version: "1.0"
namespace: shop
entries:
  - {name: web, kind: http.service, addr: "127.0.0.1:0", lifecycle: {auto_start: true}}
  - {name: api, kind: http.router, meta: {server: shop:web}}
  - name: views
    kind: ns.dependency
    component: wippy/views
    version: "*"
    parameters:
      - {name: api_router, value: shop:api}

  # env: two mappings, the higher priority one wins "shop"; NOT_SET has no value
  - {name: consts, kind: env.storage.static,
     values: {SHOP_NAME: "Corner Shop", SHOP_TAGLINE: "Fresh daily", SHOP_CDN: "https://cdn.test",
              PUBLIC_API_URL: "https://shop.test"}}
  - {name: public_api_url, kind: env.variable, storage: shop:consts, variable: PUBLIC_API_URL}
  - {name: shop_name, kind: env.variable, storage: shop:consts, variable: SHOP_NAME}
  - {name: shop_tagline, kind: env.variable, storage: shop:consts, variable: SHOP_TAGLINE}
  - {name: shop_cdn, kind: env.variable, storage: shop:consts, variable: SHOP_CDN}
  - name: env_base
    kind: registry.entry
    meta: {type: view.env_mapping, priority: 5}
    mappings: {shop: SHOP_NAME, cdn: SHOP_CDN, missing: NOT_SET}
  - name: env_app
    kind: registry.entry
    meta: {type: view.env_mapping, priority: 25}
    mappings: {shop: SHOP_TAGLINE}

  # resources: global, per template set, per page, and one for another set
  - {name: base_css, kind: registry.entry,
     meta: {type: view.resource, resource_type: style, order: 2, global: true, url: /s/base.css}}
  - {name: theme_css, kind: registry.entry,
     meta: {type: view.resource, resource_type: style, order: 1, template_set: shop:pages, url: /s/theme.css}}
  - {name: app_js, kind: registry.entry,
     meta: {type: view.resource, resource_type: script, template_set: shop:pages, url: /s/app.js, defer: true}}
  - {name: chart_js, kind: registry.entry,
     meta: {type: view.resource, resource_type: script, order: 5, url: /s/chart.js, defer: false}}
  - {name: print_css, kind: registry.entry,
     meta: {type: view.resource, resource_type: style, template_set: shop:elsewhere, url: /s/print.css}}
  - {name: font, kind: registry.entry, meta: {type: view.resource, global: true, url: /s/font.woff2}}

  # pages
  - {name: pages, kind: template.set}
  - name: layout
    kind: template.jet
    set: shop:pages
    source: |
      <html><head><title>{{ yield title() }}</title>
      {{ range resources.style }}<link rel="stylesheet" href="{{ .url }}">
      {{ end }}</head><body>{{ yield body() }}
      {{ range resources.script }}<script src="{{ .url }}"{{ if .defer }} defer{{ end }}></script>
      {{ end }}</body></html>
  - name: home
    kind: template.jet
    set: shop:pages
    meta: {type: view.page, title: Home, order: 1, icon: house, group: main}
    data_func: home_data
    resources: [chart_js]
    source: |
      {{ extends "layout" }}
      {{ block title() }}{{ data.title }}{{ end }}
      {{ block body() }}<h1>{{ env.shop }}</h1><p id="cdn">{{ env.cdn }}</p><p id="missing">{{ env.missing }}</p>
      <ul>{{ range data.items }}<li>{{ .name }}={{ .price }}</li>{{ end }}</ul>
      <p id="route">{{ route_params.name }}</p><p id="q">{{ data.q }}</p><p id="qp">{{ query_params.q }}</p>
      {{ end }}
  - name: about
    kind: template.jet
    set: shop:pages
    meta: {type: view.page, title: About, order: 2}
    source: |
      {{ extends "layout" }}{{ block title() }}About{{ end }}{{ block body() }}<p>About us</p>{{ end }}
  - name: admin
    kind: template.jet
    set: shop:pages
    meta: {type: view.page, title: Admin, order: 3, secure: true}
    source: |
      {{ extends "layout" }}{{ block title() }}Admin{{ end }}{{ block body() }}<p>Stock levels</p>{{ end }}
  - name: broken
    kind: template.jet
    set: shop:pages
    meta: {type: view.page, title: Broken, order: 4}
    data_func: shop:explode
    source: "{{ data.never }}"
  - name: gallery
    kind: registry.entry
    meta: {type: view.page, title: Gallery, order: 2, url: /apps/gallery, base_path: dist,
           mountRoute: /gallery/:part(.*)*}

  - {name: cart, kind: registry.entry,
     meta: {type: view.component, name: cart, tag_name: shop-cart, url: /c/cart, secure: true}}
  - {name: badge, kind: registry.entry, meta: {type: view.component, name: badge, tag_name: shop-badge, url: /c/b}}

  - name: home_data
    kind: function.lua
    method: load
    source: |
      return {load = function(context)
        return {title = "Shop home", q = context.query.q,
                items = {{name = "apple", price = 3}, {name = "pear", price = 4}}}
      end}
  - name: explode
    kind: function.lua
    method: load
    source: |
      return {load = function() error("stock database is down") end}

  # who may see the secure page: viewers yes, guests no (both may read what rendering needs)
  - {name: read_views, kind: security.policy, groups: [shop:viewers, shop:guests],
     policy: {actions: [registry.get, registry.find, template.get, funcs.call, env.get], resources: "*"}}
  - {name: see_admin, kind: security.policy, groups: [shop:viewers],
     policy: {actions: view, resources: "page:shop:admin"}}

  # handlers
  - name: show
    kind: function.lua
    method: handler
    modules: [http]
    imports: {renderer: wippy.views:renderer}
    source: |
      local http, renderer = require("http"), require("renderer")
      return {handler = function()
        local req, res = http.request(), http.response()
        local content, err = renderer.render("shop:" .. req:param("name"), req:params(), req:query_params())
        if err then
          res:set_status(500)
          res:set_content_type("text/plain")
          return res:write(err)
        end
        res:set_content_type("text/html")
        res:write(content)
      end}
  - name: render_as
    kind: function.lua
    method: render
    imports: {renderer: wippy.views:renderer}
    source: |
      local renderer = require("renderer")
      return {render = function(page_id)
        local content, err = renderer.render(page_id, {}, {})
        return {content = content, error = err}
      end}
  - name: show_as
    kind: function.lua
    method: handler
    modules: [http, funcs, security]
    source: |
      local http, funcs, security = require("http"), require("funcs"), require("security")
      return {handler = function()
        local req, res = http.request(), http.response()
        local out, err = funcs.new():with_actor(security.new_actor("ann"))
          :with_scope(security.named_scope("shop:" .. req:param("group"))):call("shop:render_as", "shop:admin")
        res:write_json(out or {error = tostring(err)})
      end}
  - name: pages_api
    kind: function.lua
    method: handler
    modules: [http]
    imports: {page_registry: wippy.views:page_registry, resource_registry: wippy.views:resource_registry}
    source: |
      local http = require("http")
      local page_registry, resource_registry = require("page_registry"), require("resource_registry")
      return {handler = function()
        local req, res = http.request(), http.response()
        local name = req:param("name")
        if not name then
          local all, err = page_registry.find_all()
          local routes, routes_err = page_registry.find_mount_routes()
          return res:write_json({pages = all, error = err, routes = routes, routes_error = routes_err})
        end
        local page, err = page_registry.get(name:find(":") and name or "shop:" .. name)
        if err then
          res:set_status(404)
          return res:write_json({error = err})
        end
        local grouped = resource_registry.group_by_type(resource_registry.collect_for_page(page, page_registry))
        res:write_json({page = page, resources = grouped, can_access = page_registry.can_access(page),
                        base_url = page.url and page_registry.resolve_base_url(page) or nil})
      end}
  - name: components_api
    kind: function.lua
    method: handler
    modules: [http]
    imports: {component_registry: wippy.views:component_registry}
    source: |
      local http, components = require("http"), require("component_registry")
      return {handler = function()
        local all = components.find_all()
        local cart = components.find_by_tag_name("shop-cart")
        local _, no_tag = components.find_by_tag_name("shop-none")
        local _, not_component = components.get("shop:home")
        http.response():write_json({names = {all[1].name, all[2].name}, cart = cart, no_tag = no_tag,
                                    not_component = not_component, can_access = components.can_access(cart),
                                    base_url = components.resolve_base_url(cart)})
      end}
  - name: env_api
    kind: function.lua
    method: handler
    modules: [http, contract]
    imports: {env_loader: wippy.views:env_loader}
    source: |
      local http, contract, env_loader = require("http"), require("contract"), require("env_loader")
      return {handler = function()
        local res = http.response()
        local env_contract = assert(contract.get("wippy.views:env_contract"))
        local methods = {}
        for _, m in ipairs(env_contract:methods()) do table.insert(methods, m.name) end
        local _, open_err = env_contract:open("wippy.views:env_contract_binding")
        local context = env_loader.get_env_context()
        local resolved = env_loader.get_resolved_env()
        local ok, why = env_loader.validate_priority(15, "APPLICATION_MAPPINGS")
        res:write_json({context = context, resolved = resolved, valid = ok, why = why,
                        recommended = env_loader.get_recommended_priority("SYSTEM_OVERRIDES"),
                        contract = env_loader.contract_resolve_env_values({context = {n = "SHOP_NAME"}}),
                        contract_bad = env_loader.contract_resolve_env_values({}),
                        contract_methods = methods, binding_error = tostring(open_err)})
      end}
  - name: check
    kind: function.lua
    method: handler
    modules: [http]
    imports: {page_registry: wippy.views:page_registry, resource_registry: wippy.views:resource_registry,
              env_loader: wippy.views:env_loader}
    source: |
      local http = require("http")
      local page_registry, resource_registry = require("page_registry"), require("resource_registry")
      local env_loader = require("env_loader")
      return {handler = function()
        local req, res = http.request(), http.response()
        local body = req:body_json()
        local what = req:param("what")
        if what == "mount_routes" then
          local routes, issues = page_registry.validate_mount_routes(body.pages)
          return res:write_json({routes = routes, issues = issues})
        elseif what == "merge" then
          return res:write_json({context = env_loader.build_env_context(body.mappings)})
        end
        res:write_json({grouped = resource_registry.group_by_type(body.resources)})
      end}
  - {name: show.ep, kind: http.endpoint, meta: {router: shop:api}, method: GET, path: "/p/{name}", func: shop:show}
  - {name: show_as.ep, kind: http.endpoint, meta: {router: shop:api}, method: GET, path: "/as/{group}",
     func: shop:show_as}
  - {name: pages.ep, kind: http.endpoint, meta: {router: shop:api}, method: GET, path: /pages, func: shop:pages_api}
  - {name: page.ep, kind: http.endpoint, meta: {router: shop:api}, method: GET, path: "/pages/{name}",
     func: shop:pages_api}
  - {name: components.ep, kind: http.endpoint, meta: {router: shop:api}, method: GET, path: /components,
     func: shop:components_api}
  - {name: env.ep, kind: http.endpoint, meta: {router: shop:api}, method: GET, path: /env, func: shop:env_api}
  - {name: check.ep, kind: http.endpoint, meta: {router: shop:api}, method: POST, path: "/check/{what}",
     func: shop:check}
"""

# The runtime's registry error for an id it does not hold ends the "Page not found: " message.
_PAGE_NOT_FOUND = re.compile(r"^Failed to get page 'shop:nope': Page not found: .+")


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    app = tmp_path / "shop"
    (app / "src").mkdir(parents=True)
    (app / "src" / "_index.yaml").write_text(APP)
    return app


@pytest.fixture
async def shop(nats_url: str, namespace: str, tmp_path: Path, app_dir: Path) -> AsyncIterator[str]:
    settings_ = RuntimeSettings(state_dir=tmp_path / "state", nats_url=nats_url, namespace=namespace, node="n1",
                                app_dir=app_dir)
    state = StateDir(settings_.state_dir)
    assert state.try_own()
    try:
        async with Node(settings_, state) as node:
            await node.registry.apply_files(app_dir)
            await node.start_services()
            assert node.http is not None
            yield f"http://127.0.0.1:{node.http.port('shop:web')}"
    finally:
        state.release()


def test_the_dependency_is_native_and_its_parameter_accepted(app_dir: Path) -> None:
    loaded = load_app(app_dir)
    assert dict(loaded.native_dependencies)["wippy/views"] == {"api_router": "shop:api"}


async def test_a_page_renders_with_its_data_resources_and_env(shop: str) -> None:
    async with aiohttp.ClientSession() as s, s.get(f"{shop}/p/home", params={"q": "a<b"}) as r:
        text = await r.text()
        assert r.status == 200 and r.content_type == "text/html", text
    assert "<title>Shop home</title>" in text
    assert "<li>apple=3</li><li>pear=4</li>" in text
    # env: the priority-25 mapping wins "shop"; an unset variable is left out
    assert "<h1>Fresh daily</h1>" in text and '<p id="cdn">https://cdn.test</p>' in text
    assert '<p id="missing"></p>' in text
    # route and query params reach the template and the data function (escaped as HTML)
    assert '<p id="route">home</p>' in text
    assert '<p id="q">a&lt;b</p>' in text and '<p id="qp">a&lt;b</p>' in text
    # styles by order: the set's theme (1), the global base (2); the other set's print.css never
    assert re.findall(r'href="([^"]+)"', text) == ["/s/theme.css", "/s/base.css"]
    # scripts: the set's app.js (order 9999) after the page's own chart.js (order 5)
    assert re.findall(r'<script src="([^"]+)"( defer)?>', text) == [("/s/chart.js", ""), ("/s/app.js", " defer")]


async def test_a_page_without_data_func_and_one_without_its_resources(shop: str) -> None:
    async with aiohttp.ClientSession() as s, s.get(f"{shop}/p/about") as r:
        text = await r.text()
    assert r.status == 200 and "<title>About</title>" in text and "<p>About us</p>" in text
    assert "/s/chart.js" not in text and "/s/app.js" in text


async def test_bad_input_gives_wippys_errors(shop: str) -> None:
    async with aiohttp.ClientSession() as s:
        async def render(name: str) -> str:
            async with s.get(f"{shop}/p/{name}") as r:
                assert r.status == 500
                return await r.text()

        assert _PAGE_NOT_FOUND.match(await render("nope"))
        assert await render("web") == "Failed to get page 'shop:web': Invalid page type for ID: shop:web"
        assert await render("gallery") == "Page 'shop:gallery' has no template_set defined"
        broken = await render("broken")
        assert broken.startswith("Failed to get page data from 'shop:explode': ")
        assert "stock database is down" in broken
        # a secure page without an actor
        assert await render("admin") == "Access denied to page 'shop:admin'"


async def test_a_secure_page_renders_only_for_an_actor_allowed_to_view_it(shop: str) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{shop}/as/viewers") as r:
            out = await r.json()
        assert "error" not in out and "<p>Stock levels</p>" in out["content"]
        async with s.get(f"{shop}/as/guests") as r:
            assert await r.json() == {"error": "Access denied to page 'shop:admin'"}


async def test_the_page_registry_lists_gets_and_checks_access(shop: str) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{shop}/pages") as r:
            listed = await r.json()
        async with s.get(f"{shop}/pages/home") as r:
            home = await r.json()
        async with s.get(f"{shop}/pages/gallery") as r:
            gallery = await r.json()
        async with s.get(f"{shop}/pages/admin") as r:
            admin = await r.json()
        async with s.get(f"{shop}/pages/base_css") as r:
            assert r.status == 404 and await r.json() == {"error": "Invalid page type for ID: shop:base_css"}
        async with s.get(f"{shop}/pages/nope") as r:
            assert r.status == 404 and (await r.json())["error"].startswith("Page not found: ")

    # by order, then title (About and Gallery share order 2)
    assert [(p["id"], p["kind"]) for p in listed["pages"]] == [
        ("shop:home", "template"), ("shop:about", "template"), ("shop:gallery", "component"),
        ("shop:admin", "template"), ("shop:broken", "template")]
    assert listed["routes"] == {"/gallery/:part(.*)*": "shop:gallery"}
    first = listed["pages"][0]
    assert (first["title"], first["icon"], first["group"], first["group_placement"], first["secure"]) == (
        "Home", "house", "main", "default", False)
    assert "url" not in first and listed["pages"][2]["url"] == "/apps/gallery"

    page = home["page"]
    assert (page["template_set"], page["template_name"], page["data_func"], page["resources"]) == (
        "shop:pages", "home", "shop:home_data", ["shop:chart_js"])
    assert page["content_type"] == "text/html" and home["can_access"] is True
    assert {k: [r["id"] for r in v] for k, v in home["resources"].items()} == {
        "style": ["shop:theme_css", "shop:base_css"], "script": ["shop:chart_js", "shop:app_js"],
        "other": ["shop:font"]}
    font = home["resources"]["other"][0]
    assert (font["name"], font["order"], font["global"]) == ("", 9999, True)

    assert gallery["page"]["kind"] == "component" and gallery["base_url"] == "https://shop.test/apps/gallery/dist/"
    assert admin["page"]["secure"] is True and admin["can_access"] is False


async def test_the_component_registry_finds_components_by_tag(shop: str) -> None:
    async with aiohttp.ClientSession() as s, s.get(f"{shop}/components") as r:
        out = await r.json()
    assert out["names"] == ["badge", "cart"]
    cart = out["cart"]
    assert (cart["id"], cart["url"], cart["secure"], cart["auto_register"]) == ("shop:cart", "/c/cart", True, False)
    assert out["no_tag"] == "No view.component registered for tag: shop-none"
    assert out["not_component"] == "Invalid component type for ID: shop:home"
    assert out["can_access"] is False and out["base_url"] == "https://shop.test/c/cart/"


async def test_env_mappings_merge_by_priority_and_resolve(shop: str) -> None:
    async with aiohttp.ClientSession() as s, s.get(f"{shop}/env") as r:
        out = await r.json()
    assert out["context"] == {"shop": "SHOP_TAGLINE", "cdn": "SHOP_CDN", "missing": "NOT_SET"}
    assert out["resolved"] == {"shop": "Fresh daily", "cdn": "https://cdn.test"}
    assert out["valid"] is False and out["why"] == "Priority 15 outside APPLICATION_MAPPINGS range (20-29)"
    assert out["recommended"] == 10
    assert out["contract"] == {"success": True, "resolved": {"n": "Corner Shop"}}
    assert out["contract_bad"] == {"success": False, "error": "Missing required parameter: context"}
    # the env provider contract is declared; Wippy's binding of it to the library is not provided
    assert out["contract_methods"] == ["load_mappings", "resolve_env_values"]
    assert out["binding_error"] == "contract binding 'wippy.views:env_contract_binding' not found"


# -- properties, through the same handlers ----------------------------------------------------------

_SEGMENT = st.text(alphabet="abcz09-_X", min_size=0, max_size=4)
_ROUTE = st.one_of(
    st.lists(_SEGMENT, max_size=3).map(lambda parts: "".join("/" + p for p in parts) + "/:part(.*)*"),
    st.text(alphabet="/:part(.*)ab", max_size=14),
)
_VALID_ROUTE = re.compile(r"^(/[a-z0-9-]+)*/:part\(\.\*\)\*$")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["ns:a", "ns:b", "ns:c"]), _ROUTE), max_size=5))
async def test_mount_routes_keep_the_first_owner_and_report_the_rest(shop: str, claims: list[tuple[str, str]]) -> None:
    pages = [{"id": page_id, "mount_route": route} for page_id, route in claims]
    async with aiohttp.ClientSession() as s, s.post(f"{shop}/check/mount_routes", json={"pages": pages}) as r:
        out = await r.json()
    routes: dict[str, str] = {}
    problems = 0
    for page_id, route in claims:
        if route == "":
            continue
        if not _VALID_ROUTE.match(route) or routes.get(route, page_id) != page_id:
            problems += 1
        else:
            routes[route] = page_id
    assert (out["routes"] or {}) == routes
    assert len(out["issues"] or []) == problems


_MAPPING = st.fixed_dictionaries({
    "id": st.sampled_from(["m:a", "m:b", "m:c", "m:d"]),
    "priority": st.integers(min_value=0, max_value=100),
    "mappings": st.dictionaries(st.sampled_from(["x", "y", "z"]), st.sampled_from(["V1", "V2", "V3"]), max_size=3),
})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_MAPPING, max_size=5, unique_by=lambda m: m["id"]))  # entry ids are unique
async def test_the_highest_priority_mapping_wins_each_name(shop: str, mappings: list[dict[str, Any]]) -> None:
    async with aiohttp.ClientSession() as s, s.post(f"{shop}/check/merge", json={"mappings": mappings}) as r:
        out = await r.json()
    expected: dict[str, str] = {}
    for item in sorted(mappings, key=lambda m: (m["priority"], m["id"])):
        expected.update(item["mappings"])
    assert (out["context"] or {}) == expected


_RESOURCE = st.fixed_dictionaries({
    "id": st.text(alphabet="abcdef", min_size=1, max_size=4),
    "resource_type": st.sampled_from(["style", "script", "font"]),
    "order": st.integers(min_value=0, max_value=5),
})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_RESOURCE, max_size=8))
async def test_resources_group_by_type_in_order(shop: str, resources: list[dict[str, Any]]) -> None:
    async with aiohttp.ClientSession() as s, s.post(f"{shop}/check/group", json={"resources": resources}) as r:
        out = await r.json()
    grouped = out["grouped"] or {}
    assert sorted(grouped) == sorted({r["resource_type"] for r in resources})
    for kind, group in grouped.items():
        mine = sorted((r for r in resources if r["resource_type"] == kind), key=lambda r: (r["order"], r["id"]))
        assert [(r["id"], r["order"]) for r in group] == [(r["id"], r["order"]) for r in mine]


_JET_HTML = str.maketrans({'"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;"})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30))
async def test_query_text_reaches_the_page_escaped(shop: str, q: str) -> None:
    async with aiohttp.ClientSession() as s, s.get(f"{shop}/p/home", params={"q": q}) as r:
        text = await r.text()
    assert r.status == 200
    assert f'<p id="qp">{q.translate(_JET_HTML)}</p>' in text
