"""Processes: memory per idle process, spawn rate, message throughput and ping-pong latency.

    pytest -m bench -s tests/bench/test_bench_processes.py

Each runs a real node (embedded nats-server, default sync settings) and, where a raw baseline
exists, measures it in the same run on the same server: nats-py `publish_async` into a stream plus
an ordered push consumer with a callback (what a mailbox is fed by), one process, one connection.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from wippy.core import Changeset, Entry, Op
from wippy.services import Node, RuntimeSettings, StateDir

from .conftest import percentile, raw_publish_consume, report, run

pytestmark = pytest.mark.bench

IDLE = """return { main = function() process.inbox():receive() end }"""

SPAWNER = """return { main = function(n, what)
    local clock = os.clock
    local t0 = clock()
    for i = 1, n do
        local pid, err = process.spawn(what, "app:procs")
        if not pid then error(err) end
    end
    return clock() - t0
end }"""

QUICK = """return { main = function() return 1 end }"""

RECEIVER = """return { main = function(n, reply_to)
    local inbox = process.inbox()
    for i = 1, n do inbox:receive() end
    process.send(reply_to, "done", n)
end }"""

SENDER = """return { main = function(n, to)
    local msg = {seq = 0, text = "a message of about one hundred bytes, as a small event payload would be"}
    for i = 1, n do
        msg.seq = i
        process.send(to, "m", msg)
    end
end }"""

PONG = """return { main = function()
    local inbox = process.inbox()
    while true do
        local m = inbox:receive()
        process.send(m:from(), "pong", m:payload():data())
    end
end }"""

PING = """return { main = function(n, to)
    local time = require("time")
    local pong = process.listen("pong")
    local out = {}
    for i = 1, n do
        local t0 = time.now()
        process.send(to, "ping", i)
        pong:receive()
        out[i] = time.now():sub(t0):nanoseconds() / 2  -- one hop
    end
    return out
end }"""


def _entries() -> list[Entry]:
    def proc(name: str, source: str, modules: list[str] | None = None) -> Entry:
        data: dict[str, Any] = {"source": source, "method": "main"}
        if modules:
            data["modules"] = modules
        return Entry(name, "process.lua", {}, data)

    return [Entry("app:procs", "process.host", {}, {}), proc("app:idle", IDLE), proc("app:spawner", SPAWNER),
            proc("app:quick", QUICK), proc("app:receiver", RECEIVER), proc("app:sender", SENDER),
            proc("app:pong", PONG), proc("app:ping", PING, ["time"])]


async def _node(tmp: Path) -> tuple[Node, StateDir]:
    settings = RuntimeSettings(state_dir=tmp / "state", node="bench")
    state = StateDir(settings.state_dir)
    assert state.try_own()
    node = await Node(settings, state).open()
    es = _entries()
    await node.registry.apply(Changeset(ops=tuple(Op("create", e.id, e) for e in es)))
    return node, state


async def _raw_throughput(node: Node, n: int) -> float:
    """publish_async n records into the proc stream and receive them with an ordered push consumer."""
    store = node.store
    return await raw_publish_consume(store, store.subjects.proc_stream, store.subjects.proc("rawbench"), n, 180)


async def _raw_hop(node: Node, n: int) -> float:
    """p50 seconds from a publish to the push consumer's callback (one hop)."""
    store = node.store
    subject = store.subjects.proc("rawhop")
    samples: list[float] = []
    arrived: asyncio.Future[float] | None = None

    def cb(_seq: int, _data: bytes, _pending: int) -> None:
        if arrived is not None and not arrived.done():
            arrived.set_result(time.perf_counter())

    head = await store.last_seq(store.subjects.proc_stream)
    sub = await store.subscribe_raw(store.subjects.proc_stream, head + 1, cb, subject=subject)
    for _ in range(n):
        arrived = asyncio.get_running_loop().create_future()
        t0 = time.perf_counter()
        await store.publish_pipelined(subject, b"ping")
        samples.append(await arrived - t0)
    await sub.stop()
    return percentile(samples, 50)


def test_memory_per_idle_process(tmp_path: Path) -> None:
    """Two batches of idle processes on one host: the first pays the one-time growth of buffers
    and allocator arenas (records queued and published); the second shows what one more costs."""

    async def main() -> None:
        node, state = await _node(tmp_path)
        try:
            procs = node.processes
            assert procs is not None
            n = int(os.environ.get("WIPPY_BENCH_IDLE", "50000"))
            procs.host("app:procs")
            for _ in range(100):  # warm up: code loaded, structures sized
                procs.spawn(None, "app:idle", "app:procs", {}, [])
            await asyncio.sleep(0.5)
            await procs.flush()
            lua_kb = procs.host("app:procs").vm.rt.globals().collectgarbage
            figures: dict[str, str] = {}
            for batch in ("first", "second"):
                gc.collect()
                lua_kb("collect")
                rss0 = psutil.Process(os.getpid()).memory_info().rss
                lua0 = float(lua_kb("count")) * 1024
                t0 = time.perf_counter()
                for _ in range(n):
                    procs.spawn(None, "app:idle", "app:procs", {}, [])
                # the ready queue is FIFO: once a later process has run, every idle one has parked
                await procs.exec(None, "app:quick", "app:procs", {}, [])
                await procs.flush()
                took = time.perf_counter() - t0
                gc.collect()
                lua_kb("collect")
                rss1 = psutil.Process(os.getpid()).memory_info().rss
                lua1 = float(lua_kb("count")) * 1024
                figures[f"{batch}_batch_kb_per_process"] = f"{(rss1 - rss0) / n / 1024:.2f}"
                figures[f"{batch}_lua_kb_per_process"] = f"{(lua1 - lua0) / n / 1024:.2f}"
                figures[f"{batch}_spawn_and_park_s"] = f"{took:.1f}"
            report(f"memory per idle process (2 x {n:,} parked on their inbox, one host)", **figures,
                   goal_kb="8", processes_alive=len(procs.procs),
                   node_rss_mb=f"{psutil.Process(os.getpid()).memory_info().rss / 2**20:.0f}")
        finally:
            await node.aclose()
            state.release()

    run(main())


def test_spawn_rate(tmp_path: Path) -> None:
    async def main() -> None:
        node, state = await _node(tmp_path)
        try:
            procs = node.processes
            assert procs is not None
            n = 10_000
            await procs.exec(None, "app:spawner", "app:procs", {}, [100, "app:idle"])  # warm up
            await procs.flush()
            t0 = time.perf_counter()
            cpu, err, _kind = await procs.exec(None, "app:spawner", "app:procs", {}, [n, "app:idle"])
            assert err is None, err
            spawned = time.perf_counter() - t0
            for _ in range(1_000_000):  # every spawned record handed to NATS, acks pipelined
                if not procs.unpublished:
                    break
                await asyncio.sleep(0.0005)
            published = time.perf_counter() - t0
            await procs.flush()  # every spawned record acknowledged by JetStream
            durable = time.perf_counter() - t0
            report("spawn from Lua (process.spawn of a process.lua that parks on its inbox)",
                   spawn_calls_per_s=f"{n / spawned:,.0f}", spawns_with_records_published_per_s=f"{n / published:,.0f}",
                   durable_spawns_per_s=f"{n / durable:,.0f}", spawn_call_cpu_us=f"{cpu / n * 1e6:.1f}",
                   goal_per_s="10,000")

            t0 = time.perf_counter()
            cpu, err, _kind = await procs.exec(None, "app:spawner", "app:procs", {}, [n, "app:quick"])
            assert err is None, err
            spawned = time.perf_counter() - t0
            await procs.flush()  # spawned and exited records of every one acknowledged
            durable = time.perf_counter() - t0
            report("spawn, run and exit (a process.lua that returns at once; two records each)",
                   spawns_per_s=f"{n / spawned:,.0f}", durable_spawn_and_exit_per_s=f"{n / durable:,.0f}")
        finally:
            await node.aclose()
            state.release()

    run(main())


def test_message_throughput_and_hop_latency(tmp_path: Path) -> None:
    async def main() -> None:
        node, state = await _node(tmp_path)
        try:
            procs = node.processes
            assert procs is not None
            n = 20_000
            raw = await _raw_throughput(node, n)
            # one sender to one receiver; every message a record on the proc stream
            waiter = procs.spawn(None, "app:idle", "app:procs", {}, [])
            done = asyncio.get_running_loop().create_future()
            receiver = procs.spawn(None, "app:receiver", "app:procs", {}, [n, waiter])
            procs.wait(receiver).add_done_callback(lambda f: done.set_result(time.perf_counter()))
            t0 = time.perf_counter()
            procs.spawn(None, "app:sender", "app:procs", {}, [n, receiver])
            t1 = await done
            ours = n / (t1 - t0)
            report("messages, one sender to one receiver (each a durable proc record)",
                   messages_per_s=f"{ours:,.0f}", raw_publish_async_push_consumer_per_s=f"{raw:,.0f}",
                   ratio=f"{ours / raw:.0%}", goal="50%")

            hops = 500
            raw_hop = await _raw_hop(node, hops)
            pong = procs.spawn(None, "app:pong", "app:procs", {}, [])
            samples, err, _kind = await procs.exec(None, "app:ping", "app:procs", {}, [hops, pong])
            assert err is None, err
            p50 = percentile([s / 1e9 for s in samples[50:]], 50)
            report("ping-pong hop between two processes",
                   p50_ms=f"{p50 * 1e3:.3f}", raw_publish_to_push_callback_p50_ms=f"{raw_hop * 1e3:.3f}",
                   ratio=f"{p50 / raw_hop:.2f}x", goal="<= 2x")
        finally:
            await node.aclose()
            state.release()

    run(main())
