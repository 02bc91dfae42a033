"""``wippy bench``: a few figures of this machine, each beside its raw baseline measured in the same run.

It needs nothing but the installed package: an embedded NATS server in a temporary directory, a
Lua host, a DuckDB database in memory. Each figure is a median over rounds, ours and the raw side
alternating; the ratio is ours over raw for rates (higher is better) and raw over ours for
latencies, so 100 % means "as fast as the bare library". The full benchmark suite (HTTP, processes,
agents, ...) is `pytest -m bench -s tests/bench` in a checkout.

    apply      a registry version of one entry (log append, fold, projection) vs a bare JetStream publish+ack
    funcs      funcs.call of a Lua function entry vs a plain Lua call, inside one Lua host
    query      a GROUP BY over events through the query API vs the same SQL on a raw DuckDB connection
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from wippy.core import Changeset, Entry, LogServer, Op, ServerSettings
from wippy.lua_stdlib import HostContext, LuaHost, LuaSettings
from wippy.projections import ProjectionDB
from wippy.services import Runtime, RuntimeSettings, StateDir

from ._output import emit_json, table


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    what: str
    ours: float
    raw: float
    unit: str
    #: "rate" (higher is better) or "latency" (lower is better)
    kind: str

    @property
    def ratio(self) -> float:
        if self.kind == "rate":
            return self.ours / self.raw if self.raw else 0.0
        return self.raw / self.ours if self.ours else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "what": self.what, "ours": round(self.ours, 3), "raw": round(self.raw, 3),
                "unit": self.unit, "ratio": round(self.ratio, 3)}


async def run_bench(*, quick: bool = False) -> list[Figure]:
    rounds = 3 if quick else 7
    return [await _apply(rounds, 20 if quick else 100), await _funcs(rounds, 20_000 if quick else 200_000),
            await _query(rounds, 20_000 if quick else 500_000)]


async def bench_command(*, json_output: bool, quick: bool, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    figures = await run_bench(quick=quick)
    if json_output:
        emit_json([f.to_json() for f in figures], out)
        return 0
    table(["FIGURE", "OURS", "RAW", "RATIO", "WHAT"],
          [[f.name, f"{f.ours:,.2f} {f.unit}", f"{f.raw:,.2f} {f.unit}", f"{f.ratio:.0%}", f.what] for f in figures],
          out)
    return 0


async def _rounds(rounds: int, ours: Callable[[], Awaitable[float]], raw: Callable[[], Awaitable[float]]
                  ) -> tuple[float, float]:
    a: list[float] = []
    b: list[float] = []
    for _ in range(rounds):
        a.append(await ours())
        b.append(await raw())
    return statistics.median(a), statistics.median(b)


async def _apply(rounds: int, n: int) -> Figure:
    with tempfile.TemporaryDirectory(prefix="wippy-bench-") as tmp:
        server = await LogServer.open(Path(tmp) / "nats", ServerSettings())
        state = StateDir(Path(tmp) / "state")
        state.try_own()
        try:
            async with Runtime(RuntimeSettings(state_dir=state.path, nats_url=server.url), state) as rt:
                js = rt.store.client.jetstream()
                await js.add_stream(name="WIPPY_BENCH", subjects=["wippy-bench.raw"])
                payload = b"x" * 300
                counter = iter(range(10**9))

                async def ours() -> float:
                    t0 = time.perf_counter()
                    for _ in range(n):
                        i = next(counter)
                        entry = Entry(f"bench:e{i % 50}", "registry.entry", {}, {"value": i})
                        change = Op("update" if rt.registry.get(entry.id) else "create", entry.id, entry)
                        await rt.registry.apply(Changeset(ops=(change,)))
                    return (time.perf_counter() - t0) / n * 1000

                async def raw() -> float:
                    t0 = time.perf_counter()
                    for _ in range(n):
                        await js.publish("wippy-bench.raw", payload)
                    return (time.perf_counter() - t0) / n * 1000

                mine, bare = await _rounds(rounds, ours, raw)
        finally:
            state.release()
            await server.aclose()
    return Figure("apply", "one registry version of one entry; raw: a JetStream publish+ack", mine, bare, "ms",
                  "latency")


class _Entries:
    def __init__(self, *entries: Entry) -> None:
        self._entries = {e.id: e for e in entries}

    def get(self, entry_id: str) -> Entry | None:
        return self._entries.get(entry_id)

    def current(self) -> Mapping[str, Entry]:
        return self._entries


async def _funcs(rounds: int, n: int) -> Figure:
    callee = Entry("bench:noop", "function.lua", {}, {"source": "return { call = function(x) return x end }",
                                                     "method": "call"})
    caller = Entry("bench:loop", "function.lua", {}, {"method": "call", "modules": ["funcs"], "source": """
        local funcs = require("funcs")
        local plain = function(x) return x end
        return { call = function(n, which)
            if which == "ours" then
                for i = 1, n do funcs.call("bench:noop", i) end
            else
                for i = 1, n do plain(i) end
            end
            return n
        end }"""})
    host = LuaHost(HostContext(registry=_Entries(caller, callee), node="bench", pid="{bench|1}",
                               settings=LuaSettings()))
    try:
        fn = host.callable(caller)

        def timed(which: str, count: int) -> Callable[[], Awaitable[float]]:
            async def go() -> float:
                t0 = time.perf_counter()
                ok, res = await host.vm.run(fn, count, which)
                if not ok:
                    raise RuntimeError(f"the benchmark's Lua failed: {res}")
                return count / (time.perf_counter() - t0)
            return go

        mine, bare = await _rounds(rounds, timed("ours", n), timed("raw", n * 20))
    finally:
        await host.aclose()
    return Figure("funcs", "funcs.call of a function entry; raw: a plain Lua function call", mine, bare, "calls/s",
                  "rate")


async def _query(rounds: int, n: int) -> Figure:
    db = ProjectionDB(None)
    try:
        systems, kinds = ("orders", "users", "billing", "search"), ("created", "updated", "deleted")
        rows = [(i, i * 1000, "n1", systems[i % 4], kinds[i % 3], "", "{}") for i in range(1, n + 1)]
        db.write_rows("events", rows, checkpoint="events", seq=n)
        sql = "SELECT system, kind, count(*) AS n FROM events GROUP BY system, kind ORDER BY system, kind"
        raw_sql = "SELECT system, kind, count(*) AS n FROM store.events GROUP BY system, kind ORDER BY system, kind"

        async def ours() -> float:
            t0 = time.perf_counter()
            await asyncio.to_thread(lambda: db.query(sql).records())
            return (time.perf_counter() - t0) * 1000

        async def raw() -> float:
            t0 = time.perf_counter()
            await asyncio.to_thread(db.query_bare, raw_sql)
            return (time.perf_counter() - t0) * 1000

        mine, bare = await _rounds(rounds, ours, raw)
    finally:
        db.close()
    return Figure("query", f"GROUP BY over {n:,} events through the query API; raw: DuckDB", mine, bare, "ms",
                  "latency")
