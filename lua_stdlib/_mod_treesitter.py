"""`treesitter`: source code to concrete syntax trees with tree-sitter (the Lua side is lua/treesitter.lua).

    treesitter.supported_languages() -> {go = true, golang = true, js = true, ...}   names and aliases
    treesitter.parse(lang, code) -> Tree, err
    treesitter.parser() -> Parser   :set_language(lang) -> true | false, err  :get_language() -> name
        :parse(code, old_tree?) -> Tree, err  :set_timeout(ns | "1s") -> true | false, err
        :set_ranges({{start_byte, end_byte, start_point, end_point}, ...}) -> true | false, err
        :reset()  :close()
    treesitter.language(lang) -> Language, err   :name() :version() :node_kind_count() :field_count()
        :parse_state_count() :node_kind_for_id(id) :id_for_node_kind(kind, named) :node_kind_is_named(id)
        :node_kind_is_visible(id) :field_name_for_id(id) :field_id_for_name(name)
    treesitter.query(lang, pattern) -> Query, err (INVALID naming line and column of a bad pattern)
    Tree   :root_node() :root_node_with_offset(bytes, point) :language() :copy() :walk() :edit(edit)
           :changed_ranges(other) :included_ranges() :dot_graph() :close()
    Node   :kind() :type() :grammar_name() :is_named() :is_extra() :is_missing() :is_error() :has_error()
           :has_changes() :id() :kind_id() :grammar_id() :parse_state() :next_parse_state()
           :child(i) :named_child(i) :child_count() :named_child_count() :children() :named_children()
           :parent() :next_sibling() :prev_sibling() :next_named_sibling() :prev_named_sibling()
           :child_by_field_name(f) :child_by_field_id(id) :children_by_field_name(f) :field_name_for_child(i)
           :field_name_for_named_child(i) :child_with_descendant(n) :first_child_for_byte(b)
           :first_named_child_for_byte(b) :descendant_count() :descendant_for_byte_range(s, e)
           :named_descendant_for_byte_range(s, e) :descendant_for_point_range(p, q)
           :named_descendant_for_point_range(p, q) :start_byte() :end_byte() :byte_range() :range()
           :start_point() :end_point() :text(src?) :to_sexp() :walk() :equals(n) (and ==)
    Cursor :current_node() :current_depth() :current_field_name() :current_field_id()
           :current_descendant_index() :goto_parent() :goto_first_child() :goto_last_child()
           :goto_next_sibling() :goto_previous_sibling() :goto_descendant(i) :goto_first_child_for_byte(b)
           :goto_first_child_for_point(p) :reset(node) :reset_to(cursor) :copy() :close()
    Query  :captures(node, src?) -> {{name, text, index, node}, ...} in document order
           :matches(node, src?) -> {{id, pattern, captures = {{name, text, index, node}, ...}}, ...}
           :pattern_count() :capture_count() :string_count() :capture_name_for_id(id)
           :capture_index_for_name(name) :capture_quantifier(pattern, capture) :start_byte_for_pattern(i)
           :end_byte_for_pattern(i) :is_pattern_rooted(i) :is_pattern_non_local(i)
           :is_pattern_guaranteed_at_step(i) :set_byte_range(s, e) :set_point_range(p, q)
           :set_match_limit(n) :get_match_limit() :did_exceed_match_limit() :set_max_start_depth(n)
           :disable_pattern(i) :disable_capture(name) :close()
           :set_timeout(d) -> false, UNAVAILABLE (py-tree-sitter cannot interrupt a query safely)

Indexes are 0-based and points are ``{row = r, column = c}`` (0-based, columns in bytes), as in
Wippy. Code is bytes: any Lua string parses, and ``node:text()`` slices the code exactly.
Predicates (#eq?, #not-eq?, #match?, #any-of?, ...) are evaluated by py-tree-sitter against the
code the tree was parsed from, so a query with text predicates on a tree edited but not parsed
again is refused (INVALID), as is #match? on text that is not UTF-8. A cursor stays on its tree
(reset to a node of another tree is INVALID). Using anything of a closed tree gives nil, INVALID.
Grammars come from the per-language PyPI packages (tree-sitter-go, ...), imported on first use.

py-tree-sitter 0.26 pitfalls avoided here: ``TreeCursor.copy`` and a query ``progress_callback``
crash the interpreter (uninitialised field; dangling options), so cursors are copied with
``reset_to`` and queries cannot time out; a parse halted by its progress callback must be
followed by ``Parser.reset``.
"""

from __future__ import annotations

import functools
import importlib
import re
import tempfile
import time
import weakref
from collections.abc import Callable
from typing import Any

import tree_sitter as ts

from ._durations import parse_go_duration
from ._host import LuaHost, register_module
from ._vm import LuaVM, _source

#: canonical name -> (module, function returning the grammar)
_GRAMMARS: dict[str, tuple[str, str]] = {
    "go": ("tree_sitter_go", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "python": ("tree_sitter_python", "language"),
    "lua": ("tree_sitter_lua", "language"),
    "php": ("tree_sitter_php", "language_php"),
    "csharp": ("tree_sitter_c_sharp", "language"),
    "html": ("tree_sitter_html", "language"),
    "markdown": ("tree_sitter_markdown", "language"),
    "sql": ("tree_sitter_sql", "language"),
}

#: every name Wippy accepts -> canonical name
ALIASES: dict[str, str] = {
    **{name: name for name in _GRAMMARS},
    "golang": "go", "js": "javascript", "ts": "typescript", "py": "python", "cs": "csharp", "c#": "csharp",
    "html5": "html", "md": "markdown",
}

_U32 = 0xFFFFFFFF
_CHUNK = 64 * 1024
_AT = re.compile(r"\s*at row (\d+)(?:, column (\d+))?:?\s*")
_TEXT_PREDICATE = re.compile(r"#(?:not-)?(?:any-)?(?:not-)?(?:eq|match|any-of)\?")


@functools.cache
def language(name: str) -> ts.Language:
    """The grammar of a canonical language name."""
    module, func = _GRAMMARS[name]
    return ts.Language(getattr(importlib.import_module(module), func)())


def _query_error(lang: str, exc: Exception) -> tuple[str, dict[str, int]]:
    """A query compile error as a message with 1-based line/column, and those as details."""
    text = str(exc)
    found = _AT.search(text)
    if found is None:
        return f"treesitter.query: invalid {lang} query: {text}", {}
    what = text[:found.start()].strip() or "invalid query"
    where = {"line": int(found[1]) + 1}
    place = f"line {where['line']}"
    if found[2] is not None:
        where["column"] = int(found[2]) + 1
        place += f", column {where['column']}"
    rest = text[found.end():].strip()
    return f"treesitter.query: {what[0].lower()}{what[1:]} in {lang} query at {place}" + (
        f": {rest}" if rest else ""), where


class _TreeBox:
    """A parsed tree; ``tree`` is None once closed. Weakly referenced, so hosts can count live trees."""

    __slots__ = ("__weakref__", "lang", "tree")

    def __init__(self, tree: ts.Tree, lang: str) -> None:
        self.tree: ts.Tree | None = tree
        self.lang = lang


def _within(n: int, count: int) -> bool:
    return 0 <= n < count


def _u32(*values: int) -> bool:
    return all(0 <= v <= _U32 for v in values)


def _node_ops() -> dict[str, Callable[..., Any]]:
    """Node methods that map straight onto py-tree-sitter (the Lua side wraps nodes and points)."""
    return {
        "kind": lambda n: n.type,
        "grammar_name": lambda n: n.grammar_name,
        "is_named": lambda n: n.is_named,
        "is_extra": lambda n: n.is_extra,
        "is_missing": lambda n: n.is_missing,
        "is_error": lambda n: n.is_error,
        "has_error": lambda n: n.has_error,
        "has_changes": lambda n: n.has_changes,
        "id": lambda n: n.id,
        "kind_id": lambda n: n.kind_id,
        "grammar_id": lambda n: n.grammar_id,
        "parse_state": lambda n: n.parse_state,
        "next_parse_state": lambda n: n.next_parse_state,
        "start_byte": lambda n: n.start_byte,
        "end_byte": lambda n: n.end_byte,
        "byte_range": lambda n: (n.start_byte, n.end_byte),
        "start_point": lambda n: tuple(n.start_point),
        "end_point": lambda n: tuple(n.end_point),
        "child_count": lambda n: n.child_count,
        "named_child_count": lambda n: n.named_child_count,
        "descendant_count": lambda n: n.descendant_count,
        "to_sexp": str,
        "parent": lambda n: n.parent,
        "next_sibling": lambda n: n.next_sibling,
        "prev_sibling": lambda n: n.prev_sibling,
        "next_named_sibling": lambda n: n.next_named_sibling,
        "prev_named_sibling": lambda n: n.prev_named_sibling,
        "child": lambda n, i: n.child(i) if _within(i, n.child_count) else None,
        "named_child": lambda n, i: n.named_child(i) if _within(i, n.named_child_count) else None,
        "field_name_for_child": lambda n, i: n.field_name_for_child(i) if _within(i, n.child_count) else None,
        "field_name_for_named_child": (
            lambda n, i: n.field_name_for_named_child(i) if _within(i, n.named_child_count) else None),
        "child_by_field_name": lambda n, f: n.child_by_field_name(f),
        "child_by_field_id": lambda n, i: n.child_by_field_id(i) if 0 < i <= 0xFFFF else None,
        "children_by_field_name": lambda n, f: n.children_by_field_name(f),
        "children_by_field_id": lambda n, i: n.children_by_field_id(i) if 0 < i <= 0xFFFF else [],
        "children": lambda n: n.children,
        "named_children": lambda n: n.named_children,
        "child_with_descendant": lambda n, d: n.child_with_descendant(d),
        "first_child_for_byte": lambda n, b: n.first_child_for_byte(b) if _u32(b) else None,
        "first_named_child_for_byte": lambda n, b: n.first_named_child_for_byte(b) if _u32(b) else None,
        "descendant_for_byte_range": lambda n, s, e: n.descendant_for_byte_range(s, e) if _u32(s, e) else None,
        "named_descendant_for_byte_range": (
            lambda n, s, e: n.named_descendant_for_byte_range(s, e) if _u32(s, e) else None),
        "descendant_for_point_range": (
            lambda n, r1, c1, r2, c2: n.descendant_for_point_range((r1, c1), (r2, c2))
            if _u32(r1, c1, r2, c2) else None),
        "named_descendant_for_point_range": (
            lambda n, r1, c1, r2, c2: n.named_descendant_for_point_range((r1, c1), (r2, c2))
            if _u32(r1, c1, r2, c2) else None),
        "walk": lambda n: n.walk(),
        "equals": lambda a, b: a == b,
    }


def _cursor_ops() -> dict[str, Callable[..., Any]]:
    return {
        "node": lambda c: c.node,
        "depth": lambda c: c.depth,
        "field_name": lambda c: c.field_name,
        "field_id": lambda c: c.field_id or 0,
        "descendant_index": lambda c: c.descendant_index,
        "goto_parent": lambda c: c.goto_parent(),
        "goto_first_child": lambda c: c.goto_first_child(),
        "goto_last_child": lambda c: c.goto_last_child(),
        "goto_next_sibling": lambda c: c.goto_next_sibling(),
        "goto_previous_sibling": lambda c: c.goto_previous_sibling(),
        "goto_descendant": lambda c, i: c.goto_descendant(i) if _u32(i) else None,
        "goto_first_child_for_byte": lambda c, b: c.goto_first_child_for_byte(b) if _u32(b) else None,
        "goto_first_child_for_point": (
            lambda c, r, col: c.goto_first_child_for_point((r, col)) if _u32(r, col) else None),
        "reset": lambda c, n: c.reset(n),
        "reset_to": lambda c, other: c.reset_to(other),
        "copy": _copy_cursor,
    }


def _copy_cursor(cursor: ts.TreeCursor) -> ts.TreeCursor:
    """A copy of a cursor, start node included. (py-tree-sitter's TreeCursor.copy leaves a field
    uninitialised and crashes the interpreter later; reset_to copies the same state safely.)"""
    copy = cursor.node.walk() if cursor.node is not None else cursor  # a cursor always has a node
    copy.reset_to(cursor)
    return copy


def _language_ops() -> dict[str, Callable[..., Any]]:
    return {
        "version": lambda lang: lang.abi_version,
        "node_kind_count": lambda lang: lang.node_kind_count,
        "parse_state_count": lambda lang: lang.parse_state_count,
        "field_count": lambda lang: lang.field_count,
        "node_kind_for_id": lambda lang, i: lang.node_kind_for_id(i) if 0 <= i <= 0xFFFF else None,
        "id_for_node_kind": lambda lang, kind, named: lang.id_for_node_kind(kind, named),
        "node_kind_is_named": lambda lang, i: 0 <= i <= 0xFFFF and lang.node_kind_is_named(i),
        "node_kind_is_visible": lambda lang, i: 0 <= i <= 0xFFFF and lang.node_kind_is_visible(i),
        "field_name_for_id": lambda lang, i: lang.field_name_for_id(i) if 0 < i <= 0xFFFF else None,
        "field_id_for_name": lambda lang, name: lang.field_id_for_name(name),
    }


def _query_ops() -> dict[str, Callable[..., Any]]:
    return {
        "pattern_count": lambda q: q.pattern_count,
        "capture_count": lambda q: q.capture_count,
        "string_count": lambda q: q.string_count,
        "capture_name": lambda q, i: q.capture_name(i) if _within(i, q.capture_count) else None,
        "capture_quantifier": (
            lambda q, p, c: q.capture_quantifier(p, c) if _within(p, q.pattern_count)
            and _within(c, q.capture_count) else None),
        "start_byte_for_pattern": lambda q, i: q.start_byte_for_pattern(i) if _within(i, q.pattern_count) else None,
        "end_byte_for_pattern": lambda q, i: q.end_byte_for_pattern(i) if _within(i, q.pattern_count) else None,
        "is_pattern_rooted": lambda q, i: _within(i, q.pattern_count) and q.is_pattern_rooted(i),
        "is_pattern_non_local": lambda q, i: _within(i, q.pattern_count) and q.is_pattern_non_local(i),
        "is_pattern_guaranteed_at_step": lambda q, i: _u32(i) and q.is_pattern_guaranteed_at_step(i),
        "disable_pattern": lambda q, i: q.disable_pattern(i) if _within(i, q.pattern_count) else None,
        "disable_capture": lambda q, name: q.disable_capture(name),
    }


def _as_table(rt: Any, op: Callable[..., list[Any]], *args: Any) -> Any:
    return rt.table_from(op(*args))


class TreeSitterBridge:
    """The Python half of the module for one Lua host: parsing, trees, queries."""

    def __init__(self, vm: LuaVM) -> None:
        self.vm = vm
        self._parsers: dict[str, ts.Parser] = {}
        #: trees handed to Lua and not yet closed or collected
        self.live_trees: weakref.WeakSet[_TreeBox] = weakref.WeakSet()

    def _error(self, kind: str, message: str, details: dict[str, int] | None = None) -> Any:
        return self.vm.error(kind, message, retryable=False, details=details)

    # -- parsing -----------------------------------------------------------------------------------
    def new_parser(self) -> ts.Parser:
        return ts.Parser()

    def set_parser_language(self, parser: ts.Parser, lang: str) -> None:
        parser.language = language(lang)

    def reset_parser(self, parser: ts.Parser) -> None:
        parser.reset()

    def set_ranges(self, parser: ts.Parser, flat: Any) -> Any:
        numbers = self.vm.from_lua(flat) or []
        if not numbers:
            del parser.included_ranges
            return True, None
        try:
            parser.included_ranges = [
                ts.Range((numbers[i + 2], numbers[i + 3]), (numbers[i + 4], numbers[i + 5]), numbers[i], numbers[i + 1])
                for i in range(0, len(numbers), 6)
            ]
        except (ValueError, OverflowError, TypeError) as exc:
            return False, self._error("INVALID", f"parser:set_ranges: {exc}")
        return True, None

    def parse(self, parser: ts.Parser | None, lang: str, code: str | bytes, latin1: bool,  # noqa: PLR0917 - called from Lua
              old: _TreeBox | None, timeout_ns: int) -> tuple[Any, Any]:
        """A new tree, or nil and an error; ``latin1``: code was widened from invalid UTF-8 (see the Lua side)."""
        data = code if isinstance(code, bytes) else code.encode("latin-1" if latin1 else "utf-8")
        if parser is None:
            parser = self._parsers.get(lang)
            if parser is None:
                parser = self._parsers[lang] = ts.Parser(language(lang))
        tree: ts.Tree | None
        try:
            if timeout_ns > 0:
                deadline = time.monotonic_ns() + timeout_ns
                tree = self._parse_until(parser, data, old, lambda _at, _err: time.monotonic_ns() > deadline)
            elif old is not None and old.tree is not None:
                tree = parser.parse(data, old.tree)
            else:
                tree = parser.parse(data)
        except ValueError:
            tree = None
        if tree is None:
            parser.reset()  # a halted parse would otherwise resume on the next call
            why = f"timed out after {timeout_ns / 1e9:g}s" if timeout_ns > 0 else "failed"
            return None, self._error("INTERNAL", f"treesitter: parsing {lang} code {why}")
        box = _TreeBox(tree, lang)
        self.live_trees.add(box)
        return box, None

    @staticmethod
    def _parse_until(parser: ts.Parser, data: bytes, old: _TreeBox | None,
                     halt: Callable[[int, bool], bool]) -> ts.Tree | None:
        """Parse in chunks so ``halt`` is asked between them (py-tree-sitter's only way to stop a parse)."""
        def read(at: int, _point: ts.Point) -> bytes:
            return data[at:at + _CHUNK]

        if old is not None and old.tree is not None:
            return parser.parse(read, old.tree, "utf8", halt)
        return parser.parse(read, encoding="utf8", progress_callback=halt)

    def parse_duration(self, text: str) -> tuple[int | None, str | None]:
        try:
            return parse_go_duration(str(text)), None
        except ValueError as exc:
            return None, str(exc)

    # -- trees -------------------------------------------------------------------------------------
    def tree_op(self, op: str, box: _TreeBox, *args: Any) -> Any:
        tree = box.tree
        if tree is None:
            return None
        if op == "root":
            return tree.root_node
        if op == "root_with_offset":
            return tree.root_node_with_offset(args[0], (args[1], args[2])) if _u32(*args) else None
        if op == "walk":
            return tree.walk()
        if op == "language":
            return tree.language
        if op == "copy":
            copy = _TreeBox(tree.copy(), box.lang)
            self.live_trees.add(copy)
            return copy
        if op == "edit":
            sb, oeb, neb, sr, sc, oer, oec, ner, nec = args
            tree.edit(start_byte=sb, old_end_byte=oeb, new_end_byte=neb, start_point=(sr, sc),
                      old_end_point=(oer, oec), new_end_point=(ner, nec))
            return True
        if op == "changed_ranges":
            other = args[0].tree
            return self._ranges(tree.changed_ranges(other) if other is not None else [])
        if op == "included_ranges":
            return self._ranges(tree.included_ranges)
        if op == "dot_graph":
            with tempfile.TemporaryFile("w+", encoding="utf-8") as out:
                tree.print_dot_graph(out)
                out.seek(0)
                return out.read()
        if op == "close":
            box.tree = None
            self.live_trees.discard(box)
            return True
        raise ValueError(f"unknown tree operation {op!r}")

    def _ranges(self, ranges: list[ts.Range]) -> Any:
        flat: list[int] = []
        for r in ranges:
            flat += [r.start_byte, r.end_byte, *r.start_point, *r.end_point]
        return self.vm.rt.table_from(flat)

    # -- queries -----------------------------------------------------------------------------------
    def new_query(self, lang: str, pattern: str) -> tuple[Any, Any, bool]:
        """A compiled query, or nil and an error; and whether it has text predicates (#eq?, ...),
        which py-tree-sitter checks against the parsed source (gone once a tree is edited)."""
        try:
            query = ts.Query(language(lang), pattern)
        except ValueError as exc:  # QueryError is a ValueError
            message, where = _query_error(lang, exc)
            return None, self._error("INVALID", message, where or None), False
        return query, None, _TEXT_PREDICATE.search(pattern) is not None

    def run_query(self, query: ts.Query, node: ts.Node, captures_mode: bool, *limits: int) -> tuple[Any, Any]:
        """Matches or captures as a flat Lua array (the Lua side builds the records), and whether
        the match limit was hit; or nil and an error. ``limits``: match_limit, max_start_depth,
        start_byte, end_byte, start_row, start_column, end_row, end_column; -1 when unset."""
        ml, depth, sb, eb, sr, sc, er, ec = limits
        cursor = ts.QueryCursor(query, match_limit=ml if 0 < ml <= _U32 else _U32)
        if 0 <= depth <= _U32:
            cursor.set_max_start_depth(depth)
        if sb >= 0 and _u32(sb, eb):
            cursor.set_byte_range(sb, eb)
        if sr >= 0 and _u32(sr, sc, er, ec):
            cursor.set_point_range((sr, sc), (er, ec))
        try:
            found = cursor.matches(node)
        except (SystemError, UnicodeDecodeError):  # #match? on bytes that are not UTF-8
            return None, self._error("INVALID", "treesitter: query: a text predicate met text that is not valid UTF-8")
        index = {query.capture_name(i): i for i in range(query.capture_count)}
        flat: list[Any] = []
        if captures_mode:
            items = [
                (n.start_byte, -n.end_byte, pattern, seq, index[name], name, n)
                for seq, (pattern, caps) in enumerate(found)
                for name, nodes in caps.items() for n in nodes
            ]
            items.sort(key=lambda item: item[:5])
            for sb_, neg_eb, _pattern, _seq, idx, name, n in items:
                flat += [name, idx, sb_, -neg_eb, n]
        else:
            for pattern, caps in found:
                caps_sorted = sorted(
                    ((n.start_byte, -n.end_byte, index[name], name, n) for name, nodes in caps.items() for n in nodes),
                    key=lambda item: item[:3])
                flat += [pattern, len(caps_sorted)]
                for sb_, neg_eb, idx, name, n in caps_sorted:
                    flat += [name, idx, sb_, -neg_eb, n]
        return self.vm.rt.table_from(flat), bool(cursor.did_exceed_match_limit)

    # -- the Lua-facing table ----------------------------------------------------------------------
    def lua_table(self) -> Any:
        rt = self.vm.rt
        node_ops = _node_ops()
        for name in ("children", "named_children", "children_by_field_name", "children_by_field_id"):
            node_ops[name] = functools.partial(_as_table, rt, node_ops[name])
        return rt.table_from({
            "new_parser": self.new_parser, "set_parser_language": self.set_parser_language,
            "reset_parser": self.reset_parser, "set_ranges": self.set_ranges, "parse": self.parse,
            "parse_duration": self.parse_duration, "tree_op": self.tree_op, "language": language,
            "new_query": self.new_query, "run_query": self.run_query,
            "node": rt.table_from(node_ops), "cursor": rt.table_from(_cursor_ops()),
            "lang": rt.table_from(_language_ops()), "query": rt.table_from(_query_ops()),
            "aliases": rt.table_from(ALIASES), "grammars": rt.table_from(list(_GRAMMARS)),
        })


def _build(host: LuaHost) -> Any:
    bridge = TreeSitterBridge(host.vm)
    host.extras["treesitter"] = bridge
    return host.vm.rt.execute(_source("treesitter.lua"), host.vm.errors, bridge.lua_table())


register_module("treesitter", _build)
