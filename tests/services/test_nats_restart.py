"""A node keeps its processes and their messages across a NATS server restart.

The server is killed (SIGKILL) and started again on the same port and store while a sender
keeps sending: the node reconnects, its consumers resume where they stopped, and every message
is delivered exactly once (a record whose acknowledgement was lost is looked for in the stream
and appended again only if it is not there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import NatsServer
from wippy.services import Node, RuntimeSettings, StateDir

from .conftest import HOSTS, ProcNode, lua

COLLECTOR = lua("app:collector", """
return { main = function()
    local inbox = process.inbox()
    local got = {}
    while true do
        local msg = inbox:receive()
        if msg:topic() == "done" then return got end
        local v = msg:payload():data()
        table.insert(got, v)
    end
end }
""")


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


async def test_messages_survive_a_server_kill_and_restart(own_server: NatsServer, tmp_path: Path) -> None:
    settings = RuntimeSettings(state_dir=tmp_path / "state", nats_url=own_server.url, namespace="rs", node="n1")
    state = StateDir(settings.state_dir)
    assert state.try_own()
    try:
        async with Node(settings, state) as node:
            pn = ProcNode(node)
            await pn.apply(*HOSTS, COLLECTOR)
            procs = pn.processes
            pid = pn.spawn("app:collector")
            done = procs.wait(pid)
            for i in range(300):
                procs.send(None, pid, "n", [i])
            await procs.flush()

            port = own_server.port
            for i in range(300, 400):  # some in flight as the server dies
                procs.send(None, pid, "n", [i])
                if i % 20 == 0:
                    await asyncio.sleep(0)
            await asyncio.sleep(0.002)
            own_server.kill()
            for i in range(400, 600):  # sent while there is no server
                procs.send(None, pid, "n", [i])
                if i % 50 == 0:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            own_server.start(port)

            await asyncio.wait_for(procs.flush(), 60)  # every message so far acknowledged
            for i in range(600, 700):  # after the restart
                procs.send(None, pid, "n", [i])
            assert procs._publisher.failed == 0
            procs.send(None, pid, "done", [])
            result, error = await asyncio.wait_for(done, 60)
            assert error is None
            got = [int(v) for v in result]
            assert sorted(got) == list(range(700)), "lost or repeated messages"
            assert got[:300] == list(range(300)), "messages acknowledged before the kill keep their order"

            # the process projection followed the restart too: each message once
            rows = await asyncio.wait_for(node.registry.query(
                f"SELECT count(*) AS n, count(DISTINCT seq) AS d FROM process_messages WHERE to_pid = '{pid}'"), 30)
            assert rows == [{"n": 701, "d": 701}]
    finally:
        state.release()
