"""Lua host figures, each beside raw lupa measured in the same run.

    pytest -m bench -s tests/bench/test_bench_lua.py
"""

from __future__ import annotations

import time
from typing import Any

import lupa.lua54 as lua  # type: ignore[import-untyped]
import pytest

from wippy.core import Entry
from wippy.lua_stdlib import HostContext, LuaHost, LuaSettings
from wippy.lua_stdlib._dialect import translate

from .conftest import report, run

pytestmark = pytest.mark.bench


class _Entries:
    def __init__(self, *entries: Entry) -> None:
        self.entries = {e.id: e for e in entries}

    def get(self, entry_id: str) -> Entry | None:
        return self.entries.get(entry_id)


def _fn(name: str, source: str, modules: list[str] | None = None) -> Entry:
    return Entry(name, "function.lua", {}, {"source": source, "method": "call", "modules": modules or []})


async def _run(entry: Entry, *others: Entry, args: tuple[Any, ...] = (), settings: LuaSettings | None = None
               ) -> tuple[Any, ...]:
    host = LuaHost(HostContext(registry=_Entries(entry, *others), node="b", pid="{b|1}",
                               settings=settings or LuaSettings()))
    try:
        ok, res = await host.vm.run(host.callable(entry), *args)
        assert ok, res
        return tuple(res)
    finally:
        await host.aclose()


def test_funcs_call_rate() -> None:
    n = 300_000
    callee = _fn("app:noop", "return { call = function(x) return x end }")
    caller = _fn("app:bench", """
        local funcs = require("funcs")
        return { call = function(n)
            local t0 = os.clock()
            for i = 1, n do funcs.call("app:noop", i) end
            local t1 = os.clock()
            local f = function(x) return x end
            for i = 1, n do f(i) end
            return t1 - t0, os.clock() - t1
        end }""", ["funcs"])
    ours, raw = run(_run(caller, callee, args=(n,)))
    report("funcs.call of a trivial function.lua from Lua", calls_per_s=f"{n / ours:,.0f}",
           raw_lua_call_per_s=f"{n / raw:,.0f}", ratio=f"{raw / ours:.2%} of a plain Lua call")


def _typed_source(lines: int) -> str:
    out = ["local M = {}", "type Point = {x: number, y: number, label: string?}"]
    i = 0
    while len(out) + 7 < lines:
        out += [
            f"local function f{i}(a: number, b: Point?): (number, string?)",
            f"    local total: number = a :: number + {i}",
            "    if b ~= nil then total = total + b.x end",
            "    return total, nil",
            "end",
            f"M.f{i} = f{i}",
        ]
        i += 1
    out += ["-- padding"] * (lines - 1 - len(out))
    out.append("return M")
    return "\n".join(out)


def test_translate_and_load_a_1000_line_typed_file() -> None:
    source = _typed_source(1000)
    assert source.count("\n") == 999
    rt = lua.LuaRuntime()
    load = rt.eval("function(code) return load(code, '=bench') end")
    cold: list[float] = []
    for k in range(5):
        unique = source + f"\n-- {k}"  # defeats the translation cache
        t0 = time.perf_counter()
        code = translate(unique, "app:big").code
        assert load(code) is not None
        cold.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    translate(source + "\n-- 0", "app:big")
    cached = time.perf_counter() - t0
    plain = translate(source, "app:big").code
    t0 = time.perf_counter()
    load(plain)
    raw_load = time.perf_counter() - t0
    cold.sort()
    report("translate + load a 1,000-line typed Lua file", cold_ms=f"{cold[len(cold) // 2] * 1e3:.1f}",
           cached_translate_ms=f"{cached * 1e3:.2f}", raw_lua_load_ms=f"{raw_load * 1e3:.2f}")


def test_runaway_budget_overhead_on_a_tight_loop() -> None:
    loop = _fn("app:loop", """return { call = function(n)
        local t0 = os.clock() local x = 0 for i = 1, n do x = x + i % 7 end return os.clock() - t0 end }""")
    n = 30_000_000
    off: list[float] = []
    on: list[float] = []
    for _ in range(3):
        off.append(run(_run(loop, args=(n,), settings=LuaSettings(max_slice_seconds=0)))[0])
        on.append(run(_run(loop, args=(n,), settings=LuaSettings(max_slice_seconds=60)))[0])
    rt = lua.LuaRuntime()
    raw = rt.eval("function(n) local t0 = os.clock() local x = 0 for i = 1, n do x = x + i % 7 end "
                  "return os.clock() - t0 end")(n)
    report("runaway watchdog overhead on a tight Lua loop", with_budget_s=f"{min(on):.3f}",
           without_s=f"{min(off):.3f}", raw_lupa_s=f"{raw:.3f}", overhead=f"{min(on) / min(off) - 1:+.1%}")


def test_channel_messages_between_two_coroutines() -> None:
    n = 300_000
    chan = _fn("app:chan", """
        return { call = function(n)
            local ch = channel.new()
            coroutine.spawn(function() for i = 1, n do ch:send(i) end ch:close() end)
            local t0 = os.clock()
            local total = 0
            while true do local v, ok = ch:receive() if not ok then break end total = total + v end
            return os.clock() - t0
        end }""")
    (ours,) = run(_run(chan, args=(n,)))
    rt = lua.LuaRuntime()
    raw = rt.eval("""function(n)
        local co = coroutine.wrap(function() for i = 1, n do coroutine.yield(i) end end)
        local t0 = os.clock() local total = 0
        for _ = 1, n do total = total + co() end
        return os.clock() - t0 end""")(n)
    report("channel send/receive between two coroutines (unbuffered)", messages_per_s=f"{n / ours:,.0f}",
           raw_lua_resume_yield_per_s=f"{n / raw:,.0f}", ratio=f"{raw / ours * 100:.0f}% of raw")
