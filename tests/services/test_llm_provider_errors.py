"""LLM provider failures, configuration, usage and client lifecycle, through the real SDKs and the fake vendor."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.llm_fake import FakeLlm, Reply, error, llm_fake_fixture, reply  # noqa: F401 - fixture
from tests.services.test_llm_providers import ALL, CHAT, CLAUDE, COMPAT, GEMINI, IDS, RESPONSES, VERTEX, ask, make
from wippy.services._llm_providers import aclose_all, make_provider
from wippy.services._llm_types import LlmError
from wippy.services._llm_wire import with_call_ids


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    await aclose_all()


FAILURES = [
    (429, "Rate limit reached, slow down", "rate_limit_exceeded", True),
    (401, "Incorrect API key provided", "authentication_error", False),
    (500, "The server had an error", "server_error", True),
    (503, "Overloaded", "server_error", True),
    (400, "This model's maximum context length is 8192 tokens", "context_length_exceeded", False),
    (400, "temperature must be between 0 and 2", "invalid_request", False),
    (404, "The model does not exist", "model_error", False),
]


@pytest.mark.parametrize("spec", ALL, ids=IDS)
@pytest.mark.parametrize(("status", "message", "error_type", "retryable"), FAILURES,
                         ids=[f"{f[0]}-{f[2]}" for f in FAILURES])
async def test_http_errors_become_llm_errors(llm_fake: FakeLlm, spec: Any, status: int, message: str,
                                             error_type: str, retryable: bool) -> None:
    llm_fake.queue(error(status, message, retry_after=2 if status == 429 else None))
    with pytest.raises(LlmError) as caught:
        await make(llm_fake, spec).generate(ask())
    err = caught.value
    assert (err.error_type, err.retryable, err.status) == (error_type, retryable, status)
    assert message in err.message and f"HTTP {status}" in err.message
    assert err.retry_after == (2.0 if status == 429 else None)
    assert err.to_dict()["type"] == error_type
    assert isinstance(err.__cause__, Exception)  # the SDK's exception, chained


@pytest.mark.parametrize("spec", ALL, ids=IDS)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_a_slow_vendor_is_a_retryable_timeout(llm_fake: FakeLlm, spec: Any, stream: bool) -> None:
    async def ignore(_: dict[str, Any]) -> None:
        return None

    llm_fake.queue(reply("late", delay=30))
    with pytest.raises(LlmError) as caught:
        await make(llm_fake, spec).generate(ask(timeout=0.3), ignore if stream else None)
    assert caught.value.error_type == "timeout_error" and caught.value.retryable


@pytest.mark.parametrize("spec", [CHAT, CLAUDE, GEMINI], ids=["openai", "claude", "gemini"])
async def test_an_unreachable_vendor_is_a_retryable_network_error(spec: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = make_provider(spec[0], {"max_retries": 0, "base_url": f"http://127.0.0.1:{port}/v1"},
                             lambda name: "key" if "KEY" in name else None)
    with pytest.raises(LlmError) as caught:
        await provider.generate(ask(timeout=20))
    assert caught.value.error_type == "network_error" and caught.value.retryable
    status = await provider.status()
    assert status["success"] is False and status["status"] == "unhealthy"


@pytest.mark.parametrize(("spec", "options", "named"), [
    (CHAT, {}, "OPENAI_API_KEY"), (RESPONSES, {"api_key_env": "MY_OPENAI_KEY"}, "MY_OPENAI_KEY"),
    (CLAUDE, {}, "ANTHROPIC_API_KEY"), (GEMINI, {}, "GEMINI_API_KEY or GOOGLE_API_KEY"),
    (VERTEX, {}, "GOOGLE_CREDENTIALS"),
])
async def test_a_missing_key_names_the_environment_variable(llm_fake: FakeLlm, spec: Any, options: dict[str, Any],
                                                            named: str) -> None:
    env = llm_fake.env(OPENAI_API_KEY="", ANTHROPIC_API_KEY="", GEMINI_API_KEY="", GOOGLE_API_KEY="")
    provider = make_provider(spec[0], {"max_retries": 0, **spec[1], **options}, env)
    with pytest.raises(LlmError, match=named) as caught:
        await provider.generate(ask())
    assert caught.value.error_type == "authentication_error" and not caught.value.retryable
    status = await provider.status()
    assert status == {"success": False, "status": "unhealthy", "message": caught.value.message,
                      "error_type": "authentication_error"}
    assert not llm_fake.requests


async def test_options_name_other_variables_or_give_the_base_url(llm_fake: FakeLlm) -> None:
    env = llm_fake.env(TEAM_KEY="sk-team", TEAM_URL=llm_fake.openai_url, OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    provider = make_provider(CHAT[0], {"api_key_env": "TEAM_KEY", "base_url_env": "TEAM_URL"}, env)
    await provider.generate(ask())
    assert llm_fake.last().headers["authorization"] == "Bearer sk-team"
    provider = make_provider(CLAUDE[0], {"base_url": llm_fake.url}, llm_fake.env(ANTHROPIC_BASE_URL=""))
    await provider.generate(ask())
    assert llm_fake.last().headers["authorization"] == "Bearer sk-fake-anthropic"


async def test_openai_compat_needs_a_base_url_but_no_key(llm_fake: FakeLlm) -> None:
    with pytest.raises(LlmError, match="OPENAI_COMPAT_BASE_URL") as caught:
        make_provider(COMPAT[0], {}, lambda _: None)
    assert caught.value.error_type == "invalid_request"
    provider = make_provider(COMPAT[0], {"base_url": llm_fake.openai_url}, lambda _: None)
    assert (await provider.generate(ask("hi"))).result == "hi"
    assert llm_fake.last().headers["authorization"] == "Bearer not-needed"  # never the process's own OpenAI key


async def test_api_key_env_none_sends_no_real_key(llm_fake: FakeLlm) -> None:
    """Wippy's spelling for a local server that wants no key: no variable is read, none is missing."""
    provider = make_provider(CHAT[0], {"api_key_env": "none", "base_url": llm_fake.openai_url},
                             lambda name: "sk-should-not-leak" if name == "OPENAI_API_KEY" else None)
    assert (await provider.generate(ask("hi"))).result == "hi"
    assert llm_fake.last().headers["authorization"] == "Bearer not-needed"


async def test_unknown_provider_and_bad_options_are_invalid_requests() -> None:
    with pytest.raises(LlmError, match=r"'acme:provider'.*wippy\.llm\.openai:provider") as caught:
        make_provider("acme:provider", {}, lambda _: None)
    assert caught.value.error_type == "invalid_request"
    with pytest.raises(LlmError, match="max_retries"):
        make_provider(CHAT[0], {"max_retries": "lots"}, lambda _: "k")


@pytest.mark.parametrize("spec", [CHAT, CLAUDE, GEMINI, VERTEX], ids=["openai", "claude", "gemini", "vertex"])
async def test_status_is_healthy_degraded_or_unhealthy(llm_fake: FakeLlm, spec: Any) -> None:
    provider = make(llm_fake, spec)
    assert (await provider.status())["status"] == "healthy"
    llm_fake.queue(error(429))
    assert (await provider.status())["status"] == "degraded"
    llm_fake.queue(error(401, "bad key"))
    status = await provider.status()
    assert status["status"] == "unhealthy" and "bad key" in status["message"]


@pytest.mark.parametrize("spec", [CHAT, CLAUDE], ids=["openai", "claude"])
async def test_sdk_retries_follow_max_retries(llm_fake: FakeLlm, spec: Any) -> None:
    llm_fake.queue(error(500, headers={"retry-after-ms": "1"}), reply("second try"))
    resp = await make(llm_fake, spec, max_retries=1).generate(ask())
    assert resp.result == "second try" and len(llm_fake.requests) == 2


USAGE = Reply(text="ok", prompt_tokens=100, completion_tokens=50, reasoning_tokens=20, cache_read_tokens=30,
              cache_write_tokens=10)


@pytest.mark.parametrize(("spec", "expected"), [
    (CHAT, {"prompt_tokens": 100, "completion_tokens": 50, "thinking_tokens": 20, "total_tokens": 150,
            "cache_read_tokens": 30, "cache_write_tokens": 10}),
    (RESPONSES, {"prompt_tokens": 100, "completion_tokens": 50, "thinking_tokens": 20, "total_tokens": 150,
                 "cache_read_tokens": 30, "cache_write_tokens": 10}),
    # Anthropic counts cached input apart from input_tokens: prompt_tokens adds it back
    (CLAUDE, {"prompt_tokens": 140, "completion_tokens": 50, "thinking_tokens": 20, "total_tokens": 190,
              "cache_read_tokens": 30, "cache_write_tokens": 10}),
    # Gemini counts thoughts apart from candidates: completion_tokens adds them
    (GEMINI, {"prompt_tokens": 100, "completion_tokens": 70, "thinking_tokens": 20, "total_tokens": 170,
              "cache_read_tokens": 30, "cache_write_tokens": 0}),
], ids=["openai-chat", "openai-responses", "claude", "gemini"])
async def test_usage_is_mapped_to_wippy_tokens(llm_fake: FakeLlm, spec: Any, expected: dict[str, int]) -> None:
    llm_fake.queue(USAGE)
    assert (await make(llm_fake, spec).generate(ask())).tokens == expected


@pytest.mark.parametrize(("finish", "expected"), [("length", "length"), ("filtered", "filtered")])
@pytest.mark.parametrize("spec", ALL, ids=IDS)
async def test_finish_reasons(llm_fake: FakeLlm, spec: Any, finish: str, expected: str) -> None:
    llm_fake.queue(reply("cut", finish=finish))
    assert (await make(llm_fake, spec).generate(ask())).finish_reason == expected


async def test_a_failing_event_sink_is_not_reported_as_a_vendor_error(llm_fake: FakeLlm) -> None:
    async def broken(_: dict[str, Any]) -> None:
        raise RuntimeError("sink broke")

    with pytest.raises(RuntimeError, match="sink broke"):
        await make(llm_fake, CHAT).generate(ask(), broken)


async def test_clients_are_shared_and_closed(llm_fake: FakeLlm) -> None:
    one, two = make(llm_fake, CHAT), make(llm_fake, RESPONSES)
    await one.generate(ask())
    await two.generate(ask())
    assert one.config.client() is two.config.client()  # type: ignore[attr-defined]
    first = one.config.client()  # type: ignore[attr-defined]
    await aclose_all()
    await aclose_all()
    assert first.is_closed()
    assert one.config.client() is not first  # type: ignore[attr-defined]
    assert (await one.generate(ask("again"))).result == "again"


def test_calls_without_ids_are_paired_with_their_results() -> None:
    messages: list[dict[str, Any]] = [{"role": "function_call", "function_call": {"name": "a", "arguments": {}}},
                {"role": "function_call", "function_call": {"name": "b", "arguments": {}}},
                {"role": "function_result", "name": "b", "content": "B"},
                {"role": "function_result", "name": "a", "content": "A"}]
    out = with_call_ids(messages)
    assert [m["function_call"]["id"] for m in out[:2]] == ["call_0", "call_1"]
    assert [m["function_call_id"] for m in out[2:]] == ["call_1", "call_0"]
    assert "id" not in messages[0]["function_call"]  # the input is left alone


async def test_vertex_with_a_service_account_from_google_credentials(llm_fake: FakeLlm) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    account = {"type": "service_account", "project_id": "proj-1", "private_key_id": "k1", "private_key": pem,
               "client_email": "runtime@proj-1.iam.gserviceaccount.com", "client_id": "1",
               "token_uri": f"{llm_fake.url}/token"}
    env = llm_fake.env(GOOGLE_API_KEY="", GOOGLE_CREDENTIALS=json.dumps(account), VERTEX_AI_LOCATION="europe-west4")
    provider = make_provider(VERTEX[0], {"max_retries": 0}, env)
    assert (await provider.generate(ask("hi"))).result == "hi"
    call = llm_fake.last()
    assert "/projects/proj-1/locations/europe-west4/" in call.path
    assert call.headers["authorization"] == "Bearer ya29.fake-token"
    bad = make_provider(VERTEX[0], {"max_retries": 0}, llm_fake.env(GOOGLE_API_KEY="", GOOGLE_CREDENTIALS="{oops"))
    with pytest.raises(LlmError, match="GOOGLE_CREDENTIALS is not a usable service-account JSON"):
        await bad.generate(ask())
