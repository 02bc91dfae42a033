"""The Python side of Lua security: policies from the registry, regexes, expressions, token stores.

The decisions themselves run in Lua (lua/security.lua); this module feeds it policy data (checked
by core._security when entries are applied), evaluates ``matches`` conditions and expression
policies, and implements token stores on the node's stores.

Tokens: ``token_length`` random bytes, base64url; with ``token_key`` a ``.`` and an HMAC-SHA256
signature follow, checked in constant time. The backing store keeps, under the SHA-256 of the
token (never the token itself), the actor, the scope's policy ids, optional meta and the expiry,
with the expiry as the key's TTL. Validation rebuilds the actor and the scope; a policy that no
longer exists makes the token unusable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from functools import lru_cache
from typing import Any

from wippy.core import DefinitionError, Entry, NotFoundError, NotImplementedFeatureError, WippyError, policy_from_entry

from ._durations import parse_go_duration
from ._vm import LuaVM


class InvalidTokenError(WippyError):
    kind = "PERMISSION_DENIED"


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _expiration_seconds(raw: Any, default: float) -> float:
    if raw is None:
        return default
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw) / 1000.0  # Wippy: a number is milliseconds
    if isinstance(raw, str):
        return parse_go_duration(raw) / 1e9
    raise DefinitionError("expiration must be a duration like '24h' or a number of milliseconds")


class SecurityHost:
    """Bridge functions for lua/security.lua, for one Lua host."""

    def __init__(self, vm: LuaVM, registry: Any, *, strict: bool, stores: Any, expr: Any) -> None:
        self.vm = vm
        self.registry = registry
        self.strict = strict
        self.stores = stores
        self.expr_eval = expr
        self._policies: dict[str, tuple[Entry, Any, int]] = {}
        self._tokens = 0

    # -- policies ------------------------------------------------------------------------------
    def policy(self, policy_id: str) -> tuple[Any, ...]:
        entry = self.registry.get(str(policy_id))
        if entry is None:
            return None, self.vm.error("NOT_FOUND", f"policy {policy_id} does not exist")
        cached = self._policies.get(entry.id)
        if cached is not None and cached[0] is entry:
            return cached[1], cached[2], None
        try:
            spec = policy_from_entry(entry)
        except DefinitionError as exc:
            return None, self.vm.error("INVALID", str(exc))
        self._tokens += 1
        data = self.vm.to_lua(spec.to_json())
        self._policies[entry.id] = (entry, data, self._tokens)
        return data, self._tokens, None

    def group(self, group_id: str) -> tuple[Any, ...]:
        current = self.registry.current()
        ids = sorted(
            e.id for e in current.values()
            if e.kind in ("security.policy", "security.policy.expr")
            and isinstance(e.data.get("groups"), list) and group_id in e.data["groups"]
        )
        if not ids:
            return None, self.vm.error("NOT_FOUND", f"no policy belongs to group {group_id}")
        return self.vm.to_lua(ids), None

    def regex(self, pattern: str, text: str) -> bool:
        compiled = _regex(str(pattern))
        return compiled is not None and compiled.search(str(text)) is not None

    def expr(self, expression: str, actor_id: Any, actor_meta: Any, action: str, resource: str,  # noqa: PLR0917 - called from Lua
             meta: Any) -> bool:
        if self.expr_eval is None:
            return False
        env = {"actor": {"id": actor_id, "meta": self.vm.from_lua(actor_meta) or {}}, "action": action,
               "resource": resource, "meta": self.vm.from_lua(meta) or {}}
        try:
            return self.expr_eval(str(expression), env) is True
        except WippyError:
            return False  # a failing expression matches nothing (never grants access)

    # -- token stores ------------------------------------------------------------------------------
    def _token_store(self, store_id: str) -> tuple[Entry, Any]:
        entry = self.registry.get(store_id)
        if entry is None or entry.kind != "security.token_store":
            raise NotFoundError(f"token store {store_id} does not exist")
        if self.stores is None:
            raise NotImplementedFeatureError("no stores are available to this process")
        return entry, self.stores.get(entry.data["store"])

    def _key(self, entry: Entry) -> bytes | None:
        raw = entry.data.get("token_key")
        if entry.data.get("token_key_env") is not None or (isinstance(raw, str) and "${" in raw):
            raise NotImplementedFeatureError(
                f"{entry.id}: token_key from the environment needs the env module (not implemented yet)")
        if raw is None or raw == "":
            return None
        return str(raw).encode()

    def token_create(self, store_id: str, actor_id: str, actor_meta: Any, policy_ids: Any,
                     opts: Any = None) -> tuple[Any, ...]:
        try:
            entry, store = self._token_store(str(store_id))
            options = self.vm.from_lua(opts) or {}
            default = _expiration_seconds(entry.data.get("default_expiration", "24h"), 86400.0)
            ttl = _expiration_seconds(options.get("expiration"), default)
            length = int(entry.data.get("token_length", 32))
            raw = secrets.token_bytes(length)
            token = _b64(raw)
            key = self._key(entry)
            if key is not None:
                token += "." + _b64(hmac.new(key, raw, hashlib.sha256).digest())
            record = {
                "actor": {"id": str(actor_id), "meta": self.vm.from_lua(actor_meta) or {}},
                "policies": self.vm.from_lua(policy_ids) or [],
                "meta": options.get("meta") or {},
                "expires": time.time() + ttl,
            }
            store.set(_storage_key(raw), record, ttl)
            return token, None
        except WippyError as exc:
            return None, self.vm.error(exc.kind, str(exc))
        except (ValueError, KeyError, TypeError) as exc:
            return None, self.vm.error("INVALID", f"token store {store_id}: {exc}")

    def _raw(self, entry: Entry, token: str) -> bytes:
        body, _, sig = str(token).partition(".")
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

    def token_validate(self, store_id: str, token: Any) -> tuple[Any, ...]:
        try:
            entry, store = self._token_store(str(store_id))
            raw = self._raw(entry, str(token))
            try:
                record = store.get(_storage_key(raw))
            except NotFoundError as exc:
                raise InvalidTokenError("invalid token (unknown, expired or revoked)") from exc
            if float(record.get("expires", 0)) <= time.time():
                raise InvalidTokenError("invalid token (expired)")
            actor = record["actor"]
            return actor["id"], self.vm.to_lua(actor.get("meta") or {}), self.vm.to_lua(record["policies"]), None
        except WippyError as exc:
            return None, self.vm.error(exc.kind, str(exc)), None, None

    def token_revoke(self, store_id: str, token: Any) -> tuple[Any, ...]:
        try:
            entry, store = self._token_store(str(store_id))
            raw = self._raw(entry, str(token))
            return bool(store.delete(_storage_key(raw))), None
        except WippyError as exc:
            return None, self.vm.error(exc.kind, str(exc))

    def bridge(self) -> Any:
        return self.vm.rt.table_from({
            "strict": lambda: self.strict, "policy": self.policy, "group": self.group, "regex": self.regex,
            "expr": self.expr, "token_create": self.token_create, "token_validate": self.token_validate,
            "token_revoke": self.token_revoke,
        })


def _storage_key(raw: bytes) -> str:
    return "wippy.token:" + hashlib.sha256(raw).hexdigest()
