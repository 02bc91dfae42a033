"""How the fake LLM vendor (tests/llm_fake.py) renders one neutral reply in each vendor's wire format.

``render_json`` gives the non-streamed body, ``render_stream`` the SSE frames of a streamed one,
for the APIs "openai.chat", "openai.responses", "anthropic.messages", "gemini.generate" and
"gemini.stream". Text is streamed in word pieces and tool arguments in two halves, so the SDKs'
delta accumulation is exercised.
"""

from __future__ import annotations

import base64
import json
import re
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.llm_fake import Reply

_OPENAI_FINISH = {"stop": "stop", "length": "length", "tool_call": "tool_calls", "filtered": "content_filter"}
_ANTHROPIC_FINISH = {"stop": "end_turn", "length": "max_tokens", "tool_call": "tool_use", "filtered": "refusal"}
_GEMINI_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_call": "STOP", "filtered": "SAFETY"}
#: what Gemini's thought signature decodes to in tests
SIGNATURE = b"fake-thought-signature"


def pieces(text: str) -> list[str]:
    """``text`` cut into word-sized pieces (whitespace kept), as a model streams it."""
    return re.findall(r"\S+\s*|\s+", text)


def halves(text: str) -> list[str]:
    return [text[: len(text) // 2], text[len(text) // 2:]]


def _sse(data: dict[str, Any], event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n"


def render_json(api: str, reply: Reply, model: str, n: int) -> dict[str, Any]:
    return {"openai.chat": _chat, "openai.responses": _response, "anthropic.messages": _message,
            "gemini.generate": _gemini}[api](reply, model, n)


def render_stream(api: str, reply: Reply, model: str, n: int, *, include_usage: bool) -> list[str]:
    if api == "openai.chat":
        return _chat_stream(reply, model, n, include_usage)
    if api == "openai.responses":
        return _response_stream(reply, model, n)
    if api == "anthropic.messages":
        return _message_stream(reply, model, n)
    return _gemini_stream(reply, model, n)


# ------------------------------------------------------------------------------ OpenAI chat


def _chat_usage(r: Reply) -> dict[str, Any]:
    return {"prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens,
            "total_tokens": r.prompt_tokens + r.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": r.cache_read_tokens, "cache_write_tokens": r.cache_write_tokens},
            "completion_tokens_details": {"reasoning_tokens": r.reasoning_tokens}}


def _chat(r: Reply, model: str, n: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": r.text or None}
    if r.tool_calls:
        message["tool_calls"] = [{"id": i, "type": "function", "function": {"name": name, "arguments": json.dumps(a)}}
                                 for i, name, a in r.tool_calls]
    if r.thinking:
        message["reasoning_content"] = r.thinking
    return {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": _OPENAI_FINISH[r.finish_reason],
                         "logprobs": None}], "usage": _chat_usage(r)}


def _chat_stream(r: Reply, model: str, n: int, include_usage: bool) -> list[str]:
    base = {"id": f"chatcmpl-{n}", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return _sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"reasoning_content": p}) for p in pieces(r.thinking or "")]
    out += [chunk({"content": p}) for p in pieces(r.text)]
    for index, (call_id, name, args) in enumerate(r.tool_calls):
        out.append(chunk({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                          "function": {"name": name, "arguments": ""}}]}))
        out += [chunk({"tool_calls": [{"index": index, "function": {"arguments": h}}]})
                for h in halves(json.dumps(args))]
    out.append(chunk({}, _OPENAI_FINISH[r.finish_reason]))
    if include_usage:
        out.append(_sse({**base, "choices": [], "usage": _chat_usage(r)}))
    return [*out, "data: [DONE]\n\n"]


# ------------------------------------------------------------------------- OpenAI Responses


def _response_items(r: Reply) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if r.thinking:
        items.append({"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": r.thinking}]})
    if r.text:
        items.append({"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                      "content": [{"type": "output_text", "text": r.text, "annotations": []}]})
    items += [{"type": "function_call", "id": f"fc_{i}", "call_id": call_id, "name": name,
               "arguments": json.dumps(args), "status": "completed"}
              for i, (call_id, name, args) in enumerate(r.tool_calls)]
    return items


def _response(r: Reply, model: str, n: int) -> dict[str, Any]:
    incomplete = {"length": "max_output_tokens", "filtered": "content_filter"}.get(r.finish_reason)
    return {"id": f"resp_{n}", "object": "response", "created_at": int(time.time()), "model": model,
            "status": "incomplete" if incomplete else "completed",
            "incomplete_details": {"reason": incomplete} if incomplete else None, "error": None,
            "output": _response_items(r), "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "usage": {"input_tokens": r.prompt_tokens, "output_tokens": r.completion_tokens,
                      "total_tokens": r.prompt_tokens + r.completion_tokens,
                      "input_tokens_details": {"cached_tokens": r.cache_read_tokens,
                                               "cache_write_tokens": r.cache_write_tokens},
                      "output_tokens_details": {"reasoning_tokens": r.reasoning_tokens}}}


def _response_stream(r: Reply, model: str, n: int) -> list[str]:
    seq = iter(range(1, 10_000))
    final = _response(r, model, n)

    def event(kind: str, **data: Any) -> str:
        return _sse({"type": kind, "sequence_number": next(seq), **data}, kind)

    out = [event("response.created", response={**final, "status": "in_progress", "output": []})]
    for index, item in enumerate(final["output"]):
        if item["type"] == "reasoning":
            out += [event("response.reasoning_summary_text.delta", item_id=item["id"], output_index=index,
                          summary_index=0, delta=p) for p in pieces(r.thinking or "")]
        elif item["type"] == "message":
            out += [event("response.output_text.delta", item_id=item["id"], output_index=index, content_index=0,
                          delta=p, logprobs=[]) for p in pieces(r.text)]
        else:
            out += [event("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                          delta=h) for h in halves(item["arguments"])]
        out.append(event("response.output_item.done", output_index=index, item=item))
    kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
    return [*out, event(kind, response=final)]


# -------------------------------------------------------------------------- Anthropic Messages


def _blocks(r: Reply) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if r.thinking:
        blocks.append({"type": "thinking", "thinking": r.thinking, "signature": "fake-signature"})
    if r.text:
        blocks.append({"type": "text", "text": r.text})
    blocks += [{"type": "tool_use", "id": i, "name": name, "input": a} for i, name, a in r.tool_calls]
    return blocks


def _anthropic_usage(r: Reply) -> dict[str, Any]:
    return {"input_tokens": r.prompt_tokens, "output_tokens": r.completion_tokens,
            "cache_read_input_tokens": r.cache_read_tokens, "cache_creation_input_tokens": r.cache_write_tokens,
            "output_tokens_details": {"thinking_tokens": r.reasoning_tokens}}


def _message(r: Reply, model: str, n: int) -> dict[str, Any]:
    return {"id": f"msg_{n}", "type": "message", "role": "assistant", "model": model, "content": _blocks(r),
            "stop_reason": _ANTHROPIC_FINISH[r.finish_reason], "stop_sequence": None, "usage": _anthropic_usage(r)}


def _message_stream(r: Reply, model: str, n: int) -> list[str]:
    start = {**_message(r, model, n), "content": [], "stop_reason": None,
             "usage": {**_anthropic_usage(r), "output_tokens": 1}}
    out = [_sse({"type": "message_start", "message": start}, "message_start")]
    for index, block in enumerate(_blocks(r)):
        kind = block["type"]
        empty: dict[str, Any] = {"thinking": {"thinking": "", "signature": ""}, "text": {"text": ""}}.get(
            kind, {"input": {}})
        head = {**block, **empty}
        out.append(_sse({"type": "content_block_start", "index": index, "content_block": head},
                        "content_block_start"))
        if kind == "thinking":
            deltas = [{"type": "thinking_delta", "thinking": p} for p in pieces(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif kind == "text":
            deltas = [{"type": "text_delta", "text": p} for p in pieces(block["text"])]
        else:
            deltas = [{"type": "input_json_delta", "partial_json": h} for h in halves(json.dumps(block["input"]))]
        out += [_sse({"type": "content_block_delta", "index": index, "delta": d}, "content_block_delta")
                for d in deltas]
        out.append(_sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
    out.append(_sse({"type": "message_delta", "delta": {"stop_reason": _ANTHROPIC_FINISH[r.finish_reason],
                                                        "stop_sequence": None},
                     "usage": _anthropic_usage(r)}, "message_delta"))
    return [*out, _sse({"type": "message_stop"}, "message_stop")]


# ------------------------------------------------------------------------------------ Gemini


def _gemini_parts(r: Reply) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if r.thinking:
        parts.append({"text": r.thinking, "thought": True})
    if r.text:
        parts.append({"text": r.text})
    parts += [{"functionCall": {"id": i, "name": name, "args": a},
               "thoughtSignature": base64.b64encode(SIGNATURE).decode()} for i, name, a in r.tool_calls]
    return parts


def _gemini_usage(r: Reply) -> dict[str, Any]:
    return {"promptTokenCount": r.prompt_tokens, "candidatesTokenCount": r.completion_tokens,
            "thoughtsTokenCount": r.reasoning_tokens, "cachedContentTokenCount": r.cache_read_tokens,
            "totalTokenCount": r.prompt_tokens + r.completion_tokens + r.reasoning_tokens}


def _gemini(r: Reply, model: str, n: int, parts: list[dict[str, Any]] | None = None,
            last: bool = True) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": _gemini_parts(r) if parts is None else parts},
                                 "index": 0}
    body: dict[str, Any] = {"candidates": [candidate], "modelVersion": model, "responseId": f"gem-{n}"}
    if last:
        candidate["finishReason"] = _GEMINI_FINISH[r.finish_reason]
        body["usageMetadata"] = _gemini_usage(r)
    return body


def _gemini_stream(r: Reply, model: str, n: int) -> list[str]:
    parts: list[dict[str, Any]] = []
    if r.thinking:
        parts += [{"text": p, "thought": True} for p in pieces(r.thinking)]
    parts += [{"text": p} for p in pieces(r.text)]
    parts += [p for p in _gemini_parts(r) if "functionCall" in p]
    if not parts:
        parts = [{"text": ""}]
    return [_sse(_gemini(r, model, n, [p], last=i == len(parts) - 1)) for i, p in enumerate(parts)]
