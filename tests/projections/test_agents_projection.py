"""The agents projection: llm_calls rows from llm.call records, the same whatever the batching, live or replayed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wippy.core import (
    AGENT_RUN_FINISHED,
    AGENT_RUN_STARTED,
    AGENT_TOOL_RESULT,
    LLM_CALL_RECORD,
    JetStreamEventStore,
    Record,
    RecordError,
    cap_llm_call_body,
)
from wippy.core._agent_records import field_cap
from wippy.projections import AGENTS, AgentsProjection, ProjectionDB, ProjectionSettings, replay_to
from wippy.projections._agents import AgentsBatch, write_agents

FIELD_CAP = 64 * 1024

COLUMNS = ("SELECT seq, node, call_id, run_id, model, provider, prompt_tokens, completion_tokens, thinking_tokens, "
           "total_tokens, cost, latency_ms, finish_reason, error_type, error, operation, pid FROM llm_calls "
           "ORDER BY seq")


def call_body(i: int, *, run_id: str | None = None, failed: bool = False, prompt: int = 11, completion: int = 7,
              cost: float | None = 0.5) -> dict[str, Any]:
    tokens = {"prompt_tokens": prompt, "completion_tokens": completion, "thinking_tokens": 0,
              "total_tokens": prompt + completion}
    response = None if failed else {
        "result": f"answer {i}", "tool_calls": [], "finish_reason": "stop", "tokens": tokens,
        "cost": None if cost is None else {"input": cost / 2, "cached_input": 0.0, "output": cost / 2, "total": cost}}
    return {"call_id": f"c{i}", "run_id": run_id, "pid": None, "operation": "generate", "model": "small-model",
            "provider": "wippy.llm.openai:provider", "provider_model": "fake-small",
            "request": {"messages": [{"role": "user", "content": [{"type": "text", "text": f"q{i}"}]}],
                        "tools": None, "options": {"temperature": 0.3}},
            "response": response,
            "error": {"type": "server_error", "message": f"boom {i}"} if failed else None,
            "latency_ms": 12.5 + i, "started_at": 1_700_000_000_000_000_000 + i, "truncated": []}


def row_of(seq: int, body: dict[str, Any], node: str = "n1") -> tuple[Any, ...]:
    """What the table should say for one record (the model of the fold)."""
    resp = body["response"] or {}
    tokens = resp.get("tokens") or {}
    cost = resp.get("cost")
    err = body["error"] or {}
    return (seq, node, body["call_id"], body["run_id"], body["model"], body["provider"],
            tokens.get("prompt_tokens", 0), tokens.get("completion_tokens", 0), tokens.get("thinking_tokens", 0),
            tokens.get("total_tokens", 0), cost["total"] if cost else None, body["latency_ms"],
            resp.get("finish_reason"), err.get("type"), err.get("message"), body["operation"], body["pid"])


def encoded(bodies: list[dict[str, Any]]) -> list[tuple[int, bytes]]:
    return [(i + 1, Record(type=LLM_CALL_RECORD, body=b, node="n1", at=1_000_000 * (i + 1)).encode())
            for i, b in enumerate(bodies)]


def rows(db: ProjectionDB) -> list[tuple[Any, ...]]:
    return db.query(COLUMNS).rows


def test_a_call_and_a_failure_become_rows() -> None:
    bodies = [call_body(1, run_id="run-1"), call_body(2, failed=True), call_body(3, cost=None)]
    db = ProjectionDB(None)
    batch = AgentsBatch()
    for seq, data in encoded(bodies):
        batch.add_raw(seq, data)
    write_agents(db, batch, 3)
    assert rows(db) == [row_of(i + 1, b) for i, b in enumerate(bodies)]
    assert db.checkpoint(AGENTS)[0] == 3
    (summary,) = db.query("SELECT count(*) AS n, sum(total_tokens) AS tokens, count(error_type) AS failed "
                          "FROM llm_calls").records()
    assert summary == {"n": 3, "tokens": 36, "failed": 1}


_calls = st.lists(st.builds(call_body, st.integers(0, 1000), run_id=st.none() | st.sampled_from(["r1", "r2"]),
                            failed=st.booleans(), prompt=st.integers(0, 10**6), completion=st.integers(0, 10**6),
                            cost=st.none() | st.floats(0, 100)),
                  max_size=25)


@settings(max_examples=40, deadline=None)
@given(_calls, st.lists(st.integers(1, 25), max_size=5))
def test_any_batching_gives_the_rows_of_one_batch(bodies: list[dict[str, Any]], cuts: list[int]) -> None:
    records = encoded(bodies)
    whole = ProjectionDB(None)
    batch = AgentsBatch()
    for seq, data in records:
        batch.add_raw(seq, data)
    write_agents(whole, batch, len(records))
    split = ProjectionDB(None)
    start = 0
    for end in sorted({c for c in cuts if c < len(records)} | {len(records)}):
        part = AgentsBatch()
        for seq, data in records[start:end]:
            part.add_raw(seq, data)
        write_agents(split, part, end)
        start = end
    assert rows(whole) == rows(split) == [row_of(i + 1, b) for i, b in enumerate(bodies)]
    assert whole.checkpoint(AGENTS)[0] == split.checkpoint(AGENTS)[0] == len(records)


def test_malformed_records_are_refused_whole() -> None:
    batch = AgentsBatch()
    with pytest.raises(RecordError):
        batch.add_raw(1, b"{not json")
    with pytest.raises(RecordError):
        batch.add_raw(2, Record(type=LLM_CALL_RECORD, body={"call_id": 7}).encode())
    with pytest.raises(RecordError):
        batch.add_raw(3, Record(type=LLM_CALL_RECORD, body={**call_body(1), "latency_ms": "slow"}).encode())
    batch.add_raw(4, Record(type="events.event", body={}).encode())  # not a call: no row
    assert len(batch) == 0


def test_large_fields_are_capped_to_fit_the_payload() -> None:
    body = call_body(1)
    huge = "x" * (3 * FIELD_CAP)
    body["request"]["messages"] = [{"role": "user", "content": huge}]
    body["response"]["result"] = huge
    capped = cap_llm_call_body(body, 1024 * 1024)
    assert capped["truncated"] == ["request.messages"]  # a response keeps up to half a record
    assert capped["response"]["result"] == huge
    marker = capped["request"]["messages"]
    assert marker["$truncated"] > 3 * FIELD_CAP and len(marker["head"]) <= FIELD_CAP
    assert capped["response"]["tokens"] == body["response"]["tokens"]  # small fields untouched
    assert body["request"]["messages"][0]["content"] is huge  # the input is not changed
    small = cap_llm_call_body(body, 64 * 1024)  # a smaller server: a smaller cap
    assert field_cap(64 * 1024) == 4096 and len(small["request"]["messages"]["head"]) <= 4096
    assert small["truncated"] == ["request.messages", "response.result"]
    assert len(Record(type=LLM_CALL_RECORD, body=small).encode()) < 64 * 1024
    tiny = cap_llm_call_body(body, 4096)  # no room even for the heads: markers alone, the record still fits
    assert tiny["request"]["messages"] == {"$truncated": marker["$truncated"]}
    assert len(Record(type=LLM_CALL_RECORD, body=tiny).encode()) < 4096


async def test_live_restarted_and_replayed_projections_agree(store: JetStreamEventStore, tmp_path: Path) -> None:
    bodies = [call_body(i, run_id="r" if i % 2 else None, failed=i % 3 == 0) for i in range(1, 9)]
    fast = ProjectionSettings(flush_interval=timedelta(milliseconds=20))
    db = ProjectionDB(tmp_path / "live.duckdb")
    try:
        live = AgentsProjection(store, db, fast)
        await live.start()
        for b in bodies[:5]:
            await store.append(store.subjects.agents("n1"), Record(type=LLM_CALL_RECORD, body=b, node="n1"))
        await live.catch_up()
        await live.aclose()
        live = AgentsProjection(store, db, fast)  # resumes after its checkpoint
        await live.start()
        for b in bodies[5:]:
            await store.append(store.subjects.agents("n2"), Record(type=LLM_CALL_RECORD, body=b, node="n2"))
        await live.catch_up()
        await live.aclose()
        expected = [row_of(i + 1, b, "n1" if i < 5 else "n2") for i, b in enumerate(bodies)]
        assert rows(db) == expected
        result = await replay_to(store, tmp_path / "replayed.duckdb", full=True)
        assert result.records[AGENTS] == len(bodies)
        replayed = ProjectionDB(tmp_path / "replayed.duckdb")
        try:
            assert rows(replayed) == expected
            assert orjson.loads(orjson.dumps(replayed.checkpoint(AGENTS))) == [len(bodies), 0]
        finally:
            replayed.close()
    finally:
        db.close()


# -- agent runs: agent_steps and the agent_runs view ----------------------------------------------------

def run_records(run: str, steps: int, *, finished: str | None, tools: int = 1) -> list[tuple[str, dict[str, Any]]]:
    """The records of one run: started, a call and ``tools`` tool results per step, maybe its end."""
    out: list[tuple[str, dict[str, Any]]] = [(AGENT_RUN_STARTED, {
        "run_id": run, "agent": "app:a", "pid": None, "resumed": False, "from_turn": 1, "diverged": None})]
    for turn in range(1, steps + 1):
        out.append((LLM_CALL_RECORD, {**call_body(turn, run_id=run), "call_id": f"{run}-{turn}", "turn": turn}))
        out += [(AGENT_TOOL_RESULT, {"run_id": run, "turn": turn, "call_id": f"t{turn}.{i}", "name": "add",
                                     "result": "3", "is_error": i == 1}) for i in range(tools)]
    if finished is not None:
        out.append((AGENT_RUN_FINISHED, {"run_id": run, "status": finished, "turns": steps, "finish_reason": "stop",
                                         "result": "done", "error": "boom" if finished == "failed" else None}))
    return out


def encode_records(records: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, bytes]]:
    return [(i + 1, Record(type=t, body=b, node="n1", at=1_000_000 * (i + 1)).encode())
            for i, (t, b) in enumerate(records)]


_runs = st.lists(st.tuples(st.integers(0, 4), st.sampled_from([None, "completed", "failed"]), st.integers(0, 2)),
                 min_size=1, max_size=4)


@settings(max_examples=30, deadline=None)
@given(_runs, st.lists(st.integers(1, 40), max_size=4), st.randoms(use_true_random=False))
def test_agent_steps_and_runs_whatever_the_batching(runs: list[tuple[int, str | None, int]], cuts: list[int],
                                                    rnd: Any) -> None:
    per_run = [run_records(f"r{i}", steps, finished=end, tools=tools) for i, (steps, end, tools) in enumerate(runs)]
    interleaved: list[tuple[str, dict[str, Any]]] = []
    while any(per_run):  # runs interleave on the stream, each in its own order
        queue = rnd.choice([q for q in per_run if q])
        interleaved.append(queue.pop(0))
    records = encode_records(interleaved)
    dbs = []
    for parts in ([len(records)], sorted({c for c in cuts if c < len(records)} | {len(records)})):
        db = ProjectionDB(None)
        start = 0
        for end in parts:
            batch = AgentsBatch()
            for seq, data in records[start:end]:
                batch.add_raw(seq, data)
            write_agents(db, batch, end)
            start = end
        dbs.append(db)
    whole, split = (db.query("SELECT * FROM agent_runs ORDER BY run").records() for db in dbs)
    assert whole == split
    steps_whole, steps_split = (db.query("SELECT * FROM agent_steps ORDER BY seq").rows for db in dbs)
    assert steps_whole == steps_split
    for i, (steps, end, tools) in enumerate(runs):
        (row,) = [r for r in whole if r["run"] == f"r{i}"]
        assert row["status"] == (end or "running") and row["turns"] == steps
        assert row["tool_calls"] == steps * tools and row["model_calls"] == steps
        assert row["total_tokens"] == 18 * steps and row["agent"] == "app:a"
        assert row["error"] == ("boom" if end == "failed" else None)
