"""funcs, ctx, errors and payload: Wippy's calling conventions."""

from __future__ import annotations

from .helpers import fn, run_entry

DOUBLE = fn("app:double", "return { call = function(n) return n * 2 end }")
FAILS = fn("app:fails", "return { call = function() error('boom') end }")
RETURNS_ERR = fn("app:returns_err", """
    return { call = function()
        return nil, errors.new({message = "nope", kind = errors.NOT_FOUND, retryable = false})
    end }
""")
CTX = fn("app:ctx", """
    local ctx = require("ctx")
    return { call = function() local v, err = ctx.get("user"); local _, missing = ctx.get("nope")
                               return {v, missing and missing:kind(), ctx.all()} end }
""", modules=["ctx"])
MUTATES = fn("app:mutates", "return { call = function(t) t.x = 99; return t end }")


async def call(source: str, *others: object, modules: tuple[str, ...] = ("funcs",)) -> tuple[bool, tuple[object, ...]]:
    entry = fn("app:caller", source, modules=list(modules))
    return await run_entry(entry, DOUBLE, FAILS, RETURNS_ERR, CTX, MUTATES, *others)  # type: ignore[arg-type]


async def test_call_returns_value_and_nil() -> None:
    ok, res = await call("""
        local funcs = require("funcs")
        return { call = function() return {funcs.call("app:double", 21)} end }
    """)
    assert ok, res
    assert res[0] == [42]


async def test_a_raising_callee_is_an_error_value_with_its_location() -> None:
    ok, res = await call("""
        local funcs = require("funcs")
        return { call = function()
            local v, err = funcs.call("app:fails")
            return {v == nil, err:kind(), err:message(), tostring(err), errors.is(err, errors.UNKNOWN)}
        end }
    """)
    assert ok, res
    nil_value, kind, message, text, is_unknown = res[0]  # type: ignore[misc]
    assert nil_value is True
    assert kind == "UNKNOWN"
    assert "app:fails:1: boom" in message
    assert text == message
    assert is_unknown is True


async def test_a_returned_error_passes_through_with_kind_and_retryable() -> None:
    ok, res = await call("""
        local funcs = require("funcs")
        return { call = function()
            local v, err = funcs.call("app:returns_err")
            local wrapped = errors.wrap(err, "loading user")
            return {err:kind(), err:retryable(), wrapped:message(), wrapped:kind(), errors.is(wrapped, "NOT_FOUND")}
        end }
    """)
    assert ok, res
    assert res[0] == ["NOT_FOUND", False, "loading user: nope", "NOT_FOUND", True]


async def test_bad_ids_and_missing_functions() -> None:
    ok, res = await call("""
        local funcs = require("funcs")
        return { call = function()
            local _, e1 = funcs.call("no-colon")
            local _, e2 = funcs.call("app:missing")
            local _, e3 = funcs.call("app:caller") -- a process is not a function (here: the caller is one)
            return {e1:kind(), e2:kind(), e2:message()}
        end }
    """)
    assert ok, res
    assert res[0][:2] == ["INVALID", "NOT_FOUND"]
    assert "app:missing" in res[0][2]


async def test_executor_context_reaches_the_callee_only() -> None:
    ok, res = await call("""
        local funcs = require("funcs")
        local ctx = require("ctx")
        return { call = function()
            local exec = funcs.new():with_context({user = "ann"})
            local inside = exec:call("app:ctx")
            local _, outside = ctx.get("user")
            return {inside[1], inside[2], inside[3].user, outside:kind()}
        end }
    """, modules=("funcs", "ctx"))
    assert ok, res
    assert res[0] == ["ann", "NOT_FOUND", "ann", "NOT_FOUND"]


async def test_arguments_are_copied() -> None:
    ok, res = await call("""
        local funcs = require("funcs")
        return { call = function()
            local mine = {x = 1}
            local theirs = funcs.call("app:mutates", mine)
            return {mine.x, theirs.x}
        end }
    """)
    assert ok, res
    assert res[0] == [1, 99]


async def test_async_futures() -> None:
    ok, res = await call("""
        local funcs = require("funcs")
        return { call = function()
            local fut = funcs.async("app:double", 5)
            local p = fut:response():receive()
            local done_value = p:data()
            local bad = funcs.async("app:fails")
            local _, closed = bad:channel():receive()
            local err, has = bad:error()
            return {done_value, fut:is_complete(), closed, has, err:kind()}
        end }
    """)
    assert ok, res
    assert res[0] == [10, True, False, True, "UNKNOWN"]


async def test_errors_new_and_call_stack() -> None:
    ok, res = await call("""
        return { call = function()
            local e = errors.new("plain")
            local e2 = errors.new({message = "rich", kind = errors.CONFLICT, details = {id = 7}})
            local stack = errors.call_stack(e)
            return {e:kind(), e2:kind(), e2:details().id, type(stack.frames), e:message() .. "!"}
        end }
    """, modules=())
    assert ok, res
    assert res[0] == ["UNKNOWN", "CONFLICT", 7, "table", "plain!"]


async def test_payload_global() -> None:
    ok, res = await call("""
        return { call = function()
            local p = payload.new({a = 1})
            return {p:data().a, p:get_format(), payload.format.JSON}
        end }
    """, modules=())
    assert ok, res
    assert res[0] == [1, "lua/any", "json/plain"]


async def test_require_rules() -> None:
    ok, res = await call("""
        return { call = function()
            local a, e1 = pcall(require, "funcs")      -- listed
            local b, e2 = pcall(require, "json")       -- a Wippy module, not listed
            local c, e3 = pcall(require, "nonsense")   -- nothing of that name
            return {a, b, tostring(e2), c, tostring(e3)}
        end }
    """)
    assert ok, res
    listed, json_ok, json_err, nonsense_ok, nonsense_err = res[0]  # type: ignore[misc]
    assert listed is True
    assert json_ok is False
    assert "not in the modules: list of app:caller" in json_err
    assert nonsense_ok is False
    assert "no module or import named nonsense" in nonsense_err


async def test_not_built_modules_are_unavailable() -> None:
    ok, res = await call("""
        return { call = function()
            local ok, err = pcall(require, "cloudstorage")
            return {ok, tostring(err)}
        end }
    """, modules=("cloudstorage",))
    assert ok, res
    assert res[0][0] is False
    assert "UNAVAILABLE" in res[0][1]
    assert "not implemented" in res[0][1]


async def test_imports_give_library_tables() -> None:
    lib = fn("app:strings", "local M = {} function M.shout(s) return s:upper() .. '!' end return M",
             method=None, kind="library.lua")
    caller = fn("app:caller", """
        local s = require("str")
        return { call = function() return s.shout("hi") end }
    """, imports={"str": "app:strings"})
    ok, res = await run_entry(caller, lib)
    assert ok, res
    assert res == ("HI!",)


async def test_changed_code_is_recompiled_unchanged_code_is_reused() -> None:
    from wippy.core import Entry
    from wippy.lua_stdlib import HostContext, LuaHost

    from .helpers import Entries

    v1 = fn("app:v", "local loads = (loads or 0) + 1\nreturn { call = function() return 'one' end }")
    caller = fn("app:caller", "local funcs = require('funcs')\n"
                "return { call = function() return funcs.call('app:v') end }", modules=["funcs"])
    reg = Entries(v1, caller)
    host = LuaHost(HostContext(registry=reg, node="n", pid="p"))
    try:
        main = host.callable(caller)
        assert (await host.vm.run(main))[1][0] == "one"
        # a new registry version with the same content: no recompilation (same compiled function)
        same = Entry(v1.id, v1.kind, dict(v1.meta), dict(v1.data))
        reg.entries[v1.id] = same
        first = host.callable(same)
        assert host.vm.rt.eval("rawequal")(host.callable(same), first)
        assert (await host.vm.run(main))[1][0] == "one"
        # changed content: the next call runs the new code
        reg.entries[v1.id] = fn("app:v", "return { call = function() return 'two' end }")
        assert (await host.vm.run(main))[1][0] == "two"
    finally:
        await host.aclose()
