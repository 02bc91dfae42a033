"""Changesets: ordered create/update/delete operations on registry entries.

A changeset is what one registry version applies. Building one squashes operations on the same
id with Wippy's rules::

    create + update = create      update + update = update
    create + delete = (nothing)   update + delete = delete
    delete + create = update

Anything else (create twice, touching an id after deleting it without re-creating it) is a
mistake in the caller's sequence and raises DefinitionError.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ._entry import Entry
from ._errors import DefinitionError

OpKind = Literal["create", "update", "delete"]
OP_KINDS: tuple[OpKind, ...] = ("create", "update", "delete")


@dataclass(frozen=True, slots=True)
class Op:
    """One operation. ``entry`` is the new content (None for delete); ``origin`` says where the
    content came from (``src/_index.yaml:12``), for messages and history."""

    op: OpKind
    id: str
    entry: Entry | None = None
    origin: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "id": self.id}
        if self.entry is not None:
            out["kind"] = self.entry.kind
            out["meta"] = self.entry.meta
            out["data"] = self.entry.data
        if self.origin:
            out["origin"] = self.origin
        return out

    @staticmethod
    def from_json(raw: Mapping[str, Any]) -> Op:
        op = raw["op"]
        eid = raw["id"]
        if op == "delete":
            return Op("delete", eid, None, raw.get("origin"))
        if op not in OP_KINDS:
            raise ValueError(f"unknown op {op!r}")
        return Op(op, eid, Entry(eid, raw["kind"], raw.get("meta") or {}, raw.get("data") or {}), raw.get("origin"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Changeset:
    """What one version applies, plus why and from where.

    ``files_base`` updates the record of what the app's files said at their last apply
    (id -> content digest, None when the id left the files); the three-way merge of the next
    file apply reads it.
    """

    ops: tuple[Op, ...]
    message: str = ""
    files_base: Mapping[str, str | None] = field(default_factory=dict)
    rollback_of: int | None = None
    warnings: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.ops and not self.files_base

    def summary(self) -> dict[str, int]:
        counts = {"create": 0, "update": 0, "delete": 0}
        for op in self.ops:
            counts[op.op] += 1
        return counts


class ChangesetBuilder:
    """Accumulates operations, squashing repeats on one id (see module docstring)."""

    def __init__(self) -> None:
        self._ops: dict[str, Op | None] = {}  # None: created then deleted (nothing to do)
        self._deleted_then_created: set[str] = set()

    def create(self, entry: Entry, origin: str | None = None) -> ChangesetBuilder:
        prev = self._ops.get(entry.id, _MISSING)
        if prev is _MISSING or prev is None:
            self._ops[entry.id] = Op("create", entry.id, entry, origin)
        elif isinstance(prev, Op) and prev.op == "delete":
            self._ops[entry.id] = Op("update", entry.id, entry, origin)
        else:
            raise DefinitionError("created twice in one changeset", entry=entry.id)
        return self

    def update(self, entry: Entry, origin: str | None = None) -> ChangesetBuilder:
        prev = self._ops.get(entry.id, _MISSING)
        if prev is _MISSING:
            self._ops[entry.id] = Op("update", entry.id, entry, origin)
        elif isinstance(prev, Op) and prev.op in ("create", "update"):
            self._ops[entry.id] = Op(prev.op, entry.id, entry, origin)
        else:
            raise DefinitionError("updated after being deleted in the same changeset", entry=entry.id)
        return self

    def delete(self, entry_id: str) -> ChangesetBuilder:
        prev = self._ops.get(entry_id, _MISSING)
        if prev is _MISSING:
            self._ops[entry_id] = Op("delete", entry_id)
        elif isinstance(prev, Op) and prev.op == "create":
            self._ops[entry_id] = None
        elif isinstance(prev, Op) and prev.op == "update":
            self._ops[entry_id] = Op("delete", entry_id)
        else:
            raise DefinitionError("deleted twice in one changeset", entry=entry_id)
        return self

    def add(self, op: Op) -> ChangesetBuilder:
        if op.op == "delete":
            return self.delete(op.id)
        assert op.entry is not None
        if op.op == "create":
            return self.create(op.entry, op.origin)
        return self.update(op.entry, op.origin)

    def ops(self) -> tuple[Op, ...]:
        return tuple(op for op in self._ops.values() if op is not None)

    def build(self, **kwargs: Any) -> Changeset:
        return Changeset(ops=self.ops(), **kwargs)


_MISSING: Any = object()


def squash(ops: Iterable[Op]) -> tuple[Op, ...]:
    builder = ChangesetBuilder()
    for op in ops:
        builder.add(op)
    return builder.ops()


def diff_states(before: Mapping[str, Entry], after: Mapping[str, Entry]) -> tuple[Op, ...]:
    """The operations that turn ``before`` into ``after``: deletes first, then creates/updates
    in ``after``'s order."""
    ops: list[Op] = [Op("delete", eid) for eid in before if eid not in after]
    for eid, entry in after.items():
        old = before.get(eid)
        if old is None:
            ops.append(Op("create", eid, entry))
        elif not entry.same_as(old):
            ops.append(Op("update", eid, entry))
    return tuple(ops)


@dataclass(slots=True)
class AppliedOp:
    """An operation as it took effect: with the entry before and after. Read-only by convention
    (not frozen: a rebuild makes one per operation, and frozen dataclasses are slow to build)."""

    op: OpKind
    id: str
    before: Entry | None
    after: Entry | None
    origin: str | None = None


def apply_ops(entries: dict[str, Entry], ops: Iterable[Op]) -> list[AppliedOp]:
    """Apply operations to ``entries`` in place. Total: replay never fails on an op that a
    writer validated against a state this reader also reached; an op that does not fit the
    state (only possible with foreign writers) is applied by its result (create on an existing
    id replaces it, update of a missing id creates it, delete of a missing id does nothing)."""
    applied: list[AppliedOp] = []
    for op in ops:
        before = entries.get(op.id)
        if op.op == "delete":
            if before is None:
                continue
            del entries[op.id]
            applied.append(AppliedOp("delete", op.id, before, None, op.origin))
        else:
            assert op.entry is not None
            entries[op.id] = op.entry
            kind: OpKind = "create" if before is None else "update"
            applied.append(AppliedOp(kind, op.id, before, op.entry, op.origin))
    return applied
