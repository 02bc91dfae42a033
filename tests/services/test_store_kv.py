"""store.kv.raft on a real JetStream KV bucket, from Lua and from Python; read-only and size limits."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wippy.core import Entry
from wippy.core._nats_kv import escape_key, unescape_key
from wippy.services import Node, RuntimeSettings, StateDir

from .conftest import ProcNode, lua

KV = Entry("app:kv", "store.kv.raft", {}, {})


def prog(name: str, body: str) -> Entry:
    return lua(name, 'local store = require("store")\nlocal time = require("time")\n'
               f"local function main(...)\n{body}\nend\nreturn {{main = main}}", modules=["store", "time"])


async def test_the_store_api_from_lua(proc_node: ProcNode) -> None:
    probe = prog("app:probe", """
    local s = assert(store.get("app:kv"))
    local out = {}
    out.set = s:set("user/1", {name = "ada", tags = {"x", "y"}})
    out.get = s:get("user/1")
    out.has = s:has("user/1")
    out.has_not = s:has("user/2")
    local _, missing = s:get("user/2")
    out.missing = missing:kind()
    local e1 = s:put("odd key: ü.*>", 1, {only_if_absent = true})
    local _, exists = s:put("odd key: ü.*>", 2, {only_if_absent = true})
    out.exists = exists:kind()
    local e2 = s:put("odd key: ü.*>", 3, {if_version = e1.version})
    local _, stale = s:put("odd key: ü.*>", 4, {if_version = e1.version})
    out.stale = stale:kind()
    out.entry = s:entry("odd key: ü.*>")
    out.versions_grow = e2.version > e1.version
    out.deleted = s:delete("user/1")
    out.deleted_again = s:delete("user/1")
    local e3 = s:put("user/1", "back", {only_if_absent = true})  -- a deleted key may be created again
    out.recreated = e3.value
    for i = 1, 5 do s:set("page/" .. i, i) end
    local p1 = s:list({prefix = "page/", limit = 2})
    local p2 = s:list({prefix = "page/", after = p1.cursor, limit = 10})
    out.p1 = {#p1.items, p1.items[1].key, p1.has_more}
    out.p2 = {#p2.items, p2.items[3].value, p2.has_more}
    out.info = s:info().kind
    return out
""")
    await proc_node.apply(KV, probe)
    out, err = await proc_node.run("app:probe")
    assert err is None, err
    assert out["set"] is True and out["get"] == {"name": "ada", "tags": ["x", "y"]}
    assert out["has"] is True and out["has_not"] is False and out["missing"] == "NOT_FOUND"
    assert out["exists"] == "ALREADY_EXISTS" and out["stale"] == "CONFLICT" and out["versions_grow"] is True
    assert out["entry"]["key"] == "odd key: ü.*>" and out["entry"]["value"] == 3
    assert out["deleted"] is True and out["deleted_again"] is False and out["recreated"] == "back"
    assert out["p1"] == [2, "page/1", True] and out["p2"] == [3, 5, False]
    assert out["info"] == "store.kv.raft"


async def test_a_ttl_expires_the_key(proc_node: ProcNode) -> None:
    probe = prog("app:probe", """
    local s = store.get("app:kv")
    s:set("short", "x", 1)
    s:set("long", "y")
    local before = s:has("short")
    time.sleep("1600ms")
    return {before = before, after = s:has("short"), long = s:get("long")}
""")
    await proc_node.apply(KV, probe)
    assert await proc_node.run("app:probe") == ({"before": True, "after": False, "long": "y"}, None)


async def test_two_nodes_share_the_bucket(proc_node: ProcNode, nats_url: str, namespace: str,
                                          tmp_path: Path) -> None:
    await proc_node.apply(KV)
    assert proc_node.node.stores is not None
    await proc_node.node.stores.get("app:kv").set("shared", {"from": "n1"})
    settings = RuntimeSettings(state_dir=tmp_path / "n2", nats_url=nats_url, namespace=namespace, node="n2")
    state = StateDir(settings.state_dir)
    assert state.try_own()
    try:
        async with Node(settings, state) as n2:
            async with asyncio.timeout(10):
                while n2.registry.get("app:kv") is None:  # noqa: ASYNC110 - n2's registry catches up
                    await asyncio.sleep(0.02)
            assert n2.stores is not None
            assert await n2.stores.get("app:kv").get("shared") == {"from": "n1"}
    finally:
        state.release()


async def test_read_only_and_oversized_values_are_refused(proc_node: ProcNode) -> None:
    frozen = Entry("app:frozen", "store.kv.raft", {}, {"read_only": True})
    small = Entry("app:small", "store.memory", {}, {"max_value_size": 16})
    probe = prog("app:probe", """
    local _, e1 = store.get("app:frozen"):set("k", 1)
    local _, e2 = store.get("app:frozen"):delete("k")
    local _, e3 = store.get("app:small"):set("k", string.rep("x", 40))
    local ok = store.get("app:small"):set("k", "fits")
    local _, gone = store.get("app:frozen"):get("k")
    return {e1:kind(), e2:kind(), e3:kind(), e3:message(), ok, gone:kind()}
""")
    await proc_node.apply(frozen, small, probe)
    out, err = await proc_node.run("app:probe")
    assert err is None
    assert out[:3] == ["PERMISSION_DENIED", "PERMISSION_DENIED", "INVALID"]
    assert "app:small" in out[3] and "max_value_size" in out[3] and out[4] is True and out[5] == "NOT_FOUND"


@pytest.mark.parametrize(("data", "field"), [
    ({"replicas": 0}, "replicas"), ({"durable": "yes"}, "durable"), ({"read_only": 1}, "read_only"),
    ({"max_value_size": -1}, "max_value_size")])
async def test_bad_store_fields_are_refused_at_apply(proc_node: ProcNode, data: dict[str, Any], field: str) -> None:
    from wippy.core import DefinitionError

    with pytest.raises(DefinitionError) as info:
        await proc_node.apply(Entry("app:bad", "store.kv.raft", {}, data))
    assert "app:bad" in str(info.value) and field in str(info.value)


@given(st.text(min_size=1), st.text())
def test_key_escaping_round_trips_and_keeps_prefixes(key: str, more: str) -> None:
    escaped = escape_key(key)
    assert unescape_key(escaped) == key
    assert escape_key(key + more).startswith(escaped)
    assert all(c.isascii() and (c.isalnum() or c in "-/_=") for c in escaped)


async def test_many_writers_with_if_version_lose_no_update(proc_node: ProcNode) -> None:
    assert proc_node.node.stores is not None
    await proc_node.apply(KV)
    s = proc_node.node.stores.get("app:kv")
    await s.set("counter", 0)

    async def bump() -> None:
        from wippy.core import ConflictError

        while True:
            e = await s.entry("counter")
            try:
                await s.put("counter", e["value"] + 1, if_version=e["version"])
                return
            except ConflictError:
                await asyncio.sleep(0)

    await asyncio.gather(*(bump() for _ in range(20)))
    assert await s.get("counter") == 20


async def test_a_token_store_keeps_its_tokens_in_the_bucket(proc_node: ProcNode) -> None:
    tokens = Entry("app:tokens", "security.token_store", {}, {"store": "app:kv", "token_key": "a-key-of-16-chars+"})
    probe = lua("app:probe", """
local security = require("security")
local function main()
    local ts = security.token_store("app:tokens")
    local actor0 = security.new_actor("u1", {role = "user"})
    local token = assert(ts:create(actor0, security.new_scope(), {expiration = "1h"}))
    local actor, _, err = ts:validate(token)
    local revoked = ts:revoke(token)
    local _, _, gone = ts:validate(token)
    return {actor:id(), actor:meta().role, err == nil, revoked, gone:kind()}
end
return {main = main}
""", modules=["security"])
    await proc_node.apply(KV, tokens, probe)
    assert await proc_node.run("app:probe") == (["u1", "user", True, True, "PERMISSION_DENIED"], None)
