"""The `text` module: RE2 regexps with Go's API, diff-match-patch diffs/patches, text splitters."""

from __future__ import annotations

import re
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from wippy.lua_stdlib._text_splitter import MarkdownSplitter, RecursiveSplitter

from .helpers import fn, run_entry


async def run(body: str, *args: object) -> tuple[bool, tuple[object, ...]]:
    entry = fn("app:t", "local text = require('text')\nreturn { call = function(...) " + body + " end }",
               modules=["text"])
    return await run_entry(entry, args=args)


async def ok_result(body: str, *args: object) -> object:
    ok, res = await run(body, *args)
    assert ok, res
    return res[0]


# -- regexp ------------------------------------------------------------------------------------

async def test_regexp_documented_methods() -> None:
    got = await ok_result("""
        local re, err = text.regexp.compile("([a-z]+)@([a-z]+\\\\.[a-z]+)")
        assert(err == nil)
        local digits = text.regexp.compile("[0-9]+")
        local page = text.regexp.compile("page\\\\d+")
        local content = "The page1 here"
        local idx = page:find_string_index(content)
        return {
            digits:match_string("abc123"), digits:match_string("abc"),
            digits:find_string("abc123def"), digits:find_string("abc") == nil,
            digits:find_all_string("a1b2c3"),
            re:find_string_submatch("user@example.com"), re:find_string_submatch("nope") == nil,
            text.regexp.compile("(\\\\w)=(\\\\d)"):find_all_string_submatch("a=1 b=2"),
            idx, content:sub(idx[1], idx[2]),
            digits:find_all_string_index("a1b22c333"), digits:find_all_string_index("abc") == nil,
            digits:replace_all_string("a1b2", "X"),
            text.regexp.compile(","):split("a,b,c", -1),
            re:num_subexp(), re:string(),
        }
    """)
    assert got == [
        True, False, "123", True, ["1", "2", "3"],
        ["user@example.com", "user", "example.com"], True, [["a=1", "a", "1"], ["b=2", "b", "2"]],
        [5, 9], "page1", [[2, 2], [4, 5], [7, 9]], True, "aXbX", ["a", "b", "c"],
        2, "([a-z]+)@([a-z]+\\.[a-z]+)",
    ]


async def test_regexp_go_semantics_for_empty_matches_and_groups() -> None:
    got = await ok_result("""
        local a = text.regexp.compile("a*")
        local named = text.regexp.compile("(?P<key>\\\\w+)=(\\\\w+)|(?<alt>x)")
        return {
            a:find_all_string("baaac"),          -- Go: the empty match right after "aaa" is skipped
            a:find_string("baaac") == nil,       -- an empty leftmost match reads as no match (Wippy)
            a:find_all_string("baaac", 2),
            a:replace_all_string("baaac", "<$0>"),
            named:subexp_names(), named:num_subexp(),
            named:find_string_submatch("k=v"),   -- groups that did not take part are ""
        }
    """)
    assert got == [
        ["", "aaa", ""], True, ["", "aaa"], "<>b<aaa>c<>",
        ["", "key", "", "alt"], 3, ["k=v", "k", "v", ""],
    ]


async def test_replace_all_expands_like_go() -> None:
    # Go's documented ReplaceAllString example, plus named groups and malformed references
    got = await ok_result("""
        local re = text.regexp.compile("a(x*)b")
        local kv = text.regexp.compile("(?P<k>\\\\w+)=(?P<v>\\\\w+)")
        return {
            re:replace_all_string("-ab-axxb-", "T"),
            re:replace_all_string("-ab-axxb-", "$1"),
            re:replace_all_string("-ab-axxb-", "$1W"),
            re:replace_all_string("-ab-axxb-", "${1}W"),
            kv:replace_all_string("a=1 b=2", "$v:$k"),
            kv:replace_all_string("a=1", "${v}$$ ${nope}$"),
            kv:replace_all_string("a=1", "$ ${} $9"),
        }
    """)
    assert got == ["-T-T-", "--xx-", "---", "-W-xxW-", "1:a 2:b", "1$ $", "$ ${} "]


async def test_split_follows_go() -> None:
    # Go's documented Regexp.Split examples
    got = await ok_result("""
        local a = text.regexp.compile("a*")
        local z = text.regexp.compile("z+")
        return {
            a:split("abaabaccadaaae", 5),
            z:split("pizza", -1), z:split("pizza", 0), z:split("pizza", 1), z:split("pizza", 2),
            z:split("pizza"), z:split("", -1),
        }
    """)
    assert got == [["", "b", "b", "c", "cadaaae"], ["pi", "a"], {}, ["pizza"], ["pi", "a"], ["pi", "a"], [""]]


async def test_indices_are_byte_positions_for_lua_strings() -> None:
    got = await ok_result("""
        local s = "héllo wörld"
        local re = text.regexp.compile("w.r")
        local idx = re:find_string_index(s)
        local all = text.regexp.compile("[^ ]+"):find_all_string_index(s)
        return {idx, s:sub(idx[1], idx[2]), all, s:sub(all[2][1], all[2][2]),
                text.regexp.compile("."):find_all_string("日本"), text.regexp.compile("x*"):split("日本", -1)}
    """)
    assert got == [[8, 11], "wör", [[1, 6], [8, 13]], "wörld", ["日", "本"], ["日", "本"]]


async def test_re2_syntax_only() -> None:
    got = await ok_result("""
        local out = {}
        for _, p in ipairs({"(a)\\\\1", "(?=x)", "[invalid", "a{2,1}", "x**"}) do
            local re, err = text.regexp.compile(p)
            out[#out + 1] = {re == nil, err:kind()}
        end
        local _, e = text.regexp.compile(nil)
        out[#out + 1] = {e:kind(), e:message()}
        return out
    """)
    assert got[:5] == [[True, "INVALID"]] * 5
    assert got[5] == ["INVALID", "text.regexp.compile: the pattern must be a string, got nil"]


async def test_regexp_argument_mistakes_raise() -> None:
    got = await ok_result("""
        local re = text.regexp.compile("a")
        local ok1, e1 = pcall(re.match_string, re, {})
        local ok2, e2 = pcall(re.match_string, "a")
        local ok3, e3 = pcall(re.find_all_string, re, "aa", 1.5)
        local ok4 = pcall(function() re.x = 1 end)
        return {ok1, e1:kind(), e1:message(), ok2, e2:message(), ok3, e3:message(), ok4, re:match_string(12),
                tostring(re)}
    """)
    assert got == [
        False, "INVALID", "text.Regexp:match_string: expected a string, got table",
        False, "text.Regexp:match_string: call it as a method (obj:match_string(...))",
        False, "text.Regexp:find_all_string: n must be an integer, got 1.5", False, False, "text.Regexp(a)",
    ]


_alphabet = st.sampled_from([*string.ascii_lowercase[:4], "é", "日", " "])


@settings(max_examples=60, deadline=None)
@given(st.text(_alphabet, min_size=1, max_size=3), st.text(_alphabet, max_size=30))
async def test_literal_patterns_match_plain_string_search(needle: str, hay: str) -> None:
    got = await ok_result("""
        local needle, hay = ...
        local re = text.regexp.compile(needle)
        return {re:find_all_string(hay), re:find_all_string_index(hay) or {}, re:split(hay, -1),
                re:replace_all_string(hay, "<$0>"), re:match_string(hay)}
    """, needle, hay)
    found, indices, parts, replaced, matched = got  # type: ignore[misc]
    data, key = hay.encode(), needle.encode()
    offsets = [m.start() for m in re.finditer(re.escape(key), data)]
    assert found == ([needle] * len(offsets) or {})
    assert indices == ([[o + 1, o + len(key)] for o in offsets] or {})
    assert parts == hay.split(needle)
    assert replaced == hay.replace(needle, f"<{needle}>")
    assert matched == (needle in hay)


# -- diff --------------------------------------------------------------------------------------

async def test_diff_compare_summarize_pretty() -> None:
    got = await ok_result("""
        local diff, err = text.diff.new()
        assert(err == nil)
        local diffs = diff:compare("hello world", "hello there")
        local html = diff:pretty_html({{operation = "equal", text = "a<b"}, {operation = "delete", text = "x\\n"},
                                      {operation = "insert", text = "\\"y'"}})
        return {diffs, diff:summarize(diffs), html, diff:pretty_text(diffs),
                diff:summarize({{operation = "insert", text = "é"}})}
    """)
    diffs, summary, html, pretty, bytes_summary = got  # type: ignore[misc]
    assert diffs[0] == {"operation": "equal", "text": "hello "}
    # applying the operations to the first text gives the second
    assert "".join(d["text"] for d in diffs if d["operation"] != "insert") == "hello world"
    assert "".join(d["text"] for d in diffs if d["operation"] != "delete") == "hello there"
    assert summary == {"equals": 7, "deletions": 4, "insertions": 4}
    assert html == ('<span>a&lt;b</span><del style="background:#ffe6e6;">x&para;<br></del>'
                    '<ins style="background:#e6ffe6;">&#34;y&#39;</ins>')
    assert "\x1b[31mwo\x1b[0m" in pretty and "\x1b[32mthe\x1b[0m" in pretty
    assert bytes_summary == {"equals": 0, "deletions": 0, "insertions": 2}


async def test_patch_make_apply_documented() -> None:
    got = await ok_result("""
        local diff = text.diff.new({diff_timeout = 0, patch_margin = 2})
        local text1 = "The quick brown fox jumps over the lazy dog"
        local patches = diff:patch_make(text1, "The quick red fox jumps over the lazy cat")
        local result, success = diff:patch_apply(patches, text1)
        local r2, ok2 = diff:patch_apply({{text = "not a patch"}}, text1)
        local r3, ok3 = diff:patch_apply({}, "same")
        return {#patches, type(patches[1].text), result, success, r2, ok2, r3, ok3}
    """)
    assert got == [2, "string", "The quick red fox jumps over the lazy cat", True,
                   "The quick brown fox jumps over the lazy dog", False, "same", True]


async def test_diff_bad_input() -> None:
    got = await ok_result("""
        local out = {}
        for _, opts in ipairs({{match_threshold = 2}, {diff_edit_cost = "x"}, {patch_margin = 1.5}, "nope"}) do
            local d, err = text.diff.new(opts)
            out[#out + 1] = {d == nil, err:kind()}
        end
        local d = text.diff.new()
        local s, e1 = d:pretty_html({{operation = "move", text = "x"}})
        local ok2, e2 = pcall(d.summarize, d, "nope")
        local ok3 = pcall(d.patch_apply, d, "nope", "text")
        out[#out + 1] = {s == nil, e1:kind(), e1:message(), ok2, e2:kind(), ok3}
        return out
    """)
    assert got[:4] == [[True, "INVALID"]] * 4
    assert got[4][:3] == [True, "INVALID", 'text.Differ:pretty_html: diff 1 must be {operation = '
                          '"equal"|"delete"|"insert", text = string}']
    assert got[4][3:] == [False, "INVALID", False]


@settings(max_examples=40, deadline=None)
@given(st.text(_alphabet, max_size=40), st.text(_alphabet, max_size=40))
async def test_patches_round_trip(a: str, b: str) -> None:
    got = await ok_result("""
        local a, b = ...
        local d = text.diff.new()
        local result, ok = d:patch_apply(d:patch_make(a, b), a)
        local diffs = d:compare(a, b)
        local s = d:summarize(diffs)
        return {result, ok, s.equals + s.deletions, s.equals + s.insertions}
    """, a, b)
    assert got == [b, True, len(a.encode()), len(b.encode())]


# -- splitters ---------------------------------------------------------------------------------

async def test_recursive_splitter_from_lua() -> None:
    got = await ok_result("""
        local sp, err = text.splitter.recursive({chunk_size = 10, chunk_overlap = 0})
        assert(err == nil)
        local chunks = sp:split_text("one two three four five six")
        local kept = text.splitter.recursive({chunk_size = 12, chunk_overlap = 0, keep_separator = true,
                                              separators = {"."}}):split_text("a.b.c.d.e.f.g.h")
        local meta = {page = 1}
        local batch = sp:split_batch({{content = "alpha beta gamma", metadata = meta}, {content = ""},
                                      {content = "delta"}})
        local default = text.splitter.recursive():split_text(string.rep("word ", 300))
        return {chunks, kept, #batch, batch[1].content, batch[2].content, batch[1].metadata == meta,
                batch[2].metadata == meta, batch[3].content, next(batch[3].metadata) == nil, #default,
                #default[1] <= 512}
    """)
    assert got == [["one two", "three four", "five six"], ["a.b.c.d.e.f", ".g.h"], 3, "alpha beta", "gamma",
                   True, True, "delta", True, 4, True]


async def test_splitter_bad_input() -> None:
    got = await ok_result("""
        local out = {}
        for _, opts in ipairs({{chunk_size = 0}, {chunk_size = 10, chunk_overlap = 20}, {separators = {1, 2}},
                               {keep_separator = "yes"}, {chunk_size = 1.5}, 7}) do
            local sp, err = text.splitter.recursive(opts)
            out[#out + 1] = {sp == nil, err:kind()}
        end
        local sp = text.splitter.markdown()
        local c, e1 = sp:split_text(nil)
        local b, e2 = sp:split_batch({{content = 5}})
        local b2, e3 = sp:split_batch("x")
        out[#out + 1] = {c == nil, e1:kind(), b == nil, e2:message(), b2 == nil, e3:kind()}
        return out
    """)
    assert got[:6] == [[True, "INVALID"]] * 6
    assert got[6] == [True, "INVALID", True, "text.Splitter:split_batch: page 1 content must be a string, got number",
                      True, "INVALID"]


async def test_markdown_splitter_from_lua() -> None:
    doc = ("# Guide\n\nIntro text.\n\n## Install\n\nRun the installer.\n\n```sh\nmake install\n```\n\n"
           "## Use\n\n- first\n- second\n\n| k | v |\n|---|---|\n| a | 1 |\n| b | 2 |\n")
    got = await ok_result("""
        local doc = ...
        local plain = text.splitter.markdown({chunk_size = 200, chunk_overlap = 0}):split_text(doc)
        local tree = text.splitter.markdown({chunk_size = 200, chunk_overlap = 0, heading_hierarchy = true,
                                             join_table_rows = true, code_blocks = true}):split_text(doc)
        return {plain, tree}
    """, doc)
    plain, tree = got  # type: ignore[misc]
    assert plain == [
        "# Guide\nIntro text.",
        "## Install\nRun the installer.\n```sh\nmake install\n```",
        "## Use\n- first\n- second",
        "## Use\n| k | v |\n| --- | --- |\n| a | 1 |",
        "## Use\n| k | v |\n| --- | --- |\n| b | 2 |",
    ]
    assert tree == [
        "# Guide\nIntro text.",
        "# Guide\n## Install\nRun the installer.\n```sh\nmake install\n```",
        "# Guide\n## Use\n- first\n- second\n| k | v |\n| --- | --- |\n| a | 1 |\n| b | 2 |",
    ]


def test_markdown_structure_details() -> None:
    doc = ("# T\n\nSee [the docs][ref] and *this*.\n\n[ref]: https://example.com \"Docs\"\n\n"
           "> quoted\n> text\n\n1. one\n2. two\n   - nested\n\n---\n\n# Empty\n\n# Last\n\nend\n")
    chunks = MarkdownSplitter(chunk_size=100, chunk_overlap=0).split_text(doc)
    assert chunks == [
        "# T\nSee [the docs][ref] and *this*.\n> quoted\n> text",  # a quote ends the chunk it joins
        "# T\n1. one\n2. two\n  - nested\n---",
        "# Empty",  # a heading with nothing under it is a chunk of its own
        "# Last\nend",
    ]
    linked = MarkdownSplitter(chunk_size=100, chunk_overlap=0, reference_links=True).split_text(doc)
    assert linked[0] == '# T\nSee [the docs](https://example.com "Docs") and *this*.\n> quoted\n> text'


def test_markdown_long_code_block_stays_whole_with_code_blocks() -> None:
    code = "\n".join(f"line {i}" for i in range(40))
    doc = f"# C\n\nbefore\n\n```\n{code}\n```\n\nafter\n"
    whole = MarkdownSplitter(chunk_size=50, chunk_overlap=0, code_blocks=True).split_text(doc)
    assert f"# C\n```\n{code}\n```" in whole
    split = MarkdownSplitter(chunk_size=50, chunk_overlap=0).split_text(doc)
    assert all(len(c) <= 50 + len("# C\n") for c in split)
    assert "line 39" in "".join(split)


_words = st.lists(st.sampled_from(["ab", "cde", "f", "ghij", " ", " ", "\n", "\n\n", "é", "klmnopqrstuvwxyz"]),
                  max_size=80).map("".join)


@settings(max_examples=150, deadline=None)
@given(_words, st.integers(2, 60), st.integers(0, 30))
def test_recursive_splitter_invariants(text: str, size: int, overlap: int) -> None:
    overlap = min(overlap, size)
    chunks = RecursiveSplitter(chunk_size=size, chunk_overlap=overlap).split_text(text)
    for chunk in chunks:
        assert chunk and chunk == chunk.strip()
        assert len(chunk) <= size
        assert chunk in text  # every chunk is a piece of the text
    # a word shorter than a chunk is never cut
    for word in text.split():
        assert len(word) >= size or any(word in chunk for chunk in chunks), (word, chunks)
    if overlap == 0:  # without overlap the chunks cover the text exactly, whitespace aside
        assert "".join("".join(chunks).split()) == "".join(text.split())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(st.sampled_from("abc "), min_size=1, max_size=12), min_size=1, max_size=12))
def test_markdown_splitter_keeps_every_word(paragraphs: list[str]) -> None:
    doc = "# H\n\n" + "\n\n".join(p for p in paragraphs)
    chunks = MarkdownSplitter(chunk_size=30, chunk_overlap=0).split_text(doc)
    words = [w for p in paragraphs for w in p.split()]
    body = " ".join(c.removeprefix("# H\n") for c in chunks).split()
    assert body == words or (not words and chunks == ["# H"])
