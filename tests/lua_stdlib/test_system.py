"""The `system` module: runtime figures, GC and memory controls, permissions, unavailable parts."""

from __future__ import annotations

import os
import socket
from typing import Any

from wippy.core import Entry
from wippy.lua_stdlib import HostContext, LuaHost, LuaSettings

from .helpers import Entries, fn, run_entry


async def run(body: str, *others: Entry, **ctx: Any) -> tuple[bool, tuple[object, ...]]:
    entry = fn("app:s", "local system = require('system')\nreturn { call = function(...) " + body + " end }",
               modules=["system"])
    return await run_entry(entry, *others, **ctx)


async def ok_result(body: str, **ctx: Any) -> Any:
    ok, res = await run(body, **ctx)
    assert ok, res
    return res[0]


async def test_memory_figures() -> None:
    got = await ok_result("""
        local stats, err = system.memory.stats()
        local before = system.memory.allocated()
        local hold = {}
        for i = 1, 20000 do hold[i] = {i} end
        local after = system.memory.allocated()
        return {stats, err == nil, after > before, system.memory.heap_objects() > 0}
    """)
    stats, no_err, grew, objects = got
    assert set(stats) == {"alloc", "heap_alloc", "heap_objects", "sys", "num_gc"}
    assert stats["alloc"] == stats["heap_alloc"] > 0
    assert stats["sys"] > stats["alloc"]  # the OS process holds more than one Lua VM
    assert no_err and grew and objects


async def test_memory_limit_can_be_lowered_and_restored() -> None:
    got = await ok_result("""
        local configured = system.memory.get_limit()
        local prev = system.memory.set_limit(64 * 1024 * 1024)
        local lowered = system.memory.get_limit()
        local _, too_high = system.memory.set_limit(configured + 1)
        local _, too_low = system.memory.set_limit(1024)
        local _, negative = system.memory.set_limit(-5)
        local restored_prev = system.memory.set_limit(-1)
        return {configured, prev, lowered, too_high:kind(), too_low:kind(), negative:kind(), restored_prev,
                system.memory.get_limit()}
    """, settings=LuaSettings(max_memory=128 * 1024 * 1024))
    mib = 1024 * 1024
    assert got == [128 * mib, 128 * mib, 64 * mib, "INVALID", "INVALID", "INVALID", 64 * mib, 128 * mib]


async def test_lowered_limit_is_enforced() -> None:
    got = await ok_result("""
        system.memory.set_limit(system.memory.allocated() + 4 * 1024 * 1024)
        local ok, err = pcall(function()
            local t = {}
            for i = 1, 1e6 do t[i] = ("x"):rep(64) .. i end
            return #t
        end)
        collectgarbage()
        system.memory.set_limit(-1)
        return {ok, tostring(err)}
    """, settings=LuaSettings(max_memory=256 * 1024 * 1024))
    assert got == [False, "not enough memory"]


async def test_unlimited_vm_reports_max_integer() -> None:
    got = await ok_result("return {system.memory.get_limit() == math.maxinteger}",
                          settings=LuaSettings(max_memory=0))
    assert got == [True]


async def test_gc_controls() -> None:
    got = await ok_result("""
        local garbage = {}
        for i = 1, 50000 do garbage[i] = {i} end
        garbage = nil
        local before = system.memory.allocated()
        local ok = system.gc.collect()
        local after = system.memory.allocated()
        local p0 = system.gc.get_percent()
        local prev = system.gc.set_percent(300)
        local _, bad = system.gc.set_percent(-1)
        return {ok, after < before, p0, prev, system.gc.get_percent(), bad:kind()}
    """)
    assert got == [True, True, 100, 100, 300, "INVALID"]


async def test_gc_percent_moves_the_lua_pause() -> None:
    entry = fn("app:s", "local system = require('system')\n"
                        "return { call = function(p) return system.gc.set_percent(p) end }", modules=["system"])
    host = LuaHost(HostContext(registry=Entries(entry), node="n1", pid="{n1|0x1}"))
    try:
        ok, res = await host.vm.run(host.callable(entry), 300)
        assert ok and res[0] == 100
        # Lua keeps the pause in steps of 4: 100 + 300 reads back as 400 or just under
        assert host.vm.rt.globals().collectgarbage("setpause", 200) in (396, 400)
    finally:
        await host.aclose()


async def test_runtime_and_process() -> None:
    got = await ok_result("""
        local n = system.runtime.goroutines()
        local seen = {}
        for i = 1, 3 do coroutine.spawn(function() seen[i] = system.runtime.goroutines() end) end
        coroutine.yield()
        local _, set_err = system.runtime.max_procs(4)
        return {n, system.runtime.cpu_count(), system.runtime.max_procs(), set_err:kind(),
                system.process.pid(), system.process.hostname(), system.process.cwd()}
    """)
    goroutines, cpus, procs, set_kind, pid, host, cwd = got
    assert goroutines >= 1 and cpus >= 1 and procs == 1 and set_kind == "UNAVAILABLE"
    assert pid == os.getpid() and host == socket.gethostname() and cwd == os.getcwd()


async def test_goroutines_count_lua_tasks() -> None:
    got = await ok_result("""
        local time = nil
        local base = system.runtime.goroutines()
        local ch = channel.new()
        for i = 1, 5 do coroutine.spawn(function() ch:receive() end) end
        local busy = system.runtime.goroutines()
        for i = 1, 5 do ch:send(i) end
        return {busy - base}
    """)
    assert got == [5]


async def test_modules_list() -> None:
    got = await ok_result("local mods = system.modules(); return mods")
    by_name = {m["name"]: m for m in got}
    assert {"system", "json", "expr", "text", "metrics"} <= set(by_name)
    assert by_name["system"]["class"] == ["process", "nondeterministic"]
    assert by_name["text"]["description"].startswith("regular expressions")
    assert [m["name"] for m in got] == sorted(by_name)


async def test_node_and_standalone_cluster() -> None:
    got = await ok_result("""
        return {system.node.id(), system.node.role(), system.cluster.members(), system.cluster.leader(),
                system.cluster.size()}
    """)
    assert got == ["n1", "non-member", [{"id": "n1", "is_local": True}], "", 1]


async def test_unavailable_parts_say_so() -> None:
    got = await ok_result("""
        local out = {}
        local calls = {
            function() return system.exit(0) end,
            function() return system.supervisor.state("app:svc") end,
            function() return system.supervisor.states() end,
            function() return system.hosts.list() end,
            function() return system.hosts.processes("app:host") end,
            function() return system.node.addr() end,
            function() return system.raft.is_leader() end,
            function() return system.raft.stats() end,
            function() return system.lock.acquire("orders.migration") end,
            function() return system.lock.release("orders.migration") end,
        }
        for i, call in ipairs(calls) do
            local v, err = call()
            out[i] = {v == nil, err:kind(), err:message()}
        end
        local _, bad = system.lock.acquire(42)
        out[#out + 1] = {bad:kind()}
        return out
    """)
    assert all(r[0] is True and r[1] == "UNAVAILABLE" for r in got[:10]), got
    assert "system.exit" in got[0][2] and "raft not running" in got[6][2]
    assert got[10] == ["INVALID"]


async def test_strict_mode_denies_everything_without_an_actor() -> None:
    got = await ok_result("""
        local out = {}
        local calls = {
            system.memory.stats, system.memory.allocated, system.memory.heap_objects, system.memory.get_limit,
            function() return system.memory.set_limit(1e8) end, system.gc.collect, system.gc.get_percent,
            function() return system.gc.set_percent(100) end, system.runtime.goroutines, system.runtime.cpu_count,
            system.runtime.max_procs, function() return system.runtime.max_procs(2) end, system.process.pid,
            system.process.hostname, system.process.cwd, system.modules, system.node.id, system.cluster.size,
            system.raft.role, function() return system.exit(1) end, function() return system.lock.acquire("x") end,
            system.hosts.list, system.supervisor.states,
        }
        for i, call in ipairs(calls) do
            local v, err = call()
            out[i] = v == nil and err:kind() or "allowed"
        end
        return out
    """, strict=True)
    assert got == ["PERMISSION_DENIED"] * 23


async def test_policies_name_each_resource() -> None:
    allow = Entry("app.sec:sysread", "security.policy", {}, {
        "policy": {"actions": "system.read", "resources": ["memory", "pid"], "effect": "allow"}, "groups": []})
    callee = fn("app:probe", """
        local system = require("system")
        return { call = function()
            local function k(v, err) return err and err:kind() or "ok" end
            return {k(system.memory.allocated()), k(system.process.pid()), k(system.process.hostname()),
                    k(system.gc.collect()), k(system.memory.set_limit(1e8))}
        end }
    """, modules=["system"])
    caller = fn("app:caller", """
        local security = require("security")
        local funcs = require("funcs")
        return { call = function()
            local scope = security.new_scope({security.policy("app.sec:sysread")})
            return funcs.new():with_actor(security.new_actor("u1")):with_scope(scope):call("app:probe")
        end }
    """, modules=["security", "funcs"])
    ok, res = await run_entry(caller, callee, allow)
    assert ok, res
    assert res[0] == ["ok", "ok", "PERMISSION_DENIED", "PERMISSION_DENIED", "PERMISSION_DENIED"]


async def test_module_tables_are_read_only() -> None:
    got = await ok_result("""
        return {(pcall(function() system.memory.stats = nil end)), (pcall(function() system.exit = nil end))}
    """)
    assert got == [False, False]
