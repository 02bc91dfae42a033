"""Wippy's security model, as data: policies and how they decide.

A policy matches a request when its ``actions`` and ``resources`` match (a string or a list of
strings; ``*`` is a wildcard inside a pattern: ``*.read``, ``document:*``) and all its
``conditions`` hold. A scope (a set of policies) decides: any matching **deny** → deny; else any
matching **allow** → allow; else undefined. With an actor and a scope, undefined denies; without
an actor or a scope everything is allowed unless strict mode is on.

Condition fields: ``actor.id``, ``actor.meta.<f>``, ``action``, ``resource``, ``meta.<f>`` (the
``meta`` argument of ``can``). Operators: eq ne lt gt lte gte in nin exists nexists contains
ncontains matches nmatches; the right side is ``value`` or ``value_from`` (another field).

``security.policy.expr`` policies decide with a boolean expr-lang ``expression`` over ``actor``,
``action``, ``resource`` and ``meta`` instead of conditions.

The same rules run in Lua (lua_stdlib/lua/security.lua) for speed; a property test holds the two
to the same answers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from ._entry import Entry
from ._errors import DefinitionError, WippyError
from ._expr import ExprError, compile_expr
from ._regex import RegexError, compile_re2, re2_search

Decision = Literal["allow", "deny", "undefined"]
OPERATORS = frozenset(
    {"eq", "ne", "lt", "gt", "lte", "gte", "in", "nin", "exists", "nexists", "contains", "ncontains",
     "matches", "nmatches"}
)
POLICY_KINDS = frozenset({"security.policy", "security.policy.expr"})


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    operator: str
    value: Any = None
    value_from: str | None = None


@dataclass(frozen=True, slots=True)
class PolicySpec:
    id: str
    effect: Literal["allow", "deny"]
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: tuple[Condition, ...] = ()
    expression: str | None = None
    groups: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "effect": self.effect, "actions": list(self.actions),
            "resources": list(self.resources),
            "conditions": [{"field": c.field, "operator": c.operator, "value": c.value,
                            "value_from": c.value_from} for c in self.conditions],
            "expression": self.expression, "groups": list(self.groups),
        }


def _patterns(raw: Any, entry: str, field: str) -> tuple[str, ...]:
    if isinstance(raw, str) and raw:
        return (raw,)
    if isinstance(raw, list) and raw and all(isinstance(x, str) and x for x in raw):
        return tuple(raw)
    raise DefinitionError("must be a non-empty string or list of strings", entry=entry, field=field)


def policy_from_entry(entry: Entry) -> PolicySpec:
    """Read and check a policy entry; DefinitionError names the entry and field at fault."""
    if entry.kind not in POLICY_KINDS:
        raise DefinitionError(f"{entry.kind} is not a security policy", entry=entry.id)
    body = entry.data.get("policy")
    if not isinstance(body, dict):
        raise DefinitionError("a policy needs a `policy:` mapping", entry=entry.id, field="policy")
    effect = body.get("effect", "allow")
    if effect not in ("allow", "deny"):
        raise DefinitionError(f"effect must be allow or deny, not {effect!r}", entry=entry.id,
                              field="policy.effect")
    actions = _patterns(body.get("actions"), entry.id, "policy.actions")
    resources = _patterns(body.get("resources", "*"), entry.id, "policy.resources")
    groups_raw = entry.data.get("groups") or []
    if not isinstance(groups_raw, list) or not all(isinstance(g, str) for g in groups_raw):
        raise DefinitionError("must be a list of group ids", entry=entry.id, field="groups")
    conditions: list[Condition] = []
    expression = None
    if entry.kind == "security.policy.expr":
        expression = body.get("expression")
        if not isinstance(expression, str) or not expression.strip():
            raise DefinitionError("an expression policy needs a non-empty `expression`", entry=entry.id,
                                  field="policy.expression")
        try:
            compile_expr(expression)
        except ExprError as exc:
            raise DefinitionError(f"invalid expression: {exc}", entry=entry.id, field="policy.expression") from exc
    else:
        raw = body.get("conditions") or []
        if not isinstance(raw, list):
            raise DefinitionError("must be a list", entry=entry.id, field="policy.conditions")
        for i, c in enumerate(raw):
            where = f"policy.conditions[{i}]"
            if not isinstance(c, dict):
                raise DefinitionError("a condition is a mapping {field, operator, value|value_from}",
                                      entry=entry.id, field=where)
            field, op = c.get("field"), c.get("operator")
            if not isinstance(field, str) or not _FIELD.match(field):
                raise DefinitionError("field must be actor.id, actor.meta.<f>, action, resource or meta.<f>",
                                      entry=entry.id, field=f"{where}.field")
            if op not in OPERATORS:
                raise DefinitionError(f"unknown operator {op!r} (one of {', '.join(sorted(OPERATORS))})",
                                      entry=entry.id, field=f"{where}.operator")
            value_from = c.get("value_from")
            if value_from is not None and (not isinstance(value_from, str) or not _FIELD.match(value_from)):
                raise DefinitionError("value_from must name a field", entry=entry.id, field=f"{where}.value_from")
            if op in ("in", "nin") and value_from is None and not isinstance(c.get("value"), list):
                raise DefinitionError(f"{op} needs a list value", entry=entry.id, field=f"{where}.value")
            if op in ("matches", "nmatches") and value_from is None:
                try:
                    compile_re2(str(c.get("value")))
                except RegexError as exc:
                    raise DefinitionError(str(exc), entry=entry.id, field=f"{where}.value") from exc
            conditions.append(Condition(field, op, c.get("value"), value_from))
    return PolicySpec(entry.id, effect, actions, resources, tuple(conditions), expression, tuple(groups_raw))


_FIELD = re.compile(r"^(actor\.id|actor\.meta(\.[^.]+)+|action|resource|meta(\.[^.]+)+)$")


@lru_cache(maxsize=4096)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$")


def _matches(patterns: Sequence[str], value: str) -> bool:
    for p in patterns:
        if p in ("*", value):
            return True
        if "*" in p and _glob(p).match(value) is not None:
            return True
    return False


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """What is being asked: may this actor do ``action`` on ``resource``?"""

    action: str
    resource: str
    actor_id: str | None = None
    actor_meta: Mapping[str, Any] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)


def _field(path: str, req: Request) -> Any:
    if path == "actor.id":
        return req.actor_id
    if path == "action":
        return req.action
    if path == "resource":
        return req.resource
    if path.startswith("actor.meta."):
        node: Any = req.actor_meta
        rest = path[len("actor.meta."):]
    else:
        node = req.meta
        rest = path[len("meta."):]
    for part in rest.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "exists":
        return left is not None
    if op == "nexists":
        return left is None
    if op == "eq":
        return bool(left == right)
    if op == "ne":
        return bool(left != right)
    if op in ("lt", "gt", "lte", "gte"):
        both_numbers = isinstance(left, int | float) and isinstance(right, int | float)
        both_strings = isinstance(left, str) and isinstance(right, str)
        if not (both_numbers or both_strings):
            return False
        a: Any = left
        b: Any = right
        return bool({"lt": a < b, "gt": a > b, "lte": a <= b, "gte": a >= b}[op])
    if op in ("in", "nin"):
        found = isinstance(right, list | tuple) and left in right
        return found if op == "in" else not found
    if op in ("contains", "ncontains"):
        if isinstance(left, str):
            found = isinstance(right, str) and right in left
        elif isinstance(left, list | tuple):
            found = right in left
        else:
            found = False
        return found if op == "contains" else not found
    if op in ("matches", "nmatches"):
        try:
            found = isinstance(left, str) and re2_search(str(right), left)
        except RegexError:  # a pattern from value_from that is not one: the condition does not hold
            found = False
        return found if op == "matches" else not found
    return False


ExprEval = Any  # (expression, env) -> value; the expr evaluator


def policy_applies(p: PolicySpec, req: Request, expr_eval: ExprEval = None) -> bool:
    """Whether a policy matches this request (its effect then counts)."""
    if not _matches(p.actions, req.action) or not _matches(p.resources, req.resource):
        return False
    if p.expression is not None:
        if expr_eval is None:
            return False
        env = {"actor": {"id": req.actor_id, "meta": dict(req.actor_meta)}, "action": req.action,
               "resource": req.resource, "meta": dict(req.meta)}
        try:
            return expr_eval(p.expression, env) is True
        except WippyError:
            return False  # an expression that fails to evaluate matches nothing: it never grants access
    for c in p.conditions:
        left = _field(c.field, req)
        right = _field(c.value_from, req) if c.value_from is not None else c.value
        if not _compare(c.operator, left, right):
            return False
    return True


def evaluate(policies: Sequence[PolicySpec], req: Request, expr_eval: ExprEval = None) -> Decision:
    """A scope's decision: deny wins, then allow, else undefined."""
    allowed = False
    for p in policies:
        if policy_applies(p, req, expr_eval):
            if p.effect == "deny":
                return "deny"
            allowed = True
    return "allow" if allowed else "undefined"


def token_store_errors(entry: Entry) -> list[DefinitionError]:
    """Problems with a security.token_store entry's fields."""
    errors: list[DefinitionError] = []
    store = entry.data.get("store")
    if not isinstance(store, str) or ":" not in store:
        errors.append(DefinitionError("must name a store entry ('ns:name')", entry=entry.id, field="store"))
    length = entry.data.get("token_length", 32)
    if not isinstance(length, int) or isinstance(length, bool) or not 16 <= length <= 256:
        errors.append(DefinitionError("must be an integer between 16 and 256", entry=entry.id, field="token_length"))
    return errors
