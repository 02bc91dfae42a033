"""The `env` module on a real host and registry: reads, writes, permissions, and a terminal app."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from wippy.core import Entry
from wippy.lua_stdlib import HostContext, LuaHost
from wippy.services import EnvService, run_terminal_process

from .helpers import Entries, Node, fn, run_entry


def var(eid: str, storage: str, name: str | None = None, **data: Any) -> Entry:
    d: dict[str, Any] = {"storage": storage, **data}
    if name is not None:
        d["variable"] = name
    return Entry(eid, "env.variable", {}, d)


def policy(name: str, actions: Any, resources: Any, effect: str = "allow") -> Entry:
    return Entry(f"app.sec:{name}", "security.policy", {},
                 {"policy": {"actions": actions, "resources": resources, "effect": effect}, "groups": ["app.sec:g"]})


OS = Entry("app:os", "env.storage.os", {}, {})
MEM = Entry("app:mem", "env.storage.memory", {}, {})
VARS = (OS, MEM, var("app:home", "app:os", "HOME"), var("app:port", "app:os", "PORT", default="8080"),
        var("app:level", "app:mem", "LOG_LEVEL", default="info"),
        var("app:version", "app:mem", "APP_VERSION", default="1.0.0", read_only=True),
        var("app:secret", "app:mem", default="hidden"))


async def run_on(node: Node, env: EnvService, entry: Entry, *others: Entry) -> tuple[bool, tuple[Any, ...]]:
    await node.apply(entry, *others)
    host = LuaHost(HostContext(registry=node.svc, node="n1", pid="{n1|0x1}", stores=node.stores,
                               audit=node.svc.record_denied, expr=node.expr, env=env))
    try:
        ok, results = await host.vm.run(host.callable(entry))
        return ok, tuple(host.vm.from_lua(r) if not isinstance(r, str) else r for r in results)
    finally:
        await host.aclose()


async def test_get_set_and_get_all(node: Node) -> None:
    env = EnvService(node.svc, environ={"HOME": "/home/u", "PATH": "/bin"})
    ok, res = await run_on(node, env, fn("app:t", """
        local env = require("env")
        return { call = function()
            local before = env.get("LOG_LEVEL")
            local set_ok, set_err = env.set("LOG_LEVEL", "debug")
            local all = env.get_all()
            return {env.get("HOME"), env.get("app:home"), env.get("PORT"), before, set_ok, set_err == nil,
                    env.get("LOG_LEVEL"), env.get("secret"), env.get("app:secret"),
                    all.LOG_LEVEL, all.PORT, all.PATH, all.APP_VERSION, all["app:secret"]}
        end }
    """, modules=["env"]), *VARS)
    assert ok, res
    assert res[0] == ["/home/u", "/home/u", "8080", "info", True, True, "debug", "hidden", "hidden",
                      "debug", "8080", "/bin", "1.0.0", "hidden"]


async def test_errors_are_values(node: Node) -> None:
    env = EnvService(node.svc, environ={"RAW": "x"})
    ok, res = await run_on(node, env, fn("app:t", """
        local env = require("env")
        local function k(v, err) return {v == nil, err and err:kind(), err and err:message()} end
        return { call = function()
            return {k(env.get("")), k(env.get({})), k(env.get("RAW")), k(env.get("NOPE")),
                    k(env.set("APP_VERSION", "2.0.0")), k(env.set("HOME", "/x")), k(env.set("")),
                    k(env.set("LOG_LEVEL")), k(env.get("LOST")), env.get("APP_VERSION")}
        end }
    """, modules=["env"]), *VARS, var("app:lost", "app:mem", "LOST"))
    assert ok, res
    got = res[0]
    assert got[0] == [True, "INVALID", "env.get: empty key"]
    assert got[1][:2] == [True, "INVALID"] and "must be a string" in got[1][2]
    assert got[2][:2] == [True, "NOT_FOUND"]  # an OS variable no env.variable names
    assert got[3][:2] == [True, "NOT_FOUND"]
    assert got[4] == [True, "PERMISSION_DENIED", "environment variable APP_VERSION is read-only"]
    assert got[5] == [True, "PERMISSION_DENIED", "env storage app:os is read-only"]
    assert got[6][:2] == [True, "INVALID"]
    assert got[7][:2] == [True, "INVALID"] and "value must be a string" in got[7][2]
    assert got[8] == [True, "NOT_FOUND", "environment variable LOST is not set and has no default"]
    assert got[9] == "1.0.0"


async def test_permissions_on_names(node: Node) -> None:
    env = EnvService(node.svc, environ={"HOME": "/h"})
    reader = fn("app:reader", """
        local env = require("env")
        return { call = function()
            local all = env.get_all()
            local names = {}
            for k in pairs(all) do names[#names + 1] = k end
            table.sort(names)
            local _, denied = env.get("HOME")
            local _, set_denied = env.set("LOG_LEVEL", "x")
            return {env.get("LOG_LEVEL"), denied:kind(), set_denied:kind(), names}
        end }
    """, modules=["env"])
    ok, res = await run_on(node, env, fn("app:t", """
        local security = require("security")
        local funcs = require("funcs")
        return { call = function()
            return funcs.new():with_actor(security.new_actor("u1")):with_scope(security.named_scope("app.sec:g"))
                :call("app:reader")
        end }
    """, modules=["security", "funcs"]), reader, *VARS, policy("calls", "funcs.call", "*"),
        policy("levels", "env.get", ["LOG_LEVEL", "PORT"]))
    assert ok, res
    assert res[0] == ["info", "PERMISSION_DENIED", "PERMISSION_DENIED", ["LOG_LEVEL", "PORT"]]


async def test_a_variable_applied_at_run_time_is_seen_at_once(node: Node, tmp_path: Path) -> None:
    env = EnvService(node.svc, base_dir=tmp_path)
    ok, res = await run_on(node, env, fn("app:t", """
        local env = require("env")
        local registry = require("registry")
        return { call = function()
            local _, before = env.get("FEATURE")
            local _, err = registry.snapshot():changes():create({id = "app:feature", kind = "env.variable",
                meta = {}, data = {variable = "FEATURE", storage = "app:file", default = "off"}}):apply()
            local v1 = env.get("FEATURE")
            local ok = env.set("FEATURE", "on")
            return {before:kind(), err == nil, v1, ok, env.get("FEATURE")}
        end }
    """, modules=["env", "registry"]), Entry("app:file", "env.storage.file", {},
                                              {"file_path": "flags.env", "auto_create": True}))
    assert ok, res
    assert res[0] == ["NOT_FOUND", True, "off", True, "on"]
    assert (tmp_path / "flags.env").read_text() == "FEATURE=on\n"


async def test_without_an_env_registry_the_module_is_unavailable() -> None:
    entry = fn("app:t", "return { call = function() return pcall(require, 'env') end }", modules=["env"])
    ok, res = await run_entry(entry)
    assert ok, res
    assert res[0] is False and "UNAVAILABLE" in str(res[1])


async def test_token_store_key_from_an_env_variable() -> None:
    entries = (MEM, var("app:key", "app:mem", "TOKEN_KEY", default="s3cret"),
               Entry("app:kv", "store.memory", {}, {}),
               Entry("app:tokens", "security.token_store", {}, {"store": "app:kv", "token_key": "${env:TOKEN_KEY}"}))
    entry = fn("app:t", """
        local security = require("security")
        return { call = function()
            local store = security.token_store("app:tokens")
            local token = store:create(security.new_actor("u1"), security.new_scope({}))
            local actor = store:validate(token)
            return {token:find(".", 1, true) ~= nil, actor:id()}
        end }
    """, modules=["security"])
    reg = Entries(entry, *entries)
    from wippy.services._stores import StoreHub

    ok, res = await run_entry(entry, registry=reg, env=EnvService(reg), stores=StoreHub(reg))
    assert ok, res
    assert res[0] == [True, "u1"]


APP = """
local io = require("io")
local env = require("env")
local function main()
    io.print("NAME=" .. tostring(env.get("APP_NAME")))
    io.print("PORT=" .. (env.get("PORT") or "?"))
    io.print("LEVEL=" .. tostring(env.get("LOG_LEVEL")))
    env.set("LOG_LEVEL", "debug")
    io.print("LEVEL=" .. tostring(env.get("LOG_LEVEL")))
    local _, err = env.set("APP_VERSION", "9")
    io.print("VERSION=" .. tostring(env.get("APP_VERSION")) .. " " .. err:kind())
    local ok = env.set("GREETING", "casual")
    io.print("GREETING=" .. tostring(env.get("GREETING")) .. " " .. tostring(ok))
    local all = env.get_all()
    io.print("ALL=" .. all.APP_NAME .. "," .. all.PORT .. "," .. all.LOG_LEVEL .. "," .. all.GREETING)
    io.print("PRIVATE=" .. tostring(env.get("private_token")))
    return 0
end
return { main = main }
"""


async def test_a_terminal_app_like_wippys_example(node: Node, tmp_path: Path) -> None:
    (tmp_path / "app.env").write_text("# settings\nAPP_NAME=Env Demo\nLOG_LEVEL=warn\nAPP_VERSION=2.0.0\n")
    env = EnvService(node.svc, environ={"PORT": "9090"}, base_dir=tmp_path)
    file_env = Entry("app:file_env", "env.storage.file", {},
                     {"file_path": "./app.env", "auto_create": True, "file_mode": 0o600})
    await node.apply(
        Entry("app:terminal", "terminal.host", {}, {}), OS, MEM, file_env,
        var("app:app_name", "app:file_env", "APP_NAME"), var("app:port", "app:os", "PORT", default="8080"),
        var("app:log_level", "app:mem", "LOG_LEVEL", default="info"),
        var("app:app_version", "app:file_env", "APP_VERSION", default="1.0.0", read_only=True),
        var("app:greeting", "app:file_env", "GREETING", default="formal"),
        var("app:private_token", "app:mem", default="tok"),
        Entry("app:cli", "process.lua", {}, {"source": APP, "method": "main", "modules": ["io", "env"]}),
    )
    out, err = io.StringIO(), io.StringIO()
    code = await run_terminal_process(node.svc, "n1", "app:cli", [], stores=node.stores, env=env,
                                      stdin=io.StringIO(""), stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    assert out.getvalue().splitlines() == [
        "NAME=Env Demo", "PORT=9090", "LEVEL=info", "LEVEL=debug", "VERSION=2.0.0 PERMISSION_DENIED",
        "GREETING=casual true", "ALL=Env Demo,9090,debug,casual", "PRIVATE=tok",
    ]
    assert (tmp_path / "app.env").read_text().splitlines()[-1] == "GREETING=casual"
