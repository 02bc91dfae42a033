"""Pieces of the Lua apps the agent tests run: an app's index head with the LLM dependency and a
model the fake vendor serves, the weather tool, and a way to write an app dir."""

from __future__ import annotations

from pathlib import Path

#: the start of an app's _index.yaml: the wippy/llm dependency (keys from the OS env) and gpt-test,
#: served by the OpenAI provider (point OPENAI_BASE_URL at the fake vendor); append entries to it
LLM_APP_HEAD = """\
version: "1.0"
namespace: app
entries:
  - name: os_env
    kind: env.storage.os
  - name: dep.llm
    kind: ns.dependency
    component: wippy/llm
    version: "*"
    parameters:
      - name: env_storage
        value: app:os_env
  - name: gpt
    kind: registry.entry
    meta: {type: llm.model, name: gpt-test, capabilities: [generate, tool_use]}
    providers:
      - id: wippy.llm.openai:provider
        provider_model: gpt-4o
"""

#: the weather tool's entry (append to an index) and its source (weather.lua)
WEATHER_TOOL = """\
  - name: weather
    kind: function.lua
    meta:
      type: tool
      llm_description: The weather in a city.
      input_schema: |
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    source: file://weather.lua
    method: handler
"""
#: an agent using the weather tool, and the process (ask.lua) that runs it; append to an index
ASSISTANT_AND_ASK = """\
  - name: assistant
    kind: registry.entry
    meta: {type: agent.gen1, name: assistant}
    prompt: You answer weather questions.
    model: gpt-test
    tools: [app:weather]
  - name: ask
    kind: process.lua
    source: file://ask.lua
    method: main
    imports:
      agent_context: wippy.agent:context
      prompt: wippy.llm:prompt
"""
WEATHER_LUA = """\
local function handler(args: {city: string}): {forecast: string}
    return { forecast = "sunny in " .. args.city }
end
return { handler = handler }
"""


def write_app(root: Path, files: dict[str, str]) -> Path:
    """An app dir under ``root`` with ``files`` in its src/; returns the app dir."""
    app = root / "app"
    (app / "src").mkdir(parents=True)
    for name, text in files.items():
        (app / "src" / name).write_text(text)
    return app
