"""Queues on a real node: publish from Lua, queue.consumer entries, settling, redelivery, dead letters."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wippy.core import QUEUE_CODECS, DefinitionError, Entry
from wippy.services._queues import decode, encode

from .conftest import ProcNode, lua

DRIVERS = ("queue.driver.memory", "queue.driver.jetstream")


def infra(driver: str, **queue: Any) -> list[Entry]:
    return [
        Entry("app:driver", driver, {}, {}),
        Entry("app:kv", "store.memory", {}, {}),
        Entry("app:tasks", "queue.queue", {}, {"driver": "app:driver", **queue}),
    ]


def consumer(func: str = "app:handler", queue: str = "app:tasks", **data: Any) -> Entry:
    return Entry(f"{queue}_consumer", "queue.consumer", {},
                 {"queue": queue, "func": func, "lifecycle": {"auto_start": True}, **data})


PUBLISHER = lua("app:publish", """
local queue = require("queue")
local function main(n, headers)
    for i = 1, n do
        local ok, err = queue.publish("app:tasks", {id = "m" .. i, n = i}, headers)
        if err then return tostring(err) end
    end
    return "ok"
end
return {main = main}
""", modules=["queue"])


async def until(check: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - the handlers' effects are polled, bounded by the timeout
            await asyncio.sleep(0.05)


async def start(node: ProcNode) -> None:
    await node.node.start_services()


def kv(node: ProcNode) -> Any:
    assert node.node.stores is not None
    return node.node.stores.get("app:kv")


@pytest.mark.parametrize("driver", DRIVERS)
async def test_every_published_message_reaches_the_handler_once(proc_node: ProcNode, driver: str) -> None:
    handler = lua("app:handler", """
local queue = require("queue")
local store = require("store")
local function main(task)
    local s = store.get("app:kv")
    local msg = queue.message()
    s:set(task.id, {n = task.n, id = msg:id(), trace = msg:header("trace"), all = msg:headers()})
    return true
end
return {main = main}
""", kind="function.lua", modules=["queue", "store"])
    await proc_node.apply(*infra(driver), handler, PUBLISHER, consumer(concurrency=3, prefetch=5))
    await start(proc_node)
    assert await proc_node.run("app:publish", 50, {"trace": "t-1", "n": 7}) == ("ok", None)
    s = kv(proc_node)
    await until(lambda: asyncio.sleep(0, all(s.has(f"m{i}") for i in range(1, 51))))
    got = s.get("m7")
    assert got["n"] == 7 and got["trace"] == "t-1" and got["all"] == {"trace": "t-1", "n": 7}
    assert len({s.get(f"m{i}")["id"] for i in range(1, 51)}) == 50
    info = await proc_node.node.queues.info("app:tasks")  # type: ignore[union-attr]
    assert info["consumer_count"] == 1 and info["driver"] == driver
    await until(lambda: _count(proc_node, 0))


async def _count(node: ProcNode, n: int) -> bool:
    return bool((await node.node.queues.info("app:tasks"))["message_count"] == n)  # type: ignore[union-attr]


@pytest.mark.parametrize("driver", DRIVERS)
async def test_false_and_errors_nack_and_the_message_comes_again(proc_node: ProcNode, driver: str) -> None:
    handler = lua("app:handler", """
local queue = require("queue")
local store = require("store")
local function main(task)
    local s = store.get("app:kv")
    local seen = (s:get(task.id) or 0) + 1
    s:set(task.id, seen)
    if seen == 1 then return false end
    if seen == 2 then error("boom " .. task.id) end
    if seen == 3 then return nil, "soft failure" end
    return true
end
return {main = main}
""", kind="function.lua", modules=["queue", "store"])
    await proc_node.apply(*infra(driver), handler, PUBLISHER, consumer())
    await start(proc_node)
    assert await proc_node.run("app:publish", 2) == ("ok", None)
    s = kv(proc_node)
    await until(lambda: asyncio.sleep(0, s.has("m1") and s.has("m2") and s.get("m1") == 4 and s.get("m2") == 4))
    await until(lambda: _count(proc_node, 0))
    await asyncio.sleep(0.3)
    assert s.get("m1") == 4 and s.get("m2") == 4  # acked after the 4th: not delivered again


@pytest.mark.parametrize("driver", DRIVERS)
async def test_after_max_attempts_a_message_goes_to_the_dead_letter_queue(proc_node: ProcNode, driver: str) -> None:
    handler = lua("app:handler", """
local store = require("store")
local function main(task)
    local s = store.get("app:kv")
    s:set("tries." .. task.id, (s:get("tries." .. task.id) or 0) + 1)
    error("cannot do " .. task.id)
end
return {main = main}
""", kind="function.lua", modules=["store"])
    dead = lua("app:dead", """
local queue = require("queue")
local store = require("store")
local function main(task)
    local msg = queue.message()
    store.get("app:kv"):set("dead." .. task.id, msg:headers())
end
return {main = main}
""", kind="function.lua", modules=["queue", "store"])
    dlq = Entry("app:dlq", "queue.queue", {}, {"driver": "app:driver"})
    await proc_node.apply(*infra(driver, dead_letter={"queue": "app:dlq", "max_attempts": 3}), dlq, handler, dead,
                          PUBLISHER, consumer(), consumer("app:dead", "app:dlq"))
    await start(proc_node)
    assert await proc_node.run("app:publish", 1, {"trace": "x"}) == ("ok", None)
    s = kv(proc_node)
    await until(lambda: asyncio.sleep(0, s.has("dead.m1")))
    headers = s.get("dead.m1")
    assert headers["x_original_queue"] == "app:tasks" and headers["attempts"] == 3 and headers["trace"] == "x"
    assert "cannot do m1" in headers["x_dead_letter_reason"] and headers["x_dead_letter_time"].endswith("Z")
    assert s.get("tries.m1") == 3


async def test_the_message_settles_once_and_dies_with_its_handler(proc_node: ProcNode) -> None:
    handler = lua("app:handler", """
local queue = require("queue")
local store = require("store")
local kept
local function main(task)
    local s = store.get("app:kv")
    if task.id == "m2" then
        local _, stale = kept:id()
        s:set("stale", stale:kind() .. ": " .. stale:message())
        return true
    end
    local msg = queue.message()
    kept = msg
    local ok = msg:ack()
    local again, err = msg:nack()
    s:set("settle", {ok = ok, again = again == nil, kind = err:kind(), message = err:message()})
    return false  -- already acked: no redelivery
end
return {main = main}
""", kind="function.lua", modules=["queue", "store"])
    await proc_node.apply(*infra("queue.driver.memory"), handler, PUBLISHER, consumer())
    await start(proc_node)
    assert await proc_node.run("app:publish", 2) == ("ok", None)
    s = kv(proc_node)
    await until(lambda: asyncio.sleep(0, s.has("settle") and s.has("stale")))
    assert s.get("settle") == {"ok": True, "again": True, "kind": "INVALID",
                               "message": "queue.Message already settled"}
    assert "released" in s.get("stale")
    await until(lambda: _count(proc_node, 0))


async def test_concurrency_bounds_the_handlers_running_at_once(proc_node: ProcNode) -> None:
    handler = lua("app:handler", """
local store = require("store")
local time = require("time")
local function main(task)
    local s = store.get("app:kv")
    local now = (s:get("running") or 0) + 1
    s:set("running", now)
    if now > (s:get("peak") or 0) then s:set("peak", now) end
    time.sleep("50ms")
    s:set("running", s:get("running") - 1)
    s:set("done", (s:get("done") or 0) + 1)
end
return {main = main}
""", kind="function.lua", modules=["store", "time"])
    await proc_node.apply(*infra("queue.driver.memory"), handler, PUBLISHER, consumer(concurrency=4, prefetch=8))
    await start(proc_node)
    assert await proc_node.run("app:publish", 20) == ("ok", None)
    s = kv(proc_node)
    await until(lambda: asyncio.sleep(0, s.has("done") and s.get("done") == 20))
    assert s.get("peak") == 4


async def test_jetstream_messages_wait_for_a_consumer_and_survive_it(proc_node: ProcNode) -> None:
    handler = lua("app:handler", """
local store = require("store")
local function main(task) store.get("app:kv"):set(task.id, true) end
return {main = main}
""", kind="function.lua", modules=["store"])
    await proc_node.apply(*infra("queue.driver.jetstream"), handler, PUBLISHER)
    await start(proc_node)
    assert await proc_node.run("app:publish", 30) == ("ok", None)
    assert await _count(proc_node, 30)  # kept by JetStream until someone consumes them
    await proc_node.apply(consumer(prefetch=7))  # a consumer added by a registry version starts
    s = kv(proc_node)
    await until(lambda: asyncio.sleep(0, all(s.has(f"m{i}") for i in range(1, 31))))
    await until(lambda: _count(proc_node, 0))


async def test_bad_queue_use_gets_clear_errors(proc_node: ProcNode) -> None:
    probe = lua("app:probe", """
local queue = require("queue")
local function main()
    local out = {}
    local _, e1 = queue.publish("app:nope", {a = 1})
    local _, e2 = queue.publish("app:tasks", {a = 1}, {x_original_queue = "forged"})
    local _, e3 = queue.publish("app:tasks", nil)
    local _, e4 = queue.message()
    local _, e5 = queue.publish("app:amqp_tasks", {a = 1})
    for i, e in ipairs({e1, e2, e3, e4, e5}) do out[i] = e:kind() .. ": " .. e:message() end
    return out
end
return {main = main}
""", modules=["queue"])
    amqp = [Entry("app:amqp", "queue.driver.amqp", {}, {}),
            Entry("app:amqp_tasks", "queue.queue", {}, {"driver": "app:amqp"})]
    await proc_node.apply(*infra("queue.driver.memory"), *amqp, probe)
    result, err = await proc_node.run("app:probe")
    assert err is None
    assert result[0].startswith("NOT_FOUND") and "app:nope" in result[0]
    assert result[1].startswith("INVALID") and "reserved" in result[1]
    assert result[2].startswith("INVALID") and "data required" in result[2]
    assert result[3].startswith("INVALID") and "no delivery" in result[3]
    assert result[4].startswith("UNAVAILABLE") and "queue.driver.amqp" in result[4]


@pytest.mark.parametrize(("data", "field"), [
    ({"queue": "app:tasks", "func": "app:handler", "concurrency": 0}, "concurrency"),
    ({"queue": "app:tasks", "func": "app:handler", "prefetch": "lots"}, "prefetch"),
    ({"queue": "app:tasks", "func": "app:handler", "auto_ack": "yes"}, "auto_ack"),
])
async def test_bad_consumer_fields_are_refused_at_apply(proc_node: ProcNode, data: dict[str, Any], field: str) -> None:
    handler = lua("app:handler", "return {main = function() end}", kind="function.lua")
    await proc_node.apply(*infra("queue.driver.memory"), handler)
    with pytest.raises(DefinitionError) as info:
        await proc_node.apply(Entry("app:c", "queue.consumer", {}, data))
    assert "app:c" in str(info.value) and field in str(info.value)


async def test_bad_queue_fields_are_refused_at_apply(proc_node: ProcNode) -> None:
    await proc_node.apply(*infra("queue.driver.memory"))
    for data, field in (({"driver": "app:driver", "codec": "xml"}, "codec"),
                        ({"driver": "app:driver", "dead_letter": {"queue": "app:q2", "max_attempts": -1}},
                         "max_attempts"),
                        ({"driver": "app:kv"}, "driver")):
        with pytest.raises(DefinitionError) as info:
            await proc_node.apply(Entry("app:q2", "queue.queue", {}, data))
        assert "app:q2" in str(info.value) and field in str(info.value)


async def test_a_msgpack_queue_carries_tables_and_binary_strings(proc_node: ProcNode) -> None:
    handler = lua("app:handler", """
local store = require("store")
local function main(task)
    store.get("app:kv"):set(task.id, {len = #task.blob, first = string.byte(task.blob, 1), nested = task.nested})
end
return {main = main}
""", kind="function.lua", modules=["store"])
    publish = lua("app:publish", """
local queue = require("queue")
local function main()
    local _, err = queue.publish("app:tasks", {id = "b1", blob = "\\0\\255\\1", nested = {a = {1, 2}}})
    return err and tostring(err) or "ok"
end
return {main = main}
""", modules=["queue"])
    await proc_node.apply(*infra("queue.driver.memory", codec="application/msgpack"), handler, publish, consumer())
    await start(proc_node)
    assert await proc_node.run("app:publish") == ("ok", None)
    s = kv(proc_node)
    await until(lambda: asyncio.sleep(0, s.has("b1")))
    assert s.get("b1") == {"len": 3, "first": 0, "nested": {"a": [1, 2]}}


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@given(JSONISH, st.sampled_from(QUEUE_CODECS))
def test_a_body_decodes_to_what_was_published(value: Any, codec: str) -> None:
    assert decode(codec, encode(codec, value)) == value


async def test_a_removed_consumer_stops_and_its_messages_wait(proc_node: ProcNode) -> None:
    from wippy.core import Changeset, Op

    handler = lua("app:handler", """
local store = require("store")
local function main(task) store.get("app:kv"):set(task.id, true) end
return {main = main}
""", kind="function.lua", modules=["store"])
    c = consumer()
    await proc_node.apply(*infra("queue.driver.memory"), handler, PUBLISHER, c)
    await start(proc_node)
    assert await proc_node.run("app:publish", 1) == ("ok", None)
    s = kv(proc_node)
    await until(lambda: asyncio.sleep(0, s.has("m1")))
    await proc_node.node.registry.apply(Changeset(ops=(Op("delete", c.id, None),)))
    queues = proc_node.node.queues
    assert queues is not None
    await queues.settled()
    assert c.id not in queues.consumers and c.id not in proc_node.processes.hosts
    s.delete("m1")
    assert await proc_node.run("app:publish", 1) == ("ok", None)
    await asyncio.sleep(0.3)
    assert not s.has("m1") and await _count(proc_node, 1)
