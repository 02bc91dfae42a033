"""OpenAI Chat Completions (and any OpenAI-compatible server) through the ``openai`` SDK.

Mapping from Wippy's wire format: system/developer messages keep their role (both become
``system`` for compatible servers, which rarely know ``developer``); consecutive ``function_call``
messages become one assistant message with ``tool_calls``, each ``function_result`` a ``tool``
message; image parts become ``image_url`` parts (base64 as data URLs); cache markers are dropped
(OpenAI caches prompts by itself). ``thinking_effort`` becomes ``reasoning_effort`` (below 25 low,
below 75 medium, else high) and, for OpenAI's reasoning models, ``temperature``/``top_p`` are
dropped with a warning. Structured output uses ``response_format`` json_schema with ``strict``
and the schema normalised by :mod:`._llm_schema`. Request options honoured: see ``PASS_THROUGH``
plus ``extra_body``/``extra_headers`` and ``strict_tools``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._llm_schema import drop_added_nulls, strict_schema
from ._llm_types import (
    FILTERED,
    INVALID_REQUEST,
    LENGTH,
    STOP,
    TOOL_CALL,
    EventSink,
    LlmError,
    LlmRequest,
    LlmResponse,
    decode_json,
    effort_level,
    guarded,
    probe,
    sdk_translator,
    usage,
    warn_once,
)
from ._llm_wire import arguments_dict, arguments_json, image_source, parts_of, text_of, with_call_ids

if TYPE_CHECKING:
    from ._llm_providers import ProviderConfig

#: request options handed to the SDK unchanged when present
PASS_THROUGH = ("user", "stop", "seed", "parallel_tool_calls", "store", "service_tier", "prompt_cache_key",
                "frequency_penalty", "presence_penalty", "verbosity", "logit_bias", "metadata")

#: what this module imports (off the event loop, on first use)
SDK = ("openai",)
_FINISH = {"stop": STOP, "length": LENGTH, "tool_calls": TOOL_CALL, "function_call": TOOL_CALL,
           "content_filter": FILTERED}


def new_client(config: ProviderConfig) -> tuple[Any, Callable[[Any], Awaitable[None]]]:
    """An ``AsyncOpenAI`` for ``config`` (a compatible server without key gets a placeholder key, so the
    SDK never falls back to the process's own ``OPENAI_API_KEY``)."""
    import openai

    compat = config.provider_id.endswith("openai_compat:provider")
    key = (config.api_key or "not-needed") if compat else config.require_key()
    client = openai.AsyncOpenAI(api_key=key, base_url=config.base_url, max_retries=config.max_retries,
                                organization=config.options.get("organization"),
                                project=config.options.get("project"))

    async def close(c: Any) -> None:
        await c.close()

    return client, close


def translator(label: str) -> Callable[[Exception], LlmError | None]:
    """Turns the openai SDK's exceptions into LlmError for :func:`guarded`."""
    import openai

    return sdk_translator(label, openai, openai.OpenAIError)


def tool_choice(choice: str | None, tools: list[dict[str, Any]], label: str,
                named: Callable[[str], Any]) -> Any:
    """Wippy's tool_choice ("auto" | "none" | "any" | a tool name) in OpenAI's terms."""
    if choice in (None, "", "auto"):
        return "auto"
    if choice in ("none", "any"):
        return "none" if choice == "none" else "required"
    assert choice is not None
    if not any(t.get("name") == choice for t in tools):
        names = ", ".join(str(t.get("name")) for t in tools) or "none"
        raise LlmError(f"tool_choice names the tool {choice!r}, but the request's tools are: {names}",
                       error_type=INVALID_REQUEST, provider=label)
    return named(choice)


def tool_schema(tool: dict[str, Any]) -> dict[str, Any]:
    schema = tool.get("schema") or {}
    return schema if schema else {"type": "object", "properties": {}}


def merged_options(config: ProviderConfig, req: LlmRequest) -> dict[str, Any]:
    """Driver options overlaid with the request's options (the request wins)."""
    return {**config.options, **req.options}


def data_url(kind: str, value: str, mime: str) -> str:
    return value if kind == "url" else f"data:{mime};base64,{value}"


class ChatProvider:
    """OpenAI Chat Completions (``compat``: an OpenAI-compatible server)."""

    def __init__(self, config: ProviderConfig, *, compat: bool) -> None:
        self.id = config.provider_id
        self.config = config
        self.compat = compat
        self.label = config.label
        self._translator = functools.cache(functools.partial(translator, self.label))

    # ---------------------------------------------------------------------------------- mapping

    def messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for msg in with_call_ids(messages):
            role = msg.get("role")
            if role in ("system", "developer"):
                out.append({"role": "system" if self.compat else role, "content": text_of(msg.get("content"))})
            elif role == "user":
                out.append({"role": "user", "content": self._user_content(msg.get("content"))})
            elif role == "assistant":
                out.append({"role": "assistant", "content": text_of(msg.get("content"))})
            elif role == "function_call":
                call = msg["function_call"]
                entry = {"id": call["id"], "type": "function",
                         "function": {"name": call.get("name"), "arguments": arguments_json(call.get("arguments"))}}
                last = out[-1] if out else None
                if last is not None and last["role"] == "assistant":
                    last.setdefault("tool_calls", []).append(entry)
                else:
                    out.append({"role": "assistant", "content": None, "tool_calls": [entry]})
            elif role == "function_result":
                out.append({"role": "tool", "tool_call_id": msg["function_call_id"],
                            "content": text_of(msg.get("content"))})
        return out

    @staticmethod
    def _user_content(content: object) -> Any:
        parts = parts_of(content)
        if all(p.get("type", "text") == "text" for p in parts):
            return text_of(content)
        out: list[dict[str, Any]] = []
        for part in parts:
            source = image_source(part)
            if part.get("type") == "image" and source:
                out.append({"type": "image_url", "image_url": {"url": data_url(*source)}})
            elif part.get("type") == "document" and source:
                out.append({"type": "file", "file": {"file_data": data_url(*source),
                                                     "filename": str(part.get("name") or "document")}})
            elif part.get("type", "text") == "text":
                out.append({"type": "text", "text": str(part.get("text") or "")})
        return out

    def params(self, req: LlmRequest) -> dict[str, Any]:
        opts = merged_options(self.config, req)
        params: dict[str, Any] = {"model": req.model, "messages": self.messages(req.messages)}
        reasoning = req.thinking_effort is not None
        sampling = {"temperature": req.temperature, "top_p": req.top_p}
        if reasoning and not self.compat:
            params["reasoning_effort"] = effort_level(req.thinking_effort or 0)
            dropped = [k for k, v in sampling.items() if v is not None]
            if dropped:
                warn_once((self.id, req.model, *dropped), "%s: OpenAI reasoning models take no %s; dropped for %s",
                          self.id, "/".join(dropped), req.model)
        else:
            params.update({k: v for k, v in sampling.items() if v is not None})
            if reasoning:
                params["reasoning_effort"] = effort_level(req.thinking_effort or 0)
        if req.max_tokens is not None:
            params["max_tokens" if self.compat else "max_completion_tokens"] = req.max_tokens
        extra_body = dict(opts.get("extra_body") or {})
        if req.top_k is not None:
            if self.compat:
                extra_body["top_k"] = req.top_k
            else:
                warn_once((self.id, req.model, "top_k"), "%s: OpenAI has no top_k; dropped for %s", self.id, req.model)
        if req.tools:
            strict = bool(opts.get("strict_tools"))
            params["tools"] = [{"type": "function", "function": {
                "name": t["name"], "description": t.get("description") or "",
                "parameters": strict_schema(tool_schema(t)) if strict else tool_schema(t),
                **({"strict": True} if strict else {})}} for t in req.tools]
            params["tool_choice"] = tool_choice(req.tool_choice, req.tools, self.label,
                                                lambda n: {"type": "function", "function": {"name": n}})
        params.update({k: opts[k] for k in PASS_THROUGH if opts.get(k) is not None})
        if extra_body:
            params["extra_body"] = extra_body
        if opts.get("extra_headers"):
            params["extra_headers"] = dict(opts["extra_headers"])
        params["timeout"] = req.timeout
        return params

    # --------------------------------------------------------------------------------- calls

    async def generate(self, req: LlmRequest, on_event: EventSink | None = None) -> LlmResponse:
        return await self._run(req, self.params(req), on_event)

    async def structured(self, req: LlmRequest, schema: dict[str, Any],
                         name: str = "output") -> tuple[Any, LlmResponse]:
        params = self.params(req)
        params["response_format"] = {"type": "json_schema", "json_schema": {
            "name": name, "schema": strict_schema(schema), "strict": True}}
        resp = await self._run(req, params, None)
        return drop_added_nulls(decode_json(self.label, resp.result), schema), resp

    async def embed(self, texts: list[str], model: str,
                    dimensions: int | None = None) -> tuple[list[list[float]], dict[str, int]]:
        extra: dict[str, Any] = {"dimensions": dimensions} if dimensions else {}
        seconds = float(self.config.options.get("timeout") or 600)
        async with guarded(self.label, seconds, self._translator, SDK):
            result = await self.config.client().embeddings.create(
                model=model, input=texts, encoding_format="float", **extra)
        vectors = [list(map(float, d.embedding)) for d in sorted(result.data, key=lambda d: d.index)]
        used = result.usage
        prompt = int(getattr(used, "prompt_tokens", 0) or 0)
        return vectors, {"prompt_tokens": prompt, "total_tokens": int(getattr(used, "total_tokens", 0) or prompt)}

    async def status(self) -> dict[str, Any]:
        # the client is made inside probe, once the SDK is loaded
        return await probe(self.label, self._translator, SDK, lambda: self.config.client().models.list())  # noqa: PLW0108

    async def _run(self, req: LlmRequest, params: dict[str, Any], on_event: EventSink | None) -> LlmResponse:
        started = time.perf_counter()
        async with guarded(self.label, req.timeout, self._translator, SDK):
            client = self.config.client()
            if on_event is None:
                resp = self.response(await client.chat.completions.create(**params))
            else:
                resp = await self._stream(client, params, on_event)
        resp.metadata["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return resp

    async def _stream(self, client: Any, params: dict[str, Any], on_event: EventSink) -> LlmResponse:
        opts_usage = self.config.options.get("stream_usage", True)
        extra = {"stream_options": {"include_usage": True}} if opts_usage else {}
        text: list[str] = []
        thinking: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        finish, used, rid, model = None, None, "", params["model"]
        async with await client.chat.completions.create(**params, stream=True, **extra) as stream:
            async for chunk in stream:
                rid, model = chunk.id or rid, chunk.model or model
                used = chunk.usage or used
                for choice in chunk.choices:
                    delta = choice.delta
                    if delta.content:
                        text.append(delta.content)
                        await on_event({"type": "chunk", "content": delta.content})
                    reasoning = _reasoning_of(delta)
                    if reasoning:
                        thinking.append(reasoning)
                        await on_event({"type": "thinking", "content": reasoning})
                    for tc in delta.tool_calls or ():
                        slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                        slot["id"] = tc.id or slot["id"]
                        if tc.function is not None:
                            slot["name"] += tc.function.name or ""
                            slot["arguments"] += tc.function.arguments or ""
                    finish = choice.finish_reason or finish
        tool_calls = [{"id": c["id"] or f"call_{i}", "name": c["name"], "arguments": arguments_dict(c["arguments"])}
                      for i, c in sorted(calls.items())]
        for call in tool_calls:
            await on_event({"type": "tool_call", **call})
        return self._finish("".join(text), tool_calls, finish=finish, used=used, thinking="".join(thinking) or None,
                            rid=rid, model=model)

    def response(self, completion: Any) -> LlmResponse:
        """A non-streamed ChatCompletion as an LlmResponse."""
        choice = completion.choices[0] if completion.choices else None
        if choice is None:
            return self._finish("", [], finish=None, used=completion.usage, thinking=None, rid=completion.id,
                                model=completion.model)
        msg = choice.message
        text, finish = msg.content or "", choice.finish_reason
        if getattr(msg, "refusal", None) and not text:
            text, finish = msg.refusal, "content_filter"
        calls = [{"id": tc.id, "name": tc.function.name, "arguments": arguments_dict(tc.function.arguments)}
                 for tc in msg.tool_calls or () if getattr(tc, "function", None) is not None]
        return self._finish(text, calls, finish=finish, used=completion.usage, thinking=_reasoning_of(msg),
                            rid=completion.id, model=completion.model)

    def _finish(self, text: str, calls: list[dict[str, Any]], *, finish: str | None, used: Any,
                thinking: str | None, rid: str, model: str) -> LlmResponse:
        reason = _FINISH.get(finish or "stop", STOP)
        if calls and reason == STOP:
            reason = TOOL_CALL  # some compatible servers finish with "stop" even when they call tools
        return LlmResponse(result=text, tool_calls=calls, finish_reason=reason, tokens=chat_usage(used),
                           thinking=thinking, metadata={"provider": self.id, "model": model, "id": rid})


def _reasoning_of(obj: Any) -> str | None:
    """Reasoning text that compatible servers (DeepSeek, vLLM, ...) add as ``reasoning_content``/``reasoning``."""
    extra = getattr(obj, "model_extra", None) or {}
    value = extra.get("reasoning_content") or extra.get("reasoning")
    return value if isinstance(value, str) and value else None


def chat_usage(used: Any) -> dict[str, int]:
    """Chat Completions usage as Wippy's token table (cache and reasoning details included)."""
    if used is None:
        return usage()
    prompt_details = getattr(used, "prompt_tokens_details", None)
    completion_details = getattr(used, "completion_tokens_details", None)
    return usage(prompt=used.prompt_tokens or 0, completion=used.completion_tokens or 0,
                 total=used.total_tokens or None,
                 thinking=getattr(completion_details, "reasoning_tokens", 0) or 0,
                 cache_read=getattr(prompt_details, "cached_tokens", 0) or 0,
                 cache_write=getattr(prompt_details, "cache_write_tokens", 0) or 0)
