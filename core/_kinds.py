"""What the registry knows about entry kinds: which exist, and which fields name other entries.

Reference paths use a small syntax: ``meta.server`` (a nested field), ``storages[]`` (every item of
a list), ``imports.*`` (every value of a map), ``contracts[].contract`` (a field of every item).
Bare names in reference fields are resolved in the entry's own namespace when the entry is loaded
(``func: hello`` in namespace ``app`` becomes ``app:hello``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ._entry import Entry

#: Every entry kind Wippy documents. Other kinds are stored but reported as unknown.
KNOWN_KINDS: frozenset[str] = frozenset(
    {
        "function.lua", "process.lua", "library.lua", "module.lua", "workflow.lua",
        "function.lua.bc", "process.lua.bc", "library.lua.bc", "module.lua.bc", "workflow.lua.bc",
        "process.host", "process.service", "terminal.host", "pg.scope",
        "http.service", "http.router", "http.endpoint", "http.static",
        "db.sql.sqlite", "db.sql.postgres", "db.sql.mysql", "db.sql.duckdb", "db.cdc.postgres",
        "store.memory", "store.sql", "store.kv.raft", "store.kv.crdt",
        "queue.driver.memory", "queue.driver.amqp", "queue.driver.sqs", "queue.driver.jetstream",
        "queue.queue", "queue.consumer",
        "fs.directory", "fs.embed", "cloudstorage.s3", "config.aws",
        "env.storage.os", "env.storage.file", "env.storage.memory", "env.storage.static",
        "env.storage.router", "env.variable",
        "security.policy", "security.policy.expr", "security.token_store",
        "template.set", "template.jet",
        "contract.definition", "contract.binding",
        "exec.native", "exec.docker",
        "temporal.client", "temporal.worker",
        "function.wasm", "function.wat", "process.wasm",
        "network", "network.socks5", "network.i2p", "network.tailscale",
        "registry.entry", "ns.definition", "ns.requirement", "ns.dependency",
    }
)

#: Kinds stored as plain data, with no runtime handler.
DATA_KINDS: frozenset[str] = frozenset({"registry.entry", "ns.definition", "ns.requirement", "ns.dependency"})


@dataclass(frozen=True, slots=True)
class RefPath:
    path: str
    #: True: the target must exist in the registry. False: resolved but not checked
    #: (imports may name libraries a native component provides).
    checked: bool = True
    #: the kinds the target may have (empty: any)
    kinds: tuple[str, ...] = ()


_COMMON = (RefPath("lifecycle.requires[]"), RefPath("lifecycle.depends_on[]"))

_REFS: dict[str, tuple[RefPath, ...]] = {
    "http.router": (RefPath("meta.server", kinds=("http.service",)),),
    "http.endpoint": (RefPath("meta.router", kinds=("http.router",)), RefPath("func", kinds=("function.lua",))),
    "http.static": (RefPath("meta.server", kinds=("http.service",)), RefPath("fs", kinds=("fs.directory",))),
    "process.service": (RefPath("process"), RefPath("host")),
    "queue.queue": (RefPath("driver", kinds=("queue.driver.memory", "queue.driver.amqp", "queue.driver.sqs",
                                             "queue.driver.jetstream")),
                    RefPath("dead_letter.queue", kinds=("queue.queue",))),
    "queue.consumer": (RefPath("queue", kinds=("queue.queue",)), RefPath("func", kinds=("function.lua",))),
    "env.variable": (RefPath("storage"),),
    "env.storage.router": (RefPath("storages[]"),),
    "store.sql": (RefPath("database"),),
    "security.token_store": (RefPath("store"),),
    "template.jet": (RefPath("set", kinds=("template.set",)),),
    "contract.binding": (RefPath("contracts[].contract", checked=False), RefPath("contracts[].methods.*")),
    "temporal.worker": (RefPath("client"),),
    "cloudstorage.s3": (RefPath("config"),),
}

_IMPORTS = (RefPath("imports.*", checked=False),)
_CODE_KINDS = frozenset(
    {"function.lua", "process.lua", "library.lua", "module.lua", "workflow.lua"}
    | {k + ".bc" for k in ("function.lua", "process.lua", "library.lua", "module.lua", "workflow.lua")}
)


def reference_paths(kind: str) -> tuple[RefPath, ...]:
    extra = _IMPORTS if kind in _CODE_KINDS else ()
    return _REFS.get(kind, ()) + extra + _COMMON


def _split(path: str) -> list[str]:
    return path.replace("[]", ".[]").split(".")


def _walk(node: Any, parts: list[str], trail: str) -> Iterator[tuple[str, Any, Any, Any]]:
    """Yield (field path, container, key, value) for every value the path addresses."""
    head, rest = parts[0], parts[1:]
    if head == "[]":
        if isinstance(node, list):
            for i, item in enumerate(node):
                if rest:
                    yield from _walk(item, rest, f"{trail}[{i}]")
                else:
                    yield f"{trail}[{i}]", node, i, item
        return
    if not isinstance(node, dict):
        return
    keys = list(node.keys()) if head == "*" else [head]
    for key in keys:
        if key not in node:
            continue
        sub = f"{trail}.{key}" if trail else str(key)
        if rest:
            yield from _walk(node[key], rest, sub)
        else:
            yield sub, node, key, node[key]


@dataclass(frozen=True, slots=True)
class _Compiled:
    checked: bool
    kinds: tuple[str, ...]
    in_meta: bool
    parts: tuple[str, ...]
    trail: str


_COMPILED: dict[str, tuple[_Compiled, ...]] = {}


def _compiled(kind: str) -> tuple[_Compiled, ...]:
    found = _COMPILED.get(kind)
    if found is None:
        out = []
        for ref in reference_paths(kind):
            parts = _split(ref.path)
            in_meta = parts[0] == "meta"
            out.append(_Compiled(ref.checked, ref.kinds, in_meta, tuple(parts[1:] if in_meta else parts),
                                 "meta" if in_meta else ""))
        found = _COMPILED[kind] = tuple(out)
    return found


def iter_references(entry: Entry, *, checked_only: bool = False) -> list[tuple[str, str]]:
    """(field path, target id) for every reference an entry makes."""
    out: list[tuple[str, str]] = []
    for ref in _compiled(entry.kind):
        if checked_only and not ref.checked:
            continue
        root = entry.meta if ref.in_meta else entry.data
        if ref.parts[0] not in root:  # the common case: the field is absent
            continue
        for field_path, _c, _k, value in _walk(root, list(ref.parts), ref.trail):
            if isinstance(value, str) and value:
                out.append((field_path, value))
    return out


def target_kinds(entry: Entry) -> list[tuple[str, str, tuple[str, ...]]]:
    """(field path, target id, allowed kinds) for every reference whose target kind is constrained."""
    out: list[tuple[str, str, tuple[str, ...]]] = []
    for ref in _compiled(entry.kind):
        if not ref.kinds:
            continue
        root = entry.meta if ref.in_meta else entry.data
        if ref.parts[0] not in root:
            continue
        for field_path, _c, _k, value in _walk(root, list(ref.parts), ref.trail):
            if isinstance(value, str) and value:
                out.append((field_path, value, ref.kinds))
    return out


def resolve_names(ns: str, kind: str, meta: dict[str, Any], data: dict[str, Any]) -> None:
    """Rewrite bare names in reference fields to ``ns:name``, in place (loader-owned dicts)."""
    for ref in _compiled(kind):
        root = meta if ref.in_meta else data
        if ref.parts[0] not in root:
            continue
        for _f, container, key, value in list(_walk(root, list(ref.parts), ref.trail)):
            if isinstance(value, str) and value and ":" not in value:
                container[key] = f"{ns}:{value}"
