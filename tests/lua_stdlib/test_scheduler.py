"""Tasks, channels (Go semantics), select, coroutine.spawn, time, and the runaway budget."""

from __future__ import annotations

import time

import pytest

from wippy.lua_stdlib import LuaSettings

from .helpers import fn, run_entry


async def run(source: str, *, modules: list[str] | None = None, **kw: object) -> tuple[bool, tuple[object, ...]]:
    return await run_entry(fn("app:t", source, modules=modules), **kw)  # type: ignore[arg-type]


async def test_unbuffered_channel_is_a_rendezvous() -> None:
    ok, res = await run("""
        local function call()
            local ch = channel.new()
            local log = {}
            coroutine.spawn(function()
                for i = 1, 3 do ch:send(i); log[#log + 1] = "sent " .. i end
                ch:close()
            end)
            local got = {}
            while true do
                local v, more = ch:receive()
                if not more then break end
                got[#got + 1] = v
                log[#log + 1] = "got " .. v
            end
            return got, log
        end
        return { call = call }
    """)
    assert ok, res
    assert res[0] == [1, 2, 3]
    # a send completes only when a receiver takes the value: the sender is never two ahead
    log = res[1]
    assert log.index("got 1") < log.index("sent 2")  # type: ignore[union-attr]
    assert log.index("got 2") < log.index("sent 3")  # type: ignore[union-attr]


async def test_buffered_channel_close_and_drain() -> None:
    ok, res = await run("""
        return { call = function()
            local ch = channel.new(2)
            ch:send("a"); ch:send("b")
            ch:close()
            ch:close() -- idempotent
            local a, ok1 = ch:receive()
            local b, ok2 = ch:receive()
            local c, ok3 = ch:receive()
            local sent, err = pcall(function() ch:send("x") end)
            return {a, ok1, b, ok2, c == nil, ok3, sent, tostring(err):find("closed") ~= nil}
        end }
    """)
    assert ok, res
    assert res[0] == ["a", True, "b", True, True, False, False, True]


async def test_select_with_default_and_blocking_cases() -> None:
    ok, res = await run("""
        return { call = function()
            local a, b = channel.new(), channel.new(1)
            local r1 = channel.select{a:case_receive(), default = true}
            b:send(7)
            local r2 = channel.select{a:case_receive(), b:case_receive()}
            coroutine.spawn(function() a:send("late") end)
            local r3 = channel.select{a:case_receive(), b:case_receive()}
            local out = channel.new(1)
            local r4 = channel.select{out:case_send("x")}
            return {r1.default, r2.channel == b, r2.value, r3.channel == a, r3.value, r4.ok, (out:receive())}
        end }
    """)
    assert ok, res
    assert res[0] == [True, True, 7, True, "late", True, "x"]


async def test_spawned_coroutines_die_with_main() -> None:
    ok, res = await run("""
        local time = require("time")
        local counter = 0
        return { call = function()
            coroutine.spawn(function()
                while true do counter = counter + 1; time.sleep("1ms") end
            end)
            time.sleep("5ms")
            return "done"
        end }
    """, modules=["time"])
    assert ok, res
    assert res == ("done",)


async def test_user_coroutines_pass_blocking_calls_through() -> None:
    ok, res = await run("""
        return { call = function()
            local ch = channel.new()
            coroutine.spawn(function() for i = 1, 3 do ch:send(i * 10) end end)
            -- a generator that blocks on a channel inside a user coroutine
            local gen = coroutine.wrap(function()
                for _ = 1, 3 do coroutine.yield((ch:receive())) end
            end)
            return {gen(), gen(), gen()}
        end }
    """)
    assert ok, res
    assert res[0] == [10, 20, 30]


async def test_time_sleep_after_timer_ticker() -> None:
    ok, res = await run("""
        local time = require("time")
        return { call = function()
            local t0 = os.clock()
            time.sleep("20ms")
            local after = time.after(10 * time.MILLISECOND)
            local v = after:receive()
            local timer = time.timer("1h")
            local stopped = timer:stop()
            local ticker = time.ticker("5ms")
            local ticks = 0
            for _ = 1, 3 do ticker:channel():receive(); ticks = ticks + 1 end
            ticker:stop()
            local _, bad = time.sleep("ten seconds")
            local now_ok = pcall(time.now)
            return {type(v:unix_nano()), stopped, ticks, bad:kind(), now_ok}
        end }
    """, modules=["time"])
    assert ok, res
    assert res[0] == ["number", True, 3, "INVALID", True]


async def test_runaway_loop_is_stopped_with_a_clear_error() -> None:
    ok, res = await run("return { call = function() local x = 0 while true do x = x + 1 end end }",
                        settings=LuaSettings(max_slice_seconds=0.3))
    assert not ok
    assert "runaway code stopped" in str(res[0])
    assert "lua.max_slice_seconds" in str(res[0])


async def test_a_task_cpu_budget_stops_a_busy_task() -> None:
    ok, res = await run("""
        local time = require("time")
        return { call = function()
            while true do
                local x = 0
                for i = 1, 1e6 do x = x + i end
                time.sleep(0) -- yields nothing (0 is no wait) ...
                time.sleep(1) -- ... a nanosecond does
            end
        end }
    """, modules=["time"], settings=LuaSettings(max_task_seconds=0.2))
    assert not ok
    assert "lua.max_task_seconds" in str(res[0])


async def test_memory_is_bounded() -> None:
    ok, res = await run("""
        return { call = function()
            local t = {}
            for i = 1, 1e8 do t[i] = string.rep("x", 100) .. i end
        end }
    """, settings=LuaSettings(max_memory=20 * 1024 * 1024))
    assert not ok
    assert "memory" in str(res[0]).lower()


async def test_channel_throughput_needs_no_host_round_trip() -> None:
    # a functional check of the fast path: 20k messages between two tasks finish promptly
    t0 = time.perf_counter()
    ok, res = await run("""
        return { call = function(n)
            local ch = channel.new()
            coroutine.spawn(function() for i = 1, n do ch:send(i) end ch:close() end)
            local total = 0
            for v in function() local v, ok = ch:receive() if ok then return v end end do total = total + v end
            return total
        end }
    """, args=(20000,))
    assert ok, res
    assert res == (20000 * 20001 // 2,)
    assert time.perf_counter() - t0 < 30  # generous: only catches a hang


@pytest.mark.parametrize("bad", ["io", "os.execute", "debug", "load", "loadstring", "dofile", "package",
                                 "utf8", "python"])
async def test_sandbox_hides_dangerous_globals(bad: str) -> None:
    path = bad.split(".")
    expr = path[0] if len(path) == 1 else f"({path[0]} or {{}}).{path[1]}"
    ok, res = await run(f"return {{ call = function() return {expr} == nil end }}")
    assert ok, res
    assert res == (True,)


async def test_library_tables_are_read_only_for_modules() -> None:
    ok, res = await run("""
        local time = require("time")
        return { call = function()
            local ok, err = pcall(function() time.sleep = nil end)
            return ok, tostring(err)
        end }
    """, modules=["time"])
    assert ok, res
    assert res[0] is False
    assert "read-only module time" in res[1]
