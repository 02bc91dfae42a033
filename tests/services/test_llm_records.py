"""Every model call is an llm.call record on the agents stream, and a row of ``llm_calls`` for `wippy query`.

A real node (its own LlmService records every call) and Lua processes calling ``wippy.llm:llm``
against the fake vendor server on loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.llm_fake import FakeLlm, error, llm_fake_fixture, reply  # noqa: F401 - fixture
from wippy.core import LLM_CALL_RECORD, Changeset, Entry, Op, Record
from wippy.services import Node, RuntimeSettings, StateDir
from wippy.services._llm_providers import aclose_all

from .conftest import HOSTS, lua

FIELD_CAP = 64 * 1024  # the cap of a request field on a 1 MiB server

MODEL = Entry("app.models:mini", "registry.entry",
              {"type": "llm.model", "name": "mini", "class": ["fast"], "capabilities": ["generate"], "priority": 1},
              {"providers": [{"id": "wippy.llm.openai:provider", "provider_model": "gpt-mini"}],
               "pricing": {"input": 2, "output": 8}})


@pytest.fixture
async def llm_node(nats_url: str, namespace: str, tmp_path: Path, llm_fake: FakeLlm) -> AsyncIterator[Node]:
    settings = RuntimeSettings(state_dir=tmp_path / "state", nats_url=nats_url, namespace=namespace, node="n1",
                               environ={"OPENAI_API_KEY": "sk-shell", "OPENAI_BASE_URL": llm_fake.openai_url})
    state = StateDir(settings.state_dir)
    assert state.try_own()
    try:
        async with Node(settings, state) as node:
            await node.registry.apply(Changeset(ops=tuple(Op("create", e.id, e) for e in (*HOSTS, MODEL))))
            yield node
    finally:
        state.release()
        await aclose_all()  # SDK clients are shared per process and bound to this test's event loop


async def run_lua(node: Node, body: str, *args: Any) -> Any:
    source = 'local llm = require("llm")\nreturn { main = function(...)\n' + body + "\nend }\n"
    entry = lua("app:caller", source, imports={"llm": "wippy.llm:llm"})
    await node.registry.apply(Changeset(ops=(Op("create", entry.id, entry),)))
    assert node.processes is not None
    pid = node.processes.spawn(None, entry.id, "app:procs", {}, list(args))
    value, err = await asyncio.wait_for(node.processes.wait(pid), 30)
    assert err is None, err
    return value


async def call_records(node: Node) -> list[Record]:
    assert node.llm_calls is not None
    await node.llm_calls.flush()
    rows = await node.store.read_raw(node.store.subjects.agents_stream)
    return [r for r in (Record.decode(data) for _seq, data in rows) if r.type == LLM_CALL_RECORD]


async def test_calls_and_failures_are_recorded_and_queryable(llm_node: Node, llm_fake: FakeLlm) -> None:
    llm_fake.queue(reply("first", prompt_tokens=1000, completion_tokens=10), reply("second"),
                   *[error(500, "the vendor broke")] * 3)  # the SDK's own retries see it too
    got = await run_lua(llm_node, """
        local a = llm.generate("hello", { model = "mini", temperature = 0.2 })
        local b = llm.generate("in a run", { model = "class:fast", run_id = "run-42" })
        local _, err = llm.generate("doomed", { model = "mini" })
        return { a = a.result, usage = a.usage_record.usage_id, b = b.result, err = err }
    """)
    assert got["a"] == "first" and got["b"] == "second" and "the vendor broke" in got["err"]
    assert all("run_id" not in r.body for r in llm_fake.requests)  # the recording's option stays here

    rows = await llm_node.registry.query(
        "SELECT node, call_id, run_id, model, provider, prompt_tokens, completion_tokens, total_tokens, cost, "
        "latency_ms, finish_reason, error_type, error, operation FROM llm_calls ORDER BY seq")
    assert [(r["node"], r["model"], r["provider"], r["run_id"], r["operation"]) for r in rows] == [
        ("n1", "mini", "wippy.llm.openai:provider", None, "generate"),
        ("n1", "mini", "wippy.llm.openai:provider", "run-42", "generate"),
        ("n1", "mini", "wippy.llm.openai:provider", None, "generate"),
    ]
    first, second, failed = rows
    assert first["call_id"] == got["usage"]  # the id the caller got back
    assert (first["prompt_tokens"], first["completion_tokens"], first["total_tokens"]) == (1000, 10, 1010)
    assert first["cost"] == pytest.approx((1000 * 2 + 10 * 8) / 1e6) and first["finish_reason"] == "stop"
    assert second["total_tokens"] == 18 and all(r["latency_ms"] > 0 for r in rows)
    assert failed["error_type"] == "server_error" and "the vendor broke" in failed["error"]
    assert failed["total_tokens"] == 0 and failed["finish_reason"] is None

    records = await call_records(llm_node)
    assert len(records) == 3 and all(r.node == "n1" for r in records)
    body = records[0].body
    assert body["provider_model"] == "gpt-mini" and body["request"]["options"] == {"temperature": 0.2}
    assert body["request"]["messages"][0]["role"] == "user" and body["response"]["result"] == "first"
    assert body["error"] is None and body["truncated"] == [] and body["started_at"] < records[0].at
    assert records[2].body["response"] is None and records[2].body["error"]["type"] == "server_error"

    before = await llm_node.registry.query("SELECT * FROM llm_calls ORDER BY seq")
    await llm_node.rebuild_projections()  # rebuilt from the log and swapped in: the same rows
    assert await llm_node.registry.query("SELECT * FROM llm_calls ORDER BY seq") == before


async def test_a_call_that_fails_before_the_vendor_is_recorded(llm_node: Node, llm_fake: FakeLlm) -> None:
    got = await run_lua(llm_node, """
        local _, e1 = llm.generate("x", { model = "nope" })
        local _, e2 = llm.generate("x", { model = "mini", temperature = "hot" })
        return { e1 = e1, e2 = e2 }
    """)
    assert got == {"e1": "Model or class not found: nope", "e2": "option temperature must be a number, got 'hot'"}
    assert not llm_fake.requests
    rows = await llm_node.registry.query("SELECT model, provider, error_type, error FROM llm_calls ORDER BY seq")
    assert rows == [
        {"model": "nope", "provider": None, "error_type": "model_error", "error": "Model or class not found: nope"},
        {"model": "mini", "provider": "wippy.llm.openai:provider", "error_type": "invalid_request",
         "error": "option temperature must be a number, got 'hot'"},
    ]


async def test_a_huge_prompt_is_capped_in_its_record(llm_node: Node, llm_fake: FakeLlm) -> None:
    llm_fake.queue(reply("short"))
    got = await run_lua(llm_node, """
        local r, err = llm.generate(string.rep("word ", ...), { model = "mini" })
        return { r = r and r.result, err = err }
    """, FIELD_CAP)
    assert got == {"r": "short"}
    (record,) = await call_records(llm_node)
    assert record.body["truncated"] == ["request.messages"]
    assert record.body["request"]["messages"]["$truncated"] > 5 * FIELD_CAP
    assert record.body["response"]["result"] == "short"
    (row,) = await llm_node.registry.query("SELECT total_tokens, error_type FROM llm_calls")
    assert row == {"total_tokens": 18, "error_type": None}
