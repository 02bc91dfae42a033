"""`contract`: definitions, bindings, opening, sync/async calls, scope values, security, retries."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wippy.core import Changeset, DefinitionErrors, Entry, Op

from .helpers import Node, fn, run_entry

GREETER = Entry("app.c:greeter", "contract.definition", {}, {"methods": [
    {"name": "greet", "description": "Says hello"},
    {"name": "greet_with_name", "description": "Greets by name",
     "input_schemas": [{"format": "application/schema+json", "definition": {"type": "string"}}]},
    {"name": "unbound"},
]})
CALC = Entry("app.c:calc", "contract.definition", {}, {"methods": [{"name": "add"}, {"name": "whoami"}]})
GREET = fn("app.c:greet", "return { call = function() return 'Hello, World!' end }")
GREET_NAME = fn("app.c:greet_name", """
    local ctx = require("ctx")
    return { call = function(name)
        local tenant = ctx.get("tenant")
        return "Hello, " .. (name or "Anonymous") .. "!" .. (tenant and (" @" .. tostring(tenant)) or "")
    end }
""", modules=["ctx"])
ADD = fn("app.c:add", "return { call = function(a, b) return a + b end }")
WHOAMI = fn("app.c:whoami", """
    local security = require("security")
    return { call = function() local a = security.actor(); return a and a:id() or "nobody" end }
""", modules=["security"])
GREETER_IMPL = Entry("app.c:greeter_impl", "contract.binding", {}, {"contracts": [
    {"contract": "app.c:greeter", "default": True,
     "methods": {"greet": "app.c:greet", "greet_with_name": "app.c:greet_name"}},
]})
CALC_IMPL = Entry("app.c:calc_impl", "contract.binding", {}, {"contracts": [
    {"contract": "app.c:calc", "methods": {"add": "app.c:add", "whoami": "app.c:whoami"},
     "context_required": ["tenant"]},
]})
ALSO_GREETER = Entry("app.c:also_greeter", "contract.binding", {}, {"contracts": [
    {"contract": "app.c:greeter", "methods": {"greet": "app.c:greet_name"}},
]})
APP = (GREETER, CALC, GREET, GREET_NAME, ADD, WHOAMI, GREETER_IMPL, CALC_IMPL, ALSO_GREETER)


async def run(body: str, *extra: Entry, modules: tuple[str, ...] = ()) -> Any:
    entry = fn("app.c:test", "local contract = require('contract')\nreturn { call = function() " + body + " end }",
               modules=["contract", *modules])
    ok, res = await run_entry(entry, *APP, *extra)
    assert ok, res
    return res[0] if len(res) == 1 else list(res)


async def test_open_and_call_sync_and_async() -> None:
    res = await run("""
        local g, err = contract.open("app.c:greeter_impl")
        assert(err == nil, tostring(err))
        local f1 = g:greet_async()
        local f2 = g:greet_with_name_async("Bob")
        return { g:greet(), g:greet_with_name("Alice"), f1:response():receive():data(),
                 f2:response():receive():data(), g.nonexistent == nil, g.unbound ~= nil,
                 contract.is(g, "app.c:greeter"), contract.is(g, "app.c:calc"), contract.is({}, "app.c:greeter") }
    """)
    assert res == ["Hello, World!", "Hello, Alice!", "Hello, World!", "Hello, Bob!", True, True, True, False, False]


async def test_a_method_in_the_contract_but_not_bound_is_not_found() -> None:
    res = await run("""
        local g = contract.open("app.c:greeter_impl")
        local v, err = g:unbound()
        return { v == nil, err:kind(), err:message() }
    """)
    assert res[:2] == [True, "NOT_FOUND"]
    assert "unbound" in res[2]


async def test_scope_values_become_the_implementations_ctx() -> None:
    res = await run("""
        local a = contract.open("app.c:greeter_impl", {tenant = "acme"}):greet_with_name("Al")
        local b = contract.open("app.c:greeter_impl?tenant=q&debug=true"):greet_with_name("Bo")
        -- the scope table wins over query parameters
        local c = contract.open("app.c:greeter_impl?tenant=q", {tenant = "t"}):greet_with_name("Cy")
        local con = contract.get("app.c:greeter")
        local d = con:with_context({tenant = "w"}):open():greet_with_name("Di")
        local e = con:with_context({tenant = "w"}):open(nil, {tenant = "s"}):greet_with_name("Ed")
        local n = contract.open("app.c:greeter_impl?tenant=42"):greet_with_name("N")
        return { a, b, c, d, e, n }
    """)
    assert res == ["Hello, Al! @acme", "Hello, Bo! @q", "Hello, Cy! @t", "Hello, Di! @w", "Hello, Ed! @s",
                   "Hello, N! @42"]


ECHO_CTX = fn("app.c:echo_ctx", "local ctx = require('ctx')\nreturn { call = function() return ctx.all() end }",
              modules=["ctx"])
ECHO_DEF = Entry("app.c:echo", "contract.definition", {}, {"methods": [{"name": "all"}]})
ECHO_IMPL = Entry("app.c:echo_impl", "contract.binding", {}, {"contracts": [
    {"contract": "app.c:echo", "methods": {"all": "app.c:echo_ctx"}}]})


def _typed(text: str) -> Any:
    """Query values as Wippy types them: true/false, decimal integers and floats, else the text."""
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"[-+]?[0-9]+", text):
        return int(text)
    if re.fullmatch(r"[-+]?[0-9]*\.?[0-9]*(?:[eE][-+]?[0-9]+)?", text) and re.search("[0-9]", text):
        try:
            return float(text)
        except ValueError:
            return text
    return text


TRICKY = ["true", "false", "1.5", "0x10", "1e3", "-2.5E-1", " 5", "inf", "nan", ".", "1.", "+7"]
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=8)


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(TEXT.filter(bool), st.one_of(TEXT, st.integers(-10**6, 10**6).map(str), st.sampled_from(TRICKY)),
                       max_size=4))
async def test_query_parameters_arrive_typed_in_ctx(params: dict[str, str]) -> None:
    from urllib.parse import quote

    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())
    entry = fn("app.c:q", "local contract = require('contract')\nreturn { call = function(id) "
               "return contract.open(id):all() end }", modules=["contract"])
    ok, res = await run_entry(entry, ECHO_CTX, ECHO_DEF, ECHO_IMPL, args=("app.c:echo_impl?" + query,))
    assert ok, res
    expected = {k: _typed(v) for k, v in params.items()}
    assert (res[0] or {}) == expected


async def test_context_required_is_checked_at_call_time() -> None:
    res = await run("""
        local calc = contract.open("app.c:calc_impl")
        local v, err = calc:add(1, 2)
        local ok = contract.open("app.c:calc_impl", {tenant = "x"}):add(1, 2)
        -- a value already in the caller's context counts too
        local funcs = require("funcs")
        local ambient = funcs.new():with_context({tenant = "amb"}):call("app.c:ambient")
        return { v == nil, err:kind(), err:message(), ok, ambient }
    """, fn("app.c:ambient", """
        local contract = require("contract")
        return { call = function() return contract.open("app.c:calc_impl"):add(2, 3) end }
    """, modules=["contract"]), modules=("funcs",))
    assert res[:2] == [True, "INVALID"]
    assert "tenant" in res[2]
    assert res[3:] == [3, 5]


async def test_introspection() -> None:
    res = await run("""
        local c, err = contract.get("app.c:greeter")
        local ms = c:methods()
        local m = c:method("greet_with_name")
        local none, merr = c:method("nope")
        local impls = c:implementations()
        local found = contract.find_implementations("app.c:greeter")
        return { c:id(), #ms, ms[1].name, ms[1].description, m.input_schemas[1].definition.type,
                 m.input_schemas[1].format, none == nil, merr:kind(), impls, found,
                 #contract.find_implementations("app.c:nobody") }
    """)
    assert res == ["app.c:greeter", 3, "greet", "Says hello", "string", "application/schema+json", True, "NOT_FOUND",
                   ["app.c:also_greeter", "app.c:greeter_impl"], ["app.c:also_greeter", "app.c:greeter_impl"], 0]


async def test_default_binding_and_errors() -> None:
    res = await run("""
        local calc = contract.get("app.c:calc")
        local i, err = calc:open()
        local g = contract.get("app.c:greeter"):open()
        local specific = contract.get("app.c:greeter"):open("app.c:also_greeter")
        local _, e1 = contract.get("app.c:missing")
        local _, e2 = contract.open("app.c:missing")
        local _, e3 = contract.open("")
        local _, e4 = contract.get("")
        local _, e5 = contract.open("app.c:greet")  -- a function, not a binding
        return { i == nil, err:kind(), g:greet(), specific:greet("x"), e1:kind(), e2:kind(), e3:kind(), e4:kind(),
                 e5:kind() }
    """)
    assert res == [True, "NOT_FOUND", "Hello, World!", "Hello, x!", "NOT_FOUND", "NOT_FOUND", "INVALID", "INVALID",
                   "NOT_FOUND"]


async def test_a_binding_whose_contract_is_missing_does_not_open() -> None:
    orphan = Entry("app.c:orphan", "contract.binding", {}, {"contracts": [
        {"contract": "app.c:gone", "methods": {"x": "app.c:greet"}}]})
    res = await run("""
        local i, err = contract.open("app.c:orphan")
        return { i == nil, err:kind(), err:message() }
    """, orphan)
    assert res[:2] == [True, "INTERNAL"]
    assert "app.c:gone" in res[2]


async def test_instances_and_contracts_are_read_only_and_bad_arguments_raise() -> None:
    res = await run("""
        local g = contract.open("app.c:greeter_impl")
        local c = contract.get("app.c:greeter")
        local ok1 = pcall(function() g.greet = 1 end)
        local ok2 = pcall(function() c:with_context("nope") end)
        local ok3 = pcall(function() c:with_actor({id = "forged"}) end)
        local ok4 = pcall(function() contract.open("app.c:greeter_impl", "scope") end)
        local _, e5 = c:open(42)
        return { ok1, ok2, ok3, ok4, e5:kind(), tostring(g), tostring(c) }
    """)
    assert res == [False, False, False, False, "INVALID", "contract.Instance(app.c:greeter_impl)",
                   "contract.Contract(app.c:greeter)"]


async def test_implementations_run_under_the_callers_or_the_contracts_actor() -> None:
    res = await run("""
        local security = require("security")
        local funcs = require("funcs")
        local calc = contract.open("app.c:calc_impl", {tenant = "t"})
        local nobody = calc:whoami()
        local as_bob = contract.get("app.c:calc"):with_actor(security.new_actor("bob"))
            :open("app.c:calc_impl", {tenant = "t"}):whoami()
        -- without with_actor the caller's actor flows through
        local inherited = funcs.new():with_actor(security.new_actor("carol")):call("app.c:inherit")
        return { nobody, as_bob, inherited }
    """, fn("app.c:inherit", """
        local contract = require("contract")
        return { call = function() return contract.open("app.c:calc_impl", {tenant = "t"}):whoami() end }
    """, modules=["contract"]), modules=("security", "funcs"))
    assert res == ["nobody", "bob", "carol"]


async def test_retry_options_repeat_retryable_failures() -> None:
    flaky_def = Entry("app.c:flaky", "contract.definition", {}, {"methods": [{"name": "call"}, {"name": "bad"}]})
    flaky_impl = Entry("app.c:flaky_impl", "contract.binding", {}, {"contracts": [
        {"contract": "app.c:flaky", "methods": {"call": "app.c:flaky_fn", "bad": "app.c:bad_fn"}}]})
    flaky_fn = fn("app.c:flaky_fn", """
        local n = 0
        return { call = function()
            n = n + 1
            if n < 3 then
                return nil, errors.new({message = "try again " .. n, kind = errors.UNAVAILABLE, retryable = true})
            end
            return "ok after " .. n
        end }
    """)
    bad_fn = fn("app.c:bad_fn", """
        local n = 0
        return { call = function()
            n = n + 1
            return nil, errors.new({message = "bad input " .. n, kind = errors.INVALID})
        end }
    """)
    res = await run("""
        local c = contract.get("app.c:flaky"):with_options({retry = {max_attempts = 5, initial_delay = 1}})
        local inst = c:open("app.c:flaky_impl")
        local v = inst:call()
        local _, e = inst:bad()
        local plain = contract.open("app.c:flaky_impl")
        local _, once = plain:bad()
        local direct = contract.open("app.c:flaky_impl", nil, {retry = {max_attempts = 2, initial_delay = "1ms"}})
        local _, twice = direct:bad()
        return { v, e:message(), once:message(), twice:message() }
    """, flaky_def, flaky_impl, flaky_fn, bad_fn)
    # INVALID is never retried; the function keeps its state between calls in one host
    assert res == ["ok after 3", "bad input 1", "bad input 2", "bad input 3"]


async def test_funcs_executor_retry_with_backoff_kinds() -> None:
    flaky = fn("app.c:flaky2", """
        local n = 0
        return { call = function()
            n = n + 1
            if n < 3 then error("boom " .. n) end
            return n
        end }
    """)
    res = await run("""
        local funcs = require("funcs")
        local ex = funcs.new():with_options({retry = {max_attempts = 3, initial_delay = 1, jitter = 0}})
        local v, err = ex:call("app.c:flaky2")
        local skip = funcs.new():with_options({retry = {max_attempts = 3, initial_delay = 1,
                                                          skip_kinds = {"UNKNOWN"}}})
        local v2, err2 = skip:call("app.c:flaky2")
        local f = ex:async("app.c:flaky2")
        local p = f:response():receive()
        return { v, err == nil, v2, err2 == nil, p:data() }
    """, flaky, modules=("funcs",))
    # 2 failures then success; then call 4 succeeds at once (n=4); the async call gets n=5
    assert res == [3, True, 4, True, 5]


async def test_permissions(node: Node) -> None:
    policy = Entry("app.c:p", "security.policy", {}, {"policy": {
        "actions": ["contract.get", "contract.open", "contract.call", "contract.implementations"],
        "resources": ["app.c:greeter", "app.c:greeter_impl", "greet*"]}, "groups": ["app.c:g"]})
    deny_call = Entry("app.c:deny", "security.policy", {}, {"policy": {
        "actions": "contract.call", "resources": "greet_with_name", "effect": "deny"}, "groups": ["app.c:g"]})
    ok, res = await node.run(fn("app.c:perm", """
        local contract = require("contract")
        local security = require("security")
        local funcs = require("funcs")
        return { call = function()
            local v, err = funcs.new():with_actor(security.new_actor("u")):with_scope(security.named_scope("app.c:g"))
                :call("app.c:inner")
            return v or tostring(err)
        end }
    """, modules=["contract", "security", "funcs"]), fn("app.c:inner", """
        local contract = require("contract")
        return { call = function()
            local g = contract.open("app.c:greeter_impl")
            local v = g:greet()
            local _, e1 = g:greet_with_name("x")
            local _, e2 = contract.open("app.c:calc_impl")
            local _, e3 = contract.get("app.c:greeter"):with_context({a = 1})
            local _, e4 = contract.get("app.c:calc")
            return { v, e1:kind(), e2:kind(), e3:kind(), e4:kind() }
        end }
    """, modules=["contract"]), *APP, policy, deny_call)
    # contract calls need contract.call on the method, not funcs.call on the implementation
    assert ok, res
    assert res[0] == ["Hello, World!", "PERMISSION_DENIED", "PERMISSION_DENIED", "PERMISSION_DENIED",
                      "PERMISSION_DENIED"]


def bad_contract(data: dict[str, Any], kind: str = "contract.definition") -> Entry:
    return Entry("app.c:bad", kind, {}, data)


@pytest.mark.parametrize(("entry", "field"), [
    (bad_contract({}), "methods"),
    (bad_contract({"methods": [{"description": "no name"}]}), "methods[0].name"),
    (bad_contract({"methods": [{"name": "a"}, {"name": "a"}]}), "methods[1].name"),
    (bad_contract({"methods": [{"name": "a", "input_schemas": "x"}]}), "methods[0].input_schemas"),
    (bad_contract({}, "contract.binding"), "contracts"),
    (bad_contract({"contracts": [{"methods": {"a": "app:f"}}]}, "contract.binding"), "contracts[0].contract"),
    (bad_contract({"contracts": [{"contract": "app:c", "methods": {"a": "f"}}]}, "contract.binding"),
     "contracts[0].methods.a"),
    (bad_contract({"contracts": [{"contract": "app:c", "methods": {"a": "app:f"}, "default": "yes"}]},
                  "contract.binding"), "contracts[0].default"),
    (bad_contract({"contracts": [{"contract": "app:c", "methods": {"a": "app:f"}, "context_required": "k"}]},
                  "contract.binding"), "contracts[0].context_required"),
])
async def test_malformed_entries_are_refused_naming_the_field(node: Node, entry: Entry, field: str) -> None:
    extra = [Op("create", "app:f", fn("app:f", "return { call = function() end }"))]
    with pytest.raises(DefinitionErrors) as info:
        await node.svc.apply(Changeset(ops=(*extra, Op("create", entry.id, entry))))
    assert any(e.entry == "app.c:bad" and e.field == field for e in info.value.errors), str(info.value)
