"""The `exec` module on real subprocesses: streaming output, stdin, exit codes, signals, the
whitelist and environment of exec.native executors, permissions, cleanup when the host closes,
and the apply-time checks of exec.native entries."""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wippy.core import DefinitionErrors, Entry, Op, validate_changeset
from wippy.projections import RegistryState

from .helpers import Node, fn, run_entry


def executor(name: str = "app:exec", **data: Any) -> Entry:
    return Entry(name, "exec.native", {}, data)


def code(body: str) -> Entry:
    return fn("app:t", "local exec = require('exec')\nreturn { call = function(...)\n" + body + "\nend }",
              modules=["exec"])


async def run(body: str, *entries: Entry, args: tuple[Any, ...] = (), **ctx: Any) -> Any:
    ok, res = await run_entry(code(body), *(entries or (executor(),)), args=args, **ctx)
    assert ok, res
    return res[0] if len(res) == 1 else res


# read a stream to its end
READ_ALL = """
    local function read_all(s)
        local parts = {}
        while true do
            local chunk, err = s:read()
            if err then error(err) end
            if chunk == nil then return table.concat(parts) end
            parts[#parts + 1] = chunk
        end
    end
"""


async def test_echo_output_and_exit_code() -> None:
    res = await run(READ_ALL + """
        local ex = exec.get("app:exec")
        local out = {tostring(ex)}
        for _, cmd in ipairs({"/bin/echo hello world", "echo 'quoted  words' \\"and more\\""}) do
            local p = ex:exec(cmd)
            local s = p:stdout_stream()
            out[#out + 1] = {p:start(), rawequal(s, p:stdout_stream())}
            out[#out + 1] = read_all(s)
            out[#out + 1] = {p:wait()}
            s:close()
        end
        return out
    """)
    assert res == ["exec.Executor{app:exec}", [True, True], "hello world\n", [0], [True, True],
                   "quoted  words and more\n", [0]]


async def test_stdin_streams_through_cat_and_reads_wait_without_blocking() -> None:
    res = await run(READ_ALL + """
        local p = exec.get("app:exec"):exec("cat")
        local out_stream = p:stdout_stream()
        p:start()
        -- a reader waits for output before any is written: its read must yield to the loop
        local got = channel.new(1)
        coroutine.spawn(function() got:send(out_stream:read()) end)
        p:write_stdin("first line\\n")
        local first = got:receive()
        p:write_stdin("second ")
        p:write_stdin("part")
        p:write_stdin("")
        local rest = read_all(out_stream)
        local _, closed = p:write_stdin("more")
        return {first, rest, p:wait(), closed:kind()}
    """)
    assert res == ["first line\n", "second part", 0, "INTERNAL"]


async def test_binary_data_both_ways() -> None:
    blob = bytes(range(256)) * 512  # 128 KiB: more than one pipe buffer
    ok, res = await run_entry(code(READ_ALL + """
        local blob = ...
        local p = exec.get("app:exec"):exec("cat")
        local s = p:stdout_stream()
        p:start()
        local reader_done = channel.new(1)
        coroutine.spawn(function() reader_done:send(read_all(s)) end)
        p:write_stdin(blob)
        p:write_stdin("")
        local back = reader_done:receive()
        return {back == blob, #back, p:wait()}
    """), executor(), args=(blob,))
    assert ok, res
    assert res[0] == [True, len(blob), 0]


async def test_exit_codes_stderr_and_scanners() -> None:
    script = "sh -c 'echo oops >&2; printf \"a\\nb b\\nc\"; exit 3'"
    res = await run(READ_ALL + """
        local cmd = ...
        local p = exec.get("app:exec"):exec(cmd)
        local err_stream = p:stderr_stream()
        local sc = p:stdout_stream():scanner("lines")
        p:start()
        local lines = {}
        while sc:scan() do lines[#lines + 1] = sc:text() end
        local stat = err_stream:stat()
        return {lines, read_all(err_stream), p:wait(), stat.readable, stat.seekable}
    """, executor(command_whitelist=[script]), args=(script,))
    assert res == [["a", "b b", "c"], "oops\n", 3, True, False]


async def test_signals_close_and_misuse() -> None:
    res = await run("""
        local ex = exec.get("app:exec")
        local out = {}
        local p = ex:exec("sleep 30")
        local _, early = p:signal(15)
        local _, unstarted = p:wait()
        local _, readfirst = p:stdout_stream():read()
        out.before = {early:kind(), unstarted:kind(), readfirst:kind()}
        p:start()
        local _, twice = p:start()
        local _, badsig = p:signal(0)
        out.running = {twice:kind(), badsig:kind(), p:signal(15)}
        out.code = p:wait()
        local _, after = p:signal(15)
        local _, waited = p:wait()
        out.after = {after:kind(), waited:kind()}
        local q = ex:exec("sleep 30")
        q:start()
        out.close = {q:close(true), q:close()}
        local _, closed_wait = q:wait()
        local _, closed_stream = q:stdout_stream()
        out.closed = {closed_wait:kind(), closed_stream:kind()}
        local never = ex:exec("sleep 30")
        out.never = {never:close()}
        return out
    """)
    assert res["before"] == ["INVALID", "INVALID", "INVALID"]
    assert res["running"] == ["INVALID", "INVALID", True]
    assert res["code"] == -1  # ended by a signal
    assert res["after"] == ["INVALID", "INVALID"]
    assert res["close"] == [True, True]
    assert res["closed"] == ["INVALID", "INVALID"]
    assert res["never"] == [True]


async def test_whitelist_is_exact() -> None:
    res = await run("""
        local locked = exec.get("app:locked")
        local ok = locked:exec("/bin/echo hi")
        local _, other = locked:exec("/bin/echo hi there")
        local _, spaced = locked:exec("/bin/echo  hi")
        local open = exec.get("app:open"):exec("/bin/echo anything")
        return {ok ~= nil, other:kind(), tostring(other), spaced:kind(), open ~= nil}
    """, executor("app:locked", command_whitelist=["/bin/echo hi"]), executor("app:open", command_whitelist=[]))
    assert res[0] is True
    assert res[1] == "PERMISSION_DENIED" and res[3] == "PERMISSION_DENIED"
    assert "app:locked" in res[2] and "/bin/echo hi there" in res[2]
    assert res[4] is True


async def test_environment_is_clean_and_merged() -> None:
    res = await run(READ_ALL + """
        local p = exec.get("app:exec"):exec("env", {env = {EXTRA = "yes", MODE = "call", N = 5}})
        local s = p:stdout_stream()
        p:start()
        local text = read_all(s)
        p:wait()
        local vars = {}
        for line in text:gmatch("[^\\n]+") do vars[#vars + 1] = line end
        table.sort(vars)
        return vars
    """, executor(default_env={"MODE": "default", "LANG": "C"}))
    assert res == ["EXTRA=yes", "LANG=C", "MODE=call", "N=5"]


async def test_work_dirs(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    res = await run(READ_ALL + """
        local sub = ...
        local function pwd(ex, opts)
            local p = ex:exec("pwd", opts)
            local s = p:stdout_stream()
            local ok, err = p:start()
            if not ok then return err:kind() .. ": " .. err:message() end
            local dir = read_all(s)
            p:wait()
            return dir
        end
        local ex = exec.get("app:exec")
        return {pwd(ex), pwd(ex, {work_dir = sub}), pwd(ex, {work_dir = sub .. "/missing"})}
    """, executor(default_work_dir=str(tmp_path)), args=(str(tmp_path / "sub"),))
    assert res[0] == f"{tmp_path}\n"
    assert res[1] == f"{tmp_path / 'sub'}\n"
    assert res[2].startswith("INTERNAL: ") and "missing" in res[2] and "does not exist" in res[2]


async def test_bad_commands_and_executors() -> None:
    res = await run("""
        local ex = exec.get("app:exec")
        local p = ex:exec("no-such-program-here --flag")
        local _, start_err = p:start()
        local _, quotes = ex:exec("echo 'unclosed")
        local _, empty = ex:exec("")
        local _, blank = ex:exec("   ")
        local _, badopts = ex:exec("echo", "x")
        local _, badenv = ex:exec("echo", {env = {A = {}}})
        local _, docker = exec.get("app:docker")
        local _, missing = exec.get("app:nope")
        local _, wrong = exec.get("app:t")
        ex:release()
        local _, released = ex:exec("echo")
        return {start_err:kind(), tostring(start_err), quotes:kind(), empty:kind(), blank:kind(), badopts:kind(),
                badenv:kind(), docker:kind(), tostring(docker), missing:kind(), wrong:kind(), released:kind(),
                ex:release()}
    """, executor(), Entry("app:docker", "exec.docker", {}, {"image": "python:3.11-slim"}))
    assert res[0] == "INTERNAL" and "no-such-program-here" in res[1] and "not found" in res[1]
    assert res[2:7] == ["INVALID"] * 5
    assert res[7] == "UNAVAILABLE" and "not implemented" in res[8]
    assert res[9:] == ["NOT_FOUND", "INVALID", "INVALID", True]


async def test_unread_output_does_not_block_wait() -> None:
    script = "sh -c 'head -c 2000000 /dev/zero; head -c 2000000 /dev/zero >&2'"
    res = await run("""
        local cmd = ...
        local p = exec.get("app:exec"):exec(cmd)
        p:start()
        return (p:wait())
    """, executor(), args=(script,))
    assert res == 0


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie has exited
    except FileNotFoundError:
        return True


async def test_processes_stop_when_the_host_closes() -> None:
    script = "sh -c 'sleep 1000 & echo $$ $!; wait'"
    res = await run("""
        local cmd = ...
        local p = exec.get("app:exec"):exec(cmd)
        local line = p:stdout_stream():scanner("lines")
        p:start()
        line:scan()
        return line:text()    -- left running: the host's close must stop it
    """, executor(), args=(script,))
    pids = [int(x) for x in res.split()]
    assert len(pids) == 2  # the shell and its background child (same process group)
    for _ in range(500):  # the orphaned child is reaped by init, which may take a moment
        if all(_gone(pid) for pid in pids):
            break
        await asyncio.sleep(0.01)
    assert all(_gone(pid) for pid in pids)


async def test_permissions_exec_get_and_run(node: Node) -> None:
    def policy(name: str, action: str, resources: Any) -> Entry:
        return Entry(f"app.sec:{name}", "security.policy", {},
                     {"policy": {"actions": action, "resources": resources, "effect": "allow"},
                      "groups": ["app.sec:g"]})

    inner = code("""
        local _, get_denied = exec.get("app:other")
        local ex = exec.get("app:exec")
        local ok = ex:exec("/bin/echo allowed")
        local _, run_denied = ex:exec("/bin/echo other")
        return {ok ~= nil, get_denied:kind(), run_denied:kind(), tostring(run_denied)}
    """)
    ok, res = await node.run(fn("app:outer", """
        local security = require("security")
        local funcs = require("funcs")
        return { call = function()
            return funcs.new():with_actor(security.new_actor("u1")):with_scope(security.named_scope("app.sec:g"))
                :call("app:t")
        end }
    """, modules=["security", "funcs"]), inner, executor(), executor("app:other"),
        policy("calls", "funcs.call", "*"), policy("get", "exec.get", "app:exec"),
        policy("run", "exec.run", "/bin/echo allowed"))
    assert ok, res
    assert res[0][:3] == [True, "PERMISSION_DENIED", "PERMISSION_DENIED"]
    assert "exec.run" in res[0][3] and "/bin/echo other" in res[0][3]


async def test_strict_mode_denies_without_an_actor() -> None:
    res = await run("""
        local _, err = exec.get("app:exec")
        return err:kind()
    """, strict=True)
    assert res == "PERMISSION_DENIED"


_ARG = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_ARG, min_size=1, max_size=5))
async def test_arguments_arrive_as_written(args: list[str]) -> None:
    command = shlex.join(["printf", "%s\\000", *args])
    ok, res = await run_entry(code(READ_ALL + """
        local cmd = ...
        local p = exec.get("app:exec"):exec(cmd)
        local s = p:stdout_stream()
        p:start()
        local out = read_all(s)
        return {out, p:wait()}
    """), executor(), args=(command,))
    assert ok, res
    out, status = res[0]
    assert status == 0
    assert out.split("\x00")[:-1] == args


# -- apply-time checks --------------------------------------------------------------------------
def _apply(entry: Entry) -> None:
    validate_changeset(RegistryState(), [Op("create", entry.id, entry)])


@pytest.mark.parametrize(("data", "field"), [
    ({"command_whitelist": "ls"}, "command_whitelist"),
    ({"command_whitelist": ["ls", 3]}, "command_whitelist[1]"),
    ({"default_env": ["A=1"]}, "default_env"),
    ({"default_env": {"DEBUG": True}}, "default_env.DEBUG"),
    ({"default_env": {"A=B": "x"}}, "default_env"),
    ({"default_work_dir": 5}, "default_work_dir"),
])
def test_bad_exec_native_entries_are_refused(data: dict[str, Any], field: str) -> None:
    with pytest.raises(DefinitionErrors) as info:
        _apply(executor("app:sh", **data))
    assert "app:sh" in str(info.value) and field in str(info.value)


def test_good_exec_native_entries_pass() -> None:
    _apply(executor("app:sh", default_work_dir="/app", default_env={"PATH": "/usr/bin", "LANG": "en_US.UTF-8"},
                    command_whitelist=["git status", "npm run build"]))
    _apply(executor("app:bare"))



async def test_bad_arguments_give_errors_not_python_exceptions() -> None:
    res = await run("""
        local bad = {nil, true, 1.5, -1, math.maxinteger, 0/0, 1/0, '\\255\\0x', '', {}, {1, 2}, print}
        local ex = exec.get("app:exec")
        local raised = {}
        local function try(label, f, ...)
            local ok, err = pcall(f, ...)
            if not ok then raised[#raised + 1] = label .. ": " .. tostring(err) end
        end
        local p = ex:exec("cat")
        local s = p:stdout_stream()
        p:start()
        local done = ex:exec("/bin/echo x")     -- a stream at its end: reads never wait
        local ended = done:stdout_stream()
        done:start()
        done:wait()
        for i = 1, 12 do
            local a = bad[i]
            try("exec.get", exec.get, a)
            try("exec on a table", ex.exec, {}, a)
            for j = 1, 12 do
                try("exec", ex.exec, ex, a, bad[j])
                try("exec opts", ex.exec, ex, "cat", {work_dir = a, env = {X = bad[j]}})
            end
            for _, m in ipairs({"signal", "write_stdin", "stdout_stream", "stderr_stream"}) do
                try("proc:" .. m, p[m], {}, a)
            end
            try("proc:signal", p.signal, p, a)
            try("stream:read", ended.read, ended, a)
            try("stream:scanner", ended.scanner, ended, a)
            try("stream:read on a table", s.read, {}, a)
        end
        p:write_stdin("\\255binary\\0")
        p:write_stdin("")
        local back = s:read()
        p:wait()
        return {raised, back == "\\255binary\\0"}
    """)
    assert res[0] in ({}, []), res[0]  # every bad call answers with an error value
    assert res[1] is True


async def test_a_process_stream_is_a_reader_for_fs(tmp_path: Path) -> None:
    entry = fn("app:t", """
        local exec, fs = require("exec"), require("fs")
        return { call = function()
            local p = exec.get("app:exec"):exec("/bin/echo streamed to a file")
            local s = p:stdout_stream()
            p:start()
            local ok, err = fs.get("app:vol"):writefile("out.txt", s)
            return {ok, err == nil, p:wait()}
        end }
    """, modules=["exec", "fs"])
    ok, res = await run_entry(entry, executor(), Entry("app:vol", "fs.directory", {}, {"directory": str(tmp_path)}))
    assert ok, res
    assert res[0] == [True, True, 0]
    assert (tmp_path / "out.txt").read_text() == "streamed to a file\n"
