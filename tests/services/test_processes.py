"""The process runtime end to end: Lua processes on a real node (services/_processes.py, the
`process` global of lua_stdlib/_process.py and lua/process.lua), with every message and lifecycle
change read back from the ``proc`` stream and the process projection.

Nothing here waits by sleeping. Where a test must know that something did *not* happen (no
EXIT after unmonitor, no LINK_DOWN after a normal exit), the process sends itself a message and
waits for it (``util.barrier``): on one node every message and signal travels the node's one
subject in order, so whatever was sent before the barrier has been routed when it comes back.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wippy.core import DefinitionErrors, Entry, NotFoundError, PayloadTooLargeError, Record, proc_records
from wippy.lua_stdlib import HostContext, LuaHost, decode_binary
from wippy.services import Node, RuntimeSettings, StateDir
from wippy.services._processes import ProcessError, ProcessRuntime

from .conftest import HOSTS, ProcNode, lua

UTIL = """
local util = {}
-- returns once everything sent to this process before the call has been routed (one node)
function util.barrier()
    local ch = process.listen("util.barrier")
    process.send(process.pid(), "util.barrier", true)
    ch:receive()
    process.unlisten(ch)
end
-- what a channel holds now, without waiting
function util.drain(ch)
    local out = {}
    while true do
        local r = channel.select({ ch:case_receive(), default = true })
        if r.default then return out end
        out[#out + 1] = r.value
    end
end
function util.event(ev)
    return { kind = ev.kind, from = ev.from, at = type(ev.at), result = ev.result, reason = ev.reason }
end
function util.kinds(events)
    local out = {}
    for i, ev in ipairs(events) do out[i] = ev.kind end
    return out
end
function util.data(messages)
    local out = {}
    for i, m in ipairs(messages) do out[i] = m:payload():data() end
    return out
end
return util
"""

#: small processes most tests use
COMMON = (
    lua("app:util", UTIL, kind="library.lua", method=None),
    lua("app:ret", "return { main = function(...) return ... end }"),
    lua("app:fail", "return { main = function(msg) error(msg or 'boom') end }"),
    lua("app:fail_ret", "return { main = function(msg) return nil, msg end }"),
    lua("app:fail_obj", """return { main = function()
        return nil, errors.new({ message = "typed failure", kind = errors.INVALID })
    end }"""),
    lua("app:block", "return { main = function() process.listen('never'):receive() end }"),
    lua("app:wait_go_fail", "return { main = function() process.listen('go'):receive(); error('went wrong') end }"),
    # echoes each message's payload to its sender on "echo"; "stop" ends it with the payload as result
    lua("app:echo", """return { main = function()
        local inbox = process.inbox()
        while true do
            local msg = inbox:receive()
            local p = msg:payload()
            local data = p and p:data()
            if msg:from() then process.send(msg:from(), "echo", data) end
            if msg:topic() == "stop" then return data end
        end
    end }"""),
)


@pytest.fixture
async def app(proc_node: ProcNode) -> ProcNode:
    await proc_node.apply(*COMMON)
    return proc_node


def driver(name: str, source: str, **kw: Any) -> Entry:
    """A process entry that may ``require("util")``."""
    return lua(name, source, imports={"util": "app:util"}, **kw)


async def run(pn: ProcNode, name: str, source: str, *args: Any, **kw: Any) -> Any:
    """Apply a driver process, run it, and return its result (failing the test on an error exit)."""
    await pn.apply(driver(name, source, **kw))
    value, error = await pn.run(name, *args)
    assert error is None, error
    return value


WAIT = 20  # seconds: only a hang guard, never a timing assertion


async def wait(pn: ProcNode, pid: str) -> tuple[Any, str | None]:
    """The (result, error) of a process of the node, when it ends."""
    result: tuple[Any, str | None] = await asyncio.wait_for(pn.processes.wait(pid), WAIT)
    return result


async def proc_records_of(pn: ProcNode) -> list[Record]:
    """Every record of the proc stream, once the node has written what it queued."""
    await pn.processes.flush()
    node = pn.node
    return [rec for _seq, rec in await node.store.read(node.subjects.proc_stream)]


async def settle(pn: ProcNode) -> None:
    """Return once every message sent to this node so far has been routed (a node-level barrier)."""
    pid = pn.spawn("app:echo")
    pn.processes.send(None, pid, "stop", [None])
    assert await wait(pn, pid) == (None, None)


# -- 1. messages --------------------------------------------------------------------------------------

DESCRIBE = """
local function describe(msg)
    local p = msg:payload()
    local d = { topic = msg:topic(), from = msg:from() }
    if p == nil then
        d.shape = "none"
    elseif payload.is(p) then
        d.shape = "one"
        d.data = p:data()
    else
        d.shape = "many"
        d.data = {}
        for i, w in ipairs(p) do
            assert(payload.is(w), "not a payload wrapper")
            d.data[i] = w:data()
        end
    end
    return d
end
return { main = function()
    local inbox = process.inbox()
    while true do
        local msg = inbox:receive()
        if msg:topic() == "stop" then return "stopped" end
        process.send(msg:from(), "described", describe(msg))
    end
end }
"""


async def test_messages_carry_topic_sender_and_payload_wrappers(app: ProcNode) -> None:
    await app.apply(lua("app:describe", DESCRIBE))
    out = await run(app, "app:ask", """return { main = function()
        local child = process.spawn("app:describe", "app:procs")
        local replies = process.listen("described")
        process.send(child, "one", { a = 1, list = { 1, 2 } })
        process.send(child, "many", 1, "two", { 3 })
        process.send(child, "none")
        local out = { me = process.pid(), child = child }
        out.one = replies:receive()
        out.many = replies:receive()
        out.none = replies:receive()
        process.unlisten(replies)
        local as_messages = process.listen("described", { message = true })
        process.send(child, "again", "x")
        local m = as_messages:receive()
        out.msg = { topic = m:topic(), from = m:from(), data = m:payload():data(), str = tostring(m) }
        process.send(child, "stop")
        return out
    end }""")
    me, child = out["me"], out["child"]
    assert me != child and me.startswith("{n1@app:procs|0x") and child.startswith("{n1@app:procs|0x")
    assert out["one"] == {"topic": "one", "from": me, "shape": "one", "data": {"a": 1, "list": [1, 2]}}
    assert out["many"] == {"topic": "many", "from": me, "shape": "many", "data": [1, "two", [3]]}
    assert out["none"] == {"topic": "none", "from": me, "shape": "none"}
    assert out["msg"] == {"topic": "described", "from": child, "str": "message(described)",
                          "data": {"topic": "again", "from": me, "shape": "one", "data": "x"}}


async def test_messages_from_outside_a_process_have_no_sender(app: ProcNode) -> None:
    await app.apply(lua("app:from_of", """return { main = function()
        local m = process.inbox():receive()
        return { from = m:from() == nil, topic = m:topic(), data = m:payload():data() }
    end }"""))
    pid = app.spawn("app:from_of")
    app.processes.send(None, pid, "hi", [{"k": [1, 2]}])
    assert await wait(app, pid) == ({"from": True, "topic": "hi", "data": {"k": [1, 2]}}, None)


async def test_each_senders_messages_arrive_in_order(app: ProcNode) -> None:
    await app.apply(lua("app:sender", """return { main = function(dest, tag, n)
        for i = 1, n do process.send(dest, "seq", { tag = tag, i = i }) end
        return n
    end }"""))
    out = await run(app, "app:collector", """return { main = function(senders, n)
        local inbox = process.inbox()
        for s = 1, senders do process.spawn("app:sender", "app:procs", process.pid(), "s" .. s, n) end
        local seen, in_order = {}, true
        for _ = 1, senders * n do
            local d = inbox:receive():payload():data()
            local last = seen[d.tag] or 0
            if d.i ~= last + 1 then in_order = false end
            seen[d.tag] = d.i
        end
        return { seen = seen, in_order = in_order }
    end }""", 3, 300)
    assert out == {"seen": {"s1": 300, "s2": 300, "s3": 300}, "in_order": True}


# -- 2. the mailbox: queued messages, "@" topics, unlisten -------------------------------------------------


async def test_unsubscribed_messages_wait_in_order_until_someone_listens(app: ProcNode) -> None:
    await app.apply(driver("app:late_reader", """local util = require("util")
    return { main = function()
        process.listen("go"):receive()          -- all the others were sent first: they are queued now
        local b = process.listen("b")
        local b1 = b:receive()
        local got_b = { b1, (b:receive()) }
        local inbox = process.inbox()
        local got = {}
        for i = 1, 3 do
            local m = inbox:receive()
            got[i] = { m:topic(), m:payload():data() }
        end
        util.barrier()
        local leftover = #util.drain(inbox)    -- "@sys" never reaches the inbox
        local sys = process.listen("@sys"):receive()
        return { b = got_b, inbox = got, leftover = leftover, sys = sys }
    end }"""))
    pid = app.spawn("app:late_reader")
    for topic, value in [("a", 1), ("b", 10), ("@sys", "s"), ("a", 2), ("b", 20), ("c", 3), ("go", True)]:
        app.processes.send(None, pid, topic, [value])
    value, error = await wait(app, pid)
    assert error is None
    assert value == {"b": [10, 20], "inbox": [["a", 1], ["a", 2], ["c", 3]], "leftover": 0, "sys": "s"}


async def test_unlisten_sends_later_messages_to_the_inbox(app: ProcNode) -> None:
    out = await run(app, "app:unlisten", """return { main = function()
        local ch = process.listen("t")
        local again = process.listen("t")      -- the same topic gives the same channel
        process.send(process.pid(), "t", 1)
        local first = ch:receive()
        local removed = process.unlisten(ch)
        process.send(process.pid(), "t", 2)
        local m = process.inbox():receive()
        return { same = ch == again, first = first, removed = removed, topic = m:topic(),
                 second = m:payload():data(), removed_again = process.unlisten(ch) }
    end }""")
    assert out == {"same": True, "first": 1, "removed": True, "topic": "t", "second": 2, "removed_again": False}


async def test_listen_with_message_option_gives_message_objects(app: ProcNode) -> None:
    out = await run(app, "app:listen_msg", """return { main = function()
        local ch = process.listen("m", { message = true })
        process.send(process.pid(), "m", "a", "b")
        local m = ch:receive()
        local p = m:payload()
        return { topic = m:topic(), from = m:from() == process.pid(), first = p[1]:data(), second = p[2]:data() }
    end }""")
    assert out == {"topic": "m", "from": True, "first": "a", "second": "b"}


# -- 3. monitors ----------------------------------------------------------------------------------------------


async def test_monitor_gives_exit_events_with_value_or_error(app: ProcNode) -> None:
    out = await run(app, "app:watcher", """local util = require("util")
    return { main = function()
        local events = process.events()
        local out = {}
        local function watch(name, id, ...)
            local pid = process.spawn_monitored(id, "app:procs", ...)
            local ev = events:receive()
            out[name] = util.event(ev)
            out[name].same_pid = ev.from == pid
        end
        watch("ok", "app:ret", { x = 1 })
        watch("raised", "app:fail", "it broke")
        watch("returned", "app:fail_ret", "bad thing")
        watch("typed", "app:fail_obj")
        out.constant = process.event.EXIT
        return out
    end }""")
    assert out["constant"] == "pid.exit"
    for name in ("ok", "raised", "returned", "typed"):
        assert out[name]["kind"] == "pid.exit" and out[name]["same_pid"] is True and out[name]["at"] == "number"
    assert out["ok"]["result"] == {"value": {"x": 1}}
    assert set(out["raised"]["result"]) == {"error"} and "it broke" in out["raised"]["result"]["error"]
    assert out["returned"]["result"] == {"error": "bad thing"}
    assert out["typed"]["result"] == {"error": "typed failure"}


async def test_unmonitor_stops_exit_events_and_a_dead_pid_reports_at_once(app: ProcNode) -> None:
    out = await run(app, "app:unmonitor", """local util = require("util")
    return { main = function()
        local events = process.events()
        local replies = process.listen("echo")
        local pid = process.spawn_monitored("app:echo", "app:procs")
        local unmonitored = process.unmonitor(pid)
        process.send(pid, "stop", "bye")
        local bye = replies:receive()           -- echo ended right after replying
        util.barrier()
        local quiet = #util.drain(events)
        local again = process.monitor(pid)      -- monitoring a dead process reports its exit at once
        local dead = util.event(events:receive())
        process.monitor("{n1@app:procs|0xfffffffffff}")
        local unknown = util.event(events:receive())
        return { unmonitored = unmonitored, bye = bye, quiet = quiet, again = again, dead = dead,
                 pid = pid, unknown = unknown }
    end }""")
    assert out["unmonitored"] is True and out["again"] is True and out["bye"] == "bye" and out["quiet"] == 0
    assert out["dead"]["kind"] == "pid.exit" and out["dead"]["from"] == out["pid"]
    assert "no such process" in out["dead"]["result"]["error"]
    assert out["unknown"]["from"] == "{n1@app:procs|0xfffffffffff}"
    assert "no such process" in out["unknown"]["result"]["error"]


async def test_messages_sent_before_an_exit_arrive_before_its_exit_event(app: ProcNode) -> None:
    await app.apply(lua("app:chatty", """return { main = function(dest, n)
        for i = 1, n do process.send(dest, "note", i) end
        return "done"
    end }"""))
    out = await run(app, "app:listener", """local util = require("util")
    return { main = function()
        local inbox = process.inbox()
        local events = process.events()
        process.spawn_monitored("app:chatty", "app:procs", process.pid(), 100)
        local ev = events:receive()
        return { kind = ev.kind, value = ev.result.value, notes = util.data(util.drain(inbox)) }
    end }""")
    assert out == {"kind": "pid.exit", "value": "done", "notes": list(range(1, 101))}


# -- 4. links -------------------------------------------------------------------------------------------------


async def test_a_failing_linked_process_kills_its_partner(app: ProcNode) -> None:
    await app.apply(lua("app:linker", """return { main = function()
        process.spawn_linked("app:fail", "app:procs", "boom")
        process.listen("never"):receive()
    end }"""))
    value, error = await app.run("app:linker")
    assert value is None and error is not None
    assert error.startswith("linked process {n1@app:procs|0x") and "failed" in error and "boom" in error


async def test_link_failure_travels_along_a_chain(app: ProcNode) -> None:
    await app.apply(lua("app:chain", """return { main = function(depth)
        if depth == 0 then error("bottom broke") end
        process.spawn_linked("app:chain", "app:procs", depth - 1)
        process.listen("never"):receive()
    end }"""))
    value, error = await app.run("app:chain", 3)
    assert value is None and error is not None
    assert error.count("linked process {n1@app:procs|") == 3 and error.endswith("bottom broke")
    assert not app.processes.procs  # every link of the chain is gone


async def test_trap_links_turns_a_partners_failure_into_link_down(app: ProcNode) -> None:
    out = await run(app, "app:trapper", """local util = require("util")
    return { main = function()
        local before = process.get_options().trap_links
        assert(process.set_options({ trap_links = true }))
        local pid = process.spawn_linked("app:fail", "app:procs", "boom")
        local ev = process.events():receive()
        local out = util.event(ev)
        out.same = ev.from == pid
        out.before, out.after = before, process.get_options().trap_links
        -- a normal exit never gives LINK_DOWN
        process.spawn_linked_monitored("app:ret", "app:procs", 7)
        local exit = process.events():receive()
        util.barrier()
        out.exit = { kind = exit.kind, value = exit.result.value }
        out.later = util.kinds(util.drain(process.events()))
        out.constant = process.event.LINK_DOWN
        return out
    end }""")
    assert out["kind"] == "pid.link.down" == out["constant"] and out["same"] is True and out["at"] == "number"
    assert "boom" in out["result"]["error"]
    assert out["before"] is False and out["after"] is True
    assert out["exit"] == {"kind": "pid.exit", "value": 7}
    assert out["later"] == []


async def test_unlink_keeps_a_process_alive_when_its_former_partner_fails(app: ProcNode) -> None:
    out = await run(app, "app:unlinker", """local util = require("util")
    return { main = function()
        local pid = process.spawn_linked("app:wait_go_fail", "app:procs")
        local unlinked = process.unlink(pid)
        process.monitor(pid)
        process.send(pid, "go", true)
        local ev = process.events():receive()
        util.barrier()
        return { unlinked = unlinked, kind = ev.kind, error = ev.result.error }
    end }""")
    assert out["unlinked"] is True and out["kind"] == "pid.exit" and "went wrong" in out["error"]


async def test_link_by_call_to_live_dead_and_own_pid(app: ProcNode) -> None:
    out = await run(app, "app:link_calls", """local util = require("util")
    return { main = function()
        process.set_options({ trap_links = true })
        local ok, self_err = process.link(process.pid())
        local dead = process.spawn_monitored("app:ret", "app:procs", 1)
        process.events():receive()
        local linked_dead = process.link(dead)
        local ev_dead = util.event(process.events():receive())
        local victim = process.spawn("app:wait_go_fail", "app:procs")
        local linked = process.link(victim)
        process.send(victim, "go", true)
        local ev_live = util.event(process.events():receive())
        return { self_ok = ok == nil, self_kind = self_err:kind(), self_msg = tostring(self_err),
                 linked_dead = linked_dead, dead = ev_dead, linked = linked, live = ev_live }
    end }""")
    assert out["self_ok"] is True and out["self_kind"] == "INVALID" and "itself" in out["self_msg"]
    assert out["linked_dead"] is True and out["dead"]["kind"] == "pid.link.down"
    assert "no such process" in out["dead"]["result"]["error"]
    assert out["linked"] is True and out["live"]["kind"] == "pid.link.down"
    assert "went wrong" in out["live"]["result"]["error"]


async def test_a_failing_process_kills_the_processes_linked_to_it(app: ProcNode) -> None:
    await app.apply(lua("app:link_then_fail", """return { main = function(peer)
        assert(process.link(peer))
        error("parent gave up")
    end }"""))
    victim = app.spawn("app:block")
    value, error = await app.run("app:link_then_fail", victim)
    assert value is None and error is not None and "parent gave up" in error
    _v, victim_error = await wait(app, victim)
    assert victim_error is not None and "parent gave up" in victim_error and "linked process" in victim_error


# -- 5. cancel and terminate ----------------------------------------------------------------------------------


async def test_cancel_delivers_a_cancel_event_with_the_reason(app: ProcNode) -> None:
    await app.apply(lua("app:cancelable", """return { main = function()
        local ev = process.events():receive()
        return { kind = ev.kind, reason = ev.reason, from = ev.from, at = type(ev.at) }
    end }"""))
    out = await run(app, "app:canceller", """return { main = function()
        local events = process.events()
        local pid = process.spawn_monitored("app:cancelable", "app:procs")
        local ok = process.cancel(pid, "shutting down")
        local first = events:receive().result.value
        pid = process.spawn_monitored("app:cancelable", "app:procs")
        process.cancel(pid)
        local second = events:receive().result.value
        return { ok = ok, me = process.pid(), first = first, second = second, constant = process.event.CANCEL }
    end }""")
    assert out["ok"] is True
    assert out["first"] == {"kind": "pid.cancel", "reason": "shutting down", "from": out["me"], "at": "number"}
    assert out["second"] == {"kind": "pid.cancel", "from": out["me"], "at": "number"}
    assert out["constant"] == "pid.cancel"


async def test_terminate_ends_the_target_with_an_error(app: ProcNode) -> None:
    out = await run(app, "app:terminator", """return { main = function()
        local pid = process.spawn_monitored("app:block", "app:procs")
        local ok = process.terminate(pid)
        local ev = process.events():receive()
        return { ok = ok, pid = pid, kind = ev.kind, from = ev.from, error = ev.result.error }
    end }""")
    assert out["ok"] is True and out["kind"] == "pid.exit" and out["from"] == out["pid"]
    assert "terminated" in out["error"]
    exited = [r.body for r in await proc_records_of(app) if r.type == proc_records.EXITED
              and r.body["pid"] == out["pid"]]
    assert exited == [{"pid": out["pid"], "entry": "app:block", "ok": False, "result": None,
                       "error": out["error"], "kind": "CANCELED"}]


async def test_terminate_from_the_host_ends_a_process(app: ProcNode) -> None:
    pid = app.spawn("app:block")
    app.processes.terminate("{n1@app:procs|0x00000}", pid)
    value, error = await wait(app, pid)
    assert value is None and error is not None and "terminated" in error


# -- 6. exec, coroutines, pids ------------------------------------------------------------------------------


async def test_exec_returns_the_result_or_an_error(app: ProcNode) -> None:
    out = await run(app, "app:execer", """return { main = function()
        local out = {}
        local v, err = process.exec("app:ret", "app:procs", { a = 1 })
        out.ok = { v = v, err = err == nil }
        v, err = process.exec("app:fail", "app:procs", "exec boom")
        out.raised = { v = v == nil, msg = tostring(err), kind = err:kind() }
        v, err = process.exec("app:fail_obj", "app:procs")
        out.typed = { v = v == nil, msg = err:message(), kind = err:kind() }
        v, err = process.exec("app:nope", "app:procs")
        out.missing = { v = v == nil, kind = err:kind() }
        return out
    end }""")
    assert out["ok"] == {"v": {"a": 1}, "err": True}
    assert out["raised"]["v"] is True and "exec boom" in out["raised"]["msg"] and out["raised"]["kind"] == "UNKNOWN"
    assert out["typed"] == {"v": True, "msg": "typed failure", "kind": "INVALID"}
    assert out["missing"] == {"v": True, "kind": "NOT_FOUND"}


async def test_coroutines_share_the_pid_and_die_with_main(app: ProcNode) -> None:
    await app.apply(lua("app:whoami", "return { main = function() return process.pid() end }", kind="function.lua"))
    await app.apply(lua("app:spawner", """local funcs = require("funcs")
    return { main = function()
        local pids = channel.new(1)
        coroutine.spawn(function()
            pids:send(process.pid())
            process.listen("never"):receive()  -- would wait forever
        end)
        local callee = funcs.call("app:whoami")
        return { main = process.pid(), inner = pids:receive(), callee = callee }
    end }""", modules=["funcs"]))
    pid = app.spawn("app:spawner")
    value, error = await wait(app, pid)
    assert error is None
    assert value == {"main": pid, "inner": pid, "callee": pid}
    tasks = app.processes.host("app:procs").vm.S.tasks
    assert [t for t in tasks.values() if t.proc is not None and t.proc.pid == pid] == []


async def test_function_code_outside_processes_uses_the_hosts_pid(app: ProcNode) -> None:
    await app.apply(lua("app:asker", """return { main = function()
        local echo = process.spawn_monitored("app:echo", "app:procs")
        local replies = process.listen("echo")
        process.send(echo, "x", "from a function")
        local reply = replies:receive()
        process.send(echo, "stop", "done")
        local ev = process.events():receive()
        local linked, err = process.spawn_linked("app:block", "app:procs")
        return { me = process.pid(), reply = reply, exit = ev.result.value, linked = linked == nil,
                 link_kind = err:kind(), link_msg = tostring(err) }
    end }""", kind="function.lua"))
    host = app.processes.host("app:procs")
    entry = app.node.registry.get("app:asker")
    assert entry is not None
    ok, results = await asyncio.wait_for(host.vm.run(host.callable(entry)), WAIT)
    assert ok is True
    out = host.vm.from_lua(results[0])
    assert out["me"] == "{n1@app:procs|0x00000}"
    assert out["reply"] == "from a function" and out["exit"] == "done"
    assert out["linked"] is True and out["link_kind"] == "INVALID" and "only a process can link" in out["link_msg"]
    assert not app.processes.procs  # the refused spawn_linked started nothing


async def test_an_error_exit_keeps_the_lua_traceback(app: ProcNode) -> None:
    await app.apply(lua("app:deep", """local function inner() error("deep down") end
    return { main = function() inner() end }"""))
    pid = app.spawn("app:deep")
    proc = app.processes.procs[pid]
    value, error = await wait(app, pid)
    assert value is None and error == "app:deep:1: deep down"
    assert proc.trace.startswith("stack traceback:") and "in upvalue 'inner'" in proc.trace
    assert "xpcall" not in proc.trace


# -- 7. names -------------------------------------------------------------------------------------------------


async def test_names_register_lookup_send_and_unregister(app: ProcNode) -> None:
    out = await run(app, "app:namer", """return { main = function()
        local me = process.pid()
        local out = {}
        out.reg = process.registry.register("svc")
        out.lookup = process.registry.lookup("svc") == me
        local ch = process.listen("by_name")
        out.sent = process.send("svc", "by_name", "hello")
        out.got = ch:receive()
        out.again = process.registry.register("svc")   -- its holder may register it again
        local other = process.spawn("app:block", "app:procs")
        local ok, err = process.registry.register("svc", other)
        out.taken = { ok = ok == nil, kind = err:kind(), msg = tostring(err) }
        out.unreg = process.registry.unregister("svc")
        out.unreg_again = process.registry.unregister("svc")
        local pid, lerr = process.registry.lookup("svc")
        out.gone = { pid = pid == nil, kind = lerr:kind() }
        local sent, serr = process.send("svc", "by_name", 1)
        out.send_unknown = { sent = sent == nil, kind = serr:kind() }
        out.other = process.registry.register("other", other)
        out.other_lookup = process.registry.lookup("other") == other
        local _, derr = process.registry.register("ghost", "{n1@app:procs|0xfffffffffff}")
        out.dead_pid = derr:kind()
        process.terminate("other")                    -- by name
        return out
    end }""")
    assert out["reg"] is True and out["lookup"] is True and out["sent"] is True and out["got"] == "hello"
    assert out["again"] is True
    assert out["taken"]["ok"] is True and out["taken"]["kind"] == "ALREADY_EXISTS" and "svc" in out["taken"]["msg"]
    assert out["unreg"] is True and out["unreg_again"] is False
    assert out["gone"] == {"pid": True, "kind": "NOT_FOUND"}
    assert out["send_unknown"] == {"sent": True, "kind": "NOT_FOUND"}
    assert out["other"] is True and out["other_lookup"] is True
    assert out["dead_pid"] == "NOT_FOUND"


async def test_names_are_released_when_their_process_ends(app: ProcNode) -> None:
    await app.apply(lua("app:holder", """return { main = function(name, parent)
        assert(process.registry.register(name))
        process.send(parent, "ready", true)
        process.inbox():receive()
        return name
    end }"""))
    out = await run(app, "app:release", """return { main = function()
        local pid = process.spawn_monitored("app:holder", "app:procs", "temp", process.pid())
        process.listen("ready"):receive()
        local held = process.registry.lookup("temp") == pid
        process.send("temp", "stop", true)
        local ev = process.events():receive()
        local after, err = process.registry.lookup("temp")
        -- with_name: the spawner registers the name; a taken name refuses the spawn
        local w = process.with_options({}):with_name("worker"):spawn_monitored("app:block", "app:procs")
        local named = process.registry.lookup("worker") == w
        local dup, derr = process.with_options({}):with_name("worker"):spawn("app:block", "app:procs")
        process.terminate("worker")
        process.events():receive()
        local freed = process.registry.lookup("worker")
        return { held = held, value = ev.result.value, after = after == nil, kind = err:kind(), named = named,
                 dup = dup == nil, dup_kind = derr:kind(), freed = freed == nil }
    end }""")
    assert out == {"held": True, "value": "temp", "after": True, "kind": "NOT_FOUND", "named": True,
                   "dup": True, "dup_kind": "ALREADY_EXISTS", "freed": True}
    names = [(r.type, r.body) for r in await proc_records_of(app)
             if r.type in (proc_records.REGISTERED, proc_records.UNREGISTERED)]
    assert [t for t, b in names if b["name"] == "temp"] == [proc_records.REGISTERED, proc_records.UNREGISTERED]


# -- 8. Spawner -----------------------------------------------------------------------------------------------


async def test_spawner_context_is_visible_through_ctx(app: ProcNode) -> None:
    await app.apply(lua("app:ctx_reader", """local ctx = require("ctx")
    return { main = function()
        local _, err = ctx.get("nope")
        return { k = ctx.get("k"), all = ctx.all(), missing = err:kind() }
    end }""", modules=["ctx"]))
    out = await run(app, "app:ctx_spawner", """return { main = function()
        local s = process.with_context({ k = "v", n = 2 }):with_context({ m = true })
        local exec_value = s:exec("app:ctx_reader", "app:procs")
        local pid = s:spawn_monitored("app:ctx_reader", "app:procs")
        local spawned = process.events():receive().result.value
        local plain = process.exec("app:ctx_reader", "app:procs")
        return { exec = exec_value, spawned = spawned, plain = plain }
    end }""")
    expected = {"k": "v", "all": {"k": "v", "n": 2, "m": True}, "missing": "NOT_FOUND"}
    assert out["exec"] == expected and out["spawned"] == expected
    assert out["plain"]["missing"] == "NOT_FOUND" and "k" not in out["plain"]


async def test_spawned_processes_get_only_the_security_the_spawner_gives(app: ProcNode) -> None:
    await app.apply(
        lua("app:who", """local security = require("security")
        return { main = function()
            local a, s = security.actor(), security.scope()
            return { actor = a and a:id(), meta = a and a:meta(), scope = s ~= nil }
        end }""", modules=["security"]),
        lua("app:who_then_child", """local security = require("security")
        return { main = function()
            local a = security.actor()
            return { me = a and a:id(), child = process.exec("app:who", "app:procs") }
        end }""", modules=["security"]),
    )
    out = await run(app, "app:sec_spawner", """local security = require("security")
    return { main = function()
        local actor = security.new_actor("alice", { role = "admin" })
        local s = process.with_options({}):with_actor(actor)
        return {
            with_actor = s:exec("app:who", "app:procs"),
            with_both = s:with_scope(security.new_scope()):exec("app:who", "app:procs"),
            plain = process.exec("app:who", "app:procs"),
            nested = s:exec("app:who_then_child", "app:procs"),
        }
    end }""", modules=["security"])
    assert out["with_actor"] == {"actor": "alice", "meta": {"role": "admin"}, "scope": False}
    assert out["with_both"] == {"actor": "alice", "meta": {"role": "admin"}, "scope": True}
    assert out["plain"] == {"scope": False}
    assert out["nested"] == {"me": "alice", "child": {"scope": False}}


async def test_spawner_messages_arrive_first(app: ProcNode) -> None:
    await app.apply(lua("app:collect3", """return { main = function(parent)
        local inbox = process.inbox()
        local got = {}
        for i = 1, 3 do
            local m = inbox:receive()
            local p = m:payload()
            if payload.is(p) then got[i] = { m:topic(), p:data() }
            else got[i] = { m:topic(), p[1]:data(), p[2]:data() } end
        end
        process.send(parent, "collected", got)
    end }"""))
    out = await run(app, "app:msg_spawner", """return { main = function()
        local s = process.with_options({}):with_message("first", 1):with_message("second", "two", 2)
        local child = s:spawn("app:collect3", "app:procs", process.pid())
        process.send(child, "third", 3)
        return (process.listen("collected"):receive())
    end }""")
    assert out == [["first", 1], ["second", "two", 2], ["third", 3]]


# -- 9. records and the projection ---------------------------------------------------------------------------


async def test_the_proc_stream_records_lifecycle_and_messages(app: ProcNode) -> None:
    await app.apply(driver("app:recorded", """return { main = function()
        local pid = process.spawn_monitored("app:echo", "app:procs")
        local replies = process.listen("echo")
        process.send(pid, "x", { k = 1 })
        replies:receive()
        process.send(pid, "stop", "bye")
        replies:receive()
        process.events():receive()
        return pid
    end }"""))
    me = app.spawn("app:recorded")
    echo, error = await wait(app, me)
    assert error is None
    records = await proc_records_of(app)
    assert all(r.node == "n1" for r in records)
    bodies = [(r.type, r.body) for r in records]
    assert (proc_records.SPAWNED, {"pid": me, "entry": "app:recorded", "host": "app:procs", "parent": None,
                                   "linked": False, "monitored": False}) in bodies
    assert (proc_records.SPAWNED, {"pid": echo, "entry": "app:echo", "host": "app:procs", "parent": me,
                                   "linked": False, "monitored": True}) in bodies
    assert (proc_records.MONITORED, {"pid": me, "target": echo}) in bodies
    sent = [b for t, b in bodies if t == proc_records.MESSAGE and b["from"] == me]
    assert [(b["to"], b["topic"], b["payload"]) for b in sent] == [(echo, "x", [{"k": 1}]), (echo, "stop", ["bye"])]
    assert all(isinstance(b["bytes"], int) and b["bytes"] > 0 for b in sent)
    replies = [b["payload"] for t, b in bodies if t == proc_records.MESSAGE and b["from"] == echo]
    assert replies == [[{"k": 1}], ["bye"]]
    assert (proc_records.EXITED, {"pid": echo, "entry": "app:echo", "ok": True, "result": "bye", "error": None,
                                  "kind": None}) in bodies
    assert (proc_records.EXITED, {"pid": me, "entry": "app:recorded", "ok": True, "result": echo, "error": None,
                                  "kind": None}) in bodies
    assert (proc_records.SIGNAL, {"to": me, "from": echo, "signal": "exit", "result": {"value": "bye"},
                                  "reason": None}) in bodies
    types = [t for t, b in bodies if b.get("pid") == echo]
    assert types.index(proc_records.SPAWNED) < types.index(proc_records.EXITED)


async def test_a_message_to_a_dead_pid_becomes_a_dead_letter(app: ProcNode) -> None:
    dead = app.spawn("app:ret", 1)
    assert await wait(app, dead) == (1, None)
    app.processes.send(None, dead, "late", ["x"])
    app.processes.send(None, "{n1@app:procs|0xfffffffffff}", "never", [])
    await settle(app)
    letters = [r.body for r in await proc_records_of(app) if r.type == proc_records.DEAD_LETTER]
    assert [(b["to"], b["from"], b["topic"], b["reason"]) for b in letters] == [
        (dead, None, "late", "no such process"), ("{n1@app:procs|0xfffffffffff}", None, "never", "no such process")]
    assert all(b["bytes"] > 0 for b in letters)
    with pytest.raises(NotFoundError):
        app.processes.send(None, "nobody", "t", [])


async def test_the_process_projection_shows_processes_messages_and_dead_letters(app: ProcNode) -> None:
    ok = app.spawn("app:echo")
    bad = app.spawn("app:fail", "projected failure")
    ok_done, bad_done = app.processes.wait(ok), app.processes.wait(bad)
    app.processes.send(None, ok, "stop", ["fine"])
    assert await ok_done == ("fine", None)
    assert (await bad_done)[1] is not None
    app.processes.send(None, bad, "late", [1])
    await settle(app)
    await app.processes.flush()
    rows = await app.node.registry.query(
        f"SELECT pid, entry_id, host, parent, node, status, exit_error FROM processes "
        f"WHERE pid IN ('{ok}', '{bad}') ORDER BY entry_id")
    assert [(r["pid"], r["entry_id"], r["host"], r["node"], r["status"]) for r in rows] == [
        (ok, "app:echo", "app:procs", "n1", "exited"), (bad, "app:fail", "app:procs", "n1", "failed")]
    assert rows[0]["exit_error"] is None and "projected failure" in rows[1]["exit_error"]
    messages = await app.node.registry.query(f"SELECT to_pid, topic FROM process_messages WHERE to_pid = '{ok}'")
    assert messages == [{"to_pid": ok, "topic": "stop"}]
    letters = await app.node.registry.query("SELECT to_pid, topic, reason FROM process_dead_letters")
    assert {"to_pid": bad, "topic": "late", "reason": "no such process"} in letters


# -- 10. bad input ------------------------------------------------------------------------------------------


async def test_bad_input_gives_clear_error_values(app: ProcNode) -> None:
    await app.apply(lua("app:broken", "return { main = function( end }"),
                    lua("app:a_function", "return { main = function() end }", kind="function.lua"))
    out = await run(app, "app:bad_input", """local metrics = require("metrics")
    return { main = function()
        local child = process.spawn("app:block", "app:procs")
        local out = {}
        local function res(ok, err)
            return { ok = ok == nil, kind = err and err:kind(), msg = err and tostring(err) }
        end
        out.fn = res(process.send(child, "t", function() end))
        out.nested_fn = res(process.send(child, "t", { f = function() end }))
        out.thread = res(process.send(child, "t", coroutine.create(function() end)))
        out.userdata = res(process.send(child, "t", metrics.counter_inc))
        out.at = res(process.send(child, "@x", 1))
        out.empty_topic = res(process.send(child, "", 1))
        out.number_topic = res(process.send(child, 5, 1))
        out.binary_topic = res(process.send(child, "\\255\\254", 1))
        out.no_dest = res(process.send(nil, "t", 1))
        out.bad_pid = res(process.send("{bad node@x|0x1}", "t", 1))
        out.unknown = res(process.spawn("app:nope", "app:procs"))
        out.not_host = res(process.spawn("app:ret", "app:ret"))
        out.no_host = res(process.spawn("app:ret", "app:nohost"))
        out.function_entry = res(process.spawn("app:a_function", "app:procs"))
        out.syntax = res(process.spawn("app:broken", "app:procs"))
        out.bad_arg = res(process.spawn("app:ret", "app:procs", function() end))
        out.bad_id = res(process.spawn(42, "app:procs"))
        out.bad_option = res(process.set_options({ trap_links = "yes" }))
        out.unknown_option = res(process.set_options({ fast = true }))
        out.exec_missing = res(process.exec("app:nope", "app:procs"))
        out.cancel_bad = res(process.cancel(nil))
        out.monitor_bad = res(process.monitor(7))
        out.listen_bad = select(2, pcall(process.listen, ""))
        out.listen_bad = out.listen_bad and out.listen_bad:kind()
        out.with_message_at_ok = process.with_options({}):with_message("@x", 1) ~= nil
        process.terminate(child)
        return out
    end }""", modules=["metrics"])
    for case in ("fn", "nested_fn", "thread", "userdata"):
        assert out[case]["ok"] is True and out[case]["kind"] == "INVALID", (case, out[case])
        assert "process.send" in out[case]["msg"], (case, out[case])
    for case in ("at", "empty_topic", "number_topic", "binary_topic", "no_dest", "bad_pid", "not_host",
                 "function_entry", "syntax", "bad_arg", "bad_id", "bad_option", "unknown_option", "cancel_bad",
                 "monitor_bad"):
        assert out[case]["ok"] is True and out[case]["kind"] == "INVALID", (case, out[case])
    for case in ("unknown", "no_host", "exec_missing"):
        assert out[case]["ok"] is True and out[case]["kind"] == "NOT_FOUND", (case, out[case])
    assert "app:broken" in out["syntax"]["msg"]
    assert "app:nope" in out["unknown"]["msg"] and "app:nohost" in out["no_host"]["msg"]
    assert "app:a_function" in out["function_entry"]["msg"] and "app:ret" in out["not_host"]["msg"]
    assert out["listen_bad"] == "INVALID"


async def test_bad_spawns_from_the_host_raise_named_errors(app: ProcNode) -> None:
    await app.apply(lua("app:broken", "return { main = function( end }"))
    with pytest.raises(ProcessError, match="app:broken"):
        app.spawn("app:broken")
    with pytest.raises(NotFoundError, match="app:nope"):
        app.spawn("app:nope")
    with pytest.raises(ProcessError, match="app:ret"):
        app.spawn("app:ret", host="app:ret")
    assert not app.processes.procs


async def test_a_host_out_of_lua_memory_refuses_spawns_clearly_and_recovers(app: ProcNode) -> None:
    await app.apply(Entry("app:small", "process.host", {}, {"host": {"max_memory": "2MB"}}),
                    lua("app:filler", """return { main = function(n)
                        local pids = {}
                        for i = 1, n do
                            local pid, err = process.spawn("app:block", "app:small")
                            if not pid then return {count = #pids, err = tostring(err), pids = pids} end
                            pids[i] = pid
                        end
                        return {count = #pids, pids = pids}
                    end }"""))
    out, err = await app.run("app:filler", 100_000)
    assert err is None, err
    assert 100 < out["count"] < 100_000
    assert "app:small has reached its Lua memory limit (2 MB" in out["err"]
    assert "host.max_memory" in out["err"]
    with pytest.raises(ProcessError, match="Lua memory limit"):
        app.spawn("app:block", host="app:small")
    # processes on other hosts are untouched; once the host's processes end, it takes new ones
    assert (await app.run("app:ret"))[1] is None
    for pid in out["pids"]:
        app.processes.terminate(None, pid)
    await app.processes.flush()
    for _ in range(200):
        if not any(p.host_id == "app:small" for p in app.processes.procs.values()):
            break
        await asyncio.sleep(0.05)
    assert (await app.run("app:ret", host="app:small"))[1] is None


async def test_a_hosts_mailbox_limit_comes_from_its_entry(app: ProcNode) -> None:
    await app.apply(Entry("app:tight", "process.host", {}, {"host": {"mailbox_limit": 2}}))
    pid = app.spawn("app:block", host="app:tight")
    for i in range(5):
        app.processes.send(None, pid, "t", [i])
    await app.processes.flush()
    rows = await app.node.registry.query(
        f"SELECT count(*) AS n FROM process_dead_letters WHERE to_pid = '{pid}' AND reason = 'mailbox full'")
    assert rows == [{"n": 3}]


async def test_host_settings_are_checked_when_applied(app: ProcNode) -> None:
    for host, field in (({"max_memory": "lots"}, "host.max_memory"), ({"max_memory": 1000}, "host.max_memory"),
                        ({"workers": 0}, "host.workers"), ("eight", "host"),
                        ({"mailbox_limit": -1}, "host.mailbox_limit")):
        with pytest.raises(DefinitionErrors) as caught:
            await app.apply(Entry("app:badhost", "process.host", {}, {"host": host}))
        assert field in str(caught.value) and "app:badhost" in str(caught.value)
    assert app.node.registry.get("app:badhost") is None


async def test_a_function_called_outside_a_process_has_a_pid_and_mailbox_of_its_own(app: ProcNode) -> None:
    # the request/reply an HTTP handler does: ask a process, wait for the answer on its own inbox
    await app.apply(
        lua("app:doubler", """return { main = function()
            local inbox = process.inbox()
            while true do
                local m = inbox:receive()
                process.send(m:from(), "answer", m:payload():data() * 2)
            end
        end }"""),
        lua("app:ask", """return { handler = function(to, n)
            process.send(to, "ask", n)
            local answer = process.listen("answer"):receive()  -- a topic channel yields the payload
            return { pid = process.pid(), answer = answer }
        end }""", kind="function.lua", method="handler"))
    doubler = app.spawn("app:doubler")
    calls = [app.processes.call("app:ask", "app:procs", [doubler, n]) for n in range(5)]
    outcomes = await asyncio.wait_for(asyncio.gather(*calls), 20)
    host = app.processes.host("app:procs")
    seen = set()
    for n, (ok, results, pid) in enumerate(outcomes):
        assert ok, results
        out = host.vm.from_lua(results[0])
        assert out == {"pid": pid, "answer": n * 2}
        seen.add(pid)
    assert len(seen) == 5 and not app.processes.calls and doubler not in seen
    # after the call returned, its pid is gone: a message to it is a dead letter
    app.processes.send(None, outcomes[0][2], "late", [1])
    await app.processes.flush()
    rows = await app.node.registry.query(
        f"SELECT reason FROM process_dead_letters WHERE to_pid = '{outcomes[0][2]}'")
    assert rows == [{"reason": "no such process"}]
    with pytest.raises(ProcessError, match=r"not a function\.lua"):
        await app.processes.call("app:doubler", "app:procs", [])
    with pytest.raises(NotFoundError, match="app:none"):
        await app.processes.call("app:none", "app:procs", [])


BIN = b"\xff\x00\xfebinary\x80"


async def test_binary_strings_survive_messages_spawn_args_exec_and_exits(app: ProcNode) -> None:
    await app.apply(lua("app:ctx_value", """local ctx = require("ctx")
    return { main = function(key) return (ctx.get(key)) end }""", modules=["ctx"]))
    await app.apply(driver("app:binary", """return { main = function(arg)
        local bin = "\\255\\0\\254binary\\128"
        local out = { arg = arg == bin }
        local raw = process.listen("raw")
        process.send(process.pid(), "raw", bin, { nested = bin, list = { bin } })
        out.raw = raw:receive() == bin
        local full = process.listen("full", { message = true })
        process.send(process.pid(), "full", bin, { nested = bin, list = { bin } })
        local p = full:receive():payload()
        local second = p[2]:data()
        out.full = p[1]:data() == bin and second.nested == bin and second.list[1] == bin
        out.exec = process.exec("app:ret", "app:procs", bin) == bin
        process.spawn_monitored("app:ret", "app:procs", { b = bin })
        out.exit = process.events():receive().result.value.b == bin
        local s = process.with_options({}):with_message("m", bin)
        s:spawn("app:echo", "app:procs")
        out.with_message = process.listen("echo"):receive() == bin
        out.context = process.with_context({ b = bin }):exec("app:ctx_value", "app:procs", "b") == bin
        out.context_dollar = process.with_context({ ["$k"] = 5 }):exec("app:ctx_value", "app:procs", "$k") == 5
        -- user tables with "$" keys are not mistaken for encoded binary strings
        local dollar = { ["$bytes"] = "aGk=", ["$x"] = 1, ["$$y"] = { ["$bytes"] = "!" } }
        process.send(process.pid(), "dollar", dollar)
        local back = process.listen("dollar"):receive()
        out.dollar = back["$bytes"] == "aGk=" and back["$x"] == 1 and back["$$y"]["$bytes"] == "!"
        out.bin = bin
        return out
    end }"""))
    value, error = await app.run("app:binary", BIN)
    assert error is None
    encoded = {"$bytes": base64.b64encode(BIN).decode()}
    assert value == {"arg": True, "raw": True, "full": True, "exec": True, "exit": True, "with_message": True,
                     "context": True, "context_dollar": True, "dollar": True, "bin": encoded}
    assert decode_binary(value["bin"]) == BIN
    payloads = [r.body["payload"] for r in await proc_records_of(app)
                if r.type == proc_records.MESSAGE and r.body["topic"] == "raw"]
    assert payloads == [[encoded, {"nested": encoded, "list": [encoded]}]]


_scalars = (st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(max_size=12) | st.binary(max_size=12))
_keys = st.text(max_size=6) | st.sampled_from(["$bytes", "$", "$$x", "$$$bytes"])
_values = st.recursive(
    _scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(_keys, kids, max_size=4),
    max_leaves=16,
)


def _log_data(value: Any) -> Any:
    """A Python value as the log holds it (what ProcessRuntime.spawn and send take)."""
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {("$" + k if k.startswith("$") else k): _log_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_log_data(v) for v in value]
    return value


def _as_lua_sees_it(value: Any) -> Any:
    """What a value becomes after a trip through Lua: bytes that are text are text; {} is []."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    if isinstance(value, dict):
        return {k: _as_lua_sees_it(v) for k, v in value.items()} if value else []
    if isinstance(value, list):
        return [_as_lua_sees_it(v) for v in value]
    return value


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.none() | _values)
async def test_any_data_round_trips_through_send_and_receive(app: ProcNode, value: Any) -> None:
    await app.apply(lua("app:round_trip", """return { main = function(v)
        local ch = process.listen("rt")
        process.send(process.pid(), "rt", v)
        return (ch:receive())
    end }"""))
    result, error = await app.run("app:round_trip", _log_data(value))
    assert error is None
    assert decode_binary(result) == _as_lua_sees_it(value)


async def test_host_side_sends_check_their_input(app: ProcNode) -> None:
    pid = app.spawn("app:block")
    with pytest.raises(ProcessError, match="not JSON data"):
        app.processes.send(None, pid, "t", [object()])
    with pytest.raises(PayloadTooLargeError, match="at most"):
        app.processes.send(None, pid, "t", ["x" * (2 * 1024 * 1024)])
    with pytest.raises(ProcessError, match="not a valid pid"):
        app.processes.send(None, "{bad node@app:procs|0x1}", "t", [])
    app.processes.terminate("{n1@app:procs|0x00000}", pid)
    assert (await wait(app, pid))[1] is not None


async def test_an_oversized_message_is_refused_and_the_node_keeps_going(app: ProcNode) -> None:
    out = await run(app, "app:big", """return { main = function()
        local big = string.rep("x", 2 * 1024 * 1024)
        local ok, err = process.send(process.pid(), "big", big)
        local ch = process.listen("small")
        process.send(process.pid(), "small", "still here")
        return { ok = ok == nil, kind = err and err:kind(), msg = err and tostring(err), after = ch:receive() }
    end }""")
    assert out["ok"] is True and out["kind"] == "INVALID" and "process.send" in out["msg"]
    assert out["after"] == "still here"


async def test_an_oversized_exit_value_still_ends_the_process_cleanly(app: ProcNode) -> None:
    out = await run(app, "app:big_exit", """return { main = function()
        local pid = process.spawn_monitored("app:ret", "app:procs", string.rep("y", 2 * 1024 * 1024))
        local ev = process.events():receive()
        return { kind = ev.kind, same = ev.from == pid, error = ev.result.error, value = type(ev.result.value) }
    end }""")
    assert out["kind"] == "pid.exit" and out["same"] is True
    big = [r.body for r in await proc_records_of(app) if r.type == proc_records.EXITED
           and r.body["entry"] == "app:ret"]
    assert len(big) == 1 and big[0]["ok"] is True and isinstance(big[0]["result"], str)


# -- 11. the mailbox limit ----------------------------------------------------------------------------------


@pytest.fixture
async def small_mailboxes(app: ProcNode) -> AsyncIterator[ProcessRuntime]:
    """A second process runtime (node m1) on the same log whose mailboxes hold 5 messages."""
    node = app.node
    runtime: ProcessRuntime | None = None

    def host_factory(host_id: str, pid: str, *, stdio: Any = None, args: tuple[str, ...] = ()) -> LuaHost:
        return LuaHost(HostContext(registry=node.registry, node="m1", pid=pid, stdio=stdio, args=args,
                                   processes=runtime, mailbox_limit=5))

    runtime = ProcessRuntime(node="m1", store=node.store, registry=node.registry, host_factory=host_factory)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.aclose()


async def test_a_full_mailbox_turns_the_overflow_into_dead_letters(app: ProcNode,
                                                                   small_mailboxes: ProcessRuntime) -> None:
    rt = small_mailboxes
    await app.apply(
        driver("app:slow_reader", """local util = require("util")
        return { main = function(parent)
            process.listen("go"):receive()
            local queued = util.data(util.drain(process.inbox()))
            process.send(parent, "ready", true)        -- now with an inbox, which holds 5 unread too
            process.listen("go2"):receive()
            return { queued = queued, inbox = util.data(util.drain(process.inbox())) }
        end }"""),
        lua("app:flooder", """return { main = function()
            local reader = process.spawn_monitored("app:slow_reader", "app:procs", process.pid())
            for i = 0, 11 do process.send(reader, "t", i) end
            process.send(reader, "go", true)
            process.listen("ready"):receive()
            for i = 100, 107 do process.send(reader, "u", i) end
            process.send(reader, "go2", true)
            local ev = process.events():receive()
            return { reader = reader, result = ev.result }
        end }"""),
    )
    pid = rt.spawn(None, "app:flooder", "app:procs", {}, [])
    value, error = await asyncio.wait_for(rt.wait(pid), WAIT)
    assert error is None
    reader = value["reader"]
    assert value["result"] == {"value": {"queued": [0, 1, 2, 3, 4], "inbox": [100, 101, 102, 103, 104]}}
    await rt.flush()
    node = app.node
    records = [rec for _s, rec in await node.store.read(node.subjects.proc_stream)]
    letters = [r for r in records if r.type == proc_records.DEAD_LETTER and r.body["to"] == reader]
    assert [(r.body["topic"], r.body["reason"]) for r in letters] == (
        [("t", "mailbox full")] * 7 + [("u", "mailbox full")] * 3)
    assert all(r.node == "m1" for r in letters)
    # every message is on the log: delivered, or named by a dead letter; nothing dropped silently
    sent = {seq: r for seq, r in await node.store.read(node.subjects.proc_stream)
            if r.type == proc_records.MESSAGE and r.body["to"] == reader}
    assert len(sent) == 12 + 8 + 2
    assert [sent[r.body["seq"]].body["payload"] for r in letters] == [[i] for i in [*range(5, 12), *range(105, 108)]]


# -- 12. two nodes ----------------------------------------------------------------------------------------------


@pytest.fixture
async def n2(app: ProcNode, nats_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[ProcNode]:
    """A second node (n2) in the same namespace, with its own state dir; it sees n1's registry."""
    config = RuntimeSettings(state_dir=tmp_path / "state2", nats_url=nats_url, namespace=namespace, node="n2")
    state = StateDir(config.state_dir)
    assert state.try_own()
    try:
        async with Node(config, state) as node:
            await node.registry.projection.wait_for(app.node.registry.version)
            assert node.registry.get(HOSTS[0].id) is not None
            yield ProcNode(node)
    finally:
        state.release()


async def _sync(n1: ProcNode, n2: ProcNode, *entries: Entry) -> None:
    """Apply entries on n1 and wait until n2's registry has them."""
    version = await n1.apply(*entries)
    await n2.node.registry.projection.wait_for(version)


async def test_processes_on_two_nodes_exchange_messages_and_monitor_each_other(app: ProcNode, n2: ProcNode) -> None:
    await _sync(app, n2, driver("app:remote_caller", """return { main = function(dest)
        local replies = process.listen("echo")
        process.send(dest, "x", { hello = "n2" })
        local reply = replies:receive()
        assert(process.monitor(dest))
        process.send(dest, "stop", "bye")
        local bye = replies:receive()
        local ev = process.events():receive()
        return { reply = reply, bye = bye, kind = ev.kind, from = ev.from, value = ev.result.value }
    end }"""))
    echo = n2.spawn("app:echo")
    assert echo.startswith("{n2@app:procs|")
    value, error = await app.run("app:remote_caller", echo)
    assert error is None
    assert value == {"reply": {"hello": "n2"}, "bye": "bye", "kind": "pid.exit", "from": echo, "value": "bye"}
    assert echo not in n2.processes.procs


async def test_links_work_across_nodes(app: ProcNode, n2: ProcNode) -> None:
    await _sync(app, n2,
                driver("app:remote_trap", """return { main = function(dest)
                    process.set_options({ trap_links = true })
                    assert(process.link(dest))
                    process.send(dest, "go", true)
                    local ev = process.events():receive()
                    return { kind = ev.kind, from = ev.from, error = ev.result.error }
                end }"""),
                lua("app:link_then_fail", """return { main = function(peer)
                    assert(process.link(peer))
                    error("n1 gave up")
                end }"""),
                lua("app:remote_monitor_missing", """return { main = function(dest)
                    process.monitor(dest)
                    local ev = process.events():receive()
                    return { from = ev.from, error = ev.result.error }
                end }"""))
    failing = n2.spawn("app:wait_go_fail")
    value, error = await app.run("app:remote_trap", failing)
    assert error is None
    assert value["kind"] == "pid.link.down" and value["from"] == failing and "went wrong" in value["error"]
    # a failure on n1 kills its non-trapping partner on n2
    victim = n2.spawn("app:block")
    _v, error = await app.run("app:link_then_fail", victim)
    assert error is not None and "n1 gave up" in error
    _v, victim_error = await wait(n2, victim)
    assert victim_error is not None and "linked process {n1@" in victim_error and "n1 gave up" in victim_error
    # monitoring a pid n2 does not have reports it at once
    missing = "{n2@app:procs|0xfffffffffff}"
    value, error = await app.run("app:remote_monitor_missing", missing)
    assert error is None and value["from"] == missing and "no such process" in value["error"]


# -- hot code: OUTDATED and process.upgrade -----------------------------------------------------------

V1 = """return { main = function()
    process.set_options({upgradable = true})
    local events = process.events()
    local inbox = process.inbox()
    local ev = events:receive()
    local _, bad = process.upgrade("app:nope")
    local m = inbox:receive()          -- a message sent before the upgrade
    process.upgrade(nil, {seen = m:payload():data(), kind = ev.kind, sources = ev.sources, bad = bad:kind()})
end }"""

V2 = """return { main = function(state)
    local m = process.inbox():receive()  -- a message sent after the upgrade: same mailbox
    return {version = 2, state = state, after = m:payload():data(), pid = process.pid()}
end }"""


async def test_outdated_then_upgrade_keeps_pid_and_mailbox(proc_node: ProcNode) -> None:
    await proc_node.apply(lua("app:hot", V1))
    pid = proc_node.spawn("app:hot")
    procs = proc_node.processes
    procs.send(None, pid, "first", ["before"])
    await asyncio.sleep(0.05)
    await proc_node.apply(lua("app:hot", V2))  # a new version: OUTDATED to the upgradable process
    await asyncio.sleep(0.05)
    procs.send(None, pid, "second", ["after"])
    value, error = await asyncio.wait_for(procs.wait(pid), 10)
    assert error is None, error
    assert value == {"version": 2, "pid": pid, "after": "after",
                     "state": {"seen": "before", "kind": "pid.outdated", "sources": ["app:hot"], "bad": "NOT_FOUND"}}
    await procs.flush()
    records = await proc_node.node.store.read(proc_node.node.store.subjects.proc_stream)
    types = [r.type for _s, r in records if r.body.get("pid") == pid]
    assert types.count("proc.upgraded") == 1 and types.count("proc.exited") == 1


async def test_upgrade_only_from_the_main_task(proc_node: ProcNode) -> None:
    await proc_node.apply(lua("app:child_upgrade", """return { main = function()
        local out = {}
        coroutine.spawn(function()
            local ok, err = process.upgrade()
            out.ok, out.kind = ok, err and err:kind()
        end)
        local time = require("time")
        time.sleep("10ms")
        return out
    end }""", modules=["time"]))
    value, error = await proc_node.run("app:child_upgrade")
    assert error is None and value == {"kind": "INVALID"}


# -- permissions ----------------------------------------------------------------------------------------

async def test_process_permissions_are_checked_against_the_caller(proc_node: ProcNode) -> None:
    def policy(name: str, actions: Any, effect: str) -> Entry:
        return Entry(f"app:{name}", "security.policy", {},
                     {"policy": {"actions": actions, "resources": "*", "effect": effect}})

    await proc_node.apply(
        policy("allow_all", "*", "allow"), policy("no_send", "process.send", "deny"),
        policy("no_worker", ["process.spawn", "process.spawn.*"], "deny"),
        lua("app:quiet", "return { main = function() return 1 end }"),
        lua("app:guarded", """return { main = function()
            local out = {}
            local _, err = process.send(process.pid(), "t", 1)
            out.send = err and err:kind()
            local pid, serr = process.spawn("app:quiet", "app:procs")
            out.spawn = serr and serr:kind() or "allowed"
            out.register = (process.registry.register("guarded"))
            return out
        end }"""),
        lua("app:runner", """return { main = function(policies)
            local security = require("security")
            local scope = security.new_scope()
            for _, id in ipairs(policies) do scope = scope:with(security.policy(id)) end
            local pid = process.with_context({}):with_actor(security.new_actor("user:bob")):with_scope(scope)
                :spawn_monitored("app:guarded", "app:procs")
            local ev = process.events():receive()
            return ev.result
        end }""", modules=["security"]),
    )
    result, error = await proc_node.run("app:runner", ["app:allow_all", "app:no_send"])
    assert error is None, error
    assert result == {"value": {"send": "PERMISSION_DENIED", "spawn": "allowed", "register": True}}
    result, error = await proc_node.run("app:runner", ["app:allow_all", "app:no_worker"])
    assert error is None, error
    assert result["value"]["spawn"] == "PERMISSION_DENIED" and "send" not in result["value"]
