"""store.kv.raft from Lua against raw nats-py KV put/get on the same server, in the same run.

    pytest -m bench -s tests/bench/test_bench_store.py

A real node (embedded nats-server, default sync settings). One Lua process sets N keys, then
gets them, one call after the other (each set waits for JetStream's ack, as a store write does);
the raw baseline does the same with nats-py's ``kv.put`` / ``kv.get`` on a bucket of the same
configuration. Rounds alternate ours/raw.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from wippy.core import Changeset, Entry, Op
from wippy.services import Node, RuntimeSettings, StateDir

from .conftest import report, run

pytestmark = pytest.mark.bench

LOOP = """return { main = function(n)
    local store, time = require("store"), require("time")
    local s = store.get("app:kv")
    local value = {name = "a value of about sixty bytes", n = 0}
    local t0 = time.now()
    for i = 1, n do
        value.n = i
        s:set("key/" .. i, value)
    end
    local t1 = time.now()
    for i = 1, n do
        local v = s:get("key/" .. i)
        if v.n ~= i then error("wrong value at " .. i) end
    end
    local t2 = time.now()
    return {set_s = t1:sub(t0):seconds(), get_s = t2:sub(t1):seconds()}
end }"""


async def _raw(node: Node, n: int) -> tuple[float, float]:
    import orjson
    from nats.js.api import KeyValueConfig

    js = node.store.client.jetstream()
    kv = await js.create_key_value(KeyValueConfig(bucket="RAWBENCH", history=1, direct=True))
    value = {"name": "a value of about sixty bytes", "n": 0}
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        value["n"] = i
        await kv.put(f"key/{i}", orjson.dumps(value))
    t1 = time.perf_counter()
    for i in range(1, n + 1):
        entry = await kv.get(f"key/{i}")
        assert orjson.loads(entry.value or b"")["n"] == i
    t2 = time.perf_counter()
    return n / (t1 - t0), n / (t2 - t1)


def test_kv_set_get_from_lua(tmp_path: Path) -> None:
    async def main() -> None:
        settings = RuntimeSettings(state_dir=tmp_path / "state", node="bench")
        state = StateDir(settings.state_dir)
        assert state.try_own()
        node = await Node(settings, state).open()
        try:
            es = [Entry("app:procs", "process.host", {}, {}), Entry("app:kv", "store.kv.raft", {}, {}),
                  Entry("app:loop", "process.lua", {}, {"source": LOOP, "method": "main",
                                                         "modules": ["store", "time"]})]
            await node.registry.apply(Changeset(ops=tuple(Op("create", e.id, e) for e in es)))
            procs = node.processes
            assert procs is not None
            n = 5_000
            for _ in range(3):
                raw_set, raw_get = await _raw(node, n)
                result, err = await procs.wait(procs.spawn(None, "app:loop", "app:procs", {}, [n]))
                assert err is None, err
                ours_set, ours_get = n / result["set_s"], n / result["get_s"]
                report("store.kv.raft set from Lua (each waits for the JetStream ack)",
                       sets_per_s=f"{ours_set:,.0f}", raw_nats_py_kv_put_per_s=f"{raw_set:,.0f}",
                       ratio=f"{ours_set / raw_set:.0%}", goal="50%")
                report("store.kv.raft get from Lua (direct get)",
                       gets_per_s=f"{ours_get:,.0f}", raw_nats_py_kv_get_per_s=f"{raw_get:,.0f}",
                       ratio=f"{ours_get / raw_get:.0%}", goal="50%")
        finally:
            await node.aclose()
            state.release()

    run(main())
