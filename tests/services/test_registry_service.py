"""The registry service: file applies merged with run-time changes, and racing writers."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from wippy.core import Changeset, ConflictError, DefinitionErrors, Entry, JetStreamEventStore, Op, Subjects
from wippy.projections import ProjectionDB, RegistryProjection
from wippy.services import RegistryService

REPO = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def service(url: str, ns: str, db: Path, node: str = "n1") -> AsyncIterator[RegistryService]:
    store = await JetStreamEventStore.connect(url, Subjects(ns))
    await store.provision()
    pdb = ProjectionDB(db)
    proj = RegistryProjection(store, pdb)
    try:
        await proj.start()
        yield RegistryService(proj, node=node)
    finally:
        await proj.aclose()
        pdb.close()
        await store.aclose()


@pytest.fixture
def app(tmp_path: Path) -> Path:
    dst = tmp_path / "app"
    shutil.copytree(REPO / "examples" / "hello", dst)
    return dst


async def test_run_time_changes_survive_a_file_apply(nats_url: str, namespace: str, tmp_path: Path,
                                                     app: Path) -> None:
    async with service(nats_url, namespace, tmp_path / "p.duckdb") as svc:
        first = await svc.apply_files(app)
        assert first.changed
        # an agent edits one entry and creates another at run time
        fr = await svc.show("hello:greeting.fr")
        edited = Entry(fr.id, fr.kind, fr.meta, {**fr.data, "text": "Salut, {name} !"})
        extra = Entry("hello:greeting.de", "registry.entry", {"type": "greeting"}, {"text": "Hallo, {name}!"})
        await svc.apply(Changeset(ops=(Op("update", fr.id, edited), Op("create", extra.id, extra))),
                        actor="agent:writer")
        # unchanged files: nothing to apply
        again = await svc.apply_files(app)
        assert not again.changed
        # a file change elsewhere keeps the run-time edits
        index = app / "src" / "_index.yaml"
        index.write_text(index.read_text().replace("title: English", "title: British"))
        merged = await svc.apply_files(app)
        assert merged.changed
        assert merged.warnings == ()
        assert (await svc.show("hello:greeting.fr")).data["text"] == "Salut, {name} !"
        assert (await svc.show("hello:greeting.de")).data["text"] == "Hallo, {name}!"
        assert (await svc.show("hello:greeting.en")).meta["title"] == "British"
        # both sides change one entry: the files win, with a warning naming it
        index.write_text(index.read_text().replace("Bonjour, {name} !", "Bonsoir, {name} !"))
        both = await svc.apply_files(app)
        assert any("hello:greeting.fr" in w for w in both.warnings)
        assert (await svc.show("hello:greeting.fr")).data["text"] == "Bonsoir, {name} !"
        # reset drops what only exists at run time
        reset = await svc.apply_files(app, reset=True)
        assert reset.summary["delete"] == 1
        assert "hello:greeting.de" not in svc.projection.state.entries


async def test_a_writer_that_lost_the_race_applies_nothing(nats_url: str, namespace: str, tmp_path: Path) -> None:
    async with service(nats_url, namespace, tmp_path / "a.duckdb", "a") as a, \
            service(nats_url, namespace, tmp_path / "b.duckdb", "b") as b:
        e1 = Entry("app:x", "registry.entry", {}, {"v": 1})
        await a.apply(Changeset(ops=(Op("create", e1.id, e1),)))
        # b has not seen a's version yet when it writes: its append must conflict
        b.projection.state.last_seq = 0  # (as if b's subscription lagged behind)
        b.projection.state.entries.clear()
        e2 = Entry("app:y", "registry.entry", {}, {"v": 2})
        with pytest.raises(ConflictError, match="nothing was applied"):
            await b._apply_locked(Changeset(ops=(Op("create", e2.id, e2),)), actor=None, trace=None)
        await a.projection.wait_for(a.projection.state.last_seq)
        assert set(a.projection.state.entries) == {"app:x"}
        assert [v["version"] for v in await a.versions()] == [1]


async def test_invalid_changes_name_the_entry_and_leave_no_trace(nats_url: str, namespace: str,
                                                                 tmp_path: Path) -> None:
    async with service(nats_url, namespace, tmp_path / "p.duckdb") as svc:
        router = Entry("app:r", "http.router", {"server": "app:missing"}, {})
        with pytest.raises(DefinitionErrors, match=r"app:r.*meta\.server.*app:missing"):
            await svc.apply(Changeset(ops=(Op("create", router.id, router),)))
        assert await svc.store.last_seq(svc.store.subjects.registry_stream) == 0
        assert svc.version == 0
