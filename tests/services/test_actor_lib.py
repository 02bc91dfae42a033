"""The native ``wippy.actor:actor`` library (component ``wippy/actor``), run in real processes.

Each test applies process entries that import the library by its entry id, runs them on a real
node and checks the process result: topic handlers and state, the special handlers, actor.exit and
actor.next, the state helpers, and an app that declares ``ns.dependency`` on ``wippy/actor``.
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wippy.core import DefinitionErrors, Entry, WippyError, load_app, native_components
from wippy.lua_stdlib import LuaHost  # noqa: F401 - importing the Lua side registers wippy/actor

from .conftest import ProcNode, lua

ACTOR = {"actor": "wippy.actor:actor"}


def actor_proc(name: str, body: str, **kw: Any) -> Entry:
    """A process.lua whose ``main(...)`` is ``body`` with ``actor`` imported."""
    source = 'local actor = require("actor")\nlocal function main(...)\n' + textwrap.indent(
        textwrap.dedent(body), "    "
    ) + "\nend\nreturn { main = main }\n"
    return lua(name, source, imports=ACTOR, **kw)


# -- topic handlers ------------------------------------------------------------------------------

COUNTER = actor_proc("app:counter", """
    return actor.new({ count = 0, seen = {} }, {
        inc = function(state, data, topic, from)
            state.count = state.count + data.n
            state.seen[#state.seen + 1] = topic
        end,
        stop = function(state, data, topic, from)
            return actor.exit({ count = state.count, seen = #state.seen, from = from or "none" })
        end,
    }):run()
""")


async def test_topic_handlers_share_state_and_exit_gives_the_result(proc_node: ProcNode) -> None:
    await proc_node.apply(COUNTER)
    pid = proc_node.spawn("app:counter")
    for n in (1, 2, 3):
        proc_node.processes.send(None, pid, "inc", [{"n": n}])
    proc_node.processes.send(None, pid, "stop", [])
    assert await asyncio.wait_for(proc_node.processes.wait(pid), 20) == (
        {"count": 6, "seen": 3, "from": "none"}, None,
    )


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(min_value=-1000, max_value=1000), max_size=12))
async def test_messages_are_handled_in_order(proc_node: ProcNode, numbers: list[int]) -> None:
    await proc_node.apply(COUNTER)
    pid = proc_node.spawn("app:counter")
    for n in numbers:
        proc_node.processes.send(None, pid, "inc", [{"n": n}])
    proc_node.processes.send(None, pid, "stop", [])
    value, error = await asyncio.wait_for(proc_node.processes.wait(pid), 20)
    assert error is None
    assert value["count"] == sum(numbers)
    assert value["seen"] == len(numbers)


async def test_handlers_get_the_sender_pid(proc_node: ProcNode) -> None:
    await proc_node.apply(actor_proc("app:self_sender", """
        return actor.new({}, {
            __init = function(state)
                process.send(process.pid(), "who", { note = "hi" })
            end,
            who = function(state, data, topic, from)
                return actor.exit({ topic = topic, note = data.note, me = from == process.pid() })
            end,
        }):run()
    """))
    assert await proc_node.run("app:self_sender") == ({"topic": "who", "note": "hi", "me": True}, None)


async def test_payloads_none_one_or_several(proc_node: ProcNode) -> None:
    await proc_node.apply(actor_proc("app:payloads", """
        local got = {}
        return actor.new({}, {
            __init = function(state)
                local me = process.pid()
                process.send(me, "none")
                process.send(me, "one", 7)
                process.send(me, "many", "a", "b")
            end,
            none = function(state, data) got.none = data == nil end,
            one = function(state, data) got.one = data end,
            many = function(state, data)
                got.many = data
                return actor.exit(got)
            end,
        }):run()
    """))
    assert await proc_node.run("app:payloads") == ({"none": True, "one": 7, "many": ["a", "b"]}, None)


# -- special handlers ------------------------------------------------------------------------------

async def test_init_runs_first_and_may_exit(proc_node: ProcNode) -> None:
    await proc_node.apply(actor_proc("app:init_exit", """
        local st = { calls = 0 }
        return actor.new(st, {
            __init = function(state)
                state.calls = state.calls + 1
                return actor.exit({ calls = state.calls, same = state == st })
            end,
            never = function() error("not reached") end,
        }):run()
    """))
    assert await proc_node.run("app:init_exit") == ({"calls": 1, "same": True}, None)


async def test_default_gets_unknown_topics(proc_node: ProcNode) -> None:
    await proc_node.apply(actor_proc("app:defaults", """
        return actor.new({ unknown = {} }, {
            known = function(state) state.known = true end,
            __default = function(state, data, topic, from)
                state.unknown[#state.unknown + 1] = topic .. "=" .. tostring(data)
                if topic == "last" then
                    return actor.exit({ known = state.known, unknown = state.unknown })
                end
            end,
        }):run()
    """))
    pid = proc_node.spawn("app:defaults")
    send = proc_node.processes.send
    send(None, pid, "mystery", [1])
    send(None, pid, "known", [])
    send(None, pid, "__init", ["x"])
    send(None, pid, "last", [2])
    assert await asyncio.wait_for(proc_node.processes.wait(pid), 20) == (
        {"known": True, "unknown": ["mystery=1", "__init=x", "last=2"]}, None,
    )


async def test_unknown_topics_without_default_are_dropped(proc_node: ProcNode) -> None:
    await proc_node.apply(actor_proc("app:drops", """
        return actor.new({}, {
            stop = function() return actor.exit("stopped") end,
        }):run()
    """))
    pid = proc_node.spawn("app:drops")
    proc_node.processes.send(None, pid, "mystery", [1])
    proc_node.processes.send(None, pid, "stop", [])
    assert await asyncio.wait_for(proc_node.processes.wait(pid), 20) == ("stopped", None)


CHILD = lua("app:child", """
local function main(n, fail)
    if fail then error("child broke") end
    return n * 2
end
return { main = main }
""")


@pytest.mark.parametrize(("fail", "expect"), [(False, {"value": 42}), (True, {"error": True})])
async def test_on_event_sees_exit_of_monitored_children(proc_node: ProcNode, fail: bool, expect: Any) -> None:
    await proc_node.apply(CHILD, actor_proc("app:watcher", """
        local fail = ...
        return actor.new({}, {
            __init = function(state)
                state.child = process.spawn_monitored("app:child", "app:procs", 21, fail)
            end,
            __on_event = function(state, event, kind, from)
                if kind == process.event.EXIT then
                    local r = event.result
                    return actor.exit({ from_child = from == state.child and event.from == from,
                                        value = r.value, error = r.error ~= nil or nil })
                end
            end,
        }):run()
    """))
    value, error = await proc_node.run("app:watcher", fail)
    assert error is None
    assert value == {"from_child": True, **expect}


async def test_cancel_reaches_on_event_then_on_cancel(proc_node: ProcNode) -> None:
    await proc_node.apply(
        actor_proc("app:cancellable", """
            return actor.new({ seen = {} }, {
                __init = function(state) process.send(process.pid(), "ready") end,
                ready = function(state)
                    state.seen[#state.seen + 1] = "ready"
                end,
                __on_event = function(state, event, kind)
                    state.seen[#state.seen + 1] = "event:" .. kind
                end,
                __on_cancel = function(state, event, kind, from)
                    state.seen[#state.seen + 1] = "cancel:" .. tostring(event.reason)
                    return actor.exit({ seen = state.seen, by_parent = from ~= nil })
                end,
            }):run()
        """),
        lua("app:canceller", """
local function main()
    local pid = process.spawn_monitored("app:cancellable", "app:procs")
    process.cancel(pid, "shutdown")
    local ev = process.events():receive()
    return ev.result.value
end
return { main = main }
"""),
    )
    value, error = await proc_node.run("app:canceller")
    assert error is None
    assert value["by_parent"] is True
    assert value["seen"][-2:] == ["event:pid.cancel", "cancel:shutdown"]


async def test_cancel_from_outside_ends_the_process_with_the_exit_result(proc_node: ProcNode) -> None:
    await proc_node.apply(actor_proc("app:service", """
        return actor.new({ handled = 0 }, {
            work = function(state) state.handled = state.handled + 1 end,
            __on_cancel = function(state, event)
                return actor.exit({ handled = state.handled, reason = event.reason })
            end,
        }):run()
    """))
    pid = proc_node.spawn("app:service")
    proc_node.processes.send(None, pid, "work", [])
    proc_node.processes.send(None, pid, "work", [])
    proc_node.processes.cancel("{n1@test|0x0}", pid, "stop now")
    value, error = await asyncio.wait_for(proc_node.processes.wait(pid), 20)
    assert error is None
    assert value["reason"] == "stop now"
    assert value["handled"] in (0, 1, 2)


# -- actor.next -------------------------------------------------------------------------------------

async def test_next_chains_handlers_keeping_sender_and_payload(proc_node: ProcNode) -> None:
    await proc_node.apply(actor_proc("app:chain", """
        local log = {}
        return actor.new({}, {
            __init = function(state)
                local me = process.pid()
                process.send(me, "validate", { ok = true, v = 1 })
                process.send(me, "validate", { ok = false, v = 2 })
                return actor.next("boot", { from_init = true })
            end,
            boot = function(state, data, topic, from)
                log[#log + 1] = { step = "boot", init = data.from_init, from = from or "none" }
            end,
            validate = function(state, data)
                if data.ok then return actor.next("accept") end
                return state.next("reject", { why = "bad " .. data.v })
            end,
            accept = function(state, data, topic, from)
                log[#log + 1] = { step = topic, v = data.v, me = from == process.pid() }
            end,
            reject = function(state, data, topic, from)
                log[#log + 1] = { step = topic, why = data.why, me = from == process.pid() }
                return actor.exit(log)
            end,
        }):run()
    """))
    assert await proc_node.run("app:chain") == ([
        {"step": "boot", "init": True, "from": "none"},
        {"step": "accept", "v": 1, "me": True},
        {"step": "reject", "why": "bad 2", "me": True},
    ], None)


async def test_next_to_an_unknown_topic_goes_to_default(proc_node: ProcNode) -> None:
    await proc_node.apply(actor_proc("app:next_default", """
        return actor.new({}, {
            __init = function() return actor.next("nowhere", 5) end,
            __default = function(state, data, topic) return actor.exit(topic .. ":" .. data) end,
        }):run()
    """))
    assert await proc_node.run("app:next_default") == ("nowhere:5", None)


# -- state helpers ----------------------------------------------------------------------------------

async def test_add_and_remove_handlers(proc_node: ProcNode) -> None:
    await proc_node.apply(actor_proc("app:dynamic", """
        local log = {}
        return actor.new({}, {
            __init = function(state)
                state.add_handler("extra", function(s, data) log[#log + 1] = "extra " .. data end)
                local me = process.pid()
                process.send(me, "extra", 1)
                process.send(me, "drop")
                process.send(me, "extra", 2)
                process.send(me, "done")
            end,
            drop = function(state) log[#log + 1] = "removed " .. tostring(state.remove_handler("extra")) end,
            __default = function(state, data, topic) log[#log + 1] = "default " .. topic end,
            done = function() return actor.exit(log) end,
        }):run()
    """))
    assert await proc_node.run("app:dynamic") == (["extra 1", "removed true", "default extra"], None)


async def test_registered_channels_deliver_values_then_close(proc_node: ProcNode) -> None:
    await proc_node.apply(actor_proc("app:channels", """
        local got = {}
        return actor.new({}, {
            __init = function(state)
                local ch = channel.new(3)
                ch:send("a"); ch:send("b"); ch:close()
                state.register_channel(ch, function(s, value, ok, id)
                    got[#got + 1] = ok and value or ("closed " .. type(id))
                    if not ok then return actor.next("finish") end
                end)
                local other = channel.new(1)
                state.register_channel(other, function() error("unregistered channel delivered") end)
                state.unregistered = state.unregister_channel(other)
                other:send("ignored")
            end,
            finish = function(state)
                got[#got + 1] = state.unregistered
                return actor.exit(got)
            end,
        }):run()
    """))
    assert await proc_node.run("app:channels") == (["a", "b", "closed string", True], None)


async def test_async_results_come_back_to_the_loop(proc_node: ProcNode) -> None:
    await proc_node.apply(actor_proc("app:async", """
        local got = {}
        return actor.new({}, {
            __init = function(state)
                state.async(function() return { plain = 1 } end)
            end,
            __on_internal_message = function(state, value, kind)
                got[#got + 1] = kind .. " " .. value.plain
                state.async(function() return actor.next("work_done", 7) end)
            end,
            work_done = function(state, data)
                got[#got + 1] = "next " .. data
                state.async(function() return actor.exit(got) end)
            end,
        }):run()
    """))
    assert await proc_node.run("app:async") == (["async 1", "next 7"], None)


async def test_async_failure_fails_the_actor(proc_node: ProcNode) -> None:
    await proc_node.apply(actor_proc("app:async_fail", """
        return actor.new({}, {
            __init = function(state) state.async(function() error("worker broke", 0) end) end,
        }):run()
    """))
    value, error = await proc_node.run("app:async_fail")
    assert value is None
    assert error is not None and "worker broke" in error


async def test_wait_gets_a_message_or_times_out(proc_node: ProcNode) -> None:
    await proc_node.apply(actor_proc("app:waiter", """
        return actor.new({}, {
            __init = function(state)
                process.send(process.pid(), "reply", { n = 3 })
                local got, err = state.wait("reply", "5s")
                local none, timeout = state.wait("silence", "20ms")
                local bad, bad_err = state.wait("reply", "soon")
                return actor.exit({ n = got.n, err = err == nil, none = none == nil, timeout = timeout,
                                    bad = bad == nil and bad_err ~= nil })
            end,
        }):run()
    """))
    assert await proc_node.run("app:waiter") == (
        {"n": 3, "err": True, "none": True, "timeout": "timeout", "bad": True}, None,
    )


async def test_a_stand_in_process_feeds_the_loop(proc_node: ProcNode) -> None:
    await proc_node.apply(actor_proc("app:stand_in", """
        local inbox, events = channel.new(4), channel.new(4)
        local function message(topic, data)
            return {
                topic = function() return topic end,
                from = function() return "{fake|1}" end,
                payload = function() return payload.new(data) end,
            }
        end
        inbox:send(message("add", 2))
        inbox:send(message("add", 3))
        local proc = { inbox = function() return inbox end, events = function() return events end }
        return actor.new({ sum = 0 }, {
            add = function(state, n, topic, from)
                state.sum = state.sum + n
                state.from = from
                if state.sum == 5 then events:send({ kind = "pid.cancel", from = "{fake|2}", reason = "test" }) end
            end,
            __on_cancel = function(state, event)
                return actor.exit({ sum = state.sum, from = state.from, reason = event.reason })
            end,
        }, proc):run()
    """))
    assert await proc_node.run("app:stand_in") == ({"sum": 5, "from": "{fake|1}", "reason": "test"}, None)


async def test_state_stays_plain_data(proc_node: ProcNode) -> None:
    await proc_node.apply(actor_proc("app:plain_state", """
        return actor.new({ n = 1 }, {
            __init = function(state)
                local keys = 0
                for _ in pairs(state) do keys = keys + 1 end
                state.keys = keys
                state.has_helpers = type(state.add_handler) == "function" and type(state.wait) == "function"
                return actor.exit(state)
            end,
        }):run()
    """))
    assert await proc_node.run("app:plain_state") == ({"n": 1, "keys": 1, "has_helpers": True}, None)


async def test_state_with_a_metatable_gets_the_helpers_as_fields(proc_node: ProcNode) -> None:
    await proc_node.apply(actor_proc("app:object_state", """
        local Counter = {}
        Counter.__index = Counter
        function Counter:bump() self.n = self.n + 1 end
        return actor.new(setmetatable({ n = 0 }, Counter), {
            __init = function(state)
                state:bump()
                process.send(process.pid(), "later")
                state.add_handler("later", function(s) s:bump(); return actor.exit(s.n) end)
            end,
        }):run()
    """))
    assert await proc_node.run("app:object_state") == (2, None)


# -- bad input --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("call", "expect"), [
    ('actor.new({}, "x")', "actor.new: the handlers must be a table, got string"),
    ('actor.new(5, {})', "actor.new: the state must be a table, got number"),
    ("actor.new({}, { ping = 1 })", "actor.new: handler ping must be a function, got number"),
    ("actor.next()", "actor.next: the topic must be a non-empty string, got nil"),
    ('actor.new({}, { __init = function(s) s.register_channel(nil, print) end }):run()',
     "state.register_channel: expected a channel and a handler function"),
])
async def test_bad_arguments_give_clear_errors(proc_node: ProcNode, call: str, expect: str) -> None:
    await proc_node.apply(actor_proc("app:bad", f"return {call}"))
    value, error = await proc_node.run("app:bad")
    assert value is None
    assert error is not None and expect in error


async def test_missing_imports_name_the_library(proc_node: ProcNode) -> None:
    await proc_node.apply(lua("app:typo", 'local a = require("actor")\nreturn { main = function() end }',
                              imports={"actor": "wippy.actor:actors"}))
    with pytest.raises(WippyError, match=r"library wippy\.actor:actors does not exist"):
        await proc_node.run("app:typo")


# -- how apps get it --------------------------------------------------------------------------------

def test_wippy_actor_is_a_native_component() -> None:
    assert "wippy/actor" in native_components()


APP_INDEX = """\
version: "1.0"
namespace: app
entries:
  - name: dep.actor
    kind: ns.dependency
    component: wippy/actor
    version: "^0.3.0"
  - name: pinger
    kind: process.lua
    source: file://pinger.lua
    method: main
    imports:
      actor: wippy.actor:actor
"""

PINGER = """\
local actor = require("actor")

type Ping = {n: number}

local function main(): any
    return actor.new({ total = 0 }, {
        __init = function(state)
            for i = 1, 3 do process.send(process.pid(), "ping", { n = i }) end
            process.send(process.pid(), "stop")
        end,
        ping = function(state, payload: Ping)
            state.total = state.total + payload.n
        end,
        stop = function(state)
            return actor.exit({ total = state.total })
        end,
    }):run()
end

return { main = main }
"""


def write_app(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "_index.yaml").write_text(APP_INDEX)
    (root / "src" / "pinger.lua").write_text(PINGER)
    return root


async def test_app_with_a_dependency_on_wippy_actor_runs_unmodified(proc_node: ProcNode, tmp_path: Path) -> None:
    app = write_app(tmp_path / "app")
    loaded = load_app(app)
    assert "wippy/actor" in loaded.native_dependencies
    await proc_node.apply(*(le.entry for le in loaded.entries))
    assert await proc_node.run("app:pinger") == ({"total": 6}, None)


def test_without_the_native_component_the_dependency_is_missing(tmp_path: Path) -> None:
    app = write_app(tmp_path / "app")
    with pytest.raises(DefinitionErrors, match="wippy/actor"):
        load_app(app, components={})


async def test_a_registry_entry_with_the_same_id_wins(proc_node: ProcNode) -> None:
    vendored = lua("wippy.actor:actor", """
return { new = function() return { run = function() return "vendored" end } end }
""", kind="library.lua", method=None)
    await proc_node.apply(vendored, actor_proc("app:uses_vendored", "return actor.new({}, {}):run()"))
    assert await proc_node.run("app:uses_vendored") == ("vendored", None)
