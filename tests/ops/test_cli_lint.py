"""`wippy lint`: real app dirs in tmp_path, checked through the CLI's `main` (no NATS, no state dir)."""

from __future__ import annotations

import json
import tempfile
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wippy.ops._cli import main
from wippy.ops._lint import lint_app

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (REPO / "examples").iterdir() if (p / "src").is_dir())


def make_app(root: Path, index: str, files: dict[str, str] | None = None) -> Path:
    """An app dir with ``src/_index.yaml`` and other files (paths relative to the app)."""
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "src" / "_index.yaml").write_text(textwrap.dedent(index))
    for rel, text in (files or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def lint(capsys: pytest.CaptureFixture[str], app: Path, *extra: str) -> tuple[int, list[str]]:
    code = main(["lint", "--app", str(app), *extra])
    out = capsys.readouterr().out
    return code, out.splitlines()


def lint_json(capsys: pytest.CaptureFixture[str], app: Path) -> tuple[int, list[dict[str, object]]]:
    code = main(["lint", str(app), "--json"])
    return code, json.loads(capsys.readouterr().out)


FUNC = """\
    namespace: app
    entries:
      - name: f
        kind: function.lua
        source: file://f.lua
        method: run
        {extra}
"""


def func_app(root: Path, lua: str, extra: str = "") -> Path:
    return make_app(root, FUNC.replace("{extra}", extra), {"src/f.lua": lua})


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_lints_clean(capsys: pytest.CaptureFixture[str], example: Path) -> None:
    code, lines = lint(capsys, example)
    assert code == 0, lines
    assert lines[-1].startswith("ok: ")
    assert len(lines) == 1


def test_bad_yaml_names_file_and_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    app = make_app(tmp_path, """\
        namespace: app
        entries:
          - name: a
            kind: registry.entry
            text: [unclosed
    """)
    code, lines = lint(capsys, app)
    assert code == 1
    assert lines[0].startswith("src/_index.yaml:")
    assert "invalid YAML" in lines[0]
    assert lines[-1].startswith("1 error(s), 0 warning(s)")


def test_unknown_kind_is_a_warning(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    app = make_app(tmp_path, """\
        namespace: app
        entries:
          - name: thing
            kind: nosuch.kind
    """)
    code, lines = lint(capsys, app)
    assert code == 0
    assert lines[0] == "src/_index.yaml:3: app:thing: warning: unknown kind 'nosuch.kind' (stored, no runtime handler)"


def test_invalid_fields_are_errors_with_entry_and_field(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    app = make_app(tmp_path, """\
        namespace: app
        entries:
          - name: ep
            kind: http.endpoint
            meta:
              router: nosuch
            method: GET
            path: /x
            func: missing
    """)
    code, problems = lint_json(capsys, app)
    assert code == 1
    assert problems
    assert all(p["entry"] == "app:ep" and p["file"] == "src/_index.yaml" for p in problems)
    assert any("missing" in str(p["message"]) for p in problems)


def test_lua_syntax_error_in_a_file_names_its_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    app = func_app(tmp_path, """\
        local M = {}
        function M.run()
            local x = = 1
        end
        return M
    """)
    code, lines = lint(capsys, app)
    assert code == 1
    assert lines[0].startswith("src/f.lua:3: app:f: ")


def test_lua_compile_error_in_a_file_names_its_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # the syntax check accepts this; Lua's compiler does not (assignment to a <const> local)
    app = func_app(tmp_path, """\
        local M = {}
        function M.run()
            local limit <const> = 1
            limit = 2
        end
        return M
    """)
    code, lines = lint(capsys, app)
    assert code == 1
    assert lines[0] == "src/f.lua:4: app:f: attempt to assign to const variable 'limit'", lines


def test_inline_source_errors_point_into_the_yaml(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    app = make_app(tmp_path, """\
        namespace: app
        entries:
          - name: f
            kind: function.lua
            method: run
            source: |
              local M = {}
              function M.run()
                return 1 +
              end
              return M
    """)
    code, lines = lint(capsys, app)
    assert code == 1
    assert lines[0].startswith("src/_index.yaml:10: app:f: field source: "), lines


def test_luau_type_annotations_are_accepted(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    app = func_app(tmp_path, """\
        type Point = { x: number, y: number }

        local function norm(p: Point): number
            local total: number = p.x * p.x + p.y * p.y
            return math.sqrt(total)
        end

        local function run(p: Point?): number
            local q = (p or { x = 3, y = 4 }) :: Point
            return norm(q)
        end

        return { run = run }
    """)
    code, lines = lint(capsys, app)
    assert (code, lines[-1]) == (0, "ok: 1 entries, 1 Lua chunks checked, no problems")


def test_unknown_module_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    app = func_app(tmp_path, "return { run = function() end }\n", "modules: [json, jsno]")
    code, lines = lint(capsys, app)
    assert code == 1
    assert lines[0] == "src/_index.yaml:3: app:f: field modules: no module named jsno"


def test_a_documented_module_not_built_here_is_a_warning(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    app = func_app(tmp_path, "return { run = function() end }\n", "modules: [compress]")
    code, lines = lint(capsys, app)
    assert code == 0
    assert "warning: field modules: module compress is not provided by this runtime yet" in lines[0]


def test_missing_import_target_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    app = func_app(tmp_path, "return { run = function() end }\n",
                   "imports: {lib: app:nolib, actor: wippy.actor:actor, data: app:data}")
    (tmp_path / "src" / "_index.yaml").write_text(
        (tmp_path / "src" / "_index.yaml").read_text() + "  - name: data\n    kind: registry.entry\n")
    code, problems = lint_json(capsys, app)
    assert code == 1
    by_field = {p["field"]: p["message"] for p in problems}
    assert set(by_field) == {"imports.lib", "imports.data"}  # the native library resolves
    assert "app:nolib" in str(by_field["imports.lib"])
    assert "registry.entry, not Lua code" in str(by_field["imports.data"])


def test_require_of_an_unlisted_name_is_a_warning(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    app = func_app(tmp_path, """\
        local json = require("json")
        local time = require "time"
        return { run = function() return json, time end }
    """, "modules: [json]")
    code, lines = lint(capsys, app)
    assert code == 0
    assert lines[0] == "src/f.lua:2: app:f: warning: require('time'): time is in neither modules: nor imports:"


@pytest.mark.parametrize("lua", [
    "return { other = function() end }\n",
    "local M = {}\nfunction M.other() end\nreturn M\n",
])
def test_method_absent_from_returned_table_is_a_warning(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                         lua: str) -> None:
    code, lines = lint(capsys, func_app(tmp_path, lua))
    assert code == 0
    assert "warning: the returned table has no visible function 'run'" in lines[0]


@pytest.mark.parametrize("lua", [
    "return { run = function() if true then return 1 end end, ['x'] = 2 }\n",
    "local M = {}\nfunction M.run() end\nreturn M\n",
    "local M = {}\nM.run = function() end\nreturn M\n",
    "local M = setmetatable({}, {})\nreturn M\n",
    "local M = {}\nfor k, v in pairs({run = print}) do M[k] = v end\nreturn M\n",
])
def test_visible_or_unknowable_methods_pass(capsys: pytest.CaptureFixture[str], tmp_path: Path, lua: str) -> None:
    code, lines = lint(capsys, func_app(tmp_path, lua))
    assert (code, len(lines)) == (0, 1), lines


def test_table_returned_without_method_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    app = make_app(tmp_path, """\
        namespace: app
        entries:
          - name: f
            kind: function.lua
            source: file://f.lua
          - name: g
            kind: process.lua
            source: file://g.lua
            method: main
          - name: lib
            kind: library.lua
            source: file://f.lua
    """, {"src/f.lua": "local M = {}\nfunction M.run() end\n\nreturn M\n",
          "src/g.lua": "local function main() end\nreturn main\n"})
    code, lines = lint(capsys, app)
    assert code == 1
    assert lines[:2] == [
        "src/f.lua:4: app:f: the code returns a table; name its function with `method:`",
        "src/g.lua:2: app:g: method 'main' is named, but the code returns a function",
    ]


def test_bad_runtime_settings_are_reported(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    app = func_app(tmp_path, "return { run = function() end }\n")
    (app / ".wippy.yaml").write_text("logger:\n  encoding: fancy\n")
    code, lines = lint(capsys, app)
    assert code == 1
    assert lines[0].startswith(".wippy.yaml: logger.encoding must be json or console")


def test_json_output_shape(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    app = func_app(tmp_path, "return { run = function() end }\n", "modules: [nosuch]")
    code, problems = lint_json(capsys, app)
    assert code == 1
    assert problems == [{"file": "src/_index.yaml", "line": 3, "entry": "app:f", "field": "modules",
                         "message": "no module named nosuch", "severity": "error"}]


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["lint", "--app", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["lint", "--no-such-flag"])
    assert info.value.code == 2


def test_an_app_without_src_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, lines = lint(capsys, tmp_path)
    assert code == 1
    assert "source directory ./src not found" in lines[0]


_LUAISH = st.lists(
    st.sampled_from([
        "local", "x", "y", "=", "==", "{", "}", "(", ")", "[", "]", "function", "end", "return", "if", "then",
        "else", "while", "do", "for", "in", "repeat", "until", ",", ".", ":", ";", "1", "'s'", '"t"', "nil",
        "type", "T", "number", "?", "::", "as", "+", "..", "require", "\n", "--", "M", "run", "...", "<", ">",
        "@min(0)", "!", "#", "[[", "]]", "goto", "::l::",
    ]),
    max_size=40,
).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(source=st.one_of(_LUAISH, st.text(max_size=80)))
def test_random_sources_never_crash_lint(source: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp)
        (app / "src").mkdir()
        (app / "src" / "_index.yaml").write_text(
            "namespace: app\nentries:\n  - name: f\n    kind: function.lua\n    source: file://f.lua\n"
            "    method: run\n")
        (app / "src" / "f.lua").write_text(source, encoding="utf-8", errors="surrogatepass")
        result = lint_app(app)
    assert result.entries in (0, 1)
    for problem in result.problems:
        assert problem.message
        assert problem.entry in (None, "app:f")
        assert problem.severity in ("error", "warning")
        assert problem.render()
