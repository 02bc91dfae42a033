"""An app of the 19-llm-agent shape, end to end on a real node against the fake vendor server.

The app declares ``ns.dependency`` on ``wippy/llm`` (with its env_storage/process_host
parameters), keeps its key in a ``.env`` file storage, and has a model in class ``fast``. A
registered service process answers "ask" messages with ``llm.generate`` (a string, a prompt
builder with a system message, a multi-turn conversation); a terminal process sends it three
questions and prints the answers. The fake echoes the last user text, so the output is known.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.llm_fake import FakeLlm, llm_fake_fixture  # noqa: F401 - fixture
from wippy.services import Node, RuntimeSettings, StateDir, run_terminal_process
from wippy.services._llm_providers import aclose_all

APP = """version: "1.0"
namespace: demo
entries:
  - name: dep.llm
    kind: ns.dependency
    component: wippy/llm
    version: "^0.4.0"
    parameters:
      - {name: env_storage, value: demo:secrets}
      - {name: process_host, value: demo:workers}
  - {name: shell, kind: terminal.host, lifecycle: {auto_start: true}}
  - {name: workers, kind: process.host, lifecycle: {auto_start: true}}
  - {name: secrets, kind: env.storage.file, file_path: ./.env, auto_create: true}
  - {name: openai_key, kind: env.variable, variable: OPENAI_API_KEY, storage: demo:secrets}
  - name: small
    kind: registry.entry
    meta: {type: llm.model, name: small-model, class: [fast], capabilities: [generate], priority: 10}
    providers:
      - id: wippy.llm.openai:provider
        provider_model: fake-small
        options: {temperature: 0.3, max_tokens: 64}
  - name: answerer
    kind: process.lua
    method: main
    imports: {llm: wippy.llm:llm, prompt: wippy.llm:prompt}
    source: |
      local llm, prompt = require("llm"), require("prompt")
      local function input_of(req)
        if not req.system and not req.turns then return req.text end
        local p = prompt.new()
        if req.system then p:add_system(req.system) end
        for _, t in ipairs(req.turns or { { role = "user", text = req.text } }) do
          if t.role == "user" then p:add_user(t.text) else p:add_assistant(t.text) end
        end
        return p
      end
      return { main = function()
        process.registry.register("answerer")
        local inbox, events = process.inbox(), process.events()
        while true do
          local r = channel.select { inbox:case_receive(), events:case_receive() }
          if r.channel == events then
            if r.value.kind == process.event.CANCEL then return 0 end
          else
            local msg = r.value
            local resp, err = llm.generate(input_of(msg:payload():data()), { model = "class:fast" })
            if err then
              process.send(msg:from(), "answer", { error = err })
            else
              process.send(msg:from(), "answer", { text = resp.result, total = resp.tokens.total_tokens })
            end
          end
        end
      end }
  - {name: answerer.service, kind: process.service, process: demo:answerer, host: demo:workers,
     lifecycle: {auto_start: true}}
  - name: cli
    kind: process.lua
    method: main
    modules: [io, time]
    source: |
      local io, time = require("io"), require("time")
      local function ask(req)
        local pid
        for _ = 1, 100 do
          pid = process.registry.lookup("answerer")
          if pid then break end
          time.sleep("20ms")
        end
        if not pid then return nil, "answerer not running" end
        process.send(pid, "ask", req)
        local r = channel.select { process.inbox():case_receive(), time.after("20s"):case_receive() }
        if not r.value or not r.value.payload then return nil, "timed out" end
        local data = r.value:payload():data()
        if data.error then return nil, data.error end
        return data.text .. " [" .. tostring(data.total) .. "]"
      end
      return { main = function()
        local requests = {
          { text = "Name three colours." },
          { system = "Answer in one line.", text = "What is an actor?" },
          { system = "You teach Lua.", turns = {
              { role = "user", text = "What is a table?" },
              { role = "assistant", text = "The one data structure." },
              { role = "user", text = "Show an example." } } },
        }
        for i, req in ipairs(requests) do
          local text, err = ask(req)
          if err then io.print("error " .. i .. ": " .. err) return 1 end
          io.print(i .. ": " .. text)
        end
        return 0
      end }
"""


@pytest.fixture
async def app_node(nats_url: str, namespace: str, tmp_path: Path, llm_fake: FakeLlm) -> AsyncIterator[Node]:
    app = tmp_path / "app"
    (app / "src").mkdir(parents=True)
    (app / "src" / "_index.yaml").write_text(APP)
    settings = RuntimeSettings(state_dir=tmp_path / "state", nats_url=nats_url, namespace=namespace, node="n1",
                               app_dir=app, environ={"OPENAI_BASE_URL": llm_fake.openai_url})
    (app / ".env").write_text("OPENAI_API_KEY=sk-from-dotenv\n")
    state = StateDir(settings.state_dir)
    assert state.try_own()
    try:
        async with Node(settings, state) as node:
            await node.registry.apply_files(app)
            await node.start_services()
            yield node
    finally:
        state.release()
        await aclose_all()


async def test_an_llm_agent_app_answers_through_a_service_process(app_node: Node, llm_fake: FakeLlm) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = await run_terminal_process(app_node.registry, app_node.node, "demo:cli", [], env=app_node.env,
                                      processes=app_node.processes, stores=app_node.stores,
                                      stdin=io.StringIO(""), stdout=out, stderr=err)
    assert code == 0, out.getvalue() + err.getvalue()
    assert out.getvalue().splitlines() == ["1: Name three colours. [18]", "2: What is an actor? [18]",
                                           "3: Show an example. [18]"]
    chats = [r.body for r in llm_fake.requests if r.api == "openai.chat"]
    assert [c["model"] for c in chats] == ["fake-small"] * 3
    assert all(c["temperature"] == 0.3 and c["max_completion_tokens"] == 64 for c in chats)
    assert chats[1]["messages"] == [{"role": "system", "content": "Answer in one line."},
                                    {"role": "user", "content": "What is an actor?"}]
    assert [m["role"] for m in chats[2]["messages"]] == ["system", "user", "assistant", "user"]
    assert llm_fake.last("openai.chat").headers["authorization"] == "Bearer sk-from-dotenv"  # the .env file's key
