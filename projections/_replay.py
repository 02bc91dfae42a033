"""Projections rebuilt as of a point in the log, into a DuckDB file of their own.

``replay_to`` folds the registry stream up to a version (or the last version at or before a time)
and the process, events, audit and agents (model calls) streams up to the moment of that version,
into a fresh file: the same tables `wippy query` reads, showing the app as it was. The live
projections are not touched.
"""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wippy.core import EventStore, NotFoundError, Record, RecordError

from ._agents import AGENTS, AgentsBatch, write_agents
from ._audit import AuditBatch, write_audit
from ._duckdb import REGISTRY, ProjectionDB
from ._events import EventsBatch, write_events
from ._proc import ProcBatch, write_batch
from ._registry_state import AppliedChangeset, RegistryState, fold

_CHUNK = 2000


@dataclass(frozen=True, slots=True)
class ReplayResult:
    path: Path
    version: int
    at: datetime.datetime
    records: dict[str, int]
    #: the registry checkpoint written (the position its tables cover)
    registry_seq: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "version": self.version, "at": self.at.isoformat(), "records": self.records}


async def _chunks(store: EventStore, stream: str, end: int) -> Any:
    start = 1
    while start <= end:
        rows = await store.read_raw(stream, start, min(end, start + _CHUNK - 1))
        if not rows:
            return
        yield rows
        start = rows[-1][0] + 1


async def replay_to(store: EventStore, out: Path, *, version: int | None = None,
                    at: datetime.datetime | None = None, full: bool = False) -> ReplayResult:
    """Rebuild the registry, process, events, audit and agents projections as of ``version`` (or
    ``at``) into ``out``; ``full``: every stream to its end (a rebuild of the live projections)."""
    subjects = store.subjects
    registry = subjects.registry_stream
    head = await store.last_seq(registry)
    if full:
        version = head
    if version is None:
        if at is None:
            raise NotFoundError("replay: give a version or a time")
        version = await store.seq_at(registry, int(at.timestamp() * 1e9) + 1) - 1
        if version < 1:
            raise NotFoundError(f"replay: the registry has no version at or before {at.isoformat()}")
    if not (1 <= version <= head or (full and version == 0)):
        raise NotFoundError(f"replay: version {version} does not exist (the registry holds versions 1 to {head})")
    rows = await store.read_raw(registry, version, version) if version else []
    cut_ns = Record.decode(rows[0][1]).at if rows else 0
    await asyncio.to_thread(out.unlink, missing_ok=True)
    db = await asyncio.to_thread(ProjectionDB, out)
    counts: dict[str, int] = {}
    try:
        state = RegistryState()
        applied: list[AppliedChangeset] = []
        n = 0
        async for chunk in _chunks(store, registry, version):
            for seq, data in chunk:
                n += 1
                try:
                    found = fold(state, seq, Record.decode(data))
                except (RecordError, KeyError, TypeError, ValueError):
                    continue  # the live projection skips it too
                if found is not None:
                    applied.append(found)
        await asyncio.to_thread(lambda: db.write_registry(applied, seq=state.stable_seq, version=state.version))
        counts[REGISTRY] = n
        for name, stream, batch, write in (("proc", subjects.proc_stream, ProcBatch(), write_batch),
                                           ("events", subjects.events_stream, EventsBatch(), write_events),
                                           ("audit", subjects.audit_stream, AuditBatch(), write_audit),
                                           (AGENTS, subjects.agents_stream, AgentsBatch(), write_agents)):
            end = await store.last_seq(stream) if full else await store.seq_at(stream, cut_ns + 1) - 1
            n = 0
            async for chunk in _chunks(store, stream, end):
                for seq, data in chunk:
                    n += 1
                    try:
                        batch.add_raw(seq, data)
                    except RecordError:
                        continue
            await asyncio.to_thread(write, db, batch, end)  # type: ignore[arg-type]
            counts[name] = n
    finally:
        await asyncio.to_thread(db.close)
    return ReplayResult(out, version, datetime.datetime.fromtimestamp(cut_ns / 1e9, tz=datetime.UTC), counts,
                        registry_seq=state.stable_seq)
