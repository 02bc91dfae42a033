"""Token stores (`security.token_store`) and the authorizer services call: shared by Lua and Python.

Tokens: ``token_length`` random bytes, base64url; with ``token_key`` a ``.`` and an HMAC-SHA256
signature follow, checked in constant time. The backing store (a store entry) keeps, under the
SHA-256 of the token (never the token itself), the actor, the scope's policy ids, optional meta
and the expiry, with the expiry as the key's TTL. Validation gives the actor and the policy ids
back; the caller rebuilds the scope (a policy that no longer exists makes the token unusable).

``Authorizer`` is the permission check for Python services (HTTP middleware, process hosts):
the same decisions as Lua's ``security.can``, from an actor and a list of policy ids.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import inspect
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._entry import Entry
from ._env import EnvLookup, resolve_entry_data
from ._errors import DefinitionError, NotFoundError, NotImplementedFeatureError, WippyError
from ._security import PolicySpec, Request, evaluate, policy_from_entry


class PermissionDeniedError(WippyError):
    """The caller's actor and scope do not allow the action on the resource (or strict mode)."""

    kind = "PERMISSION_DENIED"


class InvalidTokenError(PermissionDeniedError):
    """A token that is malformed, forged, unknown, expired or revoked."""


class Registry(Protocol):
    def get(self, entry_id: str) -> Entry | None: ...


class KeyValueStore(Protocol):
    """A store backend: each method returns its result, or an awaitable of it (durable stores)."""

    def get(self, key: str) -> Any: ...
    def set(self, key: str, value: Any, ttl: float | None = None) -> Any: ...
    def delete(self, key: str) -> Any: ...


async def _settled(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


@dataclass(frozen=True, slots=True)
class Grant:
    """What a valid token stands for."""

    actor_id: str
    actor_meta: Mapping[str, Any]
    policy_ids: tuple[str, ...]
    meta: Mapping[str, Any] = field(default_factory=dict)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _storage_key(raw: bytes) -> str:
    return "wippy.token:" + hashlib.sha256(raw).hexdigest()


def expiration_seconds(raw: Any, default: float, parse_duration: Callable[[str], int]) -> float:
    """Wippy's expirations: a duration string ("24h") or a number of milliseconds."""
    if raw is None:
        return default
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw) / 1000.0
    if isinstance(raw, str):
        try:
            return parse_duration(raw) / 1e9
        except ValueError as exc:
            raise DefinitionError(f"expiration: {exc}") from exc
    raise DefinitionError("expiration must be a duration like '24h' or a number of milliseconds")


class TokenService:
    """create/validate/revoke against token store entries and the node's stores."""

    def __init__(self, registry: Registry, stores: Any, parse_duration: Callable[[str], int], *,
                 env: EnvLookup | None = None) -> None:
        self._registry = registry
        self._stores = stores
        self._parse = parse_duration
        self._env = env or _no_env
        self._keys: dict[str, tuple[Entry, bytes | None]] = {}

    def _store(self, store_id: str) -> tuple[Entry, KeyValueStore]:
        entry = self._registry.get(store_id)
        if entry is None or entry.kind != "security.token_store":
            raise NotFoundError(f"token store {store_id} does not exist")
        if self._stores is None:
            raise NotImplementedFeatureError("no stores are available here")
        return entry, self._stores.get(entry.data["store"])

    def _key(self, entry: Entry) -> bytes | None:
        """The entry's token_key, env placeholders resolved once per entry version (as Wippy decodes it)."""
        cached = self._keys.get(entry.id)
        if cached is not None and cached[0] is entry:
            return cached[1]
        raw = resolve_entry_data(entry.data, self._env, entry_id=entry.id).get("token_key")
        key = None if raw is None or raw == "" else str(raw).encode()
        self._keys[entry.id] = (entry, key)
        return key

    async def create(self, store_id: str, grant: Grant, *, expiration: Any = None) -> str:
        entry, store = self._store(store_id)
        default = expiration_seconds(entry.data.get("default_expiration", "24h"), 86400.0, self._parse)
        ttl = expiration_seconds(expiration, default, self._parse)
        raw = secrets.token_bytes(int(entry.data.get("token_length", 32)))
        token = _b64(raw)
        key = self._key(entry)
        if key is not None:
            token += "." + _b64(hmac.new(key, raw, hashlib.sha256).digest())
        record = {"actor": {"id": grant.actor_id, "meta": dict(grant.actor_meta)},
                  "policies": list(grant.policy_ids), "meta": dict(grant.meta), "expires": time.time() + ttl}
        await _settled(store.set(_storage_key(raw), record, ttl))
        return token

    def _raw(self, entry: Entry, token: str) -> bytes:
        body, _, sig = token.partition(".")
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except ValueError as exc:
            raise InvalidTokenError("invalid token") from exc
        key = self._key(entry)
        if key is not None:
            want = _b64(hmac.new(key, raw, hashlib.sha256).digest())
            if not hmac.compare_digest(want.encode(), sig.encode()):
                raise InvalidTokenError("invalid token (bad signature)")
        elif sig:
            raise InvalidTokenError("invalid token")
        return raw

    async def validate(self, store_id: str, token: str) -> Grant:
        entry, store = self._store(store_id)
        raw = self._raw(entry, token)
        try:
            record = await _settled(store.get(_storage_key(raw)))
        except NotFoundError as exc:
            raise InvalidTokenError("invalid token (unknown, expired or revoked)") from exc
        if float(record.get("expires", 0)) <= time.time():
            raise InvalidTokenError("invalid token (expired)")
        actor = record["actor"]
        return Grant(str(actor["id"]), actor.get("meta") or {}, tuple(record.get("policies") or ()),
                     record.get("meta") or {})

    async def revoke(self, store_id: str, token: str) -> bool:
        entry, store = self._store(store_id)
        return bool(await _settled(store.delete(_storage_key(self._raw(entry, token)))))


def _no_env(name: str) -> str | None:
    raise NotImplementedFeatureError(f"env variable {name}: env lookups need the node's env service, which is "
                                     "not available here")


class Authorizer:
    """The permission check for Python services, with Lua's decisions."""

    def __init__(self, registry: Registry, *, strict: bool = False, expr_eval: Any = None) -> None:
        self._registry = registry
        self.strict = strict
        self._expr = expr_eval
        self._policies: dict[str, tuple[Entry, PolicySpec]] = {}

    def policies(self, ids: Sequence[str]) -> list[PolicySpec]:
        out = []
        for pid in ids:
            entry = self._registry.get(pid)
            if entry is None:
                raise NotFoundError(f"policy {pid} does not exist")
            cached = self._policies.get(pid)
            if cached is None or cached[0] is not entry:
                cached = (entry, policy_from_entry(entry))
                self._policies[pid] = cached
            out.append(cached[1])
        return out

    def check(self, actor: tuple[str, Mapping[str, Any]] | None, policy_ids: Sequence[str] | None, action: str,
              resource: str, meta: Mapping[str, Any] | None = None) -> None:
        """Return when allowed; raise PermissionDeniedError naming action and resource otherwise."""
        if actor is None or policy_ids is None:
            if self.strict:
                raise PermissionDeniedError(f"permission denied: {action} on {resource} (strict mode: no actor)")
            return
        req = Request(action=action, resource=resource, actor_id=actor[0], actor_meta=actor[1], meta=meta or {})
        if evaluate(self.policies(policy_ids), req, self._expr) != "allow":
            raise PermissionDeniedError(f"permission denied: {action} on {resource} for actor {actor[0]}")
