"""The Jet engine: parsing, rendering, Jet's value rules, errors, and the apply-time checks."""

from __future__ import annotations

import html
import json
import math
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from wippy.core import DefinitionErrors, Entry, Op, validate_changeset
from wippy.core._jet_lex import JetSyntaxError
from wippy.core._jet_parse import parse_template
from wippy.lua_stdlib import _jet_render
from wippy.lua_stdlib._jet_set import JetSet
from wippy.lua_stdlib._jet_values import (
    JetLimitError,
    JetRenderError,
    TemplateNotFound,
    format_float,
    format_float_v,
)
from wippy.projections import RegistryState


def render(source: str, data: Any = None, **options: Any) -> str:
    return JetSet({"t": source}, **options).render("t", data if data is not None else {})


CASES = [
    # text, comments, whitespace control
    ("comment", "a{* {{ gone }} *}b", {}, "ab"),
    ("trim both sides", "a \n {{- x -}} \n b", {"x": 1}, "a1b"),
    ("dash without space is a minus", "{{-x}}", {"x": 2}, "-2"),
    ("leading blank text before the first action is dropped", "  \n{{ 1 }} x", {}, "1 x"),
    # expressions and Jet's number rules
    ("precedence", "{{ 1 + 2 * 3 - 4 }}", {}, "3"),
    ("float result", "{{ (1 + 2) * 3 - 4.1 }}", {}, "4.9"),
    ("literals are floats", "{{ 7 / 2 }}", {}, "3.5"),
    ("data ints divide as ints", "{{ a / b }} {{ -a / b }} {{ a % b }} {{ -a % b }}", {"a": 7, "b": 2}, "3 -3 1 -1"),
    ("left operand decides", '{{ 2 + "1" }} {{ "1" + 2 }} {{ "a" + true }}', {}, "3 12 atrue"),
    ("string plus big float uses %v", '{{ "x" + 1e6 }} {{ 1e21 }} {{ 0.000001 }}', {},
     "x1e+06 1000000000000000000000 0.000001"),
    ("comparisons", "{{ 5 * 5 > 2 * 12.5 }} {{ 3 >= 3 }} {{ n < 2.5 }} {{ n == 2 }}", {"n": 2}, "false true true true"),
    ("equality across kinds", '{{ 1 == "1" }} {{ nil == nil }} {{ "a" != "b" }} {{ l == l2 }}',
     {"l": [1, "x"], "l2": [1, "x"]}, "false true true true"),
    ("and/or share one level, left to right", "{{ true || false && false }} {{ t or f }} {{ not f }}",
     {"t": True, "f": False}, "false true true"),
    ("not applies to a comparison", "{{ !1 == 2 }}", {}, "true"),
    ("ternary", '{{ n > 1 ? "many" : n == 1 ? "one" : "none" }}', {"n": 1}, "one"),
    ("unary minus", "{{ -n }} {{ 1 + -5 }}", {"n": 3}, "-3 -4"),
    ("truth of empty containers", "{{ if l }}y{{ end }}{{ if m }}y{{ end }}{{ if s }}y{{ else }}n{{ end }}",
     {"l": [], "m": {}, "s": ""}, "yyn"),
    # fields, indexes, slices
    ("chain and index", '{{ u.name }} {{ u["age"] }} {{ items[1] }} {{ .u.name }}',
     {"u": {"name": "Al", "age": 3}, "items": ["a", "b"]}, "Al 3 b Al"),
    ("missing last key of a map is nil", "[{{ u.nope }}][{{ u[\"nope\"] }}]", {"u": {}}, "[][]"),
    ("slices (strings by bytes)", "{{ l[1:3] }} {{ l[:1] }} {{ s[1:] }} {{ s[3:] }}", {"l": [1, 2, 3, 4], "s": "héllo"},
     "[2 3] [1] éllo llo"),
    ("string index is a byte", '{{ s := "helloworld" }}{{ s[1] }}', {}, "101"),
    ("map lookup with ok", '{{ if v, ok := m["k"]; ok }}{{ v }}{{ end }}{{ if _, ok := m["x"]; ok }}!{{ end }}',
     {"m": {"k": "yes"}}, "yes"),
    # variables
    ("let and set", "{{ x := 1 }}{{ x = x + 1 }}{{ x }}", {}, "2"),
    ("assign then output", "{{ x := 4; x * 2 }}", {}, "8"),
    ("let in an if body stays there", "{{ x := 1 }}{{ if true }}{{ x := 2 }}{{ x }}{{ end }}{{ x }}", {}, "21"),
    ("set reaches the outer variable", "{{ x := 1 }}{{ if true }}{{ x = 2 }}{{ end }}{{ x }}", {}, "2"),
    ("set a map field", '{{ m.a = 5 }}{{ m.a }}', {"m": {"a": 1}}, "5"),
    ("discard", "{{ _ := 1 }}ok", {}, "ok"),
    ("globals", "{{ site }} {{ site2 }}", {"site2": "data wins"}, "G data wins"),
    # control flow
    ("if chain", '{{ if a == 1 }}one{{ else if a == 2 }}two{{ else }}other{{ end }}', {"a": 2}, "two"),
    ("if with assignment", "{{ if n := len(l); n > 1 }}{{ n }}{{ end }}", {"l": [1, 2]}, "2"),
    ("range context", "{{ range l }}<{{ .n }}>{{ end }}", {"l": [{"n": 1}, {"n": 2}]}, "<1><2>"),
    ("range index and context", "{{ range i := l }}{{ i }}{{ . }},{{ end }}", {"l": ["a", "b"]}, "0a,1b,"),
    ("range index and value keep the context", "{{ range i, v := l }}{{ i }}{{ v }}{{ .x }},{{ end }}",
     {"l": ["a"], "x": "!"}, "0a!,"),
    ("range over a map is key-sorted", "{{ range k, v := m }}{{ k }}={{ v }};{{ end }}",
     {"m": {"b": 2, "a": 1, "c": 3}}, "a=1;b=2;c=3;"),
    ("range else", "{{ range l }}x{{ else }}empty{{ end }}", {"l": []}, "empty"),
    ("ints", '{{ range i := ints(0, 4) }}{{ (i == 0 ? "" : ",") + i }}{{ end }}', {}, "0,1,2,3"),
    ("try without catch drops the failed output", "a{{ try }}b{{ nope }}{{ end }}c", {}, "ac"),
    ("catch binds the error", "{{ try }}{{ nope }}{{ catch e }}[{{ hasPrefix(e.Error(), \"template\") }}]{{ end }}",
     {}, "[true]"),
    # pipelines and calls
    ("pipes", '{{ "FOO" | lower | len }} {{ "x" | repeat: 3 }} {{ "ab" | upper | repeat(2) }}', {}, "3 xxx ABAB"),
    ("prefix call", '{{ lower: "WORLD" | upper }}', {}, "WORLD"),
    ("pipe slot", '{{ 2 | repeat("fo", _) | repeat(_, 2) }}', {}, "fofofofo"),
    ("string builtins", '{{ hasPrefix("abc", "ab") }} {{ hasSuffix("abc", "bc") }} '
     '{{ replace("a b c", " ", "_", -1) }} {{ replace("aaa", "a", "b", 2) }} {{ split("a,b", ",") }} '
     '[{{ trimSpace(" x \\n") }}]', {},
     "true true a_b_c bba [a b] [x]"),
    ("len counts bytes of strings", '{{ len("héllo") }} {{ len(l) }} {{ len(m) }}', {"l": [1], "m": {"a": 1}}, "6 1 1"),
    ("collections", '{{ map("b", 2, "a", "x") }} {{ slice(1, "s", true) }} {{ array() }}', {},
     "map[a:x b:2] [1 s true] []"),
    ("isset", "{{ isset(a) }} {{ isset(b) }} {{ isset(a.x, a.y) }} {{ isset(.a.x) }} {{ isset(l[5]) }} {{ a | isset }}",
     {"a": {"x": 1}, "l": []}, "true false false true false true"),
    ("json", '{{ json(v) | raw }}', {"v": {"b": [1, 2.5, None], "a": "<&>"}},
     '{"a":"\\u003c\\u0026\\u003e","b":[1,2.5,null]}'),
    ("writeJson is unescaped", "{{ writeJson(v) }}", {"v": {"k": "'"}}, '{"k":"\'"}\n'),
    # escaping
    ("actions are HTML-escaped", "{{ s }}|{{ s | raw }}|{{ unsafe: s }}|{{ html(s) }}|{{ s | safeJs }}",
     {"s": "<a href='x'>&\"</a>"},
     "&lt;a href=&#39;x&#39;&gt;&amp;&#34;&lt;/a&gt;|<a href='x'>&\"</a>|<a href='x'>&\"</a>|"
     "&amp;lt;a href=&amp;#39;x&amp;#39;&amp;gt;&amp;amp;&amp;#34;&amp;lt;/a&amp;gt;|"
     "\\u003Ca href\\u003D\\'x\\'\\u003E\\u0026\\\"\\u003C/a\\u003E"),
    ("url", '{{ url("a b/é?") }}', {}, "a+b%2F%C3%A9%3F"),
    ("nil prints nothing", "[{{ nil }}]", {}, "[]"),
    ("lists and maps print like Go", "{{ l }} {{ m }}", {"l": [1, 1.5, True], "m": {"k": [None]}},
     "[1 1.5 true] map[k:[&lt;nil&gt;]]"),
    # strings
    ("go string escapes and raw strings", '{{ "a\\tb\\u00e9\\x41" }}|{{ `raw\\n` }}|{{ \'A\' }}', {},
     "a\tbéA|raw\\n|65"),
    # blocks
    ("a block renders where it is defined", "{{ block b() }}B{{ end }}-{{ yield b() }}", {}, "B-B"),
    ("block parameters and defaults", '{{ block f(a, b="d") }}{{ a }}{{ b }}{{ end }}|{{ yield f(a="x") }}|'
     '{{ yield f(b="y", a=1) }}|{{ yield f("p", "q") }}', {}, "falsed|xd|1y|pq"),
    ("yield passes a context", '{{ block hi() "you" }}Hi {{ . }}{{ end }},{{ yield hi() name }}', {"name": "Al"},
     "Hi you,Hi Al"),
    ("content", '{{ block link(to) }}<a href="{{ to }}">{{ yield content }}</a>{{ end }}'
     '{{ yield link(to="/x") content }}{{ to }}!{{ end }}', {}, '<a href="false"></a><a href="/x">/x!</a>'),
    ("content given with the definition", '{{ name := "S" }}{{ block h() }}<h>{{ yield content }}</h>{{ content }}'
     "Hey {{ name }}{{ end }}", {}, "<h>Hey S</h>"),
]


@pytest.mark.parametrize(("source", "data", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rendering(source: str, data: dict[str, Any], expected: str) -> None:
    assert render(source, data, globals_={"site": "G", "site2": "global"}) == expected


def test_recursive_block_walks_a_tree() -> None:
    tree = [{"n": 1, "kids": [{"n": 2, "kids": []}]}, {"n": 3, "kids": []}]
    source = "{{ block tree() }}({{ range . }}{{ .n }}{{ yield tree() .kids }}{{ end }}){{ end }}"
    assert JetSet({"t": source}).render("t", tree) == "(1(2())3())"


def test_extends_import_include_and_names() -> None:
    templates = {
        "layout": "<title>{{ yield title() }}</title>{{ block body() }}default{{ end }}|{{ yield footer() }}",
        "parts/footer": '{{ block footer() }}© {{ site }}{{ end }}{{ block helper(x) }}[{{ x }}]{{ end }}',
        "parts/card": "<card>{{ .t }}{{ yield helper(x=1) }}</card>",
        "page": '{{ extends "/layout.jet" }}{{ import "parts/footer" }}{{ block title() }}{{ title }}{{ end }}'
                '{{ block body() }}{{ range cards }}{{ include "parts/card" }}{{ end }}{{ end }}ignored',
        "parts/page2": '{{ extends "../layout" }}{{ block body() }}{{ include "./card" c }}{{ end }}'
                       '{{ block title() }}2{{ end }}{{ block footer() }}{{ end }}',
        "section": '{{ extends "layout" }}{{ block title() }}Section{{ end }}',
        "deep": '{{ extends "section" }}{{ import "parts/footer" }}{{ block body() }}deep{{ end }}',
        "parts/page3": '{{ extends "../page" }}{{ block title() }}3{{ end }}',
    }
    s = JetSet(templates, globals_={"site": "Acme"})
    assert s.render("page", {"title": "T", "cards": [{"t": "a"}, {"t": "b"}]}) == \
        "<title>T</title><card>a[1]</card><card>b[1]</card>|© Acme"
    with pytest.raises(JetRenderError, match="line 1: unresolved block 'helper'"):
        s.render("/parts/page2.jet", {"c": {"t": "z"}})  # page2 imports no helper block
    assert s.render("deep", {}) == "<title>Section</title>deep|© Acme"
    assert s.render("parts/page3", {"cards": []}) == "<title>3</title>|© Acme"


def test_assignments_never_change_the_set() -> None:
    s = JetSet({"t": "{{ g.k = g.k + 1 }}{{ g.k }}"}, globals_={"g": {"k": 1}})
    assert [s.render("t", {}), s.render("t", {})] == ["2", "2"]
    assert s.globals["g"] == {"k": 1}


def test_custom_delimiters_and_extensions() -> None:
    s = JetSet({"t.html": "[[ x ]] {{ y }} [[- if x ]] yes [[- end ]]"}, left="[[", right="]]",
               extensions=("", ".html"))
    assert s.render("t", {"x": 1}) == "1 {{ y }} yes"


@pytest.mark.parametrize(("source", "line", "fragment"), [
    ("a\n{{ x", 2, "unclosed action"),
    ("{* never closed", 1, "unclosed comment"),
    ("ok\n\n{{ end }}", 3, "unexpected {{ end }}"),
    ("{{ if x }}\n\nno end", 1, "has no {{ end }}"),
    ("x\n{{ extends \"a\" }}", 2, "must be at the beginning"),
    ("{{ 1x }}", 1, "bad number syntax"),
    ('{{ "open }}', 1, "unterminated quoted string"),
    ("{{ a b }}", 1, "unexpected token 'b'"),
    ("{{ f(1, 2 }}", 1, "unclosed left parenthesis"),
    ("{{ return 1 }}", 1, "'return' is not supported"),
    ("{{ }}", 1, "empty action"),
    ("{{ x := }}", 1, "expected an operand"),
    ("{{ 1 = 2 }}", 1, "unexpected node in assignment"),
    ("{{ a.b := 1 }}", 1, "only names can be declared"),
    ("{{ f(_, _) }}", 1, "two pipe slot markers"),
    ("{{ range a, b, c := l }}{{ end }}", 1, "at most two variables"),
    ("{{ block x(1) }}{{ end }}", 1, "expected a parameter name"),
    ("\n\n{{ yield }}", 3, "expected a block name"),
    ('{{ "\\q" }}', 1, "invalid escape"),
])
def test_syntax_errors_name_template_and_line(source: str, line: int, fragment: str) -> None:
    with pytest.raises(JetSyntaxError) as info:
        parse_template(source, "views/page")
    assert info.value.line == line
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"template 'views/page', line {line}:")


@pytest.mark.parametrize(("source", "data", "fragment"), [
    ("a\n\n{{ nope }}", {}, "line 3: identifier 'nope' not available"),
    ("{{ .missing }}", {}, "there is no field or method 'missing'"),
    ("{{ a.b.c }}", {"a": {}}, "there is no field or method 'b'"),
    ('{{ "a" - 1 }}', {}, "minus sign is not allowed with strings"),
    ("{{ 1 / 0 }}", {}, "division by zero"),
    ("{{ n / 0 }}", {"n": 4}, "division by zero"),
    ("{{ l[3] }}", {"l": [1]}, "index out of range: 3"),
    ("{{ l[1:5] }}", {"l": [1]}, "slice bounds out of range [1:5] with length 1"),
    ("{{ range n }}{{ end }}", {"n": 3}, "is not rangeable"),
    ("{{ range nothing }}{{ end }}", {"nothing": None}, "can't range over nil"),
    ('{{ "a" < "b" }}', {}, "non numeric value"),
    ("{{ yield missing() }}", {}, "unresolved block 'missing'"),
    ('{{ include "nowhere" }}', {}, "template nowhere could not be found"),
    ("{{ x = 1 }}", {}, "variable 'x' is uninitialised"),
    ("{{ upper(1) }}", {}, "upper(): argument 1 must be a string"),
    ("{{ repeat(\"a\") }}", {}, "repeat() needs 2 arguments, but has 1"),
    ("{{ s | raw | upper }}", {"s": "x"}, "after a writer"),
    ("{{ upper(raw(s)) }}", {"s": "x"}, "raw writes to the output"),
    ("{{ s(1) }}", {"s": "x"}, "not a function"),
    ("{{ ints(3, 1) }}", {}, "'from' must be smaller than 'to'"),
    ("{{ map(1, 2) }}", {}, "must be a string"),
])
def test_render_errors_name_template_and_line(source: str, data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(JetRenderError) as info:
        render(source, data)
    assert fragment in str(info.value)
    assert str(info.value).startswith("template 't', line ")


def test_errors_in_other_templates_name_them() -> None:
    s = JetSet({"layout": "x\n{{ yield b() }}", "page": '{{ extends "layout" }}\n{{ block b() }}\n\n{{ bad }}{{ end }}',
                "inc": '{{ include "broken" }}', "broken": "\n{{ if }}", "loop1": '{{ extends "loop2" }}',
                "loop2": '{{ extends "loop1" }}'})
    with pytest.raises(JetRenderError, match=r"^template 'page', line 4: identifier 'bad'"):
        s.render("page", {})
    with pytest.raises(JetRenderError, match=r"^template 'broken', line 2: .*expected an operand"):
        s.render("inc", {})
    with pytest.raises(JetRenderError, match="each other in a circle: loop1 -> loop2 -> loop1"):
        s.render("loop1", {})
    with pytest.raises(TemplateNotFound, match="template not found: nope"):
        s.render("nope", {})


def test_limits_stop_runaway_templates(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(JetLimitError, match="nested more than 100 deep"):
        render("{{ block r() }}{{ yield r() }}{{ end }}")
    with pytest.raises(JetLimitError, match="nested more than"):
        JetSet({"a": '{{ include "b" }}', "b": '{{ include "a" }}'}).render("a", {})
    monkeypatch.setattr(_jet_render, "MAX_ITERATIONS", 50)
    with pytest.raises(JetLimitError, match="more than 50 range iterations"):
        render("{{ range ints(0, 10) }}{{ range ints(0, 10) }}{{ end }}{{ end }}")
    monkeypatch.setattr(_jet_render, "MAX_OUTPUT", 100)
    with pytest.raises(JetLimitError, match="output larger than 100"):
        render('{{ repeat("x", 101) | raw }}')
    # a limit is not an error a template can catch
    with pytest.raises(JetLimitError):
        render('{{ try }}{{ repeat("x", 101) | raw }}{{ catch }}caught{{ end }}')


def test_parsing_is_cached_by_content() -> None:
    source = "{{ x }} cached"
    assert parse_template(source, "a") is parse_template(source, "a")
    assert parse_template(source, "a") is not parse_template(source + " ", "a")


_plain_text = st.text().filter(lambda s: "{{" not in s and "{*" not in s and not s.endswith("{"))


@given(_plain_text)
def test_text_without_delimiters_renders_to_itself(text: str) -> None:
    assume(text.strip(" \t\r\n"))  # Jet drops a template's leading whitespace-only text
    assert render(text) == text


@given(st.text())
def test_escaping_round_trips(text: str) -> None:
    data = {"s": text}
    assert html.unescape(render("{{ s }}", data)) == text.replace("\0", "\ufffd")
    assert render("{{ s | raw }}", data) == text
    escaped_js = render("{{ s | safeJs }}", data)
    decoded = escaped_js.encode("latin-1", "backslashreplace").decode("unicode_escape")
    assert decoded.encode("utf-16", "surrogatepass").decode("utf-16") == text
    assert "<" not in escaped_js and ">" not in escaped_js
    from urllib.parse import unquote_plus

    assert unquote_plus(render("{{ url(s) | raw }}", data)) == text


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


def _numbers_as_floats(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _numbers_as_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_as_floats(v) for v in value]
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


@given(_json_values)
def test_json_round_trips(value: Any) -> None:
    assume(value is not None)  # json(nil) is an error in Jet (Go's json.Marshal gets no value)
    out = render("{{ json(v) | raw }}", {"v": value})
    # compare numbers as floats: Go prints a float such as 4.3e16 as digits, which read back as an int
    assert _numbers_as_floats(json.loads(out)) == _numbers_as_floats(value)
    assert "<" not in out and ">" not in out and "&" not in out


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_printing_is_exact_and_go_shaped(x: float) -> None:
    printed = format_float(x)
    assert "e" not in printed and float(printed) == x
    v = format_float_v(x)
    assert float(v) == x
    if "e" in v:
        assert math.floor(math.log10(abs(x))) not in range(-4, 6)


@given(st.integers(-10**6, 10**6), st.integers(-1000, 1000).filter(bool))
def test_integer_division_truncates_like_go(a: int, b: int) -> None:
    q = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
    assert render("{{ a / b }} {{ a % b }}", {"a": a, "b": b}) == f"{q} {a - b * q}"


# -- apply-time checks (core/_template_kinds) -------------------------------------------------------


def _state(*entries: Entry) -> RegistryState:
    s = RegistryState()
    s.load({x.id: x for x in entries}, {x.id: "src/_index.yaml" for x in entries}, {}, version=1, seq=1)
    return s


SET = Entry("app:tpl", "template.set", {}, {"engine": {"globals": {"site": "x"}}})


def _jet(name: str, source: str, *, meta: dict[str, Any] | None = None, set_id: str = "app:tpl") -> Entry:
    return Entry(f"app:{name}", "template.jet", meta or {}, {"set": set_id, "source": source})


def _problems(state: RegistryState, *entries: Entry) -> str:
    with pytest.raises(DefinitionErrors) as info:
        validate_changeset(state, [Op("update" if state.get(e.id) else "create", e.id, e) for e in entries])
    return str(info.value)


def test_apply_accepts_valid_templates() -> None:
    ops = [Op("create", e.id, e) for e in (SET, _jet("page", "{{ x }}"), _jet("p2", "y", meta={"name": "other"}))]
    assert validate_changeset(_state(), ops) == []


def test_apply_refuses_a_syntax_error_with_template_and_line() -> None:
    text = _problems(_state(SET), _jet("page", "ok\n\n{{ if x }}\n", meta={"name": "views/page"}))
    assert "entry app:page: field source: Jet syntax error: template 'views/page', line 3:" in text
    assert "has no {{ end }}" in text


def test_apply_checks_template_fields_and_set_kind() -> None:
    other = Entry("app:data", "registry.entry", {}, {})
    text = _problems(_state(SET, other), Entry("app:a", "template.jet", {"name": 5}, {"source": 3}),
                     _jet("b", "file://b.jet"))
    assert "entry app:a: field set: must name the template.set" in text
    assert "entry app:a: field source: must be the template's Jet text" in text
    assert "entry app:a: field meta.name: must be a non-empty template name" in text
    assert "entry app:b: field source: file://b.jet was not read" in text
    assert "entry app:c: field set: names app:data, which is a registry.entry, not a template.set" in \
        _problems(_state(SET, other), _jet("c", "x", set_id="app:data"))


def test_apply_checks_engine_fields() -> None:
    bad = Entry("app:tpl", "template.set", {}, {"engine": {"delimiters": {"left": ""}, "extensions": "x",
                                                           "globals": [1], "development_mode": "yes"}})
    text = _problems(_state(), bad)
    for field in ("engine.delimiters.left", "engine.extensions", "engine.globals", "engine.development_mode"):
        assert f"field {field}:" in text


def test_apply_refuses_new_delimiters_that_break_templates_and_duplicate_names() -> None:
    state = _state(SET, _jet("page", "{{ x }} [[ y"))
    changed = Entry("app:tpl", "template.set", {}, {"engine": {"delimiters": {"left": "[[", "right": "]]"}}})
    assert "entry app:page: field source: Jet syntax error: template 'page', line 1: unclosed action" in \
        _problems(state, changed)
    text = _problems(state, _jet("dup", "z", meta={"name": "page"}))
    assert "entry app:dup: field meta.name: template name 'page' is also used by app:page in app:tpl" in text
    assert "app:page:" not in text  # the entry being applied is the one blamed
