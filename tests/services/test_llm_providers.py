"""The LLM providers driven through the real vendor SDKs against the fake vendor server on loopback."""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest

from tests.llm_fake import FakeLlm, Recorded, embedding, llm_fake_fixture, reply, tool_call  # noqa: F401 - fixture
from tests.llm_fake_render import SIGNATURE
from wippy.services._llm_providers import Provider, aclose_all, make_provider
from wippy.services._llm_types import LlmError, LlmRequest

Spec = tuple[str, dict[str, Any], str]  # provider id, driver options, the fake's API name
CHAT: Spec = ("wippy.llm.openai:provider", {}, "openai.chat")
RESPONSES: Spec = ("wippy.llm.openai:provider", {"api": "responses"}, "openai.responses")
COMPAT: Spec = ("wippy.llm.openai_compat:provider", {}, "openai.chat")
CLAUDE: Spec = ("wippy.llm.claude:provider", {}, "anthropic.messages")
GEMINI: Spec = ("wippy.llm.google.generative_ai:provider", {}, "gemini.generate")
VERTEX: Spec = ("wippy.llm.google.vertex:provider", {}, "gemini.generate")
ALL = [CHAT, RESPONSES, COMPAT, CLAUDE, GEMINI, VERTEX]
IDS = ["openai-chat", "openai-responses", "openai-compat", "claude", "gemini", "vertex"]
EMBEDDERS = [CHAT, COMPAT, GEMINI]

WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    await aclose_all()


def make(fake: FakeLlm, spec: Spec, **options: Any) -> Provider:
    provider_id, base, _ = spec
    return make_provider(provider_id, {"max_retries": 0, **base, **options}, fake.env())


def ask(text: str = "hello there", **kw: Any) -> LlmRequest:
    messages = [{"role": "system", "content": [{"type": "text", "text": "be brief"}]},
                {"role": "user", "content": [{"type": "text", "text": text}]}]
    return LlmRequest(model=kw.pop("model", "model-x"), messages=kw.pop("messages", messages), **kw)


def sent(fake: FakeLlm) -> Recorded:
    """The last generation request, whichever vendor API it went to (Gemini's keys all in camelCase)."""
    found = next(r for r in reversed(fake.requests) if not r.api.endswith((".models", ".embeddings", ".embed")))
    return replace(found, body=camel(found.body)) if found.api.startswith("gemini") else found


def camel(value: Any) -> Any:
    """google-genai sends nested fields in snake_case and the rest in camelCase (the API takes both)."""
    if isinstance(value, dict):
        return {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k): camel(v) for k, v in value.items()}
    return [camel(v) for v in value] if isinstance(value, list) else value


@pytest.mark.parametrize("spec", ALL, ids=IDS)
async def test_generate_returns_the_text_usage_and_metadata(llm_fake: FakeLlm, spec: Any) -> None:
    resp = await make(llm_fake, spec).generate(ask("hello there"))
    assert resp.result == "hello there"  # the fake echoes the last user text
    assert resp.finish_reason == "stop" and resp.tool_calls == []
    assert resp.tokens["prompt_tokens"] == 11 and resp.tokens["completion_tokens"] == 7
    assert resp.tokens["total_tokens"] == 18
    assert resp.metadata["provider"] == spec[0] and resp.metadata["latency_ms"] >= 0
    assert resp.metadata["id"]
    assert sent(llm_fake).api.startswith(spec[2].split(".")[0])


@pytest.mark.parametrize("spec", ALL, ids=IDS)
async def test_streaming_sends_thinking_then_chunks_then_tool_calls(llm_fake: FakeLlm, spec: Any) -> None:
    events: list[dict[str, Any]] = []

    async def on_event(event: dict[str, Any]) -> None:
        events.append(event)

    llm_fake.queue(tool_call("get_weather", {"city": "Paris"}, text="Let me check the weather.",
                             thinking="The user wants weather."))
    resp = await make(llm_fake, spec).generate(ask(tools=[WEATHER]), on_event)
    kinds = [e["type"] for e in events]
    assert kinds == sorted(kinds, key=["thinking", "chunk", "tool_call"].index)
    assert "".join(e["content"] for e in events if e["type"] == "chunk") == resp.result == "Let me check the weather."
    assert "".join(e["content"] for e in events if e["type"] == "thinking") == resp.thinking
    assert resp.thinking == "The user wants weather."
    assert [e for e in events if e["type"] == "tool_call"] == [
        {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}]
    assert resp.finish_reason == "tool_call"
    assert resp.tool_calls[0]["arguments"] == {"city": "Paris"}
    assert resp.tokens["total_tokens"] >= 18


def _check_chat(r: Recorded) -> None:
    assert r.body["messages"][2:] == [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]
    assert r.body["tools"][0]["function"]["parameters"] == WEATHER["schema"]
    assert r.body["tool_choice"] == "auto"


def _check_responses(r: Recorded) -> None:
    assert r.body["instructions"] == "be brief"
    assert r.body["input"][1:] == [
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}]
    assert r.body["tools"][0]["parameters"] == WEATHER["schema"]


def _check_claude(r: Recorded) -> None:
    assert r.body["system"] == [{"type": "text", "text": "be brief"}]
    assert r.body["messages"][1:] == [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}]}]
    assert r.body["tools"][0]["input_schema"] == WEATHER["schema"]
    assert r.body["tool_choice"] == {"type": "auto"}


def _check_gemini(r: Recorded) -> None:
    assert r.body["systemInstruction"]["parts"] == [{"text": "be brief"}]
    call, result = r.body["contents"][1:]
    assert call["role"] == "model" and call["parts"][0]["functionCall"] == {
        "id": "call_1", "name": "get_weather", "args": {"city": "Paris"}}
    assert base64.b64decode(call["parts"][0]["thoughtSignature"]) == SIGNATURE
    assert result["parts"] == [{"functionResponse": {"id": "call_1", "name": "get_weather",
                                                     "response": {"result": "sunny"}}}]
    assert r.body["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"] == WEATHER["schema"]


CHECKS: dict[str, Callable[[Recorded], None]] = {
    "openai-chat": _check_chat, "openai-responses": _check_responses, "openai-compat": _check_chat,
    "claude": _check_claude, "gemini": _check_gemini, "vertex": _check_gemini}


@pytest.mark.parametrize(("spec", "name"), list(zip(ALL, IDS, strict=True)), ids=IDS)
async def test_tool_call_round_trip_maps_function_call_and_result(llm_fake: FakeLlm, spec: Any, name: str) -> None:
    provider = make(llm_fake, spec)
    llm_fake.queue(tool_call("get_weather", {"city": "Paris"}))
    first = await provider.generate(ask("weather in Paris?", tools=[WEATHER], tool_choice="auto"))
    call = first.tool_calls[0]
    messages = [*ask("weather in Paris?").messages,
                {"role": "function_call", "content": [], "function_call": {
                    "id": call["id"], "name": call["name"], "arguments": json.dumps(call["arguments"]),
                    **({"provider_metadata": call["provider_metadata"]} if "provider_metadata" in call else {})}},
                {"role": "function_result", "name": "get_weather", "function_call_id": call["id"],
                 "content": [{"type": "text", "text": "sunny"}]}]
    llm_fake.queue(reply("It is sunny in Paris."))
    second = await provider.generate(ask(messages=messages, tools=[WEATHER]))
    assert second.result == "It is sunny in Paris." and second.finish_reason == "stop"
    CHECKS[name](sent(llm_fake))


@pytest.mark.parametrize(("spec", "choice", "expected"), [
    (CHAT, "any", "required"), (CHAT, "get_weather", {"type": "function", "function": {"name": "get_weather"}}),
    (RESPONSES, "get_weather", {"type": "function", "name": "get_weather"}), (CLAUDE, "any", {"type": "any"}),
    (CLAUDE, "get_weather", {"type": "tool", "name": "get_weather"}),
    (GEMINI, "get_weather", {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}),
    (GEMINI, "none", {"functionCallingConfig": {"mode": "NONE"}}),
])
async def test_tool_choice_is_mapped(llm_fake: FakeLlm, spec: Any, choice: str, expected: Any) -> None:
    await make(llm_fake, spec).generate(ask(tools=[WEATHER], tool_choice=choice))
    body = sent(llm_fake).body
    assert (body["toolConfig"] if spec is GEMINI else body["tool_choice"]) == expected


@pytest.mark.parametrize("spec", ALL, ids=IDS)
async def test_tool_choice_naming_an_unknown_tool_is_a_clear_error(llm_fake: FakeLlm, spec: Any) -> None:
    with pytest.raises(LlmError, match=r"'nope'.*get_weather") as caught:
        await make(llm_fake, spec).generate(ask(tools=[WEATHER], tool_choice="nope"))
    assert caught.value.error_type == "invalid_request"
    assert not llm_fake.requests


async def test_thinking_effort_becomes_reasoning_effort_and_drops_sampling_for_openai(
        llm_fake: FakeLlm, caplog: pytest.LogCaptureFixture) -> None:
    await make(llm_fake, CHAT).generate(ask(model="o-think", thinking_effort=80, temperature=0.2, max_tokens=99))
    body = sent(llm_fake).body
    assert body["reasoning_effort"] == "high" and "temperature" not in body
    assert body["max_completion_tokens"] == 99
    assert "take no temperature" in caplog.text
    await make(llm_fake, RESPONSES).generate(ask(thinking_effort=10))
    assert sent(llm_fake).body["reasoning"] == {"effort": "low", "summary": "auto"}
    await make(llm_fake, COMPAT).generate(ask(thinking_effort=50, temperature=0.3, top_k=5, max_tokens=7))
    body = sent(llm_fake).body
    assert body["reasoning_effort"] == "medium" and body["temperature"] == 0.3
    assert body["top_k"] == 5 and body["max_tokens"] == 7


async def test_thinking_effort_becomes_a_thinking_budget_for_claude_and_gemini(llm_fake: FakeLlm) -> None:
    llm_fake.queue(reply("42", thinking="6 times 7"))
    resp = await make(llm_fake, CLAUDE).generate(ask(thinking_effort=50, max_tokens=1000))
    body = sent(llm_fake).body
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 12512}
    assert body["max_tokens"] > 12512
    assert resp.thinking == "6 times 7"
    assert resp.metadata["thinking_blocks"] == [{"type": "thinking", "thinking": "6 times 7",
                                                 "signature": "fake-signature"}]
    await make(llm_fake, GEMINI).generate(ask(thinking_effort=100))
    assert sent(llm_fake).body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 24576,
                                                                         "includeThoughts": True}
    await make(llm_fake, GEMINI).generate(ask(thinking_effort=0))
    assert sent(llm_fake).body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0,
                                                                         "includeThoughts": False}


async def test_claude_thinking_blocks_go_back_with_the_assistant_turn(llm_fake: FakeLlm) -> None:
    blocks = [{"type": "thinking", "thinking": "hmm", "signature": "sig"}]
    messages = [{"role": "user", "content": "q"},
                {"role": "function_call", "function_call": {"id": "toolu 1", "name": "f", "arguments": "{}"},
                 "metadata": {"thinking_blocks": blocks}},
                {"role": "function_result", "name": "f", "function_call_id": "toolu 1", "content": "done"},
                {"role": "developer", "content": "answer in one word"}]
    await make(llm_fake, CLAUDE).generate(ask(messages=messages))
    turns = sent(llm_fake).body["messages"]
    assert turns[1]["content"] == [*blocks, {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]
    assert turns[2]["content"] == [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "done"},
                                   {"type": "text", "text": "answer in one word"}]


async def test_claude_drops_sampling_parameters_with_one_warning(llm_fake: FakeLlm,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="wippy.llm")
    provider = make(llm_fake, CLAUDE)
    for _ in range(3):
        await provider.generate(ask(model="claude-warn-once", temperature=0.5, top_p=0.9))
    assert "temperature" not in sent(llm_fake).body and "top_p" not in sent(llm_fake).body
    warnings = [r for r in caplog.records if "takes no temperature/top_p" in r.getMessage()]
    assert len(warnings) == 1 and "claude-warn-once" in warnings[0].getMessage()


async def test_claude_cache_markers_become_cache_control(llm_fake: FakeLlm) -> None:
    messages = [{"role": "system", "content": "long instructions"}, {"role": "cache_marker", "marker_id": "sys"},
                {"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "second"}, {"role": "cache_marker"}, {"role": "user", "content": "third"}]
    await make(llm_fake, CLAUDE).generate(ask(messages=messages))
    body = sent(llm_fake).body
    assert body["system"] == [{"type": "text", "text": "long instructions", "cache_control": {"type": "ephemeral"}}]
    assert body["messages"][2]["content"] == [
        {"type": "text", "text": "second", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "third"}]
    await make(llm_fake, CHAT).generate(ask(messages=messages))
    assert [m["role"] for m in sent(llm_fake).body["messages"]] == ["system", "user", "assistant", "user", "user"]


@pytest.mark.parametrize(("spec", "name"), list(zip(ALL, IDS, strict=True)), ids=IDS)
async def test_images_by_url_and_base64(llm_fake: FakeLlm, spec: Any, name: str) -> None:
    png = base64.b64encode(b"\x89PNG fake").decode()
    content = [{"type": "text", "text": "what is this?"},
               {"type": "image", "source": {"type": "url", "url": "https://example.test/cat.jpg",
                                            "mime_type": "image/jpeg"}},
               {"type": "image", "source": {"type": "base64", "mime_type": "image/png", "data": png}}]
    await make(llm_fake, spec).generate(ask(messages=[{"role": "user", "content": content}]))
    body = sent(llm_fake).body
    if name in ("openai-chat", "openai-compat"):
        parts = body["messages"][0]["content"]
        assert [p["image_url"]["url"] for p in parts[1:]] == ["https://example.test/cat.jpg",
                                                              f"data:image/png;base64,{png}"]
    elif name == "openai-responses":
        parts = body["input"][0]["content"]
        assert parts[2]["image_url"] == f"data:image/png;base64,{png}" and parts[0]["type"] == "input_text"
    elif name == "claude":
        parts = body["messages"][0]["content"]
        assert parts[1]["source"] == {"type": "url", "url": "https://example.test/cat.jpg"}
        assert parts[2]["source"] == {"type": "base64", "media_type": "image/png", "data": png}
    else:
        parts = body["contents"][0]["parts"]
        assert parts[1]["fileData"] == {"fileUri": "https://example.test/cat.jpg", "mimeType": "image/jpeg"}
        assert parts[2]["inlineData"] == {"data": png, "mimeType": "image/png"}


OUTPUT_SCHEMA = {"type": "object", "properties": {
    "name": {"type": "string"},
    "age": {"type": "integer"},
    "tags": {"type": "array", "items": {"type": "object", "properties": {"label": {"type": "string"}}}},
}, "required": ["name"]}


@pytest.mark.parametrize("spec", ALL, ids=IDS)
async def test_structured_output_uses_the_native_json_schema_mode(llm_fake: FakeLlm, spec: Any) -> None:
    llm_fake.queue(reply('{"name": "Ada", "age": null, "tags": [{"label": null}]}'))
    value, resp = await make(llm_fake, spec).structured(ask(), OUTPUT_SCHEMA, name="person")
    body = sent(llm_fake).body
    if spec[2].startswith("openai"):
        fmt = body["text"]["format"] if spec is RESPONSES else body["response_format"]["json_schema"]
        schema = fmt["schema"]
        assert fmt["strict"] is True and fmt["name"] == "person"
        assert schema["required"] == ["name", "age", "tags"] and schema["additionalProperties"] is False
        assert schema["properties"]["age"]["type"] == ["integer", "null"]
        item = schema["properties"]["tags"]["items"]
        assert item["required"] == ["label"] and item["additionalProperties"] is False
        assert value == {"name": "Ada", "tags": [{}]}  # the nulls strict mode forced on optional fields are gone
    elif spec is CLAUDE:
        assert body["output_config"]["format"]["type"] == "json_schema"
        assert body["output_config"]["format"]["schema"]["additionalProperties"] is False
        assert value["name"] == "Ada"
    else:
        assert body["generationConfig"]["responseMimeType"] == "application/json"
        assert body["generationConfig"]["responseJsonSchema"] == OUTPUT_SCHEMA
        assert value["name"] == "Ada"
    assert resp.result.startswith("{")


async def test_structured_output_that_is_not_json_is_a_model_error(llm_fake: FakeLlm) -> None:
    llm_fake.queue(reply("sorry, no"))
    with pytest.raises(LlmError, match="not valid JSON") as caught:
        await make(llm_fake, CHAT).structured(ask(), OUTPUT_SCHEMA)
    assert caught.value.error_type == "model_error"


@pytest.mark.parametrize("spec", EMBEDDERS, ids=["openai", "compat", "gemini"])
async def test_embeddings_are_the_vectors_the_server_sent(llm_fake: FakeLlm, spec: Any) -> None:
    vectors, used = await make(llm_fake, spec).embed(["alpha", "beta gamma"], "embed-x", dimensions=16)
    assert len(vectors) == 2
    assert vectors[0] == pytest.approx(embedding("alpha", 16))
    assert vectors[1] == pytest.approx(embedding("beta gamma", 16))
    assert used["total_tokens"] == used["prompt_tokens"]


async def test_vertex_embeddings_and_claude_has_none(llm_fake: FakeLlm) -> None:
    vectors, used = await make(llm_fake, VERTEX).embed(["one two"], "text-embedding-x", dimensions=4)
    assert vectors[0] == pytest.approx(embedding("one two", 4)) and used["prompt_tokens"] == 2
    with pytest.raises(LlmError, match="no embeddings API") as caught:
        await make(llm_fake, CLAUDE).embed(["x"], "m")
    assert caught.value.error_type == "invalid_request"
