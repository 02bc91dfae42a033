"""The system agents' parts: the opt-in overlay, the compiled agents and their tool schemas, the
source check, the tools' argument errors, and permissions and authorship under security.

The Lua-level tests call the tools directly (``funcs.call``) on a real registry service; the
end-to-end runs with a model are in test_system_agents.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema.validators import validator_for

from tests.lua_stdlib import conftest as lua_conftest
from tests.lua_stdlib.helpers import Entries, Node, fn, run_entry
from wippy.core import Entry, native_components
from wippy.services._agents import AgentNotFoundError, compile_agent
from wippy.services._system_agents import (
    DEFAULT_MODEL,
    is_native_tool,
    native_entry,
    native_ids,
    with_native_entries,
)

node = lua_conftest.node  # the fixture: a real registry service


def dep(component: str, **params: Any) -> Entry:
    data: dict[str, Any] = {"component": component, "version": "*"}
    if params:
        data["parameters"] = [{"name": k, "value": v} for k, v in params.items()]
    return Entry(f"app:dep.{component.split('/')[1]}", "ns.dependency", {}, data)


BOTH = (dep("wippy/registry"), dep("wippy/coder", model="gpt-test"))


# -- the overlay ---------------------------------------------------------------------------------

def test_the_components_are_native() -> None:
    assert {"wippy/registry", "wippy/coder"} <= set(native_components())


def test_nothing_is_served_until_the_app_declares_the_component() -> None:
    bare = Entries()
    with pytest.raises(AgentNotFoundError):
        compile_agent(bare, "wippy.coder:agent")
    assert all(native_entry(bare, eid) is None for eid in native_ids())
    only_registry = Entries(dep("wippy/registry"))
    assert native_entry(only_registry, "wippy.registry:rollback") is not None
    assert native_entry(only_registry, "wippy.coder:edit_source") is None
    assert with_native_entries(only_registry).get("wippy.coder:agent") is None


def test_the_compiled_agents_offer_their_tools() -> None:
    reg = Entries(*BOTH)
    registry_agent = compile_agent(reg, "wippy.registry:agent")
    assert registry_agent.model == DEFAULT_MODEL  # no model parameter
    assert [t.name for t in registry_agent.tools] == [
        "create_entry", "delete_entry", "get_entry", "list_entries", "list_versions", "rollback", "update_entry"]
    assert {t.context["agent_id"] for t in registry_agent.tools} == {"wippy.registry:agent"}
    coder = compile_agent(reg, "wippy.coder")  # by meta.name too
    assert (coder.id, coder.model) == ("wippy.coder:agent", "gpt-test")
    assert [t.registry_id for t in coder.tools] == [
        "wippy.coder:edit_source", "wippy.coder:list_code", "wippy.coder:read_source", "wippy.coder:write_source"]
    for tool in (*registry_agent.tools, *coder.tools):
        validator_for(dict(tool.schema)).check_schema(dict(tool.schema))
        assert tool.schema["type"] == "object" and tool.description


def test_the_system_entries_stay_out_of_the_registry() -> None:
    reg = Entries(*BOTH)
    overlaid = with_native_entries(reg)
    assert set(overlaid.current()) == set(reg.current()) | native_ids()
    assert set(reg.current()) == {e.id for e in BOTH}
    assert len(overlaid.current()) == len(BOTH) + len(native_ids())


def test_an_app_entry_wins_over_a_system_one() -> None:
    own = Entry("wippy.registry:agent", "registry.entry", {"type": "agent.gen1", "name": "mine"},
                {"model": "m", "prompt": "Mine."})
    reg = Entries(*BOTH, own)
    assert compile_agent(reg, "wippy.registry:agent").prompt == "Mine."
    assert native_entry(reg, "wippy.registry:agent") is None
    assert with_native_entries(reg).current()["wippy.registry:agent"] is own
    tool = Entry("wippy.coder:edit_source", "function.lua", {}, {"source": "return function() end"})
    reg = Entries(*BOTH, tool)
    assert not is_native_tool(reg, "wippy.coder:edit_source")
    assert is_native_tool(reg, "wippy.coder:read_source")
    assert not is_native_tool(reg, "wippy.coder:agent")  # the agent is not a tool


# -- the source check ------------------------------------------------------------------------------

CHECK = fn("app:check", """
    local system = require("wippy.system_agents")
    return { call = function(source)
        local ok, err = system.check_source("app:f", source)
        return { ok = ok == true, kind = err and err:kind(), message = err and err:message() }
    end }
""", modules=["wippy.system_agents"])

_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: s not in {"and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
                        "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"})
_texts = st.text(st.characters(codec="utf-8", exclude_characters="\\\"\n\r"), max_size=20)


@settings(max_examples=40, deadline=None)
@given(_names, _texts, st.sampled_from(["", "end", ")", "local = 1", "return return", "x ..", "goto nowhere",
                                        "local k <const> = 1; k = 2"]))
async def test_check_source_accepts_good_code_and_names_the_line_of_bad(name: str, text: str, breaker: str) -> None:
    source = (f"local function {name}(x: string): string\n"
              f"    return \"{text}\" .. x\nend\n{breaker}\nreturn {{ {name} = {name} }}\n")
    ok, res = await run_entry(CHECK, args=(source,))
    assert ok, res
    got = res[0]
    if breaker == "":
        assert got == {"ok": True}
    else:
        assert got["ok"] is False and got["kind"] == "INVALID"
        assert got["message"].startswith("app:f does not compile: app:f:")


# -- the tools, called directly --------------------------------------------------------------------

CALLER = fn("app:caller", """
    local funcs = require("funcs")
    return { call = function(id, args)
        local value, err = funcs.call(id, args)
        return { value = value, error = err and tostring(err) }
    end }
""", modules=["funcs"])

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8),
    lambda inner: st.lists(inner, min_size=1, max_size=3) | st.dictionaries(st.text(min_size=1, max_size=5),
                                                                            inner, min_size=1, max_size=3),
    max_leaves=6,
)
_TOOLS = sorted(i for i in native_ids() if not i.endswith(":agent"))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(_TOOLS), st.dictionaries(
    st.sampled_from(["id", "kind", "meta", "data", "replace", "limit", "version", "namespace", "type", "source",
                     "old_text", "new_text", "x"]),
    _json | st.sampled_from(["app:caller", "app:x", "registry.entry", "function.lua", "return 1", "app"]),
    max_size=4))
async def test_any_arguments_give_a_result_or_a_clear_error(node: Node, tool: str, args: dict[str, Any]) -> None:
    """Whatever the model sends, a tool answers with a table or an error text, never a Lua error."""
    ok, res = await node.run(CALLER, *BOTH, args=(tool, args))
    assert ok, res
    got = res[0]
    if got.get("error") is not None:
        assert isinstance(got["error"], str) and got["error"]
        assert "stack traceback" not in got["error"] and ".lua:" not in got["error"]
    else:
        assert isinstance(got["value"], dict)


_values = st.recursive(
    st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=12),
    lambda inner: st.lists(inner, min_size=1, max_size=3) | st.dictionaries(
        st.from_regex(r"[a-z_]{1,6}", fullmatch=True), inner, min_size=1, max_size=3),
    max_leaves=8,
)
_fields = st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), _values, max_size=4)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 10**6), _fields, _fields)
async def test_created_entries_read_back_as_written(node: Node, n: int, meta: dict[str, Any],
                                                    data: dict[str, Any]) -> None:
    eid = f"app:e{n}"
    if node.svc.get(eid) is not None:
        return
    await node.apply(*BOTH)
    ok, res = await node.run(CALLER, args=("wippy.registry:create_entry",
                                           {"id": eid, "kind": "registry.entry", "meta": meta, "data": data}))
    assert ok and res[0].get("error") is None, res
    ok, res = await node.run(CALLER, args=("wippy.registry:get_entry", {"id": eid}))
    assert ok and res[0]["value"] == {"id": eid, "kind": "registry.entry", "meta": meta, "data": data}


# -- permissions and authorship --------------------------------------------------------------------

def policy(name: str, actions: Any, resources: Any = "*", effect: str = "allow") -> Entry:
    return Entry(f"app.sec:{name}", "security.policy", {},
                 {"policy": {"actions": actions, "resources": resources, "effect": effect},
                  "groups": ["app.sec:user"] if name != "all" else ["app.sec:admin"]})


POLICIES = (
    policy("call", "funcs.call", ["wippy.registry:*", "app:caller"]),
    policy("read", "registry.get", "*"),
    policy("all", "*", "*"),
)

AS_USERS = fn("app:as_users", """
    local security = require("security")
    local funcs = require("funcs")
    return { call = function(id, args, agent)
        local function as(name, group)
            local ex = funcs.new():with_actor(security.new_actor(name, {})):with_scope(security.named_scope(group))
            if agent then ex = ex:with_context({ agent_id = agent }) end
            local got, err = ex:call("app:caller", id, args)  -- app:caller calls the tool as the actor
            if err then return { error = tostring(err) } end
            return got
        end
        return { user = as("u1", "app.sec:user"), admin = as("a1", "app.sec:admin") }
    end }
""", modules=["security", "funcs"])


async def test_the_callers_permissions_apply_inside_the_tools(node: Node) -> None:
    await node.apply(*BOTH, *POLICIES)
    ok, res = await node.run(AS_USERS, CALLER, args=("wippy.registry:create_entry",
                                                     {"id": "app:n1", "kind": "registry.entry"}))
    assert ok, res
    user, admin = res[0]["user"], res[0]["admin"]
    assert user["error"] == ("create_entry app:n1 failed: permission denied: registry.apply on app:n1 "
                             "for actor u1")
    assert admin["value"]["id"] == "app:n1"
    rows = await node.svc.query("SELECT action, resource, actor, entry FROM audit")
    assert rows == [{"action": "registry.apply", "resource": "app:n1", "actor": "u1",
                     "entry": "wippy.registry:create_entry"}]
    ok, res = await node.run(AS_USERS, CALLER, args=("wippy.coder:read_source", {"id": "app:as_users"}))
    assert "funcs.call on wippy.coder:read_source for actor u1" in res[0]["user"].get("error", ""), res
    assert res[0]["admin"]["value"]["id"] == "app:as_users"


async def test_a_change_for_an_agent_is_authored_by_the_agent(node: Node) -> None:
    await node.apply(*BOTH, *POLICIES)
    args = ("wippy.registry:create_entry", {"id": "app:n2", "kind": "registry.entry"}, "wippy.registry:agent")
    ok, res = await node.run(AS_USERS, CALLER, args=args)
    assert ok and res[0]["admin"].get("error") is None, res
    last = (await node.svc.versions())[-1]
    assert last["author"] == "agent:wippy.registry:agent"
    assert last["message"] == "applied by wippy.registry:create_entry for a1"
