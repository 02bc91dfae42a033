"""Agent compilation (services/_agents.py): definitions from registry entries to compiled specs.

Covers the prompt with traits (by id, by name, the built-in time_aware) and memory, tools by id and
``ns:*`` with their names, descriptions and input schemas (JSON text or a table), delegates as
tools, ``inherit`` (merge order, child wins, diamonds, cycles), the options the agent context adds,
the errors a wrong field gives (naming the agent and the field), and an app declaring
``ns.dependency`` on wippy/llm and wippy/agent that runs an agent with a tool on a real node against
the fake vendor server.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import llm_fake as fake_server
from tests.llm_fake import FakeLlm, reply, tool_call
from tests.lua_stdlib.helpers import Entries
from wippy.core import Entry, load_app, native_components
from wippy.services import Node, RuntimeSettings, StateDir
from wippy.services._agents import (
    DELEGATE_SCHEMA,
    AgentDefinitionError,
    AgentNotFoundError,
    CompiledAgent,
    CompileOptions,
    compile_agent,
)
from wippy.services._agents_tools import sanitize_name
from wippy.services._agents_traits import time_aware_prompt

from .agent_app import ASSISTANT_AND_ASK, LLM_APP_HEAD, WEATHER_LUA, WEATHER_TOOL, write_app
from .conftest import HOSTS, ProcNode

llm_fake = fake_server.llm_fake  # the fixture: a fresh fake vendor per test

NOW = datetime(2026, 3, 5, 14, 38, tzinfo=UTC)  # a Thursday


def agent(name: str, ns: str = "app", meta_name: str | None = None, **data: Any) -> Entry:
    data.setdefault("model", "gpt-test")
    return Entry(f"{ns}:{name}", "registry.entry", {"type": "agent.gen1", "name": meta_name or name}, data)


def tool(eid: str, **meta: Any) -> Entry:
    return Entry(eid, "function.lua", {"type": "tool", **meta}, {"source": "return {}", "method": "call"})


def trait(eid: str, name: str | None = None, **data: Any) -> Entry:
    meta = {"type": "agent.trait", **({"name": name} if name else {})}
    return Entry(eid, "registry.entry", meta, data)


def build(*entries: Entry, ref: str | dict[str, Any] = "app:a", **options: Any) -> CompiledAgent:
    return compile_agent(Entries(*entries), ref, CompileOptions(now=NOW, **options))


def tools_of(compiled: CompiledAgent) -> dict[str, Any]:
    return {t.name: t for t in compiled.tools}


def fails(*entries: Entry, ref: str = "app:a", **options: Any) -> AgentDefinitionError:
    with pytest.raises(AgentDefinitionError) as info:
        build(*entries, ref=ref, **options)
    return info.value


def test_the_component_is_native() -> None:
    import wippy.lua_stdlib  # noqa: F401 - registers the native components

    assert "wippy/agent" in native_components()


# -- the basics ------------------------------------------------------------------------------------

def test_defaults_and_fields() -> None:
    got = build(agent("a", prompt="You help.", temperature=0.3, thinking_effort=40, context={"k": 1}))
    assert (got.id, got.name, got.model, got.max_tokens) == ("app:a", "a", "gpt-test", 512)
    assert (got.temperature, got.thinking_effort, got.prompt, got.system_prompt) == (0.3, 40, "You help.", "You help.")
    assert got.tools == () and got.context == {"k": 1}
    data = build(agent("b", prompt="x"), ref="app:b").to_data()
    assert "temperature" not in data and "thinking_effort" not in data  # unset: the provider's default


def test_lookup_by_id_then_by_meta_name() -> None:
    entries = (agent("a", meta_name="helper", prompt="A"), agent("b", meta_name="app:a", prompt="B"))
    assert build(*entries, ref="app:a").prompt == "A"
    assert build(*entries, ref="helper").prompt == "A"


def test_unknown_agent_and_non_agent_entries() -> None:
    with pytest.raises(AgentNotFoundError, match=r"^No agent found with name: nope$"):
        build(agent("a"), ref="nope")
    with pytest.raises(AgentNotFoundError, match=r"^Entry is not a gen1 agent: app.tools:t$"):
        build(tool("app.tools:t"), ref="app.tools:t")


def test_memory_is_appended_to_the_system_prompt() -> None:
    got = build(agent("a", prompt="Base", memory=["likes tea", "lives in Oslo"]))
    assert got.prompt == "Base"
    assert got.system_prompt == "Base\n\n## Your memory contains:\n- likes tea\n- lives in Oslo"


def test_an_inline_spec_compiles_without_an_entry() -> None:
    got = build(tool("app.tools:t"), ref={"id": "inline", "prompt": "P", "model": "m", "tools": ["app.tools:t"]})
    assert (got.id, got.model, [t.name for t in got.tools]) == ("inline", "m", ["t"])
    assert build(ref={"prompt": "P", "model": "m"}).id == "inline-agent"


# -- traits ------------------------------------------------------------------------------------------

def test_trait_prompts_follow_the_agent_prompt_in_order() -> None:
    got = build(agent("a", prompt="Base", traits=["Polite", {"id": "app:terse"}]),
                trait("app:polite", "Polite", prompt="Be polite."), trait("app:terse", prompt="Be terse."))
    assert got.prompt == "Base\n\nBe polite.\n\nBe terse."


def test_trait_tools_get_the_trait_context_under_the_agent_and_tool_contexts() -> None:
    got = build(
        agent("a", context={"shared": "agent", "a": 1},
              traits=[{"id": "app:t", "context": {"instance": True}}]),
        trait("app:t", tools=["app.tools:x", {"id": "app.tools:y", "context": {"shared": "tool"}}],
              context={"shared": "trait", "own": 2}),
        tool("app.tools:x"), tool("app.tools:y"),
    )
    tools = tools_of(got)
    assert tools["x"].context == {"shared": "agent", "own": 2, "instance": True, "a": 1, "agent_id": "app:a"}
    assert tools["y"].context["shared"] == "tool"


def test_time_aware_is_built_in() -> None:
    got = build(agent("a", prompt="Base", traits=["time_aware"]))
    assert got.prompt == ("Base\n\nThe current date and time is Thursday, March 5, 2026 at 14:30 UTC. "
                          "Use this temporal context when relevant to your responses.")
    got = build(agent("a", traits=[{"id": "time_aware", "context": {"timezone": "Asia/Tokyo", "time_interval": 60}}]))
    assert got.prompt.startswith("The current date and time is Thursday, March 5, 2026 at 23:00 Asia/Tokyo.")


@settings(max_examples=60)
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
       st.sampled_from([1, 5, 10, 15, 20, 30, 60]))
def test_time_aware_rounds_down_to_the_interval(moment: datetime, interval: int) -> None:
    text = time_aware_prompt({"time_interval": interval}, moment.replace(tzinfo=UTC))
    m = re.search(r"at (\d\d):(\d\d) UTC\.", text)
    assert m is not None
    assert int(m.group(1)) == moment.hour
    minute = int(m.group(2))
    assert minute % interval == 0 and 0 <= moment.minute - minute < interval


def test_a_registry_trait_named_time_aware_wins_over_the_built_in() -> None:
    got = build(agent("a", traits=["time_aware"]), trait("app:clock", "time_aware", prompt="custom clock"))
    assert got.prompt == "custom clock"


def test_trait_functions_are_listed_for_the_runner() -> None:
    entries = (agent("a", context={"c": 1}, traits=["app:t"]),
               trait("app:t", prompt="static", build_func_id="app:build", prompt_func_id="app:dyn",
                     step_func_id="app:step", context={"k": "v"}))
    got = build(*entries)
    assert [(f.func_id, dict(f.context), f.prompt) for f in got.build_funcs] == [
        ("app:build", {"k": "v", "c": 1, "agent_id": "app:a"}, "static")]
    assert [f.func_id for f in got.prompt_funcs] == ["app:dyn"]
    assert [f.func_id for f in got.step_funcs] == ["app:step"]
    # what the build function returned compiles in after the trait's own prompt
    got = build(*entries, tool("app.tools:extra"),
                contributions={"app:t": {"prompt": "built", "tools": ["app.tools:extra"], "context": {"k": "w"}}})
    assert got.build_funcs == () and got.prompt == "static\n\nbuilt"
    assert tools_of(got)["extra"].context["k"] == "w"


# -- tools -------------------------------------------------------------------------------------------

def test_tool_names_and_descriptions() -> None:
    got = build(
        agent("a", tools=["app.tools:getWeather", "app.tools:lookup", {"id": "app.tools:plain", "alias": "renamed",
                                                                        "description": "mine"}, "app.tools:c"]),
        tool("app.tools:getWeather", llm_description="Weather now", description="d", comment="c"),
        tool("app.tools:lookup", llm_alias="find_it", description="Finds"),
        tool("app.tools:plain", llm_description="theirs"),
        tool("app.tools:c", comment="From the comment"),
    )
    tools = tools_of(got)
    assert sorted(tools) == ["c", "find_it", "get_weather", "renamed"]
    assert [t.name for t in got.tools] == sorted(tools)  # offered in name order
    assert tools["get_weather"].description == "Weather now"
    assert tools["find_it"].description == "Finds"
    assert tools["renamed"].description == "mine"
    assert tools["c"].description == "From the comment"
    assert tools["renamed"].registry_id == "app.tools:plain"


def test_input_schema_as_json_text_or_table() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    got = tools_of(build(agent("a", tools=["app.tools:text", "app.tools:table", "app.tools:none", "app.tools:empty"]),
                         tool("app.tools:text", input_schema='{"type": "object", "properties": {"q": {"type": '
                                                             '"string"}}, "required": ["q"]}'),
                         tool("app.tools:table", input_schema=schema),
                         tool("app.tools:none"),
                         tool("app.tools:empty", input_schema={"type": "object", "properties": {}})))
    assert got["text"].schema == schema and got["table"].schema == schema
    placeholder = {"placeholder": {"type": "object", "description": "Empty placeholder parameter", "default": {}}}
    assert got["none"].schema == {"type": "object", "properties": placeholder}
    assert got["empty"].schema["properties"] == placeholder


def test_namespace_wildcards_take_every_tool_of_that_namespace_only() -> None:
    got = build(agent("a", tools=[{"id": "app.tools:*", "context": {"w": 1}}]),
                tool("app.tools:b"), tool("app.tools:a"), tool("app.tools.sub:c"), tool("other:d"),
                Entry("app.tools:not_a_tool", "function.lua", {"type": "function"}, {}),
                Entry("app.tools:data", "registry.entry", {"type": "tool"}, {}))
    assert [(t.name, t.registry_id, t.context["w"]) for t in got.tools] == [
        ("a", "app.tools:a", 1), ("b", "app.tools:b", 1)]


def test_the_same_tool_twice_is_one_tool_two_tools_with_one_name_are_an_error() -> None:
    got = build(agent("a", tools=["app.tools:*", "app.tools:x"]), tool("app.tools:x"))
    assert [t.name for t in got.tools] == ["x"]
    err = fails(agent("a", tools=["app.tools:x", "other:x"]), tool("app.tools:x"), tool("other:x"))
    assert (err.entry, err.field) == ("app:a", "tools[2]")
    assert "two tools are named 'x' (app.tools:x and other:x): give one an alias" in err.reason


@settings(max_examples=80)
@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=30))
def test_sanitized_names_are_snake_case(name: str) -> None:
    out = sanitize_name(name)
    assert re.fullmatch(r"[a-z0-9_]*", out)
    assert "__" not in out and not out.startswith("_")


# -- delegates ---------------------------------------------------------------------------------------

def test_delegates_are_tools_with_an_agent_id() -> None:
    entries = (agent("a", context={"c": 1}, delegates=[
        {"id": "app:coder", "name": "ask_coder", "rule": "for programming questions", "context": {"d": 2}},
        {"id": "app:other", "name": "ask_other"}]),)
    got = build(*entries)
    tools = tools_of(got)
    assert tools["ask_coder"].description == "Forward the request to for programming questions"
    assert tools["ask_other"].description == "Forward the request to when appropriate"
    assert tools["ask_coder"].schema == DELEGATE_SCHEMA and tools["ask_coder"].registry_id is None
    assert dict(tools["ask_coder"].context) == {"c": 1, "d": 2}
    assert got.delegates == {"ask_coder": "app:coder", "ask_other": "app:other"}
    suffixed = build(*entries, delegate_suffix=" (agent)")
    assert tools_of(suffixed)["ask_other"].description.endswith("appropriate (agent)")
    assert build(*entries, delegate_tools=False).tools == ()


@pytest.mark.parametrize(("delegate", "field", "reason"), [
    ({"name": "x"}, "delegates[1].id", "needs the id"),
    ({"id": "app:b"}, "delegates[1].name", "needs the tool name"),
    ({"id": "app:b", "name": "has space"}, "delegates[1].name", "must be 1-64 letters"),
    ({"id": "app:b", "name": "t"}, "delegates[1].name", "already the name of tool app.tools:t"),
    ("app:b", "delegates[1]", "must be a table"),
])
def test_bad_delegates(delegate: Any, field: str, reason: str) -> None:
    err = fails(agent("a", tools=["app.tools:t"], delegates=[delegate]), tool("app.tools:t"))
    assert err.field == field and reason in err.reason


# -- inherit -----------------------------------------------------------------------------------------

def test_inherit_merges_prompt_traits_tools_memory_and_the_child_wins() -> None:
    got = build(
        agent("base", prompt="Base rules.", model="base-model", max_tokens=100, temperature=0.5,
              tools=[{"id": "app.tools:x", "alias": "parent_x"}, "app.tools:y"], traits=["app:t1"],
              memory=["m1", "shared"], context={"k": "base", "b": 1}, delegates=[{"id": "app:d", "name": "ask"}]),
        agent("a", prompt="Child rules.", model=None, max_tokens=900, inherit=["app:base"],
              tools=[{"id": "app.tools:x", "alias": "child_x"}], traits=["app:t2"], memory=["shared", "m2"],
              context={"k": "child"}, delegates=[{"id": "app:d2", "name": "ask", "rule": "child"}]),
        tool("app.tools:x"), tool("app.tools:y"),
        trait("app:t1", prompt="T1."), trait("app:t2", prompt="T2."),
    )
    assert got.prompt == "Base rules.\n\nChild rules.\n\nT1.\n\nT2."
    assert (got.model, got.max_tokens, got.temperature) == ("base-model", 900, 0.5)
    assert sorted(tools_of(got)) == ["ask", "child_x", "y"]
    assert got.delegates == {"ask": "app:d2"}
    assert got.memory == ("m1", "shared", "m2")
    assert got.context == {"k": "child", "b": 1}


def test_inherit_by_name_and_a_diamond_takes_each_ancestor_once() -> None:
    got = build(agent("root", prompt="R", memory=["r"]),
                agent("left", prompt="L", inherit=["app:root"]),
                agent("right", meta_name="Right one", prompt="Rt", inherit=["app:root"]),
                agent("a", prompt="A", inherit=["app:left", "Right one"]))
    assert got.prompt == "R\n\nL\n\nRt\n\nA"
    assert got.memory == ("r",)


@pytest.mark.parametrize(("entries", "field", "cycle"), [
    ((agent("a", inherit=["app:a"]),), "inherit[1]", "app:a -> app:a"),
    ((agent("a", inherit=["app:b"]), agent("b", inherit=["app:c"]), agent("c", inherit=["app:a"])),
     "inherit[1] (in app:c)", "app:a -> app:b -> app:c -> app:a"),
    ((agent("a", inherit=["app:b"]), agent("b", inherit=["app:c"]), agent("c", inherit=["app:b"])),
     "inherit[1] (in app:c)", "app:b -> app:c -> app:b"),
])
def test_inherit_cycles_are_refused(entries: tuple[Entry, ...], field: str, cycle: str) -> None:
    err = fails(*entries)
    assert (err.entry, err.field, err.reason) == ("app:a", field, f"inherit cycle: {cycle}")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 5), max_size=3), min_size=6, max_size=6))
def test_inherit_graphs_either_compile_or_name_a_cycle(edges: list[list[int]]) -> None:
    entries = [agent(f"n{i}", prompt=f"P{i}", memory=[f"m{i}"], inherit=[f"app:n{j}" for j in parents])
               for i, parents in enumerate(edges)]

    def reachable_cycle(start: int) -> bool:
        def visit(node: int, path: tuple[int, ...]) -> bool:
            return any(p in path or visit(p, (*path, p)) for p in edges[node])
        return visit(start, (start,))

    def ancestors(node: int, seen: list[int]) -> list[int]:
        for p in edges[node]:
            if p not in seen:
                ancestors(p, seen)
                if p not in seen:
                    seen.append(p)
        return seen

    if reachable_cycle(0):
        assert "inherit cycle" in fails(*entries, ref="app:n0").reason
    else:
        got = build(*entries, ref="app:n0")
        order = [*ancestors(0, []), 0]
        assert got.prompt == "\n\n".join(f"P{i}" for i in order)
        assert got.memory == tuple(f"m{i}" for i in order)


# -- what the agent context adds ---------------------------------------------------------------------

def test_context_options() -> None:
    entries = (agent("a", prompt="P", context={"k": "agent"}, tools=["app.tools:x"], traits=["app:t"]),
               tool("app.tools:x"), tool("app.tools:y"), trait("app:t", prompt="T"), trait("app:u", prompt="U"))
    got = build(*entries, context={"k": "base", "base": 1}, tools=["app.tools:y"], model="other-model")
    assert got.context == {"k": "agent", "base": 1}
    assert (got.model, sorted(tools_of(got))) == ("other-model", ["x", "y"])
    got = build(*entries, traits_overlay=["app:u"], tools_overlay=[])
    assert (got.prompt, got.tools) == ("P\n\nU", ())


# -- wrong fields ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "field", "reason"), [
    ({"model": None}, "model", "required"),
    ({"model": 3}, "model", "must be a model name"),
    ({"max_tokens": -1}, "max_tokens", "positive whole number"),
    ({"max_tokens": "many"}, "max_tokens", "positive whole number"),
    ({"temperature": 7}, "temperature", "from 0 to 2"),
    ({"thinking_effort": "high"}, "thinking_effort", "from 0 to 100"),
    ({"prompt": ["x"]}, "prompt", "must be text"),
    ({"tools": "app.tools:x"}, "tools", "must be a list"),
    ({"tools": ["search"]}, "tools[1]", "'search' is not a tool id"),
    ({"tools": [{"alias": "x"}]}, "tools[1].id", "nothing is not a tool id"),
    ({"tools": [{"id": "app.tools:x", "context": "no"}]}, "tools[1].context", "table of named values"),
    ({"tools": ["app.tools:missing"]}, "tools[1]", "tool app.tools:missing does not exist"),
    ({"tools": ["app.tools:fn"]}, "tools[1]", "is not a tool: its meta.type is 'function'"),
    ({"tools": ["app:a"]}, "tools[1]", "app:a is a registry.entry, not a function entry"),
    ({"tools": ["app.tools:badjson"]}, "tools[1]", "tool app.tools:badjson: meta.input_schema is not valid JSON"),
    ({"tools": ["app.tools:list"]}, "tools[1]", "meta.input_schema must be a JSON Schema object"),
    ({"tools": [{"id": "app.tools:x", "alias": "no spaces"}]}, "tools[1].alias", "must be 1-64 letters"),
    ({"traits": ["nope"]}, "traits[1]", "no trait 'nope'"),
    ({"traits": ["app.tools:x"]}, "traits[1]", "app.tools:x is not a trait"),
    ({"traits": [{"context": {}}]}, "traits[1].id", "needs an id"),
    ({"traits": ["app:badtrait"]}, "traits[1]", "trait app:badtrait: build_func_id must be a function id"),
    ({"traits": [{"id": "time_aware", "context": {"timezone": "Mars/Base"}}]}, "traits[1].context.timezone",
     "unknown time zone 'Mars/Base'"),
    ({"memory": ["ok", 3]}, "memory[2]", "non-empty text"),
    ({"context": ["x"]}, "context", "table of named values"),
    ({"inherit": ["app:ghost"]}, "inherit[1]", "no agent 'app:ghost' to inherit from"),
    ({"memory_contract": "x"}, "memory_contract", "must be a table"),
])
def test_wrong_fields_name_the_agent_and_the_field(data: dict[str, Any], field: str, reason: str) -> None:
    entries = (agent("a", **data), tool("app.tools:x"), tool("app.tools:badjson", input_schema="{nope"),
               tool("app.tools:list", input_schema="[1, 2]"),
               Entry("app.tools:fn", "function.lua", {"type": "function"}, {}),
               trait("app:badtrait", build_func_id="nocolon"))
    err = fails(*entries)
    assert err.entry == "app:a" and err.field == field and reason in err.reason, (err.field, err.reason)
    assert str(err).startswith(f"entry app:a: field {field}: ")


def test_a_wrong_parent_is_named_as_the_entry() -> None:
    err = fails(agent("base", max_tokens=0), agent("a", inherit=["app:base"]))
    assert (err.entry, err.field) == ("app:base", "max_tokens")


# -- an app on a node --------------------------------------------------------------------------------

APP_INDEX = LLM_APP_HEAD + """\
  - name: processes
    kind: process.host
  - name: dep.agent
    kind: ns.dependency
    component: wippy/agent
    version: "*"
    parameters:
      - name: process_host
        value: app:processes
""" + WEATHER_TOOL + ASSISTANT_AND_ASK


ASK = """\
local agent_context = require("agent_context")
local prompt = require("prompt")

local function main(question: string): any
    local runner, err = agent_context.new():load_agent("assistant")
    if not runner then error(err) end
    local response, run_err = runner:run(prompt.new():add_user(question))
    if not response then error(run_err) end
    return { answer = response.result, turns = response.turns }
end

return { main = main }
"""


async def test_an_app_runs_an_agent_with_a_tool_on_a_node(nats_url: str, namespace: str, tmp_path: Path,
                                                          llm_fake: FakeLlm) -> None:
    app = write_app(tmp_path, {"_index.yaml": APP_INDEX, "weather.lua": WEATHER_LUA, "ask.lua": ASK})
    loaded = load_app(app)
    assert {"wippy/llm", "wippy/agent"} <= set(loaded.native_dependencies)
    environ = {"OPENAI_API_KEY": "sk-fake", "OPENAI_BASE_URL": llm_fake.openai_url}
    settings = RuntimeSettings(state_dir=tmp_path / "state", nats_url=nats_url, namespace=namespace, node="n1",
                               environ=environ)
    state = StateDir(settings.state_dir)
    assert state.try_own()
    llm_fake.queue(tool_call("weather", {"city": "Oslo"}), reply("It is sunny in Oslo."))
    try:
        async with Node(settings, state) as node:
            proc = ProcNode(node)
            await proc.apply(*HOSTS, *(le.entry for le in loaded.entries))
            assert await proc.run("app:ask", "Weather in Oslo?") == (
                {"answer": "It is sunny in Oslo.", "turns": 2}, None)
    finally:
        state.release()
    tool_message = llm_fake.last("openai.chat").body["messages"][-1]
    assert tool_message["role"] == "tool" and '"forecast":"sunny in Oslo"' in tool_message["content"]
