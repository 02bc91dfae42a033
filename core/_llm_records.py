"""Records of model calls: one ``llm.call`` record per ``llm.generate``, ``structured_output`` or ``embed``.

A call's record goes to ``<ns>.agents.<node>`` (the node that made the call; the envelope's
``node`` names it, its ``at`` is when the call ended). Body, schema 1::

    call_id         str             the call's id (the ``usage_record.usage_id`` its caller got back)
    run_id          str | None      the agent run the call belongs to; None for a plain call
    turn            int | None      which step of that run (1, 2, ...)
    request_hash    str             sha256 of the request as sent (messages, tools, options), so a
                                    replay can tell whether it would send the same request
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
default): each request field in :data:`CAPPED` whose JSON is longer than 64 KiB (or a sixteenth of
the max payload when that is smaller), and each response field longer than half the max payload,
is replaced by ``{"$truncated": <its JSON's size in bytes>, "head": <the first cap bytes of its
JSON>}`` and its path listed in ``truncated``. Should the record still not fit, every capped field
loses its ``head`` too. The request caps keep the log from carrying a model's whole context window
on every call (``request_hash`` still identifies it); a run step whose response was capped cannot
be taken from the log again, and is called anew when its run resumes.
"""

from __future__ import annotations

from typing import Any, Final

from ._agent_records import cap_fields, field_cap, large_cap
from ._records import register_type

LLM_CALL: Final = "llm.call"
register_type(LLM_CALL, 1)

#: the fields that can be large, as (section, key); the request's repeat the conversation on every
#: step and keep a 64 KiB head, the response's are what a replay needs and keep up to half a record
CAPPED: Final = (("request", "messages"), ("request", "tools"), ("request", "options"), ("request", "schema"),
                 ("request", "input"), ("response", "result"), ("response", "tool_calls"), ("error", "message"))
_RESPONSE = frozenset({("response", "result"), ("response", "tool_calls")})


def cap_call_body(body: dict[str, Any], max_payload: int) -> dict[str, Any]:
    """``body`` with its large fields capped (see the module docstring) so its record fits
    ``max_payload``; the input is not changed."""
    small, large = field_cap(max_payload), large_cap(max_payload)
    return cap_fields(body, [(s, k, large if (s, k) in _RESPONSE else small) for s, k in CAPPED], max_payload)
