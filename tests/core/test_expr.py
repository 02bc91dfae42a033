"""The expr-lang evaluator: the language, its errors, and agreement with Python references."""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wippy.core._errors import DefinitionError, WippyError
from wippy.core._expr import ExprError, ExprEvalError, Program, compile_expr, evaluate

ENV: dict[str, Any] = {
    "actor": {"id": "u1", "meta": {"role": "admin", "tags": ["a", "b"], "level": 3, "not": 1, "in": 2}},
    "resource": "doc:42",
    "action": "read",
    "n": 5,
    "f": 2.5,
    "s": "Hello World",
    "empty": [],
    "nums": [3, 1, 2],
    "users": [
        {"name": "Ann", "age": 31, "tags": ["x"]},
        {"name": "Bob", "age": 17, "tags": []},
        {"name": "Cid", "age": 45, "tags": ["x", "y"]},
    ],
    "m": {"a": None, "b": {"c": 1}},
    "double": lambda x: x * 2,
    "obj": {"greet": lambda name: "hi " + name},
}


def ev(source: str, env: dict[str, Any] | None = None) -> Any:
    return evaluate(source, ENV if env is None else env)


def cases(*pairs: tuple[str, Any]) -> Any:
    return pytest.mark.parametrize(("source", "expected"), pairs, ids=[p[0] for p in pairs])


def same(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down (1 is not 1.0 is not True)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


# -- the language ------------------------------------------------------------------------------


@cases(
    ("42", 42), ("0x2A", 42), ("0o52", 42), ("0b101010", 42), ("1_000", 1000), ("0.5", 0.5), (".5", 0.5),
    ("1e3", 1000.0), ("2.5e-1", 0.25), ("1.", 1.0), ("true", True), ("false", False), ("nil", None),
    ('"a\\tb"', "a\tb"), ("'it\\'s'", "it's"), ('"\\u00e9\\x41\\101\\u{1F600}"', "éAA\U0001f600"),
    ('"say \\"hi\\""', 'say "hi"'), ("`raw \\n ``q```", "raw \\n `q`"), ('"\\a\\b\\f\\v\\?\\`"', "\a\b\f\v?`"),
    ("[1, 'a', nil, [true]]", [1, "a", None, [True]]), ("[1, 2,]", [1, 2]), ("[]", []),
    ('{a: 1, "b c": 2, 3: 3, true: 4, (1 + 1): 5,}', {"a": 1, "b c": 2, "3": 3, "true": 4, 2: 5}), ("{}", {}),
    ("1 // line comment\n + /* block\n comment */ 2", 3),
)  # fmt: skip
def test_literals(source: str, expected: Any) -> None:
    assert same(ev(source), expected)


@cases(
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("10 - 2 - 3", 5), ("7 / 2", 3.5), ("6 / 3", 2.0), ("7 % 3", 1),
    ("-7 % 3", -1), ("7 % -3", 1), ("2 ** 3", 8.0), ("2 ^ 3", 8.0), ("2 ** 3 ** 2", 512.0), ("-2 ** 2", -4.0),
    ("2 ** -1", 0.5), ("n * f", 12.5), ("1 + 2.5", 3.5), ("-n", -5), ("+n", 5), ("- -n", 5), ("1 - -1", 2),
    ('"ab" + "cd"', "abcd"), ("1 / 0", math.inf), ("-1 / 0", -math.inf), ("0 / 0", math.nan),
    ("99999999999 * 99999999999", 9999999999800000000001),
)  # fmt: skip
def test_arithmetic(source: str, expected: Any) -> None:
    assert same(ev(source), expected)


@cases(
    ("1 == 1.0", True), ("1 != 2", True), ('"a" == "a"', True), ("true == 1", False), ('1 == "1"', False),
    ("nil == nil", True), ("nil == false", False), ("[1, [2]] == [1, [2]]", True), ("[1] == [true]", False),
    ("{a: 1} == {a: 1.0}", True), ("2 > 1", True), ("2 >= 2", True), ("1 < 2.5", True), ('"a" < "b"', True),
    ("1 < n < 10", True), ("1 < n < 3", False), ("1 < 2 == true", True), ("3 > 2 > 1 >= 1", True),
    ("true && false", False), ("true and true", True), ("false || true", True), ("false or false", False),
    ("!true", False), ("not false", True), ("!true == false", True), ("not true or true", True),
    ("true || false && false", True), ("false && nil", False), ("true || nil", True),
)  # fmt: skip
def test_comparison_and_logic(source: str, expected: Any) -> None:
    assert same(ev(source), expected)


@cases(
    ('"a" in ["a", "b"]', True), ("2 in [1, 2.0]", True), ("true in [1]", False), ('"role" in actor.meta', True),
    ('"x" in actor.meta', False), ("1 in nil", False), ('"c" not in ["a"]', True), ('s contains "World"', True),
    ('s not contains "x"', True), ('s startsWith "Hell"', True), ('s endsWith "ld"', True),
    ('s not startsWith "x"', True), ('nil contains "x"', False), ('s startsWith nil', False),
    ('s matches "^H.*d$"', True), ('s matches "world"', False), ('s matches "(?i)WORLD"', True),
    ('s not matches "\\\\d"', True), ('missing matches "x"', False), ('"a" + "b" contains "ab"', True),
    ('resource startsWith "doc" + ":"', True),
)  # fmt: skip
def test_membership_and_strings(source: str, expected: Any) -> None:
    assert same(ev(source), expected)


@cases(
    ("actor.id", "u1"), ('actor["id"]', "u1"), ("actor.meta.tags[1]", "b"), ("actor.meta.tags[-1]", "b"),
    ("nums[0]", 3), ("nums[1.9]", 1), ("users[2].name", "Cid"), ('users[0]["tags"][0]', "x"),
    ("actor.meta.missing", None), ("missing", None), ("actor?.id", "u1"), ("nothing?.a.b.c", None),
    ("m.a?.b", None), ("m?.b?.c", 1), ("nothing?.[0]", None), ("users?.[1].name", "Bob"),
    ("actor.meta.not + actor.meta.in", 3), ("$env.n", 5), ('$env["resource"]', "doc:42"), ("'n' in $env", True),
    ("nums[1:]", [1, 2]), ("nums[:2]", [3, 1]), ("nums[:]", [3, 1, 2]), ("nums[-2:]", [1, 2]), ("nums[1:-1]", [1]),
    ("nums[5:9]", []), ("nums[2:1]", []), ('"hello"[1:3]', "el"), ('"hello"[-1]', "o"),
    ("obj.greet('x')", "hi x"), ("double(21)", 42), ("actor.meta.tags | len()", 2),
)  # fmt: skip
def test_member_access(source: str, expected: Any) -> None:
    assert same(ev(source), expected)


@cases(
    ("missing ?? 3", 3), ("n ?? 3", 5), ("m.a ?? m.b.c", 1), ("x ?? -1", -1), ("a ?? b ?? 7", 7),
    ("1 + (x ?? 2)", 3), ("n > 3 ? 'big' : 'small'", "big"), ("n > 9 ? 1 : n > 4 ? 2 : 3", 2),
    ("true ? 1 : 2 + 3", 1), ("false ?: 'b'", "b"), ("true ?: 'b'", True),
    ("if n > 3 { 'big' } else { 'small' }", "big"), ("if n > 9 { 1 } else if n > 4 { 2 } else { 3 }", 2),
    ("let x = 2; x * x", 4), ("let x = 2; let y = x + 1; x * y", 6), ("let n = 1; n", 1), ("1; 2; 3", 3),
    ("1; 2;", 2), ("(let t = n * 2; t + 1)", 11), ("1..3", [1, 2, 3]), ("3..1", []), ("1..1", [1]),
    ("nums | sort() | first()", 1), ("users | map(.name) | join(', ')", "Ann, Bob, Cid"),
    ("nums | len() + 1", 4), ("-1 | abs()", 1), ("s | lower() | split(' ')", ["hello", "world"]),
    ("'a,b' | split(',') | len() * 10 + 1", 21), ("n > 1 | string()", "true"),
)  # fmt: skip
def test_conditionals_let_range_pipe(source: str, expected: Any) -> None:
    assert same(ev(source), expected)


# expr-lang's precedence climbing: unary ! binds at 50 and unary - at 90, greedily.
@cases(
    ("!false == true", True), ("not (1 == 2)", True), ("-n ** 2", -25.0), ("2 * -n", -10), ("n - -n", 10),
    ("not (true in [false])", True), ("-n..n | len()", 11), ("1 + 2 .. 4", [3, 4]), ("1..2 == [1, 2]", True),
    ("1 + 2 == 3 && 4 > 3", True), ("2 * 3 ** 2", 18.0), ("n ?? 1 * 2", None), ("-n ?? 1", -5),
    ("1 < missing ?? 2 < 3", True),
)  # fmt: skip
def test_precedence(source: str, expected: Any) -> None:
    if source == "n ?? 1 * 2":
        with pytest.raises(ExprError, match="cannot be mixed"):
            compile_expr(source)
    else:
        assert same(ev(source), expected)


@cases(
    ("all(users, .age > 10)", True), ("all(empty, false)", True), ("any(users, .age > 40)", True),
    ("any(empty, true)", False), ("none(users, {.name == 'Zed'})", True), ("one(users, .age < 18)", True),
    ("filter(users, .age > 18) | map(.name)", ["Ann", "Cid"]), ("map(nums, # * 2)", [6, 2, 4]),
    ("map(nums, #index)", [0, 1, 2]), ("filter(0..9, {# % 2 == 0})", [0, 2, 4, 6, 8]),
    ("count(users, len(.tags) > 0)", 2), ("count([true, false, true])", 2), ("sum(nums)", 6),
    ("sum(users, .age)", 93), ("sum([1, 2.5])", 3.5), ("find(nums, # < 3)", 1), ("find(nums, # > 9)", None),
    ("findIndex(nums, # < 3)", 1), ("findLast(nums, # < 3)", 2), ("findLastIndex(nums, # > 9)", -1),
    ("reduce(1..4, #acc + #)", 10), ("reduce(1..4, #acc * #, 10)", 240), ("reduce(nums, #acc + #index, 0)", 3),
    ("groupBy(users, .age > 18)", {True: [ENV["users"][0], ENV["users"][2]], False: [ENV["users"][1]]}),
    ("sortBy(users, .age) | map(.name)", ["Bob", "Ann", "Cid"]), ("sortBy(users, .name, 'desc')[0].name", "Cid"),
    ("filter(users, any(.tags, # == 'y')) | map(.name)", ["Cid"]),
    ("filter(users, {let u = #; any(users, .age > u.age)}) | len()", 2),
    ("map(users, {name: .name}) | first()", {"name": "Ann"}), ("map([[1, 2], [3]], sum(#))", [3, 3]),
    ("all(users, {#.age > 0 && .name != ''})", True), ("users | filter(.age < 18) | map(.name)", ["Bob"]),
    ("map(1..3, {let k = #; k * k})", [1, 4, 9]), ("map(nums, #)[0]", 3),
)  # fmt: skip
def test_predicates(source: str, expected: Any) -> None:
    assert same(ev(source), expected)


@cases(
    ("len('héllo')", 5), ("len(nums)", 3), ("len(actor.meta)", 5), ("abs(-2.5)", 2.5), ("abs(-3)", 3),
    ("int('42')", 42), ("int('-7')", -7), ("int(3.9)", 3), ("int(-3.9)", -3), ("float('1.5')", 1.5),
    ("float(2)", 2.0), ("float('1e3')", 1000.0), ("string(1)", "1"), ("string(1.5)", "1.5"), ("string(2.0)", "2"),
    ("string(1e6)", "1e+06"), ("string(123456.0)", "123456"), ("string(0.0001)", "0.0001"),
    ("string(0.00001)", "1e-05"), ("string(-1.25e-7)", "-1.25e-07"), ("string(nil)", "<nil>"),
    ("string(true)", "true"), ("string([1, 'a', [nil]])", "[1 a [<nil>]]"), ("string({b: 1, a: 2})", "map[a:2 b:1]"),
    ("string(1 / 0)", "+Inf"), ("upper('ab')", "AB"), ("lower('AB')", "ab"), ("trim('  x ')", "x"),
    ("trim('__x__', '_')", "x"), ("trimPrefix('HelloWorld', 'Hello')", "World"), ("trimSuffix('ab', 'b')", "a"),
    ("split('a,b,c', ',')", ["a", "b", "c"]), ("split('a,b,c', ',', 2)", ["a", "b,c"]), ("split('ab', '')", ["a", "b"]),
    ("splitAfter('a,b', ',')", ["a,", "b"]), ("replace('aXbX', 'X', '-')", "a-b-"), ("repeat('ab', 3)", "ababab"),
    ("join(['a', 'b'], '-')", "a-b"), ("join(['a', 'b'])", "ab"), ("indexOf('apple pie', 'pie')", 6),
    ("indexOf('abc', 'z')", -1), ("lastIndexOf('abab', 'ab')", 2), ("hasPrefix('abc', 'ab')", True),
    ("hasSuffix('abc', 'x')", False), ("max(1, 3.5, 2)", 3.5), ("max(nums)", 3), ("min(4, [2, 9])", 2),
    ("max([])", None), ("mean([1, 2, 3, 4])", 2.5), ("median([3, 1, 2])", 2.0), ("keys({a: 1, b: 2})", ["a", "b"]),
    ("values({a: 1, b: 2})", [1, 2]), ("first(nums)", 3), ("last(nums)", 2), ("first(empty)", None),
    ("first(nil)", None), ("get(nums, 9)", None), ("get(actor, 'id')", "u1"), ("take(nums, 2)", [3, 1]),
    ("reverse(nums)", [2, 1, 3]), ("uniq([1, 1, 2, 1])", [1, 2]), ("concat([1], [2, 3])", [1, 2, 3]),
    ("flatten([1, [2, [3]]])", [1, 2, 3]), ("sort(nums)", [1, 2, 3]), ("sort(nums, 'desc')", [3, 2, 1]),
    ("toPairs({a: 1})", [["a", 1]]), ("fromPairs([['a', 1]])", {"a": 1}), ("type(1)", "int"),
    ("type(1.0)", "float"), ("type('')", "string"), ("type(nil)", "nil"), ("type([])", "array"),
    ("type({})", "map"), ("type(true)", "bool"), ("type(double)", "func"), ("ceil(1.2)", 2.0), ("floor(-1.2)", -2.0),
    ("round(2.5)", 3.0), ("round(-2.5)", -3.0), ("round(2.4)", 2.0),
    ("fromJSON('{\"a\": [1, true]}')", {"a": [1.0, True]}),
    ("toJSON([1, 'a'])", '[\n  1,\n  "a"\n]'), ("toBase64('Hello World')", "SGVsbG8gV29ybGQ="),
    ("fromBase64('SGVsbG8gV29ybGQ=')", "Hello World"), ("bitand(0b1010, 0b1100)", 8), ("bitor(0b1010, 0b1100)", 14),
    ("bitxor(0b1010, 0b1100)", 6), ("bitnand(0b1010, 0b1100)", 2), ("bitnot(0b1010)", -11), ("bitshl(45, 2)", 180),
    ("bitshr(45, 2)", 11), ("bitushr(-5, 2)", 4611686018427387902),
)  # fmt: skip
def test_builtins(source: str, expected: Any) -> None:
    assert same(ev(source), expected)


@cases(
    ('"a1" matches "\\\\d\\\\z"', True), ('"a\\n" matches "a$"', False), ('"x\\ny" matches "(?m)x$"', True),
    ('"ab" matches "[[:alpha:]]+"', True), ('"12" matches "^[[:digit:]]{2}$"', True),
    ('"٣" matches "\\\\d"', False), ('"john" matches "(?<name>j)"', True), ('"żółw" matches "^\\\\pL+$"', True),
)  # fmt: skip
def test_regex_follows_re2(source: str, expected: Any) -> None:
    assert same(ev(source), expected)


# -- policies: missing data is nil, not a crash ------------------------------------------------


def test_undefined_variables_are_nil() -> None:
    assert evaluate("missing == nil", {}) is True
    assert evaluate("actor.meta.role == 'admin'", {"actor": {"meta": {}}}) is False
    assert evaluate("actor?.meta?.role ?? 'guest'", {}) == "guest"
    assert evaluate("'admin' in (actor?.meta?.roles ?? [])", {}) is False
    assert evaluate("resource startsWith 'doc:'", {}) is False
    assert evaluate("missing", None) is None  # type: ignore[arg-type]


def test_a_policy_expression() -> None:
    policy = compile_expr(
        'actor.meta.role in ["admin", "editor"] && action in ["read", "write"] && resource startsWith "doc:"'
    )
    assert policy.run({"actor": {"meta": {"role": "editor"}}, "action": "read", "resource": "doc:1"}) is True
    assert policy.run({"actor": {"meta": {"role": "viewer"}}, "action": "read", "resource": "doc:1"}) is False
    assert policy.run({"actor": {"meta": {}}, "action": "read", "resource": "doc:1"}) is False


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "line", "column", "message"),
    [
        ("1 + ", 1, 5, "unexpected end of expression"),
        ("(1 + 2", 1, 7, "unexpected end of expression"),
        ("[1, 2", 1, 6, "unexpected end of expression"),
        ("foo(1))", 1, 7, "unexpected ')'"),
        ("a b", 1, 3, "unexpected 'b'"),
        ("1 ? 2", 1, 6, "expected ':'"),
        ("x ==\n  == 1", 2, 3, "unexpected '=='"),
        ('"abc', 1, 1, "string literal not terminated"),
        ("a @ b", 1, 3, "unexpected character '@'"),
        ("{a: }", 1, 5, "unexpected '}'"),
        ("if x { 1 }", 1, 11, "expected 'else'"),
        ("let x = 1;", 1, 11, "unexpected end of expression"),
        ("in + 1", 1, 1, "unexpected 'in'"),
        ("let in = 1; 2", 1, 5, "unexpected 'in'"),
        ("a ?? b + c", 1, 8, "operator (+) and coalesce expressions (??) cannot be mixed"),
        ("a ?? b < c", 1, 8, "operator (<) and coalesce expressions (??) cannot be mixed"),
        ("a ?? b < c < d", 1, 1, "operator (<) and coalesce expressions (??) cannot be mixed"),
        ("a ?? b | len()", 1, 10, "operator (|) and coalesce"),
        ("# > 1", 1, 1, "# can only be used inside a predicate"),
        ("x + .name", 1, 5, "a leading '.' can only be used inside a predicate"),
        ("map(xs, #acc)", 1, 9, "unknown pointer #acc"),
        ("filter(xs, #foo)", 1, 12, "unknown pointer #foo"),
        ("x == {a}", 1, 6, "block is only allowed as a predicate argument"),
        ("len(1, 2)", 1, 1, "invalid number of arguments for len (expected 1, got 2)"),
        ("filter(xs)", 1, 1, "invalid number of arguments for filter (expected 2, got 1)"),
        ('"\\q"', 1, 1, "invalid escape sequence"),
        ("9223372036854775808", 1, 1, "integer literal is too large"),
        ('x matches "("', 1, 11, "invalid regular expression"),
        ('x matches "(?<=a)b"', 1, 11, "invalid perl operator"),
        ("   ", 1, 1, "empty expression"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_syntax_errors_say_what_and_where(source: str, line: int, column: int, message: str) -> None:
    with pytest.raises(ExprError) as info:
        compile_expr(source)
    assert message in str(info.value)
    assert (info.value.line, info.value.column) == (line, column)
    assert str(info.value).startswith(f"line {line}, column {column}: ")
    assert isinstance(info.value, DefinitionError)
    assert info.value.kind == "INVALID"


@pytest.mark.parametrize(
    ("source", "message", "snippet"),
    [
        ("s + n", "invalid operation: string + int", "s + n"),
        ("1 + true", "invalid operation: int + bool", "1 + true"),
        ("n && true", "int && ...", "n && true"),
        ("true && missing", "... && nil", "true && missing"),
        ("!n", "! int", "!n"),
        ("-s", "invalid operation: -string", "-s"),
        ("n ? 1 : 2", "condition must be bool, got int", "n"),
        ("nothing.a.b", "cannot fetch a from nil", "nothing.a"),
        ("m.a.b", "cannot fetch b from nil", "m.a.b"),
        ("nums[5]", "index out of range: 5 (array length is 3)", "nums[5]"),
        ("nums.x", "cannot fetch x from array", "nums.x"),
        ("nums['a':]", "slice bound must be an integer", "nums['a':]"),
        ("s < 1", "invalid operation: string < int", "s < 1"),
        ("1 < 2 < 'a'", "invalid operation: int < string", "1 < 2 < 'a'"),
        ("1 % 0", "integer divide by zero", "1 % 0"),
        ("1.5 % 1", "invalid operation: float % int", "1.5 % 1"),
        ("'a' in 'abc'", 'operator "in" not defined on string', "'a' in 'abc'"),
        ("1 contains 'a'", "both sides must be strings", "1 contains 'a'"),
        ("s matches ('(' + '')", "invalid regular expression", "s matches ('(' + '')"),
        ("1.5..3", "range bounds must be integers", "1.5..3"),
        ("1..10000000", "too large", "1..10000000"),
        ("len(n)", "invalid argument for len (type int)", "len(n)"),
        ("int('x1')", "invalid operation: int(x1)", "int('x1')"),
        ("upper(1)", "invalid argument for upper (type int, want string)", "upper(1)"),
        ("all(n, # > 1)", "all needs an array, got int", "all(n, # > 1)"),
        ("filter(nums, #)", "predicate of filter must return bool, got int", "filter(nums, #)"),
        ("map(users, .x.y)", "cannot fetch y from nil", ".x.y"),
        ("reduce(empty, #acc)", "reduce of empty array with no initial value", "reduce(empty, #acc)"),
        ("sort([1, 'a'])", "cannot sort", "sort([1, 'a'])"),
        ("nope(1)", "unknown function nope", "nope(1)"),
        ("s(1)", "s is not a function", "s(1)"),
        ("obj.missing()", "missing is not a method of map", "obj.missing()"),
        ("double('x', 1)", "double failed: TypeError", "double('x', 1)"),
        ("{(nums): 1}", "map keys must be strings", "{(nums): 1}"),
        ("fromJSON('{')", "fromJSON", "fromJSON('{')"),
        ("repeat('x', -1)", "expected positive integer", "repeat('x', -1)"),
    ],
    ids=lambda v: v,
)
def test_runtime_errors_name_the_subexpression(source: str, message: str, snippet: str) -> None:
    with pytest.raises(ExprEvalError) as info:
        ev(source)
    assert message in info.value.reason
    assert info.value.snippet == snippet
    assert f"in `{snippet}`" in str(info.value)
    assert isinstance(info.value, WippyError)
    assert info.value.kind == "INVALID"


def test_runtime_error_positions_point_into_the_source() -> None:
    with pytest.raises(ExprEvalError) as info:
        ev("n > 1 &&\n  missing.x == 1")
    assert (info.value.line, info.value.column, info.value.snippet) == (2, 3, "missing.x")


def test_host_function_failures_do_not_leak() -> None:
    def boom() -> None:
        raise KeyError("secret")

    with pytest.raises(ExprEvalError, match="boom failed: KeyError") as info:
        evaluate("boom()", {"boom": boom})
    assert isinstance(info.value.__cause__, KeyError)


def test_bad_environment_and_source_types() -> None:
    with pytest.raises(ExprEvalError, match="environment must be a map"):
        compile_expr("1").run([1])  # type: ignore[arg-type]
    with pytest.raises(ExprError, match="expression must be a string"):
        compile_expr(42)  # type: ignore[arg-type]


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises((ExprError, ExprEvalError), match="nested too deeply"):
        ev("(" * 2000 + "1" + ")" * 2000)


# -- the API -----------------------------------------------------------------------------------


def test_programs_are_cached_frozen_and_reusable() -> None:
    program = compile_expr("n * 2")
    assert compile_expr("n * 2") is program
    assert isinstance(program, Program)
    assert program.source == "n * 2"
    assert [program.run({"n": i}) for i in range(3)] == [0, 2, 4]
    with pytest.raises(AttributeError):
        program.source = "x"  # type: ignore[misc]


def test_literal_results_are_fresh_each_run() -> None:
    program = compile_expr("[1, {a: [2]}]")
    first = program.run({})
    first.append(3)
    first[1]["a"].append(4)
    assert program.run({}) == [1, {"a": [2]}]


def test_let_and_predicates_do_not_leak_between_runs() -> None:
    program = compile_expr("let t = n * 2; map(xs, # + t)")
    assert program.run({"n": 1, "xs": [1, 2]}) == [3, 4]
    assert program.run({"n": 10, "xs": [1]}) == [21]


# -- properties against Python references ------------------------------------------------------

_INT_OPS: dict[str, Callable[[int, int], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "%": lambda a, b: (abs(a) % abs(b)) * (-1 if a < 0 else 1),
}
_PREC = {"||": 10, "&&": 15, "+": 30, "-": 30, "*": 60, "%": 60} | dict.fromkeys(["==", "!=", "<", ">", "<=", ">="], 20)
_CMP_OPS: dict[str, Callable[[int, int], bool]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge,
}  # fmt: skip


class Node:
    """A random expression: its Python value and its expr text, minimally or fully parenthesized."""

    def __init__(self, value: Any, prec: int, minimal: str, full: str) -> None:
        self.value, self.prec, self.minimal, self.full = value, prec, minimal, full


def _binary(op: str, a: Node, b: Node, value: Any) -> Node:
    prec = _PREC[op]
    left = a.minimal if a.prec >= prec else f"({a.minimal})"
    right = b.minimal if b.prec > prec else f"({b.minimal})"
    return Node(value, prec, f"{left} {op} {right}", f"({a.full} {op} {b.full})")


_int_leaves = st.integers(-50, 50).map(lambda i: Node(i, 1000, str(i) if i >= 0 else f"({i})", f"({i})"))


def _int_trees(max_leaves: int) -> st.SearchStrategy[Node]:
    return st.recursive(
        _int_leaves,
        lambda inner: st.builds(
            lambda op, a, b: _binary(op, a, b, _INT_OPS[op](a.value, b.value)),
            st.sampled_from(["+", "-", "*", "%"]),
            inner,
            inner.filter(lambda n: n.value != 0),
        ),
        max_leaves=max_leaves,
    )


_ints = _int_trees(8)


def _compare(op: str, a: Node, b: Node) -> Node:
    return _binary(op, a, b, _CMP_OPS[op](a.value, b.value))


_bools: st.SearchStrategy[Node] = st.recursive(
    st.builds(_compare, st.sampled_from(list(_CMP_OPS)), _int_trees(2), _int_trees(2)),
    lambda inner: st.one_of(
        st.builds(lambda a, b: _binary("&&", a, b, a.value and b.value), inner, inner),
        st.builds(lambda a, b: _binary("||", a, b, a.value or b.value), inner, inner),
        inner.map(lambda a: Node(not a.value, 1000, f"!({a.minimal})", f"(!{a.full})")),
    ),
    max_leaves=5,
)


@settings(max_examples=100, deadline=None)
@given(_ints)
def test_integer_arithmetic_matches_python(node: Node) -> None:
    assert evaluate(node.full, {}) == node.value
    assert evaluate(node.minimal, {}) == node.value  # precedence and associativity


@settings(max_examples=60, deadline=None)
@given(_bools)
def test_boolean_logic_matches_python(node: Node) -> None:
    assert evaluate(node.full, {}) is node.value
    assert evaluate(node.minimal, {}) is node.value


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=12), st.text(max_size=4))
def test_string_operators_match_python(a: str, b: str) -> None:
    env = {"a": a, "b": b, "xs": list(a)}
    assert evaluate("a startsWith b", env) is a.startswith(b)
    assert evaluate("a endsWith b", env) is a.endswith(b)
    assert evaluate("a contains b", env) is (b in a)
    assert evaluate("b in xs", env) is (b in list(a))
    assert evaluate("a + b", env) == a + b
    assert evaluate("len(a)", env) == len(a)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=20))
def test_string_literals_round_trip(text: str) -> None:
    quoted = json.dumps(text, ensure_ascii=False)
    assert evaluate(quoted, {}) == text
    assert evaluate("'" + quoted[1:-1].replace("'", "\\'").replace('\\"', '"') + "'", {}) == text


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-5, 5), max_size=8), st.integers(-10, 10), st.integers(-10, 10))
def test_slices_and_predicates_match_python(xs: list[int], i: int, j: int) -> None:
    env = {"xs": xs, "i": i, "j": j}
    n = len(xs)
    lo = min(max(i + n if i < 0 else i, 0), n)
    hi = min(max(j + n if j < 0 else j, 0), n)
    assert evaluate("xs[i:j]", env) == xs[min(lo, hi) : hi]
    assert evaluate("filter(xs, # > i)", env) == [x for x in xs if x > i]
    assert evaluate("all(xs, # > i)", env) is all(x > i for x in xs)
    assert evaluate("any(xs, # == j)", env) is any(x == j for x in xs)
    assert evaluate("count(xs, # < 0)", env) == sum(x < 0 for x in xs)
    assert evaluate("sum(xs)", env) == sum(xs)
    assert evaluate("i in xs", env) is (i in xs)
