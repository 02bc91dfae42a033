"""The event bus end to end: `events.send` / `events.subscribe` from Lua processes on real nodes."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wippy.core import EVENT_RECORD, EventPatternError, compile_event_pattern, event_matches
from wippy.services import Node, RuntimeSettings, StateDir

from .conftest import HOSTS, ProcNode, lua

LISTENER = lua("app:listener", """return { main = function(system, kind, n)
    local events = require("events")
    local sub, err = events.subscribe(system, kind)
    if err then return { err = tostring(err), kind = err:kind() } end
    process.send("tester", "ready", true)
    local got = {}
    local ch = sub:channel()
    for i = 1, n do
        local ev = ch:receive()
        got[i] = ev.system .. "/" .. ev.kind .. "@" .. ev.path .. "=" .. tostring(ev.data and ev.data.n)
    end
    sub:close()
    return got
end }""", modules=["events"])

SENDER = lua("app:sender", """return { main = function(list)
    local events = require("events")
    for _, e in ipairs(list) do
        local ok, err = events.send(e[1], e[2], e[3], { n = e[4] })
        if not ok then return tostring(err) end
    end
    return "sent"
end }""", modules=["events"])

TESTER = lua("app:tester", """return { main = function(n)
    process.registry.register("tester")
    local inbox = process.inbox()
    for i = 1, n do inbox:receive() end
    return "all ready"
end }""")


async def test_subscribers_get_the_events_their_patterns_match(proc_node: ProcNode) -> None:
    app = proc_node
    await app.apply(LISTENER, SENDER, TESTER)
    tester = app.processes.wait(app.spawn("app:tester", 3))
    users = app.spawn("app:listener", "users", None, 2)
    created = app.spawn("app:listener", "users", "user.(created|deleted)", 2)
    everything = app.spawn("app:listener", "**", None, 4)
    waits = {pid: app.processes.wait(pid) for pid in (users, created, everything)}
    assert (await asyncio.wait_for(tester, 20))[0] == "all ready"
    value, error = await app.run("app:sender", [["users", "user.created", "/users/1", 1],
                                                ["orders", "order.placed", "/orders/9", 2],
                                                ["users", "user.updated", "/users/1", 3],
                                                ["users", "user.deleted", "/users/1", 4]])
    assert (value, error) == ("sent", None)
    got = {pid: await asyncio.wait_for(w, 20) for pid, w in waits.items()}
    assert got[users] == (["users/user.created@/users/1=1", "users/user.updated@/users/1=3"], None)
    assert got[created] == (["users/user.created@/users/1=1", "users/user.deleted@/users/1=4"], None)
    assert got[everything][0] == ["users/user.created@/users/1=1", "orders/order.placed@/orders/9=2",
                                  "users/user.updated@/users/1=3", "users/user.deleted@/users/1=4"]
    records = [r for _s, r in await app.node.store.read(app.node.store.subjects.events_stream)]
    assert [r.body["kind"] for r in records if r.type == EVENT_RECORD][-4:] == [
        "user.created", "order.placed", "user.updated", "user.deleted"]
    rows = await app.node.registry.query(
        "SELECT node, system, kind, path, (data->>'n')::INT AS n FROM events ORDER BY seq")
    assert rows == [{"node": "n1", "system": s, "kind": k, "path": p, "n": n} for s, k, p, n in [
        ("users", "user.created", "/users/1", 1), ("orders", "order.placed", "/orders/9", 2),
        ("users", "user.updated", "/users/1", 3), ("users", "user.deleted", "/users/1", 4)]]
    await app.processes.flush()  # the sender's records are in the log (a query catches up to the log)
    joined = await app.node.registry.query(  # SQL across projections: who sent what
        "SELECT e.kind, p.entry_id FROM events e JOIN processes p ON p.node = e.node "
        "WHERE p.entry_id = 'app:sender' ORDER BY e.seq")
    assert [r["kind"] for r in joined] == ["user.created", "order.placed", "user.updated", "user.deleted"]


async def test_bad_input_is_invalid(proc_node: ProcNode) -> None:
    app = proc_node
    await app.apply(LISTENER, lua("app:bad_send", """return { main = function()
        local events = require("events")
        local out = {}
        for i, args in ipairs({ {"", "k", "/p"}, {"s", nil, "/p"}, {"s", "k", 5} }) do
            local ok, err = events.send(args[1], args[2], args[3])
            out[i] = err:kind() .. ": " .. tostring(err)
        end
        return out
    end }""", modules=["events"]))
    value, error = await app.run("app:listener", "a..b", None, 1)
    assert error is None and value["kind"] == "INVALID" and "empty segment" in value["err"]
    value, error = await app.run("app:bad_send")
    assert error is None and all(v.startswith("INVALID") for v in value), value
    assert "system" in value[0] and "kind" in value[1] and "path" in value[2]


async def test_events_cross_nodes(proc_node: ProcNode, nats_url: str, namespace: str, tmp_path: Path) -> None:
    app = proc_node
    await app.apply(LISTENER, SENDER, TESTER)
    tester = app.processes.wait(app.spawn("app:tester", 1))
    listener = app.processes.wait(app.spawn("app:listener", "chat", None, 1))
    assert (await asyncio.wait_for(tester, 20))[0] == "all ready"
    settings = RuntimeSettings(state_dir=tmp_path / "state2", nats_url=nats_url, namespace=namespace, node="n2")
    state = StateDir(settings.state_dir)
    assert state.try_own()
    try:
        async with Node(settings, state) as other:
            assert other.processes is not None
            # the second node shares the first one's registry (its hosts and code included)
            pid = other.processes.spawn(None, "app:sender", "app:procs", {}, [[["chat", "message.sent", "/r", 7]]])
            assert await asyncio.wait_for(other.processes.wait(pid), 20) == ("sent", None)
            assert other.events is not None
            await other.events.flush()
    finally:
        state.release()
    assert await asyncio.wait_for(listener, 20) == (["chat/message.sent@/r=7"], None)


async def test_a_slow_subscriber_does_not_hold_up_the_others(proc_node: ProcNode) -> None:
    bus = proc_node.node.events
    assert bus is not None
    slow = bus.subscribe("load", capacity=5)
    fast = bus.subscribe("(load|other)")
    for i in range(50):
        bus.send("load", "tick", "/", i)
    await bus.flush()
    got: list[int] = []
    while len(got) < 50:
        batch = await asyncio.wait_for(fast.next_batch(), 10)
        assert batch is not None
        got.extend(e["data"] for e in batch)
    assert got == list(range(50))
    assert len(slow.queue) == 5 and slow.dropped == 45
    slow.close()
    fast.close()
    assert await slow.next_batch() == [] or slow.closed


@given(st.lists(st.sampled_from(["a", "b", "*", "**", "(a|b)", "c*"]), min_size=1, max_size=5),
       st.lists(st.sampled_from(["a", "b", "c", "cd"]), min_size=1, max_size=5))
def test_patterns_match_like_segment_globs(pattern: list[str], name: list[str]) -> None:
    expected = _reference(pattern, name)
    assert event_matches(".".join(pattern), ".".join(name)) is expected


def _reference(pattern: list[str], name: list[str]) -> bool:
    if not pattern:
        return not name
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_reference(rest, name[i:]) for i in range(len(name) + 1))
    if not name:
        return False
    seg = name[0]
    ok = (head in ("*", seg) or (head == "(a|b)" and seg in ("a", "b"))
          or (head == "c*" and seg.startswith("c")))
    return ok and _reference(rest, name[1:])


@pytest.mark.parametrize("bad", ["", "a..b", "a.b**", "(a|", "a|b", "(a|*)"])
def test_bad_patterns_do_not_compile(bad: str) -> None:
    with pytest.raises(EventPatternError):
        compile_event_pattern(bad)


async def test_a_subscription_can_start_at_a_past_position(proc_node: ProcNode) -> None:
    app = proc_node
    await app.apply(SENDER, lua("app:replayer", """return { main = function(from, n)
        local events = require("events")
        local sub, err = events.subscribe("hist", nil, { from = from })
        if err then return { err = tostring(err), kind = err:kind() } end
        local got = {}
        for i = 1, n do got[i] = sub:channel():receive().data.n end
        sub:close()
        return got
    end }""", modules=["events"]))
    assert await app.run("app:sender", [["hist", "k", "/", i] for i in range(1, 6)]) == ("sent", None)
    assert app.node.events is not None
    await app.node.events.flush()
    assert await app.run("app:replayer", "start", 5) == ([1, 2, 3, 4, 5], None)
    stream = app.node.store.subjects.events_stream
    head = await app.node.store.last_seq(stream)
    assert await app.run("app:replayer", head - 1, 2) == ([4, 5], None)
    value, error = await app.run("app:replayer", head + 5, 1)
    assert error is None and value["kind"] == "INVALID" and "positions 1 to" in value["err"]
    value, error = await app.run("app:replayer", "2000-01-01T00:00:00Z", 5)
    assert (value, error) == ([1, 2, 3, 4, 5], None)


async def test_node_logs_go_to_the_bus_when_configured(nats_url: str, namespace: str, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)  # as `wippy run` logs
    settings = RuntimeSettings(state_dir=tmp_path / "state", nats_url=nats_url, namespace=namespace, node="n1",
                               logs_to_events=True)
    state = StateDir(settings.state_dir)
    assert state.try_own()
    try:
        async with Node(settings, state) as node:
            assert node.events is not None
            sub = node.events.subscribe("logs", "logs.entry")
            app = ProcNode(node)
            await app.apply(*HOSTS, lua("app:talker", """return { main = function()
                local logger = require("logger")
                logger:info("hello from lua", { n = 7 })
            end }""", modules=["logger"]))
            assert await app.run("app:talker") == (None, None)
            found = None
            while found is None:
                batch = await asyncio.wait_for(sub.next_batch(), 10)
                assert batch is not None
                found = next((e for e in batch if e["data"]["message"] == "hello from lua"), None)
            assert found["path"] == "wippy.lua" and found["data"]["level"] == "info"
            assert found["data"]["fields"]["n"] == 7 and found["data"]["fields"]["entry"] == "app:talker"
            sub.close()
    finally:
        state.release()


async def test_lua_queries_the_projections_read_only(proc_node: ProcNode) -> None:
    app = proc_node
    await app.apply(SENDER, lua("app:asker", """return { main = function()
        local projections = require("projections")
        local rows, err = projections.query(
            "SELECT kind, (data->>'n')::INT AS n, data, \\"at\\" FROM events WHERE system = ? ORDER BY seq", {"q"})
        if err then return tostring(err) end
        local bad_sql = select(2, projections.query("SELEC nothing"))
        local write = select(2, projections.query("DELETE FROM store.events"))
        local two = select(2, projections.query("SELECT 1; SELECT 2"))
        return { rows = rows, bad = bad_sql:kind() .. " " .. tostring(bad_sql), write = tostring(write),
                 two = tostring(two), at_type = type(rows[1].at), data_n = rows[1].data.n }
    end }""", modules=["projections"]))
    assert await app.run("app:sender", [["q", "k1", "/", 1], ["q", "k2", "/", 2]]) == ("sent", None)
    assert app.node.events is not None
    await app.node.events.flush()
    value, error = await app.run("app:asker")
    assert error is None, error
    assert [(r["kind"], r["n"]) for r in value["rows"]] == [("k1", 1), ("k2", 2)]
    assert value["bad"].startswith("INVALID") and "SQL error" in value["bad"]
    assert "read-only" in value["write"] and "exactly one" in value["two"]
    assert value["at_type"] == "string" and value["data_n"] == 1


async def test_events_are_permission_checked(nats_url: str, namespace: str, tmp_path: Path) -> None:
    settings = RuntimeSettings(state_dir=tmp_path / "state", nats_url=nats_url, namespace=namespace, node="n1",
                               security_strict=True)  # no actor and no scope: everything is denied
    state = StateDir(settings.state_dir)
    assert state.try_own()
    try:
        async with Node(settings, state) as node:
            app = ProcNode(node)
            await app.apply(*HOSTS, lua("app:nosy", """return { main = function()
                local events = require("events")
                local _, send_err = events.send("users", "k", "/p")
                local _, sub_err = events.subscribe("users")
                return { send_err:kind(), sub_err:kind(), tostring(send_err) }
            end }""", modules=["events"]))
            value, error = await app.run("app:nosy")
            assert error is None and value[:2] == ["PERMISSION_DENIED", "PERMISSION_DENIED"]
            assert "events.send" in value[2]
    finally:
        state.release()


async def test_projections_rebuild_beside_the_live_ones_and_swap_in(proc_node: ProcNode) -> None:
    app = proc_node
    await app.apply(SENDER)
    assert await app.run("app:sender", [["r", "k", "/", i] for i in range(1, 4)]) == ("sent", None)
    assert app.node.events is not None
    await app.node.events.flush()
    query = "SELECT count(*) AS n FROM events WHERE system = 'r'"
    assert await app.node.registry.query(query) == [{"n": 3}]
    db = app.node._db
    assert db is not None
    db._con.execute("DELETE FROM store.events")  # damage: the rows are gone, the checkpoint says done
    assert await app.node.registry.query(query) == [{"n": 0}]
    db._con.execute("DELETE FROM store.registry_entries")  # and the registry's current entries
    result = await app.node.rebuild_projections()
    assert set(result["rebuilt"]) == {"registry", "proc", "events", "audit", "agents"}
    entries = await app.node.registry.query("SELECT id FROM registry_entries ORDER BY id")
    assert "app:sender" in [r["id"] for r in entries]
    assert await app.node.registry.query(query) == [{"n": 3}]
    # the new runners carry on: later events and processes land as before
    assert await app.run("app:sender", [["r", "k", "/", 4]]) == ("sent", None)
    await app.node.events.flush()
    assert await app.node.registry.query(query) == [{"n": 4}]
    await app.processes.flush()
    rows = await app.node.registry.query("SELECT count(*) AS n FROM processes WHERE entry_id = 'app:sender'")
    assert rows == [{"n": 2}]
    # the registry writer carries on too: a new version lands once, after the rebuilt ones
    before = await app.node.registry.query("SELECT count(*) AS n FROM registry_versions")
    await app.apply(lua("app:late", "return { main = function() return 1 end }"))
    await app.node.registry.projection.flush()
    after = await app.node.registry.query("SELECT count(*) AS n FROM registry_versions")
    assert after[0]["n"] == before[0]["n"] + 1
