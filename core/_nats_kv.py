"""The JetStream key-value adapter: one KV bucket per store.kv.raft entry.

NATS replicates and persists the bucket (its stream is ``KV_<bucket>``), so this is the
runtime's cluster KV: every node of a deployment reaches the same bucket. Wippy keys are any
non-empty string; NATS keys allow only ``[-/_=.A-Za-z0-9]`` and no empty tokens, so keys are
escaped byte-wise: characters outside ``[-/_A-Za-z0-9]`` become ``=XX`` (hex of each UTF-8 byte).
The escape keeps prefixes (the escape of a prefix is a prefix of the escape), so listing by
prefix works on escaped keys.

Versions are the bucket's revisions (stream sequences): ``update(last=...)`` is compare-and-set,
``create`` fails if the key is live. A per-key TTL is a per-message TTL (``Nats-TTL``, NATS 2.11+).
What an acknowledged write means is what the server's ``sync_interval`` says (see PITFALLS).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nats.aio.client import Client as NatsClient
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, BucketNotFoundError, KeyDeletedError, KeyNotFoundError
from nats.js.errors import NotFoundError as JsNotFoundError
from nats.js.kv import KeyValue

from ._errors import ConflictError, WippyError

_PLAIN = re.compile(r"[-/_A-Za-z0-9]")
_BUCKET_BAD = re.compile(r"[^A-Za-z0-9_-]")
_WRONG_LAST = (10071, 10164)  # JetStream: wrong last sequence (for the subject)


class KeyExistsError(WippyError):
    kind = "ALREADY_EXISTS"


def escape_key(key: str) -> str:
    return "".join(c if _PLAIN.fullmatch(c) else "".join(f"={b:02X}" for b in c.encode()) for c in key)


def unescape_key(raw: str) -> str:
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == "=":
            out.append(int(raw[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(ord(raw[i]))
            i += 1
    return out.decode()


def bucket_name(namespace: str, store: str) -> str:
    """The bucket of a store: ``<NS>_<store name>``, with characters NATS refuses replaced."""
    return f"{namespace.upper()}_{_BUCKET_BAD.sub('_', store)}"


@dataclass(frozen=True, slots=True)
class KvItem:
    key: str
    value: bytes
    revision: int


class JetStreamKV:
    """One bucket. Made by ``open``; methods raise WippyErrors (NOT_FOUND, CONFLICT, ALREADY_EXISTS)."""

    def __init__(self, js: JetStreamContext, kv: KeyValue, bucket: str) -> None:
        self._js = js
        self._kv = kv
        self.bucket = bucket
        self._pre = f"$KV.{bucket}."

    @classmethod
    async def open(cls, nc: NatsClient, bucket: str, *, replicas: int = 1, history: int = 1,
                   max_value_size: int = -1, memory: bool = False) -> JetStreamKV:
        from nats.js.api import KeyValueConfig, StorageType

        js = nc.jetstream()
        try:
            kv = await js.key_value(bucket)
        except BucketNotFoundError:
            kv = await js.create_key_value(KeyValueConfig(
                bucket=bucket, history=history, replicas=replicas, max_value_size=max_value_size,
                storage=StorageType.MEMORY if memory else StorageType.FILE, direct=True))
        return cls(js, kv, bucket)

    async def get(self, key: str) -> KvItem | None:
        try:
            entry = await self._kv.get(escape_key(key), validate_keys=False)
        except (KeyNotFoundError, KeyDeletedError, JsNotFoundError):
            return None
        return KvItem(key, entry.value or b"", entry.revision or 0)

    async def put(self, key: str, value: bytes, *, ttl: float | None = None) -> int:
        ack = await self._js.publish(self._pre + escape_key(key), value, msg_ttl=ttl)
        return int(ack.seq)

    async def _put_after(self, key: str, value: bytes, last: int, ttl: float | None) -> int:
        """Write only if the key's last message is ``last`` (0: the key has none)."""
        headers = {"Nats-Expected-Last-Subject-Sequence": str(last)}
        try:
            ack = await self._js.publish(self._pre + escape_key(key), value, headers=headers, msg_ttl=ttl)
        except APIError as exc:
            if exc.err_code in _WRONG_LAST:
                raise ConflictError(f"key {key!r} changed meanwhile") from exc
            raise
        return int(ack.seq)

    async def create(self, key: str, value: bytes, *, ttl: float | None = None) -> int:
        """Write a key that is not live: absent, deleted or expired (CONFLICT if it appeared meanwhile)."""
        current = await self._last(key)
        if current is not None and not current[1]:
            raise KeyExistsError(f"key {key!r} already exists")
        return await self._put_after(key, value, current[0] if current else 0, ttl)

    async def update(self, key: str, value: bytes, last: int, *, ttl: float | None = None) -> int:
        return await self._put_after(key, value, last, ttl)

    async def _last(self, key: str) -> tuple[int, bool] | None:
        """(revision, deleted) of the key's last message, or None if it has none."""
        try:
            entry = await self._kv.get(escape_key(key), validate_keys=False)
        except (KeyNotFoundError, KeyDeletedError) as exc:  # a delete marker comes with its entry
            return ((exc.entry.revision or 0), True) if exc.entry is not None else None
        except JsNotFoundError:
            return None
        return (entry.revision or 0), False

    async def delete(self, key: str) -> None:
        await self._kv.delete(escape_key(key), validate_keys=False)

    async def keys(self) -> list[str]:
        """Every live key, sorted (reads the bucket's headers; fine for thousands of keys)."""
        from nats.js.errors import NoKeysError

        try:
            raw = await self._kv.keys()
        except NoKeysError:
            return []
        return sorted(unescape_key(k) for k in raw)

    async def count(self) -> int:
        status = await self._kv.status()
        return int(status.values)
