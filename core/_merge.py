"""The three-way merge of an app's files into a registry that may have changed at run time.

Three sides per entry id: the *base* (what the files said at the last apply from files, kept in
the log as digests), the *files* now, and the *registry* now. The rules:

* files unchanged since the base: keep the registry as it is (run-time edits survive);
* files changed, registry untouched since the base: take the files;
* both changed: the files win, and the entry is named in a warning;
* ``reset``: the registry becomes exactly the files.

Nothing changes when the files did not change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ._changeset import ChangesetBuilder, Op
from ._entry import Entry


@dataclass(frozen=True, slots=True)
class FileEntry:
    entry: Entry
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class MergePlan:
    ops: tuple[Op, ...]
    base_delta: Mapping[str, str | None]
    warnings: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.ops or self.base_delta)


def plan_files_apply(
    registry: Mapping[str, Entry],
    files: Sequence[FileEntry],
    base: Mapping[str, str],
    *,
    reset: bool = False,
) -> MergePlan:
    builder = ChangesetBuilder()
    warnings: list[str] = []
    file_digests: dict[str, str] = {}
    for fe in files:
        file_digests[fe.entry.id] = fe.entry.digest()

    base_delta: dict[str, str | None] = {
        eid: digest for eid, digest in file_digests.items() if base.get(eid) != digest
    }
    for eid in base:
        if eid not in file_digests:
            base_delta[eid] = None

    if reset:
        for fe in files:
            current = registry.get(fe.entry.id)
            if current is None:
                builder.create(fe.entry, fe.origin)
            elif not current.same_as(fe.entry):
                builder.update(fe.entry, fe.origin)
        for eid in registry:
            if eid not in file_digests:
                builder.delete(eid)
        return MergePlan(builder.ops(), base_delta, ())

    for fe in files:
        eid = fe.entry.id
        if eid not in base_delta:
            continue  # files unchanged for this id: the registry keeps whatever it has
        current = registry.get(eid)
        base_digest = base.get(eid)
        registry_untouched = (current.digest() if current else None) == base_digest
        if current is not None and current.same_as(fe.entry):
            continue
        if not registry_untouched:
            warnings.append(
                f"{eid}: changed both in the files ({fe.origin or 'files'}) and at run time; the files win"
            )
        if current is None:
            builder.create(fe.entry, fe.origin)
        else:
            builder.update(fe.entry, fe.origin)
    for eid in base:
        if eid in file_digests:
            continue
        current = registry.get(eid)
        if current is None:
            continue
        if current.digest() != base[eid]:
            warnings.append(f"{eid}: removed from the files but changed at run time; removed")
        builder.delete(eid)
    return MergePlan(builder.ops(), base_delta, tuple(warnings))
