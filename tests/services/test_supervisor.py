"""Supervision: start order, restarts with backoff, max_attempts and intensity, clean stops,
`system.supervisor`, and the proc.service records, on a real node."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from wippy.core import ConfigError, Entry, proc_records
from wippy.services._supervisor import Supervisor, lifecycle_of, start_order

from .conftest import ProcNode, lua

FAILS = """return { main = function() error("boom") end }"""
RETURNS = """return { main = function(x) return x end }"""
IGNORES_CANCEL = """return { main = function() process.inbox():receive() end }"""
HANDLES_CANCEL = """return { main = function()
    local ev = process.events():receive()
    return ev.kind
end }"""


def service(name: str, process: str, **lifecycle: Any) -> Entry:
    data: dict[str, Any] = {"process": process, "host": "app:procs", "lifecycle": {"auto_start": True, **lifecycle}}
    return Entry(name, "process.service", {}, data)


async def service_events(pn: ProcNode, service_id: str) -> list[dict[str, Any]]:
    store = pn.node.store
    assert pn.node.supervisor is not None
    await pn.node.supervisor.flush()  # service records are appended in the background
    records = await store.read(store.subjects.proc_stream)
    return [r.body for _s, r in records if r.type == proc_records.SERVICE and r.body["service"] == service_id]


async def ended(sup: Supervisor, service_id: str) -> str:
    """Wait until the service's supervision ends (exited or failed); its state."""
    task = sup.services[service_id].task
    assert task is not None
    await asyncio.wait_for(asyncio.shield(task), 10)
    return sup.services[service_id].state


async def running(sup: Supervisor) -> None:
    """Let every started service spawn its first run (spawning happens before supervision waits)."""
    await asyncio.sleep(0)
    assert all(s.state == "running" for s in sup.services.values())


# -- start order and config ------------------------------------------------------------------------

def test_start_order_follows_dependencies_and_hosts() -> None:
    host = Entry("app:h", "process.host", {}, {"lifecycle": {"auto_start": True}})
    a = Entry("app:a", "process.service", {}, {"process": "app:p", "host": "app:h",
                                                   "lifecycle": {"auto_start": True, "requires": ["app:b"]}})
    b = Entry("app:b", "process.service", {}, {"process": "app:p", "host": "app:h",
                                                   "lifecycle": {"auto_start": True, "depends_on": ["app:store"]}})
    off = Entry("app:off", "process.service", {}, {"process": "app:p", "host": "app:h"})
    order = [e.id for e in start_order({e.id: e for e in (a, b, host, off)})]
    assert order == ["app:h", "app:b", "app:a"]


def test_a_dependency_cycle_names_its_entries() -> None:
    a = Entry("app:a", "process.service", {}, {"lifecycle": {"auto_start": True, "requires": ["app:b"]}})
    b = Entry("app:b", "process.service", {}, {"lifecycle": {"auto_start": True, "requires": ["app:a"]}})
    with pytest.raises(ConfigError, match="cycle: app:a -> app:b -> app:a"):
        start_order({"app:a": a, "app:b": b})


@pytest.mark.parametrize(("lifecycle", "message"), [
    ({"auto_start": "yes"}, "auto_start must be true or false"),
    ({"restart": {"initial_delay": "soon"}}, "restart.initial_delay must be a duration"),
    ({"restart": {"backoff_factor": 0.5}}, "backoff_factor must be a number >= 1"),
    ({"restart": {"max_attempts": -1}}, "max_attempts must be a number >= 0"),
    ({"requires": "app:x"}, "requires must be a list"),
    ({"stop_timeout": True}, "stop_timeout must be a duration"),
])
def test_lifecycle_mistakes_name_the_entry_and_field(lifecycle: dict[str, Any], message: str) -> None:
    entry = Entry("app:svc", "process.service", {}, {"lifecycle": lifecycle})
    with pytest.raises(ConfigError, match=f"app:svc: lifecycle.*{message}"):
        lifecycle_of(entry)


def test_durations_and_defaults() -> None:
    lc = lifecycle_of(Entry("app:s", "process.service", {}, {"lifecycle": {
        "stop_timeout": "250ms", "restart": {"initial_delay": 100, "max_delay": "2s", "max_attempts": 3}}}))
    assert (lc.auto_start, lc.stop_timeout, lc.stable_threshold) == (False, 0.25, 5.0)
    assert (lc.restart.initial_delay, lc.restart.max_delay, lc.restart.max_attempts) == (0.1, 2.0, 3)
    r = lc.restart
    assert all(0.09 <= r.delay(1) <= 0.11 for _ in range(20))
    assert all(r.delay(10) <= 2.2 for _ in range(20))


# -- running services ---------------------------------------------------------------------------

async def test_error_exits_restart_until_max_attempts(proc_node: ProcNode) -> None:
    await proc_node.apply(lua("app:fails", FAILS),
                          service("app:svc", "app:fails", restart={"initial_delay": "5ms", "max_attempts": 2}))
    sup = proc_node.node.supervisor
    assert sup is not None
    assert await sup.start_all() == ["app:svc"]  # the fixture's hosts are not auto_start
    assert await ended(sup, "app:svc") == "failed"
    events = [e["event"] for e in await service_events(proc_node, "app:svc")]
    assert events == ["started", "restarting", "started", "restarting", "started", "failed"]
    state = sup.state("app:svc")
    assert state is not None
    assert (state["status"], state["desired"], state["retry_count"]) == ("failed", "stopped", 3)
    assert "max_attempts 2" in state["details"] and "boom" in state["details"]


async def test_a_normal_return_is_not_restarted(proc_node: ProcNode) -> None:
    await proc_node.apply(lua("app:returns", RETURNS),
                          service("app:svc", "app:returns", restart={"initial_delay": "5ms"}))
    sup = proc_node.node.supervisor
    assert sup is not None
    await sup.start_all()
    assert await ended(sup, "app:svc") == "exited"
    assert [e["event"] for e in await service_events(proc_node, "app:svc")] == ["started", "exited"]


async def test_restart_intensity_marks_the_service_failed(proc_node: ProcNode) -> None:
    await proc_node.apply(lua("app:fails", FAILS), service(
        "app:svc", "app:fails", stable_threshold="1ns",
        restart={"initial_delay": "1ms", "backoff_factor": 1, "intensity": 3, "period": "1m"}))
    sup = proc_node.node.supervisor
    assert sup is not None
    await sup.start_all()
    assert await ended(sup, "app:svc") == "failed"
    svc = sup.services["app:svc"]
    assert "more than 3 times within 60s" in (svc.error or "")
    assert svc.attempt == 1  # each run counted as stable: only the intensity limit stopped it


async def test_stop_cancels_then_terminates(proc_node: ProcNode) -> None:
    await proc_node.apply(lua("app:ignores", IGNORES_CANCEL), lua("app:handles", HANDLES_CANCEL),
                          service("app:stubborn", "app:ignores", stop_timeout="50ms"),
                          service("app:polite", "app:handles"))
    sup = Supervisor(proc_node.processes, proc_node.node.registry)
    await sup.start_all()
    await running(sup)
    polite, stubborn = sup.services["app:polite"].pid, sup.services["app:stubborn"].pid
    assert polite is not None and stubborn is not None
    done_polite, done_stubborn = proc_node.processes.wait(polite), proc_node.processes.wait(stubborn)
    await sup.aclose()
    assert done_polite.result() == ("pid.cancel", None)
    value, error = done_stubborn.result()
    assert value is None and error is not None and "terminated" in error
    assert [e["event"] for e in await service_events(proc_node, "app:stubborn")][-1] == "stopped"


async def test_system_supervisor_from_lua(proc_node: ProcNode) -> None:
    await proc_node.apply(lua("app:ignores", IGNORES_CANCEL), service("app:svc", "app:ignores", stop_timeout="50ms"),
                          lua("app:ask", """return { main = function()
                              local system = require("system")
                              local one, err = system.supervisor.state("app:svc")
                              local all = system.supervisor.states()
                              local _, missing = system.supervisor.state("app:nope")
                              local hosts = system.hosts.list()
                              local on_host = system.hosts.processes("app:procs")
                              return {status = one.status, pid = one.pid, n = #all, missing = missing:kind(),
                                      hosts = hosts, on_host = #on_host}
                          end }""", modules=["system"]))
    sup = proc_node.node.supervisor
    assert sup is not None
    await sup.start_all()
    await running(sup)
    value, error = await proc_node.run("app:ask")
    assert error is None, error
    assert value["status"] == "running" and value["pid"] == sup.services["app:svc"].pid
    assert (value["n"], value["missing"], value["on_host"]) == (1, "NOT_FOUND", 2)
    assert {"id": "app:procs", "processes": 2} in value["hosts"]


async def test_lifecycle_security_gives_the_service_its_actor(proc_node: ProcNode) -> None:
    await proc_node.apply(
        lua("app:who", """return { main = function()
            local security = require("security")
            local a = security.actor()
            return a and a:id() or "none"
        end }""", modules=["security"]),
        Entry("app:svc", "process.service", {}, {"process": "app:who", "host": "app:procs", "lifecycle": {
            "auto_start": True, "security": {"actor": {"id": "svc:worker", "meta": {"role": "worker"}}}}}))
    sup = proc_node.node.supervisor
    assert sup is not None
    await sup.start_all()
    assert await ended(sup, "app:svc") == "exited"
    pid = sup.services["app:svc"].pid
    await proc_node.processes.flush()
    records = await proc_node.node.store.read(proc_node.node.store.subjects.proc_stream)
    exits = [r.body for _s, r in records if r.type == proc_records.EXITED and r.body["pid"] == pid]
    assert exits and exits[0]["result"] == "svc:worker"
