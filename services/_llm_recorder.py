"""Every model call on the log: the node's LLM service with an ``llm.call`` record per call.

``RecordedLlmService`` is the node's ``LlmService``: each ``generate``, ``structured_output`` and
``embed`` (successful or not) becomes one ``llm.call`` record (core/_llm_records.py) on the
node's ``agents`` subject, holding the request, the response or the error, the model and
provider, tokens, cost and latency. ``LlmCallLog`` appends them pipelined: the caller never waits
for the acknowledgement, and a record that cannot be appended is logged, never raised into the
call (the call's answer matters more than its record). ``flush()`` waits for the log to hold
every record made so far.

Options that belong to the recording never reach a provider: ``run_id`` and ``turn`` (the agent
run and step a call belongs to) and, from the Lua bridge, the calling process as the ``caller``
keyword. A call of a run is durable: its record is acknowledged by the log before the caller gets
the answer, and a step the run's journal (services/_agent_runs.py) holds already is answered from
the log without calling the model (and without a new record).
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

from ._agent_runs import RunJournal, request_hash
from ._llm import EnvLookup, LlmService
from ._llm_types import EventSink, LlmError

log = logging.getLogger("wippy.llm.calls")

#: the usage record the service reports for the call running in this context (see RecordedLlmService)
_USAGE: ContextVar[dict[str, Any] | None] = ContextVar("wippy_llm_usage", default=None)
#: call options the recording owns (the rest is the request's)
_RECORDING_OPTIONS = frozenset({"run_id", "turn"})


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
            self._publisher.emit(self._subject, self._encode(body))
        except (WippyError, TypeError, ValueError) as exc:  # orjson's errors are TypeError/ValueError
            self.failed += 1
            log.warning("the record of LLM call %s was not written: %s", body.get("call_id"), exc)

    async def record_now(self, body: dict[str, Any]) -> None:
        """Append one call's record and wait for the log to hold it (a step of a durable run);
        raises when it cannot, since the run must not go on without it."""
        await self.store.append(self._subject, Record(type=LLM_CALL_RECORD, body=self._capped(body), node=self.node))

    def _capped(self, body: dict[str, Any]) -> dict[str, Any]:
        plain = orjson.loads(orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS))
        return cap_llm_call_body(plain, self.store.max_payload)

    def _encode(self, body: dict[str, Any]) -> bytes:
        return Record(type=LLM_CALL_RECORD, body=self._capped(body), node=self.node).encode()

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
    turn: int | None
    caller: str | None
    request: dict[str, Any]
    started_at: int = field(default_factory=time.time_ns)
    started: float = field(default_factory=time.monotonic)
    #: what the service reported for it (filled in by ``_usage`` once it succeeded)
    usage: dict[str, Any] = field(default_factory=dict)


class RecordedLlmService(LlmService):
    """An ``LlmService`` whose every call leaves an ``llm.call`` record in ``calls``."""

    def __init__(self, registry: Any, env_lookup: EnvLookup, *, calls: LlmCallLog,
                 runs: RunJournal | None = None) -> None:
        super().__init__(registry, env_lookup, recorder=self._usage)
        self.calls = calls
        #: the node's agent runs: steps they hold already are answered from the log
        self.runs = runs

    async def _usage(self, usage: dict[str, Any]) -> None:
        # the service reports a successful call's usage (id, model, provider) from inside the call
        holder = _USAGE.get()
        if holder is not None:
            holder.update(usage)

    async def generate(self, messages: list[dict[str, Any]], opts: Mapping[str, Any],
                       on_event: EventSink | None = None, *, caller: str | None = None,
                       card: Mapping[str, Any] | None = None) -> dict[str, Any]:
        options, run_id, turn = _split(opts)
        call = _Call("generate", options, run_id, turn, caller,
                     {"messages": messages, "tools": options.get("tools"), "options": _request_options(options)})
        if self.runs is not None and run_id is not None and turn is not None:
            recorded = await self.runs.model_call(run_id, turn, call.request)
            if recorded is not None:
                return await answer_from_log(recorded, on_event)
        return await self._recorded(call, super().generate(messages, options, on_event, card=card))

    async def structured_output(self, schema: Mapping[str, Any], messages: list[dict[str, Any]],
                                opts: Mapping[str, Any], *, caller: str | None = None,
                                card: Mapping[str, Any] | None = None) -> dict[str, Any]:
        options, run_id, turn = _split(opts)
        call = _Call("structured_output", options, run_id, turn, caller,
                     {"messages": messages, "schema": schema, "options": _request_options(options)})
        return await self._recorded(call, super().structured_output(schema, messages, options, card=card))

    async def embed(self, texts: str | list[str], opts: Mapping[str, Any], *,
                    caller: str | None = None, card: Mapping[str, Any] | None = None) -> dict[str, Any]:
        options, run_id, turn = _split(opts)
        call = _Call("embed", options, run_id, turn, caller, {"input": texts, "options": _request_options(options)})
        return await self._recorded(call, super().embed(texts, options, card=card))

    async def _recorded(self, call: _Call, answer: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        token = _USAGE.set(call.usage)
        try:
            out = await answer
        except Exception as exc:
            await self._keep(call, self._body(call, error=_error(exc)))
            raise
        finally:
            _USAGE.reset(token)
        await self._keep(call, self._body(call, response=_response(call.operation, out)))
        return out

    async def _keep(self, call: _Call, body: dict[str, Any]) -> None:
        if call.run_id is not None and call.turn is not None:
            await self.calls.record_now(body)  # the run goes on only once the log holds this step
        else:
            self.calls.record(body)

    def _body(self, call: _Call, *, response: dict[str, Any] | None = None,
              error: dict[str, Any] | None = None) -> dict[str, Any]:
        usage = call.usage
        if usage:
            model, provider, provider_model = usage.get("model"), usage.get("provider_id"), usage.get("provider_model")
        else:
            model, provider, provider_model = self._describe(call.options)
        return {"call_id": usage.get("usage_id") or uuid.uuid4().hex, "run_id": call.run_id, "turn": call.turn,
                "pid": call.caller, "request_hash": request_hash(call.request), "operation": call.operation,
                "model": model, "provider": provider, "provider_model": provider_model,
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


def _split(opts: Mapping[str, Any]) -> tuple[dict[str, Any], str | None, int | None]:
    """The call's options without the recording's own, and the run id and step they named."""
    options = {k: v for k, v in opts.items() if k not in _RECORDING_OPTIONS}
    run_id, turn = opts.get("run_id"), opts.get("turn")
    return (options, None if run_id is None or run_id == "" else str(run_id),
            int(turn) if isinstance(turn, int | float) and not isinstance(turn, bool) else None)


async def answer_from_log(body: Mapping[str, Any], on_event: EventSink | None) -> dict[str, Any]:
    """A step's answer as ``generate`` gave it, from its ``llm.call`` record (a step of a run taken
    from the log). A step that failed then fails again with the recorded error. A stream gets the
    whole text as one chunk, then ``done``."""
    error = body.get("error")
    if isinstance(error, dict):
        message = error.get("message")
        raise LlmError(str(message.get("head") if isinstance(message, dict) else message),
                       error_type=str(error.get("type") or "server_error"))
    response = body.get("response") or {}
    tool_calls: list[Any] = list(response.get("tool_calls") or [])
    out = {"result": response.get("result") or "", "tool_calls": tool_calls,
           "finish_reason": response.get("finish_reason"), "tokens": response.get("tokens") or {},
           "metadata": {"cost": response.get("cost"), "model": body.get("model"), "from_log": True,
                        "call_id": body.get("call_id")}}
    if on_event is not None:
        if out["result"]:
            await on_event({"type": "chunk", "content": out["result"]})
        for call in tool_calls:
            if isinstance(call, dict):
                await on_event({"type": "tool_call", "name": call.get("name"), "arguments": call.get("arguments"),
                                "id": call.get("id")})
        await on_event({"type": "done", "meta": {"finish_reason": out["finish_reason"], "model": body.get("model"),
                                                 "usage": out["tokens"]}})
    return out


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
