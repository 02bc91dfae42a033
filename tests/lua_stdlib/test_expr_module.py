"""The `expr` Lua module: eval, compile/run, value conversion, Lua functions, error kinds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from .helpers import fn, run_entry


async def run(body: str, *args: object) -> tuple[bool, tuple[object, ...]]:
    entry = fn("app:e", "local expr = require('expr')\nreturn { call = function(...) " + body + " end }",
               modules=["expr"])
    return await run_entry(entry, args=args)


async def test_documented_examples() -> None:
    ok, res = await run("""
        return {
            expr.eval("1 + 2 * 3"),
            expr.eval("price * quantity", {price = 29.99, quantity = 3}),
            expr.eval("age >= 18", {age = 21}),
            expr.eval('name + " is " + status', {name = "Alice", status = "online"}),
            expr.eval('score > 90 ? "A" : score > 80 ? "B" : "C"', {score = 85}),
            expr.eval('"admin" in roles', {roles = {"user", "admin", "viewer"}}),
            expr.eval("max(1, 5, 3)"),
            expr.eval("sum(values)", {values = {1, 2, 3, 4}}),
            expr.eval('"hello" contains "ell"'),
            expr.eval("all(items, {.price > 0})", {items = {{price = 1}, {price = 2}}}),
        }
    """)
    assert ok, res
    assert res[0] == [7, 29.99 * 3, True, "Alice is online", "B", True, 5, 10, True, True]


async def test_compile_once_run_many() -> None:
    ok, res = await run("""
        local calc, err = expr.compile("price * (1 - discount_rate)")
        assert(err == nil, err)
        local a = calc:run({price = 100, discount_rate = 0.1})
        local b = calc:run({price = 50, discount_rate = 0.2})
        local validator = expr.compile("len(password) >= 8 and len(password) <= 128")
        return {a, b, validator:run({password = "short"}), validator:run({password = "securepass123"}),
                tostring(calc), expr.compile("1 + x", {x = 0}):run({x = 41})}
    """)
    assert ok, res
    assert res[0] == [90.0, 40.0, False, True, "expr.Program", 42]


async def test_results_become_lua_values() -> None:
    ok, res = await run("""
        local arr = expr.eval("[1, 'two', 3.5, true]")
        local map = expr.eval("{a: 1, b: {c: [1, 2]}}")
        local n1, n2 = expr.eval("nil")
        local filtered = expr.eval("filter(xs, {# > 2})", {xs = {1, 2, 3, 4}})
        return {#arr, arr[2], arr[3], arr[4], map.a, map.b.c[2], n1 == nil, n2 == nil, #filtered, filtered[1],
                math.type(expr.eval("7")), math.type(expr.eval("7 / 1"))}
    """)
    assert ok, res
    assert res[0] == [4, "two", 3.5, True, 1, 2, True, True, 2, 3, "integer", "float"]


async def test_env_tables_map_like_wippy() -> None:
    ok, res = await run("""
        return {
            expr.eval("user.profile.age >= 18 && user.profile.active",
                      {user = {profile = {age = 25, active = true}}}),
            expr.eval("items[0].price + items[1].price", {items = {{price = 100}, {price = 50}}}),
            expr.eval("missing == nil", {}),
            expr.eval("len(empty)", {empty = {}}),
            expr.eval("a?.b?.c", {a = {}}) == nil,
        }
    """)
    assert ok, res
    assert res[0] == [True, 150, True, 0, True]


async def test_lua_functions_are_not_callable_but_pass_through() -> None:
    ok, res = await run("""
        local called = false
        local f = function() called = true; return 1 end
        local v, err = expr.eval("f(1)", {f = f})
        local back = expr.eval("f", {f = f})
        local same = expr.eval("[f][0]", {f = f})
        return {v == nil, err:kind(), err:message(), called, back == f, same == f}
    """)
    assert ok, res
    v_nil, kind, message, called, back, same = res[0]
    assert v_nil and kind == "INTERNAL" and not called and back and same
    assert "cannot be called from an expression" in message


async def test_error_kinds_follow_wippy() -> None:
    ok, res = await run("""
        local function kind_msg(v, err) return {v == nil, err:kind(), err:message()} end
        return {
            kind_msg(expr.eval("")),
            kind_msg(expr.compile("")),
            kind_msg(expr.eval("2 +")),
            kind_msg(expr.compile("(1")),
            kind_msg(expr.eval("1 + 'x'")),
            kind_msg(expr.eval("a.b", {a = nil})),
            kind_msg(expr.eval("x", "not a table")),
            kind_msg(expr.eval("x", {1, 2})),
            kind_msg(expr.eval({})),
            kind_msg(expr.compile("x"):run(42)),
        }
    """)
    assert ok, res
    got = res[0]
    assert [r[:2] for r in got] == [
        [True, "INVALID"], [True, "INVALID"], [True, "INTERNAL"], [True, "INTERNAL"], [True, "INTERNAL"],
        [True, "INTERNAL"], [True, "INVALID"], [True, "INVALID"], [True, "INVALID"], [True, "INVALID"],
    ]
    assert got[0][2] == "expr.eval: expression cannot be empty"
    assert "line 1, column 4" in got[2][2] and "compile failed" in got[2][2]
    assert "invalid operation: int + string" in got[4][2]
    assert "cannot fetch b from nil" in got[5][2]
    assert "got string" in got[6][2] and "got an array" in got[7][2]
    assert "must be a string, got table" in got[8][2]
    assert "expr.Program:run" in got[9][2]


async def test_numbers_as_expressions_and_program_misuse() -> None:
    ok, res = await run("""
        local p = expr.compile("1")
        local ok_call, err = pcall(p.run, {})
        local ok_set = pcall(function() p.x = 1 end)
        return {expr.eval(42), ok_call, err:kind(), ok_set}
    """)
    assert ok, res
    assert res[0] == [42, False, "INVALID", False]


@settings(max_examples=30, deadline=None)
@given(st.integers(-10**9, 10**9), st.integers(-10**9, 10**9))
async def test_arithmetic_matches_lua(a: int, b: int) -> None:
    ok, res = await run("local a, b = ...; return {expr.eval('a + b * 2 - a', {a = a, b = b}), a + b * 2 - a}",
                        a, b)
    assert ok, res
    assert res[0][0] == res[0][1] == b * 2


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(-1000, 1000), min_size=1, max_size=8))
async def test_arrays_round_trip(xs: list[int]) -> None:
    ok, res = await run("""
        local xs = {}
        for n in (...):gmatch("-?%d+") do xs[#xs + 1] = math.tointeger(tonumber(n)) end
        return expr.eval('map(xs, {# * 2})', {xs = xs})
    """, ",".join(map(str, xs)))
    assert ok, res
    assert res[0] == [x * 2 for x in xs]
