"""Key-value stores of a node: `store.memory` (this issue); other kinds arrive with the data modules.

One ``StoreHub`` per node holds a backend per store entry, shared by every Lua process and by
Python services (a token store is read by HTTP middleware and by Lua alike). Values are kept as
JSON text, so readers get copies, never a shared table. Expired keys vanish on access and in a
sweep every ``cleanup_interval``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from wippy.core import ConflictError, DefinitionError, Entry, NotFoundError, NotImplementedFeatureError, WippyError
from wippy.lua_stdlib import parse_go_duration


class AlreadyExistsError(WippyError):
    kind = "ALREADY_EXISTS"


class StoreFullError(WippyError):
    kind = "UNAVAILABLE"


@dataclass(slots=True)
class StoredItem:
    value: bytes
    expires: float | None
    version: int


def _seconds(raw: Any, *, default: float, entry: str, field: str) -> float:
    if raw is None:
        return default
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, str):
        try:
            return parse_go_duration(raw) / 1e9
        except ValueError as exc:
            raise DefinitionError(str(exc), entry=entry, field=field) from exc
    raise DefinitionError("must be a duration like '5m' or a number of seconds", entry=entry, field=field)


class MemoryStore:
    """An in-memory store with TTLs, a size bound (oldest keys are evicted) and versions."""

    def __init__(self, entry: Entry, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.id = entry.id
        max_size = entry.data.get("max_size", 10000)
        if not isinstance(max_size, int) or isinstance(max_size, bool) or max_size <= 0:
            raise DefinitionError("must be a positive integer", entry=entry.id, field="max_size")
        self.max_size = max_size
        self.cleanup_interval = _seconds(entry.data.get("cleanup_interval"), default=300.0, entry=entry.id,
                                         field="cleanup_interval")
        self._items: OrderedDict[str, StoredItem] = OrderedDict()
        self._clock = clock
        self._next_sweep = clock() + self.cleanup_interval
        self._version = 0

    def _live(self, key: str) -> StoredItem | None:
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        item = self._items.get(key)
        if item is not None and item.expires is not None and item.expires <= now:
            del self._items[key]
            return None
        return item

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + self.cleanup_interval
        for key in [k for k, it in self._items.items() if it.expires is not None and it.expires <= now]:
            del self._items[key]

    def get(self, key: str) -> Any:
        item = self._live(key)
        if item is None:
            raise NotFoundError(f"key {key!r} not found in store {self.id}")
        return orjson.loads(item.value)

    def entry(self, key: str) -> dict[str, Any]:
        item = self._live(key)
        if item is None:
            raise NotFoundError(f"key {key!r} not found in store {self.id}")
        return {"key": key, "value": orjson.loads(item.value), "version": item.version}

    def has(self, key: str) -> bool:
        return self._live(key) is not None

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        self.put(key, value, ttl=ttl)

    def put(self, key: str, value: Any, *, ttl: float | None = None, only_if_absent: bool = False,
            if_version: int | None = None) -> dict[str, Any]:
        current = self._live(key)
        if only_if_absent and current is not None:
            raise AlreadyExistsError(f"key {key!r} already exists in store {self.id}")
        if if_version is not None and (current is None or current.version != if_version):
            have = current.version if current else "none"
            raise ConflictError(f"key {key!r} in store {self.id} is at version {have}, not {if_version}")
        try:
            data = orjson.dumps(value)
        except TypeError as exc:
            raise DefinitionError(f"store {self.id}: value for {key!r} cannot be stored: {exc}") from exc
        if current is None and len(self._items) >= self.max_size:
            self._items.popitem(last=False)  # the oldest key makes room
        self._version += 1
        expires = self._clock() + ttl if ttl is not None and ttl > 0 else None
        self._items[key] = StoredItem(data, expires, self._version)
        self._items.move_to_end(key)
        return {"key": key, "value": value, "version": self._version}

    def delete(self, key: str) -> bool:
        if self._live(key) is None:
            return False
        del self._items[key]
        return True

    def list(self, *, prefix: str = "", after: str | None = None, limit: int = 100) -> dict[str, Any]:
        keys = sorted(k for k in list(self._items) if k.startswith(prefix) and self._live(k) is not None)
        if after is not None:
            keys = [k for k in keys if k > after]
        page = keys[:limit]
        items = [{"key": k, "value": orjson.loads(self._items[k].value), "version": self._items[k].version}
                 for k in page]
        return {"items": items, "cursor": page[-1] if page else None, "has_more": len(keys) > limit}

    def info(self) -> dict[str, Any]:
        return {"id": self.id, "kind": "store.memory", "size": len(self._items), "max_size": self.max_size}


class StoreHub:
    """The node's store backends, made on first use from their registry entries."""

    KINDS: ClassVar[dict[str, type[MemoryStore]]] = {"store.memory": MemoryStore}

    def __init__(self, registry: Any) -> None:
        self._registry = registry
        self._stores: dict[str, tuple[Entry, Any]] = {}

    def get(self, store_id: str) -> Any:
        entry = self._registry.get(store_id)
        if entry is None:
            raise NotFoundError(f"store {store_id} does not exist")
        found = self._stores.get(store_id)
        if found is not None and found[0] is entry:
            return found[1]
        factory = self.KINDS.get(entry.kind)
        if factory is None:
            if entry.kind.startswith("store."):
                raise NotImplementedFeatureError(
                    f"store kind {entry.kind} ({store_id}) is not implemented in this runtime yet")
            raise DefinitionError(f"{store_id} is a {entry.kind}, not a store")
        # a changed entry gets a fresh backend (memory stores do not survive a config change)
        backend = factory(entry)
        self._stores[store_id] = (entry, backend)
        return backend
