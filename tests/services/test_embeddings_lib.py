"""The native ``wippy.embeddings:*`` libraries on a real node: Wippy's API over a DuckDB target_db.

Apps import ``wippy.embeddings:embedding_repo`` / ``:embeddings`` and declare ``ns.dependency`` on
``wippy/embeddings`` with ``target_db``; these tests run such Lua processes against real DuckDB
files and check the answers and the error strings Wippy's library gives.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.services.conftest import ProcNode, lua
from wippy.core import Entry, WippyError, native_components
from wippy.lua_stdlib._native_libs import native_library
from wippy.services._embed_config import EmbeddingsConfigError, parameters, resolve
from wippy.services._embeddings import EmbeddingRepo
from wippy.services._sql import SqlHub

REPO = {"repo": "wippy.embeddings:embedding_repo"}


def dependency(*params: tuple[str, Any], name: str = "app:dep.embeddings") -> Entry:
    return Entry(name, "ns.dependency", {}, {"component": "wippy/embeddings", "version": "*",
                                             "parameters": [{"name": k, "value": v} for k, v in params]})


def duck(tmp_path: Path, name: str = "app:vectors") -> Entry:
    return Entry(name, "db.sql.duckdb", {}, {"file": str(tmp_path / f"{name.split(':')[1]}.duckdb")})


def script(body: str) -> str:
    """A process whose main runs ``body`` and returns its value as JSON (so nils and shapes survive)."""
    return ('local repo = require("repo")\nlocal json = require("json")\n'
            f"local function run()\n{body}\nend\n"
            "return { main = function() return json.encode(run()) end }\n")


async def run_json(node: ProcNode, body: str, imports: dict[str, str] | None = None,
                   modules: tuple[str, ...] = ()) -> Any:
    await node.apply(lua("app:t", script(body), modules=["json", *modules], imports=imports or REPO))
    value, error = await node.run("app:t")
    assert error is None, error
    return json.loads(value)


# -- the repository --------------------------------------------------------------------------------

async def test_repository_round_trip_on_duckdb(proc_node: ProcNode, tmp_path: Path) -> None:
    await proc_node.apply(duck(tmp_path), dependency(("target_db", "app:vectors"), ("dimensions", 4)))
    out = await run_json(proc_node, """
        local a, err = repo.add("alpha", "doc", "o1", "c1", { page = 1 }, { 1, 0, 0, 0 })
        if err then return { err = err } end
        local batch, berr = repo.add_batch({
          { content = "beta", content_type = "doc", origin_id = "o1", embedding = { 0, 1, 0, 0 } },
          { content = "gamma", content_type = "note", origin_id = "o2", embedding = { 0, 0, 3, 0 },
            meta = { tag = "g" } },
        })
        if berr then return { err = berr } end
        local near = repo.search_by_embedding({ 0.9, 0.1, 0, 0 }, { limit = 2 })
        local notes = repo.search_by_embedding({ 1, 1, 1, 1 }, { content_type = "note" })
        local both = repo.search_by_embedding({ 1, 1, 1, 1 }, { origin_id = { "o1", "o2" } })
        local o1 = repo.get_by_origin("o1")
        local gone = repo.delete_by_entry(a.entry_id)
        local _, again = repo.delete_by_entry(a.entry_id)
        local dropped = repo.delete_by_origin("o2")
        local left = repo.search_by_embedding({ 1, 1, 1, 1 }, {})
        return { a = a, batch = batch, near = near, notes = notes, both = #both, o1 = #o1,
                 o1_meta = o1[1].meta, gone = gone, again = again, dropped = dropped, left = #left }
    """)
    assert "err" not in out, out
    assert out["a"]["origin_id"] == "o1" and out["a"]["content_type"] == "doc" and out["a"]["context_id"] == "c1"
    assert out["batch"]["count"] == 2 and len(out["batch"]["items"]) == 2
    assert [h["content"] for h in out["near"]] == ["alpha", "beta"]
    assert out["near"][0]["meta"] == {"page": 1} and out["near"][0]["similarity"] > out["near"][1]["similarity"]
    assert {"entry_id", "created_at", "updated_at", "context_id"} <= set(out["near"][0])
    assert [h["content"] for h in out["notes"]] == ["gamma"] and out["notes"][0]["meta"] == {"tag": "g"}
    assert out["both"] == 3 and out["o1"] == 2 and out["o1_meta"] == {"page": 1}
    assert out["gone"] == {"deleted": True} and out["again"] == "Embedding not found"
    assert out["dropped"] == {"deleted": True, "count": 1} and out["left"] == 1


@pytest.mark.parametrize(("body", "expect"), [
    ('return repo.add("", "doc", "o", nil, nil, { 1, 0, 0, 0 })', "Content is required"),
    ('return repo.add("x", nil, "o", nil, nil, { 1, 0, 0, 0 })', "Content type is required"),
    ('return repo.add("x", "doc", "", nil, nil, { 1, 0, 0, 0 })', "Origin ID is required"),
    ('return repo.add("x", "doc", "o", nil, nil, {})', "Embedding is required"),
    ('return repo.add("x", "doc", "o", nil, nil, { 1, 2, 3 })',
     "Failed to insert embedding: item 1: an embedding must have 4 numbers, not 3"),
    ('return repo.add("x", "doc", "o", nil, nil, { 0, 0, 0, 0 })', "finite, non-zero length"),
    ('return repo.add("x", "doc", "o", nil, nil, { 1, "a", 0, 0 })', "an embedding must be a list of numbers"),
    ('return repo.add_batch({})', "Batch is empty"),
    ('return repo.add_batch({ { content = "x", content_type = "d", origin_id = "o", embedding = { 1, 0, 0, 0 } },'
     ' { content = "y", content_type = "d", origin_id = "o" } })', "Item 2: Embedding is required"),
    ('return repo.add_batch({ { content = "x", content_type = "d", origin_id = "o", embedding = { 1, 0, 0, 0 } },'
     ' { content = "y", content_type = "d", origin_id = "o", embedding = { 1, 0 } } })',
     "item 2: an embedding must have 4 numbers, not 2"),
    ('return repo.search_by_embedding({ 1, 0 }, {})', "Search failed: an embedding must have 4 numbers, not 2"),
    ('return repo.search_by_embedding({ 1, 0, 0, 0 }, { limit = 0 })', "Search failed: search limit must be"),
    ("return repo.search_by_embedding(nil)", "Embedding vector is required"),
    ("return repo.delete_by_entry('')", "Entry ID is required"),
    ("return repo.get_by_origin(nil)", "Origin ID is required"),
])
async def test_bad_input_gets_wippys_error_strings(proc_node: ProcNode, tmp_path: Path, body: str,
                                                   expect: str) -> None:
    await proc_node.apply(duck(tmp_path), dependency(("target_db", "app:vectors"), ("dimensions", 4)))
    out = await run_json(proc_node, f"local v, err = (function() {body} end)()\nreturn {{ v = v, err = err }}")
    assert out.get("v") is None and expect in out["err"]


async def test_a_failed_batch_stores_nothing(proc_node: ProcNode, tmp_path: Path) -> None:
    await proc_node.apply(duck(tmp_path), dependency(("target_db", "app:vectors"), ("dimensions", 4)))
    out = await run_json(proc_node, """
        local _, err = repo.add_batch({
          { content = "x", content_type = "d", origin_id = "o", embedding = { 1, 0, 0, 0 } },
          { content = "y", content_type = "d", origin_id = "o", embedding = { 1, 0, 0 } } })
        return { err = err, stored = #repo.get_by_origin("o") }
    """)
    assert "item 2" in out["err"] and out["stored"] == 0


@pytest.mark.parametrize(("entries", "expect"), [
    ((), "target_db requirement is not configured"),
    ((dependency(("target_db", "app:nowhere")),), "target_db app:nowhere: there is no such database entry"),
    ((dependency(("target_db", "app:lite")), Entry("app:lite", "db.sql.sqlite", {}, {"file": ":memory:"})),
     "target_db app:lite is a db.sql.sqlite: this runtime keeps embeddings in db.sql.duckdb databases only"),
    ((dependency(("target_db", "app:procs")),), "target_db app:procs is a process.host, not a db.sql.duckdb"),
    ((dependency(("target_db", "app:vectors"), ("dimensions", "many")),),
     "parameter dimensions must be a whole number from 1 to 100000"),
])
async def test_setup_errors_name_what_to_fix(proc_node: ProcNode, tmp_path: Path, entries: tuple[Entry, ...],
                                             expect: str) -> None:
    await proc_node.apply(duck(tmp_path), *entries)
    out = await run_json(proc_node, """
        local _, err = repo.search_by_embedding({ 1, 0, 0, 0 }, {})
        return { err = err }
    """)
    assert expect in out["err"]


async def test_an_unknown_library_is_named(proc_node: ProcNode) -> None:
    await proc_node.apply(lua("app:typo", 'local r = require("r")\nreturn { main = function() end }',
                              imports={"r": "wippy.embeddings:embedding_repos"}))
    with pytest.raises(WippyError, match=r"wippy\.embeddings:embedding_repos does not exist"):
        await proc_node.run("app:typo")


async def test_the_table_follows_the_dimensions(proc_node: ProcNode, tmp_path: Path) -> None:
    await proc_node.apply(duck(tmp_path), dependency(("target_db", "app:vectors"), ("dimensions", 3)))
    out = await run_json(proc_node, 'return require("embeddings_host").config()', modules=("embeddings_host",))
    assert out["table"] == "embeddings_3" and out["dimensions"] == 3 and out["target_db"] == "app:vectors"


# -- how apps get it -------------------------------------------------------------------------------

def test_wippy_embeddings_is_a_native_component_with_both_libraries() -> None:
    assert "wippy/embeddings" in native_components()
    for name in ("embedding_repo", "embeddings"):
        lib = native_library(f"wippy.embeddings:{name}")
        assert lib is not None and lib.data["modules"] == ["embeddings_host"]


class Registry:
    def __init__(self, *entries: Entry) -> None:
        self.entries = {e.id: e for e in entries}

    def get(self, entry_id: str) -> Entry | None:
        return self.entries.get(entry_id)

    def current(self) -> dict[str, Entry]:
        return self.entries


def test_parameters_by_bare_name_or_full_id_and_wippys_requirement_entry() -> None:
    reg = Registry(dependency(("wippy.embeddings:target_db", "app:a"), ("model", "m")))
    assert parameters(reg) == {"target_db": "app:a", "model": "m"}
    req = Entry("wippy.embeddings:target_db", "ns.requirement", {}, {"default": "app:b"})
    config = resolve(Registry(req), None)
    assert (config.target_db, config.model, config.dimensions) == ("app:b", "all-MiniLM-L6-v2", 384)
    with pytest.raises(EmbeddingsConfigError, match="model must be a model name"):
        resolve(Registry(dependency(("target_db", "app:a"), ("model", 5))), None)


@given(st.one_of(st.integers(-5, 200_000), st.floats(allow_nan=True), st.text(max_size=6), st.booleans()))
def test_dimensions_parameter_is_a_whole_positive_number_or_refused(raw: Any) -> None:
    reg = Registry(dependency(("target_db", "app:a"), ("dimensions", raw)))
    as_int = int(raw) if isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit() else raw
    ok = (not isinstance(raw, bool) and isinstance(as_int, int | float) and math.isfinite(as_int)
          and as_int == int(as_int) and 0 < as_int <= 100_000)
    if ok:
        assert resolve(reg, None).dimensions == int(as_int)
    else:
        with pytest.raises(EmbeddingsConfigError, match="dimensions"):
            resolve(reg, None)


# -- the repository under varied input -------------------------------------------------------------

@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seeds=st.lists(st.integers(0, 10_000), min_size=1, max_size=12, unique=True),
       origins=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True),
       scale=st.floats(0.01, 100))
def test_search_by_origin_list_finds_each_vector_itself(seeds: list[int], origins: list[str], scale: float) -> None:
    def vec(seed: int) -> list[float]:
        rnd = random.Random(seed)
        return [rnd.uniform(-1, 1) for _ in range(6)]

    async def check(path: Path) -> None:
        hub = SqlHub(Registry(Entry("app:v", "db.sql.duckdb", {}, {"file": str(path)})))
        try:
            repo = EmbeddingRepo(hub, "app:v", dimensions=6, table="embeddings_6")
            await repo.add_batch([{"content": str(s), "content_type": "t", "origin_id": "abc"[s % 3],
                                   "embedding": vec(s)} for s in seeds])
            for s in seeds:
                hits = await repo.search_by_embedding([x * scale for x in vec(s)], {"limit": 1})
                assert hits[0]["content"] == str(s)
            found = await repo.search_by_embedding(vec(seeds[0]), {"limit": 100, "origin_id": origins})
            assert sorted(int(h["content"]) for h in found) == sorted(s for s in seeds if "abc"[s % 3] in origins)
        finally:
            await hub.aclose()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(check(Path(tmp) / "v.duckdb"))
