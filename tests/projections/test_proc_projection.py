"""The process projection: proc records -> DuckDB tables, resumed from its checkpoint, equal to a model."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wippy.core import JetStreamEventStore, Record, RecordError, Subjects
from wippy.core import proc_records as pr
from wippy.projections import PROC, ProcProjection, ProjectionDB, ProjectionSettings
from wippy.projections._proc import ProcBatch

HOST = "app:processes"
T0 = 1_700_000_000_000_000_000  # ns
PROCESS_COLUMNS = ("SELECT pid, entry_id, host, parent, node, status, epoch_us(started_at), epoch_us(exited_at), "
                   "exit_error, restarts FROM processes ORDER BY pid")
TABLES = {
    "processes": PROCESS_COLUMNS,
    "process_messages": "SELECT * FROM process_messages ORDER BY seq",
    "process_dead_letters": "SELECT * FROM process_dead_letters ORDER BY seq",
    "process_events": "SELECT * FROM process_events ORDER BY seq",
}


def pid(i: int, node: str | None = "n1") -> str:
    return f"{{{node}@{HOST}|0x{i:05x}}}" if node else f"{{{HOST}|0x{i:05x}}}"


def rec(type_name: str, body: dict[str, Any], at: int, node: str = "n1") -> Record:
    return Record(type=type_name, body=body, at=at, node=node)


def spawned(p: str, at: int, *, entry: str = "app:worker", parent: str | None = None, node: str = "n1") -> Record:
    return rec(pr.SPAWNED, {"pid": p, "entry": entry, "host": HOST, "parent": parent, "linked": False,
                            "monitored": parent is not None}, at, node)


def exited(p: str, at: int, *, ok: bool, entry: str = "app:worker", node: str = "n1") -> Record:
    return rec(pr.EXITED, {"pid": p, "entry": entry, "ok": ok, "result": 1 if ok else None,
                           "error": None if ok else f"boom {p}", "kind": None if ok else "INTERNAL"}, at, node)


def message(src: str | None, dst: str, at: int, *, size: int = 12) -> Record:
    return rec(pr.MESSAGE, {"to": dst, "from": src, "topic": "ping", "payload": [{"n": size}], "bytes": size}, at)


def service_started(p: str, at: int, attempt: int) -> Record:
    return rec(pr.SERVICE, {"service": "app:svc", "event": "started", "pid": p, "attempt": attempt, "error": None,
                            "delay_ms": None}, at)


async def append_all(store: JetStreamEventStore, records: list[Record]) -> int:
    """Append on the writing node's subject; the projection reads every subject of the stream."""
    seq = 0
    for r in records:
        seq = await store.append(store.subjects.proc(r.node), r)
    return seq


@asynccontextmanager
async def projected(store: JetStreamEventStore, path: Path) -> AsyncIterator[ProcProjection]:
    db = ProjectionDB(path)
    proj = ProcProjection(store, db, ProjectionSettings(flush_interval=timedelta(milliseconds=20)))
    try:
        await proj.start()
        yield proj
    finally:
        await proj.aclose()
        db.close()


def dump(db: ProjectionDB) -> dict[str, list[Any]]:
    return {name: db.query(sql).rows for name, sql in TABLES.items()}


async def test_tables_hold_lifecycle_messages_and_every_record(store: JetStreamEventStore, tmp_path: Path) -> None:
    a, b, c = pid(1), pid(2), pid(3, node=None)
    records = [
        spawned(a, T0 + 1_000, entry="app:root"),
        spawned(b, T0 + 2_000, parent=a),
        service_started(b, T0 + 3_000, 2),
        message(a, b, T0 + 4_000, size=40),
        message(None, b, T0 + 5_000, size=7),
        rec(pr.DEAD_LETTER, {"to": pid(9), "from": a, "topic": "lost", "reason": "no such process", "bytes": 3},
            T0 + 6_000),
        rec(pr.LINKED, {"pid": a, "peer": b}, T0 + 7_000),
        rec(pr.REGISTERED, {"name": "root", "pid": a}, T0 + 8_000),
        rec(pr.SIGNAL, {"to": a, "from": b, "signal": "exit", "result": {"error": "boom"}, "reason": None},
            T0 + 9_000),
        exited(b, T0 + 10_000, ok=False),
        exited(a, T0 + 11_000, ok=True, entry="app:root"),
        spawned(c, T0 + 12_000, node="n2"),  # a node-less pid lives on the node that wrote its spawn
    ]
    last = await append_all(store, records)
    async with projected(store, tmp_path / "p.duckdb") as proj:
        await proj.catch_up()
        db = proj.db
        assert db.query(PROCESS_COLUMNS).rows == [
            (c, "app:worker", HOST, None, "n2", "running", T0 // 1000 + 12, None, None, 0),
            (a, "app:root", HOST, None, "n1", "exited", T0 // 1000 + 1, T0 // 1000 + 11, None, 0),
            (b, "app:worker", HOST, a, "n1", "failed", T0 // 1000 + 2, T0 // 1000 + 10, f"boom {b}", 2),
        ]
        result = db.query('SELECT "at", started_at, exited_at FROM processes, process_messages LIMIT 1')
        assert set(result.types) == {"TIMESTAMP WITH TIME ZONE"}
        assert db.query('SELECT seq, epoch_us("at"), from_pid, to_pid, topic, bytes FROM process_messages '
                        "ORDER BY seq").rows == [
            (4, T0 // 1000 + 4, a, b, "ping", 40),
            (5, T0 // 1000 + 5, None, b, "ping", 7),
        ]
        assert db.query("SELECT seq, from_pid, to_pid, topic, reason, bytes FROM process_dead_letters").rows == [
            (6, a, pid(9), "lost", "no such process", 3)]
        events = db.query("SELECT seq, type, pid, node, body FROM process_events ORDER BY seq").records()
        assert [e["type"] for e in events] == [r.type for r in records]
        assert [e["seq"] for e in events] == list(range(1, last + 1))
        assert [e["pid"] for e in events] == [a, b, b, b, b, pid(9), a, a, a, b, a, c]
        assert [e["body"] for e in events] == [r.body for r in records]
        assert events[-1]["node"] == "n2"
        # the JSON body is queryable in SQL
        assert db.query("SELECT body->>'signal' FROM process_events WHERE type = 'proc.signal'").rows == [("exit",)]
        assert db.checkpoint(PROC) == (last, 0)


async def test_restart_resumes_from_the_checkpoint_without_duplicates(
    store: JetStreamEventStore, tmp_path: Path
) -> None:
    path = tmp_path / "p.duckdb"
    a, b = pid(1), pid(2)
    await append_all(store, [spawned(a, T0), spawned(b, T0 + 1_000), message(a, b, T0 + 2_000)])
    async with projected(store, path) as proj:
        await proj.catch_up()
    # the exits of processes spawned before the restart update their committed rows
    last = await append_all(store, [message(b, a, T0 + 3_000), exited(a, T0 + 4_000, ok=True),
                                    service_started(b, T0 + 5_000, 1)])
    for _ in range(2):  # the second reopen has nothing new to read
        async with projected(store, path) as proj:
            await proj.catch_up()
            db = proj.db
            assert db.query("SELECT pid, status, epoch_us(started_at), epoch_us(exited_at), restarts FROM processes "
                            "ORDER BY pid").rows == [
                (a, "exited", T0 // 1000, T0 // 1000 + 4, 0),
                (b, "running", T0 // 1000 + 1, None, 1),
            ]
            assert db.query("SELECT seq FROM process_messages ORDER BY seq").rows == [(3,), (4,)]
            assert db.query("SELECT seq FROM process_events ORDER BY seq").rows == [(s,) for s in range(1, last + 1)]
            assert db.checkpoint(PROC) == (last, 0)


async def test_malformed_records_are_skipped_with_a_log_line(
    store: JetStreamEventStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    subject = store.subjects.proc("n1")
    js = store.client.jetstream()
    await js.publish(subject, b"{not json")
    await append_all(store, [
        rec(pr.SPAWNED, {"pid": 5, "entry": "app:x"}, T0),  # pid is not a string
        rec(pr.MESSAGE, {"to": pid(1), "from": None, "topic": "t", "payload": []}, T0),  # no bytes
        rec(pr.MESSAGE, {"to": pid(1), "from": None, "topic": "t", "payload": [], "bytes": True}, T0),
        rec(pr.EXITED, {"pid": pid(1), "entry": "app:x"}, T0),  # no ok
    ])
    await js.publish(subject, b'{"type": "proc.spawned", "schema": 99, "at": 1, "node": "n1", "body": {}}')
    last = await append_all(store, [spawned(pid(1), T0 + 1_000), rec("proc.someday", {"pid": pid(1)}, T0 + 2_000)])
    with caplog.at_level(logging.ERROR, logger="wippy.projections.proc"):
        async with projected(store, tmp_path / "p.duckdb") as proj:
            await proj.catch_up()
            assert proj.db.query("SELECT pid, status FROM processes").rows == [(pid(1), "running")]
            assert proj.db.query("SELECT count(*) FROM process_messages").rows == [(0,)]
            assert proj.db.query("SELECT seq, type FROM process_events ORDER BY seq").rows == [
                (7, "proc.spawned"), (8, "proc.someday")]
            assert proj.db.checkpoint(PROC) == (last, 0)
    logged = [r.getMessage() for r in caplog.records if r.name == "wippy.projections.proc"]
    assert [m.split(":", 1)[0] for m in logged] == [f"proc record {s} skipped" for s in range(1, 7)]
    assert "proc.spawned: field 'pid' must be a string (got int)" in logged[1]
    assert "proc.message: field 'bytes' must be an integer (got missing)" in logged[2]
    assert "proc.message: field 'bytes' must be an integer (got bool)" in logged[3]
    assert "newer than this runtime" in logged[5]


async def test_records_in_either_order_fill_the_same_row(store: JetStreamEventStore, tmp_path: Path) -> None:
    """Records about one process may come from different nodes, so their order is not fixed."""
    a, b, c = pid(1), pid(2), pid(3)
    await append_all(store, [
        service_started(a, T0, 3), spawned(a, T0 + 1_000),  # the service's record first
        exited(b, T0 + 2_000, ok=False), spawned(b, T0 + 3_000),  # the exit first
        exited(c, T0 + 4_000, ok=True, entry="app:only_exit"),  # never seen spawning
    ])
    async with projected(store, tmp_path / "p.duckdb") as proj:
        await proj.catch_up()
        assert proj.db.query(PROCESS_COLUMNS).rows == [
            (a, "app:worker", HOST, None, "n1", "running", T0 // 1000 + 1, None, None, 3),
            (b, "app:worker", HOST, None, "n1", "failed", T0 // 1000 + 3, T0 // 1000 + 2, f"boom {b}", 0),
            (c, "app:only_exit", None, None, "n1", "exited", None, T0 // 1000 + 4, None, 0),
        ]


def test_a_malformed_record_adds_no_rows() -> None:
    batch = ProcBatch()
    bad = rec(pr.SERVICE, {"service": "app:svc", "event": "started", "pid": pid(1), "attempt": "1"}, T0)
    with pytest.raises(RecordError, match=r"proc\.service: field 'attempt' must be an integer"):
        batch.add(1, bad)
    assert not batch and not batch.changes


# -- the processes table equals a straightforward model, across flushes, restarts and a rebuild -------------

Step = tuple[str, int, int]  # (kind, a, b)


@st.composite
def scripts(draw: st.DrawFn) -> list[Step]:
    """Valid histories: exits and service starts only for running processes."""
    running: list[int] = []
    spawned_n = 0
    steps: list[Step] = []
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from(["spawn", "spawn", "exit", "message", "service", "flush", "restart"]))
        if kind in ("exit", "service") and not running:
            kind = "spawn"
        if kind == "spawn":
            parent = draw(st.sampled_from([-1, *running]))
            steps.append(("spawn", spawned_n, parent))
            running.append(spawned_n)
            spawned_n += 1
        elif kind == "exit":
            i = draw(st.sampled_from(running))
            running.remove(i)
            steps.append(("exit", i, int(draw(st.booleans()))))
        elif kind == "service":
            steps.append(("service", draw(st.sampled_from(running)), draw(st.integers(0, 5))))
        elif kind == "message":
            steps.append(("message", draw(st.integers(0, 9)), draw(st.integers(0, 9))))
        else:
            steps.append((kind, 0, 0))
    return steps


def script_pid(i: int) -> str:
    return pid(i, node=("n1", "n2", None)[i % 3])


def script_records(steps: list[Step]) -> list[Record | None]:
    """The record each step appends (None for flushes and restarts)."""
    out: list[Record | None] = []
    for n, (kind, a, b) in enumerate(steps):
        at = T0 + n * 1_000
        if kind == "spawn":
            out.append(spawned(script_pid(a), at, entry=f"app:e{a % 4}",
                               parent=script_pid(b) if b >= 0 else None, node="n3"))
        elif kind == "exit":
            out.append(exited(script_pid(a), at, ok=bool(b)))
        elif kind == "service":
            out.append(service_started(script_pid(a), at, b))
        elif kind == "message":
            out.append(message(script_pid(a), script_pid(b), at, size=a + b))
        else:
            out.append(None)
    return out


def model(records: list[Record]) -> list[tuple[Any, ...]]:
    rows: dict[str, dict[str, Any]] = {}
    for r in records:
        body, at_us = r.body, r.at // 1000
        if r.type == pr.SPAWNED:
            rows[body["pid"]] = {"pid": body["pid"], "entry_id": body["entry"], "host": body["host"],
                                 "parent": body["parent"], "node": pr.node_of(body["pid"]) or "n3",
                                 "status": "running", "started_at": at_us, "exited_at": None, "exit_error": None,
                                 "restarts": 0}
        elif r.type == pr.EXITED:
            rows[body["pid"]].update(status="exited" if body["ok"] else "failed", exited_at=at_us,
                                     exit_error=body["error"])
        elif r.type == pr.SERVICE:
            rows[body["pid"]]["restarts"] = body["attempt"]
    return [tuple(row.values()) for _pid, row in sorted(rows.items())]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=scripts())
async def test_processes_equal_the_model_and_a_rebuild(nats_url: str, tmp_path: Path, steps: list[Step]) -> None:
    ns = "t" + uuid.uuid4().hex[:12]
    store = await JetStreamEventStore.connect(nats_url, Subjects(ns))
    await store.provision()
    try:
        live = tmp_path / f"{ns}-live.duckdb"
        per_step = script_records(steps)
        records = [r for r in per_step if r is not None]
        cm = projected(store, live)
        proj = await cm.__aenter__()
        try:
            for (kind, _a, _b), r in zip(steps, per_step, strict=True):
                if r is not None:
                    await store.append(store.subjects.proc("n1"), r)
                elif kind == "flush":
                    await proj.catch_up()
                else:  # restart from the checkpoint
                    await cm.__aexit__(None, None, None)
                    cm = projected(store, live)
                    proj = await cm.__aenter__()
            await proj.catch_up()
            assert proj.db.query(PROCESS_COLUMNS).rows == model(records)
            incremental = dump(proj.db)
        finally:
            await cm.__aexit__(None, None, None)
        assert [row[0] for row in incremental["process_events"]] == list(range(1, len(records) + 1))
        async with projected(store, tmp_path / f"{ns}-rebuilt.duckdb") as rebuilt:
            await rebuilt.catch_up()
            assert dump(rebuilt.db) == incremental
    finally:
        js = store.client.jetstream()
        for spec in store.subjects.streams():
            await js.delete_stream(spec.name)
        await store.aclose()
