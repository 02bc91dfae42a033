"""The agents projection: the ``agents`` stream into DuckDB's ``llm_calls`` and ``agent_steps``.

``llm_calls`` has one row per ``llm.call`` record (a model call, in a run or not)::

    llm_calls(seq, at, node, call_id, run_id, turn, model, provider, prompt_tokens, completion_tokens,
              thinking_tokens, total_tokens, cost, latency_ms, finish_reason, error_type, error,
              operation, pid)

``at`` is when the call ended, ``cost`` the call's total in its model's pricing currency (NULL
when the model declares no pricing), ``error_type``/``error`` are set for a failed call (and
its token columns are 0).

``agent_steps`` has one row per record of an agent run: ``started`` (``agent.run.started``, also
when a run resumes), ``call`` (an ``llm.call`` with a run id), ``tool_started``
(``agent.tool.started``), ``tool`` (``agent.tool.result``) and ``finished``
(``agent.run.finished``). It is also the index a resuming run and ``wippy agents replay`` read
their run's records through (by ``seq``). The ``agent_runs`` view folds it into one row per run
(see projections/_duckdb.py).

The requests and responses themselves stay in the records; the tables are for accounting,
latency and run queries. Rows are appended in batches with the checkpoint in the same
transaction, like ``events``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from wippy.core import (
    AGENT_RUN_FINISHED,
    AGENT_RUN_STARTED,
    AGENT_TOOL_RESULT,
    AGENT_TOOL_STARTED,
    LLM_CALL_RECORD,
    EventStore,
    RecordError,
)

from ._duckdb import ProjectionDB
from ._registry_runner import ProjectionSettings
from ._stream_runner import StreamProjection, envelope_any

AGENTS: Final = "agents"
LLM_CALLS: Final = "llm_calls"
AGENT_STEPS: Final = "agent_steps"
#: the tables this projection writes (what a rebuild swaps)
AGENTS_TABLES: Final = (LLM_CALLS, AGENT_STEPS)
_TYPES: Final = frozenset({LLM_CALL_RECORD, AGENT_RUN_STARTED, AGENT_TOOL_STARTED, AGENT_TOOL_RESULT,
                           AGENT_RUN_FINISHED})


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _opt_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(slots=True)
class AgentsBatch:
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    steps: list[tuple[Any, ...]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.calls) + len(self.steps)

    def add_raw(self, seq: int, data: bytes) -> None:
        found = envelope_any(data, _TYPES)
        if found is None:
            return
        record_type, at, node, body = found
        try:
            if record_type == LLM_CALL_RECORD:
                call = _call_row(seq, at, node, body)
                step = _step_row(seq, at, node, "call", body) if body.get("run_id") else None
            else:
                call, step = None, _step_row(seq, at, node, _STEP_TYPES[record_type], body)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RecordError(f"undecodable {record_type} record {seq}: {exc}") from exc
        if call is not None:
            self.calls.append(call)
        if step is not None:
            self.steps.append(step)


_STEP_TYPES: Final = {AGENT_RUN_STARTED: "started", AGENT_TOOL_STARTED: "tool_started", AGENT_TOOL_RESULT: "tool",
                      AGENT_RUN_FINISHED: "finished"}


def _call_row(seq: int, at: int, node: str, b: dict[str, Any]) -> tuple[Any, ...]:
    call_id = b["call_id"]
    response = b.get("response") or {}
    error = b.get("error") or {}
    tokens = response.get("tokens") or {}
    if not isinstance(call_id, str) or not isinstance(tokens, dict) or not isinstance(error, dict):
        raise TypeError("call_id must be a string, response.tokens and error objects")
    cost = response.get("cost")
    total = cost.get("total") if isinstance(cost, dict) else None
    message = error.get("message")
    if isinstance(message, dict):  # capped: its head
        message = message.get("head") or ""
    return (seq, at // 1000, node, call_id, _str(b.get("run_id")), _str(b.get("model")), _str(b.get("provider")),
            _int(tokens.get("prompt_tokens")), _int(tokens.get("completion_tokens")),
            _int(tokens.get("thinking_tokens")), _int(tokens.get("total_tokens")),
            float(total) if isinstance(total, int | float) and not isinstance(total, bool) else None,
            float(b.get("latency_ms") or 0.0), _str(response.get("finish_reason")), _str(error.get("type")),
            _str(message), _str(b.get("operation")), _str(b.get("pid")), _opt_int(b.get("turn")))


def _step_row(seq: int, at: int, node: str, kind: str, b: dict[str, Any]) -> tuple[Any, ...]:
    run_id = b["run_id"]
    if not isinstance(run_id, str) or not run_id:
        raise TypeError("run_id must be a non-empty string")
    detail: dict[str, Any] | None = None
    status = name = agent = None
    is_error: bool | None = None
    if kind == "started":
        agent, status = _str(b.get("agent")), "running"
        detail = {"resumed": bool(b.get("resumed")), "from_turn": b.get("from_turn"), "diverged": b.get("diverged"),
                  "registry_version": b.get("registry_version"), "model": b.get("model")}
    elif kind == "call":
        response = b.get("response") or {}
        error = b.get("error") or {}
        is_error = bool(error)
        detail = {"finish_reason": response.get("finish_reason") if isinstance(response, dict) else None}
    elif kind == "tool_started":
        name = _str(b.get("name"))
        detail = {"registry_id": b.get("registry_id"), "agent_id": b.get("agent_id")}
    elif kind == "tool":
        name, is_error = _str(b.get("name")), bool(b.get("is_error"))
        detail = {"registry_id": b.get("registry_id"), "agent_id": b.get("agent_id"), "latency_ms": b.get("latency_ms")}
    else:
        status = _str(b.get("status"))
        error = b.get("error")
        is_error = status == "failed"
        detail = {"finish_reason": b.get("finish_reason"), "error": error if isinstance(error, str) else None,
                  "tokens": b.get("tokens")}
    call_id = b.get("call_id")
    turn = b.get("turns") if kind == "finished" else b.get("turn")  # a run's end: how many steps it took
    return (seq, at // 1000, node, run_id, kind, _opt_int(turn), _str(call_id), name, agent,
            _str(b.get("parent_run_id")), status, _str(b.get("pid")), is_error,
            orjson.dumps(detail, default=str).decode())


def write_agents(db: ProjectionDB, batch: AgentsBatch, seq: int) -> None:
    db.write_appends({LLM_CALLS: batch.calls, AGENT_STEPS: batch.steps}, checkpoint=AGENTS, seq=seq)


class AgentsProjection(StreamProjection[AgentsBatch]):
    """Follows the agents stream from its checkpoint into ``llm_calls`` and ``agent_steps``."""

    def __init__(self, store: EventStore, db: ProjectionDB, settings: ProjectionSettings | None = None) -> None:
        super().__init__(store, db, settings, name=AGENTS, stream=store.subjects.agents_stream,
                         new_batch=AgentsBatch, write=write_agents)

    async def run_positions(self, run_id: str) -> list[int]:
        """The stream positions of every record of ``run_id``, oldest first, including those the
        stream held when called but not yet written to the database (found among the received
        ones, so a run's begin never waits for a database write)."""
        pending = await self.received()
        found = {seq for seq, data in pending if _run_of(data) == run_id}
        result = await asyncio.to_thread(
            self.db.query, "SELECT seq FROM store.agent_steps WHERE run_id = ? ORDER BY seq", params=[run_id])
        return sorted(found | {int(row[0]) for row in result.rows})


def _run_of(data: bytes) -> str | None:
    """The run a record belongs to (None: not a run's record, or unreadable: the writer logs those)."""
    try:
        found = envelope_any(data, _TYPES)
    except RecordError:
        return None
    if found is None:
        return None
    run_id = found[3].get("run_id")
    return run_id if isinstance(run_id, str) else None
