"""The `templates` module from Lua: sets from the registry, rendering, inheritance, errors."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from wippy.core import Changeset, DefinitionErrors, Entry, JetStreamEventStore, Op, Subjects
from wippy.core._loader import load_app
from wippy.lua_stdlib import HostContext, LuaHost
from wippy.projections import ProjectionDB, RegistryProjection
from wippy.services import RegistryService

from .helpers import Entries, fn, run_entry

SET = Entry("app:views", "template.set", {}, {"engine": {"globals": {"site": "Acme"}}})


def jet(name: str, source: str, *, meta: dict[str, Any] | None = None, set_id: str = "app:views") -> Entry:
    return Entry(f"app:{name}", "template.jet", meta or {}, {"set": set_id, "source": source})


LAYOUT = jet("layout", textwrap.dedent("""\
    <title>{{ yield title() }}</title>
    {{ yield body() }}
    <footer>{{ site }}</footer>"""))
PAGE = jet("page", textwrap.dedent("""\
    {{ extends "layout" }}
    {{ block title() }}{{ data.title }}{{ end }}
    {{ block body() }}
    <select>{{ range data.items }}<option value="{{ .id }}">{{ .label }}</option>{{ end }}</select>
    <script>var ITEMS = [{{ range data.items }}{id: "{{ .id }}", n: {{ .n }}},{{ end }}];</script>
    {{- include "/partials/note.jet" data }}
    {{ end }}"""))
NOTE = jet("note", "<p>{{ .title | upper }} ({{ len(.items) }})</p>", meta={"name": "partials/note"})


def script(body: str) -> Entry:
    return fn("app:script", "local templates = require('templates')\nreturn { call = function() " + body + " end }",
              modules=["templates"])


async def lua(body: str, *entries: Entry, **ctx: Any) -> Any:
    ok, res = await run_entry(script(body), SET, LAYOUT, PAGE, NOTE, *entries, **ctx)
    assert ok, res
    return res[0]


async def test_render_extends_blocks_include_and_escaping() -> None:
    out = await lua("""
        local set, err = templates.get("app:views")
        assert(err == nil, tostring(err))
        local items = {{id = "a", label = "A", n = 1}, {id = "b", label = "B", n = 2.5}}
        local page = {title = "Tools & <more>", items = items}
        return set:render("page", {data = page})
    """)
    assert out == textwrap.dedent("""\
        <title>Tools &amp; &lt;more&gt;</title>

        <select><option value="a">A</option><option value="b">B</option></select>
        <script>var ITEMS = [{id: "a", n: 1},{id: "b", n: 2.5},];</script><p>TOOLS &amp; &lt;MORE&gt; (2)</p>

        <footer>Acme</footer>""")


async def test_set_object_release_and_tostring() -> None:
    out = await lua("""
        local set = templates.get("app:views")
        local before = tostring(set)
        local text = set:render("partials/note", {title = "x", items = {}})
        local first = set:release()
        local again = set:release()
        local _, err = set:render("page", {})
        return {before, text, first, again, tostring(set), err:kind(), err:message()}
    """)
    assert out == ["template.Set{}", "<p>X (0)</p>", True, True, "template.Set{released}", "INTERNAL",
                   "template set is released"]


async def test_error_kinds_and_messages() -> None:
    broken = jet("broken", "line one\n{{ missing_var }}")
    out = await lua("""
        local function show(v, err) return err and (err:kind() .. ": " .. err:message()) or v end
        local set = templates.get("app:views")
        local looped = {}
        looped.self = looped
        return {
            show(templates.get("app:nope")),
            show(templates.get("app:script")),
            show(templates.get("")),
            show(templates.get(42)),
            show(set:render("nope")),
            show(set:render("")),
            show(set:render("page", "not a table")),
            show(set:render("broken")),
            "wrapped: " .. select(2, set:render("nope")),
            show(templates.get("app:\\255")),
            show(set:render("page", {data = {title = "\\255\\254"}})),
            show(set:render("page", looped)),
        }
    """, broken)
    assert out == [
        "NOT_FOUND: template set app:nope does not exist",
        "INVALID: app:script is a function.lua, not a template.set",
        "INVALID: resource id is required",
        "INVALID: resource id is required",
        "NOT_FOUND: template not found: nope (set app:views)",
        "INVALID: template name is required",
        "INVALID: set:render: data must be a table",
        "INTERNAL: failed to render template: template 'broken', line 2: identifier 'missing_var' not available "
        "in current (render or parent) scope, global, or default variables",
        "wrapped: template not found: nope (set app:views)",
        "INVALID: templates.get: strings must be UTF-8 text, not binary data",
        "INVALID: set:render: strings must be UTF-8 text, not binary data",
        "INVALID: set:render: data: value nested more than 100 levels deep",
    ]


async def test_data_arrives_as_plain_values() -> None:
    probe = jet("probe", "{{ n + 1 }} {{ f }}|{{ isset(f) }} {{ list }} {{ m.k }} {{ .n }} {{ e }}")
    out = await lua("""
        local set = templates.get("app:views")
        return set:render("probe", {n = 41, f = function() end, list = {1, "two", true}, m = {k = "v"},
                                    e = errors.new("boom")})
    """, probe)
    assert out == "42 |false [1 two true] v 41 boom"


async def test_other_sets_and_delimiters() -> None:
    other = Entry("app:mail", "template.set", {}, {"engine": {"delimiters": {"left": "<%", "right": "%>"}}})
    mail = jet("welcome", "Hi <% name %>, {{ literal }}", set_id="app:mail")
    out = await lua("""
        local a = templates.get("app:mail"):render("welcome", {name = "Bo"})
        local _, err = templates.get("app:mail"):render("page", {})
        return {a, err:kind()}
    """, other, mail)
    assert out == ["Hi Bo, {{ literal }}", "NOT_FOUND"]


async def test_permission_template_get_is_checked() -> None:
    out = await lua("""
        local _, err = templates.get("app:views")
        return {err:kind(), err:message()}
    """, strict=True)
    assert out[0] == "PERMISSION_DENIED" and "template.get" in out[1] and "app:views" in out[1]


async def test_templates_from_app_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "templates").mkdir(parents=True)
    (src / "templates" / "layout.jet").write_text("<main>{{ yield body() }}</main>\n", encoding="utf-8")
    (src / "templates" / "page.jet").write_text('{{ extends "layout" }}\n{{ block body() }}{{ who }}{{ end }}\n',
                                               encoding="utf-8")
    (src / "_index.yaml").write_text(textwrap.dedent("""\
        version: "1.0"
        namespace: app
        entries:
          - {name: templates, kind: template.set}
          - {name: layout, kind: template.jet, set: templates, source: file://templates/layout.jet}
          - {name: viewer, kind: template.jet, set: templates, source: file://templates/page.jet,
             meta: {type: view.page}}
        """), encoding="utf-8")
    entries = [loaded.entry for loaded in load_app(tmp_path).entries]
    assert {e.id: e.data["source"][:6] for e in entries if e.kind == "template.jet"} == {
        "app:layout": "<main>", "app:viewer": "{{ ext"}
    ok, res = await run_entry(fn("app:script", """
        local templates = require('templates')
        return { call = function() return templates.get("app:templates"):render("viewer", {who = "me"}) end }
    """, modules=["templates"]), registry=Entries(*entries, fn("app:script", "", modules=["templates"])))
    assert (ok, res) == (True, ("<main>me</main>\n", None))


# -- against the registry service (NATS + DuckDB) -------------------------------------------------


@pytest.fixture
async def registry(nats_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[RegistryService]:
    store = await JetStreamEventStore.connect(nats_url, Subjects(namespace))
    await store.provision()
    db = ProjectionDB(tmp_path / "p.duckdb")
    proj = RegistryProjection(store, db)
    await proj.start()
    svc = RegistryService(proj, node="n1")
    try:
        yield svc
    finally:
        await proj.aclose()
        db.close()
        await store.aclose()


async def apply(svc: RegistryService, *entries: Entry) -> None:
    await svc.apply(Changeset(ops=tuple(Op("update" if svc.get(e.id) else "create", e.id, e) for e in entries)))


async def test_registry_changes_apply_to_the_next_render(registry: RegistryService) -> None:
    entry = fn("app:script", """
        local templates = require('templates')
        local set = templates.get("app:views")
        return { call = function() return set:render("partials/note", {title = "t", items = {1}}) end }
    """, modules=["templates"])
    await apply(registry, SET, LAYOUT, PAGE, NOTE, entry)
    host = LuaHost(HostContext(registry=registry, node="n1", pid="{n1|0x1}"))
    try:
        call = host.callable(registry.get("app:script"))  # type: ignore[arg-type]
        assert await host.vm.run(call) == (True, ("<p>T (1)</p>", None))
        await apply(registry, jet("note", "<p>{{ .title }} v2</p>", meta={"name": "partials/note"}))
        assert await host.vm.run(call) == (True, ("<p>t v2</p>", None))
        # a syntax error is refused when applied, naming the template and the line; the old text stays
        with pytest.raises(DefinitionErrors, match=r"entry app:note: field source: Jet syntax error: "
                                                   r"template 'partials/note', line 2: unclosed action"):
            await apply(registry, jet("note", "ok\n{{ .title", meta={"name": "partials/note"}))
        assert await host.vm.run(call) == (True, ("<p>t v2</p>", None))
        # so is a set whose new delimiters its templates do not parse with
        with pytest.raises(DefinitionErrors, match="template 'layout', line 1: unexpected character '}' in action"):
            await apply(registry, Entry("app:views", "template.set", {}, {"engine": {"delimiters": {"right": "]]"}}}))
    finally:
        await host.aclose()
