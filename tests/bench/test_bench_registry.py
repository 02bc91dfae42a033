"""Registry figures (see the README's Benchmarks section for the latest numbers).

    pytest -m bench -s tests/bench/test_bench_registry.py
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wippy.core import Changeset, Entry, JetStreamEventStore, Op, Record, Subjects
from wippy.projections import ProjectionDB, ProjectionSettings, RegistryProjection
from wippy.services import RegistryService

from .conftest import embedded_server, percentile, report, run

pytestmark = pytest.mark.bench


def entry(i: int, v: int = 0) -> Entry:
    return Entry(f"app.bench:e{i}", "registry.entry", {"type": "bench", "title": f"entry {i}"},
                 {"n": i, "v": v, "text": "some configuration value " * 4})


async def _open(url: str, ns: str, db_path: Path) -> tuple[JetStreamEventStore, ProjectionDB, RegistryProjection]:
    store = await JetStreamEventStore.connect(url, Subjects(ns))
    await store.provision()
    db = ProjectionDB(db_path)
    proj = RegistryProjection(store, db, ProjectionSettings())
    await proj.start()
    return store, db, proj


async def _close(store: JetStreamEventStore, db: ProjectionDB, proj: RegistryProjection) -> None:
    await proj.aclose()
    db.close()
    await store.aclose()


@pytest.mark.parametrize("sync_interval", ["1s", "always"])
def test_apply_one_entry_on_a_3000_entry_registry(bench_dir: Path, sync_interval: str) -> None:
    async def main() -> None:
        server = await embedded_server(bench_dir / "state", sync_interval)
        try:
            store, db, proj = await _open(server.url, "bench", bench_dir / "p.duckdb")
            svc = RegistryService(proj, node="bench")
            await svc.apply(Changeset(ops=tuple(Op("create", entry(i).id, entry(i)) for i in range(3000))))
            await proj.flush()

            # raw baseline: awaited js.publish of a record of the same size, same server and stream
            js = store.client.jetstream()
            payload = Record(type="registry.changeset.applied", body={
                "id": "x" * 32, "message": "", "ops": [Op("update", entry(1).id, entry(1, 1)).to_json()],
                "files_base": {}}).encode()
            raw: list[float] = []
            for _ in range(2000):
                t0 = time.perf_counter()
                await js.publish("bench.events.raw", payload)
                raw.append(time.perf_counter() - t0)

            lat: list[float] = []
            for k in range(2000):
                i = random.randrange(3000)
                cs = Changeset(ops=(Op("update", entry(i).id, entry(i, k + 1)),))
                t0 = time.perf_counter()
                result = await svc.apply(cs)
                lat.append(time.perf_counter() - t0)
                assert svc.projection.state.entries[entry(i).id].data["v"] == k + 1
                assert result.version == svc.version
            await _close(store, db, proj)
        finally:
            await server.aclose()
        p50, p99 = percentile(lat, 50) * 1e3, percentile(lat, 99) * 1e3
        r50, r99 = percentile(raw, 50) * 1e3, percentile(raw, 99) * 1e3
        report(f"apply 1 entry on 3000 (sync_interval={sync_interval})",
               p50_ms=f"{p50:.3f}", p99_ms=f"{p99:.3f}",
               raw_js_publish_p50_ms=f"{r50:.3f}", raw_p99_ms=f"{r99:.3f}",
               ratio_p50=f"{p50 / r50:.2f}x raw")

    run(main())


def test_cold_apply_of_a_10000_entry_app(bench_dir: Path) -> None:
    app = bench_dir / "app"
    for f in range(20):
        d = app / "src" / f"part{f}"
        d.mkdir(parents=True)
        lines = [f"namespace: app.part{f}", "entries:"]
        for i in range(500):
            lines += [f"  - name: e{i}", "    kind: registry.entry", "    meta:", "      type: bench",
                      f"      title: entry {i}", f"    n: {i}", "    text: some configuration value"]
        (d / "_index.yaml").write_text("\n".join(lines) + "\n")
    wippy = [str(Path(sys.executable).parent / "wippy")]
    # Python start-up alone, for scale
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import wippy.ops"], check=True)
    startup = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = subprocess.run([*wippy, "registry", "apply", str(app), "--json"], check=True, capture_output=True,
                         text=True)
    took = time.perf_counter() - t0
    assert '"version"' in out.stdout
    t0 = time.perf_counter()
    listed = subprocess.run([*wippy, "query", "SELECT count(*) AS n FROM registry_entries", "--app", str(app),
                             "--json"], check=True, capture_output=True, text=True)
    query = time.perf_counter() - t0
    assert '"n": 10000' in listed.stdout
    report("cold apply of a 10,000-entry app (wippy registry apply, embedded NATS)",
           seconds=f"{took:.2f}", python_import_seconds=f"{startup:.2f}", then_query_seconds=f"{query:.2f}")


def test_state_at_a_random_version_and_rebuild(bench_dir: Path) -> None:
    async def main() -> None:
        server = await embedded_server(bench_dir / "state", "2m")
        try:
            store, db, proj = await _open(server.url, "bench", bench_dir / "p.duckdb")
            svc = RegistryService(proj, node="bench")
            await svc.apply(Changeset(ops=tuple(Op("create", entry(i).id, entry(i)) for i in range(1000))))
            for k in range(10_000):
                i = random.randrange(1000)
                op = Op("update", entry(i).id, entry(i, k + 1))
                await svc.apply(Changeset(ops=(op,)))
            await proj.flush()
            head = svc.version
            samples: list[float] = []
            for _ in range(200):
                v = random.randrange(1, head + 1)
                t0 = time.perf_counter()
                state = await svc.entries(at=v)
                samples.append(time.perf_counter() - t0)
                assert len(state) == 1000 or v == 0
            report("registry state at a random version (10,001 versions, 1,000 entries)",
                   p50_ms=f"{percentile(samples, 50) * 1e3:.1f}", p99_ms=f"{percentile(samples, 99) * 1e3:.1f}")
            await _close(store, db, proj)

            # raw baseline: replay the registry stream with a no-op ordered push consumer
            store = await JetStreamEventStore.connect(server.url, Subjects("bench"))
            stream = store.subjects.registry_stream
            total = await store.last_seq(stream)
            best_raw = 0.0
            for _ in range(3):
                t0 = time.perf_counter()
                await store.read_raw(stream, 1)
                best_raw = max(best_raw, total / (time.perf_counter() - t0))
            # our rebuild: fold every record into memory and DuckDB, from sequence 1, into a new file
            best = 0.0
            for attempt in range(3):
                db2 = ProjectionDB(bench_dir / f"rebuilt{attempt}.duckdb")
                proj2 = RegistryProjection(store, db2, ProjectionSettings(batch_size=5000))
                t0 = time.perf_counter()
                await proj2.start()
                await proj2.flush()
                best = max(best, total / (time.perf_counter() - t0))
                assert proj2.state.entries == proj.state.entries
                await proj2.aclose()
                db2.close()
            await store.aclose()
            report("projection rebuild from sequence 1 (10,001 changesets)",
                   records_per_s=f"{best:,.0f}", raw_ordered_consumer_per_s=f"{best_raw:,.0f}",
                   ratio=f"{best / best_raw:.0%}")
        finally:
            await server.aclose()

    run(main())
