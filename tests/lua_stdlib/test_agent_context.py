"""The native ``wippy.agent:context`` library (component ``wippy/agent``) on a real LuaHost.

Agents, tools and models are registry entries; the model is served by the fake vendor server on
loopback through the real SDKs (tests/llm_fake.py) and the node's LLM service. Covered:
``runner:step`` (the request it makes, tool calls with registry ids, delegate calls, token stats),
``runner:run`` (tools called through funcs.call and their results fed back, a failing tool's error
given to the model, delegation to another agent, the turn limit), trait functions, the context's
methods and its error strings, and resolution through a bound ``wippy.agent:resolver``.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import llm_fake as fake_server
from tests.llm_fake import FakeLlm, reply, tool_call
from wippy.core import Entry
from wippy.services._llm import LlmService

from .helpers import Entries, fn, run_entry

llm_fake = fake_server.llm_fake  # the fixture: a fresh fake vendor per test

IMPORTS = {"agent_context": "wippy.agent:context", "prompt": "wippy.llm:prompt"}

GPT = Entry("app:gpt", "registry.entry",
            {"type": "llm.model", "name": "gpt-test", "capabilities": ["generate", "tool_use"]},
            {"providers": [{"id": "wippy.llm.openai:provider", "provider_model": "gpt-4o"}]})
CLAUDE = Entry("app:claude", "registry.entry",
               {"type": "llm.model", "name": "claude-test", "capabilities": ["generate", "tool_use"]},
               {"providers": [{"id": "wippy.llm.claude:provider", "provider_model": "claude-sonnet-4"}]})

ADD = Entry("app.tools:add", "function.lua", {
    "type": "tool", "llm_alias": "plus", "llm_description": "Adds two numbers",
    "input_schema": '{"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},'
                    ' "required": ["a", "b"]}',
}, {"source": textwrap.dedent("""
    local ctx = require("ctx")
    return { call = function(args)
        return { sum = args.a + args.b, agent = ctx.get("agent_id"), call_id = ctx.get("call_id"),
                 session = ctx.get("session") }
    end }
"""), "method": "call", "modules": ["ctx"]})
BOOM = Entry("app.tools:boom", "function.lua", {"type": "tool"},
             {"source": 'return { call = function() error("the tool broke") end }', "method": "call"})
REFUSE = Entry("app.tools:refuse", "function.lua", {"type": "tool"},
               {"source": 'return { call = function() return nil, "bad input" end }', "method": "call"})


def agent(name: str, **data: Any) -> Entry:
    data.setdefault("model", "gpt-test")
    return Entry(f"app:{name}", "registry.entry", {"type": "agent.gen1", "name": name}, data)


CALCULATOR = agent("calculator", prompt="You add numbers.", tools=["app.tools:add", "app.tools:boom",
                                                                  "app.tools:refuse"])
APP = (GPT, CLAUDE, ADD, BOOM, REFUSE, CALCULATOR)


async def run_lua(fake: FakeLlm, body: str, *entries: Entry) -> Any:
    """Run ``body`` (Lua, with agent_context, prompt and json in scope) and return its value."""
    source = ('local agent_context = require("agent_context")\nlocal prompt = require("prompt")\n'
              'local json = require("json")\nreturn { call = function()\n'
              + textwrap.indent(textwrap.dedent(body), "    ") + "\nend }\n")
    main = fn("app:main", source, imports=IMPORTS, modules=["json"])
    registry = Entries(main, *APP, *entries)
    service = LlmService(registry, fake.env())
    try:
        ok, results = await run_entry(main, registry=registry, llm=service)
    finally:
        await service.aclose()
    assert ok, results
    return results[0] if results else None


def chat_requests(fake: FakeLlm) -> list[dict[str, Any]]:
    return [r.body for r in fake.requests if r.api == "openai.chat"]


def test_the_library_is_native() -> None:
    from wippy.lua_stdlib._native_libs import native_library

    lib = native_library("wippy.agent:context")
    assert lib is not None and lib.meta["component"] == "wippy/agent"


# -- step ------------------------------------------------------------------------------------------

async def test_step_asks_the_model_and_gives_tool_calls_with_registry_ids(llm_fake: FakeLlm) -> None:
    llm_fake.queue(tool_call("plus", {"a": 1, "b": 2}, call_id="c1"))
    got = await run_lua(llm_fake, """
        local runner = assert(agent_context.new():load_agent("app:calculator"))
        local response, err = runner:step(prompt.new():add_user("1 + 2?"), { tool_call = "auto" })
        return { response = response, err = err, stats = runner:get_stats() }
    """)
    response = got["response"]
    assert response["finish_reason"] == "tool_call"
    [call] = response["tool_calls"]
    assert {k: call[k] for k in ("id", "name", "arguments", "registry_id")} == {
        "id": "c1", "name": "plus", "arguments": {"a": 1, "b": 2}, "registry_id": "app.tools:add"}
    assert call["context"] == {"agent_id": "app:calculator"}
    assert "delegate_calls" not in response
    assert got["stats"] == {"id": "app:calculator", "name": "calculator",
                            "total_tokens": {"prompt": 11, "completion": 7, "thinking": 0, "total": 18}}
    [sent] = chat_requests(llm_fake)
    assert sent["model"] == "gpt-4o" and sent["max_completion_tokens"] == 512
    assert sent["messages"][0] == {"role": "system", "content": "You add numbers."}
    assert sent["messages"][1] == {"role": "user", "content": "1 + 2?"}
    assert sorted(t["function"]["name"] for t in sent["tools"]) == ["boom", "plus", "refuse"]
    plus = next(t["function"] for t in sent["tools"] if t["function"]["name"] == "plus")
    assert plus["description"] == "Adds two numbers" and plus["parameters"]["required"] == ["a", "b"]


async def test_step_errors_are_strings(llm_fake: FakeLlm) -> None:
    got = await run_lua(llm_fake, """
        local runner = assert(agent_context.new():load_agent({ id = "x", prompt = "p", model = "no-such-model" }))
        local response, err = runner:step(prompt.new():add_user("hi"))
        local r2, err2 = runner:step("not a builder")
        return { response = response, err = err, err2 = err2 }
    """)
    assert got.get("response") is None and isinstance(got["err"], str) and "no-such-model" in got["err"]
    assert got["err2"] == "step needs a prompt builder (wippy.llm:prompt)"


# -- run -------------------------------------------------------------------------------------------

RUN = """
    local runner = assert(agent_context.new():load_agent("app:calculator"))
    local conversation = prompt.new():add_user("1 + 2?")
    local response, err = runner:run(conversation, { context = { session = "s1" } })
    return { response = response, err = err, messages = conversation:get_messages() }
"""


async def test_run_calls_the_tool_feeds_back_its_result_and_returns_the_answer(llm_fake: FakeLlm) -> None:
    llm_fake.queue(tool_call("plus", {"a": 1, "b": 2}, call_id="c1"), reply("It is 3."))
    got = await run_lua(llm_fake, RUN)
    response = got["response"]
    assert (response["result"], response["finish_reason"], response["turns"]) == ("It is 3.", "stop", 2)
    call, result = got["messages"][1], got["messages"][2]
    assert call["role"] == "function_call" and call["function_call"]["name"] == "plus"
    assert result["role"] == "function_result" and result["function_call_id"] == "c1"
    assert json.loads(result["content"][0]["text"]) == {"sum": 3, "agent": "app:calculator", "call_id": "c1",
                                                        "session": "s1"}
    second = chat_requests(llm_fake)[1]["messages"]
    assert second[2]["tool_calls"][0]["function"]["name"] == "plus"
    assert second[3]["role"] == "tool" and second[3]["tool_call_id"] == "c1"
    assert json.loads(second[3]["content"])["sum"] == 3


async def test_tool_errors_go_back_to_the_model_as_results(llm_fake: FakeLlm) -> None:
    llm_fake.queue(tool_call("boom", {}, call_id="c1"), tool_call("refuse", {}, call_id="c2"),
                   tool_call("ghost", {}, call_id="c3"), reply("Sorry, the tools failed."))
    got = await run_lua(llm_fake, RUN)
    assert (got["response"]["result"], got["response"]["turns"]) == ("Sorry, the tools failed.", 4)
    results = [json.loads(m["content"][0]["text"]) for m in got["messages"] if m["role"] == "function_result"]
    assert "the tool broke" in results[0]["error"]
    assert results[1] == {"error": "bad input"}
    assert results[2] == {"error": "unknown tool: ghost"}
    last = chat_requests(llm_fake)[-1]["messages"]
    assert "the tool broke" in next(m["content"] for m in last if m.get("tool_call_id") == "c1")


async def test_run_stops_at_the_turn_limit(llm_fake: FakeLlm) -> None:
    llm_fake.queue(*(tool_call("plus", {"a": i, "b": 1}, call_id=f"c{i}") for i in range(3)))
    got = await run_lua(llm_fake, """
        local runner = assert(agent_context.new():load_agent("app:calculator"))
        local conversation = prompt.new():add_user("count")
        local response = assert(runner:run(conversation, { max_turns = 2 }))
        local _, bad = runner:run(conversation, { max_turns = 0 })
        return { response = response, messages = conversation:get_messages(), bad = bad }
    """)
    response = got["response"]
    assert (response["finish_reason"], response["turns"]) == ("max_turns", 2)
    assert response["tool_calls"][0]["id"] == "c1"  # asked for, not run
    assert [m["role"] for m in got["messages"]] == ["user", "function_call", "function_result"]
    assert len(chat_requests(llm_fake)) == 2
    assert got["bad"] == "run: max_turns must be a positive whole number"


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(-50, 50), st.integers(-50, 50)), max_size=4))
async def test_each_tool_call_is_one_turn(llm_fake: FakeLlm, pairs: list[tuple[int, int]]) -> None:
    llm_fake.requests.clear()
    llm_fake.queue(*(tool_call("plus", {"a": a, "b": b}, call_id=f"c{i}") for i, (a, b) in enumerate(pairs)),
                   reply("done"))
    got = await run_lua(llm_fake, RUN)
    assert (got["response"]["turns"], got["response"]["result"]) == (len(pairs) + 1, "done")
    sums = [json.loads(m["content"][0]["text"])["sum"] for m in got["messages"] if m["role"] == "function_result"]
    assert sums == [a + b for a, b in pairs]


async def test_run_against_anthropic(llm_fake: FakeLlm) -> None:
    llm_fake.queue(tool_call("plus", {"a": 20, "b": 22}, call_id="toolu_1"), reply("42"))
    got = await run_lua(llm_fake, """
        local ctx = agent_context.new()
        local runner = assert(ctx:load_agent("app:calculator", { model = "claude-test" }))
        local response, err = runner:run(prompt.new():add_user("20 + 22?"))
        return { response = response, err = err, model = ctx:get_config().current_model }
    """)
    assert (got["response"]["result"], got["response"]["turns"], got["model"]) == ("42", 2, "claude-test")
    sent = [r.body for r in llm_fake.requests if r.api == "anthropic.messages"][-1]
    assert "You add numbers." in json.dumps(sent["system"])
    result = sent["messages"][-1]["content"][0]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_1"
    assert '"sum":42' in json.dumps(result["content"]).replace("\\", "").replace(" ", "")


# -- delegation ------------------------------------------------------------------------------------

MATH = agent("mathematician", prompt="You are a mathematician.", max_tokens=64)
COORDINATOR = agent("coordinator", prompt="Route questions.", context={"team": "blue"},
                    delegates=[{"id": "app:mathematician", "name": "ask_math", "rule": "for math problems"}])


async def test_a_delegate_agent_answers_and_its_answer_is_the_tool_result(llm_fake: FakeLlm) -> None:
    ask = tool_call("ask_math", {"message": "What is 6 * 7?"}, call_id="d1")
    llm_fake.queue(ask, ask, reply("42"), reply("The mathematician says 42."))
    got = await run_lua(llm_fake, """
        local runner = assert(agent_context.new():load_agent("coordinator"))
        local step = runner:step(prompt.new():add_user("6 * 7?"))
        local conversation = prompt.new():add_user("6 * 7?")
        local response = assert(runner:run(conversation))
        return { step = step, response = response, messages = conversation:get_messages() }
    """, MATH, COORDINATOR)
    [delegation] = got["step"]["delegate_calls"]
    assert {k: delegation[k] for k in ("name", "agent_id", "arguments")} == {
        "name": "ask_math", "agent_id": "app:mathematician", "arguments": {"message": "What is 6 * 7?"}}
    assert delegation["context"] == {"team": "blue", "from_agent_id": "app:coordinator",
                                     "to_agent_id": "app:mathematician"}
    assert "tool_calls" not in got["step"]
    assert (got["response"]["result"], got["response"]["turns"]) == ("The mathematician says 42.", 2)
    assert got["messages"][2]["content"][0]["text"] == "42"
    requests = chat_requests(llm_fake)
    offered = requests[0]["tools"][0]["function"]
    assert offered["name"] == "ask_math" and offered["description"] == "Forward the request to for math problems"
    delegate_request = requests[2]["messages"]  # 0: the step, 1: the run's first turn, 3: its second
    assert delegate_request[0] == {"role": "system", "content": "You are a mathematician."}
    assert delegate_request[1] == {"role": "user", "content": "What is 6 * 7?"}
    assert requests[2]["max_completion_tokens"] == 64


# -- traits ----------------------------------------------------------------------------------------

async def test_trait_build_and_prompt_functions(llm_fake: FakeLlm) -> None:
    build = fn("app:build", """
        local ctx = require("ctx")
        return { call = function(prompt_text, context)
            return { prompt = "Built for " .. ctx.get("agent_id") .. " from '" .. prompt_text .. "'",
                     tools = { "app.tools:add" } }
        end }
    """, modules=["ctx"])
    dynamic = fn("app:dynamic", """
        local ctx = require("ctx")
        return { call = function() return "Session " .. tostring(ctx.get("session")) end }
    """, modules=["ctx"])
    helper = agent("helper", prompt="Base.", memory=["likes tea"], traits=["app:t"])
    trait = Entry("app:t", "registry.entry", {"type": "agent.trait"},
                  {"prompt": "Static.", "build_func_id": "app:build", "prompt_func_id": "app:dynamic"})
    llm_fake.queue(reply("ok"))
    got = await run_lua(llm_fake, """
        local runner = assert(agent_context.new():load_agent("helper"))
        assert(runner:step(prompt.new():add_user("hi"), { context = { session = "s9" } }))
        local names = {}
        for name in pairs(runner.tools) do names[#names + 1] = name end
        return names
    """, helper, trait, build, dynamic)
    assert got == ["plus"]
    system = chat_requests(llm_fake)[0]["messages"][0]["content"]
    assert system == ("Base.\n\nStatic.\n\nBuilt for app:helper from 'Static.'\n\n"
                      "## Your memory contains:\n- likes tea\n\nSession s9")


# -- the context -----------------------------------------------------------------------------------

async def test_context_methods_and_error_strings(llm_fake: FakeLlm) -> None:
    bad = agent("bad", tools=["app.tools:missing"])
    got = await run_lua(llm_fake, """
        local out = {}
        local ctx = agent_context.new({ context = { tenant = "t1" } })
        out.no_agent = select(2, ctx:get_current_agent())
        out.no_model = select(2, ctx:switch_to_model(""))
        out.no_current = select(2, ctx:switch_to_model("gpt-test"))
        out.no_spec = select(2, ctx:load_agent(nil))
        out.unknown = select(2, ctx:load_agent("nobody"))
        out.not_agent = select(2, ctx:load_agent("app.tools:add"))
        out.bad = select(2, ctx:load_agent("app:bad"))

        local runner = assert(ctx:add_tools("app.tools:boom"):update_context({ user = "u" }):load_agent("calculator"))
        out.first_model = runner.model
        out.tenant = runner.tools.boom.context.tenant
        out.user = runner.tools.boom.context.user
        assert(ctx:switch_to_model("claude-test"))
        out.current = ctx:get_current_agent().model
        assert(ctx:switch_to_agent({ id = "inline", prompt = "Inline.", model = "gpt-test" }))
        out.inline = ctx:get_current_agent().system_prompt
        out.inline_tools = ctx:get_current_agent().tools.boom ~= nil  -- added tools stay across switches
        out.config = ctx:get_config()
        return out
    """, bad)
    assert got["no_agent"] == "No agent loaded"
    assert got["no_model"] == "Model name is required"
    assert got["no_current"] == "No current agent to change model for"
    assert got["no_spec"] == "Agent spec or identifier is required"
    assert got["unknown"] == "Failed to load agent 'nobody': No agent found with name: nobody"
    assert got["not_agent"] == "Failed to load agent 'app.tools:add': Entry is not a gen1 agent: app.tools:add"
    assert got["bad"] == "Failed to compile agent 'app:bad': tools[1]: tool app.tools:missing does not exist"
    assert (got["first_model"], got["tenant"], got["user"], got["current"]) == ("gpt-test", "t1", "u", "claude-test")
    assert (got["inline"], got["inline_tools"]) == ("Inline.", True)
    assert got["config"] == {"current_agent_id": "inline", "current_model": "gpt-test",
                             "additional_tools_count": 1, "additional_delegates_count": 0,
                             "has_active_traits": False, "has_active_tools": False, "has_memory_contract": False,
                             "cache_enabled": True, "delegate_tools_enabled": True}


async def test_a_bound_resolver_contract_is_asked_first(llm_fake: FakeLlm) -> None:
    contract = Entry("wippy.agent:resolver", "contract.definition", {}, {"methods": [{"name": "resolve"}]})
    resolve = fn("app:resolve", """
        return { call = function(args)
            if args.agent_id:sub(1, 7) == "custom:" then
                return { id = args.agent_id, prompt = "Custom " .. args.agent_id:sub(8), model = "gpt-test" }
            end
            return nil
        end }
    """)
    binding = Entry("app:resolver_binding", "contract.binding", {}, {"contracts": [
        {"contract": "wippy.agent:resolver", "default": True, "methods": {"resolve": "app:resolve"}}]})
    got = await run_lua(llm_fake, """
        local ctx = agent_context.new()
        local custom = assert(ctx:load_agent("custom:seven"))
        local fallback = assert(ctx:load_agent("calculator"))
        return { custom = custom.system_prompt, id = custom.id, fallback = fallback.id }
    """, contract, resolve, binding)
    assert got == {"custom": "Custom seven", "id": "custom:seven", "fallback": "app:calculator"}
