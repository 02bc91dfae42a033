"""The Wippy dialect translator: typed snippets that must run, errors that must name the spot,
line preservation, and property tests over generated annotations and junk input."""

from __future__ import annotations

import os
import time
from pathlib import Path

import lupa.lua54 as lupa  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wippy.core import DefinitionError
from wippy.lua_stdlib._dialect import TYPES_GLOBAL, DialectError, Translated, translate
from wippy.lua_stdlib._dialect_lex import tokenize
from wippy.lua_stdlib._dialect_scan import scan

from .conftest import Lua

# Each snippet is a chunk that returns a value; the translation must compile, keep its line
# count, and return ``expected`` when run.
SNIPPETS: list[tuple[str, str, object]] = [
    ("local-annotation", "local x: number = 41\nreturn x + 1", 42),
    ("local-optional", "local x: string? = nil\nreturn x == nil", True),
    ("local-multi", "local a: integer, b: string = 1, 'b'\nreturn a .. b", "1b"),
    ("local-attrib", "local a <const>: number = 2\nreturn a * 2", 4),
    ("local-union", "local v: number | string = 'x'\nreturn v", "x"),
    (
        "local-function-type",
        "local f: (number) -> number = function(x: number): number return x * 2 end\n"
        "return f(4)",
        8,
    ),
    ("params-returns", "local function add(a: number, b: number): number\n  return a + b\nend\nreturn add(2, 3)", 5),
    ("tuple-return", "local function two(): (string, number)\n  return 'a', 1\nend\nlocal s = two()\nreturn s", "a"),
    (
        "bare-return-list",
        "local function f(): string?, string?\n"
        "  return nil, 'e'\n"
        "end\n"
        "local _, e = f()\n"
        "return e",
        'e',
    ),
    ("generic-function", "local function id<T>(x: T): T\n  return x\nend\nreturn id(7)", 7),
    ("generic-constrained", "local function g<T: {n: number}>(o: T): number return o.n end\nreturn g({n = 3})", 3),
    (
        "variadic",
        "local function sum(...: number): number\n"
        "  local t = 0\n"
        "  for _, v in ipairs({...}) do t = t + v end\n"
        "  return t\n"
        "end\n"
        "return sum(1, 2, 3)",
        6,
    ),
    ("method", "local M = {}\nfunction M:get<T>(k: string): T? return self[k] end\nM.a = 5\nreturn M:get('a')", 5),
    (
        "dotted-function",
        "local M = {n = {}}\n"
        "function M.n.f(x: {string}): integer return #x end\n"
        "return M.n.f({'a', 'b'})",
        2,
    ),
    ("anonymous-function", "local t = {f = function(a: number?): boolean return a ~= nil end}\nreturn t.f(1)", True),
    ("for-numeric", "local s = 0\nfor i: integer = 1, 3 do s = s + i end\nreturn s", 6),
    ("for-generic", "local s = ''\nfor k: string, v: number in pairs({a = 1}) do s = k .. v end\nreturn s", "a1"),
    ("cast-double-colon", "local x: any = 5\nlocal y = x :: number\nreturn y", 5),
    ("cast-as", "local x: any = {n = 1}\nreturn (x as {n: number}).n", 1),
    ("cast-in-call", "local function f(v) return v end\nreturn f(3 :: integer)", 3),
    ("cast-generic", "local x = {} :: {[string]: {number}}\nreturn type(x)", "table"),
    ("cast-then-compare", "local x = 3\nreturn x :: number < 5", True),
    ("non-nil", "local t = {a = {b = 2}}\nreturn t.a!.b", 2),
    ("non-nil-call", "local function f() return 9 end\nreturn f()!", 9),
    ("typeof-return", "local r = {}\nlocal function get(): typeof(r) return r end\nreturn get() == r", True),
    (
        "goto-continue",
        "local s = 0\n"
        "for i = 1, 5 do\n"
        "  if i % 2 == 0 then goto continue end\n"
        "  s = s + i\n"
        "  ::continue::\n"
        "end\n"
        "return s",
        9,
    ),
    ("bitwise", "local a = 6 & 3 | 8\nreturn a ~ 1, ~0, 1 << 4, 256 >> 4", 11),
    ("validator-erased-local", "local x: number @min(0) @max(10) = 5\nreturn x", 5),
    ("validator-erased-param", "local function f(n: integer @min(1)): integer return n end\nreturn f(2)", 2),
    (
        "type-names-as-values",
        "local type = 'a'\n"
        "local t = {type = 1, export = 2}\n"
        "local export = t.type + t.export\n"
        "return type .. export",
        'a3',
    ),
    ("type-function-call", "return type(1)", "number"),
    ("type-decl-simple", "type Id = string\nreturn Id:name()", "Id"),
    ("type-decl-record", "type U = {name: string, age: number?}\nreturn U:kind()", "record"),
    ("export-type", "export type P = {x: number, y: number}\nreturn (P({x = 1, y = 2})).y", 2),
    (
        "type-decl-multiline",
        "type C = {\n"
        "  host: string,\n"
        "  port: integer,\n"
        "  tls?: boolean, -- optional\n"
        "}\n"
        "return C:is({host = 'h', port = 1}) ~= nil",
        True,
    ),
    (
        "type-forward-ref",
        "type A = {b: B?}\n"
        "type B = {n: number}\n"
        "local _, err = A:is({b = {n = 'x'}})\n"
        "return err",
        'A: field b.n: expected number, got string "x"',
    ),
    (
        "type-recursive",
        "type Node = {v: integer, next: Node?}\n"
        "return Node:is({v = 1, next = {v = 2, next = {v = 3}}}) ~= nil",
        True,
    ),
    (
        "type-generic",
        "type Box<T> = {value: T}\n"
        "local b: Box<number> = Box({value = 'anything'})\n"
        "return b.value",
        'anything',
    ),
    ("type-union-literals", "type S = 'pending' | 'done'\nreturn S:is('done')", "done"),
    ("type-intersection", "type N = {name: string}\ntype G = {age: number}\ntype P = N & G\nreturn P:kind()", "record"),
    ("type-map", "type M = {[string]: number}\nreturn M:kind()", "map"),
    ("type-array", "type L = {string}\nreturn L:elem():kind()", "string"),
    ("type-function", "type F = (a: number, ...string) -> (boolean, string?)\nreturn F:is(print) == print", True),
    ("type-typeof", "local x = 1\ntype X = typeof(x)\nreturn X:kind()", "any"),
    ("type-qualified", "local time = {}\ntype T = {at: time.Time}\nreturn T:is({at = 5}) ~= nil", True),
    (
        "type-validators",
        "type Age = number @min(0) @max(150)\n"
        "local _, err = Age:is(200)\n"
        "return err",
        'Age: must be <= 150, got 200',
    ),
    (
        "type-validators-fields",
        "type U = {\n"
        "  name: string @min_len(1) @max_len(3),\n"
        "  code: string @pattern(\"^%u+$\"),\n"
        "}\n"
        "local _, e = U:is({name = 'ab', code = 'ab'})\n"
        "return e",
        'U: field code: must match pattern "^%u+$"',
    ),
    ("type-one-of", "type Lvl = string @one_of('a', 'b')\nreturn (Lvl:is('c'))", None),
    ("type-string-key", "type H = {[\"content-type\"]: string}\nreturn H:is({['content-type'] = 'x'}) ~= nil", True),
    ("type-indexer-and-fields", "type R = {id: string, [string]: number}\nreturn (R:is({id = 'a', n = 'x'}))", None),
    ("type-leading-pipe", "type K =\n  | 'a'\n  | 'b'\nreturn K:kind()", "union"),
    (
        "type-tagged-union",
        "type R = {ok: true, value: number} | {ok: false, error: string}\n"
        "local _, e = R:is({ok = false, error = 1})\n"
        "return e",
        'R: field error: expected string, got integer 1',
    ),
    ("type-after-statement", "local n = 1 type T = number\nreturn T:is(n)", 1),
    (
        "type-in-function",
        "local function f()\n"
        "  type Local = {n: number}\n"
        "  return Local\n"
        "end\n"
        "return f():kind()",
        'record',
    ),
    ("type-generic-default", "type G<T = string> = {v: T}\nreturn G:kind()", "record"),
    ("type-angle-ge", "type Box<T>= {v: T}\nreturn Box:kind()", "record"),
    ("type-long-string-literal", "type L = [[a\nb]]\nreturn L:is('a\\nb')", "a\nb"),
    ("primitive-casts", "return integer('12') + number('0.5') .. string(1) .. tostring(boolean('true'))", "12.51true"),
    ("comment-with-types", "-- local x: number = 'not code'\n--[[ type T = {} ]]\nreturn 1", 1),
    ("string-with-types", "return 'local x: number = 1' .. [[ :: T ]]", "local x: number = 1 :: T "),
]


@pytest.mark.parametrize(("source", "expected"), [s[1:] for s in SNIPPETS], ids=[s[0] for s in SNIPPETS])
def test_snippet_runs(lua: Lua, source: str, expected: object) -> None:
    result = lua.run(source)
    if isinstance(result, tuple):
        result = result[0]
    assert result == expected
    code = translate(source, "t.lua").code
    assert code.count("\n") == source.count("\n")


def test_erasure_keeps_columns() -> None:
    src = "local function f(a: number, b: {string}?): (boolean, string?)\n  return a :: any\nend\n"
    out = translate(src, "t.lua").code
    assert [len(line) for line in out.split("\n")] == [len(line) for line in src.split("\n")]
    assert [line.rstrip() for line in out.split("\n")] == [
        "local function f(a        , b           )",
        "  return a",
        "end",
        "",
    ]


def test_declaration_shape() -> None:
    src = "type User = {\n  name: string,\n  age?: number @min(0),\n}\nreturn User\n"
    code = translate(src, "t.lua").code
    first, *rest = code.split("\n")
    assert first == (
        f"local __wt, __ws = {TYPES_GLOBAL}, {TYPES_GLOBAL}.scope(); "
        'local User; User = __ws:define("User", __wt.record({{"name", __wt.string}, '
        '{"age", __wt.check(__wt.number, {{"min", 0}}), true}}));'
    )
    assert rest == ["", "", "", "return User", ""]


def test_uses_types_only_with_declarations() -> None:
    assert translate("local x: number = 1 :: number", "t.lua").uses_types is False
    assert translate("type T = number", "t.lua").uses_types is True


def test_runtime_errors_point_at_the_source_line(lua: Lua) -> None:
    src = "type Big = {\n  a: number,\n  b: string,\n}\nlocal x: number = 1\n\nerror('boom at six')\n"
    with pytest.raises(lupa.LuaError, match=r"src/f\.lua:7: boom at six"):
        lua.run(src, chunk="src/f.lua")


def test_validation_error_names_the_caller_line(lua: Lua) -> None:
    src = "type P = {x: number}\n\n\nlocal p = P({x = 'no'})\n"
    with pytest.raises(lupa.LuaError, match=r"src/p\.lua:4: P: field x: expected number, got string"):
        lua.run(src, chunk="src/p.lua")


def test_translations_are_cached() -> None:
    src = "local cached: number = 1\n"
    first = translate(src, "a.lua")
    assert translate(src, "b.lua") is first
    assert isinstance(first, Translated)


def test_crlf_line_endings_are_kept(lua: Lua) -> None:
    src = "type P = {\r\n  x: number,\r\n}\r\nlocal p: P = P({x = 1})\r\nerror('line five')\r\n"
    code = translate(src, "crlf.lua").code
    assert code.count("\r\n") == src.count("\r\n")
    with pytest.raises(lupa.LuaError, match=r"crlf\.lua:5: line five"):
        lua.run(src, chunk="crlf.lua")


def test_byte_order_mark_is_dropped(lua: Lua) -> None:
    assert lua.run("\ufeffreturn 1") == 1


# -- errors ---------------------------------------------------------------------------------------
ERRORS: list[tuple[str, str, int, int, str]] = [
    ("double-equals", "local x = = 1", 1, 11, "unexpected '='"),
    ("unclosed-function", "function f()\n  local x = 1\n", 3, 1, "'end' expected (to close 'function' at line 1)"),
    ("unclosed-if", "if x then\n  y()\nelse\n", 4, 1, "'end' expected (to close 'if' at line 1)"),
    ("stray-end", "local x = 1\nend", 2, 1, "unexpected 'end'"),
    ("repeat-end", "repeat\n  x()\nend", 3, 1, "unexpected 'end'"),
    ("unfinished-string", "local s = 'abc", 1, 11, "unfinished string"),
    ("unfinished-long-string", "local s = [==[abc]]", 1, 11, "unfinished long string"),
    ("unfinished-long-comment", "--[[ never closed\nx = 1", 1, 1, "unfinished long comment"),
    ("malformed-number", "local x = 3abc", 1, 11, "malformed number"),
    ("bad-character", "local x = `abc`", 1, 11, "unexpected character '`'"),
    ("missing-type", "local x: = 1", 1, 10, "type expected near '='"),
    ("unknown-validator", "local x: number @foo(1) = 1", 1, 17, "unknown validator @foo"),
    ("validator-args", "local x: number @min('a') = 1", 1, 17, "@min takes one number"),
    ("validator-non-literal", "type T = number @min(x)", 1, 22, "validator arguments must be literals"),
    ("bad-field", "type A = {x: number,, y: string}", 1, 21, "field name expected near ','"),
    ("unclosed-table-type", "type A = {x: number", 1, 20, "'}' expected near end of file"),
    ("tuple-as-value", "type T = (number, string)", 1, 10, "only allowed as a function's return type"),
    ("variadic-as-value", "type T = {...number}", 1, 11, "'...' is only allowed in function types"),
    ("compound-assignment", "x += 1", 1, 3, "compound assignment '+=' is Luau"),
    ("not-equal", "local y = x != 3", 1, 13, "use '~='"),
    ("prefix-bang", "local y = !x", 1, 11, "non-nil assertion follows an expression"),
    ("ternary", "local y = a ? b : c", 1, 13, "unexpected '?'"),
    ("arrow-in-code", "x = a->b", 1, 6, "unexpected '->'"),
    ("if-expression", "local x = if a then b else c", 1, 11, "if-expressions are Luau"),
    ("continue", "while true do\n  continue\nend", 2, 3, "'continue' is Luau"),
    ("unclosed-call", "f(\n  1,\n  2\n", 3, 4, "')' expected"),
    ("error-after-type", "type T = {\n  a: number,\n}\nlocal x = = 2", 4, 11, "unexpected '='"),
    ("typeof-unclosed", "local function f(): typeof(x\nend", 1, 27, "unclosed '('"),
    ("generic-name", "local function f<1>() end", 1, 18, "type parameter name expected"),
    ("keyword-as-local", "local local x = 1", 1, 7, "name expected after 'local'"),
    ("statement-as-operand", "x = 1\n  + local y = 2", 2, 5, "unexpected 'local'"),
    ("statement-after-shift", "x = 1 <<\nreturn", 2, 1, "unexpected 'return'"),
]


@pytest.mark.parametrize(("source", "line", "column", "reason"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors_name_chunk_line_column(source: str, line: int, column: int, reason: str) -> None:
    with pytest.raises(DialectError) as info:
        translate(source, "src/x.lua")
    err = info.value
    assert (err.line, err.column) == (line, column), str(err)
    assert reason in str(err)
    assert str(err).startswith(f"src/x.lua:{line}:{column}: ")
    assert isinstance(err, DefinitionError)
    assert err.chunk == "src/x.lua"


# -- property tests -------------------------------------------------------------------------------
_PRIMS = ["string", "number", "integer", "boolean", "any", "nil", "table", "unknown", "Box<number>", "time.Time"]


def _type_text() -> st.SearchStrategy[str]:
    leaves = st.sampled_from([*_PRIMS, '"lit"', "true", "typeof(x)", "{}"])

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        name = st.sampled_from(["a", "b", "end_", "type", "value"])
        field = st.tuples(name, st.booleans(), inner, st.sampled_from(["", " @min(0)", " @max_len(3)"]))
        return st.one_of(
            inner.map(lambda t: f"({t})?"),
            st.tuples(inner, inner).map(lambda p: f"{p[0]} | {p[1]}"),
            st.tuples(inner, inner).map(lambda p: f"{p[0]} & {p[1]}"),
            inner.map(lambda t: "{" + t + "}"),
            inner.map(lambda t: "{[string]: " + t + "}"),
            st.lists(field, min_size=1, max_size=3).map(
                lambda fs: "{" + ",\n".join(f"{n}{'?' if o else ''}: {t}{v}" for n, o, t, v in fs) + "}"
            ),
            st.tuples(inner, inner).map(lambda p: f"(x: {p[0]}, ...{p[1]}) -> ({p[1]}, {p[0]})"),
        )

    return st.recursive(leaves, extend, max_leaves=8)


_TEMPLATES = [
    "local v{i}: {t} = nil",
    "local function v{i}(a: {t}, b: {t}): {t}\n  return a\nend",
    "local v{i} = (nil :: {t})",
    "local v{i} = nil as {t}",
    "type V{i} = {t}",
    "for v{i}: {t} = 1, 2 do end",
    "local v{i} = function(...: {t}): ({t}, {t}) end",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_TEMPLATES), _type_text(), st.integers(0, 2)), min_size=1, max_size=6))
def test_generated_annotations_translate_and_compile(lua: Lua, statements: list[tuple[str, str, int]]) -> None:
    lines: list[str] = []
    markers: dict[int, str] = {}
    for i, (template, type_text, gap) in enumerate(statements):
        lines.extend([""] * gap)
        markers[len(lines)] = f"v{i}".lower() if template.startswith("type") else f"v{i}"
        lines.extend(template.format(i=i, t=type_text).split("\n"))
    source = "\n".join(lines) + "\nreturn 1\n"
    code = translate(source, "gen.lua").code
    assert code.count("\n") == source.count("\n")
    assert lua.compile_error(code) is None, code
    out_lines = code.split("\n")
    for line_no, marker in markers.items():
        assert marker in out_lines[line_no].lower()
    assert lua.run(source) == 1


_JUNK = st.lists(
    st.sampled_from(
        ["local", "x", ":", "::", "number", "?", "|", "&", "{", "}", "(", ")", "<", ">", "=", ",", "type", "as",
         "!", "@min(1)", "function", "end", "return", "'s'", "[[l]]", "--c\n", "\n", "1", "...", "->", "goto", "[", "]"]
    ),
    max_size=30,
).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_JUNK, st.text(max_size=60)))
def test_any_input_translates_or_raises_dialect_error(source: str) -> None:
    position = (1, 1)
    try:
        out = translate(source, "junk.lua")
    except DialectError as err:
        position = (err.line, err.column)
    else:
        assert out.code.count("\n") >= source.count("\n")
    assert min(position) >= 1


# -- the real corpus (outside code, checked out by hand; run with -m corpus) ---------------------------
# WIPPY_CORPUS: the folders to read, separated by ":" (default: the Wippy framework and examples
# checked out at /tmp/fw and /tmp/ex)
_CORPUS = [Path(p) for p in os.environ.get("WIPPY_CORPUS", "/tmp/fw:/tmp/ex").split(":") if p]


@pytest.mark.corpus
def test_real_corpus_translates_and_compiles(lua: Lua) -> None:
    missing = [str(root) for root in _CORPUS if not root.is_dir()]
    assert not missing, f"corpus folders not checked out: {missing} (set WIPPY_CORPUS)"
    files = sorted(p for root in _CORPUS for p in root.rglob("*.lua"))
    assert files
    failures: list[str] = []
    started = time.perf_counter()
    for path in files:
        source = path.read_text(encoding="utf-8")
        try:
            code = translate(source, str(path)).code
        except DialectError as err:
            failures.append(str(err))
            continue
        if code.count("\n") != source.count("\n"):
            failures.append(f"{path}: line count changed")
        compile_error = lua.compile_error(code, str(path))
        if compile_error is not None:
            failures.append(compile_error)
        failures.extend(_declarations_work(lua, source, str(path)))
    assert not failures, "\n".join(failures[:20])
    if os.environ.get("WIPPY_REPORT_TIMING"):
        print(f"{len(files)} files in {time.perf_counter() - started:.2f}s")


_EXERCISE = """
function(declared, types)
    for name, t in pairs(declared) do
        if not types.is_type(t) then return name .. " is not a type value" end
        for _, v in ipairs({{}, 1, "x", {1, 2}, {a = {}}}) do
            local ok, err = pcall(t.is, t, v)
            if not ok then return name .. ": " .. tostring(err) end
        end
        t:kind()
        tostring(t)
    end
end
"""


def _declarations_work(lua: Lua, source: str, chunk: str) -> list[str]:
    """Run a file's type declarations on their own and validate a few values with each."""
    decls = scan(tokenize(source)).decls
    if not decls:
        return []
    names = dict.fromkeys(d.name for d in decls)
    only_types = "\n".join(source[d.start : d.end] for d in decls)
    only_types += "\nreturn {" + ", ".join(f"{n} = {n}" for n in names) + "}"
    try:
        declared = lua.run(only_types, chunk=chunk)
        problem = lua.rt.eval(_EXERCISE)(declared, lua.types)
    except lupa.LuaError as err:
        return [f"{chunk}: {err}"]
    return [] if problem is None else [f"{chunk}: {problem}"]


def test_a_nul_byte_is_lua_in_a_string_and_refused_elsewhere() -> None:
    code = translate('local s: string = "a\x00b"\nreturn #s\n', "app:nul").code
    assert lupa.LuaRuntime().execute(code) == 3
    with pytest.raises(DialectError, match=r"app:nul2:1:9: unexpected character '\\x00'"):
        translate("return 1\x00\n", "app:nul2")
