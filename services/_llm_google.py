"""Gemini (Gemini API and Vertex AI) through the ``google-genai`` SDK.

Mapping from Wippy's wire format: system messages become ``system_instruction``; user and
developer messages ``user`` contents (images as inline bytes or file URIs); assistant messages and
``function_call`` messages ``model`` contents with ``function_call`` parts (a Gemini thought
signature that came back in the call's ``provider_metadata`` is sent back with it);
``function_result`` messages ``function_response`` parts (a JSON object result is passed as is,
anything else as ``{"result": ...}``); consecutive contents of one role are merged, so parallel
calls and their results stay together. ``thinking_effort`` becomes ``thinking_config`` with a
budget of 1024-24576 tokens (0 turns thinking off; ``options.thinking_level`` is sent instead
when given) and thought summaries come back as ``thinking``. Structured output uses
``response_json_schema``. Vertex AI authenticates with an API key (express mode) or a
service-account JSON from ``GOOGLE_CREDENTIALS``.
"""

from __future__ import annotations

import base64
import functools
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._llm_types import (
    AUTHENTICATION,
    ERROR,
    FILTERED,
    INVALID_REQUEST,
    LENGTH,
    STOP,
    TIMEOUT,
    TOOL_CALL,
    EventSink,
    LlmError,
    LlmRequest,
    LlmResponse,
    decode_json,
    guarded,
    network_error,
    probe,
    retry_after_of,
    status_error,
    thinking_budget,
    usage,
)
from ._llm_wire import arguments_dict, image_source, parts_of, text_of, with_call_ids

if TYPE_CHECKING:
    from ._llm_providers import ProviderConfig

#: what this module imports (off the event loop, on first use)
SDK = ("google.genai", "google.genai.errors", "httpx2")

_FINISH = {"STOP": STOP, "MAX_TOKENS": LENGTH, "SAFETY": FILTERED, "RECITATION": FILTERED, "BLOCKLIST": FILTERED,
           "PROHIBITED_CONTENT": FILTERED, "SPII": FILTERED, "IMAGE_SAFETY": FILTERED, "LANGUAGE": FILTERED,
           "MALFORMED_FUNCTION_CALL": ERROR, "UNEXPECTED_TOOL_CALL": ERROR}
_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]


def new_client(config: ProviderConfig) -> tuple[Any, Callable[[Any], Awaitable[None]]]:
    import httpx2
    from google import genai
    from google.genai import types

    # An httpx2 transport keeps google-genai on httpx2 like the other SDKs: its aiohttp path subclasses
    # ClientSession, which aiohttp deprecates (a warning per event loop), and trusts proxy env variables.
    http = types.HttpOptions(base_url=config.base_url,
                             retry_options=types.HttpRetryOptions(attempts=config.max_retries + 1),
                             async_client_args={"transport": httpx2.AsyncHTTPTransport()})
    if not config.provider_id.endswith("vertex:provider"):
        client = genai.Client(api_key=config.require_key(), http_options=http)
    elif config.api_key:
        client = genai.Client(vertexai=True, api_key=config.api_key, http_options=http)
    else:
        credentials, project = _service_account(config)
        client = genai.Client(vertexai=True, credentials=credentials, http_options=http, project=project,
                              location=config.options.get("location"))

    async def close(c: Any) -> None:
        c.close()
        await c.aio.aclose()

    return client, close


def _service_account(config: ProviderConfig) -> tuple[Any, str | None]:
    """Vertex credentials and project from the service-account JSON in ``GOOGLE_CREDENTIALS``.

    Never the ambient application-default credentials: what the runtime uses comes from its env.
    """
    raw = config.options.get("credentials_json")
    if not raw:
        raise LlmError(f"Vertex AI needs credentials: set {config.key_env} (an API key, express mode) or "
                       f"GOOGLE_CREDENTIALS (a service-account JSON) and VERTEX_AI_PROJECT",
                       error_type=AUTHENTICATION, provider=config.label)
    from google.oauth2 import service_account

    try:
        info = json.loads(str(raw))
        creds = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=_SCOPES)
    except (ValueError, KeyError) as exc:
        raise LlmError(f"GOOGLE_CREDENTIALS is not a usable service-account JSON: {exc}",
                       error_type=AUTHENTICATION, provider=config.label) from exc
    return creds, config.options.get("project") or info.get("project_id")


def _translator(label: str) -> Callable[[Exception], LlmError | None]:
    import aiohttp
    import httpx2
    from google.genai import errors

    def translate(exc: Exception) -> LlmError | None:
        if isinstance(exc, errors.APIError):
            headers = getattr(exc.response, "headers", None)
            return status_error(label, int(exc.code or 500), str(exc.message or exc.status or exc),
                                retry_after=retry_after_of(headers))
        if isinstance(exc, httpx2.TimeoutException):
            return LlmError(f"{label} timed out: {exc}", error_type=TIMEOUT, provider=label)
        if isinstance(exc, aiohttp.ClientError | httpx2.TransportError):
            return network_error(label, str(exc) or type(exc).__name__)
        if isinstance(exc, ValueError) and type(exc).__module__.startswith("google."):
            return LlmError(f"{label}: {exc}", error_type=INVALID_REQUEST, provider=label)
        return None

    return translate


def map_contents(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """``(system instruction, contents)`` in google-genai's dict shape."""
    system: list[str] = []
    contents: list[dict[str, Any]] = []

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for msg in with_call_ids(messages):
        role = msg.get("role")
        if role == "system":
            text = text_of(msg.get("content"))
            if text:
                system.append(text)
        elif role in ("user", "developer"):
            add("user", _user_parts(msg.get("content")))
        elif role == "assistant":
            text = text_of(msg.get("content"))
            add("model", [{"text": text}] if text else [])
        elif role == "function_call":
            call = msg["function_call"]
            part: dict[str, Any] = {"function_call": {"id": call["id"], "name": call.get("name"),
                                                      "args": arguments_dict(call.get("arguments"))}}
            signature = (call.get("provider_metadata") or {}).get("thought_signature")
            if signature:
                part["thought_signature"] = base64.b64decode(signature)
            add("model", [part])
        elif role == "function_result":
            add("user", [{"function_response": {"id": msg["function_call_id"], "name": msg.get("name") or "",
                                                 "response": _result_object(text_of(msg.get("content")))}}])
    return ("\n\n".join(system) or None), contents


def _result_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {"result": text}
    return value if isinstance(value, dict) else {"result": value}


def _user_parts(content: object) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in parts_of(content):
        source = image_source(part)
        if part.get("type") in ("image", "document") and source:
            how, value, mime = source
            if how == "url":
                out.append({"file_data": {"file_uri": value, "mime_type": mime or "image/jpeg"}})
            else:
                out.append({"inline_data": {"data": base64.b64decode(value), "mime_type": mime}})
        elif part.get("type", "text") == "text" and part.get("text"):
            out.append({"text": str(part["text"])})
    return out


class GoogleProvider:
    """Gemini through google-genai, on the Gemini API or on Vertex AI."""

    def __init__(self, config: ProviderConfig) -> None:
        self.id = config.provider_id
        self.config = config
        self.label = config.label
        self._translator = functools.cache(functools.partial(_translator, self.label))

    def request(self, req: LlmRequest) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """``(contents, config)`` for ``generate_content``."""
        opts = {**self.config.options, **req.options}
        system, contents = map_contents(req.messages)
        config: dict[str, Any] = {k: v for k, v in (
            ("system_instruction", system), ("temperature", req.temperature), ("top_p", req.top_p),
            ("top_k", req.top_k), ("max_output_tokens", req.max_tokens),
            ("stop_sequences", opts.get("stop")), ("safety_settings", opts.get("safety_settings")),
            ("seed", opts.get("seed"))) if v is not None}
        if opts.get("thinking_level"):
            config["thinking_config"] = {"thinking_level": opts["thinking_level"], "include_thoughts": True}
        elif req.thinking_effort is not None:
            budget = thinking_budget(req.thinking_effort, ceiling=24576) if req.thinking_effort > 0 else 0
            config["thinking_config"] = {"thinking_budget": budget, "include_thoughts": budget > 0}
        if req.tools:
            config["tools"] = [{"function_declarations": [
                {"name": t["name"], "description": t.get("description") or "",
                 "parameters_json_schema": t.get("schema") or {"type": "object", "properties": {}}}
                for t in req.tools]}]
            config["tool_config"] = {"function_calling_config": self._tool_choice(req)}
        return contents, config

    def _tool_choice(self, req: LlmRequest) -> dict[str, Any]:
        choice = req.tool_choice
        if choice in (None, "", "auto", "none", "any"):
            return {"mode": (choice or "auto").upper()}
        if not any(t.get("name") == choice for t in req.tools):
            names = ", ".join(str(t.get("name")) for t in req.tools)
            raise LlmError(f"tool_choice names the tool {choice!r}, but the request's tools are: {names}",
                           error_type=INVALID_REQUEST, provider=self.label)
        return {"mode": "ANY", "allowed_function_names": [choice]}

    async def generate(self, req: LlmRequest, on_event: EventSink | None = None) -> LlmResponse:
        contents, config = self.request(req)
        return await self._run(req, contents, config, on_event)

    async def structured(self, req: LlmRequest, schema: dict[str, Any],
                         name: str = "output") -> tuple[Any, LlmResponse]:
        contents, config = self.request(req)
        config.update(response_mime_type="application/json", response_json_schema=schema)
        resp = await self._run(req, contents, config, None)
        return decode_json(self.label, resp.result), resp

    async def embed(self, texts: list[str], model: str,
                    dimensions: int | None = None) -> tuple[list[list[float]], dict[str, int]]:
        config = {"output_dimensionality": dimensions} if dimensions else None
        seconds = float(self.config.options.get("timeout") or 600)
        async with guarded(self.label, seconds, self._translator, SDK):
            result = await self.config.client().aio.models.embed_content(model=model, contents=texts, config=config)
        vectors = [list(map(float, e.values or ())) for e in result.embeddings or ()]
        tokens = sum(int(getattr(getattr(e, "statistics", None), "token_count", 0) or 0)
                     for e in result.embeddings or ())
        return vectors, {"prompt_tokens": tokens, "total_tokens": tokens}

    async def status(self) -> dict[str, Any]:
        # the client is made inside probe, once the SDK is loaded
        return await probe(self.label, self._translator, SDK,
                           lambda: self.config.client().aio.models.list(config={"page_size": 1}))

    async def _run(self, req: LlmRequest, contents: list[dict[str, Any]], config: dict[str, Any],
                   on_event: EventSink | None) -> LlmResponse:
        started = time.perf_counter()
        acc = _Accumulator()
        async with guarded(self.label, req.timeout, self._translator, SDK):
            models = self.config.client().aio.models
            if on_event is None:
                acc.add(await models.generate_content(model=req.model, contents=contents, config=config))
            else:
                async for chunk in await models.generate_content_stream(model=req.model, contents=contents,
                                                                        config=config):
                    for event in acc.add(chunk):
                        await on_event(event)
        resp = acc.response(self.id, req.model)
        resp.metadata["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return resp


class _Accumulator:
    """Folds one response or a stream of chunks into the final answer, yielding events per chunk."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.thinking: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.finish: str | None = None
        self.blocked = False
        self.used: Any = None
        self.rid, self.model = "", ""

    def add(self, chunk: Any) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        self.used = chunk.usage_metadata or self.used
        self.rid = chunk.response_id or self.rid
        self.model = chunk.model_version or self.model
        if not chunk.candidates and chunk.prompt_feedback and chunk.prompt_feedback.block_reason:
            self.blocked = True
        for candidate in (chunk.candidates or [])[:1]:
            if candidate.finish_reason:
                self.finish = str(getattr(candidate.finish_reason, "value", candidate.finish_reason))
            for part in (candidate.content.parts if candidate.content else None) or ():
                if part.function_call is not None:
                    fc = part.function_call
                    call: dict[str, Any] = {"id": fc.id or f"call_{len(self.calls)}", "name": fc.name or "",
                                            "arguments": arguments_dict(fc.args or {})}
                    if part.thought_signature:
                        call["provider_metadata"] = {
                            "thought_signature": base64.b64encode(part.thought_signature).decode()}
                    self.calls.append(call)
                    events.append({"type": "tool_call", **{k: call[k] for k in ("id", "name", "arguments")}})
                elif part.text and part.thought:
                    self.thinking.append(part.text)
                    events.append({"type": "thinking", "content": part.text})
                elif part.text:
                    self.text.append(part.text)
                    events.append({"type": "chunk", "content": part.text})
        return events

    def response(self, provider_id: str, model: str) -> LlmResponse:
        reason = FILTERED if self.blocked else _FINISH.get(self.finish or "STOP", STOP)
        if self.calls and reason == STOP:
            reason = TOOL_CALL
        return LlmResponse(result="".join(self.text), tool_calls=self.calls, finish_reason=reason,
                           tokens=google_usage(self.used), thinking="".join(self.thinking) or None,
                           metadata={"provider": provider_id, "model": self.model or model, "id": self.rid})


def google_usage(used: Any) -> dict[str, int]:
    """Gemini usage as Wippy's token table; completion_tokens includes thoughts, as other vendors count them."""
    if used is None:
        return usage()
    prompt = used.prompt_token_count or 0
    thoughts = used.thoughts_token_count or 0
    completion = (used.candidates_token_count or 0) + thoughts
    return usage(prompt=prompt, completion=completion, thinking=thoughts, total=used.total_token_count or None,
                 cache_read=used.cached_content_token_count or 0)
