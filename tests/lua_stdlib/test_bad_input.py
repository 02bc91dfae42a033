"""Bad input to every module function and object method: an error value or a clear Lua error, never
a crash and never a Python exception leaking through as the message.

Each hypothesis example is a list of argument tuples (nil, booleans, integers at the edges, NaN and
infinities, text, binary strings that are not UTF-8, nested tables); one Lua run calls every
function and method with each tuple under pcall and reports the messages of the calls that raised.
Wippy raises for some wrong argument types ("bad argument #1 to 'date'"); what must not happen is
a host crash, a hang, or a message that is a Python exception's text.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wippy.lua_stdlib import HostContext, LuaHost

from .helpers import Entries, fn

MODULES = ["json", "yaml", "base64", "hash", "crypto", "uuid", "time", "logger", "expr", "text", "metrics",
           "system", "treesitter", "contract"]

# calls left out: they block (sleep), cripple the VM for the rest of the run (memory.set_limit), or
# run for seconds on a large integer (pbkdf2: its own tests cover its bounds)
SKIP = ["time.sleep", "system.memory.set_limit", "crypto.pbkdf2"]

# objects and the methods each one documents (their metatables are locked, so they are listed here)
OBJECTS = {
    "time.now()": "add sub add_date before after equal format format_rfc3339 unix unix_nano date clock year month "
                  "day hour minute second nanosecond weekday year_day is_zero utc in_local in_location location "
                  "round truncate",
    "time.parse_duration('90s')": "hours minutes seconds milliseconds microseconds nanoseconds",
    "text.regexp.compile('(a)(?P<n>b)?')": "match_string find_string find_all_string find_string_submatch "
                                           "find_all_string_submatch find_string_index find_all_string_index "
                                           "replace_all_string split num_subexp subexp_names string",
    "text.diff.new()": "compare summarize pretty_text pretty_html patch_make patch_apply",
    "text.splitter.recursive({chunk_size = 8, chunk_overlap = 2})": "split_text split_batch",
    "text.splitter.markdown({chunk_size = 8, chunk_overlap = 2})": "split_text split_batch",
    "expr.compile('a + 1')": "run",
    "treesitter.parse('python', 'def f(a):\\n    return g(a)\\n')": "root_node root_node_with_offset language copy "
                                                                    "walk edit changed_ranges included_ranges",
    "treesitter.parse('go', 'package m\\nfunc f() {}\\n'):root_node()":
        "kind type grammar_name is_named is_extra is_missing is_error has_error has_changes id kind_id grammar_id "
        "parse_state next_parse_state child named_child child_count named_child_count children named_children "
        "parent next_sibling prev_sibling next_named_sibling prev_named_sibling child_by_field_name "
        "child_by_field_id children_by_field_name field_name_for_child field_name_for_named_child "
        "child_with_descendant first_child_for_byte first_named_child_for_byte descendant_count "
        "descendant_for_byte_range named_descendant_for_byte_range descendant_for_point_range "
        "named_descendant_for_point_range start_byte end_byte byte_range range start_point end_point text to_sexp "
        "walk equals",
    "treesitter.parse('lua', 'local x = 1'):walk()":
        "current_node current_depth current_field_name current_field_id current_descendant_index goto_parent "
        "goto_first_child goto_last_child goto_next_sibling goto_previous_sibling goto_descendant "
        "goto_first_child_for_byte goto_first_child_for_point reset reset_to copy",
    "treesitter.query('python', '((identifier) @i (#eq? @i \"a\"))')":
        "captures matches pattern_count capture_count string_count capture_name_for_id capture_index_for_name "
        "capture_quantifier start_byte_for_pattern end_byte_for_pattern is_pattern_rooted is_pattern_non_local "
        "is_pattern_guaranteed_at_step set_byte_range set_point_range set_match_limit get_match_limit "
        "did_exceed_match_limit set_max_start_depth set_timeout",
    "treesitter.parser()": "set_language get_language parse set_timeout set_ranges reset",
    "treesitter.language('javascript')": "name version node_kind_count field_count parse_state_count "
                                         "node_kind_for_id id_for_node_kind node_kind_is_named node_kind_is_visible "
                                         "field_name_for_id field_id_for_name",
    "logger": "debug info warn error with named",
}

_OBJECTS_LUA = "\n".join(
    f"  add_object({expr!r}, function() return {expr} end, {{{', '.join(repr(m) for m in methods.split())}}})"
    for expr, methods in OBJECTS.items()
)

SOURCE = """
local mods = {}
for _, name in ipairs({@MODS@}) do mods[name] = require(name) end
local json, yaml, base64, hash, crypto, uuid, time, logger, expr, text, metrics, system, treesitter, contract =
  mods.json, mods.yaml, mods.base64, mods.hash, mods.crypto, mods.uuid, mods.time, mods.logger, mods.expr,
  mods.text, mods.metrics, mods.system, mods.treesitter, mods.contract
local skip = {}
for _, name in ipairs({@SKIP@}) do skip[name] = true end

return { call = function(argsets)
  local calls, raised = 0, {}
  local function try(label, f, args)
    calls = calls + 1
    local ok, err = pcall(f, table.unpack(args, 1, args.n))
    if not ok then raised[#raised + 1] = {label, tostring(err)} end
  end
  local function walk(t, prefix, depth)
    for k, v in pairs(t) do
      local label = prefix .. tostring(k)
      if not skip[label] then
        if type(v) == "function" then
          for _, args in ipairs(argsets) do try(label, v, args) end
        elseif type(v) == "table" and depth < 2 then
          walk(v, label .. ".", depth + 1)
        end
      end
    end
  end
  for name, m in pairs(mods) do walk(m, name .. ".", 0) end
  local function add_object(label, make, methods)
    for _, method in ipairs(methods) do
      for _, args in ipairs(argsets) do
        local obj = make()  -- a fresh object per call: a method may close or edit it
        local f = obj[method]
        if type(f) ~= "function" then
          raised[#raised + 1] = {label .. ":" .. method, "MISSING METHOD"}
        else
          try(label .. ":" .. method, function(...) return f(obj, ...) end, args)
        end
      end
    end
  end
@OBJECTS@
  return calls, raised
end }
""".replace("@MODS@", ", ".join(repr(m) for m in MODULES)).replace("@SKIP@", ", ".join(repr(s) for s in SKIP)) \
    .replace("@OBJECTS@", _OBJECTS_LUA)

# the text of a Python exception reaching Lua (lupa formats it as "<Type>: <message>")
_LEAK = re.compile(
    r"codec can't (de|en)code|Traceback|object has no attribute|object is not (callable|subscriptable|iterable)|"
    r"\b(TypeError|AttributeError|KeyError|IndexError|ValueError|OverflowError|RecursionError|UnicodeError|"
    r"AssertionError|ZeroDivisionError|NotImplementedError|RuntimeError|SystemError|MemoryError)\b|MISSING METHOD"
)

_scalars = st.one_of(
    st.none(), st.booleans(),
    st.sampled_from([0, 1, -1, 7, 2**31, -(2**31), 2**53, 2**63 - 1, -(2**63)]),
    st.integers(min_value=-1000, max_value=1000),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.nan, math.inf, -math.inf, 0.5, -0.0]),
    st.text(max_size=12), st.binary(max_size=12),
    st.sampled_from(["", "1s", "2006-01-02", "sha256", "python", "a(", "\xff", "${", "{{", "null", "[1,2]"]),
    st.sampled_from([b"\xff\xfe", b"\x00", b"\x80abc", b"\xc3\x28"]),
)
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)), max_leaves=6)
_argsets = st.lists(st.lists(_values, max_size=4), min_size=1, max_size=3)


async def _call_everything(argsets: list[list[Any]]) -> tuple[int, list[tuple[str, str]]]:
    entry = fn("app:fuzz", SOURCE, modules=MODULES)
    host = LuaHost(HostContext(registry=Entries(entry), node="n1", pid="{n1|0x1}"))
    try:
        packed = [host.vm.rt.table_from({"n": len(a), **{i + 1: host.vm.to_lua(v) for i, v in enumerate(a)}})
                  for a in argsets]
        ok, res = await host.vm.run(host.callable(entry), host.vm.rt.table_from(packed))
        assert ok, res
        calls, raised = res
        return int(calls), [(str(r[1]), str(r[2])) for r in raised.values()]
    finally:
        await host.aclose()


def _leaks(raised: list[tuple[str, str]]) -> list[str]:
    return [f"{label}: {message[:200]}" for label, message in raised if _LEAK.search(message)]


async def test_the_documented_objects_and_methods_exist() -> None:
    calls, raised = await _call_everything([[]])
    assert calls > 200
    assert [r for r in raised if r[1] == "MISSING METHOD"] == []


async def test_binary_strings_and_edge_numbers_give_clear_errors() -> None:
    argsets = [[b"\xff\xfe"], [b"\xff", b"\x80"], ["x", b"\xc3\x28"], [{"k": b"\xff"}], [[b"\xff", 1]],
               [2**63 - 1], [-(2**63)], [math.nan], [math.inf, -math.inf], [None, None, None], [{}, {}]]
    _, raised = await _call_everything(argsets)
    assert _leaks(raised) == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_argsets)
async def test_any_arguments_give_a_value_or_a_clear_error(argsets: list[list[Any]]) -> None:
    _, raised = await _call_everything(argsets)
    assert _leaks(raised) == []



async def test_binary_strings_where_text_is_expected_give_error_values() -> None:
    entry = fn("app:bin", """
        local time, text, expr = require('time'), require('text'), require('expr')
        return { call = function(bin)
            local out = {}
            local function add(name, v, err)
                out[name] = {value = v ~= nil, kind = err and err:kind(), message = err and err:message()}
            end
            add("time.parse", time.parse("2006-01-02", bin))
            add("time.parse_duration", time.parse_duration(bin))
            add("time.load_location", time.load_location(bin))
            add("text.regexp.compile", text.regexp.compile(bin))
            add("text.diff.new", text.diff.new({diff_timeout = bin}))
            local sp = text.splitter.recursive({chunk_size = 8, chunk_overlap = 2})
            add("split_text", sp:split_text(bin))
            add("expr.eval", expr.eval("a", {a = bin}))
            local ok, err = pcall(function() return text.regexp.compile("a"):match_string(bin) end)
            out.match_string = {value = ok, kind = err and err:kind(), message = err and err:message()}
            return out
        end }""", modules=["time", "text", "expr"])
    host = LuaHost(HostContext(registry=Entries(entry), node="n1", pid="{n1|0x1}"))
    try:
        ok, res = await host.vm.run(host.callable(entry), b"\xff\xfe")
        assert ok, res
        got = host.vm.from_lua(res[0])
    finally:
        await host.aclose()
    for name, outcome in got.items():
        assert outcome["value"] is False, name
        assert outcome["kind"] in {"INVALID", "NOT_FOUND"}, (name, outcome)
        assert "UTF-8" in outcome["message"], (name, outcome)


async def test_logger_writes_binary_strings_as_text(caplog: pytest.LogCaptureFixture) -> None:
    entry = fn("app:log", """
        local logger = require('logger')
        return { call = function(bin)
            logger:with({tag = bin}):info(bin, {field = bin, nested = {bin}})
            return true
        end }""", modules=["logger"])
    host = LuaHost(HostContext(registry=Entries(entry), node="n1", pid="{n1|0x1}"))
    caplog.set_level(logging.INFO, logger="wippy.lua")
    try:
        ok, res = await host.vm.run(host.callable(entry), b"ok\xff")
        assert ok, res
    finally:
        await host.aclose()
    (record,) = [r for r in caplog.records if r.name == "wippy.lua"]
    assert record.getMessage() == "ok\ufffd"
    fields = record.fields  # type: ignore[attr-defined]
    assert (fields["tag"], fields["field"], fields["nested"]) == ("ok\ufffd", "ok\ufffd", ["ok\ufffd"])
