"""`expr`: the expr-lang expression language (wippy.core's evaluator) for Lua code.

    expr.eval(expression, env?) -> value, err      compiled once per text (cached), run against env
    expr.compile(expression, env?) -> Program, err  env is Wippy's type hint: accepted, not used
    prog:run(env?) -> value, err

Values: the Lua env becomes expr data (tables with keys 1..n are arrays, other tables maps with
string keys); results come back as Lua values (arrays as sequences, maps as tables, nil as nil;
a date as Unix seconds and a duration as nanoseconds, as Wippy converts them).

Lua functions in env are not callable from an expression: Wippy hands expr-lang only data (a
function arrives as its `tostring` text), so expressions stay side-effect free. Here a function
in env is an opaque value; calling it fails with an error that says so, and returning it gives
back the same Lua function.

Errors follow Wippy's kinds: an empty expression or an env that is not a table is INVALID; a
syntax error, an evaluation error and a result that cannot become a Lua value are INTERNAL. The
message says where (line and column, the failing sub-expression).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wippy.core import ExprError, ExprEvalError, compile_expr

from ._binary import guard, guard_all, type_name
from ._host import LuaHost, register_module

_MAX_DEPTH = 100


class _LuaValue:
    """A Lua function (or userdata) from the env: carried through, never called."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self, *_args: Any) -> Any:
        raise TypeError("a Lua function in the environment cannot be called from an expression")

    def __repr__(self) -> str:
        return "<lua function>"


class _Unconvertible(Exception):
    pass


def _env_value(v: Any, depth: int = 0) -> Any:
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if depth > _MAX_DEPTH:
        raise _Unconvertible("environment nested too deeply")
    if isinstance(v, list):
        return [_env_value(x, depth + 1) for x in v]
    if isinstance(v, dict):
        return {k: _env_value(x, depth + 1) for k, x in v.items()}
    return _LuaValue(v)


def _result(v: Any, depth: int = 0) -> Any:
    if v is None or isinstance(v, bool | str | float):
        return v
    if isinstance(v, int):
        return int(v)
    if depth > _MAX_DEPTH:
        raise _Unconvertible("result nested too deeply")
    if isinstance(v, _LuaValue):
        return v.value
    if isinstance(v, list | tuple):
        return [_result(x, depth + 1) for x in v]
    if isinstance(v, Mapping):
        return {_key(k): _result(x, depth + 1) for k, x in v.items()}
    unix = getattr(v, "unix_seconds", None)
    if callable(unix):  # a date (expr's time values): Unix seconds, as Wippy returns it
        return int(unix())
    raise _Unconvertible(f"cannot convert a {type(v).__name__} to a Lua value")


def _key(k: Any) -> Any:
    if isinstance(k, str | int | float | bool):
        return k
    raise _Unconvertible(f"cannot use a {type(k).__name__} as a Lua table key")


# Program objects: a metatable and a weak private table from object to compiled program.
_PROGRAM = """
local run, errors = ...
local setmetatable, error = setmetatable, error
local programs = setmetatable({}, { __mode = "k" })
local methods = {}
local Program = {
    __index = methods, __name = "expr.Program", __metatable = "expr.Program",
    __newindex = function() error(errors._make("INVALID", "expr.Program objects are read-only"), 2) end,
    __tostring = function() return "expr.Program" end,
}
function methods:run(env)
    local p = programs[self]
    if p == nil then
        error(errors._make("INVALID", "expr.Program:run: call it as a method (prog:run(env))"), 2)
    end
    return run(p, env)
end
return function(p)
    local obj = setmetatable({}, Program)
    programs[obj] = p
    return obj
end
"""


def _build(host: LuaHost) -> Any:
    vm = host.vm

    def source_of(expression: Any, where: str) -> tuple[str | None, Any]:
        if isinstance(expression, bytes):
            expression = expression.decode("utf-8", "replace")
        if isinstance(expression, int | float) and not isinstance(expression, bool):
            expression = vm.tostring(expression)
        if not isinstance(expression, str):
            got = type_name(expression)
            return None, vm.error("INVALID", f"{where}: the expression must be a string, got {got}")
        if expression == "":
            return None, vm.error("INVALID", f"{where}: expression cannot be empty")
        return expression, None

    def run(program: Any, env: Any, where: str) -> tuple[Any, Any]:
        data: Any = None
        if env is not None:
            data = vm.from_lua(env)
            if data == []:
                data = {}
            if not isinstance(data, dict):
                got = "an array" if isinstance(data, list) else type_name(data)
                return None, vm.error("INVALID", f"{where}: env must be a table of named values, got {got}")
            try:
                data = _env_value(data)
            except _Unconvertible as exc:
                return None, vm.error("INVALID", f"{where}: {exc}")
        try:
            value = program.run(data)
        except ExprEvalError as exc:
            return None, vm.error("INTERNAL", f"{where}: eval failed: {exc}")
        try:
            return vm.to_lua(_result(value)), None
        except _Unconvertible as exc:
            return None, vm.error("INTERNAL", f"{where}: failed to convert result: {exc}")

    def compile_(expression: Any, where: str) -> tuple[Any, Any]:
        source, err = source_of(expression, where)
        if source is None:
            return None, err
        try:
            return compile_expr(source), None
        except ExprError as exc:
            return None, vm.error("INTERNAL", f"{where}: compile failed: {exc}")

    def eval_(expression: Any = None, env: Any = None, *_ignored: Any) -> tuple[Any, Any]:
        program, err = compile_(expression, "expr.eval")
        if program is None:
            return None, err
        return run(program, env, "expr.eval")

    make_program = vm.rt.execute(
        _PROGRAM, guard(host, lambda p, env=None: run(p, env, "expr.Program:run"), "expr.Program:run"), vm.errors)

    def compile_public(expression: Any = None, _env_hint: Any = None, *_ignored: Any) -> tuple[Any, Any]:
        program, err = compile_(expression, "expr.compile")
        if program is None:
            return None, err
        return make_program(program), None

    return vm.rt.table_from(guard_all(host, {"eval": eval_, "compile": compile_public}, "expr"))


register_module("expr", _build)
