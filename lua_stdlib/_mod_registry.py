"""`registry`: reads from the in-memory projection, writes as registry versions on the log.

The Lua objects (Snapshot, Changes, Version) live in lua/registry.lua; this module answers their
questions. Reads of the current version never leave Lua's task; reads of an older version and
every apply wait on the registry service (a task switch, not a blocked loop).
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from wippy.core import Changeset, DefinitionError, Entry, Op, WippyError, diff_states

from ._host import LuaHost, register_module
from ._vm import _source

log = logging.getLogger("wippy.lua.registry")


class RegistryAccess(Protocol):
    """What the module needs from the registry service."""

    @property
    def version(self) -> int: ...
    def get(self, entry_id: str) -> Entry | None: ...
    def current(self) -> Mapping[str, Entry]: ...
    async def entries(self, *, at: int | None = None) -> dict[str, Entry]: ...
    async def apply(self, changeset: Changeset, *, actor: str | None = None, trace: str | None = None) -> Any: ...
    async def rollback(self, version: int, *, message: str = "", actor: str | None = None,
                       trace: str | None = None) -> Any: ...
    def version_ids(self) -> list[int]: ...


_FIELD_OPS = "~*^$"
_ENTRY_FIELDS = {".kind": "kind", ".ns": "ns", ".name": "name", ".id": "id"}


def _lookup(entry: Entry, path: str) -> Any:
    node: Any = entry.meta
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _meta_matches(value: Any, want: Any, op: str) -> bool:
    if op == "":
        if isinstance(value, list):
            wanted = want if isinstance(want, list) else [want]
            return all(w in value for w in wanted)
        return bool(value == want)
    if value is None:
        return False
    if op == "~":
        return isinstance(value, str) and re.search(str(want), value) is not None
    if op == "*":
        if isinstance(value, list):
            return want in value
        return isinstance(value, str) and str(want) in value
    if op == "^":
        return isinstance(value, str) and value.startswith(str(want))
    if op == "$":
        return isinstance(value, str) and value.endswith(str(want))
    return False


_warned: set[str] = set()


def compile_filter(raw: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """Wippy's finder filter as (op, key, wanted); keys without `meta.` or `.` are dropped
    (with a warning, once per key per runtime process), as Wippy does."""
    out = []
    for raw_key, want in raw.items():
        op, key = "", raw_key
        if key and key[0] in _FIELD_OPS:
            op, key = key[0], key[1:]
        if key in _ENTRY_FIELDS or key.startswith("meta."):
            out.append((op, key, want))
        elif key not in _warned:
            _warned.add(key)
            log.warning("registry.find: filter key %r ignored (use meta.%s or .%s)", key, key, key)
    return out


def matches(entry: Entry, flt: list[tuple[str, str, Any]]) -> bool:
    for op, key, want in flt:
        field = _ENTRY_FIELDS.get(key)
        if field is not None:
            value = getattr(entry, field)
            if op == "" and not fnmatch.fnmatchcase(value, str(want)):
                return False
            if op and not _meta_matches(value, want, op):
                return False
        elif not _meta_matches(_lookup(entry, key[len("meta."):]), want, op):
            return False
    return True


def find(entries: Iterable[Entry], flt: list[tuple[str, str, Any]]) -> list[Entry]:
    return sorted((e for e in entries if matches(e, flt)), key=lambda e: e.id)


def _build(host: LuaHost) -> Any:  # noqa: PLR0915 - one closure per Lua-facing function
    vm = host.vm
    reg: RegistryAccess = host.ctx.registry

    def entry_table(e: Entry) -> Any:
        return vm.to_lua(e.to_dict())

    def entry_from(raw: Any) -> Entry:
        return entry_from_data(vm.from_lua(raw))

    def entry_from_data(data: Any) -> Entry:
        if not isinstance(data, dict):
            raise DefinitionError("expected an entry table {id, kind, meta, data}")
        eid, kind = data.get("id"), data.get("kind")
        if not isinstance(eid, str) or not isinstance(kind, str) or not kind:
            raise DefinitionError("an entry needs a string id ('ns:name') and a kind", entry=str(eid))
        meta = data.get("meta") or {}
        body = data.get("data") or {}
        if not isinstance(meta, dict) or not isinstance(body, dict):
            raise DefinitionError("meta and data must be tables with named fields", entry=eid)
        return Entry(eid, kind, meta, body)

    def get(entry_id: Any) -> Any:
        e = reg.get(str(entry_id))
        if e is None:
            return None, vm.error("NOT_FOUND", f"entry {entry_id} does not exist")
        return entry_table(e), None

    def find_(filter_: Any = None) -> Any:
        raw = vm.from_lua(filter_) if filter_ is not None else {}
        if raw == []:
            raw = {}
        if not isinstance(raw, dict):
            return None, vm.error("INVALID", "registry.find: the filter must be a table of field = value")
        flt = compile_filter(raw)
        return vm.to_lua([e.to_dict() for e in find(reg.current().values(), flt)]), None

    async def _entries_at(version: int, filter_: Any) -> tuple[Any, ...]:
        entries = await reg.entries(at=version)
        flt = compile_filter(filter_ or {})
        return [e.to_dict() for e in find(entries.values(), flt)], None

    def entries_at(version: int, filter_: Any = None) -> Any:
        flt = vm.from_lua(filter_) if filter_ is not None else None
        if version == reg.version:
            return vm.to_lua([e.to_dict() for e in find(reg.current().values(), compile_filter(flt or {}))]), None
        return vm.pending(_entries_at(int(version), flt))

    async def _get_at(version: int, entry_id: str) -> tuple[Any, ...]:
        entries = await reg.entries(at=version)
        e = entries.get(entry_id)
        if e is None:
            raise _NotFound(f"entry {entry_id} does not exist at version {version}")
        return e.to_dict(), None

    def get_at(version: int, entry_id: Any) -> Any:
        if version == reg.version:
            return get(entry_id)
        return vm.pending(_get_at(int(version), str(entry_id)))

    current_task = vm.get(vm.S, "current")

    def agent_author_of(entry: Any) -> str | None:
        """The author for the agent a system tool runs for (its ``agent_id`` context value), when
        ``entry`` is a system agent's tool."""
        from wippy.services._system_agents import agent_author, is_native_tool  # services import this package

        if not entry or not is_native_tool(reg, str(entry)):
            return None
        task, _co = current_task()
        ctx = vm.get(task, "ctx") if task is not None else None
        agent = vm.get(ctx, "agent_id") if ctx is not None else None
        return agent_author(agent) if isinstance(agent, str) and agent else None

    def who(actor: Any, entry: Any, what: str) -> tuple[str | None, str]:
        """(author, message) of a change from Lua: see ``_author``; a system agent's tool writes as
        the agent, naming the tool and the task's actor in the message."""
        author = agent_author_of(entry)
        if author is None:
            return _author(actor, entry), f"{what} from Lua"
        on_behalf = f" for {actor}" if actor else ""
        return author, f"{what} by {entry}{on_behalf}"

    async def _apply(ops: list[Op], author: str | None, message: str) -> tuple[Any, ...]:
        result = await reg.apply(Changeset(ops=tuple(ops), message=message), actor=author)
        return result.version, None

    def apply(raw_ops: Any, author: Any = None, actor: Any = None) -> Any:
        try:
            ops = []
            for item in vm.from_lua(raw_ops) or []:
                op = str(item.get("op"))
                if op == "delete":
                    ops.append(Op("delete", str(item.get("id"))))
                else:
                    e = entry_from_data(item.get("entry"))
                    ops.append(Op("create" if op == "create" else "update", e.id, e))
        except WippyError as exc:
            return None, vm.error("INVALID", f"changes:apply: {exc}")
        return vm.pending(_apply(ops, *who(actor, author, "applied")))

    async def _apply_version(version: int, author: str | None, message: str) -> tuple[Any, ...]:
        await reg.rollback(version, message=message, actor=author)
        return True, None

    def apply_version(version: int, author: Any = None, actor: Any = None) -> Any:
        return vm.pending(_apply_version(int(version), *who(actor, author, f"apply_version {version}")))

    def audit(action: str, resource: str, actor: Any, entry: Any, reason: str) -> None:
        record = host.ctx.audit
        if record is None:
            return
        vm.background(record(action=str(action), resource=str(resource),
                                    actor=str(actor) if actor else None, entry=str(entry) if entry else None,
                                    reason=str(reason)))

    def versions(make_version: Any) -> Any:
        ids = reg.version_ids()
        table = vm.rt.table_from([make_version(v) for v in ids])
        return table, None

    def version_exists(version: int) -> bool:
        return version == 0 or version in set(reg.version_ids())

    def previous_version(version: int) -> int | None:
        earlier = [v for v in reg.version_ids() if v < version]
        return earlier[-1] if earlier else (0 if version > 0 else None)

    def next_version(version: int) -> int | None:
        later = [v for v in reg.version_ids() if v > version]
        return later[0] if later else None

    def build_delta(from_: Any, to: Any) -> Any:
        def as_map(raw: Any) -> dict[str, Entry]:
            items = vm.from_lua(raw) or []
            if isinstance(items, dict):
                items = list(items.values())
            return {e.id: e for e in (entry_from(vm.to_lua(i)) for i in items)}

        try:
            ops = diff_states(as_map(from_), as_map(to))
        except WippyError as exc:
            return None, vm.error("INVALID", f"build_delta: {exc}")
        out = []
        for op in ops:
            entry = op.entry.to_dict() if op.entry else {"id": op.id}
            out.append({"kind": f"entry.{op.op}", "entry": entry})
        return vm.to_lua(out), None

    bridge = vm.rt.table_from({
        "get": get, "find": find_, "current_version": lambda: reg.version,
        "entries_at": vm.asyncify(entries_at), "get_at": vm.asyncify(get_at),
        "apply": vm.asyncify(apply), "apply_version": vm.asyncify(apply_version),
        "versions": versions, "version_exists": version_exists, "previous_version": previous_version,
        "next_version": next_version, "build_delta": build_delta, "audit": audit,
    })
    return vm.rt.execute(_source("registry.lua"), bridge, vm.errors, host.readonly,
                         vm.rt.globals().debug.getinfo, host.security)


def _author(actor: Any, entry: Any) -> str | None:
    """Who a change from Lua is by: the task's actor, else the calling entry. (A system agent's
    tool is the exception: its changes are by ``agent:<agent id>``, see ``_build``.)"""
    if actor:
        return str(actor)
    return f"entry:{entry}" if entry else None


class _NotFound(WippyError):
    kind = "NOT_FOUND"


register_module("registry", _build)
