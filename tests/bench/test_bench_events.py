"""The event bus: `events.send` from Lua to one Lua subscriber, against raw nats-py.

    pytest -m bench -s tests/bench/test_bench_events.py

A real node (embedded nats-server, default sync settings). The raw baseline, measured in the same
run on the same server: nats-py `publish_async` of the same number of ~200-byte records into the
events stream, received by an ordered push consumer with a callback (what the bus is fed by).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from wippy.core import Changeset, Entry, Op
from wippy.services import Node, RuntimeSettings, StateDir

from .conftest import raw_publish_consume, report, run

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

SENDER = """return { main = function(n, pace)
    local events, time = require("events"), require("time")
    local data = {seq = 0, text = "an event of about one hundred bytes, as a small notification would be"}
    for i = 1, n do
        data.seq = i
        events.send("bench", "tick", "/bench", data)
        -- paced: let the node's other work run every `pace` events (as real senders do)
        if pace and i % pace == 0 then time.sleep("1ms") end
    end
end }"""


async def _raw(node: Node, n: int) -> float:
    store = node.store
    return await raw_publish_consume(store, store.subjects.events_stream, store.subjects.events("rawbench"), n, 200)


def test_send_to_one_subscriber(tmp_path: Path) -> None:
    async def main() -> None:
        settings = RuntimeSettings(state_dir=tmp_path / "state", node="bench")
        state = StateDir(settings.state_dir)
        assert state.try_own()
        node = await Node(settings, state).open()
        try:
            def proc(name: str, source: str) -> Entry:
                data: dict[str, Any] = {"source": source, "method": "main", "modules": ["events", "time"]}
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

            # the events projection's lag while a process sends as fast as it can
            projection = node._events
            assert projection is not None
            stream = node.store.subjects.events_stream
            lags: list[int] = []
            sender = procs.wait(procs.spawn(None, "app:sender", "app:procs", {}, [3 * n, 200]))
            t0 = time.perf_counter()
            while not sender.done():
                lags.append(await node.store.last_seq(stream) - projection.db_seq)
                await asyncio.sleep(0.05)
            rate = 3 * n / (time.perf_counter() - t0)
            await projection.catch_up()
            report("events projection lag while a process sends as fast as the node takes (yielding every 200)",
                   send_rate_per_s=f"{rate:,.0f}",
                   max_lag_events=max(lags), median_lag_events=sorted(lags)[len(lags) // 2], samples=len(lags))
        finally:
            await node.aclose()
            state.release()

    run(main())


def test_projection_catch_up_replay_and_group_by(tmp_path: Path) -> None:
    """1,000,000 events: the events projection catching up from nothing into a fresh DuckDB file
    (against raw ordered-consumer replay of the same stream), then a GROUP BY over them through
    the query API against the same query on a raw DuckDB connection."""
    import duckdb

    from wippy.core import EVENT_RECORD, JetStreamEventStore, LogServer, Record, ServerSettings, Subjects, event_body
    from wippy.projections import EventsProjection, ProjectionDB

    n = int(os.environ.get("WIPPY_BENCH_EVENTS", "1000000"))
    sql = ""
    best = raw_best = 0.0

    async def main() -> None:
        nonlocal best, raw_best
        server = await LogServer.open(tmp_path / "state", ServerSettings())
        store = await JetStreamEventStore.connect(server.url, Subjects("bench"))
        try:
            await store.provision()
            stream, subject = store.subjects.events_stream, store.subjects.events("bench")
            t0 = time.perf_counter()
            pending: list[asyncio.Future[Any]] = []
            for i in range(n):
                body = event_body(f"sys{i % 8}", f"kind.{i % 5}", f"/p/{i % 100}", {"i": i})
                pending.append(await store.publish_pipelined(subject, Record(type=EVENT_RECORD, body=body,
                                                                             node="bench").encode()))
                if len(pending) >= 5000:
                    await asyncio.gather(*pending)
                    pending.clear()
            await asyncio.gather(*pending)
            published = n / (time.perf_counter() - t0)

            got = 0
            done = asyncio.get_running_loop().create_future()

            def cb(_seq: int, _data: bytes, _pending: int) -> None:
                nonlocal got
                got += 1
                if got == n and not done.done():
                    done.set_result(None)

            t0 = time.perf_counter()
            sub = await store.subscribe_raw(stream, 1, cb)
            await done
            raw_replay = n / (time.perf_counter() - t0)
            await sub.stop()

            db_path = StateDir(tmp_path / "state").duckdb_path  # where `wippy query` finds it
            db = ProjectionDB(db_path)
            projection = EventsProjection(store, db)
            t0 = time.perf_counter()
            await projection.start()
            await projection.catch_up()
            ingest = n / (time.perf_counter() - t0)
            await projection.aclose()

            nonlocal sql
            sql = "SELECT system, kind, count(*) AS n FROM events GROUP BY ALL ORDER BY ALL"
            ours_ms = []
            for _ in range(5):
                t0 = time.perf_counter()
                rows = db.query(sql).records()
                ours_ms.append((time.perf_counter() - t0) * 1000)
            db.close()
            raw_con = duckdb.connect(str(db_path), read_only=True)
            raw_ms = []
            for _ in range(5):
                t0 = time.perf_counter()
                raw_rows = raw_con.execute(
                    "SELECT system, kind, count(*) AS n FROM store.events GROUP BY ALL ORDER BY ALL").fetchall()
                raw_ms.append((time.perf_counter() - t0) * 1000)
            raw_con.close()
            assert len(rows) == len(raw_rows) == 40 and sum(r["n"] for r in rows) == n
            report(f"events: {n:,} published", publish_per_s=f"{published:,.0f}")
            report("events projection catch-up into a fresh DuckDB file (a full replay)",
                   events_per_s=f"{ingest:,.0f}", raw_ordered_consumer_replay_per_s=f"{raw_replay:,.0f}",
                   ratio=f"{ingest / raw_replay:.0%}", goal=">= 100,000/s and >= 50% of raw")
            best, raw_best = min(ours_ms), min(raw_ms)
        finally:
            await store.aclose()
            await server.aclose()

    run(main())
    # the same query through the command line: start-up, the embedded server, catching up, the query
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "wippy.ops", "query", sql, "--state-dir", str(tmp_path / "state"),
                          "--app", str(tmp_path), "--namespace", "bench", "--json"],
                         check=True, capture_output=True, text=True)
    cli_s = time.perf_counter() - t0
    assert sum(r["n"] for r in json.loads(out.stdout)) == n
    report(f"GROUP BY over {n:,} events", query_api_ms=f"{best:.1f}", raw_duckdb_ms=f"{raw_best:.1f}",
           ratio=f"{best / raw_best:.2f}x", goal="<= 2x", wippy_query_cli_total_s=f"{cli_s:.2f}")
