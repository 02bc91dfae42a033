"""`sql.builder`: the SQL squirrel (Wippy's builder) produces, byte for byte, and its properties."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wippy.core import SQL_NULL as NULL
from wippy.core import TypedValue
from wippy.lua_stdlib import HostContext, LuaHost
from wippy.services._sql import SqlHub

from .helpers import Entries

_EVAL = """
local sql = ...
return function(code)
    local f = assert(load("local sql, b = ...; return " .. code))
    local s, a = f(sql, sql.builder)
    if s == nil then return nil, a:kind() .. ": " .. a:message() end
    return s, a
end
"""


class Builder:
    """Evaluates Lua builder expressions (``b`` is sql.builder) on a real host's sql module."""

    def __init__(self) -> None:
        self.host = LuaHost(HostContext(registry=Entries(), node="n1", pid="p", databases=SqlHub(Entries())))
        self._eval = self.host.vm.rt.execute(_EVAL, self.host.module("sql"))

    def __call__(self, code: str) -> tuple[Any, Any]:
        sql, args = self._eval(code)
        if sql is None:
            return sql, args
        values = self.host.vm.from_lua(args)
        return sql, values if values != {} else []  # an empty Lua table reads as a dict

    def raises(self, code: str) -> str:
        with pytest.raises(Exception) as info:  # noqa: PT011 - a Lua error, whatever lupa wraps it in
            self._eval(code)
        return str(info.value)


@pytest.fixture(scope="module")
def b() -> Builder:
    return Builder()


SELECTS = [
    ('b.select("id", "name"):from("users"):where({active = 1}):order_by("name ASC"):limit(10):to_sql()',
     "SELECT id, name FROM users WHERE active = ? ORDER BY name ASC LIMIT 10", [1]),
    ('b.select("*"):from("t"):where({b = 2, a = "x", c = sql.NULL}):to_sql()',
     "SELECT * FROM t WHERE a = ? AND b = ? AND c IS NULL", ["x", 2]),
    ('b.select("*"):from("t"):where({id = {1, 2, 3}}):where({tag = {}}):to_sql()',
     "SELECT * FROM t WHERE id IN (?,?,?) AND (1=0)", [1, 2, 3]),
    ('b.select("*"):from("t"):where(b.not_eq({id = {1, 2}, gone = sql.NULL, s = "x", e = {}})):to_sql()',
     "SELECT * FROM t WHERE (1=1) AND gone IS NOT NULL AND id NOT IN (?,?) AND s <> ?", [1, 2, "x"]),
    ('b.select("*"):from("t"):where({}):to_sql()', "SELECT * FROM t WHERE (1=1)", []),
    ('b.select("*"):from("t"):where(b.and_({b.eq({a = 1}), b.gt({score = 80}), {c = 3}})):to_sql()',
     "SELECT * FROM t WHERE (a = ? AND score > ? AND c = ?)", [1, 80, 3]),
    ('b.select("*"):from("t"):where(b.or_({b.lt({a = 1}), b.lte({b = 2}), b.gte({c = 3})})):to_sql()',
     "SELECT * FROM t WHERE (a < ? OR b <= ? OR c >= ?)", [1, 2, 3]),
    ('b.select("*"):from("t"):where(b.and_({})):where(b.or_({})):to_sql()',
     "SELECT * FROM t WHERE (1=1) AND (1=0)", []),
    ('b.select("*"):from("t"):where(b.like({name = "j%"})):where(b.not_like({mail = "%@x"})):to_sql()',
     "SELECT * FROM t WHERE name LIKE ? AND mail NOT LIKE ?", ["j%", "%@x"]),
    ('b.select("*"):from("t"):where(b.expr("score BETWEEN ? AND ?", 80, 90)):to_sql()',
     "SELECT * FROM t WHERE score BETWEEN ? AND ?", [80, 90]),
    ('b.select("*"):from("t"):where("a = ? AND b = ?", 1, "two"):where(""):to_sql()',
     "SELECT * FROM t WHERE a = ? AND b = ?", [1, "two"]),
    ('b.select("u.id", "COUNT(o.id) AS n"):from("users u"):join("teams t ON t.id = u.team")'
     ':left_join("orders o ON o.user_id = u.id AND o.kind = ?", "web"):inner_join("x ON x.a = u.a")'
     ':right_join("y ON y.b = u.b"):where({["u.active"] = 1}):group_by("u.id", "u.name")'
     ':having(b.gt({["COUNT(o.id)"] = 0})):order_by("n DESC", "u.id"):limit(10):offset(20)'
     ':suffix("FOR UPDATE"):to_sql()',
     "SELECT u.id, COUNT(o.id) AS n FROM users u JOIN teams t ON t.id = u.team LEFT JOIN orders o ON o.user_id = "
     "u.id AND o.kind = ? INNER JOIN x ON x.a = u.a RIGHT JOIN y ON y.b = u.b WHERE u.active = ? GROUP BY u.id, "
     "u.name HAVING COUNT(o.id) > ? ORDER BY n DESC, u.id LIMIT 10 OFFSET 20 FOR UPDATE", ["web", 1, 0]),
    ('b.select("a"):distinct():columns("b", "c"):from("t"):having("count(*) > ?", 2):to_sql()',
     "SELECT DISTINCT a, b, c FROM t HAVING count(*) > ?", [2]),
    ('b.select("*"):from("t"):where("a = ? AND b = ?", 1, 2):placeholder_format(b.dollar):to_sql()',
     "SELECT * FROM t WHERE a = $1 AND b = $2", [1, 2]),
    ('b.select("*"):from("t"):where("a = ? AND b = ?", 1, 2):placeholder_format(b.colon):to_sql()',
     "SELECT * FROM t WHERE a = :1 AND b = :2", [1, 2]),
    ('b.select("*"):from("t"):where("a = ? AND b = ?", 1, 2):placeholder_format(b.at):to_sql()',
     "SELECT * FROM t WHERE a = @p1 AND b = @p2", [1, 2]),
    ('b.select("*"):from("t"):where("a = ? AND j ?? \'k\'", 1):placeholder_format(b.dollar):to_sql()',
     "SELECT * FROM t WHERE a = $1 AND j ? 'k'", [1]),
    ('b.select("*"):from("t"):where("j ?? \'k\'"):placeholder_format(b.default_placeholder):to_sql()',
     "SELECT * FROM t WHERE j ?? 'k'", []),
    ('b.select("*"):from("t"):limit(-5):offset(2.9):to_sql()', "SELECT * FROM t LIMIT 0 OFFSET 2", []),
    ('b.select("*"):from("t"):where(b.expr("id IN (?)", b.select("uid"):from("v"):where({k = 1}))):to_sql()',
     "SELECT * FROM t WHERE id IN (SELECT uid FROM v WHERE k = ?)", [1]),
]


@pytest.mark.parametrize(("code", "sql", "args"), SELECTS)
def test_select_builds_what_squirrel_builds(b: Builder, code: str, sql: str, args: list[Any]) -> None:
    assert b(code) == (sql, args)


WRITES = [
    ('b.insert("users"):columns("name", "email", "active"):values("alice", "a@x", 1):to_sql()',
     "INSERT INTO users (name,email,active) VALUES (?,?,?)", ["alice", "a@x", 1]),
    ('b.insert("t"):columns("a", "b"):values(1, sql.NULL):values(2, b.expr("NOW()")):suffix("RETURNING id"):to_sql()',
     "INSERT INTO t (a,b) VALUES (?,?),(?,NOW()) RETURNING id", [1, NULL, 2]),
    ('b.insert():into("t"):set_map({z = 1, a = "x"}):options("OR IGNORE"):to_sql()',
     "INSERT OR IGNORE INTO t (a,z) VALUES (?,?)", ["x", 1]),
    ('b.insert("t"):prefix("WITH x AS (SELECT ?)", 5):columns("a"):select(b.select("a"):from("s"):where({k = 2}))'
     ':to_sql()', "WITH x AS (SELECT ?) INSERT INTO t (a) SELECT a FROM s WHERE k = ?", [5, 2]),
    ('b.insert("t"):columns("a", "b"):values(sql.as.int(7.9), sql.as.text(12))'
     ':placeholder_format(b.dollar):to_sql()',
     "INSERT INTO t (a,b) VALUES ($1,$2)", [7, "12"]),
    ('b.update("users"):set("status", "active"):set("updated_at", b.expr("NOW()")):where({id = 123}):to_sql()',
     "UPDATE users SET status = ?, updated_at = NOW() WHERE id = ?", ["active", 123]),
    ('b.update():table("t"):set_map({b = 2, a = sql.NULL}):where("id > ?", 1):order_by("id"):limit(5):offset(1)'
     ':suffix("RETURNING id"):to_sql()',
     "UPDATE t SET a = ?, b = ? WHERE id > ? ORDER BY id LIMIT 5 OFFSET 1 RETURNING id", [NULL, 2, 1]),
    ('b.update("t"):set("n", b.select("max(n)"):from("s")):from("s"):to_sql()',
     "UPDATE t SET n = (SELECT max(n) FROM s) FROM s", []),
    ('b.update("t"):set("n", 1):from_select(b.select("id"):from("s"):where({k = 3}), "x"):where("t.id = x.id")'
     ':placeholder_format(b.dollar):to_sql()',
     "UPDATE t SET n = $1 FROM (SELECT id FROM s WHERE k = $2) AS x WHERE t.id = x.id", [1, 3]),
    ('b.delete("users"):where({active = 0}):limit(100):to_sql()',
     "DELETE FROM users WHERE active = ? LIMIT 100", [0]),
    ('b.delete():from("t"):where(b.or_({{a = 1}, {b = {2, 3}}})):order_by("id"):offset(3):suffix("RETURNING *")'
     ':to_sql()', "DELETE FROM t WHERE (a = ? OR b IN (?,?)) ORDER BY id OFFSET 3 RETURNING *", [1, 2, 3]),
]


@pytest.mark.parametrize(("code", "sql", "args"), WRITES)
def test_writes_build_what_squirrel_builds(b: Builder, code: str, sql: str, args: list[Any]) -> None:
    assert b(code) == (sql, args)


@pytest.mark.parametrize(("code", "message"), [
    ('b.select():from("t"):to_sql()', "INVALID: select statements must have at least one result column"),
    ('b.insert():values(1):to_sql()', "INVALID: insert statements must specify a table"),
    ('b.insert("t"):columns("a"):to_sql()',
     "INVALID: insert statements must have at least one set of values or select clause"),
    ('b.update("t"):to_sql()', "INVALID: update statements must have at least one Set clause"),
    ('b.update():set("a", 1):to_sql()', "INVALID: update statements must specify a table"),
    ('b.delete():to_sql()', "INVALID: delete statements must specify a From table"),
    ('b.select("*"):from("t"):where(b.lt({a = sql.NULL})):to_sql()',
     "INVALID: cannot use null with less than or greater than operators"),
    ('b.select("*"):from("t"):where(b.gt({a = {1}})):to_sql()',
     "INVALID: cannot use array or slice with less than or greater than operators"),
    ('b.select("*"):from("t"):where(b.like({a = sql.NULL})):to_sql()', "INVALID: cannot use null with like operators"),
    ('b.eq({a = sql.NULL}):to_sql()', None),
])
def test_structural_mistakes_are_invalid_errors(b: Builder, code: str, message: str | None) -> None:
    sql, err = b(code)
    if message is None:
        assert sql == "a IS NULL"
    else:
        assert sql is None and err == message


@pytest.mark.parametrize(("code", "fragment"), [
    ('b.select("*"):from("t"):where(42)', "expected a SQL string"),
    ('b.select(1)', "must be a string"),
    ('b.select("*"):from("t"):where("a = ?", {1})', "is not a SQL value"),
    ('b.select("*"):placeholder_format("dollar")', "expected sql.builder.question"),
    ('b.select("*"):limit("ten")', "expected a number"),
    ('b.eq("x")', "expected a table"),
    ('b.and_({1})', "must be a condition"),
    ('b.select("*"):run_with({})', "expected a database or a transaction"),
    ('b.insert("t"):select(b.delete("t"))', "expected a select builder"),
    ('b.select("*").from("t")', "call it with a colon"),
])
def test_wrong_arguments_raise_clear_errors(b: Builder, code: str, fragment: str) -> None:
    assert fragment in b.raises(code)


def test_builders_are_immutable(b: Builder) -> None:
    sql, _ = b("""(function()
        local base = b.select("*"):from("t")
        local one = base:where({a = 1})
        local two = base:where({b = 2}):placeholder_format(b.dollar)
        local s1 = one:to_sql(); local s2 = two:to_sql(); local s0 = base:to_sql()
        return s0 .. " | " .. s1 .. " | " .. s2, {}
    end)()""")
    assert sql == "SELECT * FROM t | SELECT * FROM t WHERE a = ? | SELECT * FROM t WHERE b = $1"


def test_values_and_conditions_print(b: Builder) -> None:
    sql, _ = b("""(function()
        local q = b.select("*"):from("t"):where({a = 1, n = sql.NULL})
        return tostring(q) .. " | " .. tostring(b.eq({x = "y"})) .. " | " .. tostring(sql.NULL), {}
    end)()""")
    assert sql == ("SelectBuilder: SELECT * FROM t WHERE a = ? AND n IS NULL [Args: [1]] | SQL: x = ? [Args: [y]] | "
                   "sql.NULL")


def test_typed_and_binary_values_keep_their_meaning(b: Builder) -> None:
    sql, args = b('b.insert("t"):columns("a", "b", "c", "d"):values(sql.as.float(2), sql.as.binary("\\0\\255"), '
                  'sql.as.null(), nil):to_sql()')
    assert sql == "INSERT INTO t (a,b,c,d) VALUES (?,?,?,?)"
    assert args[0] == 2.0 and isinstance(args[0], float)
    assert isinstance(args[1], TypedValue) and args[1].kind == "binary" and args[1].value == b"\x00\xff"
    assert args[2] is NULL and args[3] is NULL


# -- properties ----------------------------------------------------------------------------------
_COL = st.sampled_from(["a", "b", "c", "d", "t.x", "score"])
_VAL = st.one_of(st.integers(-1000, 1000), st.text("abc?$ '", max_size=4), st.just(None))


def _lua_value(v: Any) -> str:
    if v is None:
        return "sql.NULL"
    if isinstance(v, int):
        return str(v)
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


@st.composite
def _condition(draw: st.DrawFn, depth: int = 0) -> str:
    kinds = ["eq", "not_eq", "cmp", "string", "expr"] + (["and", "or"] if depth < 2 else [])
    kind = draw(st.sampled_from(kinds))
    if kind in ("eq", "not_eq"):
        cols = draw(st.lists(_COL, max_size=3, unique=True))
        parts = []
        for c in cols:
            if draw(st.booleans()):
                items = draw(st.lists(st.integers(0, 9), max_size=3))
                parts.append(f'["{c}"] = {{{", ".join(map(str, items))}}}')
            else:
                parts.append(f'["{c}"] = {_lua_value(draw(_VAL))}')
        return f"b.{kind}({{{', '.join(parts)}}})"
    if kind == "cmp":
        op = draw(st.sampled_from(["lt", "lte", "gt", "gte", "like", "not_like"]))
        cols = draw(st.lists(_COL, min_size=1, max_size=3, unique=True))
        return f"b.{op}({{{', '.join(f'[{chr(34)}{c}{chr(34)}] = {draw(st.integers())}' for c in cols)}}})"
    if kind in ("string", "expr"):
        n = draw(st.integers(0, 3))
        text = " AND ".join(f"x{i} = ?" for i in range(n)) or "1 = 1"
        args = "".join(", " + _lua_value(draw(_VAL)) for _ in range(n))
        return f'"{text}"{args}' if kind == "string" and depth == 0 else f'b.expr("{text}"{args})'
    items = draw(st.lists(_condition(depth + 1), max_size=3))
    return f"b.{kind}_({{{', '.join(items)}}})"


@st.composite
def _select(draw: st.DrawFn) -> str:
    code = 'b.select("*"):from("t")'
    for cond in draw(st.lists(_condition(), max_size=3)):
        code += f":where({cond})"
    if draw(st.booleans()):
        code += ':left_join("u ON u.id = t.id AND u.k = ?", 7)'
    if draw(st.booleans()):
        code += f":having({draw(_condition())})"
    if draw(st.booleans()):
        code += ':suffix("LIMIT ?", 3)'
    return code


@settings(max_examples=150, deadline=None)
@given(_select())
def test_placeholders_match_arguments_and_renumber_in_order(code: str) -> None:
    b = _builder()
    sql, args = b(code + ":to_sql()")
    assert sql is not None, args
    assert sql.count("?") == len(args)
    dollar, dargs = b(code + ":placeholder_format(b.dollar):to_sql()")
    assert dargs == args
    expected = sql
    for i in range(1, len(args) + 1):
        expected = expected.replace("?", f"${i}", 1)
    assert dollar == expected
    colon, _ = b(code + ":placeholder_format(b.colon):to_sql()")
    assert colon == dollar.replace("$", ":")


def _squirrel_positional(sql: str, prefix: str) -> str:
    """squirrel's replacePositionalPlaceholders, as a reference."""
    out, i = [], 0
    while True:
        p = sql.find("?")
        if p < 0:
            break
        if sql[p:p + 2] == "??":
            out.append(sql[:p] + "?")
            sql = sql[p + 2:]
        else:
            i += 1
            out.append(sql[:p] + f"{prefix}{i}")
            sql = sql[p + 1:]
    return "".join(out) + sql


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["x", " ", "?", "??", "'", "$", "1"]), max_size=20))
def test_escaped_question_marks_survive_renumbering(pieces: list[str]) -> None:
    b = _builder()
    text = "".join(pieces)
    lua_text = text.replace("'", "\\'")
    for fmt, prefix in (("dollar", "$"), ("at", "@p"), ("colon", ":")):
        sql, _ = b(f"b.select('*'):from('t'):where('{lua_text}'):placeholder_format(b.{fmt}):to_sql()")
        expected = "SELECT * FROM t" + (" WHERE " + _squirrel_positional(text, prefix) if text else "")
        assert sql == expected
    sql, _ = b(f"b.select('*'):from('t'):where('{lua_text}'):to_sql()")
    assert sql == "SELECT * FROM t" + (" WHERE " + text if text else "")


_SHARED: list[Builder] = []


def _builder() -> Builder:
    """One host for every hypothesis example (a fixture cannot be used with @given here)."""
    if not _SHARED:
        _SHARED.append(Builder())
    return _SHARED[0]


def test_eq_keys_are_sorted_bytewise(b: Builder) -> None:
    sql, args = b('b.eq({Zed = 1, alpha = 2, ["a.b"] = 3, a_c = 4}):to_sql()')
    assert sql == "Zed = ? AND a.b = ? AND a_c = ? AND alpha = ?"
    assert args == [1, 3, 4, 2]
    assert re.fullmatch(r"(\w|[.])+ = \? AND .*", sql)
