"""The HTTP admin API of a node: health, readiness, versions, processes, queries, events as SSE."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from wippy.core import ConfigError
from wippy.services import AdminHttpSettings, Node, RuntimeSettings, StateDir

from .conftest import HOSTS, ProcNode, lua

TOKEN = "a-token-of-enough-length"


@pytest.fixture
async def admin(nats_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[tuple[Node, str]]:
    settings = RuntimeSettings(state_dir=tmp_path / "state", nats_url=nats_url, namespace=namespace, node="n1",
                               admin_http=AdminHttpSettings(addr="127.0.0.1:0", token=TOKEN))
    state = StateDir(settings.state_dir)
    assert state.try_own()
    try:
        async with Node(settings, state) as node:
            assert node.admin_http is not None
            yield node, f"http://127.0.0.1:{node.admin_http.port}"
    finally:
        state.release()


async def test_admin_http_routes_and_token(admin: tuple[Node, str]) -> None:
    node, base = admin
    app = ProcNode(node)
    await app.apply(*HOSTS, lua("app:idle", "return { main = function() process.inbox():receive() end }"))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{base}/health") as r:
            assert r.status == 200 and (await r.json())["node"] == "n1"
        async with s.get(f"{base}/versions") as r:
            assert r.status == 401
        async with s.get(f"{base}/versions", headers={"Authorization": "Bearer wrong"}) as r:
            assert r.status == 401
        async with s.get(f"{base}/ready", headers=auth) as r:
            assert r.status == 503
        await node.start_services()
        async with s.get(f"{base}/ready", headers=auth) as r:
            assert r.status == 200
        async with s.get(f"{base}/versions", headers=auth) as r:
            assert [v["version"] for v in await r.json()] == [1]
        pid = app.spawn("app:idle")
        await app.processes.flush()  # its spawn record is in the log (a query catches up to the log)
        async with s.get(f"{base}/processes", headers=auth) as r:
            assert pid in [p["pid"] for p in await r.json()]
        count = {"sql": "SELECT count(*) AS n FROM registry_entries"}
        async with s.post(f"{base}/query", headers=auth, json=count) as r:
            assert (await r.json()) == [{"n": 3}]
        async with s.post(f"{base}/query", headers=auth, json={"sql": "DROP TABLE events"}) as r:
            assert r.status == 400 and "read-only" in (await r.json())["error"]
        async with s.post(f"{base}/query", headers=auth, data=b"nope") as r:
            assert r.status == 400
        assert node.events is not None
        node.events.send("admin", "k", "/p", {"n": 1})
        await node.events.flush()
        async with s.get(f"{base}/events", params={"system": "admin", "from": "start"}, headers=auth) as r:
            assert r.headers["Content-Type"] == "text/event-stream"
            line = await asyncio.wait_for(r.content.readline(), 10)
            assert line.startswith(b"data: ") and b'"system":"admin"' in line


def test_the_http_admin_api_wants_loopback_and_a_token() -> None:
    with pytest.raises(ConfigError, match="loopback"):
        AdminHttpSettings(addr="0.0.0.0:7070", token=TOKEN).check()
    with pytest.raises(ConfigError, match="token"):
        AdminHttpSettings(addr="127.0.0.1:7070", token="short").check()
    AdminHttpSettings().check()  # off: nothing to check


async def test_the_nats_admin_api_lists_processes(admin: tuple[Node, str]) -> None:
    from wippy.services._admin import AdminClient

    node, _base = admin
    app = ProcNode(node)
    await app.apply(*HOSTS, lua("app:idle", "return { main = function() process.inbox():receive() end }"))
    pid = app.spawn("app:idle")
    await app.processes.flush()
    client = AdminClient(node.store, "n1")
    assert pid in [p["pid"] for p in await client.call("processes", {})]
    assert (await client.call("ping", {}))["node"] == "n1"
    assert (await client.call("ready", {}))["ready"] is False  # the fixture does not start the services
    await node.start_services()
    assert (await client.call("ready", {}))["ready"] is True
