"""The events projection: the ``events`` stream into DuckDB's ``events`` table.

One row per ``events.event`` record: ``events(seq, at, node, system, kind, path, data JSON)``,
appended in batches through DuckDB's appender with the checkpoint in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from wippy.core import EVENT_RECORD, EventStore, RecordError

from ._duckdb import ProjectionDB
from ._registry_runner import ProjectionSettings
from ._stream_runner import StreamProjection, envelope

EVENTS: Final = "events"


@dataclass(slots=True)
class EventsBatch:
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def add_raw(self, seq: int, data: bytes) -> None:
        found = envelope(data, EVENT_RECORD)
        if found is None:
            return
        at, node, b = found
        try:
            system, kind, path = b["system"], b["kind"], b["path"]
        except KeyError as exc:
            raise RecordError(f"undecodable {EVENT_RECORD} record: no {exc}") from exc
        if not (isinstance(system, str) and isinstance(kind, str) and isinstance(path, str)):
            raise RecordError(f"{EVENT_RECORD}: system, kind and path must be strings")
        self.rows.append((seq, at // 1000, node, system, kind, path, orjson.dumps(b.get("data")).decode()))



def write_events(db: ProjectionDB, batch: EventsBatch, seq: int) -> None:
    db.write_rows(EVENTS, batch.rows, checkpoint=EVENTS, seq=seq)


class EventsProjection(StreamProjection[EventsBatch]):
    """Follows the events stream from its checkpoint into the ``events`` table."""

    def __init__(self, store: EventStore, db: ProjectionDB, settings: ProjectionSettings | None = None) -> None:
        super().__init__(store, db, settings, name=EVENTS, stream=store.subjects.events_stream,
                         new_batch=EventsBatch, write=write_events)
