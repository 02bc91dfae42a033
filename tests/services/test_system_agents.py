"""The system agents (services/_system_agents.py) driven end to end by a Lua app on a real node.

An app declares ``wippy/registry`` and ``wippy/coder`` as ``ns.dependency`` components and runs
``wippy.registry:agent`` / ``wippy.coder:agent`` with ``runner:run``; the fake vendor scripts the
model's tool calls. Covered: every registry tool, the coder editing a function that then runs the
new code, the coder refusing a source that does not compile (nothing applied, the error back to the
model), the versions' author being the agent, rolling back an agent's change, and an app entry
overriding a system id.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests import llm_fake as fake_server
from tests.llm_fake import FakeLlm, reply, tool_call
from wippy.core import Entry, load_app
from wippy.services import Node, RuntimeSettings, StateDir
from wippy.services._system_agents import native_ids  # importing it registers wippy/registry and wippy/coder

from .agent_app import LLM_APP_HEAD
from .conftest import HOSTS, ProcNode

llm_fake = fake_server.llm_fake

APP_INDEX = LLM_APP_HEAD + """\
  - name: dep.agent
    kind: ns.dependency
    component: wippy/agent
    version: "*"
  - name: dep.registry
    kind: ns.dependency
    component: wippy/registry
    version: "*"
    parameters:
      - name: model
        value: gpt-test
  - name: dep.coder
    kind: ns.dependency
    component: wippy/coder
    version: "*"
    parameters:
      - name: model
        value: gpt-test
  - name: greet
    kind: function.lua
    source: file://greet.lua
    method: greet
  - name: ask
    kind: process.lua
    source: file://ask.lua
    method: main
    imports:
      agent_context: wippy.agent:context
      prompt: wippy.llm:prompt
  - name: call
    kind: process.lua
    source: file://call.lua
    method: main
    modules: [funcs]
"""

GREET = """\
local function greet(name: string): string
    return "hello " .. name
end
return { greet = greet }
"""

ASK = """\
local agent_context = require("agent_context")
local prompt = require("prompt")

local function main(agent_id: string, question: string): any
    local runner, err = agent_context.new():load_agent(agent_id)
    if not runner then error(err) end
    local response, run_err = runner:run(prompt.new():add_user(question), { max_turns = 20 })
    if not response then error(run_err) end
    return { answer = response.result, turns = response.turns }
end

return { main = main }
"""

CALL = """\
local funcs = require("funcs")

local function main(id: string, arg: any): any
    local value, err = funcs.call(id, arg)
    if err then error(err) end
    return value
end

return { main = main }
"""


class App:
    """The app on a node, with the fake vendor behind its model."""

    def __init__(self, proc: ProcNode, fake: FakeLlm) -> None:
        self.proc = proc
        self.fake = fake

    @property
    def registry(self) -> Any:
        return self.proc.node.registry

    async def ask(self, agent: str, question: str, *calls: tuple[str, dict[str, Any]], answer: str = "Done."
                  ) -> list[Any]:
        """Run ``agent`` on ``question`` with the model calling ``calls`` in turn, then answering;
        the tools' results as the model got them (decoded JSON)."""
        self.fake.queue(*(tool_call(name, args, call_id=f"call_{i}") for i, (name, args) in enumerate(calls, 1)),
                        reply(answer))
        result = await self.proc.run("app:ask", agent, question, timeout=60)
        assert result == ({"answer": answer, "turns": len(calls) + 1}, None)
        messages = self.fake.last("openai.chat").body["messages"]
        return [json.loads(m["content"]) for m in messages if m["role"] == "tool"]

    async def call(self, entry_id: str, arg: Any) -> tuple[Any, str | None]:
        result: tuple[Any, str | None] = await self.proc.run("app:call", entry_id, arg)
        return result

    async def authors(self) -> dict[int, str | None]:
        return {row["version"]: row["author"] for row in await self.registry.versions()}


@pytest.fixture
async def app(nats_url: str, namespace: str, tmp_path: Path, llm_fake: FakeLlm) -> AsyncIterator[App]:
    src = tmp_path / "app" / "src"
    src.mkdir(parents=True)
    for name, text in (("_index.yaml", APP_INDEX), ("greet.lua", GREET), ("ask.lua", ASK), ("call.lua", CALL)):
        (src / name).write_text(text)
    loaded = load_app(src.parent)
    assert {"wippy/registry", "wippy/coder"} <= set(loaded.native_dependencies)
    environ = {"OPENAI_API_KEY": "sk-fake", "OPENAI_BASE_URL": llm_fake.openai_url}
    settings = RuntimeSettings(state_dir=tmp_path / "state", nats_url=nats_url, namespace=namespace, node="n1",
                               environ=environ)
    state = StateDir(settings.state_dir)
    assert state.try_own()
    try:
        async with Node(settings, state) as node:
            proc = ProcNode(node)
            await proc.apply(*HOSTS, *(le.entry for le in loaded.entries))
            yield App(proc, llm_fake)
    finally:
        state.release()


# -- wippy.registry:agent ------------------------------------------------------------------------

async def test_the_registry_agent_uses_every_tool(app: App) -> None:
    start = app.registry.version
    results = await app.ask(
        "wippy.registry:agent", "Add a note, change it, then remove it.",
        ("list_entries", {"namespace": "app", "kind": "function.lua"}),
        ("get_entry", {"id": "app:greet"}),
        ("create_entry", {"id": "app:note", "kind": "registry.entry", "meta": {"type": "note"},
                          "data": {"text": "hi"}}),
        ("update_entry", {"id": "app:note", "meta": {"tag": "x"}, "data": {"text": "bye"}}),
        ("list_versions", {"limit": 2}),
        ("delete_entry", {"id": "app:note"}),
        ("get_entry", {"id": "app:nope"}),
    )
    listed, got, created, updated, versions, deleted, missing = results
    assert listed == {"count": 1, "truncated": False,
                      "entries": [{"id": "app:greet", "kind": "function.lua"}]}
    assert got["id"] == "app:greet" and got["data"]["method"] == "greet" and "hello" in got["data"]["source"]
    assert created == {"id": "app:note", "version": start + 1}
    assert updated == {"id": "app:note", "version": start + 2}
    assert versions["current"] == start + 2
    assert [v["version"] for v in versions["versions"]] == [start + 2, start + 1]
    assert {v["author"] for v in versions["versions"]} == {"agent:wippy.registry:agent"}
    assert versions["versions"][0]["message"] == "applied by wippy.registry:update_entry"
    assert deleted == {"id": "app:note", "version": start + 3}
    assert missing == {"error": "entry app:nope does not exist"}
    assert app.registry.get("app:note") is None
    assert not native_ids() & set(app.registry.current())
    history = {row["version"]: row for row in await app.registry.history("app:note")}
    assert history[start + 2]["meta"] == {"type": "note", "tag": "x"}
    authors = await app.authors()
    assert [authors[v] for v in (start + 1, start + 2, start + 3)] == ["agent:wippy.registry:agent"] * 3


async def test_the_registry_agent_names_what_is_wrong(app: App) -> None:
    start = app.registry.version
    results = await app.ask(
        "wippy.registry:agent", "Make mistakes.",
        ("create_entry", {"id": "no-colon", "kind": "registry.entry"}),
        ("create_entry", {"id": "app:greet", "kind": "function.lua"}),
        ("update_entry", {"id": "app:greet", "meta": "not a table"}),
        ("delete_entry", {"id": "app:ghost"}),
        ("rollback", {"version": 999999}),
        ("list_entries", {"limit": 0}),
    )
    assert [r["error"] for r in results] == [
        "id must be an entry id 'namespace:name', not \"no-colon\"",
        "entry app:greet already exists: use update_entry to change it",
        "meta must be a JSON object, not \"not a table\"",
        "entry app:ghost does not exist",
        "rollback: registry version 999999 does not exist",
        "limit must be a whole number from 1 to 1000, not 0",
    ]
    assert app.registry.version == start


# -- wippy.coder:agent ---------------------------------------------------------------------------

async def test_the_coder_edits_a_function_and_the_new_code_runs(app: App) -> None:
    assert await app.call("app:greet", "Ada") == ("hello Ada", None)
    start = app.registry.version
    listed, read, edited = await app.ask(
        "wippy.coder:agent", "Make greet say goodbye.",
        ("list_code", {"namespace": "app"}),
        ("read_source", {"id": "app:greet"}),
        ("edit_source", {"id": "app:greet", "old_text": '"hello "', "new_text": '"goodbye "'}),
    )
    assert listed == {"count": 1, "entries": [{"id": "app:greet", "kind": "function.lua", "method": "greet",
                                                "lines": 5}]}
    assert read["source"] == GREET and read["method"] == "greet" and read["lines"] == 5
    assert edited == {"id": "app:greet", "version": start + 1, "lines": 5}
    assert await app.call("app:greet", "Ada") == ("goodbye Ada", None)
    assert (await app.authors())[start + 1] == "agent:wippy.coder:agent"

    # the whole source too, types and all
    new = ('local function greet(name: string): string\n    return "hi " .. name:upper()\nend\n'
           'return { greet = greet }\n')
    (written,) = await app.ask("wippy.coder:agent", "Rewrite it.", ("write_source", {"id": "app:greet", "source": new}))
    assert written == {"id": "app:greet", "version": start + 2, "lines": 5}
    assert await app.call("app:greet", "Ada") == ("hi ADA", None)


async def test_the_coder_refuses_code_that_does_not_compile(app: App) -> None:
    start = app.registry.version
    broken = "local function greet(name)\n    return 'x' ..\nend\nreturn { greet = greet }\n"
    written, edited, ambiguous, not_code = await app.ask(
        "wippy.coder:agent", "Break it.",
        ("write_source", {"id": "app:greet", "source": broken}),
        ("edit_source", {"id": "app:greet", "old_text": "end", "new_text": "ned"}),
        ("edit_source", {"id": "app:greet", "old_text": "e", "new_text": "E"}),
        ("read_source", {"id": "app:gpt"}),
    )
    assert written["error"].startswith("app:greet does not compile: app:greet:3:")
    assert written["error"].endswith("(nothing was changed)")
    assert edited["error"].startswith("app:greet does not compile: app:greet:")
    assert ambiguous["error"].startswith("old_text occurs ") and "include more of the text" in ambiguous["error"]
    assert not_code == {"error": "app:gpt is a registry.entry entry: only function.lua and library.lua "
                                 "sources can be edited"}
    assert app.registry.version == start
    assert await app.call("app:greet", "Ada") == ("hello Ada", None)


async def test_an_agents_change_rolls_back(app: App) -> None:
    before = app.registry.version
    await app.ask("wippy.coder:agent", "Edit.",
                  ("edit_source", {"id": "app:greet", "old_text": "hello", "new_text": "howdy"}))
    assert await app.call("app:greet", "Ada") == ("howdy Ada", None)
    (rolled,) = await app.ask("wippy.registry:agent", "Undo the coder's change.",
                              ("rollback", {"version": before}))
    assert rolled == {"restored": before, "version": before + 2}
    assert await app.call("app:greet", "Ada") == ("hello Ada", None)
    authors = await app.authors()
    assert (authors[before + 1], authors[before + 2]) == ("agent:wippy.coder:agent", "agent:wippy.registry:agent")


async def test_an_app_entry_overrides_a_system_id(app: App) -> None:
    own = Entry("wippy.coder:read_source", "function.lua",
                {"type": "tool", "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}}},
                {"source": "return { read_source = function(args) return { mine = args.id } end }",
                 "method": "read_source"})
    await app.proc.apply(own)
    (got,) = await app.ask("wippy.coder:agent", "Read it.", ("read_source", {"id": "app:greet"}))
    assert got == {"mine": "app:greet"}
    assert await app.call("wippy.coder:read_source", {"id": "x"}) == ({"mine": "x"}, None)


async def test_a_tool_called_directly_writes_as_the_caller(app: App) -> None:
    """Without an agent in the task's context, the change is by the calling entry, as usual."""
    start = app.registry.version
    value, err = await app.call("wippy.registry:create_entry", {"id": "app:direct", "kind": "registry.entry"})
    assert err is None and value == {"id": "app:direct", "version": start + 1}
    assert (await app.authors())[start + 1] == "entry:wippy.registry:create_entry"
