"""Anthropic Messages through the ``anthropic`` SDK.

Mapping from Wippy's wire format: system messages become ``system`` text blocks; developer
messages become user text; ``function_call`` messages become assistant ``tool_use`` blocks and
``function_result`` messages user ``tool_result`` blocks (tool results first in their turn, as the
API requires); consecutive turns of one role are merged; ids are made safe for Anthropic's id
pattern. A ``cache_marker`` puts ``cache_control: ephemeral`` on the block before it (system
markers first, then the latest ones, at most four as the API allows). Thinking blocks that came
back in ``metadata.thinking_blocks`` are sent back with their assistant turn, which the API
requires when thinking and tools are combined.

The current SDK has no ``temperature``/``top_p``/``top_k``: they are dropped with one warning per
model. ``thinking_effort`` > 0 becomes a thinking budget of 1024-24000 tokens (or adaptive
thinking with an effort level for the models the SDK marks as adaptive-only; ``options.thinking``
is sent verbatim when given). Structured output uses ``output_config.format`` json_schema, the
schema adapted by the SDK's own ``transform_schema``.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

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
    load_sdk,
    probe,
    sdk_translator,
    thinking_budget,
    usage,
    warn_once,
)
from ._llm_wire import arguments_dict, image_source, parts_of, text_of, with_call_ids

if TYPE_CHECKING:
    from ._llm_providers import ProviderConfig

#: what this module imports (off the event loop, on first use)
SDK = ("anthropic",)

#: the Messages API requires max_tokens; used when neither the request nor the model sets one
DEFAULT_MAX_TOKENS = 4096
#: request options handed to the SDK unchanged when present
PASS_THROUGH = ("metadata", "service_tier", "stop_sequences", "speed", "inference_geo")
_MAX_CACHE_POINTS = 4
_FINISH = {"end_turn": STOP, "stop_sequence": STOP, "pause_turn": STOP, "max_tokens": LENGTH,
           "model_context_window_exceeded": LENGTH, "tool_use": TOOL_CALL, "refusal": FILTERED}
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]")


def new_client(config: ProviderConfig) -> tuple[Any, Callable[[Any], Awaitable[None]]]:
    import anthropic

    client = anthropic.AsyncAnthropic(api_key=config.require_key(), base_url=config.base_url,
                                      max_retries=config.max_retries)

    async def close(c: Any) -> None:
        await c.close()

    return client, close


def _translator(label: str) -> Callable[[Exception], LlmError | None]:
    import anthropic

    return sdk_translator(label, anthropic, anthropic.AnthropicError)


def map_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(system blocks, messages)`` in the Messages API's shape."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    marks: list[tuple[bool, dict[str, Any]]] = []  # (is_system, block to mark)
    for msg in with_call_ids(messages):
        role = msg.get("role")
        if role == "system":
            system.extend({"type": "text", "text": t} for t in [text_of(msg.get("content"))] if t)
        elif role == "cache_marker":
            target = turns[-1]["content"][-1] if turns and turns[-1]["content"] else None
            if not turns and system:
                marks.append((True, system[-1]))
            elif target is not None:
                marks.append((False, target))
        elif role in ("user", "developer"):
            turns.append({"role": "user", "content": _user_blocks(msg.get("content"))})
        elif role == "function_result":
            turns.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": _safe_id(
                msg["function_call_id"]), "content": text_of(msg.get("content"))}]})
        elif role in ("assistant", "function_call"):
            blocks = [dict(b) for b in (msg.get("metadata") or {}).get("thinking_blocks") or ()]
            if role == "assistant":
                blocks.extend({"type": "text", "text": t} for t in [text_of(msg.get("content"))] if t)
            else:
                call = msg["function_call"]
                blocks.append({"type": "tool_use", "id": _safe_id(call["id"]), "name": call.get("name"),
                               "input": arguments_dict(call.get("arguments"))})
            if blocks:
                turns.append({"role": "assistant", "content": blocks})
    system_marks = [b for is_system, b in marks if is_system][-_MAX_CACHE_POINTS:]
    room = _MAX_CACHE_POINTS - len(system_marks)
    turn_marks = [b for is_system, b in marks if not is_system][-room:] if room else []
    for block in system_marks + turn_marks:
        block["cache_control"] = {"type": "ephemeral"}
    return system, _merge_turns(turns)


def _merge_turns(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive turns of one role as one turn, tool results ahead of other blocks in user turns."""
    merged: list[dict[str, Any]] = []
    for turn in turns:
        if merged and merged[-1]["role"] == turn["role"]:
            merged[-1]["content"].extend(turn["content"])
        else:
            merged.append({"role": turn["role"], "content": list(turn["content"])})
    for turn in merged:
        if turn["role"] == "user":
            turn["content"].sort(key=lambda b: b.get("type") != "tool_result")
    return merged


def _user_blocks(content: object) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in parts_of(content):
        source = image_source(part)
        kind = part.get("type", "text")
        if kind in ("image", "document") and source:
            how, value, mime = source
            src = {"type": "url", "url": value} if how == "url" else {
                "type": "base64", "media_type": mime, "data": value}
            blocks.append({"type": kind, "source": src})
        elif kind == "text" and part.get("text"):
            blocks.append({"type": "text", "text": str(part["text"])})
    return blocks or [{"type": "text", "text": "."}]  # the API rejects empty turns


def _safe_id(raw: object) -> str:
    return _UNSAFE_ID.sub("_", str(raw or "call")) or "call"


class AnthropicProvider:
    """Anthropic's Messages API."""

    def __init__(self, config: ProviderConfig) -> None:
        self.id = config.provider_id
        self.config = config
        self.label = config.label
        self._translator = functools.cache(functools.partial(_translator, self.label))

    def params(self, req: LlmRequest) -> dict[str, Any]:
        opts = {**self.config.options, **req.options}
        system, turns = map_messages(req.messages)
        params: dict[str, Any] = {"model": req.model, "messages": turns,
                                  "max_tokens": req.max_tokens or int(opts.get("max_tokens") or DEFAULT_MAX_TOKENS)}
        if system:
            params["system"] = system
        dropped = [k for k, v in (("temperature", req.temperature), ("top_p", req.top_p), ("top_k", req.top_k))
                   if v is not None]
        if dropped:
            warn_once((self.id, req.model, *dropped), "%s: the Anthropic SDK takes no %s; dropped for %s",
                      self.id, "/".join(dropped), req.model)
        if isinstance(opts.get("thinking"), dict):
            params["thinking"] = dict(opts["thinking"])
        elif req.thinking_effort:
            self._thinking(params, req)
        if req.tools:
            params["tools"] = [{"name": t["name"], "description": t.get("description") or "",
                                "input_schema": t.get("schema") or {"type": "object", "properties": {}}}
                               for t in req.tools]
            params["tool_choice"] = self._tool_choice(req)
        params.update({k: opts[k] for k in PASS_THROUGH if opts.get(k) is not None})
        for key in ("extra_body", "extra_headers"):
            if opts.get(key):
                params[key] = dict(opts[key])
        params["timeout"] = req.timeout
        return params

    @staticmethod
    def _thinking(params: dict[str, Any], req: LlmRequest) -> None:
        from anthropic._data import MODELS_TO_WARN_WITH_THINKING_ENABLED

        effort = req.thinking_effort or 0
        if req.model in MODELS_TO_WARN_WITH_THINKING_ENABLED:
            params["thinking"] = {"type": "adaptive"}
            params["output_config"] = {"effort": effort_level(effort)}
            return
        budget = thinking_budget(effort)
        params["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if params["max_tokens"] <= budget:
            params["max_tokens"] = budget + 1024

    def _tool_choice(self, req: LlmRequest) -> dict[str, Any]:
        choice = req.tool_choice
        if choice in (None, "", "auto", "none", "any"):
            return {"type": choice or "auto"}
        if not any(t.get("name") == choice for t in req.tools):
            names = ", ".join(str(t.get("name")) for t in req.tools)
            raise LlmError(f"tool_choice names the tool {choice!r}, but the request's tools are: {names}",
                           error_type=INVALID_REQUEST, provider=self.label)
        return {"type": "tool", "name": choice}

    async def generate(self, req: LlmRequest, on_event: EventSink | None = None) -> LlmResponse:
        await load_sdk(self.label, SDK)  # params() reads the SDK's list of adaptive-thinking models
        return await self._run(req, self.params(req), on_event)

    async def structured(self, req: LlmRequest, schema: dict[str, Any],
                         name: str = "output") -> tuple[Any, LlmResponse]:
        await load_sdk(self.label, SDK)
        from anthropic import transform_schema

        params = self.params(req)
        try:
            adapted = transform_schema(schema)
        except (ValueError, TypeError) as exc:
            raise LlmError(f"{self.label} cannot use the schema {name!r}: {exc}", error_type=INVALID_REQUEST,
                           provider=self.label) from exc
        params["output_config"] = {**params.get("output_config", {}), "format": {"type": "json_schema",
                                                                                 "schema": adapted}}
        resp = await self._run(req, params, None)
        return decode_json(self.label, resp.result), resp

    async def embed(self, texts: list[str], model: str,
                    dimensions: int | None = None) -> tuple[list[list[float]], dict[str, int]]:
        raise LlmError("Anthropic has no embeddings API: use an OpenAI, Google or OpenAI-compatible model to embed",
                       error_type=INVALID_REQUEST, provider=self.label)

    async def status(self) -> dict[str, Any]:
        # the client is made inside probe, once the SDK is loaded
        return await probe(self.label, self._translator, SDK, lambda: self.config.client().models.list())  # noqa: PLW0108

    async def _run(self, req: LlmRequest, params: dict[str, Any], on_event: EventSink | None) -> LlmResponse:
        started = time.perf_counter()
        async with guarded(self.label, req.timeout, self._translator, SDK):
            client = self.config.client()
            if on_event is None:
                message = await client.messages.create(**params)
            else:
                async with client.messages.stream(**params) as stream:
                    async for event in stream:
                        await self._forward(event, on_event)
                    message = await stream.get_final_message()
        resp = self.response(message)
        resp.metadata["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return resp

    @staticmethod
    async def _forward(event: Any, on_event: EventSink) -> None:
        if event.type == "text" and event.text:
            await on_event({"type": "chunk", "content": event.text})
        elif event.type == "thinking" and event.thinking:
            await on_event({"type": "thinking", "content": event.thinking})
        elif event.type == "content_block_stop" and event.content_block.type == "tool_use":
            block = event.content_block
            await on_event({"type": "tool_call", "id": block.id, "name": block.name,
                            "arguments": arguments_dict(block.input)})

    def response(self, message: Any) -> LlmResponse:
        """A Messages API ``Message`` as an LlmResponse (thinking blocks kept for the next turn)."""
        text: list[str] = []
        thinking: list[str] = []
        blocks: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        for block in message.content:
            if block.type == "text":
                text.append(block.text)
            elif block.type == "thinking":
                thinking.append(block.thinking)
                blocks.append({"type": "thinking", "thinking": block.thinking, "signature": block.signature})
            elif block.type == "redacted_thinking":
                blocks.append({"type": "redacted_thinking", "data": block.data})
            elif block.type == "tool_use":
                calls.append({"id": block.id, "name": block.name, "arguments": arguments_dict(block.input)})
        metadata: dict[str, Any] = {"provider": self.id, "model": message.model, "id": message.id}
        if blocks:
            metadata["thinking_blocks"] = blocks
        return LlmResponse(result="".join(text), tool_calls=calls,
                           finish_reason=_FINISH.get(message.stop_reason or "end_turn", STOP),
                           tokens=anthropic_usage(message.usage), thinking="".join(thinking) or None,
                           metadata=metadata)


def anthropic_usage(used: Any) -> dict[str, int]:
    """Anthropic usage as Wippy's token table; prompt_tokens counts cached input too, as other vendors do."""
    if used is None:
        return usage()
    read = used.cache_read_input_tokens or 0
    write = used.cache_creation_input_tokens or 0
    details = getattr(used, "output_tokens_details", None)
    return usage(prompt=(used.input_tokens or 0) + read + write, completion=used.output_tokens or 0,
                 thinking=getattr(details, "thinking_tokens", 0) or 0, cache_read=read, cache_write=write)
