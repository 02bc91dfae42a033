"""Every model call on the log: the node's LLM service with an ``llm.call`` record per call.

``RecordedLlmService`` is the node's ``LlmService``: each ``generate``, ``structured_output`` and
``embed`` (successful or not) becomes one ``llm.call`` record (core/_llm_records.py) on the
node's ``agents`` subject, holding the request, the response or the error, the model and
provider, tokens, cost and latency. ``LlmCallLog`` appends them pipelined: the caller never waits
for the acknowledgement, and a record that cannot be appended is logged, never raised into the
call (the call's answer matters more than its record). ``flush()`` waits for the log to hold
every record made so far.

Two options belong to the recording and never reach a provider: ``run_id`` (the agent run a call
belongs to) and, from the Lua bridge, the calling process as the ``caller`` keyword.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import orjson

from wippy.core import LLM_CALL_RECORD, EventStore, Pipeline, Record, WippyError, cap_llm_call_body

from ._llm import EnvLookup, LlmService
from ._llm_types import EventSink, LlmError

log = logging.getLogger("wippy.llm.calls")

#: the usage record the service reports for the call running in this context (see RecordedLlmService)
_USAGE: ContextVar[dict[str, Any] | None] = ContextVar("wippy_llm_usage", default=None)
#: call options the recording owns (the rest is the request's)
_RECORDING_OPTIONS = frozenset({"run_id"})


class LlmCallLog:
    """Appends ``llm.call`` records to the node's ``agents`` subject, pipelined."""

    def __init__(self, *, node: str, store: EventStore) -> None:
        self.node = node
        self.store = store
        self._subject = store.subjects.agents(node)
        self._publisher = Pipeline(store, store.subjects.agents_stream)
        #: records that could not be made or queued (logged)
        self.failed = 0

    async def start(self) -> None:
        await self._publisher.start(await self.store.last_seq(self.store.subjects.agents_stream))

    def record(self, body: dict[str, Any]) -> None:
        """Queue one call's record (capped to fit the log's max payload); never raises."""
        try:
            plain = orjson.loads(orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS))
            record = Record(type=LLM_CALL_RECORD, body=cap_llm_call_body(plain, self.store.max_payload),
                            node=self.node)
            self._publisher.emit(self._subject, record.encode())
        except (WippyError, TypeError, ValueError) as exc:  # orjson's errors are TypeError/ValueError
            self.failed += 1
            log.warning("the record of LLM call %s was not written: %s", body.get("call_id"), exc)

    async def flush(self) -> None:
        await self._publisher.flush()

    async def aclose(self) -> None:
        """Write what is queued, then stop. Idempotent."""
        await self._publisher.aclose()


@dataclass(slots=True)
class _Call:
    """One call being recorded."""

    operation: str
    options: dict[str, Any]
    run_id: str | None
    caller: str | None
    request: dict[str, Any]
    started_at: int = field(default_factory=time.time_ns)
    started: float = field(default_factory=time.monotonic)
    #: what the service reported for it (filled in by ``_usage`` once it succeeded)
    usage: dict[str, Any] = field(default_factory=dict)


class RecordedLlmService(LlmService):
    """An ``LlmService`` whose every call leaves an ``llm.call`` record in ``calls``."""

    def __init__(self, registry: Any, env_lookup: EnvLookup, *, calls: LlmCallLog) -> None:
        super().__init__(registry, env_lookup, recorder=self._usage)
        self.calls = calls

    async def _usage(self, usage: dict[str, Any]) -> None:
        # the service reports a successful call's usage (id, model, provider) from inside the call
        holder = _USAGE.get()
        if holder is not None:
            holder.update(usage)

    async def generate(self, messages: list[dict[str, Any]], opts: Mapping[str, Any],
                       on_event: EventSink | None = None, *, caller: str | None = None) -> dict[str, Any]:
        options, run_id = _split(opts)
        call = _Call("generate", options, run_id, caller,
                     {"messages": messages, "tools": options.get("tools"), "options": _request_options(options)})
        return await self._recorded(call, super().generate(messages, options, on_event))

    async def structured_output(self, schema: Mapping[str, Any], messages: list[dict[str, Any]],
                                opts: Mapping[str, Any], *, caller: str | None = None) -> dict[str, Any]:
        options, run_id = _split(opts)
        call = _Call("structured_output", options, run_id, caller,
                     {"messages": messages, "schema": schema, "options": _request_options(options)})
        return await self._recorded(call, super().structured_output(schema, messages, options))

    async def embed(self, texts: str | list[str], opts: Mapping[str, Any], *,
                    caller: str | None = None) -> dict[str, Any]:
        options, run_id = _split(opts)
        call = _Call("embed", options, run_id, caller, {"input": texts, "options": _request_options(options)})
        return await self._recorded(call, super().embed(texts, options))

    async def _recorded(self, call: _Call, answer: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        token = _USAGE.set(call.usage)
        try:
            out = await answer
        except Exception as exc:
            self.calls.record(self._body(call, error=_error(exc)))
            raise
        finally:
            _USAGE.reset(token)
        self.calls.record(self._body(call, response=_response(call.operation, out)))
        return out

    def _body(self, call: _Call, *, response: dict[str, Any] | None = None,
              error: dict[str, Any] | None = None) -> dict[str, Any]:
        usage = call.usage
        if usage:
            model, provider, provider_model = usage.get("model"), usage.get("provider_id"), usage.get("provider_model")
        else:
            model, provider, provider_model = self._describe(call.options)
        return {"call_id": usage.get("usage_id") or uuid.uuid4().hex, "run_id": call.run_id, "pid": call.caller,
                "operation": call.operation, "model": model, "provider": provider, "provider_model": provider_model,
                "request": call.request, "response": response, "error": error,
                "latency_ms": round((time.monotonic() - call.started) * 1000, 3), "started_at": call.started_at,
                "truncated": []}

    def _describe(self, opts: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
        """(model, provider, provider model) of a call that failed before the service reported them."""
        model = opts.get("model")
        if not isinstance(model, str) or not model:
            return None, None, None
        direct = opts.get("provider_id")
        if direct:
            return model, str(direct), model
        try:
            card = self.catalog.resolve(model)
        except WippyError:
            return model, None, None
        ref = card["providers"][0] if card.get("providers") else {}
        return (str(card.get("name") or model), str(ref["id"]) if ref.get("id") else None,
                str(ref.get("provider_model") or card.get("name") or model))


def _split(opts: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The call's options without the recording's own, and the run id they named."""
    options = {k: v for k, v in opts.items() if k not in _RECORDING_OPTIONS}
    run_id = opts.get("run_id")
    return options, None if run_id is None or run_id == "" else str(run_id)


def _request_options(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k not in ("model", "tools")}


def _response(operation: str, out: Mapping[str, Any]) -> dict[str, Any]:
    metadata = out.get("metadata") or {}
    result = out.get("result")
    if operation == "embed":  # the vectors themselves are no use in a log: their count and size
        vectors = result if isinstance(result, list) and result and isinstance(result[0], list) else [result]
        result = {"vectors": len(vectors), "dimensions": len(vectors[0]) if isinstance(vectors[0], list) else 0}
    return {"result": result, "tool_calls": out.get("tool_calls"), "finish_reason": out.get("finish_reason"),
            "tokens": out.get("tokens"), "cost": metadata.get("cost")}


def _error(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, LlmError):
        return {"type": exc.error_type, "message": exc.message}
    if isinstance(exc, WippyError):
        return {"type": exc.kind, "message": str(exc)}
    return {"type": type(exc).__name__, "message": str(exc)}
