"""The Python side of Lua security: policies from the registry, regexes, expressions, token stores.

The decisions themselves run in Lua (lua/security.lua); this module feeds it policy data (checked
by core._security when entries are applied), evaluates ``matches`` conditions and expression
policies, and reaches token stores through core's TokenService (shared with Python services).
"""

from __future__ import annotations

from typing import Any

from wippy.core import (
    DefinitionError,
    Entry,
    Grant,
    RegexError,
    TokenService,
    WippyError,
    policy_from_entry,
    re2_search,
)

from ._durations import parse_go_duration
from ._vm import LuaVM


class SecurityHost:
    """Bridge functions for lua/security.lua, for one Lua host."""

    def __init__(self, vm: LuaVM, registry: Any, *, strict: bool, stores: Any, expr: Any, env: Any = None) -> None:
        self.vm = vm
        self.registry = registry
        self.strict = strict
        self.stores = stores
        self.expr_eval = expr
        self._policies: dict[str, tuple[Entry, Any, int]] = {}
        self._tokens = 0
        self.tokens = TokenService(registry, stores, parse_go_duration, env=env.lookup if env is not None else None)

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
        """A ``matches`` condition (RE2); a pattern that is not one does not match."""
        try:
            return re2_search(str(pattern), str(text))
        except RegexError:
            return False

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
    def token_create(self, store_id: str, actor_id: str, actor_meta: Any, policy_ids: Any,
                     opts: Any = None) -> Any:
        options = self.vm.from_lua(opts) or {}
        if not isinstance(options, dict):
            options = {}
        grant = Grant(str(actor_id), self.vm.from_lua(actor_meta) or {},
                      tuple(self.vm.from_lua(policy_ids) or ()), options.get("meta") or {})

        async def run() -> tuple[Any, ...]:
            try:
                return await self.tokens.create(str(store_id), grant, expiration=options.get("expiration")), None
            except WippyError as exc:
                return None, self.vm.error(exc.kind, str(exc))

        return self.vm.pending(run())

    def token_validate(self, store_id: str, token: Any) -> Any:
        async def run() -> tuple[Any, ...]:
            try:
                grant = await self.tokens.validate(str(store_id), str(token))
            except WippyError as exc:
                return None, self.vm.error(exc.kind, str(exc)), None, None
            return (grant.actor_id, self.vm.to_lua(dict(grant.actor_meta)), self.vm.to_lua(list(grant.policy_ids)),
                    None)

        return self.vm.pending(run())

    def token_revoke(self, store_id: str, token: Any) -> Any:
        async def run() -> tuple[Any, ...]:
            try:
                return await self.tokens.revoke(str(store_id), str(token)), None
            except WippyError as exc:
                return None, self.vm.error(exc.kind, str(exc))

        return self.vm.pending(run())

    def bridge(self) -> Any:
        return self.vm.rt.table_from({
            "strict": lambda: self.strict, "policy": self.policy, "group": self.group, "regex": self.regex,
            "expr": self.expr, "token_create": self.vm.asyncify(self.token_create),
            "token_validate": self.vm.asyncify(self.token_validate),
            "token_revoke": self.vm.asyncify(self.token_revoke),
        })
