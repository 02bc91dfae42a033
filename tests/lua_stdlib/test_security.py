"""Security: policies, scopes, actors, the check every module calls, token stores, the audit stream."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wippy.core import DefinitionErrors, Entry, Request, evaluate_policies, policy_from_entry

from .helpers import Node, fn


def policy(name: str, actions: Any, resources: Any = "*", effect: str = "allow", conditions: Any = None,
           groups: list[str] | None = None) -> Entry:
    body: dict[str, Any] = {"actions": actions, "resources": resources, "effect": effect}
    if conditions is not None:
        body["conditions"] = conditions
    return Entry(f"app.sec:{name}", "security.policy", {}, {"policy": body, "groups": groups or []})


READ = policy("read", ["*.read", "doc.list"], "doc:*", groups=["app.sec:user"])
NO_SECRETS = policy("no_secrets", "*", "doc:secret*", effect="deny", groups=["app.sec:user"])
ADMIN = policy("admin", "*", "*", conditions=[{"field": "actor.meta.role", "operator": "eq", "value": "admin"}],
               groups=["app.sec:admin"])
CALL = policy("call", "funcs.call", "app:*", groups=["app.sec:user", "app.sec:admin"])
READ_REGISTRY = policy("registry_read", "registry.get", "*", groups=["app.sec:user"])
NO_SELF_EDIT = policy("no_self_edit", ["registry.apply", "registry.apply_version"], "*", effect="deny",
                      groups=["app.sec:user"])
ALL = (READ, NO_SECRETS, ADMIN, CALL, READ_REGISTRY, NO_SELF_EDIT)


async def test_scope_decisions_and_can(node: Node) -> None:
    ok, res = await node.run(fn("app:t", """
        local security = require("security")
        return { call = function()
            local user = security.new_actor("u1", {role = "user"})
            local admin = security.new_actor("a1", {role = "admin"})
            local scope = security.named_scope("app.sec:user")
            local read = security.policy("app.sec:read")
            return {
                scope:evaluate(user, "doc.read", "doc:1"),
                scope:evaluate(user, "doc.read", "doc:secret-plans"),
                scope:evaluate(user, "doc.write", "doc:1"),
                read:evaluate(user, "doc.read", "doc:1"), read:id(),
                security.named_scope("app.sec:admin"):evaluate(admin, "anything", "x"),
                security.named_scope("app.sec:admin"):evaluate(user, "anything", "x"),
                scope:contains("app.sec:read"), scope:without("app.sec:read"):contains("app.sec:read"),
                #scope:policies(), security.can("anything", "x"), security.actor() == nil,
            }
        end }
    """, modules=["security"]), *ALL)
    assert ok, res
    assert res[0] == ["allow", "deny", "undefined", "allow", "app.sec:read", "allow", "undefined", True, False, 5,
                      True, True]


async def test_the_callee_runs_as_the_executor_sets_it(node: Node) -> None:
    callee = fn("app:who", """
        local security = require("security")
        local funcs = require("funcs")
        return { call = function()
            local a = security.actor()
            local _, denied = funcs.call("sys:secret") -- checked against this code's context
            return {a and a:id() or false, security.can("doc.read", "doc:1"), security.can("doc.write", "doc:1"),
                    denied and denied:kind() or false, denied and denied:message() or false}
        end }
    """, modules=["security", "funcs"])
    secret = fn("sys:secret", "return { call = function() return 'secret' end }")
    ok, res = await node.run(fn("app:t", """
        local security = require("security")
        local funcs = require("funcs")
        return { call = function()
            local user = security.new_actor("u1", {role = "user"})
            local exec = funcs.new():with_actor(user):with_scope(security.named_scope("app.sec:user"))
            local inside = exec:call("app:who")
            local outside = funcs.call("app:who")
            local forged_ok, forged_err = pcall(function() return funcs.new():with_actor({_id = "root"}) end)
            return {inside, outside, forged_ok, tostring(forged_err)}
        end }
    """, modules=["security", "funcs"]), callee, secret, *ALL)
    assert ok, res
    inside, outside, forged_ok, forged_err = res[0]
    assert inside[:4] == ["u1", True, False, "PERMISSION_DENIED"]
    assert "funcs.call on sys:secret for actor u1" in inside[4]
    assert outside == [False, True, True, False, False]  # no actor/scope: all allowed (not strict)
    assert forged_ok is False
    assert "expected an actor" in forged_err


async def test_registry_self_modification_is_gated_and_audited(node: Node) -> None:
    writer = fn("app:writer", """
        local registry = require("registry")
        return { call = function()
            local v, err = registry.snapshot():changes():create({id = "app:new", kind = "registry.entry",
                                                                 meta = {}, data = {}}):apply()
            return {v ~= nil, err and err:kind(), err and err:message()}
        end }
    """, modules=["registry"])
    ok, res = await node.run(fn("app:t", """
        local security = require("security")
        local funcs = require("funcs")
        return { call = function()
            local user = funcs.new():with_actor(security.new_actor("u1", {role = "user"}))
                                     :with_scope(security.named_scope("app.sec:user"))
            local admin = funcs.new():with_actor(security.new_actor("a1", {role = "admin"}))
                                      :with_scope(security.named_scope("app.sec:admin"))
            return {user:call("app:writer"), admin:call("app:writer")}
        end }
    """, modules=["security", "funcs"]), writer, *ALL)
    assert ok, res
    as_user, as_admin = res[0]
    assert as_user == [False, "PERMISSION_DENIED", "permission denied: registry.apply on app:new for actor u1"]
    assert as_admin[0] is True
    assert node.svc.get("app:new") is not None
    versions = await node.svc.versions()
    assert versions[-1]["author"] == "a1"
    rows = await node.svc.query("SELECT action, resource, actor, entry FROM audit")
    assert rows == [{"action": "registry.apply", "resource": "app:new", "actor": "u1", "entry": "app:writer"}]


async def test_registry_reads_are_filtered(node: Node) -> None:
    hidden = policy("hide", "registry.get", "app.sec:*", effect="deny", groups=["app.sec:user"])
    ok, res = await node.run(fn("app:t", """
        local security = require("security")
        local funcs = require("funcs")
        return { call = function()
            local user = funcs.new():with_actor(security.new_actor("u1"))
                                     :with_scope(security.named_scope("app.sec:user"))
            return user:call("app:reader")
        end }
    """, modules=["security", "funcs"]), fn("app:reader", """
        local registry = require("registry")
        return { call = function()
            local _, err = registry.get("app.sec:read")
            local all = registry.find({})
            local ids = {}
            for _, e in ipairs(all) do if e.id:find("^app%.sec:") then ids[#ids + 1] = e.id end end
            return {err:kind(), #ids, registry.get("app:t") ~= nil}
        end }
    """, modules=["registry"]), hidden, *ALL)
    assert ok, res
    assert res[0] == ["PERMISSION_DENIED", 0, True]


async def test_strict_mode_denies_code_without_an_actor(node: Node) -> None:
    node.strict = True
    ok, res = await node.run(fn("app:t", """
        local security = require("security")
        local funcs = require("funcs")
        return { call = function()
            local _, err = funcs.call("app:t2")
            return {security.can("x", "y"), err:kind()}
        end }
    """, modules=["security", "funcs"]), fn("app:t2", "return { call = function() return 1 end }"))
    assert ok, res
    assert res[0] == [False, "PERMISSION_DENIED"]


TOKENS = [
    Entry("app.sec:sessions", "store.memory", {}, {}),
    Entry("app.sec:tokens", "security.token_store", {},
          {"store": "app.sec:sessions", "token_length": 24, "default_expiration": "1h", "token_key": "k3y"}),
]


async def test_token_store_round_trip_and_bad_tokens(node: Node) -> None:
    ok, res = await node.run(fn("app:t", """
        local security = require("security")
        local time = require("time")
        return { call = function()
            local store = security.token_store("app.sec:tokens")
            local actor = security.new_actor("u7", {role = "user"})
            local token, err = store:create(actor, security.named_scope("app.sec:user"), {meta = {ip = "x"}})
            local a, s, verr = store:validate(token)
            local _, _, forged = store:validate(token:sub(1, -3) .. "zz")
            local _, _, garbage = store:validate("not-a-token")
            local short = store:create(actor, security.new_scope({}), {expiration = 30})
            time.sleep("60ms")
            local _, _, expired = store:validate(short)
            local revoked_ok = store:revoke(token)
            local _, _, revoked = store:validate(token)
            return {type(token), a:id(), a:meta().role, s:contains("app.sec:read"),
                    s:evaluate(a, "doc.read", "doc:1"), forged:kind(), garbage:kind(), expired:kind(),
                    revoked_ok, revoked:kind()}
        end }
    """, modules=["security", "time"]), *TOKENS, *ALL)
    assert ok, res
    got = res[0]
    assert got[0] == "string"
    assert got[1:] == ["u7", "user", True, "allow", "PERMISSION_DENIED", "PERMISSION_DENIED", "PERMISSION_DENIED",
                       True, "PERMISSION_DENIED"]


async def test_a_token_whose_policy_was_deleted_is_refused(node: Node) -> None:
    create = fn("app:create", """
        local security = require("security")
        return { call = function()
            return security.token_store("app.sec:tokens"):create(security.new_actor("u1"),
                security.new_scope({security.policy("app.sec:read")}))
        end }
    """, modules=["security"])
    ok, res = await node.run(create, *TOKENS, *ALL)
    assert ok, res
    token = res[0]
    from wippy.core import Changeset, Op

    await node.svc.apply(Changeset(ops=(Op("delete", "app.sec:read"),)))
    ok, res = await node.run(fn("app:check", """
        local security = require("security")
        return { call = function(t)
            local a, s, err = security.token_store("app.sec:tokens"):validate(t)
            return {a == nil, err:kind(), err:message()}
        end }
    """, modules=["security"]), args=(token,))
    assert ok, res
    assert res[0][:2] == [True, "PERMISSION_DENIED"]
    assert "app.sec:read" in res[0][2]


async def test_store_module(node: Node) -> None:
    ok, res = await node.run(fn("app:t", """
        local store = require("store")
        local time = require("time")
        return { call = function()
            local s = store.get("app.sec:sessions")
            s:set("a", {n = 1, list = {1, 2}})
            local v = s:get("a")
            v.n = 99 -- a copy: the stored value does not change
            local again = s:get("a")
            s:set("short", "x", 0.03)
            time.sleep("60ms")
            local _, gone = s:get("short")
            local e = s:put("b", "one", {only_if_absent = true})
            local _, exists = s:put("b", "two", {only_if_absent = true})
            local _, conflict = s:put("b", "two", {if_version = e.version + 100})
            local page = s:list({prefix = ""})
            local _, missing_store = store.get("app.sec:nope")
            return {again.n, again.list[2], gone:kind(), s:has("a"), s:delete("a"), s:has("a"),
                    exists:kind(), conflict:kind(), #page.items, missing_store:kind()}
        end }
    """, modules=["store", "time"]), *TOKENS)
    assert ok, res
    assert res[0] == [1, 2, "NOT_FOUND", True, True, False, "ALREADY_EXISTS", "CONFLICT", 2, "NOT_FOUND"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"actions": "*", "effect": "maybe"}, "policy.effect"),
        ({"actions": [], "effect": "allow"}, "policy.actions"),
        ({"actions": "*", "conditions": [{"field": "actor.id", "operator": "like", "value": 1}]},
         "policy.conditions[0].operator"),
        ({"actions": "*", "conditions": [{"field": "who", "operator": "eq", "value": 1}]},
         "policy.conditions[0].field"),
        ({"actions": "*", "conditions": [{"field": "actor.id", "operator": "in", "value": "x"}]},
         "policy.conditions[0].value"),
        # RE2 has no look-behind (and no backtracking: patterns run in linear time)
        ({"actions": "*", "conditions": [{"field": "actor.id", "operator": "matches", "value": "(?<=x)y"}]},
         "policy.conditions[0].value"),
    ],
)
async def test_malformed_policies_are_refused(node: Node, body: dict[str, Any], field: str) -> None:
    from wippy.core import Changeset, Op

    bad = Entry("app.sec:bad", "security.policy", {}, {"policy": body})
    with pytest.raises(DefinitionErrors) as info:
        await node.svc.apply(Changeset(ops=(Op("create", bad.id, bad),)))
    assert f"field {field}" in str(info.value)
    assert "app.sec:bad" in str(info.value)


# Lua decisions == core._security decisions ------------------------------------------------------

_examples = itertools.count()
ACTIONS = ["doc.read", "doc.write", "user.read", "x"]
RESOURCES = ["doc:1", "doc:secret", "user:7", "z"]
PATTERNS = ["*", "doc.*", "*.read", "doc:*", "*:7", "x", "doc:1"]
conditions = st.lists(st.fixed_dictionaries({
    "field": st.sampled_from(["actor.id", "actor.meta.role", "action", "resource", "meta.level"]),
    "operator": st.sampled_from(["eq", "ne", "exists", "nexists", "contains", "gt", "lte", "in", "matches",
                                 "nmatches"]),
    "value": st.sampled_from(["u1", "admin", "doc", 3, ["u1", "u2"], "^u[0-9]$", "^\\pL+$", "(?i)ADMIN"]),
}), max_size=2)
policies = st.lists(st.tuples(st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=2),
                              st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=2),
                              st.sampled_from(["allow", "deny"]), conditions), min_size=1, max_size=5)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(policies, st.sampled_from(["u1", "u2"]), st.sampled_from(["admin", "user"]), st.integers(0, 5))
async def test_lua_and_python_decide_alike(node: Node, specs: list[Any], actor: str, role: str, level: int) -> None:
    entries = []
    group = f"app.p:g{next(_examples)}"  # the node outlives one example: a fresh group for each
    for i, (acts, ress, effect, drawn) in enumerate(specs):
        # `in` takes a list; the other operators a scalar
        conds = [c for c in drawn if (c["operator"] == "in") == isinstance(c["value"], list)]
        entries.append(Entry(f"{group}.p{i}", "security.policy", {},
                             {"policy": {"actions": acts, "resources": ress, "effect": effect, "conditions": conds},
                              "groups": [group]}))
    specs_py = [policy_from_entry(e) for e in entries]
    expected = [evaluate_policies(specs_py, Request(action=a, resource=r, actor_id=actor, actor_meta={"role": role},
                                                     meta={"level": level}))
                for a in ACTIONS for r in RESOURCES]
    ok, res = await node.run(fn("app:t", """
        local security = require("security")
        return { call = function(actor, role, level, actions, resources, group)
            local a = security.new_actor(actor, {role = role})
            local scope = security.named_scope(group)
            local out = {}
            for _, act in ipairs(actions) do
                for _, r in ipairs(resources) do out[#out + 1] = scope:evaluate(a, act, r, {level = level}) end
            end
            return out
        end }
    """, modules=["security"]), *entries, args=(actor, role, level, ACTIONS, RESOURCES, group))
    assert ok, res
    assert res[0] == expected


async def test_expression_policies(node: Node) -> None:
    expr_policy = Entry("app.sec:expr", "security.policy.expr", {}, {
        "policy": {"actions": "*", "resources": "*",
                   "expression": 'actor.meta.role == "editor" && resource startsWith "doc:" && meta.size < 10'},
        "groups": ["app.sec:editors"]})
    ok, res = await node.run(fn("app:t", """
        local security = require("security")
        return { call = function()
            local scope = security.named_scope("app.sec:editors")
            local editor = security.new_actor("e1", {role = "editor"})
            local viewer = security.new_actor("v1", {role = "viewer"})
            return {scope:evaluate(editor, "doc.write", "doc:1", {size = 3}),
                    scope:evaluate(editor, "doc.write", "doc:1", {size = 30}),
                    scope:evaluate(viewer, "doc.write", "doc:1", {size = 3}),
                    scope:evaluate(editor, "doc.write", "img:1", {size = 3})}
        end }
    """, modules=["security"]), expr_policy)
    assert ok, res
    assert res[0] == ["allow", "undefined", "undefined", "undefined"]


async def test_an_expression_policy_that_does_not_parse_is_refused(node: Node) -> None:
    from wippy.core import Changeset, Op

    bad = Entry("app.sec:badexpr", "security.policy.expr", {},
                {"policy": {"actions": "*", "resources": "*", "expression": "actor.id == "}})
    with pytest.raises(DefinitionErrors, match=r"app\.sec:badexpr.*policy\.expression.*invalid expression"):
        await node.svc.apply(Changeset(ops=(Op("create", bad.id, bad),)))
