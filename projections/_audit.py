"""The audit projection: the audit stream, row by row, into DuckDB's ``audit`` table.

Append-only, on the shared stream runner: each batch of records and the checkpoint are written in
one transaction; on start the runner follows the stream from the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from wippy.core import EventStore, Record

from ._duckdb import ProjectionDB
from ._registry_runner import ProjectionSettings
from ._stream_runner import StreamProjection

AUDIT: Final = "audit"


@dataclass(slots=True)
class AuditBatch:
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def add_raw(self, seq: int, data: bytes) -> None:
        rec = Record.decode(data)
        b = rec.body
        self.rows.append((seq, rec.at // 1000, rec.type, rec.actor, rec.node, b.get("action"), b.get("resource"),
                          b.get("entry"), orjson.dumps(b).decode()))



def write_audit(db: ProjectionDB, batch: AuditBatch, seq: int) -> None:
    db.write_rows(AUDIT, batch.rows, checkpoint=AUDIT, seq=seq)


class AuditProjection(StreamProjection[AuditBatch]):
    """Follows the audit stream from its checkpoint into the ``audit`` table."""

    def __init__(self, store: EventStore, db: ProjectionDB, settings: ProjectionSettings | None = None) -> None:
        super().__init__(store, db, settings, name=AUDIT, stream=store.subjects.audit_stream,
                         new_batch=AuditBatch, write=write_audit)
