"""Durable agent runs: every step in the log, runs resumed from it, ``wippy agents replay``.

An app runs an agent with a tool (``runner:run``) on a real node against the fake vendor. The
tests read what the run left on the agents stream and in ``agent_runs``/``agent_steps``, ask for a
finished run again (answered from the log), stop a node in the middle of a run and resume it on a
new node (no model call for the recorded step, the tool not run again), change the agent and see a
resumed run leave the log, retry a failed run, and replay runs: identical at their own registry
version, diverging (and saying where) at a version with another prompt, through the CLI too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests import llm_fake as fake_server
from tests.llm_fake import FakeLlm, error, reply, tool_call
from wippy.core import Entry, load_app
from wippy.ops._cli import main
from wippy.services import Node, RuntimeSettings, StateDir, execute

from .agent_app import ASSISTANT_AND_ASK, LLM_APP_HEAD, WEATHER_LUA, WEATHER_TOOL, write_app
from .conftest import HOSTS, ProcNode

llm_fake = fake_server.llm_fake

APP_INDEX = LLM_APP_HEAD + WEATHER_TOOL + ASSISTANT_AND_ASK


ASK = """\
local agent_context = require("agent_context")
local prompt = require("prompt")

local function main(question: string, run_id: string?): any
    local runner, err = agent_context.new():load_agent("assistant")
    if not runner then error(err) end
    local response, run_err = runner:run(prompt.new():add_user(question), { run_id = run_id })
    if not response then return { error = run_err } end
    return { answer = response.result, turns = response.turns, run_id = response.run_id }
end

return { main = main }
"""


class App:
    """The weather app on a state dir; ``node()`` opens a node on it (again after a stop)."""

    def __init__(self, tmp_path: Path, nats_url: str, namespace: str, fake: FakeLlm) -> None:
        app = write_app(tmp_path, {"_index.yaml": APP_INDEX, "weather.lua": WEATHER_LUA, "ask.lua": ASK})
        self.entries = [le.entry for le in load_app(app).entries]
        self.settings = RuntimeSettings(
            state_dir=tmp_path / "state", nats_url=nats_url, namespace=namespace, node="n1",
            environ={"OPENAI_API_KEY": "sk-fake", "OPENAI_BASE_URL": fake.openai_url})
        self.fake = fake

    @contextlib.asynccontextmanager
    async def node(self) -> AsyncIterator[ProcNode]:
        state = StateDir(self.settings.state_dir)
        assert state.try_own()
        try:
            async with Node(self.settings, state) as node:
                proc = ProcNode(node)
                if node.registry.get("app:ask") is None:
                    await proc.apply(*HOSTS, *self.entries)
                yield proc
        finally:
            state.release()


@pytest.fixture
def weather_app(tmp_path: Path, nats_url: str, namespace: str, llm_fake: FakeLlm) -> App:
    return App(tmp_path, nats_url, namespace, llm_fake)


async def run_records(proc: ProcNode, run_id: str) -> list[tuple[str, dict[str, Any]]]:
    node = proc.node
    assert node.llm_calls is not None
    await node.llm_calls.flush()
    stream = node.store.subjects.agents_stream
    return [(r.type, dict(r.body)) for _s, r in await node.store.read(stream) if r.body.get("run_id") == run_id]


async def agent_run(proc: ProcNode, run_id: str) -> dict[str, Any]:
    rows = await proc.node.registry.query("SELECT * FROM agent_runs WHERE run = ?", params=[run_id])
    assert len(rows) == 1, rows
    return rows[0]


async def replay(proc: ProcNode, run_id: str, at: int | None = None) -> dict[str, Any]:
    report: dict[str, Any] = await execute(proc.node.registry, "agents_replay", {"run": run_id, "at": at})
    return report


async def test_a_run_leaves_every_step_in_the_log(weather_app: App, llm_fake: FakeLlm) -> None:
    llm_fake.queue(tool_call("weather", {"city": "Oslo"}), reply("It is sunny in Oslo."))
    async with weather_app.node() as proc:
        answer, err = await proc.run("app:ask", "Weather in Oslo?", "order-1")
        assert err is None and answer == {"answer": "It is sunny in Oslo.", "turns": 2, "run_id": "order-1"}
        records = await run_records(proc, "order-1")
        assert [(t, b.get("turn")) for t, b in records] == [
            ("agent.run.started", None), ("llm.call", 1), ("agent.tool.started", 1), ("agent.tool.result", 1),
            ("llm.call", 2), ("agent.run.finished", None)]
        started, call1, tool_started, tool, _call2, finished = (b for _t, b in records)
        assert (tool_started["name"], tool_started["registry_id"]) == ("weather", "app:weather")
        assert started["agent"] == "app:assistant" and started["resumed"] is False and started["from_turn"] == 1
        assert started["input"][0]["role"] == "user" and started["options"]["max_turns"] == 10
        assert call1["pid"] == started["pid"] and call1["pid"].startswith("{")  # the calling process
        assert tool["name"] == "weather" and tool["registry_id"] == "app:weather" and not tool["is_error"]
        assert json.loads(tool["result"]) == {"forecast": "sunny in Oslo"} and tool["latency_ms"] >= 0
        assert finished["status"] == "completed" and finished["turns"] == 2
        assert finished["result"] == "It is sunny in Oslo." and finished["tokens"]["total"] == 36
        row = await agent_run(proc, "order-1")
        assert {k: row[k] for k in ("agent", "status", "turns", "tool_calls", "model_calls", "total_tokens",
                                    "resumes", "finish_reason")} == {
            "agent": "app:assistant", "status": "completed", "turns": 2, "tool_calls": 1, "model_calls": 2,
            "total_tokens": 36, "resumes": 0, "finish_reason": "stop"}
        steps = await proc.node.registry.query(
            "SELECT type, turn, name FROM agent_steps WHERE run_id = 'order-1' ORDER BY seq")
        assert [(s["type"], s["turn"], s["name"]) for s in steps] == [
            ("started", None, None), ("call", 1, None), ("tool_started", 1, "weather"), ("tool", 1, "weather"),
            ("call", 2, None), ("finished", 2, None)]
        calls = await proc.node.registry.query("SELECT turn, pid FROM llm_calls WHERE run_id = 'order-1' ORDER BY seq")
        assert [c["turn"] for c in calls] == [1, 2] and calls[0]["pid"] == started["pid"]


async def test_asking_again_for_a_finished_run_answers_from_the_log(weather_app: App, llm_fake: FakeLlm) -> None:
    llm_fake.queue(tool_call("weather", {"city": "Oslo"}), reply("It is sunny in Oslo."))
    async with weather_app.node() as proc:
        first, _ = await proc.run("app:ask", "Weather in Oslo?", "order-2")
        asked = len(llm_fake.requests)
        before = await run_records(proc, "order-2")
        again, err = await proc.run("app:ask", "Weather in Oslo?", "order-2")
        assert err is None and again == first
        assert len(llm_fake.requests) == asked  # no model call
        assert await run_records(proc, "order-2") == before  # and nothing new in the log
        # without a run id of its own, the same question is a new run
        llm_fake.queue(reply("Still sunny."))
        fresh, _ = await proc.run("app:ask", "Weather in Oslo?")
        assert fresh["answer"] == "Still sunny." and fresh["run_id"] != "order-2"


async def test_an_interrupted_run_resumes_without_calling_the_model_again(weather_app: App,
                                                                          llm_fake: FakeLlm) -> None:
    llm_fake.queue(tool_call("weather", {"city": "Oslo"}), reply("too late", delay=60))
    async with weather_app.node() as proc:
        proc.spawn("app:ask", "Weather in Oslo?", "order-3")
        async with asyncio.timeout(20):
            while len(llm_fake.requests) < 2:  # noqa: ASYNC110 - the fake has no event; step 2 asked for
                await asyncio.sleep(0.01)
        # the node stops in the middle of step 2
    llm_fake.queue(reply("Sunny in Oslo, after all."))
    async with weather_app.node() as proc:
        row = await agent_run(proc, "order-3")
        assert (row["status"], row["turns"], row["tool_calls"]) == ("interrupted", 1, 1)
        asked = len(llm_fake.requests)
        answer, err = await proc.run("app:ask", "Weather in Oslo?", "order-3")
        assert err is None and answer == {"answer": "Sunny in Oslo, after all.", "turns": 2, "run_id": "order-3"}
        assert len(llm_fake.requests) == asked + 1  # only step 2 went to the model
        sent = llm_fake.last("openai.chat").body["messages"]
        assert sent[-1]["role"] == "tool" and "sunny in Oslo" in sent[-1]["content"]  # the tool result, from the log
        records = await run_records(proc, "order-3")
        assert [t for t, _b in records].count("agent.tool.result") == 1  # the tool did not run again
        resumed = [b for t, b in records if t == "agent.run.started"][1]
        assert (resumed["resumed"], resumed["from_turn"], resumed["diverged"]) == (True, 2, None)
        row = await agent_run(proc, "order-3")
        assert (row["status"], row["turns"], row["resumes"], row["model_calls"]) == ("completed", 2, 1, 2)


async def test_a_changed_agent_leaves_the_log_and_runs_live(weather_app: App, llm_fake: FakeLlm) -> None:
    llm_fake.queue(reply("Sunny."))
    async with weather_app.node() as proc:
        await proc.run("app:ask", "Weather?", "order-4")
        agent = proc.node.registry.get("app:assistant")
        assert agent is not None
        await proc.apply(Entry(agent.id, agent.kind, agent.meta, {**agent.data, "prompt": "You are terse."}))
        llm_fake.queue(reply("Sun."))
        answer, _ = await proc.run("app:ask", "Weather?", "order-4")
        assert answer["answer"] == "Sun."  # asked anew: the request is not the recorded one
        resumed = [b for t, b in await run_records(proc, "order-4") if t == "agent.run.started"][1]
        assert resumed["from_turn"] == 1
        assert resumed["diverged"] == {"turn": 1, "reason": "the request differs from the recorded one"}


async def test_a_failed_run_is_tried_again_when_resumed(weather_app: App, llm_fake: FakeLlm) -> None:
    llm_fake.queue(error(400, "bad request"))
    async with weather_app.node() as proc:
        failed, _ = await proc.run("app:ask", "Weather?", "order-5")
        assert "bad request" in failed["error"]
        row = await agent_run(proc, "order-5")
        assert row["status"] == "failed" and "bad request" in row["error"]
        llm_fake.queue(reply("Sunny."))
        answer, _ = await proc.run("app:ask", "Weather?", "order-5")
        assert answer["answer"] == "Sunny."
        assert (await agent_run(proc, "order-5"))["status"] == "completed"


async def test_replay_is_identical_then_diverges_at_another_version(weather_app: App, llm_fake: FakeLlm,
                                                                     capfd: pytest.CaptureFixture[str]) -> None:
    llm_fake.queue(tool_call("weather", {"city": "Oslo"}), reply("It is sunny in Oslo."))
    async with weather_app.node() as proc:
        await proc.run("app:ask", "Weather in Oslo?", "order-6")
        asked = len(llm_fake.requests)
        report = await replay(proc, "order-6")
        assert report["identical"] and report["divergences"] == [] and report["error"] is None
        assert (report["steps_from_log"], report["turns"], report["result"]) == (2, 2, "It is sunny in Oslo.")
        assert report["agent"] == "app:assistant" and report["registry_version"] == report["recorded_version"]
        agent = proc.node.registry.get("app:assistant")
        assert agent is not None
        version = await proc.apply(Entry(agent.id, agent.kind, agent.meta, {**agent.data, "prompt": "Be terse."}))
        changed = await replay(proc, "order-6", at=version)
        assert not changed["identical"] and changed["registry_version"] == version
        assert changed["steps_from_log"] == 2  # diverging steps still come from the log
        first = changed["divergences"][0]
        assert (first["turn"], first["what"]) == (1, "request")
        assert "message 1 (system) differs: the system prompt changed" in first["detail"]
        assert (await replay(proc, "order-6"))["identical"]  # at its own version it still replays exactly
        assert len(llm_fake.requests) == asked  # no replay called the model
        with pytest.raises(Exception, match="agent run nope has no records"):
            await replay(proc, "nope")
    # the CLI, on the state dir once the node has stopped
    args = ["agents", "replay", "order-6", "--state-dir", str(weather_app.settings.state_dir),
            "--nats", str(weather_app.settings.nats_url), "--namespace", weather_app.settings.namespace]
    assert await asyncio.to_thread(main, args) == 0
    assert await asyncio.to_thread(main, [*args, "--at", str(version)]) == 1
    capfd.readouterr()
    show = ["agents", "show", "order-6", *args[3:]]
    assert await asyncio.to_thread(main, show) == 0
    lines = [line.strip() for line in capfd.readouterr().out.splitlines()]
    shown = [line.split(None, 1)[1] if line.split(None, 1)[0].isdigit() else line for line in lines]
    assert shown[0].startswith("started: agent app:assistant (model gpt-test), registry version 1, pid {")
    assert shown[1].startswith("step 1 model gpt-test: tool_call, 18 tokens,")
    assert shown[1].endswith('asks for weather({"city": "Oslo"})')
    assert shown[2] == "step 1 tool weather (call_1) starts"
    assert shown[3].startswith("step 1 tool weather (call_1) answered in ")
    assert shown[3].endswith(': {"forecast":"sunny in Oslo"}')
    assert shown[4].startswith("step 2 model gpt-test: stop, 18 tokens,")
    assert shown[5:] == ["It is sunny in Oslo.", "completed after 2 steps: It is sunny in Oslo."]
    assert await asyncio.to_thread(main, [*show[:2], "nope", *show[3:]]) == 1


async def test_a_delegation_is_a_run_of_its_own_resumed_with_its_parent(weather_app: App, llm_fake: FakeLlm) -> None:
    forecaster = Entry("app:forecaster", "registry.entry", {"type": "agent.gen1", "name": "forecaster"},
                       {"prompt": "You forecast.", "model": "gpt-test", "tools": ["app:weather"]})
    llm_fake.queue(tool_call("ask_forecaster", {"message": "Oslo tomorrow?"}, call_id="d1"),  # the assistant
                   tool_call("weather", {"city": "Oslo"}, call_id="w1"),  # the forecaster, its own loop
                   reply("Sunny tomorrow."),
                   reply("The forecaster says: sunny tomorrow."))  # the assistant again
    async with weather_app.node() as proc:
        agent = proc.node.registry.get("app:assistant")
        assert agent is not None
        await proc.apply(forecaster, Entry(agent.id, agent.kind, agent.meta, {
            **agent.data, "delegates": [{"id": "app:forecaster", "name": "ask_forecaster", "rule": "for forecasts"}]}))
        answer, err = await proc.run("app:ask", "Weather tomorrow?", "order-7")
        assert err is None and answer["answer"] == "The forecaster says: sunny tomorrow."
        runs = await proc.node.registry.query(
            "SELECT run, agent, status, turns, tool_calls, parent_run_id FROM agent_runs WHERE run LIKE 'order-7%' "
            "ORDER BY run")
        assert runs == [
            {"run": "order-7", "agent": "app:assistant", "status": "completed", "turns": 2, "tool_calls": 1,
             "parent_run_id": None},
            {"run": "order-7/d1", "agent": "app:forecaster", "status": "completed", "turns": 2, "tool_calls": 1,
             "parent_run_id": "order-7"}]
        delegated = [b for t, b in await run_records(proc, "order-7") if t == "agent.tool.result"]
        assert delegated[0]["agent_id"] == "app:forecaster" and delegated[0]["result"] == "Sunny tomorrow."
        asked = len(llm_fake.requests)
        again, _ = await proc.run("app:ask", "Weather tomorrow?", "order-7")
        assert again == answer and len(llm_fake.requests) == asked  # the whole tree from the log
        report = await replay(proc, "order-7")
        assert report["identical"] and report["steps_from_log"] == 2
        sub = await replay(proc, "order-7/d1")  # a delegation replays on its own too
        assert sub["identical"] and sub["agent"] == "app:forecaster" and sub["result"] == "Sunny tomorrow."


TRACK = Entry("app:track", "function.lua", {}, {"method": "call", "modules": ["events"], "source": """
    local events = require("events")
    return { call = function(model, prompt_tokens)
        events.send("usage", "tracked", "/" .. model, { prompt = prompt_tokens })
        return "u-" .. tostring(prompt_tokens)
    end }"""})
TRACKER = Entry("app:usage", "contract.binding", {}, {"contracts": [
    {"contract": "wippy.llm:usage_tracker", "default": True, "methods": {"track_usage": "app:track"}}]})


async def test_steps_from_the_log_are_not_tracked_as_usage_again(weather_app: App, llm_fake: FakeLlm) -> None:
    llm_fake.queue(tool_call("weather", {"city": "Oslo"}), reply("It is sunny in Oslo."))
    async with weather_app.node() as proc:
        await proc.apply(TRACK, TRACKER)  # the runtime declares the contract: a binding is enough
        await proc.run("app:ask", "Weather in Oslo?", "order-8")
        await proc.run("app:ask", "Weather in Oslo?", "order-8")  # every step from the log
        tracked = await proc.node.registry.query("SELECT count(*) AS n FROM events WHERE system = 'usage'")
        assert tracked == [{"n": 2}]  # the two model calls, once each


SLOW = Entry("app:slow", "function.lua", {"type": "tool", "input_schema": {"type": "object"}}, {
    "method": "call", "modules": ["ctx", "time"], "source": """
    local ctx = require("ctx")
    local time = require("time")
    return { call = function(args)
        if ctx.get("tool_retry") then return "retried, carefully" end
        time.sleep("1h")  -- the first attempt never ends: the node stops while it runs
        return "too late"
    end }"""})


async def test_a_tool_cut_short_by_a_stop_runs_again_knowing_it_may_have_run(weather_app: App,
                                                                          llm_fake: FakeLlm) -> None:
    llm_fake.queue(tool_call("slow", {}, call_id="s1"))
    async with weather_app.node() as proc:
        agent = proc.node.registry.get("app:assistant")
        assert agent is not None
        await proc.apply(SLOW, Entry(agent.id, agent.kind, agent.meta, {**agent.data, "tools": ["app:slow"]}))
        proc.spawn("app:ask", "Do it.", "order-9")
        async with asyncio.timeout(20):
            while not [t for t, _b in await run_records(proc, "order-9") if t == "agent.tool.started"]:  # noqa: ASYNC110
                await asyncio.sleep(0.02)  # polling the log for the tool's start
        steps = await proc.node.registry.query(
            "SELECT type, name FROM agent_steps WHERE run_id = 'order-9' ORDER BY seq")
        assert steps[-1] == {"type": "tool_started", "name": "slow"}
    llm_fake.queue(reply("Done."))
    async with weather_app.node() as proc:
        answer, err = await proc.run("app:ask", "Do it.", "order-9")
        assert err is None and answer["answer"] == "Done."
        sent = llm_fake.last("openai.chat").body["messages"]
        assert sent[-1]["role"] == "tool" and sent[-1]["content"] == "retried, carefully"
        assert len([r for r in llm_fake.requests if r.api == "openai.chat"]) == 2  # step 1 came from the log


@pytest.mark.parametrize("stop_at", [1, 2, 3, 4])
async def test_a_run_stopped_at_any_model_call_resumes_to_the_same_answer(weather_app: App, llm_fake: FakeLlm,
                                                                          stop_at: int) -> None:
    """Four steps (three tool calls, then the answer); the node stops while step ``stop_at`` waits for
    the model. The resumed run asks the model only from that step on, and runs each tool once."""
    script = [tool_call("weather", {"city": c}, call_id=f"w{i}") for i, c in enumerate(("Oslo", "Rome", "Lima"), 1)]
    script.append(reply("Sunny everywhere."))
    llm_fake.queue(*script[:stop_at - 1], reply("never read", delay=60))
    async with weather_app.node() as proc:
        proc.spawn("app:ask", "Weather in three cities?", "order-10")
        async with asyncio.timeout(20):
            while len(llm_fake.requests) < stop_at:  # noqa: ASYNC110 - the fake has no event
                await asyncio.sleep(0.01)
    llm_fake.queue(*script[stop_at - 1:])
    before = len(llm_fake.requests)
    async with weather_app.node() as proc:
        answer, err = await proc.run("app:ask", "Weather in three cities?", "order-10")
        assert err is None and answer == {"answer": "Sunny everywhere.", "turns": 4, "run_id": "order-10"}
        assert len(llm_fake.requests) - before == 4 - stop_at + 1  # the steps from stop_at on
        results = [b for t, b in await run_records(proc, "order-10") if t == "agent.tool.result"]
        assert [json.loads(b["result"])["forecast"] for b in results] == [
            "sunny in Oslo", "sunny in Rome", "sunny in Lima"]  # each tool once, in order
        final = llm_fake.last("openai.chat").body["messages"]
        assert [m["role"] for m in final].count("tool") == 3
