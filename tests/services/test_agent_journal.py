"""The run journal (services/_agent_runs.py) on a real log: which recorded steps a resumed run may
take, when it goes live, what a replay notes, and how a request difference is put in words."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wippy.core import AGENT_RUN_STARTED, AGENT_TOOL_RESULT, LLM_CALL_RECORD, JetStreamEventStore, Record
from wippy.services._agent_runs import ReplayStop, RunJournal, request_difference, request_hash

REQUEST = {"messages": [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
                        {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
           "tools": [{"name": "add", "description": "adds", "schema": {"type": "object"}}],
           "options": {"max_tokens": 512}}


def call(turn: int, request: dict[str, Any], *, result: Any = "ok",
         error: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"call_id": f"c{turn}", "run_id": "r1", "turn": turn, "request": request,
            "request_hash": request_hash(request), "error": error,
            "response": None if error else {"result": result, "tool_calls": [], "finish_reason": "stop",
                                            "tokens": {}, "cost": None}}


async def journal(store: JetStreamEventStore, *records: tuple[str, dict[str, Any]],
                  replay: bool = False) -> RunJournal:
    subject = store.subjects.agents("n1")
    for record_type, body in records:
        await store.append(subject, Record(type=record_type, body=body, node="n1"))

    async def positions(run_id: str) -> list[int]:
        stream = store.subjects.agents_stream
        return [seq for seq, r in await store.read(stream) if r.body.get("run_id") == run_id]

    return RunJournal(node="n1", store=store, positions=positions, replay=replay)


STARTED = (AGENT_RUN_STARTED, {"run_id": "r1", "agent": "app:a", "resumed": False, "from_turn": 1})


async def started_records(store: JetStreamEventStore) -> list[dict[str, Any]]:
    return [dict(r.body) for _s, r in await store.read(store.subjects.agents_stream) if r.type == AGENT_RUN_STARTED]


async def test_a_resumed_run_takes_recorded_steps_then_goes_live(store: JetStreamEventStore) -> None:
    runs = await journal(store, STARTED, (LLM_CALL_RECORD, call(1, REQUEST)),
                         (AGENT_TOOL_RESULT, {"run_id": "r1", "turn": 1, "call_id": "t1", "result": "3"}))
    info = await runs.begin("r1", {"agent": "app:a"}, resume=True)
    assert info == {"resumed": True, "recorded_turns": 1, "finished": False}
    assert (await runs.model_call("r1", 1, REQUEST) or {})["call_id"] == "c1"
    assert (await runs.tool_result("r1", 1, "t1") or {})["result"] == "3"
    assert len(await started_records(store)) == 1  # nothing written while the log answers
    assert await runs.model_call("r1", 2, REQUEST) is None  # not in the log: live from step 2
    resumed = (await started_records(store))[1]
    assert (resumed["resumed"], resumed["from_turn"], resumed["diverged"]) == (True, 2, None)
    assert await runs.model_call("r1", 2, REQUEST) is None  # and live it stays


async def test_a_truncated_answer_is_called_again(store: JetStreamEventStore) -> None:
    capped = call(1, REQUEST, result={"$truncated": 900_000, "head": "x"})
    runs = await journal(store, STARTED, (LLM_CALL_RECORD, capped))
    await runs.begin("r1", {}, resume=True)
    assert await runs.model_call("r1", 1, REQUEST) is None
    assert (await started_records(store))[1]["diverged"] == {"turn": 1, "reason": "the recorded answer was truncated"}


async def test_a_failed_step_is_tried_again_but_replayed_as_it_failed(store: JetStreamEventStore) -> None:
    failed = call(1, REQUEST, error={"type": "server_error", "message": "down"})
    runs = await journal(store, STARTED, (LLM_CALL_RECORD, failed))
    await runs.begin("r1", {}, resume=True)
    assert await runs.model_call("r1", 1, REQUEST) is None  # resumed: called again
    replay = await journal(store, replay=True)
    await replay.begin("r1", {}, resume=False)
    assert ((await replay.model_call("r1", 1, REQUEST)) or {}).get("error") == failed["error"]


async def test_a_different_request_leaves_the_log(store: JetStreamEventStore) -> None:
    runs = await journal(store, STARTED, (LLM_CALL_RECORD, call(1, REQUEST)))
    await runs.begin("r1", {}, resume=True)
    changed = {**REQUEST, "options": {"max_tokens": 100}}
    assert await runs.model_call("r1", 1, changed) is None
    assert (await started_records(store))[1]["diverged"]["turn"] == 1


async def test_a_replay_notes_differences_and_stops_where_the_log_ends(store: JetStreamEventStore) -> None:
    runs = await journal(store, STARTED, (LLM_CALL_RECORD, call(1, REQUEST)), replay=True)
    await runs.begin("r1", {}, resume=False)
    changed = {**REQUEST, "tools": []}
    assert (await runs.model_call("r1", 1, changed) or {})["call_id"] == "c1"  # it goes on with the record
    with pytest.raises(ReplayStop, match="tool call t9"):
        await runs.tool_result("r1", 1, "t9")
    with pytest.raises(ReplayStop, match="step 2 has no recorded model call"):
        await runs.model_call("r1", 2, REQUEST)
    with pytest.raises(ReplayStop):
        await runs.record_tool("r1", {"turn": 1, "call_id": "t9"})
    await runs.finish("r1", {"status": "completed", "turns": 1})
    assert [(d.turn, d.what) for d in runs.divergences] == [
        (1, "request"), (1, "missing_tool"), (2, "missing_call"), (None, "status")]
    assert "tools differ (removed ['add'])" in runs.divergences[0].detail
    assert len(await started_records(store)) == 1  # a replay writes nothing
    with pytest.raises(Exception, match="no records"):
        await runs.begin("nope", {}, resume=True)


def test_request_differences_in_words() -> None:
    assert request_difference(REQUEST, REQUEST) == "the request differs"
    other = {**REQUEST, "tools": [*REQUEST["tools"], {"name": "mul"}], "options": {"max_tokens": 10}}
    assert request_difference(REQUEST, other) == "tools differ (added ['mul']); option max_tokens: 512 -> 10"
    system = {**REQUEST, "messages": [{"role": "system", "content": "Be long."}, REQUEST["messages"][1]]}
    assert request_difference(REQUEST, system) == "message 1 (system) differs: the system prompt changed"
    longer = {**REQUEST, "messages": [*REQUEST["messages"], {"role": "user", "content": "more"}]}
    assert request_difference(REQUEST, longer) == "3 messages instead of 2"
    capped = {**REQUEST, "messages": {"$truncated": 10, "head": "["}}
    assert request_difference(capped, REQUEST) == "messages (capped in the log) differ"
    assert request_difference(None, REQUEST).startswith("the request differs")


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                     max_leaves=8)


@given(_json, _json, st.dictionaries(st.text(max_size=3), _json, max_size=3))
def test_the_hash_is_of_the_request_and_not_of_key_order(messages: Any, tools: Any, options: dict[str, Any]) -> None:
    request = {"messages": messages, "tools": tools, "options": options}
    reordered = {"options": dict(reversed(list(options.items()))), "tools": tools, "messages": messages}
    assert request_hash(request) == request_hash(reordered)
    assert request_hash(request) != request_hash({**request, "messages": [messages]})
