"""The `logger` module: structured records in Python logging, with pid, entry and location."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wippy.lua_stdlib import HostContext, LuaHost

from .helpers import Entries, fn

PID = "{n1@app:t|0x00001}"


def records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("wippy.lua")]


def fields(record: logging.LogRecord) -> dict[str, Any]:
    found = getattr(record, "fields", None)
    assert isinstance(found, dict)
    return found


async def run(body: str, *args: Any) -> tuple[bool, tuple[Any, ...]]:
    entry = fn("app:t", "local logger = require('logger')\nreturn { call = function(...)\n" + body + "\nend }",
               modules=["logger"])
    host = LuaHost(HostContext(registry=Entries(entry), node="n1", pid=PID))
    try:
        ok, results = await host.vm.run(host.callable(entry), *(host.vm.to_lua(a) for a in args))
        return ok, tuple(host.vm.from_lua(r) if not isinstance(r, str) else r for r in results)
    finally:
        await host.aclose()


async def test_levels_fields_and_location(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="wippy.lua")
    ok, res = await run("""
        logger:debug("d")
        logger:info("hello", {user = "u1", n = 3, ratio = 0.5, ok = true, nested = {a = 1, list = {1, 2}}, [1] = "x"})
        logger:warn(42)
        logger:error("failed", {error = errors.new("boom"), f = function() end})
    """)
    assert ok, res
    got = records(caplog)
    assert [(r.name, r.levelno, r.getMessage()) for r in got] == [
        ("wippy.lua", logging.DEBUG, "d"), ("wippy.lua", logging.INFO, "hello"),
        ("wippy.lua", logging.WARNING, "42"), ("wippy.lua", logging.ERROR, "failed")]
    # the chunk: line 1 the require, 2 the function header, 3 the snippet's empty first line
    assert fields(got[0]) == {"pid": PID, "entry": "app:t", "location": "app:t:4"}
    assert fields(got[1]) == {"user": "u1", "n": 3, "ratio": 0.5, "ok": True, "nested": {"a": 1, "list": [1, 2]},
                              "pid": PID, "entry": "app:t", "location": "app:t:5"}
    err_fields = fields(got[3])
    assert err_fields["error"] == "boom"
    assert err_fields["f"].startswith("function: ")


async def test_with_and_named_children(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="wippy.lua")
    ok, res = await run("""
        local api = logger:with({component = "api", version = "1.0"})
        local req = api:with({request_id = "r1", version = "1.1"})
        local auth = req:named("auth")
        auth:info("login", {user = "admin", request_id = "r2"})
        auth:named("tokens"):warn("expired")
        logger:info("root")
        api:info("api")
        return type(auth.info), logger ~= api
    """)
    assert ok, res
    assert res == ("function", True)
    got = records(caplog)
    assert [r.name for r in got] == ["wippy.lua.auth", "wippy.lua.auth.tokens", "wippy.lua", "wippy.lua"]
    login = fields(got[0])
    assert {k: login[k] for k in ("component", "version", "request_id", "user")} == {
        "component": "api", "version": "1.1", "request_id": "r2", "user": "admin"}
    assert fields(got[1])["request_id"] == "r1"
    assert "component" not in fields(got[2])  # the original logger is unchanged
    assert fields(got[3])["component"] == "api"


async def test_print_and_logger_share_pid_and_entry(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wippy.lua")
    ok, res = await run("""
        print("from print", 1)
        logger:info("from logger")
    """)
    assert ok, res
    printed, logged = records(caplog)
    assert printed.getMessage() == "from print\t1"
    for key in ("pid", "entry"):
        assert fields(printed)[key] == fields(logged)[key]
    assert fields(logged)["entry"] == "app:t"


async def test_disabled_levels_are_skipped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="wippy.lua")
    ok, res = await run("""
        logger:debug("no", {x = 1})
        logger:info("no")
        logger:warn("yes")
    """)
    assert ok, res
    assert [r.getMessage() for r in records(caplog)] == ["yes"]


async def test_misuse_raises_clear_errors(caplog: pytest.LogCaptureFixture) -> None:
    ok, res = await run("""
        local function try(f)
            local ok, err = pcall(f)
            return {ok, errors.is(err, "INVALID"), tostring(err)}
        end
        return {
            try(function() logger.info("dot call") end),
            try(function() logger:info("x", 5) end),
            try(function() logger:info({}) end),
            try(function() logger:with("x") end),
            try(function() logger:named("") end),
            try(function() logger:named(nil) end),
            try(function() logger.level = 1 end),
        }
    """)
    assert ok, res
    got = res[0]
    assert [g[0] for g in got] == [False] * 7
    assert [g[1] for g in got[:6]] == [True] * 6
    assert "call it with a colon" in got[0][2]
    assert "fields must be a table, got number" in got[1][2]
    assert "message must be a string, got table" in got[2][2]
    assert "logger:with: fields must be a table" in got[3][2]
    assert "non-empty string" in got[4][2] and "non-empty string" in got[5][2]
    assert "read-only" in got[6][2]
    assert records(caplog) == []


field_values = st.one_of(st.integers(-(2**53), 2**53), st.text(max_size=8), st.booleans())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda k: k not in ("pid", "entry", "location")), field_values, max_size=6))
async def test_fields_arrive_as_given(caplog: pytest.LogCaptureFixture, given_fields: dict[str, Any]) -> None:
    caplog.clear()
    caplog.set_level(logging.INFO, logger="wippy.lua")
    ok, res = await run("local f = ...\nlogger:info('m', f)", given_fields)
    assert ok, res
    (record,) = records(caplog)
    got = fields(record)
    assert {k: got[k] for k in given_fields} == given_fields
    assert got["pid"] == PID
