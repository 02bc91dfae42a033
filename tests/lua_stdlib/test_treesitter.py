"""`treesitter`: parsing, nodes, cursors, queries, incremental edits and bad input, on a real LuaHost."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wippy.lua_stdlib import HostContext, LuaHost

from .helpers import Entries, fn, run_entry

PRELUDE = "local ts = require('treesitter')\n"


async def run(body: str, *args: object) -> tuple[bool, tuple[Any, ...]]:
    entry = fn("app:ts", PRELUDE + "return { call = function(...) " + body + " end }", modules=["treesitter"])
    return await run_entry(entry, args=args)


async def value(body: str, *args: object) -> Any:
    ok, res = await run(body, *args)
    assert ok, res
    return res[0]


# -- languages -----------------------------------------------------------------------------------

PROGRAMS = {
    "go": ("package main\n\nfunc main() {}\n", "source_file"),
    "javascript": ("function f(a) { return a + 1; }\n", "program"),
    "typescript": ("let x: number = 1;\ninterface P { name: string }\n", "program"),
    "tsx": ("const e = <div className=\"a\">{x}</div>;\n", "program"),
    "python": ("def f(a):\n    return a + 1\n", "module"),
    "lua": ("local function f(a) return a + 1 end\n", "chunk"),
    "php": ("<?php\nfunction f($a) { return $a + 1; }\n", "program"),
    "csharp": ("class A { int F(int a) { return a + 1; } }\n", "compilation_unit"),
    "html": ("<html><body><p class=\"x\">hi</p></body></html>\n", "document"),
    "markdown": ("# Title\n\nSome *text*.\n\n- item\n", "document"),
    "sql": ("SELECT a, b FROM t WHERE a = 1;\n", "program"),
}

ALIASES = {"golang": "go", "js": "javascript", "ts": "typescript", "py": "python", "cs": "csharp", "c#": "csharp",
           "html5": "html", "md": "markdown"}


@pytest.mark.parametrize("lang", [*PROGRAMS, *ALIASES])
async def test_every_language_parses_a_small_program(lang: str) -> None:
    code, root_kind = PROGRAMS[ALIASES.get(lang, lang)]
    res = await value("""
        local lang, code = ...
        local tree, err = ts.parse(lang, code)
        if err then return {err = err:message()} end
        local root = tree:root_node()
        return {kind = root:kind(), error = root:has_error(), text = root:text(), named = root:named_child_count()}
    """, lang, code)
    assert res == {"kind": root_kind, "error": False, "text": code, "named": res["named"]}
    assert res["named"] >= 1


async def test_supported_languages_lists_names_and_aliases() -> None:
    langs = await value("return ts.supported_languages()")
    assert set(langs) == set(PROGRAMS) | set(ALIASES)
    assert all(v is True for v in langs.values())


async def test_language_metadata() -> None:
    res = await value("""
        local go = assert(ts.language("golang"))
        local id = go:id_for_node_kind("identifier", true)
        local field = go:field_id_for_name("name")
        return {go:name(), go:version() > 0, go:node_kind_count() > 10, go:field_count() > 5,
                go:parse_state_count() > 10, go:node_kind_for_id(id), go:node_kind_is_named(id),
                go:field_name_for_id(field), go:field_id_for_name("no_such_field"),
                go:node_kind_for_id(1000000) == nil, ts.parse("go", "package a"):language():name()}
    """)
    assert res == ["go", True, True, True, True, "identifier", True, "name", 0, True, "go"]


# -- nodes ---------------------------------------------------------------------------------------

GO = "package main\n\nfunc add(a int, b int) int {\n\treturn a + b\n}\n"


async def test_node_navigation_is_zero_based_with_points() -> None:
    res = await value("""
        local code = ...
        local tree = ts.parse("go", code)
        local root = tree:root_node()
        local fn = root:named_child(1)
        local name = fn:child_by_field_name("name")
        local params = fn:child_by_field_name("parameters")
        return {
            root = {root:kind(), root:type(), root:child_count(), root:is_named(), root:start_byte(), root:end_byte()},
            first = root:child(0):kind(),
            fn = {fn:kind(), fn:grammar_name(), fn:start_point(), fn:end_point(), fn:child_count()},
            name = {name:text(), name:start_byte(), name:end_byte(), name:start_point(), name:parent() == fn},
            fields = {fn:field_name_for_child(1), fn:field_name_for_child(0) == nil, fn:child(1) == name},
            siblings = {name:next_sibling():kind(), name:prev_sibling():kind(), name:next_named_sibling() == params,
                        name:prev_named_sibling() == nil, root:child(0):prev_sibling() == nil},
            unnamed = {fn:child(0):kind(), fn:child(0):is_named(), fn:named_child(0) == name},
            out_of_range = {root:child(root:child_count()) == nil, root:child(-1) == nil,
                            root:named_child(99) == nil, fn:field_name_for_child(99) == nil,
                            root:child_by_field_name("nope") == nil},
            root_parent = root:parent() == nil,
            sexp = params:to_sexp(),
            list = #fn:children() == fn:child_count() and #fn:named_children() == fn:named_child_count(),
            range = name:range(),
        }
    """, GO)
    assert res["root"] == ["source_file", "source_file", 2, True, 0, len(GO)]
    assert res["first"] == "package_clause"
    assert res["fn"] == ["function_declaration", "function_declaration", {"row": 2, "column": 0},
                         {"row": 4, "column": 1}, 5]
    start = GO.index("add")
    assert res["name"] == ["add", start, start + 3, {"row": 2, "column": 5}, True]
    assert res["fields"] == ["name", True, True]
    assert res["siblings"] == ["parameter_list", "func", True, True, True]
    assert res["unnamed"] == ["func", False, True]
    assert res["out_of_range"] == [True] * 5
    assert res["root_parent"] is True
    assert res["sexp"] == ("(parameter_list (parameter_declaration name: (identifier) type: (type_identifier)) "
                           "(parameter_declaration name: (identifier) type: (type_identifier)))")
    assert res["list"] is True
    assert res["range"] == {"start_byte": start, "end_byte": start + 3, "start_point": {"row": 2, "column": 5},
                            "end_point": {"row": 2, "column": 8}}


async def test_node_lookups_by_position_and_text_from_other_source() -> None:
    res = await value("""
        local code = ...
        local tree = ts.parse("go", code)
        local root = tree:root_node()
        local at = string.find(code, "add", 1, true) - 1
        local ident = root:descendant_for_byte_range(at, at + 3)
        local by_point = root:named_descendant_for_point_range({row = 3, column = 8}, {row = 3, column = 9})
        local shout = string.upper(code)
        return {ident:kind(), ident:text(), ident:text(shout), by_point:text(),
                root:first_child_for_byte(at):kind(), root:child_with_descendant(ident):kind(),
                root:descendant_count() > 10, ident:id() ~= root:id(), ident:kind_id() > 0}
    """, GO)
    assert res == ["identifier", "add", "ADD", "a", "function_declaration", "function_declaration", True, True,
                   True]


async def test_error_and_missing_nodes() -> None:
    res = await value("""
        local root = ts.parse("go", "package a\\nfunc f() { g( }"):root_node()
        local missing = ts.parse("python", "def f(:\\n    pass\\n"):root_node()
        local function find(node, pred)
            if pred(node) then return node end
            for i = 0, node:child_count() - 1 do
                local hit = find(node:child(i), pred)
                if hit then return hit end
            end
        end
        local err_node = find(root, function(n) return n:is_error() end)
        local miss = find(missing, function(n) return n:is_missing() end)
        return {root:has_error(), missing:has_error(), err_node ~= nil and err_node:kind(),
                miss ~= nil and miss:kind(), ts.parse("python", "x = 1"):root_node():has_error()}
    """)
    assert res == [True, True, "ERROR", ")", False]


async def test_node_equality_and_bad_arguments_raise() -> None:
    res = await value("""
        local root = ts.parse("lua", "local x = 1"):root_node()
        local ok1, e1 = pcall(root.child, root, "first")
        local ok2, e2 = pcall(root.child, root, 1.5)
        local ok3, e3 = pcall(root.kind, {})
        local ok4, e4 = pcall(function() return getmetatable(root) end)
        return {root:child(0) == root:child(0), root:child(0) == root, ok1, e1, ok2, ok3, e3, e4}
    """)
    assert res[:3] == [True, False, False]
    assert "child: argument #1 must be an integer, got string" in res[3]
    assert res[4:6] == [False, False]
    assert "expected a Node" in res[6]
    assert res[7] == "treesitter.Node"


# -- cursors -------------------------------------------------------------------------------------

async def test_cursor_walk_visits_what_node_recursion_visits() -> None:
    res = await value("""
        local code = ...
        local tree = ts.parse("python", code)
        local by_nodes = {}
        local function rec(node, depth)
            by_nodes[#by_nodes + 1] = depth .. ":" .. node:kind()
            for i = 0, node:child_count() - 1 do rec(node:child(i), depth + 1) end
        end
        rec(tree:root_node(), 0)

        local by_cursor, fields = {}, {}
        local c = tree:walk()
        repeat
            by_cursor[#by_cursor + 1] = c:current_depth() .. ":" .. c:current_node():kind()
            if c:current_field_name() then fields[#fields + 1] = c:current_field_name() end
            local moved = c:goto_first_child() or c:goto_next_sibling()
            while not moved and c:goto_parent() do moved = c:goto_next_sibling() end
        until not moved

        local c2 = tree:walk()
        c2:goto_first_child()
        local copy = c2:copy()
        copy:goto_first_child()
        local last = tree:walk()
        last:goto_last_child()
        local fc = tree:walk()
        local idx = fc:goto_first_child_for_byte(#code - 2)
        local d = tree:walk()
        d:goto_descendant(3)
        local r = tree:walk()
        r:reset(tree:root_node():child(1))
        local other = ts.parse("python", "z = 3")
        local moved, cross = r:reset(other:root_node())
        local moved_to, cross_to = r:reset_to(other:walk())
        return {same = table.concat(by_nodes, " ") == table.concat(by_cursor, " "), count = #by_cursor,
                fields = fields, depths = {c2:current_depth(), copy:current_depth()},
                last = last:current_node():start_point().row, idx = idx, desc = d:current_descendant_index(),
                reset = {r:current_node():kind(), r:current_depth(), r:goto_parent()},
                field_id = copy:current_field_id(),
                cross = {moved == nil, cross:kind(), moved_to == nil, cross_to:kind()}}
    """, "def f(a):\n    return a\n\nx = f(1)\n")
    assert res["same"] is True
    assert res["count"] > 10
    assert "name" in res["fields"]
    assert "parameters" in res["fields"]
    assert res["depths"] == [1, 2]
    assert res["last"] == 3
    assert res["idx"] == 1
    assert res["desc"] == 3
    assert res["reset"] == ["expression_statement", 0, False]
    assert res["field_id"] == 0
    assert res["cross"] == [True, "INVALID", True, "INVALID"]


# -- queries -------------------------------------------------------------------------------------

PY = "def load(path):\n    return read(path)\n\ndef save(data):\n    write(data)\n    log(data)\n"


async def test_query_captures_in_document_order() -> None:
    res = await value("""
        local code = ...
        local tree = ts.parse("python", code)
        local q = assert(ts.query("py", [[
            (function_definition name: (identifier) @def)
            (call function: (identifier) @call)
        ]]))
        local out = {}
        for _, c in ipairs(q:captures(tree:root_node(), code)) do
            out[#out + 1] = {c.name, c.text, c.index, c.node:kind(), c.node:text()}
        end
        return {out, q:pattern_count(), q:capture_count(), q:capture_name_for_id(1), q:capture_index_for_name("call"),
                q:capture_index_for_name("@def"), q:capture_index_for_name("nope") == nil,
                q:capture_name_for_id(7) == nil}
    """, PY)
    caps, patterns, count, name1, idx_call, idx_def, idx_none, name7 = res
    assert caps == [
        ["def", "load", 0, "identifier", "load"], ["call", "read", 1, "identifier", "read"],
        ["def", "save", 0, "identifier", "save"], ["call", "write", 1, "identifier", "write"],
        ["call", "log", 1, "identifier", "log"],
    ]
    assert (patterns, count, name1, idx_call, idx_def, idx_none, name7) == (2, 2, "call", 1, 0, True, True)


async def test_query_matches_group_captures_by_pattern() -> None:
    res = await value("""
        local code = ...
        local root = ts.parse("python", code):root_node()
        local q = ts.query("python", [[
            (function_definition name: (identifier) @fn
                body: (block (expression_statement (call function: (identifier) @callee))))
            (return_statement) @ret
        ]])
        local out = {}
        for _, m in ipairs(q:matches(root)) do
            local caps = {}
            for _, c in ipairs(m.captures) do caps[#caps + 1] = c.name .. "=" .. c.text end
            out[#out + 1] = {m.id, m.pattern, table.concat(caps, ",")}
        end
        return out
    """, PY)
    assert res == [[0, 1, "ret=return read(path)"], [1, 0, "fn=save,callee=write"], [2, 0, "fn=save,callee=log"]]


async def test_query_predicates() -> None:
    res = await value("""
        local code = ...
        local root = ts.parse("python", code):root_node()
        local function texts(pattern)
            local out = {}
            for _, c in ipairs(assert(ts.query("python", pattern)):captures(root, code)) do out[#out + 1] = c.text end
            return table.concat(out, ",")
        end
        return {
            texts('((identifier) @id (#eq? @id "data"))'),
            texts('((identifier) @id (#match? @id "^(read|write)$"))'),
            texts('((call function: (identifier) @f) (#not-eq? @f "log"))'),
            texts('((identifier) @id (#any-of? @id "load" "save"))'),
            texts('((call function: (identifier) @f) (#not-match? @f "^[rw]"))'),
        }
    """, PY)
    assert res == ["data,data,data", "read,write", "read,write", "load,save", "log"]


async def test_query_limits_and_disabling() -> None:
    res = await value("""
        local code = ...
        local root = ts.parse("python", code):root_node()
        local function count(q) return #q:captures(root, code) end
        local q = ts.query("python", "(call function: (identifier) @f arguments: (argument_list) @args)")
        local all = count(q)
        q:disable_capture("args")
        local without_args = count(q)
        local r = ts.query("python", "(identifier) @id")
        assert(r:set_byte_range(0, 20))
        local ranged = {}
        for _, c in ipairs(r:captures(root, code)) do ranged[#ranged + 1] = c.text end
        local p = ts.query("python", "(identifier) @id")
        p:set_point_range({row = 3, column = 0}, {row = 4, column = 0})
        local pranged = {}
        for _, c in ipairs(p:captures(root)) do pranged[#pranged + 1] = c.text end
        local two = ts.query("python", "(call) @c (identifier) @i")
        two:disable_pattern(1)
        local many = "def f():\\n" .. string.rep("    g()\\n", 40)
        local many_root = ts.parse("python", many):root_node()
        local l = ts.query("python", "(block (expression_statement) @e (expression_statement) @e2)")
        local unlimited = #l:matches(many_root)
        local exceeded_before = l:did_exceed_match_limit()
        l:set_match_limit(2)
        local limited = #l:matches(many_root)
        local ok, bad = r:set_byte_range(10, 5)
        return {all, without_args, table.concat(ranged, ","), table.concat(pranged, ","), count(two),
                l:get_match_limit(), exceeded_before, l:did_exceed_match_limit(), limited < unlimited, ok, bad:kind()}
    """, PY)
    assert res == [6, 3, "load,path", "save,data", 3, 2, False, True, True, False, "INVALID"]


async def test_query_timeout_is_unavailable() -> None:
    res = await value("""
        local q = ts.query("go", "(identifier) @id")
        local ok, err = q:set_timeout("500ms")
        return {ok, err:kind(), q:set_timeout(0)}
    """)
    assert res == [False, "UNAVAILABLE", True]


async def test_bad_queries_name_line_and_column() -> None:
    res = await value("""
        local out = {}
        for _, pattern in ipairs({"((invalid", "(identifier) @x\\n  (function_declaration nam: (identifier))",
                                  "(identifier @x", '((identifier) @x (#eq? @x))', 42}) do
            local q, err = ts.query("go", pattern)
            out[#out + 1] = {q == nil, err:kind(), err:message(), err:details()}
        end
        local q, err = ts.query("klingon", "(x)")
        out[#out + 1] = {q == nil, err:kind(), err:message()}
        return out
    """)
    assert res[0] == [True, "INVALID", "treesitter.query: invalid node type in go query at line 1, column 3: invalid",
                      {"line": 1, "column": 3}]
    assert res[1][2] == "treesitter.query: invalid field name in go query at line 2, column 25: nam"
    assert res[1][3] == {"line": 2, "column": 25}
    assert res[2][2].startswith("treesitter.query: invalid syntax in go query at line 1, column ")
    assert "#eq? expects 2 arguments" in res[3][2]
    assert res[4][1:] == ["INVALID", "treesitter.query: pattern must be a string, got number"]
    assert res[5][:2] == [True, "INVALID"]
    assert 'unsupported language "klingon"' in res[5][2]


async def test_query_for_another_language_is_an_error() -> None:
    res = await value("""
        local q = ts.query("go", "(identifier) @id")
        local caps, err = q:captures(ts.parse("python", "x = 1"):root_node())
        local caps2, err2 = q:captures("not a node")
        local caps3, err3 = q:captures(ts.parse("go", "package a"):root_node(), 5)
        return {caps == nil, err:message(), caps2 == nil, err2:kind(), caps3 == nil, err3:kind()}
    """)
    assert res == [True, "treesitter: query:captures: the query is for go, the node is from python code", True,
                   "INVALID", True, "INVALID"]


async def test_text_predicates_on_an_edited_tree_need_a_reparse() -> None:
    res = await value("""
        local tree = ts.parse("python", "a = 1\\nb = 2\\n")
        assert(tree:edit({start_byte = 0, old_end_byte = 1, new_end_byte = 1, start_row = 0, start_column = 0,
                          old_end_row = 0, old_end_column = 1, new_end_row = 0, new_end_column = 1}))
        local plain = ts.query("python", "(identifier) @id")
        local pred = ts.query("python", '((identifier) @id (#eq? @id "b"))')
        local caps, err = pred:captures(tree:root_node())
        local p = ts.parser()
        p:set_language("python")
        local fresh = p:parse("c = 1\\nb = 2\\n", tree)
        local after = pred:captures(fresh:root_node())
        return {#plain:captures(tree:root_node()), caps == nil, err:kind(), #after, after[1].text}
    """)
    assert res == [2, True, "INVALID", 1, "b"]


async def test_match_predicate_on_text_that_is_not_utf8_is_an_error() -> None:
    res = await value("""
        local code = "x = 1\\n\\xff\\xfe = 2\\n"
        local root = ts.parse("python", code):root_node()
        local caps, err = ts.query("python", '((module) @m (#match? @m "^x"))'):captures(root, code)
        local fine = ts.parse("python", "x = 1"):root_node()
        local plain = ts.query("python", '((module) @m (#match? @m "^x"))'):captures(fine)
        return {caps == nil, err:kind(), err:message(), #plain}
    """)
    assert res == [True, "INVALID", "treesitter: query: a text predicate met text that is not valid UTF-8", 1]


# -- the example app's way of using the module ----------------------------------------------------

async def test_call_graph_extraction_like_the_treesitter_example() -> None:
    php = ("<?php\nclass Shop {\n    public function checkout($cart) {\n        $total = price($cart);\n"
           "        $this->charge($total);\n    }\n    private function charge($n) { log_it($n); }\n}\n"
           "function price($cart) { return count($cart); }\n")
    res = await value("""
        local code = ...
        local tree, err = ts.parse("php", code)
        local root = tree:root_node()
        local function captures(pattern)
            local query, qerr = ts.query("php", pattern)
            if qerr then return {} end
            return query:captures(root, code) or {}
        end
        local function enclosing(node)
            local current = node:parent()
            while current do
                local kind = current:kind()
                if kind == "function_definition" or kind == "method_declaration" then
                    local n = current:child_by_field_name("name")
                    if n then return tostring(n:text()) end
                end
                current = current:parent()
            end
        end
        local edges = {}
        for _, pattern in ipairs({"(function_call_expression function: (name) @call_name)",
                                  "(member_call_expression name: (name) @member_method)"}) do
            for _, cap in ipairs(captures(pattern)) do
                edges[#edges + 1] = tostring(enclosing(cap.node)) .. "->" .. cap.text
            end
        end
        local classes = {}
        for _, cap in ipairs(captures(
                "(class_declaration name: (name) @cls (declaration_list (method_declaration name: (name) @meth)))")) do
            classes[#classes + 1] = cap.name .. ":" .. cap.text
        end
        return {err == nil, edges, classes}
    """, php)
    assert res[0] is True
    assert res[1] == ["checkout->price", "charge->log_it", "price->count", "checkout->charge"]
    assert res[2] == ["cls:Shop", "cls:Shop", "meth:checkout", "meth:charge"]


# -- parsers and incremental parsing ---------------------------------------------------------------

async def test_incremental_edit_reparses_to_the_fresh_tree() -> None:
    res = await value("""
        local old_code = "func main() { x := 1 }"
        local new_code = "func main() { x := 100 }"
        local tree = ts.parse("go", old_code)
        local ok = tree:edit({start_byte = 19, old_end_byte = 20, new_end_byte = 22, start_row = 0, start_column = 19,
                              old_end_row = 0, old_end_column = 20, new_end_row = 0, new_end_column = 22})
        local edited_root = tree:root_node()
        local parser = ts.parser()
        assert(parser:set_language("go"))
        local new_tree = assert(parser:parse(new_code, tree))
        local fresh = ts.parse("go", new_code)
        local changed = new_tree:changed_ranges(tree)
        local lit = new_tree:root_node():descendant_for_byte_range(19, 22):text()

        -- a change of structure shows in changed_ranges
        local call_code = "func main() { x := f(1) }"
        assert(new_tree:edit({start_byte = 19, old_end_byte = 22, new_end_byte = 23, start_row = 0,
                              start_column = 19, old_end_row = 0, old_end_column = 22, new_end_row = 0,
                              new_end_column = 23}))
        local call_tree = parser:parse(call_code, new_tree)
        local ranges = new_tree:changed_ranges(call_tree)
        return {ok, edited_root:has_changes(), new_tree:root_node():to_sexp() == fresh:root_node():to_sexp(),
                lit, #changed, #ranges, ranges[1].start_byte, ranges[1].end_byte, ranges[1].start_point,
                call_tree:root_node():to_sexp() == ts.parse("go", call_code):root_node():to_sexp(),
                #call_tree:included_ranges()}
    """)
    assert res == [True, True, True, "100", 0, 1, 19, 23, {"row": 0, "column": 19}, True, 1]


async def test_edit_accepts_points_and_rejects_bad_edits() -> None:
    res = await value("""
        local tree = ts.parse("python", "x = 1\\n")
        local ok = tree:edit({start_byte = 4, old_end_byte = 5, new_end_byte = 6,
                              start_point = {row = 0, column = 4}, old_end_point = {row = 0, column = 5},
                              new_end_point = {row = 0, column = 6}})
        local r1, e1 = tree:edit({start_byte = 4})
        local r2, e2 = tree:edit({start_byte = 5, old_end_byte = 4, new_end_byte = 6, start_row = 0,
                                  start_column = 5, old_end_row = 0, old_end_column = 4, new_end_row = 0,
                                  new_end_column = 6})
        local r3, e3 = tree:edit("nope")
        return {ok, r1, e1:kind(), e1:message(), r2, e2:kind(), r3, e3:kind()}
    """)
    assert res == [True, False, "INVALID", "treesitter: tree:edit: old_end_byte must be a non-negative integer",
                   False, "INVALID", False, "INVALID"]


async def test_parser_object() -> None:
    res = await value("""
        local p = ts.parser()
        local none, e0 = p:parse("x")
        local lang0, le = p:get_language()
        local ok1, e1 = p:set_language("cobol")
        local ok2 = p:set_language("js")
        local t = assert(p:parse("let a = 1;"))
        local bad, e3 = p:parse(42)
        local to1 = p:set_timeout("2s")
        local to2, e4 = p:set_timeout("soon")
        local to3 = p:set_timeout(1000000000)
        p:reset()
        p:close()
        p:close()
        local after, e5 = p:parse("let b = 2;")
        return {none == nil, e0:kind(), lang0 == nil, le:kind(), ok1, e1:kind(), ok2, t:root_node():kind(),
                bad == nil, e3:message(), to1, to2, e4:kind(), to3, after == nil, e5:message()}
    """)
    assert res == [True, "INVALID", True, "INVALID", False, "INVALID", True, "program", True,
                   "treesitter.parser:parse: code must be a string, got number", True, False, "INVALID", True, True,
                   "treesitter: parser:parse: the parser is closed"]


async def test_parse_timeout_stops_a_long_parse_and_the_parser_recovers() -> None:
    code = "x = [" + ", ".join(str(i) for i in range(60_000)) + "]\n"
    res = await value("""
        local code = ...
        local p = ts.parser()
        p:set_language("python")
        p:set_timeout(1)
        local tree, err = p:parse(code)
        p:set_timeout(0)
        local again = assert(p:parse("y = 2\\n"))
        return {tree == nil, err:kind(), err:message(), again:root_node():text()}
    """, code)
    assert res == [True, "INTERNAL", "treesitter: parsing python code timed out after 1e-09s", "y = 2\n"]


async def test_parser_ranges_parse_part_of_the_code() -> None:
    res = await value("""
        local code = "<% ignored %>x = 1<% ignored %>"
        local p = ts.parser()
        p:set_language("python")
        assert(p:set_ranges({{start_byte = 13, end_byte = 18, start_point = {row = 0, column = 13},
                              end_point = {row = 0, column = 18}}}))
        local tree = p:parse(code)
        local ok, err = p:set_ranges({{start_byte = "a"}})
        assert(p:set_ranges({}))
        local whole = p:parse("y = 2")
        local r = tree:included_ranges()[1]
        return {tree:root_node():child(0):text(code), ok, err:kind(), r.start_byte, r.end_point,
                whole:root_node():has_error()}
    """)
    assert res == ["x = 1", False, "INVALID", 13, {"row": 0, "column": 18}, False]


# -- lifecycle -------------------------------------------------------------------------------------

async def test_close_copy_and_use_after_close() -> None:
    res = await value("""
        local tree = ts.parse("go", "package main\\nfunc hello() {}")
        local root = tree:root_node()
        local cursor = tree:walk()
        local copy = tree:copy()
        local q = ts.query("go", "(identifier) @id")
        tree:close()
        tree:close()
        local r1, e1 = tree:root_node()
        local k, e2 = root:kind()
        local n, e3 = cursor:current_node()
        local caps, e4 = q:captures(root)
        local p = ts.parser()
        p:set_language("go")
        local t2, e5 = p:parse("package b", tree)
        cursor:close()
        cursor:close()
        q:close()
        local c, e6 = q:captures(copy:root_node())
        return {r1 == nil, e1:message(), k == nil, e2:kind(), n == nil, e3:message(), caps == nil, e4:kind(),
                t2 == nil, e5:message(), c == nil, e6:message(), copy:root_node():child(1):kind(),
                string.sub(copy:dot_graph(), 1, 7)}
    """)
    assert res == [True, "treesitter: tree:root_node: the tree is closed", True, "INVALID", True,
                   "treesitter: cursor:current_node: the cursor's tree is closed", True, "INVALID", True,
                   "treesitter.parser:parse: the old tree is closed", True,
                   "treesitter: query:captures: the query is closed", "function_declaration", "digraph"]


async def test_collected_trees_release_their_python_objects() -> None:
    entry = fn("app:ts", PRELUDE + """return { call = function(n, close)
        for i = 1, n do
            local tree = ts.parse("lua", "local x = " .. i)
            local root = tree:root_node()
            for j = 0, root:child_count() - 1 do root:child(j):kind() end
            if close then tree:close() end
        end
        collectgarbage("collect")
        collectgarbage("collect")
        return true
    end }""", modules=["treesitter"])
    host = LuaHost(HostContext(registry=Entries(entry), node="n1", pid="{n1|0x1}"))
    try:
        ok, _ = await host.vm.run(host.callable(entry), 300, False)
        assert ok
        live = host.extras["treesitter"].live_trees
        assert len(live) < 5  # none but possibly a tree the last collection left for the next one
        ok, _ = await host.vm.run(host.callable(entry), 50, True)
        assert ok
        assert len(live) < 5
    finally:
        await host.aclose()


async def test_module_is_read_only() -> None:
    ok, res = await run("ts.parse = nil")
    assert not ok
    assert "read-only" in str(res)


# -- bad input ------------------------------------------------------------------------------------

async def test_bad_inputs_are_error_values() -> None:
    res = await value("""
        local out = {}
        local function add(v, err) out[#out + 1] = {v == nil, err and err:kind(), err and err:message()} end
        add(ts.parse("cobol", "x"))
        add(ts.parse(nil, "x"))
        add(ts.parse("go", nil))
        add(ts.parse("go", {}))
        add(ts.language("cobol"))
        add(ts.query(5, "(x)"))
        add(ts.parse("go", "package a"):root_node():text(12))
        return out
    """)
    assert [r[:2] for r in res] == [[True, "INVALID"]] * 7
    assert res[0][2].startswith('treesitter.parse: unsupported language "cobol" (supported: c#, cs, csharp, go,')
    assert res[1][2] == "treesitter.parse: language must be a string, got nil"
    assert res[2][2] == "treesitter.parse: code must be a string, got nil"
    assert res[3][2] == "treesitter.parse: code must be a string, got table"
    assert res[6][2] == "treesitter: node:text: source must be a string, got number"


async def test_binary_and_non_utf8_code_round_trips() -> None:
    res = await value("""
        local code = "x = '\\xff\\xfecaf\\xc3\\xa9'\\n"
        local tree = assert(ts.parse("python", code))
        local root = tree:root_node()
        local str = root:child(0):child(0):child_by_field_name("right")
        return {root:text() == code, root:end_byte() == #code, str:kind(), str:text() == string.sub(code, 5, -2)}
    """)
    assert res == [True, True, "string", True]


code_chars = st.sampled_from([
    *"abcxyz019_ =+-*/()[]{}:;,.'\"#\n\t \\", "def ", "local ", "function ", "end", "return ", "if ", "then", "else",
    "for ", "in ", "--", "[[", "]]", "é", "\x00", "\ufffd", "lambda", "class ", "=="])


@settings(max_examples=60, deadline=None)
@given(lang=st.sampled_from(["python", "lua"]), source=st.lists(code_chars, max_size=40).map("".join))
async def test_parse_never_crashes_and_root_text_is_the_source(lang: str, source: str) -> None:
    res = await value("""
        local lang, code = ...
        local tree, err = ts.parse(lang, code)
        if err then return {err = err:message()} end
        local root = tree:root_node()
        local s, e = root:start_byte(), root:end_byte()
        -- the root spans the code minus leading whitespace; leaves tile it in order
        local named, last, ordered = 0, s, true
        local function walk(n)
            if n:is_named() and not n:is_error() then named = named + 1 end
            if n:child_count() == 0 then
                if n:start_byte() < last then ordered = false end
                last = n:end_byte()
            end
            for i = 0, n:child_count() - 1 do walk(n:child(i)) end
        end
        walk(root)
        local q = ts.query(lang, "(_) @any") -- every named node but ERROR ones
        return {text = root:text() == string.sub(code, s + 1),
                prefix_blank = string.find(string.sub(code, 1, s), "^%s*$") ~= nil,
                ends = e == #code, ordered = ordered and last <= e, sexp = type(root:to_sexp()),
                captures = #q:captures(root, code) == named}
    """, lang, source)
    assert res == {"text": True, "prefix_blank": True, "ends": True, "ordered": True, "sexp": "string",
                   "captures": True}


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=64))
async def test_arbitrary_bytes_parse_and_round_trip(data: bytes) -> None:
    res = await value("""
        local code = ...
        local root = assert(ts.parse("lua", code)):root_node()
        return root:text() == string.sub(code, root:start_byte() + 1) and root:end_byte() == #code
    """, data)
    assert res is True
