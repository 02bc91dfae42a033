"""Checks a changeset against the registry it would apply to, before anything is appended.

Work is proportional to the changeset, not to the registry: references from changed entries are
looked up, and for deleted entries only their known referrers are re-checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Set
from typing import Protocol

from ._changeset import Op
from ._entry import Entry, parse_id
from ._errors import DefinitionError, DefinitionErrors
from ._kinds import KNOWN_KINDS, iter_references, target_kinds
from ._security import POLICY_KINDS, policy_from_entry, token_store_errors


class RegistryView(Protocol):
    """The read side a validator needs."""

    def get(self, entry_id: str) -> Entry | None: ...
    def referrers(self, entry_id: str) -> Set[str]: ...
    def origin(self, entry_id: str) -> str | None: ...


def validate_changeset(view: RegistryView, ops: Iterable[Op]) -> list[str]:
    """Raise DefinitionErrors listing every problem; return warnings (unknown kinds)."""
    ops = list(ops)
    errors: list[DefinitionError] = []
    warnings: list[str] = []
    overlay: dict[str, Entry | None] = {}
    origins: dict[str, str | None] = {}

    for op in ops:
        try:
            parse_id(op.id, where=op.origin)
        except DefinitionError as exc:
            errors.append(exc)
            continue
        exists = view.get(op.id) is not None
        if op.op == "create" and exists:
            errors.append(DefinitionError("already exists; use update", where=op.origin, entry=op.id))
        elif op.op in ("update", "delete") and not exists:
            errors.append(DefinitionError(f"cannot {op.op}: no such entry", where=op.origin, entry=op.id))
        if op.entry is not None:
            if op.entry.id != op.id:
                errors.append(DefinitionError(f"op id differs from entry id {op.entry.id}", entry=op.id))
            if not isinstance(op.entry.kind, str) or not op.entry.kind:
                errors.append(DefinitionError("kind must be a non-empty string", where=op.origin, entry=op.id,
                                              field="kind"))
            elif op.entry.kind not in KNOWN_KINDS:
                warnings.append(f"{op.id}: unknown kind {op.entry.kind!r} (stored, no runtime handler)")
            else:
                errors.extend(_kind_errors(op.entry, op.origin))
        overlay[op.id] = op.entry
        origins[op.id] = op.origin

    def post(entry_id: str) -> Entry | None:
        if entry_id in overlay:
            return overlay[entry_id]
        return view.get(entry_id)

    errors.extend(_reference_errors(ops, post))

    # Deleted entries must not be referenced by anything that remains.
    deleted = {op.id for op in ops if op.op == "delete"}
    if deleted:
        candidates: set[str] = set()
        for eid in deleted:
            candidates |= view.referrers(eid)
        candidates |= {op.id for op in ops if op.entry is not None}
        for ref_id in sorted(candidates):
            entry = post(ref_id)
            if entry is None:
                continue
            for field_path, target in iter_references(entry, checked_only=True):
                if target in deleted and post(target) is None:
                    where = origins.get(ref_id) or view.origin(ref_id)
                    errors.append(
                        DefinitionError(f"names {target}, which this change deletes", where=where, entry=ref_id,
                                        field=field_path)
                    )
    if not errors:
        changed = [op.entry for op in ops if op.entry is not None]
        for check in _CHANGESET_CHECKS:
            errors.extend(check(post, lambda eid: _referrers(view, ops, eid), changed))
    if errors:
        raise DefinitionErrors(errors)
    return warnings


def _reference_errors(ops: list[Op], post: Callable[[str], Entry | None]) -> list[DefinitionError]:
    """References made by created or updated entries must resolve in the resulting registry, to
    an entry of a kind the field allows."""
    errors: list[DefinitionError] = []
    for op in ops:
        if op.entry is None:
            continue
        for field_path, target in iter_references(op.entry, checked_only=True):
            if post(target) is None:
                errors.append(
                    DefinitionError(f"names {target}, which does not exist", where=op.origin, entry=op.id,
                                    field=field_path)
                )
        for field_path, target, kinds in target_kinds(op.entry):
            found = post(target)
            if found is not None and found.kind not in kinds:
                errors.append(
                    DefinitionError(f"names {target}, which is a {found.kind}, not a {' or '.join(kinds)}",
                                    where=op.origin, entry=op.id, field=field_path)
                )
    return errors


def _referrers(view: RegistryView, ops: list[Op], entry_id: str) -> set[str]:
    """Who names ``entry_id`` once the changeset is applied (may include ids it deletes)."""
    found = set(view.referrers(entry_id))
    for op in ops:
        if op.entry is not None and any(t == entry_id for _f, t in iter_references(op.entry, checked_only=True)):
            found.add(op.id)
    return found


#: Checks across entries, once each entry passed its own: (entry after the change, referrers of an
#: id after the change, the created/updated entries) -> the problems found.
ChangesetCheck = Callable[[Callable[[str], Entry | None], Callable[[str], set[str]], list[Entry]],
                          list[DefinitionError]]
_CHANGESET_CHECKS: list[ChangesetCheck] = []


def register_changeset_check(check: ChangesetCheck) -> None:
    """Run ``check`` on every changeset whose entries passed their own checks."""
    _CHANGESET_CHECKS.append(check)


#: Checks of one kind's fields: the entry -> the problems found (each naming entry and field).
KindCheck = Callable[[Entry], list[DefinitionError]]
_KIND_CHECKS: dict[str, list[KindCheck]] = {}


def register_kind_check(kinds: Iterable[str], check: KindCheck) -> None:
    """Run ``check`` on every created or updated entry of these kinds before a changeset is appended."""
    for kind in kinds:
        _KIND_CHECKS.setdefault(kind, []).append(check)


def _policy_errors(entry: Entry) -> list[DefinitionError]:
    try:
        policy_from_entry(entry)
    except DefinitionError as exc:
        return [exc]
    return []


register_kind_check(POLICY_KINDS, _policy_errors)
register_kind_check(["security.token_store"], token_store_errors)


def _kind_errors(entry: Entry, origin: str | None) -> list[DefinitionError]:
    """Kind-specific checks of an entry's fields (the kinds whose mistakes would open access or break use)."""
    found: list[DefinitionError] = []
    for check in _KIND_CHECKS.get(entry.kind, ()):
        found.extend(check(entry))
    return [DefinitionError(e.reason, where=origin, entry=e.entry, field=e.field) for e in found]


def referrers_index(entries: Mapping[str, Entry]) -> dict[str, set[str]]:
    """target id -> ids of the entries whose checked references name it."""
    index: dict[str, set[str]] = {}
    for entry in entries.values():
        for _f, target in iter_references(entry, checked_only=True):
            index.setdefault(target, set()).add(entry.id)
    return index
