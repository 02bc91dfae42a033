"""The runtime type library (types.lua): type values built by translated declarations, the
primitive casts, typeof, table.create and table.freeze; plus a model check of ``T:is(v)``."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lupa.lua54 as lupa  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import Lua


def run(lua: Lua, source: str) -> Any:
    return lua.run(source)


# -- type values ----------------------------------------------------------------------------------
USER = """
type Address = {city: string, zip: string @pattern("^%d%d%d%d%d$")}
type User = {
    name: string @min_len(1),
    age: integer? @min(0) @max(150),
    tags: {string},
    address: Address?,
    role: "admin" | "user",
    meta?: {[string]: any},
}
"""


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("{name = 'a', tags = {}, role = 'user'}", None),
        ("{name = 'a', tags = {'x'}, role = 'admin', age = 30, address = {city = 'c', zip = '12345'}}", None),
        ("5", "User: expected table, got integer 5"),
        ("{tags = {}, role = 'user'}", "User: field name: missing (expected string, got nil)"),
        ("{name = '', tags = {}, role = 'user'}", "User: field name: length must be >= 1, got 0"),
        ("{name = 'a', tags = {'x', 2}, role = 'user'}", "User: field tags[2]: expected string, got integer 2"),
        ("{name = 'a', tags = {}, role = 'root'}", 'User: field role: expected "admin" | "user", got string "root"'),
        ("{name = 'a', tags = {}, role = 'user', age = 1.5}", "User: field age: expected integer, got number 1.5"),
        ("{name = 'a', tags = {}, role = 'user', age = 200}", "User: field age: must be <= 150, got 200"),
        (
            "{name = 'a', tags = {}, role = 'user', address = {city = 'c', zip = 'x'}}",
            'User: field address.zip: must match pattern "^%d%d%d%d%d$"',
        ),
        (
            "{name = 'a', tags = {}, role = 'user', meta = {[1] = 2}}",
            "User: field meta: key integer 1: expected string, got integer 1",
        ),
    ],
)
def test_record_validation(lua: Lua, value: str, error: str | None) -> None:
    ok, err = run(lua, USER + f"local v = {value}\nlocal r, e = User:is(v)\nreturn r == v, e")
    assert (ok, err) == (error is None, error)


def test_call_returns_the_value_or_raises(lua: Lua) -> None:
    assert run(lua, USER + "local v = {name = 'a', tags = {}, role = 'user'}\nreturn User(v) == v")
    with pytest.raises(lupa.LuaError, match=r"t\.lua:12: User: field tags: missing \(expected array, got nil\)"):
        run(lua, USER + "\nlocal u = User({name = 'a', role = 'user'})\nreturn u")


def test_reflection(lua: Lua) -> None:
    src = USER + """
local names = {}
for name, t in User:fields() do names[#names + 1] = name .. ":" .. t:kind() end
local variants = {}
for v in User.role:variants() do variants[#variants + 1] = v end
return table.concat(names, ","), table.concat(variants, ","), User:kind(), User:name(),
    User.tags:elem():kind(), User.meta:key():kind(), User.age:kind(), tostring(User.address)
"""
    assert run(lua, src) == (
        "name:string,age:optional,tags:array,address:optional,role:union,meta:map",
        "admin,user",
        "record",
        "User",
        "string",
        "string",
        "optional",
        "Address?",
    )


def test_kinds(lua: Lua) -> None:
    src = """
type S = string
type O = number?
type U = string | number
type I = {a: number} & {b: number}
type J = {a: number} & Other
type L = "x"
type A = {number}
type M = {[string]: boolean}
type F = (number) -> ()
type T = typeof(print)
type E = never
return S:kind(), O:kind(), U:kind(), I:kind(), J:kind(), L:kind(), A:kind(), M:kind(), F:kind(), T:kind(), E:kind()
"""
    assert run(lua, src) == (
        "string", "optional", "union", "record", "intersection", "literal", "array", "map", "function", "any", "never"
    )


def test_intersection_merges_record_fields(lua: Lua) -> None:
    src = """
type Named = {name: string}
type Aged = {age: number}
type Person = Named & Aged & {email?: string}
local names = {}
for n in Person:fields() do names[#names + 1] = n end
local _, err = Person:is({name = "a"})
return table.concat(names, ","), err, Person:is({name = "a", age = 1}) ~= nil
"""
    assert run(lua, src) == ("name,age,email", "Person: field age: missing (expected number, got nil)", True)


def test_recursive_and_forward_references(lua: Lua) -> None:
    src = """
type Tree = {value: integer, children: {Tree}?}
local ok = Tree:is({value = 1, children = {{value = 2, children = {{value = 3}}}}}) ~= nil
local _, err = Tree:is({value = 1, children = {{value = 2, children = {{value = "x"}}}}})
local cyclic = {value = 1}
cyclic.children = {cyclic}
local _, deep = Tree:is(cyclic)
return ok, err, deep
"""
    ok, err, deep = run(lua, src)
    assert ok is True
    assert err == 'Tree: field children[1].children[1].value: expected integer, got string "x"'
    assert "nested too deeply" in deep


def test_types_are_hoisted_to_the_chunk(lua: Lua) -> None:
    src = """
local function check(v) return Later:is(v) end
type Early = {later: Later}
local _, early = Early:is({later = 1})
type Later = number
local ok = check(2)
return early, ok
"""
    assert run(lua, src) == ("Early: field later: type Later is not defined yet", 2)


def test_types_in_blocks_stay_local(lua: Lua) -> None:
    src = """
local function make()
    type Inner = {n: number}
    return Inner
end
do
    type Scoped = string
end
return make():kind(), Inner, Scoped
"""
    assert run(lua, src) == ("record", None, None)


def test_generics_are_any_at_runtime(lua: Lua) -> None:
    src = """
type Box<T> = {value: T, label: string}
type Pair<A, B> = {first: A, second: B}
type UsesBox = {b: Box<number>}
return Box:is({value = "anything", label = "l"}) ~= nil, (Box:is({value = 1})),
    Pair:is({first = 1, second = "x"}) ~= nil, UsesBox:is({b = {value = true, label = "x"}}) ~= nil
"""
    assert run(lua, src) == (True, None, True, True)


def test_external_names_resolve_when_they_hold_types(lua: Lua) -> None:
    src = """
local mod = {}
type HasMod = {id: mod.Id}
type HasGlobal = {n: Counter}
type HasLib = {s: lib.str}
local before = HasMod:is({id = 5}) ~= nil
type Id = string
mod.Id = Id
Counter = integer
lib = {str = string}
return before, (HasMod:is({id = 5})), HasMod:is({id = "x"}) ~= nil, (HasGlobal:is({n = 1.5})), (HasLib:is({s = 1}))
"""
    assert run(lua, src) == (True, None, True, None, None)


def test_tagged_union_reports_the_matching_variant(lua: Lua) -> None:
    src = """
type Shape = {kind: "circle", r: number} | {kind: "rect", w: number, h: number}
local _, e1 = Shape:is({kind = "rect", w = 1})
local _, e2 = Shape:is({kind = "blob"})
type OneTable = string | {id: string}
local _, e3 = OneTable:is({})
return e1, e2, e3
"""
    assert run(lua, src) == (
        "Shape: field h: missing (expected number, got nil)",
        "Shape: expected {kind, r} | {kind, w, h}, got table",
        "OneTable: field id: missing (expected string, got nil)",
    )


def test_validators(lua: Lua) -> None:
    src = """
type Score = number @min(0) @max(100)
type Name = string @min_len(2) @max_len(4)
type Code = string @len(3) @pattern("^%u+$")
type Level = string @one_of("debug", "info")
type Ids = {integer @min(1)} @max_len(2)
type Id = number @min(1) | string @min_len(1)
local function e(t, v) local _, err = t:is(v) return err or "ok" end
return e(Score, 50), e(Score, -1), e(Score, "x"), e(Name, "a"), e(Name, "abcde"), e(Name, "héé"),
    e(Code, "AB"), e(Code, "abc"), e(Level, "warn"), e(Ids, {1, 0}), e(Ids, {1, 2, 3}), e(Id, 0), e(Id, "")
"""
    assert run(lua, src) == (
        "ok",
        "Score: must be >= 0, got -1",
        'Score: expected number, got string "x"',
        "Name: length must be >= 2, got 1",
        "Name: length must be <= 4, got 5",
        "ok",
        "Code: length must be 3, got 2",
        'Code: must match pattern "^%u+$"',
        'Level: must be one of "debug", "info", got string "warn"',
        "Ids: field [2]: must be >= 1, got 0",
        "Ids: length must be <= 2, got 3",
        'Id: expected number | string, got integer 0',
        'Id: expected number | string, got string ""',
    )


def test_bad_pattern_fails_at_declaration(lua: Lua) -> None:
    with pytest.raises(lupa.LuaError, match="@pattern"):
        run(lua, 'type P = string @pattern("[a")')


def test_aliases_of_primitives_validate(lua: Lua) -> None:
    src = """
type Id = integer
local _, err = Id:is("5")
return Id(5), err, Id:name(), Id:kind(), integer:name()
"""
    assert run(lua, src) == (5, 'Id: expected integer, got string "5"', "Id", "integer", "integer")


# -- primitives installed in the environment ---------------------------------------------------------
@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("string(12)", "12"),
        ("string(nil)", "nil"),
        ("string(true)", "true"),
        ("integer('42')", 42),
        ("integer(7.0)", 7),
        ("math.type(integer('8'))", "integer"),
        ("number('2.5')", 2.5),
        ("number(3)", 3),
        ("boolean('false')", False),
        ("boolean(0)", False),
        ("boolean(true)", True),
        ("any(5)", 5),
        ("(integer:is(5))", 5),
        ("select(2, integer:is(5.5))", "expected integer, got number 5.5"),
        ("(integer:is(2.0))", 2.0),
        ("(number:is(1))", 1),
        ("(string:is('s'))", "s"),
        ("select(2, string:is(1))", "expected string, got integer 1"),
        ("(boolean:is(false))", False),
        ("string:kind()", "string"),
        ("integer:kind()", "integer"),
        ("never:kind()", "never"),
        ("select('#', unknown:is(nil))", 2),
        ("table:is({}) ~= nil", True),
        ("table:kind()", "table"),
        ("typeof(1):name()", "integer"),
        ("typeof(1.5):name()", "number"),
        ("typeof('x'):name()", "string"),
        ("typeof({}):name()", "table"),
        ("typeof(nil):name()", "nil"),
        ("typeof(print):name()", "function"),
        ("string.format('%d', 3)", "3"),
        ("('abc'):upper()", "ABC"),
    ],
)
def test_installed_primitives(lua: Lua, expr: str, expected: object) -> None:
    assert lua.eval(expr, lua.env()) == expected


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("integer('1.5')", 'cannot convert string "1.5" to integer'),
        ("integer(1.5)", "cannot convert number 1.5 to integer"),
        ("integer({})", "cannot convert table to integer"),
        ("number('abc')", 'cannot convert string "abc" to number'),
        ("boolean('yes')", 'cannot convert string "yes" to boolean'),
        ("never(1)", "expected never, got integer 1"),
    ],
)
def test_failed_casts_raise_at_the_caller(lua: Lua, expr: str, message: str) -> None:
    with pytest.raises(lupa.LuaError, match=r"t\.lua:2: " + message.replace("(", r"\(").replace(")", r"\)")):
        lua.run(f"local x = 1\nlocal r = {expr}\nreturn r")


def test_install_leaves_the_real_string_table_alone(lua: Lua) -> None:
    lua.env()
    assert lua.rt.eval("getmetatable(string)") is None
    assert lua.rt.eval("table.freeze") is None
    with pytest.raises(lupa.LuaError):
        lua.rt.eval("string(1)")


# -- table.create / table.freeze ----------------------------------------------------------------------
def test_table_create(lua: Lua) -> None:
    assert run(lua, "local t = table.create(10, 2)\nt[1] = 'a'\nreturn #t, type(table.create())") == (1, "table")
    with pytest.raises(lupa.LuaError, match="bad argument #1 to 'create'"):
        run(lua, "return table.create('x')")


def test_freeze_reads_work_and_writes_raise(lua: Lua) -> None:
    src = """
local t = table.freeze({1, 2, 3, name = "n"})
local keys, sum = 0, 0
for _ in pairs(t) do keys = keys + 1 end
for _, v in ipairs(t) do sum = sum + v end
return #t, t.name, keys, sum, table.concat(t, ","), table.isfrozen(t), table.isfrozen({}), select("#", table.unpack(t))
"""
    assert run(lua, src) == (3, "n", 4, 6, "1,2,3", True, False, 3)


@pytest.mark.parametrize(
    "write",
    ["t.name = 'x'", "t.new = 1", "t[1] = 9", "table.insert(t, 4)", "t[1] = nil", "setmetatable(t, {})"],
)
def test_frozen_writes_raise(lua: Lua, write: str) -> None:
    with pytest.raises(lupa.LuaError, match=r"frozen table|protected metatable"):
        run(lua, f"local t = table.freeze({{1, 2, 3, name = 'n'}})\n{write}")


def test_freeze_keeps_the_metatable_behaviour(lua: Lua) -> None:
    src = """
local Class = {}
Class.__index = {hello = function(self) return "hi " .. self.name end}
Class.__tostring = function(self) return "obj " .. self.name end
local o = table.freeze(setmetatable({name = "x"}, Class))
return o:hello(), tostring(o), getmetatable(o) == Class, table.freeze(o) == o
"""
    assert run(lua, src) == ("hi x", "obj x", True, True)


def test_freeze_rejects_non_tables(lua: Lua) -> None:
    with pytest.raises(lupa.LuaError, match="table expected, got number"):
        run(lua, "return table.freeze(1)")


# -- model check: T:is(v) agrees with a Python model of the type ---------------------------------------
@dataclass(frozen=True)
class TPrim:
    name: str


@dataclass(frozen=True)
class TLit:
    value: str | bool


@dataclass(frozen=True)
class TOpt:
    inner: Any


@dataclass(frozen=True)
class TUnion:
    a: Any
    b: Any


@dataclass(frozen=True)
class TArray:
    elem: Any


@dataclass(frozen=True)
class TMap:
    value: Any


@dataclass(frozen=True)
class TRecord:
    fields: tuple[tuple[str, Any, bool], ...]


def render(t: Any) -> str:
    if isinstance(t, TPrim):
        return t.name
    if isinstance(t, TLit):
        return f'"{t.value}"' if isinstance(t.value, str) else str(t.value).lower()
    if isinstance(t, TOpt):
        return f"({render(t.inner)})?"
    if isinstance(t, TUnion):
        return f"{render(t.a)} | {render(t.b)}"
    if isinstance(t, TArray):
        return "{" + render(t.elem) + "}"
    if isinstance(t, TMap):
        return "{[string]: " + render(t.value) + "}"
    body = ", ".join(f"{n}{'?' if o else ''}: {render(ft)}" for n, ft, o in t.fields)
    return "{" + body + "}"


def _is_int(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (isinstance(v, float) and v.is_integer() and -(2**63) <= v < 2**63)


def matches(t: Any, v: Any) -> bool:
    if isinstance(t, TPrim):
        checks: dict[str, Callable[[], bool]] = {
            "string": lambda: isinstance(v, str),
            "number": lambda: isinstance(v, int | float) and not isinstance(v, bool),
            "integer": lambda: _is_int(v),
            "boolean": lambda: isinstance(v, bool),
            "nil": lambda: v is None,
            "any": lambda: True,
            "table": lambda: isinstance(v, list | dict),
        }
        return checks[t.name]()
    if isinstance(t, TLit):
        return type(v) is type(t.value) and v == t.value
    if isinstance(t, TOpt):
        return v is None or matches(t.inner, v)
    if isinstance(t, TUnion):
        return matches(t.a, v) or matches(t.b, v)
    if isinstance(t, TArray):
        # a string-keyed Lua table has length 0, so it is an (empty) array
        return isinstance(v, dict) or (isinstance(v, list) and all(matches(t.elem, x) for x in v))
    if isinstance(t, TMap):
        if isinstance(v, list):
            return not v
        return isinstance(v, dict) and all(matches(t.value, x) for x in v.values())
    if not isinstance(v, list | dict):
        return False
    present = v if isinstance(v, dict) else {}
    return all(
        (name not in present and (optional or matches(ft, None))) or (name in present and matches(ft, present[name]))
        for name, ft, optional in t.fields
    )


_FIELD_NAMES = st.sampled_from(["a", "b", "c"])
_TYPES = st.recursive(
    st.one_of(
        st.sampled_from(["string", "number", "integer", "boolean", "nil", "any", "table"]).map(TPrim),
        st.one_of(st.sampled_from(["x", "y"]), st.booleans()).map(TLit),
    ),
    lambda inner: st.one_of(
        inner.map(TOpt),
        st.tuples(inner, inner).map(lambda p: TUnion(*p)),
        inner.map(TArray),
        inner.map(TMap),
        st.dictionaries(_FIELD_NAMES, st.tuples(inner, st.booleans()), max_size=3).map(
            lambda d: TRecord(tuple((n, ft, o) for n, (ft, o) in sorted(d.items())))
        ),
    ),
    max_leaves=6,
)
_SCALARS = st.one_of(
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-4, 4, allow_nan=False).filter(lambda f: not math.isinf(f)),
    st.sampled_from([2.0, 0.5, "x", "y", ""]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_FIELD_NAMES, inner, max_size=3)),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_TYPES, st.lists(st.one_of(st.none(), _VALUES), min_size=1, max_size=5))
def test_is_agrees_with_the_model(lua: Lua, t: Any, values: list[Any]) -> None:
    env = lua.env()
    lua.run(f"type T = {render(t)}\nResult = T", env=env)
    checker = lua.rt.eval("function(T, v) local r, e = T:is(v) return r ~= nil or (v == nil and e == nil), e end")
    for v in values:
        ok, err = checker(env.Result, lua.table(v))
        assert ok == matches(t, v), (render(t), v, err)
        assert (err is None) == ok
