"""The runtime's overhead per agent step: `runner:step` from Lua against a raw SDK call, same fake vendor.

    pytest -m bench -s tests/bench/test_bench_agents.py

Both sides call the same fake OpenAI server on loopback (tests/llm_fake.py) with the same short
conversation; the raw side is the `openai` SDK's `chat.completions.create` awaited directly. What
a step costs beyond that (loading the prompt builder's messages, the agent's compiled spec and
tools, the LLM service's model resolution, the Lua <-> Python crossings, building the response
table) is the difference of the medians. Rounds alternate ours/raw.
"""

from __future__ import annotations

import statistics
import textwrap
import time

import pytest

from tests.llm_fake import FakeLlm
from wippy.core import Entry
from wippy.lua_stdlib import HostContext, LuaHost
from wippy.services._llm import LlmService

from .conftest import report, run

pytestmark = pytest.mark.bench

STEPS, ROUNDS = 200, 5

MODEL = Entry("app:gpt", "registry.entry", {"type": "llm.model", "name": "gpt-test", "capabilities": ["generate"]},
              {"providers": [{"id": "wippy.llm.openai:provider", "provider_model": "gpt-4o"}]})
TOOL = Entry("app.tools:add", "function.lua", {"type": "tool", "input_schema": {
    "type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}},
    {"source": "return { call = function(a) return a.a + a.b end }", "method": "call"})
AGENT = Entry("app:helper", "registry.entry", {"type": "agent.gen1", "name": "helper"},
              {"prompt": "You help.", "model": "gpt-test", "tools": ["app.tools:add"]})
MAIN = Entry("app:main", "function.lua", {}, {"method": "call", "imports": {
    "agent_context": "wippy.agent:context", "prompt": "wippy.llm:prompt"}, "source": textwrap.dedent("""
    local agent_context = require("agent_context")
    local prompt = require("prompt")
    return { call = function(n, now)
        local runner = assert(agent_context.new():load_agent("app:helper"))
        local times = {}
        for i = 1, n do
            local p = prompt.new()
            p:add_user("hello there, step " .. i)
            local t0 = now()
            local res, err = runner:step(p)
            times[i] = now() - t0
            if err then error(err) end
        end
        return times
    end }
""")})


class _Entries:
    def __init__(self, *entries: Entry) -> None:
        self.entries = {e.id: e for e in entries}

    def get(self, entry_id: str) -> Entry | None:
        return self.entries.get(entry_id)

    def current(self) -> dict[str, Entry]:
        return self.entries


def test_step_overhead_against_the_raw_sdk() -> None:
    async def main() -> None:
        import openai

        fake = FakeLlm()
        await fake.start()
        registry = _Entries(MODEL, TOOL, AGENT, MAIN)
        service = LlmService(registry, fake.env())
        host = LuaHost(HostContext(registry=registry, node="b", pid="{b|1}", llm=service))
        client = openai.AsyncOpenAI(base_url=f"{fake.url}/v1", api_key="test", max_retries=0)
        ours: list[float] = []
        raw: list[float] = []
        try:
            fn = host.callable(MAIN)
            for _ in range(ROUNDS):
                ok, res = await host.vm.run(fn, STEPS, time.perf_counter)
                assert ok, res
                ours += list(host.vm.from_lua(res[0]))
                for i in range(STEPS):
                    t0 = time.perf_counter()
                    await client.chat.completions.create(model="gpt-4o", messages=[
                        {"role": "system", "content": "You help."},
                        {"role": "user", "content": f"hello there, step {i}"}])
                    raw.append(time.perf_counter() - t0)
        finally:
            await client.close()
            await host.aclose()
            await service.aclose()
            await fake.stop()
        p50, raw50 = statistics.median(ours), statistics.median(raw)
        report("agent runner:step against the fake vendor (Lua, agent with one tool)",
               step_p50_ms=f"{p50 * 1000:.2f}", raw_sdk_p50_ms=f"{raw50 * 1000:.2f}",
               overhead_p50_ms=f"{(p50 - raw50) * 1000:.2f}", goal="<= 3 ms", steps=len(ours))

    run(main())
