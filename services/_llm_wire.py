"""Reading Wippy's wire-format messages: content parts, tool-call arguments, call ids, image sources.

A message is ``{role, content, name?, function_call = {id?, name, arguments}?, function_call_id?,
metadata?}`` with ``content`` a string or a list of parts (``{type = "text", text}``,
``{type = "image" | "document", source = {type = "url", url} | {type = "base64", data, mime_type}}``).
Every provider module reads messages through these helpers, so they all agree on the edge cases
(bare strings, missing ids, arguments given as JSON text or as a table).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def parts_of(content: object) -> list[dict[str, Any]]:
    """A message's content as a list of parts (a bare string is one text part)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, Mapping):
        return [dict(content)]
    if isinstance(content, list):
        return [{"type": "text", "text": p} if isinstance(p, str) else dict(p) for p in content
                if isinstance(p, str | Mapping)]
    return [{"type": "text", "text": str(content)}]


def text_of(content: object) -> str:
    """The text parts of a message's content joined together (images and other parts skipped)."""
    return "".join(str(p.get("text") or "") for p in parts_of(content) if p.get("type", "text") == "text")


def arguments_json(arguments: object) -> str:
    """Tool-call arguments as the JSON object string vendors expect (a string is passed through)."""
    if isinstance(arguments, str):
        return arguments or "{}"
    return json.dumps(arguments if arguments else {}, ensure_ascii=False)


def arguments_dict(arguments: object) -> dict[str, Any]:
    """Tool-call arguments as a table: JSON text is decoded; text that is not a JSON object lands in ``_raw``."""
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if not arguments:
        return {}
    try:
        value = json.loads(str(arguments))
    except ValueError:
        return {"_raw": str(arguments)}
    return value if isinstance(value, dict) else {"_raw": str(arguments)}


def with_call_ids(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with every function_call/function_result pair carrying an id.

    Prompts built without ids (``add_function_call(name, args)``) still have to pair up in vendors
    that require ids; a result without id answers the oldest unanswered call of the same name.
    """
    out: list[dict[str, Any]] = []
    open_calls: list[tuple[str, str]] = []
    for index, original in enumerate(messages):
        msg = original
        role = msg.get("role")
        if role == "function_call":
            call = dict(msg.get("function_call") or {})
            call.setdefault("id", None)
            if not call["id"]:
                call["id"] = f"call_{index}"
            open_calls.append((str(call.get("name") or ""), str(call["id"])))
            msg = {**msg, "function_call": call}
        elif role == "function_result":
            call_id = msg.get("function_call_id") or (msg.get("function_call") or {}).get("id")
            if not call_id:
                match = next((c for c in open_calls if c[0] == msg.get("name")), open_calls[0] if open_calls else None)
                call_id = match[1] if match else f"call_{index}"
            open_calls = [c for c in open_calls if c[1] != call_id]
            msg = {**msg, "function_call_id": call_id}
        out.append(msg)
    return out


def image_source(part: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """``(kind, url_or_data, mime_type)`` of an image/document part, kind being "url" or "base64"."""
    source = part.get("source")
    if not isinstance(source, Mapping):
        return None
    mime = str(source.get("mime_type") or source.get("media_type") or "")
    if source.get("type") == "url" and source.get("url"):
        return "url", str(source["url"]), mime
    if source.get("type") == "base64" and source.get("data"):
        return "base64", str(source["data"]), mime or "image/png"
    return None
