"""examples/assistant on a real node: an agent that calls its tool, against the fake vendor."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.llm_fake import FakeLlm, llm_fake_fixture, reply, tool_call  # noqa: F401 - fixture
from wippy.services import Node, RuntimeSettings, StateDir, run_terminal_process
from wippy.services._llm_providers import aclose_all

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "assistant"


@pytest.fixture
async def node(nats_url: str, namespace: str, tmp_path: Path, llm_fake: FakeLlm) -> AsyncIterator[Node]:
    app = tmp_path / "assistant"
    shutil.copytree(EXAMPLE, app, ignore=shutil.ignore_patterns(".wippy"))
    settings = RuntimeSettings(state_dir=tmp_path / "state", nats_url=nats_url, namespace=namespace, node="n1",
                               app_dir=app, environ={"OPENAI_BASE_URL": llm_fake.openai_url,
                                                     "OPENAI_API_KEY": "sk-test"})
    state = StateDir(settings.state_dir)
    assert state.try_own()
    try:
        async with Node(settings, state) as n:
            await n.registry.apply_files(app)
            await n.start_services()
            yield n
    finally:
        state.release()
        await aclose_all()


async def test_the_agent_calls_its_tool_and_answers(node: Node, llm_fake: FakeLlm) -> None:
    llm_fake.queue(tool_call("word_count", {"text": "the quick brown fox jumps"}),
                   reply("There are 5 words."))
    out, err = io.StringIO(), io.StringIO()
    code = await run_terminal_process(node.registry, node.node, "assistant:ask", [], env=node.env,
                                      processes=node.processes, stores=node.stores,
                                      stdin=io.StringIO(""), stdout=out, stderr=err)
    assert code == 0, out.getvalue() + err.getvalue()
    assert out.getvalue().splitlines() == ["Q: How many words are in 'the quick brown fox jumps'?",
                                           "A: There are 5 words.", "(2 model calls)"]
    first, second = [r.body for r in llm_fake.requests if r.api == "openai.chat"]
    assert first["model"] == "gpt-4o-mini"
    assert [t["function"]["name"] for t in first["tools"]] == ["word_count"]
    result = next(m for m in second["messages"] if m["role"] == "tool")
    assert json.loads(result["content"]) == {"words": 5}
    # both model calls of the run are on the log under one run id
    rows = await node.registry.query("SELECT run_id, model, finish_reason FROM llm_calls ORDER BY seq")
    assert [(r["model"], r["finish_reason"]) for r in rows] == [("gpt-4o-mini", "tool_call"),
                                                                 ("gpt-4o-mini", "stop")]
    assert rows[0]["run_id"] and rows[0]["run_id"] == rows[1]["run_id"]
    assert "run_id" not in first  # never sent to the vendor
