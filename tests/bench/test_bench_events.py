"""The event bus: `events.send` from Lua to one Lua subscriber, against raw nats-py.

    pytest -m bench -s tests/bench/test_bench_events.py

A real node (embedded nats-server, default sync settings). The raw baseline, measured in the same
run on the same server: nats-py `publish_async` of the same number of ~200-byte records into the
events stream, received by an ordered push consumer with a callback (what the bus is fed by).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from wippy.core import Changeset, Entry, Op
from wippy.services import Node, RuntimeSettings, StateDir

from .conftest import report, run

pytestmark = pytest.mark.bench

SUBSCRIBER = """return { main = function(n)
    local events = require("events")
    local sub = events.subscribe("bench", "tick")
    process.registry.register("subscriber")
    local ch = sub:channel()
    for i = 1, n do ch:receive() end
    sub:close()
    return n
end }"""

SENDER = """return { main = function(n)
    local events = require("events")
    local data = {seq = 0, text = "an event of about one hundred bytes, as a small notification would be"}
    for i = 1, n do
        data.seq = i
        events.send("bench", "tick", "/bench", data)
    end
end }"""


async def _raw(node: Node, n: int) -> float:
    store = node.store
    stream = store.subjects.events_stream
    subject = store.subjects.events("rawbench")
    payload = b"x" * 200
    got = 0
    done = asyncio.get_running_loop().create_future()

    def cb(_seq: int, _data: bytes, _pending: int) -> None:
        nonlocal got
        got += 1
        if got == n and not done.done():
            done.set_result(None)

    sub = await store.subscribe_raw(stream, await store.last_seq(stream) + 1, cb, subject=subject)
    t0 = time.perf_counter()
    for _ in range(n):
        await store.publish_pipelined(subject, payload)
    await done
    took = time.perf_counter() - t0
    await sub.stop()
    return n / took


def test_send_to_one_subscriber(tmp_path: Path) -> None:
    async def main() -> None:
        settings = RuntimeSettings(state_dir=tmp_path / "state", node="bench")
        state = StateDir(settings.state_dir)
        assert state.try_own()
        node = await Node(settings, state).open()
        try:
            def proc(name: str, source: str) -> Entry:
                data: dict[str, Any] = {"source": source, "method": "main", "modules": ["events"]}
                return Entry(name, "process.lua", {}, data)

            es = [Entry("app:procs", "process.host", {}, {}), proc("app:subscriber", SUBSCRIBER),
                  proc("app:sender", SENDER)]
            await node.registry.apply(Changeset(ops=tuple(Op("create", e.id, e) for e in es)))
            procs = node.processes
            assert procs is not None
            n = 20_000
            results = []
            for _ in range(2):
                raw = await _raw(node, n)
                sub = procs.spawn(None, "app:subscriber", "app:procs", {}, [n])
                finished = procs.wait(sub)
                while "subscriber" not in procs.names:  # noqa: ASYNC110 - it subscribes, then registers
                    await asyncio.sleep(0.005)
                t0 = time.perf_counter()
                procs.spawn(None, "app:sender", "app:procs", {}, [n])
                await finished
                ours = n / (time.perf_counter() - t0)
                results.append((ours, raw))
            for ours, raw in results:
                report("events.send -> one subscriber (Lua to Lua, each event a record)",
                       events_per_s=f"{ours:,.0f}", raw_publish_async_push_consumer_per_s=f"{raw:,.0f}",
                       ratio=f"{ours / raw:.0%}", goal="50%")
        finally:
            await node.aclose()
            state.release()

    run(main())
