"""The node's LLM service: model resolution, option merging, env lookup, and calls through the real
SDKs to the fake vendor server on loopback; then ``wippy.llm:llm`` in processes of a real node,
streaming to a process included."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.llm_fake import FakeLlm, error, llm_fake_fixture, reply, tool_call  # noqa: F401 - fixture
from tests.lua_stdlib.helpers import Entries
from wippy.core import Changeset, Entry, Op
from wippy.services import EnvService, Node, RuntimeSettings, StateDir
from wippy.services._llm import LlmService, env_chain
from wippy.services._llm_providers import aclose_all
from wippy.services._llm_types import LlmError

from .conftest import HOSTS, lua

OPENAI = "wippy.llm.openai:provider"


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    await aclose_all()  # SDK clients are shared per process and bound to this test's event loop


def model(name: str, *, cls: tuple[str, ...] = (), priority: int = 0, caps: tuple[str, ...] = ("generate",),
          provider: str = OPENAI, provider_model: str | None = None, options: dict[str, Any] | None = None,
          **data: Any) -> Entry:
    ref: dict[str, Any] = {"id": provider, "provider_model": provider_model or f"{name}-v1"}
    if options:
        ref["options"] = options
    return Entry(f"app.models:{name}", "registry.entry",
                 {"type": "llm.model", "name": name, "title": name.title(), "class": list(cls),
                  "capabilities": list(caps), "priority": priority}, {"providers": [ref], **data})


MODELS = (
    model("mini", cls=("fast", "chat"), priority=100, provider_model="gpt-mini",
          options={"temperature": 0.7, "max_tokens": 256}, pricing={"input": 2, "output": 8, "cached_input": 1}),
    model("big", cls=("smart", "chat"), priority=200),
    model("quick", cls=("fast",), priority=50),
    model("chat", cls=("other",)),  # a model named like a class: the name wins
    model("embedder", cls=("embedding",), caps=("embed",), dimensions=16, pricing={"input": 0.5}),
    Entry("app.models:fast_class", "registry.entry", {"type": "llm.model.class", "name": "fast", "title": "Fast",
                                                      "comment": "quick ones"}),
)


def service(fake: FakeLlm, *entries: Entry, **kw: Any) -> LlmService:
    return LlmService(Entries(*MODELS, *entries), fake.env(), **kw)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": text}]}]


# -- resolution --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "expected"), [
    ("mini", "mini"), ("fast", "mini"), ("class:fast", "mini"), ("chat", "chat"), ("class:chat", "big"),
    ("smart", "big"), ("class:embedding", "embedder"),
])
def test_models_resolve_by_name_class_and_class_prefix(llm_fake: FakeLlm, name: str, expected: str) -> None:
    assert service(llm_fake).catalog.resolve(name)["name"] == expected


@given(st.lists(st.integers(min_value=-3, max_value=3), min_size=1, max_size=6))
def test_a_class_resolves_to_its_highest_priority_model(priorities: list[int]) -> None:
    entries = [model(f"m{i}", cls=("c",), priority=p) for i, p in enumerate(priorities)]
    best = max(range(len(priorities)), key=lambda i: (priorities[i], -i))  # ties: the smaller name
    catalog = LlmService(Entries(*entries), {}.get).catalog
    assert catalog.resolve("class:c")["name"] == catalog.resolve("c")["name"] == f"m{best}"


def test_unknown_models_and_classes_give_wippys_messages(llm_fake: FakeLlm) -> None:
    catalog = service(llm_fake).catalog
    with pytest.raises(LlmError, match=r"^Model or class not found: nope$") as caught:
        catalog.resolve("nope")
    assert caught.value.error_type == "model_error"
    with pytest.raises(LlmError, match=r"^No models found for class: chatty$"):
        catalog.resolve("class:chatty")


def test_available_models_cards_and_classes(llm_fake: FakeLlm) -> None:
    svc = service(llm_fake)
    assert [c["name"] for c in svc.available_models()] == ["big", "chat", "embedder", "mini", "quick"]
    assert [c["name"] for c in svc.available_models("embed")] == ["embedder"]
    mini = svc.available_models()[3]
    assert mini == {"id": "app.models:mini", "name": "mini", "title": "Mini", "description": "",
                    "capabilities": ["generate"], "class": ["fast", "chat"], "priority": 100, "max_tokens": 0,
                    "output_tokens": 0, "pricing": {"input": 2, "output": 8, "cached_input": 1},
                    "providers": [{"id": OPENAI, "provider_model": "gpt-mini",
                                   "options": {"temperature": 0.7, "max_tokens": 256}}]}
    assert svc.available_models("embed")[0]["dimensions"] == 16
    assert svc.get_classes() == [{"id": "app.models:fast_class", "name": "fast", "title": "Fast",
                                  "description": "quick ones"}]


# -- calls -----------------------------------------------------------------------------------------------

async def test_generate_merges_model_options_under_the_calls(llm_fake: FakeLlm) -> None:
    resp = await service(llm_fake).generate(user("hello"), {"model": "fast", "temperature": 0.2, "seed": 7})
    body = llm_fake.last("openai.chat").body
    assert body["model"] == "gpt-mini" and body["temperature"] == 0.2 and body["max_completion_tokens"] == 256
    assert body["seed"] == 7  # a provider option, passed through
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    assert resp["result"] == "hello" and resp["finish_reason"] == "stop" and resp["tool_calls"] == []
    assert resp["tokens"] == {"prompt_tokens": 11, "completion_tokens": 7, "thinking_tokens": 0, "total_tokens": 18,
                              "cache_read_tokens": 0, "cache_write_tokens": 0, "cache_read_input_tokens": 0,
                              "cache_creation_input_tokens": 0}
    assert resp["metadata"]["provider"] == OPENAI
    assert resp["metadata"]["cost"] == pytest.approx({"input": 11 * 2 / 1e6, "cached_input": 0.0,
                                                      "output": 7 * 8 / 1e6, "total": (22 + 56) / 1e6})
    assert "usage_record" not in resp  # no usage recorder: none, as in Wippy without wippy/usage


async def test_cost_bills_cache_reads_at_the_cached_rate(llm_fake: FakeLlm) -> None:
    llm_fake.queue(reply("ok", prompt_tokens=1000, completion_tokens=10, cache_read_tokens=600))
    resp = await service(llm_fake).generate(user("hi"), {"model": "mini"})
    assert resp["tokens"]["cache_read_tokens"] == 600
    assert resp["metadata"]["cost"] == pytest.approx({"input": 400 * 2 / 1e6, "cached_input": 600 / 1e6,
                                                      "output": 80 / 1e6, "total": 1480 / 1e6})


async def test_provider_id_skips_resolution(llm_fake: FakeLlm) -> None:
    resp = await service(llm_fake).generate(user("direct"), {"model": "raw-model", "provider_id": OPENAI})
    assert llm_fake.last("openai.chat").body["model"] == "raw-model"
    assert resp["result"] == "direct" and "cost" not in resp["metadata"]


async def test_an_app_provider_entry_configures_its_driver(llm_fake: FakeLlm) -> None:
    local = Entry("app:local", "registry.entry", {"type": "llm.provider", "name": "local"},
                  {"driver": {"id": "wippy.llm.openai:driver",
                              "options": {"base_url": llm_fake.openai_url, "api_key_env": "LOCAL_KEY"}}})
    svc = LlmService(Entries(local, model("llama", provider="app:local")), {"LOCAL_KEY": "lk"}.get)
    resp = await svc.generate(user("via local"), {"model": "llama"})
    sent = llm_fake.last("openai.chat")
    assert resp["result"] == "via local" and sent.body["model"] == "llama-v1"
    assert sent.headers["authorization"] == "Bearer lk"


async def test_tools_and_tool_calls(llm_fake: FakeLlm) -> None:
    llm_fake.queue(tool_call("get_weather", {"city": "Oslo"}, call_id="c9"))
    tools = [{"name": "get_weather", "description": "weather", "schema": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]
    resp = await service(llm_fake).generate(user("weather?"), {"model": "big", "tools": tools, "tool_choice": "auto"})
    assert resp["finish_reason"] == "tool_call"
    assert resp["tool_calls"] == [{"id": "c9", "name": "get_weather", "arguments": {"city": "Oslo"}}]
    assert llm_fake.last("openai.chat").body["tools"][0]["function"]["name"] == "get_weather"


async def test_structured_output_returns_the_decoded_value(llm_fake: FakeLlm) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    llm_fake.queue(reply(json.dumps({"name": "Ada", "age": 36})))
    resp = await service(llm_fake).structured_output(schema, user("who?"), {"model": "mini"})
    assert resp["result"] == {"name": "Ada", "age": 36} and resp["finish_reason"] == "stop"
    fmt = llm_fake.last("openai.chat").body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"].startswith("schema_")
    with pytest.raises(LlmError, match=r"^Schema is required$"):
        await service(llm_fake).structured_output({}, user("who?"), {"model": "mini"})


async def test_embed_one_text_or_many(llm_fake: FakeLlm) -> None:
    svc = service(llm_fake)
    one = await svc.embed("a fox", {"model": "embedder"})
    assert len(one["result"]) == 16 and isinstance(one["result"][0], float)  # the card's dimensions
    assert llm_fake.last("openai.embeddings").body["dimensions"] == 16
    many = await svc.embed(["a fox", "a dog"], {"model": "embedder", "dimensions": 4})
    assert [len(v) for v in many["result"]] == [4, 4] and many["tokens"] == {"prompt_tokens": 4, "total_tokens": 4}
    assert many["metadata"]["cost"]["total"] == pytest.approx(4 * 0.5 / 1e6)
    with pytest.raises(LlmError, match="Input is required"):
        await svc.embed([], {"model": "embedder"})


async def test_status_reports_the_provider(llm_fake: FakeLlm) -> None:
    status = await service(llm_fake).status({"model": "mini"})
    assert status["success"] is True and status["status"] == "healthy"


async def test_usage_recorder_gets_every_call(llm_fake: FakeLlm) -> None:
    records: list[dict[str, Any]] = []

    async def record(r: dict[str, Any]) -> None:
        records.append(r)

    resp = await service(llm_fake, recorder=record).generate(user("count me"), {"model": "mini"})
    assert resp["usage_record"] == {"usage_id": records[0]["usage_id"]}
    assert records[0]["model"] == "mini" and records[0]["provider_model"] == "gpt-mini"
    assert records[0]["operation"] == "generate" and records[0]["tokens"]["total_tokens"] == 18
    assert records[0]["cost"]["total"] > 0 and records[0]["latency_ms"] >= 0


@pytest.mark.parametrize(("opts", "message"), [
    ({}, "^Model is required in options$"),
    ({"model": "lonely"}, "^Model has no configured providers: lonely$"),
    ({"model": "x", "provider_id": "app:not_provider"}, "^Failed to open provider: Entry is not a provider: "
                                                        "app:not_provider$"),
    ({"model": "x", "provider_id": "acme:provider"}, "^Failed to open provider: unknown LLM provider"),
    ({"model": "mini", "temperature": "hot"}, "^option temperature must be a number"),
    ({"model": "mini", "tools": [{"description": "no name"}]}, r"^tools\[1\] needs a name"),
])
async def test_bad_calls_give_clear_strings(llm_fake: FakeLlm, opts: dict[str, Any], message: str) -> None:
    extra = (Entry("app.models:lonely", "registry.entry", {"type": "llm.model", "name": "lonely"}, {}),
             Entry("app:not_provider", "registry.entry", {"type": "something"}, {}))
    with pytest.raises(LlmError, match=message):
        await service(llm_fake, *extra).generate(user("x"), opts)
    assert not llm_fake.requests


async def test_vendor_errors_keep_their_error_type(llm_fake: FakeLlm) -> None:
    llm_fake.queue(*[error(429, "slow down")] * 3)
    with pytest.raises(LlmError, match="slow down") as caught:
        await service(llm_fake).generate(user("x"), {"model": "big", "max_retries": 0})
    assert caught.value.error_type == "rate_limit_exceeded" and caught.value.retryable


# -- env --------------------------------------------------------------------------------------------------

def test_env_lookup_reads_variables_then_the_os_environment() -> None:
    reg = Entries(Entry("app:static", "env.storage.static", {}, {"values": {"OPENAI_API_KEY": "from-file"}}),
                  Entry("app:mem", "env.storage.memory", {}, {}),
                  Entry("app:key", "env.variable", {}, {"storage": "app:static", "variable": "OPENAI_API_KEY"}),
                  Entry("app:unset", "env.variable", {}, {"storage": "app:mem", "variable": "ANTHROPIC_API_KEY"}),
                  Entry("app:broken", "env.variable", {}, {"storage": "app:missing", "variable": "BROKEN"}))
    environ = {"OPENAI_API_KEY": "from-shell", "ANTHROPIC_API_KEY": "shell-anthropic", "OPENAI_BASE_URL": "u",
               "BROKEN": "shell-broken"}
    lookup = env_chain(EnvService(reg, environ=environ), environ)
    assert lookup("OPENAI_API_KEY") == "from-file"  # the app's variable first
    assert lookup("app:key") == "from-file"  # entry ids too (provider options name them)
    assert lookup("ANTHROPIC_API_KEY") == "shell-anthropic"  # declared but unset: the shell's
    assert lookup("OPENAI_BASE_URL") == "u"  # no variable: the shell's
    assert lookup("BROKEN") == "shell-broken"  # a broken storage does not hide the shell's value
    assert lookup("NOWHERE") is None
    assert env_chain(None, {})("OPENAI_API_KEY") is None


# -- in Lua processes on a real node ------------------------------------------------------------------------

@pytest.fixture
async def llm_node(nats_url: str, namespace: str, tmp_path: Path, llm_fake: FakeLlm) -> AsyncIterator[Node]:
    """A node whose OS environment points OpenAI at the fake, with the hosts and MODELS applied."""
    settings = RuntimeSettings(state_dir=tmp_path / "state", nats_url=nats_url, namespace=namespace, node="n1",
                               environ={"OPENAI_API_KEY": "sk-shell", "OPENAI_BASE_URL": llm_fake.openai_url})
    state = StateDir(settings.state_dir)
    assert state.try_own()
    try:
        async with Node(settings, state) as node:
            await node.registry.apply(Changeset(ops=tuple(Op("create", e.id, e) for e in (*HOSTS, *MODELS))))
            yield node
    finally:
        state.release()


LLM = {"llm": "wippy.llm:llm", "prompt": "wippy.llm:prompt"}


async def run_lua(node: Node, body: str, *args: Any) -> Any:
    source = 'local llm = require("llm")\nlocal prompt = require("prompt")\nreturn { main = function(...)\n' + \
        body + "\nend }\n"
    entry = lua("app:llm_proc", source, imports=LLM, modules=["json"])
    await node.registry.apply(Changeset(ops=(Op("update" if node.registry.get(entry.id) else "create", entry.id,
                                                entry),)))
    assert node.processes is not None
    pid = node.processes.spawn(None, entry.id, "app:procs", {}, list(args))
    value, err = await asyncio.wait_for(node.processes.wait(pid), 30)
    assert err is None, err
    return value


async def test_lua_generate_with_a_string_a_builder_and_messages(llm_node: Node, llm_fake: FakeLlm) -> None:
    got = await run_lua(llm_node, """
        local a, aerr = llm.generate("plain text", { model = "fast" })
        local b = llm.generate(prompt.new():add_system("sys"):add_user("built"), { model = "class:chat" })
        local c = llm.generate({ messages = { { role = "user", content = { prompt.text("wrapped") } } } },
                               { model = "mini" })
        local d = llm.generate({ { role = "user", content = { prompt.text("array") } } }, { model = "mini" })
        local _, e1 = llm.generate("x", {})
        local _, e2 = llm.generate(42, { model = "mini" })
        local _, e3 = llm.generate("x", { model = "nope" })
        local _, e4 = llm.generate("x", { model = "mini", stream = { reply_to = "not a pid" } })
        return { a = a.result, aerr = aerr, tokens = a.tokens.total_tokens, fr = a.finish_reason,
                 calls = #a.tool_calls, b = b.result, c = c.result, d = d.result, e1 = e1, e2 = e2, e3 = e3,
                 e4 = type(e4), consts = { llm.ERROR_TYPE.RATE_LIMIT, llm.FINISH_REASON.TOOL_CALL,
                 llm.CAPABILITY.EMBED } }
    """)
    assert got["a"] == "plain text" and got.get("aerr") is None and got["tokens"] == 18 and got["fr"] == "stop"
    assert got["calls"] == 0 and got["b"] == "built" and got["c"] == "wrapped" and got["d"] == "array"
    assert got["e1"] == "Model is required in options" and got["e2"] == "Invalid prompt input format"
    assert got["e3"] == "Model or class not found: nope"
    assert got["e4"] == "nil"  # a stream to nowhere drops its events (logged); the call still answers
    assert got["consts"] == ["rate_limit_exceeded", "tool_call", "embed"]
    big = next(r for r in llm_fake.requests if r.api == "openai.chat" and r.body["model"] == "big-v1")
    assert [m["role"] for m in big.body["messages"]] == ["system", "user"]


async def test_lua_tools_structured_embed_and_discovery(llm_node: Node, llm_fake: FakeLlm) -> None:
    llm_fake.queue(tool_call("lookup", {"q": "lua"}, call_id="t1"), reply("found it"),
                   reply('{"ok": true, "tags": []}'))
    got = await run_lua(llm_node, """
        local tools = { { name = "lookup", description = "find things",
                          schema = { type = "object", properties = { q = { type = "string" } }, required = { "q" } } } }
        local conv = prompt.new():add_user("find lua")
        local first = llm.generate(conv, { model = "mini", tools = tools })
        local tc = first.tool_calls[1]
        conv:add_function_call(tc.name, tc.arguments, tc.id):add_function_result(tc.name, "Lua is a language", tc.id)
        local second = llm.generate(conv, { model = "mini", tools = tools })
        local so, so_err = llm.structured_output({ type = "object", properties = { ok = { type = "boolean" },
            tags = { type = "array", items = { type = "string" } } }, required = { "ok", "tags" },
            additionalProperties = false }, "judge", { model = "mini" })
        local one = llm.embed("text", { model = "embedder" })
        local many = llm.embed({ "a", "b" }, { model = "embedder", dimensions = 3 })
        local models = llm.available_models(llm.CAPABILITY.EMBED)
        local status = llm.status({ model = "mini" })
        return { tc = tc, fr = first.finish_reason, second = second.result, so = so.result.ok, so_err = so_err,
                 one = #one.result, many = { #many.result, #many.result[1] }, models = #models,
                 model = models[1].name, classes = llm.get_classes()[1].name, status = status.status }
    """)
    assert got["tc"] == {"id": "t1", "name": "lookup", "arguments": {"q": "lua"}} and got["fr"] == "tool_call"
    assert got["second"] == "found it" and got["so"] is True and got.get("so_err") is None
    assert got["one"] == 16 and got["many"] == [2, 3] and got["models"] == 1 and got["model"] == "embedder"
    assert got["classes"] == "fast" and got["status"] == "healthy"
    chat = [r for r in llm_fake.requests if r.api == "openai.chat"]
    assert [m["role"] for m in chat[1].body["messages"]] == ["user", "assistant", "tool"]
    assert sorted(chat[2].body["response_format"]["json_schema"]["schema"]["required"]) == ["ok", "tags"]
    assert llm_fake.last("openai.chat").headers["authorization"] == "Bearer sk-shell"  # the OS environment's key


STREAM = """
    local topic = "llm_stream"
    local ch = process.listen(topic)
    local resp, err = llm.generate("stream please", { model = "mini", tools = ...,
                                                      stream = { reply_to = process.pid(), topic = topic } })
    local events = {}
    while true do
        local ev = ch:receive()
        table.insert(events, ev)
        if ev.type == "done" or ev.type == "error" then break end
    end
    return { result = resp and resp.result, err = err, events = events }
"""


async def test_lua_streaming_sends_chunks_thinking_tool_calls_and_done(llm_node: Node, llm_fake: FakeLlm) -> None:
    text = "First sentence. Then a much longer second part without a stop"
    llm_fake.queue(tool_call("lookup", {"q": "x"}, call_id="s1", text=text, thinking="hmm"))
    tools = [{"name": "lookup", "description": "d", "schema": {"type": "object", "properties": {}}}]
    got = await run_lua(llm_node, STREAM, tools)
    events = got["events"]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "thinking" and kinds[-1] == "done" and "tool_call" in kinds
    chunks = [e["content"] for e in events if e["type"] == "chunk"]
    assert "".join(chunks) == text == got["result"]
    assert all(len(c) >= 10 or c.rstrip().endswith((".", "!", "?")) for c in chunks[:-1])  # buffered, not tokens
    assert {"type": "tool_call", "name": "lookup", "arguments": {"q": "x"}, "id": "s1"} in events
    assert events[-1]["meta"]["finish_reason"] == "tool_call" and events[-1]["meta"]["model"] == "mini"
    assert events[-1]["meta"]["usage"]["total_tokens"] == 18


async def test_lua_streaming_reports_errors_to_the_stream_and_the_caller(llm_node: Node, llm_fake: FakeLlm) -> None:
    llm_fake.queue(*[error(401, "bad key")] * 3)
    got = await run_lua(llm_node, STREAM)
    assert got.get("result") is None and "bad key" in got["err"]
    assert got["events"] == [{"type": "error", "error": {"message": got["err"], "type": "authentication_error"}}]
