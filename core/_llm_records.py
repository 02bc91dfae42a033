"""Records of model calls: one ``llm.call`` record per ``llm.generate``, ``structured_output`` or ``embed``.

A call's record goes to ``<ns>.agents.<node>`` (the node that made the call; the envelope's
``node`` names it, its ``at`` is when the call ended). Body, schema 1::

    call_id         str             the call's id (the ``usage_record.usage_id`` its caller got back)
    run_id          str | None      the agent run the call belongs to; None for a plain call
    pid             str | None      the calling process, when the caller said
    operation       str             "generate" | "structured_output" | "embed"
    model           str | None      the model as the app names it (None: it did not resolve)
    provider        str | None      the provider id (``wippy.llm.openai:provider``, an llm.provider entry)
    provider_model  str | None      the provider's own model name
    request         {messages, tools, options[, schema][, input]}   what the caller asked for
    response        {result, tool_calls, finish_reason, tokens, cost} | None   None when it failed
    error           {type, message} | None                          type: an llm.ERROR_TYPE value
    latency_ms      float           from the call to its answer or error
    started_at      int             when the call started, unix nanoseconds
    truncated       [str]           the fields cut to fit (``request.messages``, ...), usually empty

Large payloads are capped so one record stays well under the server's max payload (1 MiB by
default): each of the fields in :data:`CAPPED` whose JSON is longer than the field cap (64 KiB, or
a sixteenth of the max payload when that is smaller) is replaced by ``{"$truncated": <its
JSON's size in bytes>, "head": <the first field-cap bytes of its JSON>}`` and its path listed in
``truncated``. Should the record still not fit, every capped field loses its ``head`` too. The
caps keep the log from carrying a model's whole context window on every call; a replay that needs
the full text of a capped field cannot have it from this record (a later schema may chunk it).
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from ._records import register_type

LLM_CALL: Final = "llm.call"
register_type(LLM_CALL, 1)

#: the most a capped field keeps, in bytes of its JSON
FIELD_CAP: Final = 64 * 1024
#: the fields that can be large, as (section, key)
CAPPED: Final = (("request", "messages"), ("request", "tools"), ("request", "options"), ("request", "schema"),
                 ("request", "input"), ("response", "result"), ("response", "tool_calls"), ("error", "message"))
#: room kept for the envelope and the uncapped fields
_ENVELOPE_ROOM: Final = 4096


def field_cap(max_payload: int) -> int:
    """The per-field cap for a server that takes ``max_payload`` bytes per message."""
    return max(256, min(FIELD_CAP, max_payload // 16))


def cap_call_body(body: dict[str, Any], max_payload: int) -> dict[str, Any]:
    """``body`` with its large fields capped (see the module docstring) so its record fits
    ``max_payload``; the input is not changed."""
    cap = field_cap(max_payload)
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in body.items()}
    truncated: list[str] = list(out.get("truncated") or [])
    sizes: dict[tuple[str, str], int] = {}
    for section, key in CAPPED:
        part = out.get(section)
        if not isinstance(part, dict) or key not in part:
            continue
        encoded = orjson.dumps(part[key], default=str)
        if len(encoded) > cap:
            sizes[(section, key)] = len(encoded)
            part[key] = {"$truncated": len(encoded), "head": encoded[:cap].decode("utf-8", "ignore")}
            truncated.append(f"{section}.{key}")
    out["truncated"] = truncated
    if len(orjson.dumps(out, default=str)) + _ENVELOPE_ROOM > max_payload:
        for section, key in CAPPED:
            part = out.get(section)
            if isinstance(part, dict) and key in part:
                size = sizes.get((section, key)) or len(orjson.dumps(part[key], default=str))
                part[key] = {"$truncated": size}
                if f"{section}.{key}" not in truncated:
                    truncated.append(f"{section}.{key}")
    return out
