"""`wippy run -x ENTRY`, `wippy run COMMAND`, `wippy run list`: processes on the terminal host."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

APP = {
    "src/_index.yaml": """
namespace: app
entries:
  - name: terminal
    kind: terminal.host
    lifecycle: {auto_start: true}
  - name: double
    kind: function.lua
    source: file://double.lua
    method: call
  - name: hello
    kind: process.lua
    meta:
      command: {name: hello, short: Say hello}
    source: file://hello.lua
    method: main
    modules: [io, funcs]
  - name: tools
    kind: process.lua
    source: file://tools.lua
    method: main
    modules: [io, registry, json]
  - name: tool.calc
    kind: registry.entry
    meta: {type: tool, title: Calculator}
  - name: fails
    kind: process.lua
    source: file://fails.lua
    method: main
  - name: code
    kind: process.lua
    meta:
      command: {name: code, short: Exit with a code}
    source: file://code.lua
    method: main
    modules: [io]
  - name: badmod
    kind: process.lua
    source: file://badmod.lua
    method: main
  - name: syntax
    kind: process.lua
    source: file://syntax.lua
    method: main
""",
    "src/double.lua": """
type Input = number
local function call(n: Input): number
    return n * 2
end
return { call = call }
""",
    "src/hello.lua": """
local io = require("io")
local funcs = require("funcs")

local function main(): integer
    io.print("Hello from " .. process.pid())
    local v, err = funcs.call("app:double", 21)
    if err then
        io.eprint("error: " .. tostring(err))
        return 1
    end
    io.print("double(21) = " .. tostring(v))
    for _, a in ipairs(io.args()) do io.print("arg " .. a) end
    return 0
end

return { main = main }
""",
    "src/tools.lua": """
local io = require("io")
local registry = require("registry")
local json = require("json")

type Tool = {id: string, meta: {title: string}}

local function main(): integer
    local snap, err = registry.snapshot()
    if err then return 1 end
    io.print("at " .. snap:version():string())
    local changes = snap:changes()
    changes:create({ id = "app:tool.weather", kind = "registry.entry",
                     meta = { type = "tool", title = "Weather" }, data = {} })
    local version, apply_err = changes:apply()
    if apply_err then
        io.print("apply failed: " .. tostring(apply_err))
        return 1
    end
    io.print("now " .. version:string())
    local found = registry.find({ ["meta.type"] = "tool" })
    for _, e in ipairs(found) do
        local t = Tool(e) :: Tool
        io.print(t.id .. " " .. t.meta.title)
    end
    return 0
end

return { main = main }
""",
    "src/fails.lua": """
local function main(): integer
    local t: {string} = {}
    error("it broke at " .. #t)
end
return { main = main }
""",
    "src/code.lua": """
local io = require("io")
local function main(a: string?): integer
    io.print("code " .. tostring(a))
    return tonumber(a) or 0
end
return { main = main }
""",
    "src/badmod.lua": """
local sql = require("sql")
return { main = function() return 0 end }
""",
    "src/syntax.lua": """
local function main(): integer
    local x = = 1
    return 0
end
return { main = main }
""",
}


@pytest.fixture
def app(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    for rel, text in APP.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text.lstrip("\n"))
    return root


def wippy(wippy_bin: list[str], app: Path, nats_url: str, namespace: str, *args: str,
          stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([*wippy_bin, "--app", str(app), "--nats", nats_url, "--namespace", namespace, "run", *args],
                          input=stdin, capture_output=True, text=True, timeout=60, check=False,
                          env=os.environ | {"USER": "tester"})


def test_x_runs_a_process_on_the_terminal_host(wippy_bin: list[str], app: Path, nats_url: str,
                                                namespace: str) -> None:
    r = wippy(wippy_bin, app, nats_url, namespace, "-x", "app:hello", "one", "two")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Hello from {") and "@app:terminal|0x" in lines[0]
    assert lines[1:] == ["double(21) = 42", "arg one", "arg two"]


def test_registry_changes_from_lua_are_versions(wippy_bin: list[str], app: Path, nats_url: str,
                                                namespace: str) -> None:
    r = wippy(wippy_bin, app, nats_url, namespace, "-x", "app:tools")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    v0 = int(lines[0].removeprefix("at v"))
    v1 = int(lines[1].removeprefix("now v"))
    assert v1 > v0
    assert lines[2:] == ["app:tool.calc Calculator", "app:tool.weather Weather"]
    listed = subprocess.run([*wippy_bin, "registry", "versions", "--app", str(app), "--nats", nats_url,
                             "--namespace", namespace, "--json"], capture_output=True, text=True, check=True)
    assert json.loads(listed.stdout)[-1]["author"] == "entry:app:tools"


def test_errors_exit_non_zero_with_entry_and_line(wippy_bin: list[str], app: Path, nats_url: str,
                                                   namespace: str) -> None:
    r = wippy(wippy_bin, app, nats_url, namespace, "-x", "app:fails")
    assert r.returncode == 1
    assert "app:fails:3: it broke at 0" in r.stderr
    assert "Traceback" not in r.stderr
    r = wippy(wippy_bin, app, nats_url, namespace, "-x", "app:badmod")
    assert r.returncode == 1
    assert "module sql is not in the modules: list of app:badmod" in r.stderr
    r = wippy(wippy_bin, app, nats_url, namespace, "-x", "app:syntax")
    assert r.returncode == 1
    assert "app:syntax" in r.stderr and ":2" in r.stderr
    assert "Traceback" not in r.stderr
    r = wippy(wippy_bin, app, nats_url, namespace, "-x", "app:nope")
    assert r.returncode == 1
    assert "app:nope does not exist" in r.stderr
    r = wippy(wippy_bin, app, nats_url, namespace, "-x", "hello")  # a bare name: Wippy wants namespace:entry
    assert r.returncode == 1
    assert "did you mean app:hello, or `wippy run hello`?" in r.stderr


def test_commands_and_list(wippy_bin: list[str], app: Path, nats_url: str, namespace: str) -> None:
    r = wippy(wippy_bin, app, nats_url, namespace, "code", "7")
    assert r.returncode == 7, r.stderr
    assert r.stdout == "code 7\n"
    r = wippy(wippy_bin, app, nats_url, namespace, "list")
    assert r.returncode == 0
    assert "hello" in r.stdout and "code" in r.stdout and "Say hello" in r.stdout
    r = wippy(wippy_bin, app, nats_url, namespace, "nosuch")
    assert r.returncode == 1
    assert "no command 'nosuch'" in r.stderr
