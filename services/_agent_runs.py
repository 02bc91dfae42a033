"""Durable agent runs: every step of a run in the log before the run goes on, and runs resumed from it.

``runner:run`` (the ``wippy.agent:context`` library) tells the node's :class:`RunJournal` when a
run begins, the LLM service asks it before each model call of the run, the library asks it before
each tool call, and tells it the run's end. The records it writes (``agent.run.started``,
``agent.tool.result``, ``agent.run.finished``; the model calls are ``llm.call`` records written
by the LLM service, see core/_agent_records.py) are appended and acknowledged before the run
sees what they hold.

A run begun with an id the caller chose (``runner:run(builder, {run_id = "order-42"})``) may have
records already: the process that ran it crashed, the node stopped, or the same run is asked for
again. The journal then loads them (through the ``agent_steps`` projection's index) and the run
takes its steps from the log: a model call whose request is the recorded one gets the recorded
answer without calling the model, a tool call with a recorded result gets that result without
running the tool. At the first step the log does not hold (or whose request differs from the
recorded one: the code or the agent changed since) the run goes live for good and writes a second
``agent.run.started`` record saying from which step and why. A run whose every step came from the
log writes nothing more; asking again for a finished run returns its answer at no cost. A tool that
finished but whose result was not yet in the log when the node died runs again on resume (at
least once, like any side effect outside a transaction with the log).

A journal made with ``replay=True`` (``wippy agents replay``) never writes and never lets a model
or tool be called: every step must come from the log, and each difference between what the
replayed run asks for and what the log holds is noted as a :class:`Divergence`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
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
    NotFoundError,
    Record,
    RecordError,
    WippyError,
    cap_run_body,
    is_truncated,
)

log = logging.getLogger("wippy.agents.runs")

#: the stream positions of a run's records, oldest first (the agents projection's index)
Positions = Callable[[str], Awaitable[list[int]]]
#: runs a journal keeps while they are open (a run whose process vanished is dropped, oldest first)
MAX_OPEN_RUNS: Final = 10_000


@dataclass(frozen=True, slots=True)
class Divergence:
    """A difference between a replayed run and its records."""

    run_id: str
    turn: int | None
    what: str      # "request" | "missing_call" | "missing_tool" | "truncated" | "result" | "status" | "turns" | ...
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "turn": self.turn, "what": self.what, "detail": self.detail}


class ReplayStop(Exception):
    """A replayed run asked for a step its records do not hold."""


@dataclass(slots=True)
class _Run:
    run_id: str
    #: turn -> the newest llm.call body of that step
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: (turn, call id) -> the newest agent.tool.result body
    tools: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)
    started: dict[str, Any] | None = None
    finished: dict[str, Any] | None = None
    #: the log held records of this run when it began
    recorded: bool = False
    #: the run does something the log does not hold (from its start for a new run)
    live: bool = False
    #: what the run began with this time (written when a resumed run goes live)
    beginning: dict[str, Any] = field(default_factory=dict)
    #: steps taken from the log
    from_log: int = 0
    #: (turn, call id) of tool calls an earlier attempt started and the log holds no result of
    started_tools: set[tuple[int, str]] = field(default_factory=set)


class RunJournal:
    """The records of the agent runs of one node (or of one replay)."""

    def __init__(self, *, node: str, store: EventStore, positions: Positions | None, replay: bool = False) -> None:
        self.node = node
        self.store = store
        self.positions = positions
        self.replay = replay
        self._runs: OrderedDict[str, _Run] = OrderedDict()
        #: what a replay found different (replay journals only)
        self.divergences: list[Divergence] = []
        #: steps a replay took from the log
        self.replayed_steps = 0
        self._subject = store.subjects.agents(node)
        #: when each tool call that is running began: (run, turn, call id) -> (monotonic, unix ns)
        self._clock: dict[tuple[str, Any, str], tuple[float, int]] = {}

    # -- the run's life ------------------------------------------------------------------------------
    async def begin(self, run_id: str, beginning: Mapping[str, Any], *, resume: bool) -> dict[str, Any]:
        """Open a run. ``beginning`` is the ``agent.run.started`` body without ``run_id``,
        ``resumed``, ``from_turn`` and ``diverged``; ``resume`` says whether the log may hold the
        run already (its id came from the caller). Returns ``{resumed, recorded_turns, finished}``."""
        run = _Run(run_id, beginning=dict(beginning))
        if resume or self.replay:
            await self._load(run)
        if self.replay and run.started is None:
            raise NotFoundError(f"agent run {run_id} has no records in the log")
        if not run.recorded and not self.replay:
            run.live = True
            run.beginning = {}  # written now; an open run keeps no copy of its conversation
            await self._append(AGENT_RUN_STARTED, {**beginning, "run_id": run_id, "resumed": False, "from_turn": 1,
                                                    "diverged": None})
        self._runs[run_id] = run
        self._runs.move_to_end(run_id)
        while len(self._runs) > MAX_OPEN_RUNS:
            dropped, _ = self._runs.popitem(last=False)
            log.warning("agent run %s was never finished; its journal entry is dropped", dropped)
        return {"resumed": run.recorded, "recorded_turns": max(run.calls, default=0),
                "finished": run.finished is not None}

    async def model_call(self, run_id: str, turn: int, request: Mapping[str, Any]) -> dict[str, Any] | None:
        """The recorded ``llm.call`` body of step ``turn`` when the run takes that step from the
        log; None when the model must be called (and recorded). ``request`` is what would be
        sent: ``{messages, tools, options}`` (see :func:`request_hash`)."""
        run = self._runs.get(run_id)
        if run is None or run.live:
            return None
        body = run.calls.get(turn)
        if body is None:
            if self.replay:
                self._diverge(run_id, turn, "missing_call", f"the log holds no model call for step {turn}")
                raise ReplayStop(f"replay of {run_id}: step {turn} has no recorded model call")
            await self._go_live(run, turn, None)
            return None
        if body.get("request_hash") != request_hash(request):
            reason = "the request differs from the recorded one"
            if self.replay:
                self._diverge(run_id, turn, "request", request_difference(body.get("request"), request))
                self.replayed_steps += 1
                return body  # go on with what the model answered then
            await self._go_live(run, turn, {"turn": turn, "reason": reason})
            return None
        response = body.get("response")
        if body.get("error") is None and (not isinstance(response, dict) or any(
                is_truncated(response.get(k)) for k in ("result", "tool_calls"))):
            if self.replay:
                self._diverge(run_id, turn, "truncated", "the recorded answer was too large for the log")
                raise ReplayStop(f"replay of {run_id}: step {turn}'s answer is not in the log in full")
            await self._go_live(run, turn, {"turn": turn, "reason": "the recorded answer was truncated"})
            return None
        if body.get("error") is not None and not self.replay:
            await self._go_live(run, turn, None)  # the step failed then: try it again
            return None
        run.from_log += 1
        if self.replay:
            self.replayed_steps += 1
        return body

    async def tool_result(self, run_id: str, turn: int, call_id: str,
                          call: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """The recorded ``agent.tool.result`` body of one tool call when the run takes it from the
        log; None when the tool must run now (then :meth:`record_tool`): the journal notes that it
        starts (an ``agent.tool.started`` record, not waited for; ``call`` gives its name and ids)."""
        run = self._runs.get(run_id)
        body = None if run is None or run.live else run.tools.get((turn, call_id))
        if run is not None and not run.live and (body is None or is_truncated(body.get("result"))):
            what = "missing_tool" if body is None else "truncated"
            if self.replay:
                self._diverge(run_id, turn, what, f"tool call {call_id} has no recorded result"
                              if body is None else f"the result of tool call {call_id} was too large for the log")
                raise ReplayStop(f"replay of {run_id}: step {turn}'s tool call {call_id} is not in the log")
            await self._go_live(run, turn, None)
            body = None
        if body is not None:
            return body
        self._clock[(run_id, turn, call_id)] = (time.monotonic(), time.time_ns())
        info = {k: v for k, v in (call or {}).items() if k in ("name", "registry_id", "agent_id")}
        await self._note(AGENT_TOOL_STARTED, {**info, "run_id": run_id, "turn": turn, "call_id": call_id})
        return None

    def may_have_run(self, run_id: str, turn: int, call_id: str) -> bool:
        """Whether an earlier attempt of this run started this tool call and the log holds no result
        of it (the node stopped while it ran): running it again may repeat what it did."""
        run = self._runs.get(run_id)
        return run is not None and (turn, call_id) in run.started_tools

    async def record_tool(self, run_id: str, body: Mapping[str, Any]) -> None:
        """Append one tool call's result (acknowledged before this returns)."""
        if self.replay:
            raise ReplayStop("a replay does not run tools")
        clock = self._clock.pop((run_id, body.get("turn"), str(body.get("call_id"))), None)
        timing = {} if clock is None else {"latency_ms": round((time.monotonic() - clock[0]) * 1000, 3),
                                           "started_at": clock[1]}
        await self._append(AGENT_TOOL_RESULT, {**body, **timing, "run_id": run_id})

    async def finish(self, run_id: str, finished: Mapping[str, Any]) -> None:
        """Close a run: append its ``agent.run.finished`` unless every step came from the log and
        the log already says how it ended (a replay compares instead)."""
        run = self._runs.pop(run_id, None)
        for key in [k for k in self._clock if k[0] == run_id]:  # tools that never reported
            del self._clock[key]
        if self.replay:
            if run is not None:
                self._compare_end(run, finished)
            return
        if run is not None and not run.live and run.finished is not None:
            return
        await self._append(AGENT_RUN_FINISHED, {**finished, "run_id": run_id})

    def recorded_start(self, run_id: str) -> dict[str, Any] | None:
        run = self._runs.get(run_id)
        return None if run is None else run.started

    # -- helpers ---------------------------------------------------------------------------------------
    async def _load(self, run: _Run) -> None:
        if self.positions is None:
            return
        seqs = await self.positions(run.run_id)
        for _seq, data in await self.store.get_raw(self.store.subjects.agents_stream, seqs):
            try:
                record = Record.decode(data)
            except RecordError as exc:
                log.error("a record of agent run %s cannot be read: %s", run.run_id, exc)
                continue
            body = dict(record.body)
            if body.get("run_id") != run.run_id:
                continue
            turn = body.get("turn")
            if record.type == AGENT_RUN_STARTED:
                run.started = run.started or body
            elif record.type == LLM_CALL_RECORD and isinstance(turn, int):
                run.calls[turn] = body
            elif record.type == AGENT_TOOL_RESULT and isinstance(turn, int):
                run.tools[(turn, str(body.get("call_id")))] = body
            elif record.type == AGENT_TOOL_STARTED and isinstance(turn, int):
                run.started_tools.add((turn, str(body.get("call_id"))))
            elif record.type == AGENT_RUN_FINISHED:
                run.finished = body
        run.recorded = run.started is not None
        run.started_tools -= set(run.tools)  # started and finished: nothing uncertain about them

    async def _go_live(self, run: _Run, turn: int, diverged: dict[str, Any] | None) -> None:
        """From step ``turn`` on the run does what the log does not hold: forget its records (a live
        run never reads them again) and say so in the log."""
        run.live = True
        run.calls, run.tools, run.finished = {}, {}, None  # a live run reads no more records
        if diverged is not None:  # a different request: its tool calls are not the ones started before
            run.started_tools.clear()
        beginning, run.beginning = run.beginning, {}
        await self._append(AGENT_RUN_STARTED, {**beginning, "run_id": run.run_id, "resumed": True,
                                               "from_turn": turn, "diverged": diverged})
        log.info("agent run %s resumed: %d steps from the log, live from step %d%s", run.run_id, run.from_log,
                 turn, f" ({diverged['reason']})" if diverged else "")

    async def _note(self, record_type: str, body: dict[str, Any]) -> None:
        """Append a record without waiting for the log (what it says is informative: nothing
        waits on it); a failure is logged."""
        if self.replay:
            return
        try:
            ack = await self.store.publish_pipelined(self._subject, self._encode(record_type, body))
        except WippyError as exc:
            log.warning("a %s record of agent run %s was not written: %s", record_type, body.get("run_id"), exc)
            return
        ack.add_done_callback(_log_failure)

    def _encode(self, record_type: str, body: dict[str, Any]) -> bytes:
        plain = orjson.loads(orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS))
        capped = cap_run_body(record_type, plain, self.store.max_payload)
        return Record(type=record_type, body=capped, node=self.node).encode()

    async def _append(self, record_type: str, body: dict[str, Any]) -> None:
        plain = orjson.loads(orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS))
        capped = cap_run_body(record_type, plain, self.store.max_payload)
        await self.store.append(self._subject, Record(type=record_type, body=capped, node=self.node))

    def _diverge(self, run_id: str, turn: int | None, what: str, detail: str) -> None:
        self.divergences.append(Divergence(run_id, turn, what, detail))

    def _compare_end(self, run: _Run, finished: Mapping[str, Any]) -> None:
        recorded = run.finished
        if recorded is None:
            self._diverge(run.run_id, None, "status", "the log holds no end of this run (it never finished)")
            return
        for key in ("status", "turns", "finish_reason"):
            if recorded.get(key) != finished.get(key):
                self._diverge(run.run_id, None, "turns" if key == "turns" else key,
                              f"{key}: the log says {recorded.get(key)!r}, the replay {finished.get(key)!r}")
        if is_truncated(recorded.get("result")):
            return
        if recorded.get("result") != finished.get("result"):
            self._diverge(run.run_id, None, "result", "the final answer differs from the recorded one")


def _log_failure(ack: Any) -> None:
    if not ack.cancelled() and ack.exception() is not None:
        log.warning("an agent run record was not acknowledged: %s", ack.exception())


def request_hash(request: Mapping[str, Any]) -> str:
    """The identity of a model request: sha256 of its messages, tools and options as canonical JSON."""
    return hashlib.sha256(_dumps({"messages": request.get("messages"), "tools": request.get("tools"),
                                  "options": request.get("options")})).hexdigest()


def request_difference(recorded: Any, current: Mapping[str, Any]) -> str:
    """What differs between a recorded request and the one a replay would send, in words (a part the
    log capped can only be named)."""
    if not isinstance(recorded, dict):
        return "the request differs (the log does not hold the recorded one)"
    out: list[str] = []
    old_tools, new_tools = recorded.get("tools"), current.get("tools")
    if is_truncated(old_tools):
        out.append("tools (capped in the log) may differ")
    elif _dumps(old_tools) != _dumps(new_tools):
        old_names, new_names = _names(old_tools), _names(new_tools)
        added, removed = sorted(new_names - old_names), sorted(old_names - new_names)
        change = ", ".join(([f"added {added}"] if added else []) + ([f"removed {removed}"] if removed else []))
        out.append(f"tools differ ({change or 'descriptions or schemas changed'})")
    old_opts, new_opts = recorded.get("options"), current.get("options")
    if isinstance(old_opts, dict) and isinstance(new_opts, dict) and not is_truncated(old_opts):
        changed = sorted(k for k in set(old_opts) | set(new_opts) if _dumps(old_opts.get(k)) != _dumps(new_opts.get(k)))
        out += [f"option {k}: {old_opts.get(k)!r} -> {new_opts.get(k)!r}" for k in changed]
    old_msgs, new_msgs = recorded.get("messages"), current.get("messages")
    if is_truncated(old_msgs):
        out.append("messages (capped in the log) differ")
    elif isinstance(old_msgs, list) and isinstance(new_msgs, list):
        if len(old_msgs) != len(new_msgs):
            out.append(f"{len(new_msgs)} messages instead of {len(old_msgs)}")
        for i, (a, b) in enumerate(zip(old_msgs, new_msgs, strict=False), 1):
            if _dumps(a) != _dumps(b):
                role = b.get("role") if isinstance(b, dict) else None
                note = ": the system prompt changed" if role == "system" else ""
                out.append(f"message {i} ({role}) differs{note}")
                break
    return "; ".join(out) or "the request differs"


def _dumps(value: Any) -> bytes:
    """Canonical JSON (sorted keys); the standard library's for what orjson refuses (integers past 64 bits)."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return json.dumps(value, default=str, sort_keys=True, separators=(",", ":")).encode()


def _names(tools: Any) -> set[str]:
    return {str(t.get("name")) for t in tools if isinstance(t, dict)} if isinstance(tools, list) else set()
