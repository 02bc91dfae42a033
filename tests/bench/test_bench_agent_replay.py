"""Durable agent runs: a recorded 20-step run replayed from the log, and what recording costs per step.

    pytest -m bench -s tests/bench/test_bench_agent_replay.py

A node on an embedded NATS (the default fsync policy, 1 s, and fsync always) runs an agent whose
model (the fake vendor on loopback) asks for a tool 19 times and then answers: 20 steps, 19 tool
results, every one appended and acknowledged before the run goes on. The figures:

- the replay (`wippy agents replay`'s command): the run's records found through the
  agent_steps index and read from the log, the agent compiled as of the run's registry version,
  `runner:run` executed again with every model call and tool call answered from the records. The
  fake vendor must receive nothing during the replays. Goal: <= 1 s.
- the live run's cost per step beyond the vendor: (the run's wall time - 20 raw SDK calls with
  the same conversations) / 20, which includes the tool call and the three records a step writes.
"""

from __future__ import annotations

import statistics
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from tests.llm_fake import FakeLlm, reply, tool_call
from wippy.core import Changeset, Entry, Op
from wippy.services import Node, RuntimeSettings, StateDir, execute

from .conftest import embedded_server, report, run

pytestmark = pytest.mark.bench

STEPS, RUNS, REPLAYS = 20, 8, 10

ENTRIES = (
    Entry("app:terminal", "terminal.host", {}, {}),
    Entry("app:gpt", "registry.entry", {"type": "llm.model", "name": "gpt-test", "capabilities": ["generate"]},
          {"providers": [{"id": "wippy.llm.openai:provider", "provider_model": "gpt-4o"}]}),
    Entry("app.tools:add", "function.lua", {"type": "tool", "input_schema": {
        "type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}},
        {"source": "return { call = function(a) return a.a + a.b end }", "method": "call"}),
    Entry("app:helper", "registry.entry", {"type": "agent.gen1", "name": "helper"},
          {"prompt": "You add numbers with the tool.", "model": "gpt-test", "tools": ["app.tools:add"]}),
    Entry("app:go", "function.lua", {}, {"method": "call", "imports": {
        "agent_context": "wippy.agent:context", "prompt": "wippy.llm:prompt"}, "source": textwrap.dedent("""
        local agent_context = require("agent_context")
        local prompt = require("prompt")
        return { call = function(run_id)
            local runner = assert(agent_context.new():load_agent("app:helper"))
            local p = prompt.new()
            p:add_user("add up the numbers 1 to 20")
            local res, err = runner:run(p, { run_id = run_id, max_turns = 25 })
            if err then error(err) end
            return res.turns
        end }
    """)}),
)


def script(fake: FakeLlm) -> None:
    fake.queue(*[tool_call("add", {"a": i, "b": 1}, call_id=f"call_{i}") for i in range(1, STEPS)],
               reply("The sum is 210."))


@pytest.mark.parametrize("sync_interval", ["1s", "always"])
def test_replay_of_a_recorded_20_step_run(sync_interval: str) -> None:
    async def main() -> None:
        import openai

        fake = FakeLlm()
        await fake.start()
        with tempfile.TemporaryDirectory() as tmp:
            server = await embedded_server(Path(tmp) / "nats", sync_interval)
            settings = RuntimeSettings(state_dir=Path(tmp) / "state", nats_url=server.url, node="b",
                                       environ={"OPENAI_API_KEY": "test", "OPENAI_BASE_URL": f"{fake.url}/v1"})
            state = StateDir(settings.state_dir)
            assert state.try_own()
            client = openai.AsyncOpenAI(base_url=f"{fake.url}/v1", api_key="test", max_retries=0)
            live: list[float] = []
            raw: list[float] = []
            replays: list[float] = []
            try:
                async with Node(settings, state) as node:
                    await node.registry.apply(Changeset(ops=tuple(Op("create", e.id, e) for e in ENTRIES)))
                    assert node.processes is not None
                    script(fake)  # warm-up: the SDK loads, the agent compiles, the hosts start
                    assert (await node.processes.call("app:go", "app:terminal", ["warm-up"]))[0]
                    for r in range(RUNS):
                        script(fake)
                        t0 = time.perf_counter()
                        ok, res, _pid = await node.processes.call("app:go", "app:terminal", [f"run-{r}"])
                        live.append(time.perf_counter() - t0)
                        assert ok and res[0] == STEPS, res
                        conversation = fake.requests[-STEPS:]
                        script(fake)
                        t0 = time.perf_counter()
                        for request in conversation:  # the same 20 requests, straight from the SDK
                            body = request.body
                            await client.chat.completions.create(model=body["model"], messages=body["messages"],
                                                                 tools=body.get("tools"))
                        raw.append(time.perf_counter() - t0)
                    asked = len(fake.requests)
                    for _ in range(REPLAYS):
                        t0 = time.perf_counter()
                        result = await execute(node.registry, "agents_replay", {"run": "run-0"})
                        replays.append(time.perf_counter() - t0)
                        assert result["identical"] and result["steps_from_log"] == STEPS, result
                    assert len(fake.requests) == asked, "a replay called the model"
            finally:
                state.release()
                await client.close()
                await server.aclose()
                await fake.stop()
        replay50 = statistics.median(replays)
        per_step = (statistics.median(live) - statistics.median(raw)) / STEPS
        report(f"replay of a recorded 20-step agent run (no model or tool call; fsync {sync_interval})",
               replay_p50_ms=f"{replay50 * 1000:.1f}", replay_max_ms=f"{max(replays) * 1000:.1f}",
               goal="<= 1000 ms", replays=len(replays))
        report(f"durable runner:run, per step beyond the vendor (acked records, a tool call; fsync {sync_interval})",
               run_p50_ms=f"{statistics.median(live) * 1000:.1f}",
               raw_sdk_20_calls_ms=f"{statistics.median(raw) * 1000:.1f}",
               overhead_per_step_ms=f"{per_step * 1000:.2f}", goal="<= 3 ms", runs=len(live))

    run(main())
