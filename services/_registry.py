"""The registry service: validated writes to the log, and reads from the projections.

Every write is a changeset appended with the registry stream's last sequence as the expected
one, validated first against the in-memory projection that reflects exactly that sequence. It
returns once JetStream has acknowledged the commit and the version is folded into memory.
Writes from this process are serialised; writers elsewhere (another node, a CLI on an external
NATS) lose a race with a ConflictError, never silently.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wippy.core import (
    Changeset,
    ConflictError,
    Entry,
    FileEntry,
    NotFoundError,
    Record,
    WriteContext,
    append_changeset,
    diff_states,
    plan_files_apply,
    register_type,
    validate_changeset,
)
from wippy.core import (
    load_app as _load_app,
)
from wippy.projections import (
    AgentsProjection,
    AuditProjection,
    EventsProjection,
    ProcProjection,
    RegistryProjection,
)

AppLoader = Callable[[Path], Any]
DENIED = "security.access.denied"
register_type(DENIED, 1)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    version: int
    changed: bool
    summary: dict[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": self.version}
        if not self.changed:
            out["changed"] = False
        else:
            out.update(self.summary)
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


class RegistryService:
    def __init__(self, projection: RegistryProjection, *, node: str, audit: AuditProjection | None = None,
                 proc: ProcProjection | None = None, events: EventsProjection | None = None) -> None:
        self.projection = projection
        self.store = projection.store
        self.node = node
        self.audit_projection = audit
        self.proc_projection = proc
        self.events_projection = events
        #: the llm_calls projection (set by the runtime that owns it)
        self.agents_projection: AgentsProjection | None = None
        #: the node serving this registry has started its services (the `ready` admin verb, /ready)
        self.ready = False
        #: rebuilds the stream projections beside the live ones (set by the runtime that owns them)
        self.rebuilder: Callable[[], Awaitable[dict[str, Any]]] | None = None
        self._write_lock = asyncio.Lock()

    @property
    def version(self) -> int:
        return self.projection.state.version

    def get(self, entry_id: str) -> Entry | None:
        """The current entry (the in-memory projection; no I/O)."""
        return self.projection.state.entries.get(entry_id)

    def current(self) -> Mapping[str, Entry]:
        """The current entries, read-only (not a copy)."""
        return self.projection.state.entries

    def version_ids(self) -> list[int]:
        return self.projection.state.versions

    # -- writes ------------------------------------------------------------------------------------
    async def apply(self, changeset: Changeset, *, actor: str | None = None, trace: str | None = None) -> ApplyResult:
        """Validate and append one changeset; raises DefinitionErrors or ConflictError."""
        async with self._write_lock:
            return await self._apply_locked(changeset, actor=actor, trace=trace)

    async def _apply_locked(self, changeset: Changeset, *, actor: str | None, trace: str | None) -> ApplyResult:
        state = self.projection.state
        if changeset.empty:
            return ApplyResult(version=state.version, changed=False)
        warnings = validate_changeset(state, changeset.ops)
        all_warnings = tuple(changeset.warnings) + tuple(warnings)
        if all_warnings != changeset.warnings:
            changeset = Changeset(
                ops=changeset.ops, message=changeset.message, files_base=changeset.files_base,
                rollback_of=changeset.rollback_of, warnings=all_warnings,
            )
        expected = state.last_seq
        try:
            appended = await append_changeset(
                self.store, changeset, expected_last_seq=expected,
                ctx=WriteContext(node=self.node, actor=actor, trace=trace),
            )
        except ConflictError as exc:
            raise ConflictError(
                f"the registry changed while this change was prepared (expected it at position {expected}, "
                f"it is at {exc.actual}); nothing was applied, reload and retry",
                expected=exc.expected, actual=exc.actual,
            ) from exc
        for seq, record in appended.records:
            self.projection.apply_local(seq, record)
        return ApplyResult(
            version=appended.version, changed=True, summary=changeset.summary(), warnings=all_warnings
        )

    async def apply_files(
        self, app_dir: Path, *, reset: bool = False, message: str = "", actor: str | None = None,
        trace: str | None = None,
    ) -> ApplyResult:
        """Merge the app's files into the registry (see core._merge) as one changeset."""
        loaded = await asyncio.to_thread(_load_app, app_dir)
        files = [FileEntry(le.entry, le.origin) for le in loaded.entries]
        async with self._write_lock:
            state = self.projection.state
            plan = plan_files_apply(state.entries, files, state.files_base, reset=reset)
            if not plan.changed:
                return ApplyResult(version=state.version, changed=False, warnings=tuple(loaded.warnings))
            cs = Changeset(
                ops=plan.ops,
                message=message or ("reset to the app files" if reset else "apply app files"),
                files_base=plan.base_delta,
                warnings=tuple(loaded.warnings) + plan.warnings,
            )
            return await self._apply_locked(cs, actor=actor, trace=trace)

    async def rollback(
        self, version: int, *, message: str = "", actor: str | None = None, trace: str | None = None
    ) -> ApplyResult:
        """Append a version whose entries equal those of ``version``."""
        async with self._write_lock:
            await self._require_version(version)
            target = {eid: entry for eid, (entry, _o) in (await self._state_at(version)).items()}
            ops = diff_states(self.projection.state.entries, target)
            cs = Changeset(ops=ops, message=message or f"rollback to version {version}", rollback_of=version)
            return await self._apply_locked(cs, actor=actor, trace=trace)

    async def record_denied(self, *, action: str, resource: str, actor: str | None, entry: str | None,
                            reason: str) -> None:
        """Put a denied attempt on the audit stream (never on the registry stream: its sequence
        numbers are versions)."""
        rec = Record(type=DENIED, body={"action": action, "resource": resource, "entry": entry, "reason": reason},
                     node=self.node, actor=actor)
        await self.store.append(self.store.subjects.audit("denied"), rec)

    # -- reads -------------------------------------------------------------------------------------
    async def entries(self, *, at: int | None = None) -> dict[str, Entry]:
        if at is None:
            return dict(self.projection.state.entries)
        self._check_at(at)
        return {eid: e for eid, (e, _o) in (await self._state_at(at)).items()}

    async def list_entries(
        self, *, kind: str | None = None, ns: str | None = None, at: int | None = None
    ) -> list[Entry]:
        entries = await self.entries(at=at)
        out = []
        for eid in sorted(entries):
            e = entries[eid]
            if kind and not fnmatch.fnmatchcase(e.kind, kind):
                continue
            if ns and not fnmatch.fnmatchcase(e.ns, ns):
                continue
            out.append(e)
        return out

    async def show(self, entry_id: str, *, at: int | None = None) -> Entry:
        entries = await self.entries(at=at)
        entry = entries.get(entry_id)
        if entry is None:
            where = f" at version {at}" if at is not None else ""
            raise NotFoundError(f"entry {entry_id} does not exist{where}")
        return entry

    async def versions(self) -> list[dict[str, Any]]:
        await self.projection.flush()
        return await asyncio.to_thread(self.projection.db.versions)

    async def history(self, entry_id: str) -> list[dict[str, Any]]:
        await self.projection.flush()
        rows = await asyncio.to_thread(self.projection.db.history, entry_id)
        if not rows:
            raise NotFoundError(f"entry {entry_id} has no history: it never existed")
        return rows

    async def diff(self, v1: int, v2: int) -> list[dict[str, Any]]:
        before = await self.entries(at=v1)
        after = await self.entries(at=v2)
        out: list[dict[str, Any]] = []
        for op in diff_states(before, after):
            old = before.get(op.id)
            out.append({
                "op": op.op,
                "id": op.id,
                "before": old.to_dict() if old else None,
                "after": op.entry.to_dict() if op.entry else None,
            })
        out.sort(key=lambda d: d["id"])
        return out

    async def query(self, sql: str, *, at: int | None = None, params: list[Any] | None = None
                    ) -> list[dict[str, Any]]:
        if at is not None:
            self._check_at(at)
        await self.projection.flush()
        if self.audit_projection is not None:
            await self.audit_projection.catch_up()
        if self.proc_projection is not None:
            await self.proc_projection.catch_up()
        if self.events_projection is not None:
            await self.events_projection.catch_up()
        if self.agents_projection is not None:
            await self.agents_projection.catch_up()
        result = await asyncio.to_thread(self.projection.db.query, sql, at=at, params=params)
        return result.records()

    # -- helpers -----------------------------------------------------------------------------------
    def _check_at(self, at: int) -> None:
        head = self.projection.state.last_seq
        if at < 0 or at > head:
            raise NotFoundError(f"version {at} does not exist; the newest version is {self.version}")

    async def _require_version(self, version: int) -> None:
        self._check_at(version)
        await self.projection.flush()
        if not await asyncio.to_thread(self.projection.db.version_exists, version):
            raise NotFoundError(f"version {version} does not exist (see `wippy registry versions`)")

    async def _state_at(self, version: int) -> dict[str, tuple[Entry, str | None]]:
        if version >= self.projection.state.version:
            state = self.projection.state
            return {eid: (e, state.origins.get(eid)) for eid, e in state.entries.items()}
        await self.projection.flush(version)
        return await asyncio.to_thread(self.projection.db.state_at, version)
