"""``wippy agents replay RUN``: run a recorded agent run again from the log, and say where it differs.

The replay runs the same code a live run runs (``runner:run`` of the ``wippy.agent:context``
library) on a Lua host of its own, with the agent compiled from the run's ``agent.run.started``
record (its id or inline definition, and the config it was compiled with: context, added tools and
delegates, trait contributions and the moment it was compiled for) against the registry as of the
version the run started at (or ``at``, to see whether a later version would have run the same
way). Its journal is a replay journal (services/_agent_runs.py): every model call is answered
from the run's ``llm.call`` records, every tool call and delegation from its ``agent.tool.result``
records; nothing calls a model or runs a tool, and nothing is written to the log.

The report says how many steps came from the log and lists each :class:`Divergence`: a request
that differs from the recorded one (what differs: the system prompt, a message, the tools, an
option), a step or tool call the log does not hold, a different end (status, steps, finish
reason, answer). Trait ``prompt`` functions are not run by a replay (they are app code with a
process around it), so an agent with one shows its system prompt as differing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from wippy.core import AGENT_RUN_STARTED, Entry, NotFoundError, Record, WippyError
from wippy.lua_stdlib import HostContext, LuaHost, native_library

from ._agent_runs import ReplayStop, RunJournal
from ._llm_recorder import answer_from_log
from ._llm_types import EventSink, LlmError
from ._registry import RegistryService

_LIBRARY = "wippy.agent:context"


class _Registry:
    """The registry as of one version, for the replay's host and the agent's compilation."""

    def __init__(self, entries: Mapping[str, Entry], version: int) -> None:
        self._entries = dict(entries)
        self.version = version

    def get(self, entry_id: str) -> Entry | None:
        return self._entries.get(entry_id)

    def current(self) -> Mapping[str, Entry]:
        return self._entries


class _ReplayLlm:
    """The LLM service of a replay: answers from the run's records, never from a provider."""

    def __init__(self, journal: RunJournal) -> None:
        self.journal = journal

    async def generate(self, messages: list[dict[str, Any]], opts: Mapping[str, Any],
                       on_event: EventSink | None = None, *, caller: str | None = None,
                       card: Any = None) -> dict[str, Any]:
        run_id, turn = opts.get("run_id"), opts.get("turn")
        if not run_id or not isinstance(turn, int):
            raise LlmError("a replay answers only the model calls of the run it replays", error_type="invalid_request")
        options = {k: v for k, v in opts.items() if k not in ("run_id", "turn")}
        request = {"messages": messages, "tools": options.get("tools"),
                   "options": {k: v for k, v in options.items() if k not in ("model", "tools")}}
        try:
            body = await self.journal.model_call(str(run_id), turn, request)
        except ReplayStop as exc:
            raise LlmError(str(exc), error_type="invalid_request") from exc
        if body is None:  # a replay journal always answers or stops
            raise LlmError(f"replay of {run_id}: step {turn} has no record", error_type="invalid_request")
        return await answer_from_log(body, on_event)

    async def structured_output(self, *_a: Any, **_k: Any) -> dict[str, Any]:
        raise LlmError("a replay answers only the model calls of the run it replays", error_type="invalid_request")

    async def embed(self, *_a: Any, **_k: Any) -> dict[str, Any]:
        raise LlmError("a replay answers only the model calls of the run it replays", error_type="invalid_request")

    def available_models(self, _capability: str | None = None) -> list[Any]:
        return []

    def get_classes(self) -> list[Any]:
        return []


async def replay_run(svc: RegistryService, run_id: str, *, at: int | None = None) -> dict[str, Any]:
    """Replay ``run_id`` from the log; the report as plain data (see the module docstring)."""

    projection = svc.agents_projection
    if projection is None:
        raise WippyError("this runtime has no agents projection to find runs in")
    store = projection.store
    started = await _started(projection, run_id)
    version = at if at is not None else int(started.get("registry_version") or svc.version)
    entries = await svc.entries(at=version)
    journal = RunJournal(node=svc.node, store=store, positions=projection.run_positions, replay=True)
    host = LuaHost(HostContext(registry=_Registry(entries, version), node=svc.node, pid=f"replay:{run_id}",
                               llm=_ReplayLlm(journal), agent_runs=journal))
    began = time.perf_counter()
    try:
        library = native_library(_LIBRARY)  # ours (an app's vendored copy has no replay)
        assert library is not None
        lib = host.load(library)
        ok, results = await host.vm.run(host.vm.get(lib, "_replay"), host.vm.to_lua(started))
        elapsed = time.perf_counter() - began
        response: Any = None
        if not ok:
            error: str | None = str(results[0]) if results else "the replay failed"
        elif results and results[0] is not None:
            response, error = host.vm.from_lua(results[0]), None
        else:
            error = str(results[1]) if len(results) > 1 else "the replay gave no answer"
    finally:
        await host.aclose()
    return {
        "run_id": run_id, "agent": started.get("agent"), "registry_version": version,
        "recorded_version": started.get("registry_version"),
        "steps_from_log": journal.replayed_steps,
        "turns": response.get("turns") if isinstance(response, dict) else None,
        "result": response.get("result") if isinstance(response, dict) else None,
        "error": error, "identical": not journal.divergences and error is None,
        "divergences": [d.to_json() for d in journal.divergences], "elapsed_ms": round(elapsed * 1000, 3),
    }


async def run_records(svc: RegistryService, run_id: str) -> list[dict[str, Any]]:
    """``wippy agents show``: every record of a run, oldest first, as ``{seq, at, type, node, body}``
    (the bodies as the log holds them, capped fields included)."""
    projection = svc.agents_projection
    if projection is None:
        raise WippyError("this runtime has no agents projection to find runs in")
    seqs = await projection.run_positions(run_id)
    out = []
    for seq, data in await projection.store.get_raw(projection.store.subjects.agents_stream, seqs):
        record = Record.decode(data)
        if record.body.get("run_id") == run_id:
            out.append({"seq": seq, "at": record.at, "type": record.type, "node": record.node,
                        "body": dict(record.body)})
    if not out:
        raise NotFoundError(f"agent run {run_id} has no records in the log (see `wippy query \"SELECT * FROM "
                            f"agent_runs\"`)")
    return out


async def _started(projection: Any, run_id: str) -> dict[str, Any]:
    """The run's first ``agent.run.started`` body."""
    seqs = await projection.run_positions(run_id)
    for _seq, data in await projection.store.get_raw(projection.store.subjects.agents_stream, seqs[:8]):
        record = Record.decode(data)
        if record.type == AGENT_RUN_STARTED and record.body.get("run_id") == run_id:
            return dict(record.body)
    raise NotFoundError(f"agent run {run_id} has no records in the log (see `wippy query \"SELECT * FROM "
                        f"agent_runs\"`)")
