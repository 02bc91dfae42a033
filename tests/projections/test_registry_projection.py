"""The registry projection: in memory and in DuckDB, incremental == rebuilt, state at any version."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wippy.core import (
    Changeset,
    Entry,
    JetStreamEventStore,
    Op,
    Record,
    StoreSettings,
    Subjects,
)
from wippy.projections import ProjectionDB, ProjectionSettings, RegistryProjection
from wippy.services import RegistryService

TABLES = {
    "registry_entries": "SELECT * FROM registry_entries ORDER BY id",
    "registry_versions": "SELECT version, \"at\", author, message, ops, node, trace, rollback_of, warnings "
                         "FROM registry_versions ORDER BY version",
    "registry_history": "SELECT * FROM registry_history ORDER BY version, id",
    "registry_files_base": "SELECT * FROM registry_files_base ORDER BY id",
    "projection_checkpoints": "SELECT * FROM projection_checkpoints",
}


def dump(db: ProjectionDB) -> dict[str, list[Any]]:
    return {name: db.query(sql).rows for name, sql in TABLES.items()}


@asynccontextmanager
async def opened(url: str, ns: str, path: Path, *, max_record_bytes: int | None = None,
                 flush_ms: int = 50) -> AsyncIterator[RegistryService]:
    store = await JetStreamEventStore.connect(url, Subjects(ns), StoreSettings(max_record_bytes=max_record_bytes))
    await store.provision()
    db = ProjectionDB(path)
    proj = RegistryProjection(store, db, ProjectionSettings(flush_interval=timedelta(milliseconds=flush_ms)))
    try:
        await proj.start()
        yield RegistryService(proj, node="n1")
    finally:
        await proj.aclose()
        db.close()
        await store.aclose()


async def drop_streams(url: str, ns: str) -> None:
    store = await JetStreamEventStore.connect(url, Subjects(ns))
    js = store.client.jetstream()
    for spec in store.subjects.streams():
        await js.delete_stream(spec.name)
    await store.aclose()


def entry(i: int, v: int, size: int = 0) -> Entry:
    return Entry(f"app:e{i}", "registry.entry", {"type": "thing", "v": v}, {"x": v, "pad": "p" * size})


@st.composite
def histories(draw: st.DrawFn) -> list[list[tuple[str, int, int]]]:
    """Changesets as (op, entry index, content version); valid against the evolving state."""
    alive: set[int] = set()
    out = []
    for c in range(draw(st.integers(1, 8))):
        ops = []
        touched: set[int] = set()
        for _ in range(draw(st.integers(1, 6))):
            i = draw(st.integers(0, 7))
            if i in touched:
                continue
            touched.add(i)
            if i in alive:
                if draw(st.booleans()):
                    ops.append(("update", i, c))
                else:
                    ops.append(("delete", i, c))
                    alive.discard(i)
            else:
                ops.append(("create", i, c))
                alive.add(i)
        out.append(ops)
    return out


def to_changeset(ops: list[tuple[str, int, int]], big: bool) -> Changeset:
    return Changeset(ops=tuple(
        Op(op, f"app:e{i}", None if op == "delete" else entry(i, v, 300 if big else 0))  # type: ignore[arg-type]
        for op, i, v in ops
    ), message="m")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories(), restarts=st.sets(st.integers(0, 8)), big=st.booleans(), pick=st.integers(0, 50))
async def test_rebuild_from_one_equals_incremental_with_restarts(
    nats_url: str, tmp_path: Path, history: list[list[tuple[str, int, int]]], restarts: set[int], big: bool,
    pick: int,
) -> None:
    ns = "t" + uuid.uuid4().hex[:12]
    live = tmp_path / f"{ns}-live.duckdb"
    limit = 2000 if big else None  # small records force chunked changesets
    states: dict[int, dict[str, Entry]] = {0: {}}
    svc_cm = opened(nats_url, ns, live, max_record_bytes=limit)
    svc = await svc_cm.__aenter__()
    try:
        for n, ops in enumerate(history):
            if n in restarts:  # stop and reopen: state is reloaded from DuckDB + log tail
                await svc_cm.__aexit__(None, None, None)
                svc_cm = opened(nats_url, ns, live, max_record_bytes=limit)
                svc = await svc_cm.__aenter__()
            result = await svc.apply(to_changeset(ops, big))
            states[result.version] = dict(svc.projection.state.entries)
        for version, expected in states.items():
            assert await svc.entries(at=version) == expected
        # rollback to any version, then the registry lists exactly what `--at` that version lists
        target = sorted(states)[pick % len(states)]
        rolled = await svc.rollback(target)
        assert svc.projection.state.entries == states[target]
        assert await svc.list_entries() == await svc.list_entries(at=target)
        if rolled.changed:
            states[rolled.version] = dict(svc.projection.state.entries)
        await svc.projection.flush()
        incremental = dump(svc.projection.db)
    finally:
        await svc_cm.__aexit__(None, None, None)

    async with opened(nats_url, ns, tmp_path / f"{ns}-rebuilt.duckdb") as rebuilt:
        await rebuilt.projection.flush()
        assert dump(rebuilt.projection.db) == incremental
        assert rebuilt.projection.state.entries == states[max(states)]
    await drop_streams(nats_url, ns)


async def test_rollback_equals_the_old_version(nats_url: str, namespace: str, tmp_path: Path) -> None:
    async with opened(nats_url, namespace, tmp_path / "p.duckdb") as svc:
        v1 = (await svc.apply(Changeset(ops=(Op("create", "app:e1", entry(1, 1)),)))).version
        await svc.apply(Changeset(ops=(Op("update", "app:e1", entry(1, 2)), Op("create", "app:e2", entry(2, 2)))))
        rolled = await svc.rollback(v1)
        assert rolled.version > v1
        assert await svc.list_entries() == await svc.list_entries(at=v1)
        versions = await svc.versions()
        assert versions[-1]["message"] == f"rollback to version {v1}"
        rows = await svc.query("SELECT rollback_of FROM registry_versions ORDER BY version DESC LIMIT 1")
        assert rows == [{"rollback_of": v1}]
    await drop_streams(nats_url, namespace)


async def test_orphan_chunks_are_ignored(nats_url: str, namespace: str, tmp_path: Path) -> None:
    async with opened(nats_url, namespace, tmp_path / "p.duckdb") as svc:
        store = svc.store
        # a writer that died after its first chunk
        seq = await store.append(store.subjects.registry_chunk, Record(type="registry.changeset.chunk", body={
            "id": "dead", "index": 0, "ops": [{"op": "create", "id": "app:ghost", "kind": "registry.entry"}],
            "files_base": {}}))
        await svc.projection.wait_for(seq)  # a foreign record: this writer must see it before writing
        result = await svc.apply(Changeset(ops=(Op("create", "app:e1", entry(1, 1)),)))
        assert result.version == 2
        assert set(svc.projection.state.entries) == {"app:e1"}
    async with opened(nats_url, namespace, tmp_path / "rebuilt.duckdb") as again:
        assert set(again.projection.state.entries) == {"app:e1"}
        assert [v["version"] for v in await again.versions()] == [2]
    await drop_streams(nats_url, namespace)


async def test_history_and_diff(nats_url: str, namespace: str, tmp_path: Path) -> None:
    async with opened(nats_url, namespace, tmp_path / "p.duckdb") as svc:
        v1 = (await svc.apply(Changeset(ops=(Op("create", "app:e1", entry(1, 1)),)), actor="user:ann")).version
        v2 = (await svc.apply(Changeset(ops=(Op("update", "app:e1", entry(1, 2)),)), actor="user:bob")).version
        v3 = (await svc.apply(Changeset(ops=(Op("delete", "app:e1"),)))).version
        hist = await svc.history("app:e1")
        assert [(h["version"], h["op"], h["author"]) for h in hist] == [
            (v1, "create", "user:ann"), (v2, "update", "user:bob"), (v3, "delete", None)]
        assert hist[1]["data"] == {"x": 2, "pad": ""}
        d = await svc.diff(v1, v2)
        assert [(x["op"], x["id"]) for x in d] == [("update", "app:e1")]
        assert d[0]["before"]["data"]["x"] == 1 and d[0]["after"]["data"]["x"] == 2
        assert [(x["op"], x["id"]) for x in await svc.diff(v2, v3)] == [("delete", "app:e1")]
        assert [(x["op"], x["id"]) for x in await svc.diff(0, v1)] == [("create", "app:e1")]
    await drop_streams(nats_url, namespace)
