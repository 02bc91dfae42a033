"""The model-call projection: ``llm.call`` records of the ``agents`` stream into DuckDB's ``llm_calls``.

One row per call::

    llm_calls(seq, at, node, call_id, run_id, model, provider, prompt_tokens, completion_tokens,
              thinking_tokens, total_tokens, cost, latency_ms, finish_reason, error_type, error,
              operation, pid)

``at`` is when the call ended, ``cost`` the call's total in its model's pricing currency (NULL
when the model declares no pricing), ``error_type``/``error`` are set for a failed call (and
its token columns are 0). The request and response themselves stay in the records
(``wippy events``-style reads of the stream); the table is for accounting and latency queries.
Rows are appended in batches with the checkpoint in the same transaction, like ``events``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from wippy.core import LLM_CALL_RECORD, EventStore, RecordError

from ._duckdb import ProjectionDB
from ._registry_runner import ProjectionSettings
from ._stream_runner import StreamProjection, envelope

LLM_CALLS: Final = "llm_calls"
#: the tables this projection writes (what a rebuild swaps)
LLM_CALLS_TABLES: Final = (LLM_CALLS,)



def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(slots=True)
class LlmCallsBatch:
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)

    def add_raw(self, seq: int, data: bytes) -> None:
        found = envelope(data, LLM_CALL_RECORD)
        if found is None:
            return
        try:
            self.rows.append(_row(seq, *found))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RecordError(f"undecodable {LLM_CALL_RECORD} record {seq}: {exc}") from exc


def _row(seq: int, at: int, node: str, b: dict[str, Any]) -> tuple[Any, ...]:
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
            _str(message), _str(b.get("operation")), _str(b.get("pid")))


def write_llm_calls(db: ProjectionDB, batch: LlmCallsBatch, seq: int) -> None:
    db.write_rows(LLM_CALLS, batch.rows, checkpoint=LLM_CALLS, seq=seq)


class LlmCallsProjection(StreamProjection[LlmCallsBatch]):
    """Follows the agents stream from its checkpoint into the ``llm_calls`` table."""

    def __init__(self, store: EventStore, db: ProjectionDB, settings: ProjectionSettings | None = None) -> None:
        super().__init__(store, db, settings, name=LLM_CALLS, stream=store.subjects.agents_stream,
                         new_batch=LlmCallsBatch, write=write_llm_calls)
