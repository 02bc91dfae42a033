"""`text`: regular expressions, diffs and patches, text splitters (the Lua side is lua/text.lua).

    text.regexp.compile(pattern) -> Regexp, err      RE2 syntax (google-re2), Go's regexp API;
                                                     err INVALID for a bad pattern
      re:match_string(s) -> bool                      re:find_string(s) -> string|nil (nil also for an
      re:find_all_string(s, n?) -> {string}           empty match, as Wippy does)
      re:find_string_submatch(s) -> {whole, g1, ...}|nil   (a group that did not take part: "")
      re:find_all_string_submatch(s) -> {{...}}       re:find_string_index(s) -> {start, end}|nil
      re:find_all_string_index(s) -> {{start, end}}|nil    indices are 1-based byte positions,
                                                     end inclusive: s:sub(start, end) is the match
      re:replace_all_string(s, repl) -> string        $1 ${1} $name ${name} $$ as in Go
      re:split(s, n?) -> {string}                     n < 0 (default): all parts
      re:num_subexp() -> int   re:subexp_names() -> {"", name|"", ...}   re:string() -> pattern
    text.diff.new(options?) -> Differ, err           diff-match-patch; options diff_timeout (seconds,
                                                     1.0), diff_edit_cost (4), match_threshold (0.5),
                                                     match_distance (1000), patch_delete_threshold
                                                     (0.5), patch_margin (4)
      d:compare(a, b) -> {{operation = "equal"|"delete"|"insert", text}}, err
      d:summarize(diffs) -> {insertions, deletions, equals}   (bytes, as Wippy counts)
      d:pretty_text(diffs) -> string, err (ANSI colours)   d:pretty_html(diffs) -> string, err
      d:patch_make(a, b) -> {{text = patch}}, err     d:patch_apply(patches, s) -> string, all_applied
    text.splitter.recursive{chunk_size = 512, chunk_overlap = 100, separators?, keep_separator?}
    text.splitter.markdown{chunk_size, chunk_overlap, code_blocks?, reference_links?, heading_hierarchy?,
                           join_table_rows?, separators?}   -> Splitter, err
      sp:split_text(s) -> {string}, err
      sp:split_batch({{content, metadata?}}) -> {{content, metadata}}, err  (chunks share their page's
                                                                            metadata table)

Methods that return no error value raise an INVALID error for arguments of the wrong type.
"""

from __future__ import annotations

import html
import math
from typing import Any

from diff_match_patch import diff_match_patch  # type: ignore[import-untyped]

from ._binary import guard_all
from ._host import LuaHost, register_module
from ._text_regexp import GoRegexp, RegexpError
from ._text_splitter import DEFAULT_SEPARATORS, MarkdownSplitter, RecursiveSplitter
from ._vm import _source

_OPS = {0: "equal", -1: "delete", 1: "insert"}
_OP_CODES = {v: k for k, v in _OPS.items()}


class _BadInput(Exception):
    pass


def _bytes(s: str) -> bytes:
    return s.encode("utf-8", "surrogatepass")


def _count(n: Any, where: str) -> int:
    if n is None:
        return -1
    if isinstance(n, float) and n.is_integer():
        return int(n)
    if isinstance(n, int) and not isinstance(n, bool):
        return n
    raise _BadInput(f"{where}: n must be an integer, got {n!r}")


def _options(vm: Any, value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    data = vm.from_lua(value)
    if data in ([], {}):
        return {}
    if not isinstance(data, dict):
        raise _BadInput(f"{where}: options must be a table of named fields, got {type(data).__name__}")
    return data


def _number(opts: dict[str, Any], key: str, where: str, *, low: float = 0.0, high: float = math.inf,
            integer: bool = False) -> Any:
    v = opts.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise _BadInput(f"{where}: {key} must be a number, got {v!r}")
    if integer and not float(v).is_integer():
        raise _BadInput(f"{where}: {key} must be an integer, got {v}")
    if not low <= v <= high:
        bound = f"between {low:g} and {high:g}" if high != math.inf else f"at least {low:g}"
        raise _BadInput(f"{where}: {key} must be {bound}, got {v}")
    return int(v) if integer else float(v)


def _flag(opts: dict[str, Any], key: str, where: str) -> bool:
    v = opts.get(key, False)
    if not isinstance(v, bool):
        raise _BadInput(f"{where}: {key} must be true or false, got {v!r}")
    return v


def _separators(opts: dict[str, Any], where: str) -> tuple[str, ...] | None:
    v = opts.get("separators")
    if v is None or v in ({}, []):
        return None
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise _BadInput(f"{where}: separators must be a list of strings")
    return tuple(v)


def _splitter(kind: str, opts: dict[str, Any]) -> RecursiveSplitter | MarkdownSplitter:
    where = f"text.splitter.{kind}"
    size = _number(opts, "chunk_size", where, low=1, integer=True) or 512
    overlap = _number(opts, "chunk_overlap", where, integer=True)
    overlap = 100 if overlap is None else overlap
    if overlap > size:
        raise _BadInput(f"{where}: chunk_overlap ({overlap}) must not exceed chunk_size ({size})")
    separators = _separators(opts, where)
    if kind == "recursive":
        return RecursiveSplitter(chunk_size=size, chunk_overlap=overlap, separators=separators or DEFAULT_SEPARATORS,
                                 keep_separator=_flag(opts, "keep_separator", where))
    return MarkdownSplitter(
        chunk_size=size, chunk_overlap=overlap, code_blocks=_flag(opts, "code_blocks", where),
        reference_links=_flag(opts, "reference_links", where),
        heading_hierarchy=_flag(opts, "heading_hierarchy", where),
        join_table_rows=_flag(opts, "join_table_rows", where), **({"separators": separators} if separators else {}),
    )


def _differ(opts: dict[str, Any]) -> Any:
    where = "text.diff.new"
    dmp = diff_match_patch()
    settings = {
        "Diff_Timeout": _number(opts, "diff_timeout", where),
        "Diff_EditCost": _number(opts, "diff_edit_cost", where, low=1, integer=True),
        "Match_Threshold": _number(opts, "match_threshold", where, high=1.0),
        "Match_Distance": _number(opts, "match_distance", where, integer=True),
        "Patch_DeleteThreshold": _number(opts, "patch_delete_threshold", where, high=1.0),
        "Patch_Margin": _number(opts, "patch_margin", where, low=1, integer=True),
    }
    for attr, value in settings.items():
        if value is not None:
            setattr(dmp, attr, value)
    return dmp


def _diffs(vm: Any, value: Any, where: str) -> list[tuple[int, str]]:
    data = vm.from_lua(value)
    if data == {}:
        return []
    if not isinstance(data, list):
        raise _BadInput(f"{where}: diffs must be a list of {{operation, text}} tables")
    out = []
    for i, d in enumerate(data, 1):
        op = d.get("operation") if isinstance(d, dict) else None
        text = d.get("text") if isinstance(d, dict) else None
        if op not in _OP_CODES or not isinstance(text, str):
            raise _BadInput(f'{where}: diff {i} must be {{operation = "equal"|"delete"|"insert", text = string}}')
        out.append((_OP_CODES[op], text))
    return out


def _pretty_text(diffs: list[tuple[int, str]]) -> str:
    colour = {1: "\x1b[32m", -1: "\x1b[31m"}
    return "".join(f"{colour[op]}{text}\x1b[0m" if op else text for op, text in diffs)


def _pretty_html(diffs: list[tuple[int, str]]) -> str:
    tags = {1: ('<ins style="background:#e6ffe6;">', "</ins>"), -1: ('<del style="background:#ffe6e6;">', "</del>"),
            0: ("<span>", "</span>")}
    out = []
    for op, text in diffs:
        body = html.escape(text).replace("&#x27;", "&#39;").replace("&quot;", "&#34;").replace("\n", "&para;<br>")
        out.append(tags[op][0] + body + tags[op][1])
    return "".join(out)


def _groups(data: bytes, spans: list[tuple[int, int]]) -> list[bytes]:
    return [data[a:b] if a >= 0 else b"" for a, b in spans]


class _Regexps:
    """The bridge functions of text.Regexp (subjects arrive as str, work on their UTF-8 bytes)."""

    def __init__(self, vm: Any) -> None:
        self.vm = vm

    def compile(self, pattern: str) -> Any:
        try:
            return GoRegexp(pattern), None
        except RegexpError as exc:
            return None, self.vm.error("INVALID", f"text.regexp.compile: {exc}")

    def match(self, r: GoRegexp, s: str) -> Any:
        return r.matches(_bytes(s)), None

    def find(self, r: GoRegexp, s: str) -> Any:
        data = _bytes(s)
        spans = r.first(data)
        if spans is None or spans[0][0] == spans[0][1]:
            return None, None
        return data[spans[0][0] : spans[0][1]], None

    def find_submatch(self, r: GoRegexp, s: str) -> Any:
        data = _bytes(s)
        spans = r.first(data)
        return (None if spans is None else self.vm.to_lua(_groups(data, spans))), None

    def find_index(self, r: GoRegexp, s: str) -> Any:
        spans = r.first(_bytes(s))
        return (None if spans is None else self.vm.to_lua([spans[0][0] + 1, spans[0][1]])), None

    def find_all(self, r: GoRegexp, s: str, n: Any = None) -> Any:
        try:
            limit = _count(n, "text.Regexp:find_all_string")
        except _BadInput as exc:
            return None, self.vm.error("INVALID", str(exc))
        data = _bytes(s)
        return self.vm.to_lua([data[sp[0][0] : sp[0][1]] for sp in r.all(data, limit)]), None

    def find_all_submatch(self, r: GoRegexp, s: str) -> Any:
        data = _bytes(s)
        return self.vm.to_lua([_groups(data, sp) for sp in r.all(data)]), None

    def find_all_index(self, r: GoRegexp, s: str) -> Any:
        found = [[sp[0][0] + 1, sp[0][1]] for sp in r.all(_bytes(s))]
        return (self.vm.to_lua(found) if found else None), None

    def replace_all(self, r: GoRegexp, s: str, repl: str) -> Any:
        return r.replace_all(_bytes(s), r.template(repl)), None

    def split(self, r: GoRegexp, s: str, n: Any = None) -> Any:
        try:
            limit = _count(n, "text.Regexp:split")
        except _BadInput as exc:
            return None, self.vm.error("INVALID", str(exc))
        return self.vm.to_lua(r.split(_bytes(s), limit)), None

    def bridge(self) -> dict[str, Any]:
        return {
            "re_compile": self.compile, "re_match": self.match, "re_find": self.find,
            "re_find_submatch": self.find_submatch, "re_find_index": self.find_index, "re_find_all": self.find_all,
            "re_find_all_submatch": self.find_all_submatch, "re_find_all_index": self.find_all_index,
            "re_replace_all": self.replace_all, "re_split": self.split,
            "re_num_subexp": lambda r: r.groups, "re_subexp_names": lambda r: self.vm.to_lua(r.names),
            "re_string": lambda r: r.source,
        }


class _Diffs:
    """The bridge functions of text.Differ (a diff_match_patch instance each)."""

    def __init__(self, vm: Any) -> None:
        self.vm = vm

    def new(self, options: Any = None) -> Any:
        try:
            return _differ(_options(self.vm, options, "text.diff.new")), None
        except _BadInput as exc:
            return None, self.vm.error("INVALID", str(exc))

    def compare(self, d: Any, a: str, b: str) -> Any:
        diffs = d.diff_main(a, b, False)
        return self.vm.to_lua([{"operation": _OPS[op], "text": text} for op, text in diffs]), None

    def summarize(self, d: Any, diffs: Any) -> Any:
        try:
            parsed = _diffs(self.vm, diffs, "text.Differ:summarize")
        except _BadInput as exc:
            return None, self.vm.error("INVALID", str(exc))
        totals = {"insertions": 0, "deletions": 0, "equals": 0}
        names = {1: "insertions", -1: "deletions", 0: "equals"}
        for op, text in parsed:
            totals[names[op]] += len(_bytes(text))
        return self.vm.to_lua(totals), None

    def pretty(self, render: Any, where: str) -> Any:
        def pretty(d: Any, diffs: Any) -> Any:
            try:
                return render(_diffs(self.vm, diffs, where)), None
            except _BadInput as exc:
                return None, self.vm.error("INVALID", str(exc))

        return pretty

    def patch_make(self, d: Any, a: str, b: str) -> Any:
        return self.vm.to_lua([{"text": str(p)} for p in d.patch_make(a, b)]), None

    def patch_apply(self, d: Any, patches: Any, text: str) -> Any:
        data = self.vm.from_lua(patches)
        if data == {}:
            data = []
        if not isinstance(data, list):
            return None, None, self.vm.error("INVALID", "text.Differ:patch_apply: patches must be a list of {text}")
        parsed, all_valid = [], True
        for p in data:
            body = p.get("text") if isinstance(p, dict) else None
            if not isinstance(body, str):
                all_valid = False
                continue
            try:
                parsed.extend(d.patch_fromText(body))
            except ValueError:  # not a patch: it cannot apply
                all_valid = False
        result, applied = d.patch_apply(parsed, text)
        return result, all_valid and all(applied), None

    def bridge(self) -> dict[str, Any]:
        return {
            "diff_new": self.new, "diff_compare": self.compare, "diff_summarize": self.summarize,
            "diff_pretty_text": self.pretty(_pretty_text, "text.Differ:pretty_text"),
            "diff_pretty_html": self.pretty(_pretty_html, "text.Differ:pretty_html"),
            "diff_patch_make": self.patch_make, "diff_patch_apply": self.patch_apply,
        }


def _build(host: LuaHost) -> Any:
    vm = host.vm

    def splitter_new(kind: str, options: Any = None) -> Any:
        try:
            return _splitter(kind, _options(vm, options, f"text.splitter.{kind}")), None
        except _BadInput as exc:
            return None, vm.error("INVALID", str(exc))

    def split_text(sp: RecursiveSplitter | MarkdownSplitter, s: str) -> Any:
        try:
            return vm.to_lua(sp.split_text(s)), None
        except RecursionError:
            return None, vm.error("INTERNAL", "text.Splitter:split_text: the text is nested too deeply")

    funcs = {**_Regexps(vm).bridge(), **_Diffs(vm).bridge(), "splitter_new": splitter_new, "split_text": split_text}
    bridge = vm.rt.table_from(guard_all(host, funcs, "text", positions={"diff_patch_apply": 3}))
    return vm.rt.execute(_source("text.lua"), bridge, vm.errors, host.readonly)


register_module("text", _build)
