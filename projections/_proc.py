"""The process projection: the ``proc`` stream into DuckDB's ``process*`` tables.

Each record is checked and turned into rows as it arrives (``process_events`` for every record,
``process_messages`` / ``process_dead_letters`` for messages, a row change for lifecycle
records); a batch of them and the checkpoint are written in one transaction, so a restart
resumes from the checkpoint without duplicates or gaps. A record that cannot be read, or whose
body lacks a field the tables need, is skipped with a log line.

``processes`` holds one row per pid, rewritten as the process changes. The batch keeps each
pid's changes in log order; the writer reads those pids' committed rows and folds the changes
onto them (``apply``, a pure function), so a process spawned long ago is still updated when it
exits, and no process rows are held in memory between writes.
"""

from __future__ import annotations

import logging
from dataclasses import astuple, dataclass, field, replace
from typing import Any, Final

import orjson

from wippy.core import EventStore, Record, RecordError
from wippy.core import proc_records as pr

from ._duckdb import ProjectionDB
from ._registry_runner import ProjectionSettings
from ._stream_runner import StreamProjection

log = logging.getLogger("wippy.projections.proc")

PROC: Final = "proc"
#: the tables the process projection writes
PROC_TABLES: Final = ("processes", "process_messages", "process_dead_letters", "process_events")


@dataclass(frozen=True, slots=True)
class ProcessRow:
    """One row of ``processes`` as stored (times in microseconds since the epoch)."""

    pid: str
    entry_id: str | None = None
    host: str | None = None
    parent: str | None = None
    node: str | None = None
    status: str | None = None  # running | exited | failed; None until the spawn record is seen
    started_us: int | None = None
    exited_us: int | None = None
    exit_error: str | None = None
    restarts: int = 0


@dataclass(frozen=True, slots=True)
class Spawned:
    pid: str
    node: str
    at_us: int
    entry: str
    host: str | None
    parent: str | None


@dataclass(frozen=True, slots=True)
class Exited:
    pid: str
    node: str
    at_us: int
    entry: str | None
    ok: bool
    error: str | None


@dataclass(frozen=True, slots=True)
class ServiceStarted:
    """A ``process.service`` (re)started attempt ``attempt`` as ``pid``."""

    pid: str
    node: str
    attempt: int


Change = Spawned | Exited | ServiceStarted


def apply(row: ProcessRow | None, change: Change) -> ProcessRow:
    """Fold one change into a pid's row. Pids are never reused, so a spawn seen after the exit
    (records written by different nodes may land in either order) fills in the row but keeps
    the terminal status."""
    if row is None:
        row = ProcessRow(change.pid, node=change.node)
    if isinstance(change, Spawned):
        return replace(row, entry_id=change.entry, host=change.host, parent=change.parent, node=change.node,
                       started_us=change.at_us, status=row.status if row.exited_us is not None else "running")
    if isinstance(change, Exited):
        return replace(row, entry_id=row.entry_id or change.entry, status="exited" if change.ok else "failed",
                       exited_us=change.at_us, exit_error=change.error)
    return replace(row, restarts=change.attempt)


@dataclass(slots=True)
class ProcBatch:
    """Rows waiting for the next write, in log order."""

    changes: dict[str, list[Change]] = field(default_factory=dict)
    messages: list[tuple[Any, ...]] = field(default_factory=list)
    dead_letters: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.events)  # every readable record has exactly one event row

    def add_raw(self, seq: int, data: bytes) -> None:
        self.add(seq, Record.decode(data))

    def add(self, seq: int, rec: Record) -> None:
        """Check a record and add its rows; raises RecordError (and adds nothing) when it is malformed."""
        b = rec.body
        at_us = rec.at // 1000
        t = rec.type
        row: tuple[Any, ...] | None = None
        change: Change | None = None
        if t == pr.MESSAGE:
            row = (seq, at_us, _opt_str(b, "from", t), _str(b, "to", t), _str(b, "topic", t), _int(b, "bytes", t))
        elif t == pr.DEAD_LETTER:
            row = (seq, at_us, _opt_str(b, "from", t), _str(b, "to", t), _str(b, "topic", t),
                   _opt_str(b, "reason", t), _int(b, "bytes", t))
        elif t == pr.SPAWNED:
            pid = _str(b, "pid", t)
            change = Spawned(pid, _node(pid, rec), at_us, _str(b, "entry", t), _opt_str(b, "host", t),
                             _opt_str(b, "parent", t))
        elif t == pr.EXITED:
            pid = _str(b, "pid", t)
            change = Exited(pid, _node(pid, rec), at_us, _opt_str(b, "entry", t), _bool(b, "ok", t),
                            _opt_str(b, "error", t))
        elif t == pr.SERVICE:
            event_name, service_pid = _str(b, "event", t), _opt_str(b, "pid", t)
            if event_name == "started" and service_pid is not None:
                change = ServiceStarted(service_pid, _node(service_pid, rec), _int(b, "attempt", t))
        about = b.get("pid")  # the process the record is about: its pid, or a message's addressee
        if not isinstance(about, str):
            about = b.get("to")
        event = (seq, at_us, t, about if isinstance(about, str) else None, rec.node, orjson.dumps(b).decode())
        # all checks passed: add the record's rows together
        if row is not None:
            (self.messages if t == pr.MESSAGE else self.dead_letters).append(row)
        if change is not None:
            self.changes.setdefault(change.pid, []).append(change)
        self.events.append(event)



def write_batch(db: ProjectionDB, batch: ProcBatch, seq: int) -> None:
    """Fold a batch onto the committed rows and write it with the checkpoint (in the writer thread)."""
    committed = {r[0]: ProcessRow(*r) for r in db.process_rows(batch.changes)} if batch.changes else {}
    rows: dict[str, tuple[Any, ...]] = {}
    for pid, changes in batch.changes.items():
        row = committed.get(pid)
        for change in changes:
            row = apply(row, change)
        assert row is not None
        rows[pid] = astuple(row)
    db.write_processes(rows, {"process_messages": batch.messages, "process_dead_letters": batch.dead_letters,
                              "process_events": batch.events}, checkpoint=PROC, seq=seq)


class ProcProjection(StreamProjection[ProcBatch]):
    """Follows the proc stream from its checkpoint and writes it to DuckDB in batches.

    DuckDB trails the stream by at most ``flush_interval`` (or ``batch_size`` records);
    ``flush()`` writes what has arrived, ``catch_up()`` waits for everything the stream holds.
    """

    def __init__(self, store: EventStore, db: ProjectionDB, settings: ProjectionSettings | None = None) -> None:
        super().__init__(store, db, settings, name=PROC, stream=store.subjects.proc_stream, new_batch=ProcBatch,
                         write=write_batch)


def _node(pid: str, rec: Record) -> str:
    """The node hosting ``pid``: named in the pid, else the node that wrote the record."""
    return pr.node_of(pid) or rec.node


def _field(body: dict[str, Any], key: str, rtype: str, *, want: type, what: str, optional: bool) -> Any:
    value = body.get(key)
    if (value is None and optional) or (isinstance(value, want) and (want is bool or not isinstance(value, bool))):
        return value
    got = "missing" if value is None else type(value).__name__
    raise RecordError(f"{rtype}: field {key!r} must be {what}{' or null' if optional else ''} (got {got})")


def _str(body: dict[str, Any], key: str, rtype: str) -> str:
    return str(_field(body, key, rtype, want=str, what="a string", optional=False))


def _opt_str(body: dict[str, Any], key: str, rtype: str) -> str | None:
    value: str | None = _field(body, key, rtype, want=str, what="a string", optional=True)
    return value


def _int(body: dict[str, Any], key: str, rtype: str) -> int:
    return int(_field(body, key, rtype, want=int, what="an integer", optional=False))


def _bool(body: dict[str, Any], key: str, rtype: str) -> bool:
    return bool(_field(body, key, rtype, want=bool, what="true or false", optional=False))

