"""The registry projection's fold: the current entries, from the registry stream.

``fold(state, seq, record)`` applies one record and returns the changeset it completed (or None
for a chunk, a non-registry record or a position already applied). It does no I/O. For speed the
state is updated in place: a registry of 10,000 entries is not copied per record; callers that
need an independent copy use ``RegistryState.copy()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass

from wippy.core import AppliedOp, ChangesetAssembler, Entry, Record, apply_ops, iter_references


@dataclass(slots=True)
class AppliedChangeset:
    """One committed version as it took effect (read-only by convention; see AppliedOp)."""

    version: int
    at: int
    author: str | None
    node: str
    trace: str | None
    message: str
    rollback_of: int | None
    warnings: tuple[str, ...]
    ops: tuple[AppliedOp, ...]
    files_base: Mapping[str, str | None]


_EMPTY: frozenset[str] = frozenset()


class RegistryState:
    """Entries at ``version``; ``last_seq`` is the newest stream position folded in."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self.origins: dict[str, str | None] = {}
        self.files_base: dict[str, str] = {}
        self.version = 0
        self.last_seq = 0
        #: Every committed version, ascending.
        self.versions: list[int] = []
        self._referrers: dict[str, set[str]] = {}
        self._assembler = ChangesetAssembler()

    # -- RegistryView ------------------------------------------------------------------------
    def get(self, entry_id: str) -> Entry | None:
        return self.entries.get(entry_id)

    def referrers(self, entry_id: str) -> Set[str]:
        return self._referrers.get(entry_id, _EMPTY)

    def origin(self, entry_id: str) -> str | None:
        return self.origins.get(entry_id)

    # -- position ------------------------------------------------------------------------------
    @property
    def stable_seq(self) -> int:
        """The newest position whose effects are complete (before any half-received changeset)."""
        pending = self._assembler.pending_from
        return self.last_seq if pending is None else pending - 1

    # -- loading ---------------------------------------------------------------------------------
    def load(self, entries: Mapping[str, Entry], origins: Mapping[str, str | None],
             files_base: Mapping[str, str], *, version: int, seq: int, versions: list[int] | None = None) -> None:
        """Start from a persisted state (the DuckDB projection) instead of sequence 1."""
        self.entries = dict(entries)
        self.origins = dict(origins)
        self.files_base = dict(files_base)
        self.version = version
        self.last_seq = seq
        self.versions = list(versions or [])
        self._referrers = {}
        for entry in self.entries.values():
            self._index(entry)
        self._assembler = ChangesetAssembler()

    def copy(self) -> RegistryState:
        other = RegistryState()
        other.load(self.entries, self.origins, self.files_base, version=self.version, seq=self.stable_seq,
                   versions=self.versions)
        return other

    def _index(self, entry: Entry) -> None:
        for _f, target in iter_references(entry, checked_only=True):
            self._referrers.setdefault(target, set()).add(entry.id)

    def _unindex(self, entry: Entry) -> None:
        for _f, target in iter_references(entry, checked_only=True):
            refs = self._referrers.get(target)
            if refs is not None:
                refs.discard(entry.id)
                if not refs:
                    del self._referrers[target]


def fold(state: RegistryState, seq: int, record: Record) -> AppliedChangeset | None:
    """Apply one registry-stream record. Positions at or below ``state.last_seq`` are done."""
    if seq <= state.last_seq:
        return None
    state.last_seq = seq
    cs = state._assembler.feed(seq, record)
    if cs is None:
        return None
    applied = apply_ops(state.entries, cs.ops)
    origins = state.origins
    for a in applied:
        if a.before is not None:
            state._unindex(a.before)
        if a.after is not None:
            state._index(a.after)
            origins[a.id] = a.origin
        else:
            origins.pop(a.id, None)
    if cs.files_base:
        files_base = state.files_base
        for eid, digest in cs.files_base.items():
            if digest is None:
                files_base.pop(eid, None)
            else:
                files_base[eid] = digest
    state.version = seq
    state.versions.append(seq)
    rec = cs.record
    return AppliedChangeset(
        version=seq,
        at=rec.at,
        author=rec.actor,
        node=rec.node,
        trace=rec.trace,
        message=cs.message,
        rollback_of=cs.rollback_of,
        warnings=cs.warnings,
        ops=tuple(applied),
        files_base=cs.files_base,
    )
