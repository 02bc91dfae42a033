"""OpenAI's Responses API (``wippy.llm.openai:provider`` with ``options.api = "responses"``).

System and developer messages become ``instructions``; user/assistant messages ``message`` input
items (``input_text``/``input_image``, ``output_text``); ``function_call``/``function_result``
become ``function_call``/``function_call_output`` items paired by ``call_id``. ``thinking_effort``
becomes ``reasoning = {effort, summary = "auto"}`` and the reasoning summary comes back as
``thinking``. Structured output uses ``text.format`` json_schema with ``strict``. Embeddings and
status are the same endpoints as Chat Completions.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any

from ._llm_openai import SDK, ChatProvider, data_url, merged_options, tool_choice, tool_schema, translator
from ._llm_schema import drop_added_nulls, strict_schema
from ._llm_types import (
    FILTERED,
    LENGTH,
    MODEL_ERROR,
    STOP,
    TOOL_CALL,
    EventSink,
    LlmError,
    LlmRequest,
    LlmResponse,
    decode_json,
    effort_level,
    guarded,
    usage,
    warn_once,
)
from ._llm_wire import arguments_dict, arguments_json, image_source, parts_of, text_of, with_call_ids

if TYPE_CHECKING:
    from ._llm_providers import ProviderConfig

#: request options handed to the SDK unchanged when present
PASS_THROUGH = ("user", "store", "service_tier", "prompt_cache_key", "parallel_tool_calls", "metadata",
                "previous_response_id", "truncation", "include")


class ResponsesProvider:
    """OpenAI through the Responses API."""

    def __init__(self, config: ProviderConfig) -> None:
        self.id = config.provider_id
        self.config = config
        self.label = config.label
        self._translator = functools.cache(functools.partial(translator, self.label))
        self._chat = ChatProvider(config, compat=False)  # embeddings and status are shared endpoints

    # ---------------------------------------------------------------------------------- mapping

    @staticmethod
    def input_items(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
        """``(instructions, input items)`` for Wippy's messages."""
        instructions: list[str] = []
        items: list[dict[str, Any]] = []
        for msg in with_call_ids(messages):
            role = msg.get("role")
            if role in ("system", "developer"):
                text = text_of(msg.get("content"))
                if text:
                    instructions.append(text)
            elif role == "user":
                items.append({"type": "message", "role": "user", "content": _input_parts(msg.get("content"))})
            elif role == "assistant":
                text = text_of(msg.get("content"))
                if text:
                    items.append({"type": "message", "role": "assistant",
                                  "content": [{"type": "output_text", "text": text}]})
            elif role == "function_call":
                call = msg["function_call"]
                items.append({"type": "function_call", "call_id": call["id"], "name": call.get("name"),
                              "arguments": arguments_json(call.get("arguments"))})
            elif role == "function_result":
                items.append({"type": "function_call_output", "call_id": msg["function_call_id"],
                              "output": text_of(msg.get("content"))})
        return ("\n\n".join(instructions) or None), items

    def params(self, req: LlmRequest) -> dict[str, Any]:
        opts = merged_options(self.config, req)
        instructions, items = self.input_items(req.messages)
        params: dict[str, Any] = {"model": req.model, "input": items}
        if instructions:
            params["instructions"] = instructions
        if req.thinking_effort is not None:
            params["reasoning"] = {"effort": effort_level(req.thinking_effort), "summary": "auto"}
            dropped = [k for k, v in (("temperature", req.temperature), ("top_p", req.top_p)) if v is not None]
            if dropped:
                warn_once((self.id, req.model, *dropped), "%s: OpenAI reasoning models take no %s; dropped for %s",
                          self.id, "/".join(dropped), req.model)
        else:
            params.update({k: v for k, v in (("temperature", req.temperature), ("top_p", req.top_p)) if v is not None})
        if req.top_k is not None:
            warn_once((self.id, req.model, "top_k"), "%s: OpenAI has no top_k; dropped for %s", self.id, req.model)
        if req.max_tokens is not None:
            params["max_output_tokens"] = req.max_tokens
        if req.tools:
            strict = bool(opts.get("strict_tools"))
            params["tools"] = [{"type": "function", "name": t["name"], "description": t.get("description") or "",
                                "parameters": strict_schema(tool_schema(t)) if strict else tool_schema(t),
                                "strict": strict} for t in req.tools]
            params["tool_choice"] = tool_choice(req.tool_choice, req.tools, self.label,
                                                lambda n: {"type": "function", "name": n})
        params.update({k: opts[k] for k in PASS_THROUGH if opts.get(k) is not None})
        for key in ("extra_body", "extra_headers"):
            if opts.get(key):
                params[key] = dict(opts[key])
        params["timeout"] = req.timeout
        return params

    # --------------------------------------------------------------------------------- calls

    async def generate(self, req: LlmRequest, on_event: EventSink | None = None) -> LlmResponse:
        return await self._run(req, self.params(req), on_event)

    async def structured(self, req: LlmRequest, schema: dict[str, Any],
                         name: str = "output") -> tuple[Any, LlmResponse]:
        params = self.params(req)
        params["text"] = {"format": {"type": "json_schema", "name": name, "schema": strict_schema(schema),
                                     "strict": True}}
        resp = await self._run(req, params, None)
        return drop_added_nulls(decode_json(self.label, resp.result), schema), resp

    async def embed(self, texts: list[str], model: str,
                    dimensions: int | None = None) -> tuple[list[list[float]], dict[str, int]]:
        return await self._chat.embed(texts, model, dimensions)

    async def status(self) -> dict[str, Any]:
        return await self._chat.status()

    async def _run(self, req: LlmRequest, params: dict[str, Any], on_event: EventSink | None) -> LlmResponse:
        started = time.perf_counter()
        async with guarded(self.label, req.timeout, self._translator, SDK):
            client = self.config.client()
            if on_event is None:
                resp = self.response(await client.responses.create(**params))
            else:
                resp = await self._stream(client, params, on_event)
        resp.metadata["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return resp

    async def _stream(self, client: Any, params: dict[str, Any], on_event: EventSink) -> LlmResponse:
        final = None
        async with await client.responses.create(**params, stream=True) as stream:
            async for event in stream:
                kind = event.type
                if kind == "response.output_text.delta" and event.delta:
                    await on_event({"type": "chunk", "content": event.delta})
                elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
                    if event.delta:
                        await on_event({"type": "thinking", "content": event.delta})
                elif kind == "response.output_item.done" and event.item.type == "function_call":
                    item = event.item
                    await on_event({"type": "tool_call", "id": item.call_id, "name": item.name,
                                    "arguments": arguments_dict(item.arguments)})
                elif kind in ("response.completed", "response.incomplete", "response.failed"):
                    final = event.response
                elif kind == "error":
                    raise LlmError(f"{self.label} stream failed: {event.message}", error_type=MODEL_ERROR,
                                   provider=self.label)
        if final is None:
            raise LlmError(f"{self.label} stream ended without a final response", error_type=MODEL_ERROR,
                           provider=self.label)
        return self.response(final)

    def response(self, result: Any) -> LlmResponse:
        """A Responses API ``Response`` as an LlmResponse."""
        if result.status == "failed" and result.error is not None:
            raise LlmError(f"{self.label} failed: {result.error.message}", error_type=MODEL_ERROR,
                           provider=self.label)
        text: list[str] = []
        thinking: list[str] = []
        calls: list[dict[str, Any]] = []
        refused = False
        for item in result.output or ():
            if item.type == "message":
                for part in item.content or ():
                    if part.type == "output_text":
                        text.append(part.text)
                    elif part.type == "refusal":
                        text.append(part.refusal)
                        refused = True
            elif item.type == "function_call":
                calls.append({"id": item.call_id, "name": item.name, "arguments": arguments_dict(item.arguments)})
            elif item.type == "reasoning":
                thinking.extend(p.text for p in item.summary or () if getattr(p, "text", None))
                thinking.extend(p.text for p in getattr(item, "content", None) or () if getattr(p, "text", None))
        reason = _finish(result, calls, refused)
        return LlmResponse(result="".join(text), tool_calls=calls, finish_reason=reason,
                           tokens=responses_usage(result.usage), thinking="".join(thinking) or None,
                           metadata={"provider": self.id, "model": result.model, "id": result.id})


def _input_parts(content: object) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in parts_of(content):
        source = image_source(part)
        if part.get("type") == "image" and source:
            out.append({"type": "input_image", "image_url": data_url(*source), "detail": "auto"})
        elif part.get("type") == "document" and source:
            out.append({"type": "input_file", "file_data": data_url(*source),
                        "filename": str(part.get("name") or "document")})
        elif part.get("type", "text") == "text":
            out.append({"type": "input_text", "text": str(part.get("text") or "")})
    return out or [{"type": "input_text", "text": ""}]


def _finish(result: Any, calls: list[dict[str, Any]], refused: bool) -> str:
    if result.status == "incomplete":
        reason = getattr(result.incomplete_details, "reason", None)
        return FILTERED if reason == "content_filter" else LENGTH
    if calls:
        return TOOL_CALL
    return FILTERED if refused else STOP


def responses_usage(used: Any) -> dict[str, int]:
    """Responses API usage as Wippy's token table."""
    if used is None:
        return usage()
    inputs = getattr(used, "input_tokens_details", None)
    outputs = getattr(used, "output_tokens_details", None)
    return usage(prompt=used.input_tokens or 0, completion=used.output_tokens or 0, total=used.total_tokens or None,
                 thinking=getattr(outputs, "reasoning_tokens", 0) or 0,
                 cache_read=getattr(inputs, "cached_tokens", 0) or 0,
                 cache_write=getattr(inputs, "cache_write_tokens", 0) or 0)
