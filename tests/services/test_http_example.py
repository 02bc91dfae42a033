"""The example HTTP app (examples/notes) served by a real node: the README's run command serves it."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from wippy.core import Changeset, Entry, Op
from wippy.services import Node, RuntimeSettings, StateDir

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "notes"


@pytest.fixture
async def notes(nats_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[str]:
    app = tmp_path / "notes"
    shutil.copytree(EXAMPLE, app, ignore=shutil.ignore_patterns(".wippy"))
    settings = RuntimeSettings(state_dir=tmp_path / "state", nats_url=nats_url, namespace=namespace, node="n1",
                               app_dir=app)
    state = StateDir(settings.state_dir)
    assert state.try_own()
    try:
        async with Node(settings, state) as node:
            await node.registry.apply_files(app)
            gateway = node.registry.get("notes:gateway")
            assert gateway is not None  # the example listens on :8080; the test on a free port
            moved = Entry(gateway.id, gateway.kind, gateway.meta, {**gateway.data, "addr": "127.0.0.1:0"})
            await node.registry.apply(Changeset(ops=(Op("update", moved.id, moved),)))
            assert node.http is not None
            await node.start_services()
            yield f"http://127.0.0.1:{node.http.port('notes:gateway')}"
    finally:
        state.release()


async def test_the_notes_api_and_its_page(notes: str) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{notes}/api/notes", json={"text": "buy milk"}) as r:
            assert r.status == 201
            note = await r.json()
            assert note["text"] == "buy milk" and r.headers["Location"] == f"/api/notes/{note['id']}"
        async with s.get(f"{notes}/api/notes") as r:
            assert (await r.json()) == {"notes": [note], "count": 1}
        async with s.get(f"{notes}/api/notes/{note['id']}") as r:
            assert await r.json() == note
        async with s.post(f"{notes}/api/notes", data=b"not json") as r:
            assert r.status == 400 and "text" in (await r.json())["error"]
        async with s.delete(f"{notes}/api/notes/{note['id']}") as r:
            assert r.status == 204
        async with s.get(f"{notes}/api/notes/{note['id']}") as r:
            assert r.status == 404
        async with s.get(f"{notes}/") as r:
            assert r.status == 200 and "<title>notes</title>" in await r.text()
        async with s.options(f"{notes}/api/notes", headers={"Origin": "http://elsewhere.example",
                                                           "Access-Control-Request-Method": "POST"}) as r:
            assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] in ("*", "http://elsewhere.example")
