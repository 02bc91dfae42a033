"""Key-value stores of a node: `store.memory`, `store.kv.raft` (a JetStream KV bucket), `store.sql`.

One ``StoreHub`` per node holds a backend per store entry, shared by every Lua process and by
Python services (a token store is read by HTTP middleware and by Lua alike). Values are kept as
JSON text, so readers get copies, never a shared table.

- ``store.memory``: in this process; expired keys vanish on access and in a sweep every
  ``cleanup_interval``. Its methods are synchronous.
- ``store.kv.raft``: a JetStream KV bucket per entry, shared by every node of the deployment,
  durable and replicated by NATS (``replicas``, ours). Methods are coroutines.
- ``store.sql``: a table of an SQL database entry (services._store_sql). Methods are coroutines.

Every kind also takes (ours) ``read_only: true`` (writes are refused with PERMISSION_DENIED) and
``max_value_size`` (bytes of the JSON value; larger values are refused with INVALID); the hub
wraps backends with those checks (``Guarded``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from wippy.core import (
    ConflictError,
    DefinitionError,
    Entry,
    JetStreamKV,
    NotFoundError,
    NotImplementedFeatureError,
    PermissionDeniedError,
    WippyError,
    kv_bucket_name,
)
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


def _encode(store_id: str, key: str, value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        raise DefinitionError(f"store {store_id}: value for {key!r} cannot be stored: {exc}") from exc


class KvStore:
    """A store.kv.raft entry: a JetStream KV bucket (``<NS>_<entry id>``), opened on first use."""

    def __init__(self, entry: Entry, nats: Any, namespace: str) -> None:
        self.id = entry.id
        if nats is None:
            raise NotImplementedFeatureError(f"store {entry.id}: store.kv.raft needs a node connected to NATS")
        name = entry.data.get("namespace")
        self.bucket = kv_bucket_name(namespace, str(name) if name else entry.id)
        replicas = entry.data.get("replicas", 1)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 1:
            raise DefinitionError("must be a positive integer", entry=entry.id, field="replicas")
        self._replicas = replicas
        self._memory = entry.data.get("durable") is False
        self._nats = nats
        self._kv: JetStreamKV | None = None

    async def _bucket(self) -> JetStreamKV:
        if self._kv is None:
            self._kv = await JetStreamKV.open(self._nats, self.bucket, replicas=self._replicas, memory=self._memory)
        return self._kv

    async def get(self, key: str) -> Any:
        return (await self.entry(key))["value"]

    async def entry(self, key: str) -> dict[str, Any]:
        item = await (await self._bucket()).get(key)
        if item is None:
            raise NotFoundError(f"key {key!r} not found in store {self.id}")
        return {"key": key, "value": orjson.loads(item.value), "version": item.revision}

    async def has(self, key: str) -> bool:
        return await (await self._bucket()).get(key) is not None

    async def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        await (await self._bucket()).put(key, _encode(self.id, key, value), ttl=ttl)

    async def put(self, key: str, value: Any, *, ttl: float | None = None, only_if_absent: bool = False,
                  if_version: int | None = None) -> dict[str, Any]:
        kv = await self._bucket()
        data = _encode(self.id, key, value)
        try:
            if only_if_absent:
                version = await kv.create(key, data, ttl=ttl)
            elif if_version is not None:
                version = await kv.update(key, data, if_version, ttl=ttl)
            else:
                version = await kv.put(key, data, ttl=ttl)
        except WippyError as exc:
            kind = type(exc)
            raise kind(f"store {self.id}: {exc}") from exc
        return {"key": key, "value": value, "version": version}

    async def delete(self, key: str) -> bool:
        kv = await self._bucket()
        if await kv.get(key) is None:
            return False
        await kv.delete(key)
        return True

    async def list(self, *, prefix: str = "", after: str | None = None, limit: int = 100) -> dict[str, Any]:
        kv = await self._bucket()
        keys = [k for k in await kv.keys() if k.startswith(prefix) and (after is None or k > after)]
        items = []
        for k in keys[:limit]:
            item = await kv.get(k)
            if item is not None:  # deleted meanwhile
                items.append({"key": k, "value": orjson.loads(item.value), "version": item.revision})
        return {"items": items, "cursor": items[-1]["key"] if items else None, "has_more": len(keys) > limit}

    async def info(self) -> dict[str, Any]:
        return {"id": self.id, "kind": "store.kv.raft", "bucket": self.bucket,
                "size": await (await self._bucket()).count()}


_WRITES = frozenset({"set", "put", "delete"})


class Guarded:
    """A backend with the entry's ``read_only`` and ``max_value_size`` enforced in front of it."""

    def __init__(self, entry: Entry, backend: Any) -> None:
        self.id = entry.id
        self.backend = backend
        self.read_only = entry.data.get("read_only") is True
        limit = entry.data.get("max_value_size", 0)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise DefinitionError("must be a number of bytes (0: no limit)", entry=entry.id, field="max_value_size")
        self.max_value_size = limit

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.backend, name)
        if name in _WRITES and self.read_only:
            def refuse(*_: Any, **__: Any) -> Any:
                raise PermissionDeniedError(f"store {self.id} is read-only (read_only: true)")
            return refuse
        if name in ("set", "put") and self.max_value_size:
            def sized(key: str, value: Any, *args: Any, **kw: Any) -> Any:
                size = len(_encode(self.id, key, value))
                if size > self.max_value_size:
                    raise DefinitionError(f"store {self.id}: value for {key!r} is {size} bytes, above "
                                          f"max_value_size ({self.max_value_size})")
                return fn(key, value, *args, **kw)
            return sized
        return fn


Backend = Any  # MemoryStore (sync) or a store whose methods are coroutines (KvStore, SqlStore)
AsyncResult = Awaitable[Any]


class StoreHub:
    """The node's store backends, made on first use from their registry entries.

    ``nats`` (a connected client) and ``namespace`` serve store.kv.raft; ``databases`` (the
    node's SqlHub) serves store.sql. Without them those kinds are UNAVAILABLE.
    """

    def __init__(self, registry: Any, *, nats: Any = None, namespace: str = "wippy", databases: Any = None) -> None:
        self._registry = registry
        self._stores: dict[str, tuple[Entry, Any]] = {}
        self._nats = nats
        self._namespace = namespace
        self._databases = databases
        self.KINDS: dict[str, Callable[[Entry], Any]] = {
            "store.memory": MemoryStore,
            "store.kv.raft": lambda e: KvStore(e, self._nats, self._namespace),
            "store.sql": self._sql_store,
        }

    def _sql_store(self, entry: Entry) -> Any:
        if self._databases is None:
            raise NotImplementedFeatureError(f"store {entry.id}: store.sql needs the node's SQL databases")
        from ._store_sql import SqlStore

        return SqlStore(entry, self._databases)

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
        if "read_only" in entry.data or "max_value_size" in entry.data:
            backend = Guarded(entry, backend)
        self._stores[store_id] = (entry, backend)
        return backend
