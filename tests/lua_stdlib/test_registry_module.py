"""The `registry` module against the real registry service (NATS + DuckDB)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from wippy.core import Changeset, Entry, JetStreamEventStore, Op, Subjects
from wippy.lua_stdlib import HostContext, LuaHost
from wippy.projections import ProjectionDB, RegistryProjection
from wippy.services import RegistryService

from .helpers import fn

TOOLS = [Entry(f"app:tool.{n}", "registry.entry", {"type": "tool", "title": n.title(), "tags": ["a", n]},
               {"n": i}) for i, n in enumerate(["calc", "search", "summarize"])]


@pytest.fixture
async def registry(nats_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[RegistryService]:
    store = await JetStreamEventStore.connect(nats_url, Subjects(namespace))
    await store.provision()
    db = ProjectionDB(tmp_path / "p.duckdb")
    proj = RegistryProjection(store, db)
    await proj.start()
    svc = RegistryService(proj, node="n1")
    await svc.apply(Changeset(ops=tuple(Op("create", e.id, e) for e in TOOLS)))
    try:
        yield svc
    finally:
        await proj.aclose()
        db.close()
        await store.aclose()


async def run(svc: RegistryService, body: str) -> tuple[bool, tuple[object, ...]]:
    entry = fn("app:script", "local registry = require('registry')\nreturn { call = function() " + body + " end }",
               modules=["registry"])
    await svc.apply(Changeset(ops=(Op("create", entry.id, entry),)))
    host = LuaHost(HostContext(registry=svc, node="n1", pid="{n1|0x1}"))
    try:
        ok, results = await host.vm.run(host.callable(entry))
        return ok, tuple(host.vm.from_lua(r) for r in results)
    finally:
        await host.aclose()


async def test_get_find_and_parse_id(registry: RegistryService) -> None:
    ok, res = await run(registry, """
        local e = registry.get("app:tool.calc")
        local missing, err = registry.get("app:nope")
        local by_type = registry.find({["meta.type"] = "tool"})
        local by_tag = registry.find({["meta.tags"] = {"a", "search"}})
        local by_prefix = registry.find({["^meta.title"] = "Su"})
        local by_kind = registry.find({[".kind"] = "registry.*", [".name"] = "tool.*"})
        local ignored = registry.find({kind = "nothing-matches-this"})
        local id = registry.parse_id("app.sub:name.x")
        return {e.kind, e.meta.title, e.data.n, missing == nil, err:kind(), #by_type, by_tag[1].id,
                by_prefix[1].id, #by_kind, #ignored, id.ns, id.name}
    """)
    assert ok, res
    assert res[0] == ["registry.entry", "Calc", 0, True, "NOT_FOUND", 3, "app:tool.search", "app:tool.summarize",
                      3, 4, "app.sub", "name.x"]


async def test_snapshot_changes_apply_is_a_version_on_the_log(registry: RegistryService) -> None:
    before = registry.version
    ok, res = await run(registry, """
        local snap = registry.snapshot()
        local v0 = snap:version()
        local changes = snap:changes()
        changes:create({id = "app:tool.weather", kind = "registry.entry", meta = {type = "tool"}, data = {}})
        changes:delete("app:tool.summarize")
        local ops = changes:ops()
        local v1, err = changes:apply()
        local _, empty_err = registry.snapshot():changes():apply()
        local _, bad_err = registry.snapshot():changes():create({id = "app:x", kind = "http.router",
            meta = {server = "app:missing"}}):apply()
        return {v0:string(), v1 and v1:id(), err == nil, #ops, ops[1].kind, empty_err:kind(), bad_err:kind(),
                registry.current_version():id(), v1:previous():id()}
    """)
    assert ok, res
    v0, v1, err, n_ops, first_kind, empty_kind, bad_kind, current, previous = res[0]  # type: ignore[misc]
    assert v0 == f"v{before + 1}"  # the script entry itself was one version
    assert err is True
    assert n_ops == 2
    assert first_kind == "entry.create"
    assert empty_kind == "INVALID"
    assert bad_kind == "INVALID"
    assert current == v1
    assert previous == before + 1
    assert "app:tool.weather" in registry.current()
    assert "app:tool.summarize" not in registry.current()
    versions = await registry.versions()
    assert versions[-1]["author"] == "entry:app:script"


async def test_old_snapshots_history_and_apply_version(registry: RegistryService) -> None:
    first = registry.version
    ok, res = await run(registry, f"""
        registry.snapshot():changes():update({{id = "app:tool.calc", kind = "registry.entry",
            meta = {{type = "tool", title = "Calculator"}}, data = {{n = 0}}}}):apply()
        local old = registry.snapshot_at({first})
        local old_calc = old:get("app:tool.calc")
        local h = registry.history()
        local versions = h:versions()
        local ok = registry.apply_version({first})
        local now = registry.get("app:tool.calc")
        local _, missing = registry.snapshot_at(999999)
        return {{old_calc.meta.title, #versions >= 3, ok, now.meta.title, missing:kind(),
                 #registry.versions() == #versions + 1}}
    """)
    assert ok, res
    assert res[0] == ["Calc", True, True, "Calc", "NOT_FOUND", True]


async def test_build_delta(registry: RegistryService) -> None:
    ok, res = await run(registry, """
        local function e(id, data) return {id = id, kind = "k", meta = {}, data = data} end
        local a = {e("app:x", {v = 1}), e("app:y", {})}
        local b = {e("app:x", {v = 2}), e("app:z", {})}
        local ops = registry.build_delta(a, b)
        local kinds = {}
        for i, op in ipairs(ops) do kinds[i] = op.kind .. " " .. op.entry.id end
        table.sort(kinds)
        return kinds
    """)
    assert ok, res
    assert res[0] == ["entry.create app:z", "entry.delete app:y", "entry.update app:x"]


async def test_bad_arguments_are_error_values(registry: RegistryService) -> None:
    ok, res = await run(registry, """
        local _, e1 = registry.find(5)
        local _, e2 = registry.parse_id("nocolon")
        local ok, e3 = pcall(function() return registry.snapshot():changes():create("x") end)
        return {e1:kind(), e2:kind(), ok, tostring(e3):find("expected an entry table") ~= nil}
    """)
    assert ok, res
    assert res[0] == ["INVALID", "INVALID", False, True]
