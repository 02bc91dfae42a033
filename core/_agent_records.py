"""Records of agent runs on the ``agents`` stream, beside the ``llm.call`` records of their model calls.

A run (``runner:run``) is a sequence of steps; each step is one model call (an ``llm.call``
record carrying ``run_id`` and ``turn``) followed by the tool calls and delegations the model
asked for (one ``agent.tool.result`` record each). Every record of a run is appended, and
acknowledged by the log, before the run goes on with what it holds: a model's answer is in the log
before any tool runs on it, a tool's result before the model sees it. A run restarted with the
same id therefore finds every step it already took in the log (see services/_agent_runs.py).

Types, schema 1 (bodies; large fields capped like ``llm.call``'s, listed in ``truncated``)::

    agent.run.started   run_id, parent_run_id, agent, agent_name, model, pid, registry_version,
                        resumed (bool), from_turn (the first step not taken from the log; 1 for a
                        new run), diverged ({turn, reason} | None: why a resumed run left the log),
                        spec (the agent's id, or its inline definition), config (what compiled it:
                        context, tools, delegates, overlays, trait contributions, compiled_at),
                        input (the conversation the run started from), options {max_turns, context,
                        tool_call}, enable_cache, truncated
    agent.tool.started  run_id, turn, call_id, name, registry_id | None, agent_id | None: a tool call
                        (or delegation) begins; appended without waiting (it informs, nothing
                        waits on it), so a run resumed after a crash knows which tool may have run
    agent.tool.result   run_id, turn, call_id, name, registry_id | None, agent_id | None (a
                        delegation), arguments, result (the text the model gets back), is_error,
                        latency_ms, started_at (unix ns), truncated
    agent.run.finished  run_id, status ("completed" | "failed"), turns, finish_reason, result,
                        error | None, tokens {prompt, completion, thinking, total}, truncated

A run that resumes writes a second ``agent.run.started`` (``resumed: true``) when it first does
something the log does not hold; a run whose every step came from the log writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson

from ._records import register_type

RUN_STARTED: Final = "agent.run.started"
TOOL_STARTED: Final = "agent.tool.started"
TOOL_RESULT: Final = "agent.tool.result"
RUN_FINISHED: Final = "agent.run.finished"
for _type in (RUN_STARTED, TOOL_STARTED, TOOL_RESULT, RUN_FINISHED):
    register_type(_type, 1)

#: every record type that belongs to a run (with ``llm.call``, when it carries a run id)
RUN_RECORD_TYPES: Final = (RUN_STARTED, TOOL_STARTED, TOOL_RESULT, RUN_FINISHED)

#: room kept for the envelope and the uncapped fields
ENVELOPE_ROOM: Final = 4096


def truncated_marker(encoded: bytes, cap: int | None) -> dict[str, Any]:
    """What a capped field holds instead of its value: its JSON's size and (unless ``cap`` is
    None) the first ``cap`` bytes of that JSON."""
    out: dict[str, Any] = {"$truncated": len(encoded)}
    if cap is not None:
        out["head"] = encoded[:cap].decode("utf-8", "ignore")
    return out


def is_truncated(value: Any) -> bool:
    return isinstance(value, dict) and "$truncated" in value


def cap_fields(body: dict[str, Any], caps: Sequence[tuple[str, str | None, int]],
               max_payload: int) -> dict[str, Any]:
    """``body`` with each field ``(section, key)`` (``key`` None: the top-level ``section``) whose
    JSON is longer than its cap replaced by a :func:`truncated_marker` and listed in
    ``truncated``; should the record still not fit ``max_payload``, every capped field loses its
    head too. The input is not changed."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in body.items()}
    truncated: list[str] = list(out.get("truncated") or [])
    sizes: dict[str, int] = {}

    def place(section: str, key: str | None) -> tuple[dict[str, Any], str] | None:
        if key is None:
            return (out, section) if section in out else None
        part = out.get(section)
        return (part, key) if isinstance(part, dict) and key in part else None

    for section, key, cap in caps:
        found = place(section, key)
        if found is None:
            continue
        holder, name = found
        encoded = orjson.dumps(holder[name], default=str)
        if len(encoded) > cap:
            path = section if key is None else f"{section}.{key}"
            sizes[path] = len(encoded)
            holder[name] = truncated_marker(encoded, cap)
            truncated.append(path)
    out["truncated"] = truncated
    if len(orjson.dumps(out, default=str)) + ENVELOPE_ROOM > max_payload:
        for section, key, _cap in caps:
            found = place(section, key)
            if found is None:
                continue
            holder, name = found
            path = section if key is None else f"{section}.{key}"
            size = sizes.get(path) or len(orjson.dumps(holder[name], default=str))
            holder[name] = {"$truncated": size}
            if path not in truncated:
                truncated.append(path)
    return out


def field_cap(max_payload: int) -> int:
    """The cap of a field that repeats on every step (a conversation, the tools): 64 KiB, or a
    sixteenth of the max payload when that is smaller."""
    return max(256, min(64 * 1024, max_payload // 16))


def large_cap(max_payload: int) -> int:
    """The cap of a field a run cannot be replayed without (a model's answer, a tool's result,
    the conversation a run started from): half the max payload."""
    return max(256, max_payload // 2)


def cap_run_body(record_type: str, body: dict[str, Any], max_payload: int) -> dict[str, Any]:
    """A run record's body with its large fields capped to fit ``max_payload``."""
    small, large = field_cap(max_payload), large_cap(max_payload)
    if record_type == RUN_STARTED:
        caps: Sequence[tuple[str, str | None, int]] = (
            ("input", None, large), ("config", None, small), ("spec", None, small), ("options", None, small))
    elif record_type == TOOL_RESULT:
        caps = (("arguments", None, small), ("result", None, large))
    elif record_type == TOOL_STARTED:
        caps = ()
    else:
        caps = (("result", None, large), ("error", None, small))
    return cap_fields(body, caps, max_payload)
