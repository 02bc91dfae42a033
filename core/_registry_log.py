"""Registry changesets as log records, and the writer that appends them.

One applied changeset is one ``registry.changeset.applied`` record on the registry commit
subject; its stream sequence is the registry version. A changeset too large for one message
(the server's max payload, 1 MB by default) is written as ``registry.changeset.chunk`` records
followed by the commit, each append expecting the previous one's sequence, so no other record
can slip in between. The commit lists its chunks' sequences; readers ignore chunks that no
commit claims (a writer that died half-way leaves only those).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from ._changeset import Changeset, Op
from ._errors import PayloadTooLargeError, RecordError
from ._records import Record, register_type
from ._store import EventStore

COMMIT = "registry.changeset.applied"
CHUNK = "registry.changeset.chunk"
register_type(COMMIT, 1)
register_type(CHUNK, 1)

#: Room left in each message for the envelope and NATS headers.
_ENVELOPE_ROOM = 4096
#: Warnings kept in a commit record (the rest are counted).
_MAX_WARNINGS = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteContext:
    node: str
    actor: str | None = None
    trace: str | None = None


@dataclass(frozen=True, slots=True)
class Appended:
    version: int
    last_seq: int
    records: tuple[tuple[int, Record], ...]


def _commit_body(cs: Changeset, cs_id: str, ops: list[Any], base: dict[str, Any], chunks: list[int]) -> dict[str, Any]:
    body: dict[str, Any] = {"id": cs_id, "message": cs.message, "ops": ops, "files_base": base}
    if chunks:
        body["chunks"] = chunks
    if cs.rollback_of is not None:
        body["rollback_of"] = cs.rollback_of
    if cs.warnings:
        shown = list(cs.warnings[:_MAX_WARNINGS])
        if len(cs.warnings) > _MAX_WARNINGS:
            shown.append(f"... and {len(cs.warnings) - _MAX_WARNINGS} more")
        body["warnings"] = shown
    return body


def _pieces(cs: Changeset) -> Iterator[tuple[str, Any, int]]:
    """Every op and files-base item with its encoded size."""
    for op in cs.ops:
        raw = op.to_json()
        yield "op", raw, len(orjson.dumps(raw)) + 1
    for eid, digest in cs.files_base.items():
        yield "base", (eid, digest), len(eid) + 32


def plan_bodies(cs: Changeset, max_payload: int) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """Split a changeset into chunk bodies and a commit body (without chunk seqs yet)."""
    cs_id = uuid.uuid4().hex
    room = min(_ENVELOPE_ROOM, max_payload // 4)
    budget = max_payload - room - len(cs.message.encode()) - sum(len(w) + 8 for w in cs.warnings[:_MAX_WARNINGS]) - 320
    if budget <= 0:
        raise PayloadTooLargeError("the changeset message alone exceeds the server's max payload")
    chunks: list[dict[str, Any]] = []
    ops: list[Any] = []
    base: dict[str, Any] = {}
    size = 0
    for what, item, n in _pieces(cs):
        if n > budget:
            ident = item["id"] if what == "op" else item[0]
            raise PayloadTooLargeError(
                f"entry {ident} alone encodes to {n} bytes; the server's max payload is {max_payload}"
            )
        if size + n > budget:
            chunks.append({"id": cs_id, "index": len(chunks), "ops": ops, "files_base": base})
            ops, base, size = [], {}, 0
        if what == "op":
            ops.append(item)
        else:
            base[item[0]] = item[1]
        size += n
    return cs_id, chunks, {"ops": ops, "files_base": base}


async def append_changeset(
    store: EventStore, cs: Changeset, *, expected_last_seq: int, ctx: WriteContext
) -> Appended:
    """Append a changeset; returns its version. Raises ConflictError when the registry stream
    moved past ``expected_last_seq`` (nothing of this changeset counts then)."""
    cs_id, chunk_bodies, rest = plan_bodies(cs, store.max_payload)
    subjects = store.subjects
    seq = expected_last_seq
    written: list[tuple[int, Record]] = []
    chunk_seqs: list[int] = []
    for i, body in enumerate(chunk_bodies):
        rec = Record(type=CHUNK, body=body, node=ctx.node, actor=ctx.actor, trace=ctx.trace)
        seq = await store.append(subjects.registry_chunk, rec, expected_last_seq=seq, msg_id=f"{cs_id}.{i}")
        chunk_seqs.append(seq)
        written.append((seq, rec))
    commit = Record(
        type=COMMIT,
        body=_commit_body(cs, cs_id, rest["ops"], rest["files_base"], chunk_seqs),
        node=ctx.node,
        actor=ctx.actor,
        trace=ctx.trace,
    )
    seq = await store.append(subjects.registry_commit, commit, expected_last_seq=seq, msg_id=f"{cs_id}.commit")
    written.append((seq, commit))
    return Appended(version=seq, last_seq=seq, records=tuple(written))


@dataclass(slots=True)
class DecodedChangeset:
    """A committed changeset read back from the log (read-only by convention; see AppliedOp)."""

    version: int
    id: str
    ops: tuple[Op, ...]
    files_base: dict[str, str | None]
    message: str
    rollback_of: int | None
    warnings: tuple[str, ...]
    record: Record


class ChangesetAssembler:
    """Turns the registry stream back into committed changesets (a pure fold over records)."""

    def __init__(self) -> None:
        self._pending: dict[int, dict[str, Any]] = {}

    @property
    def pending_from(self) -> int | None:
        """Sequence of the oldest chunk still waiting for its commit."""
        return min(self._pending) if self._pending else None

    def feed(self, seq: int, record: Record) -> DecodedChangeset | None:
        body = record.body
        if record.type == CHUNK:
            # Chunks of one changeset are contiguous; a chunk of another id orphans older ones.
            if self._pending and next(iter(self._pending.values()))["id"] != body.get("id"):
                self._pending.clear()
            self._pending[seq] = body
            return None
        if record.type != COMMIT:
            return None
        chunks = body.get("chunks")
        if chunks:
            ops_raw: list[Any] = []
            base: dict[str, str | None] = {}
            for cseq in chunks:
                chunk = self._pending.get(cseq)
                if chunk is None or chunk.get("id") != body.get("id"):
                    raise RecordError(f"commit at {seq} names chunk {cseq}, which is not in the log before it")
                ops_raw.extend(chunk.get("ops") or [])
                base.update(chunk.get("files_base") or {})
            ops_raw.extend(body.get("ops") or [])
            base.update(body.get("files_base") or {})
        else:  # the common case: the commit holds everything
            ops_raw = body.get("ops") or []
            base = body.get("files_base") or {}
        if self._pending:
            self._pending.clear()
        return DecodedChangeset(
            version=seq,
            id=str(body.get("id") or ""),
            ops=tuple(Op.from_json(o) for o in ops_raw),
            files_base=base,
            message=str(body.get("message") or ""),
            rollback_of=body.get("rollback_of"),
            warnings=tuple(body.get("warnings") or ()),
            record=record,
        )
