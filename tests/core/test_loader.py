"""The app loader: definition files in, entries with origins out, every problem reported."""

from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wippy.core._entry import Entry
from wippy.core._errors import DefinitionError, DefinitionErrors
from wippy.core._loader import LoadedApp, load_app


def write(root: Path, rel: str, text: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def by_id(app: LoadedApp) -> dict[str, Entry]:
    return {loaded.entry.id: loaded.entry for loaded in app.entries}


def origins(app: LoadedApp) -> dict[str, str]:
    return {loaded.entry.id: loaded.origin for loaded in app.entries}


def defs(ns: str, *entries: str) -> str:
    """A definition file with one flow-style entry per argument."""
    return f"namespace: {ns}\nentries:\n" + "".join(f"  - {{{e}}}\n" for e in entries)


def problems(app_dir: Path) -> list[DefinitionError]:
    with pytest.raises(DefinitionErrors) as caught:
        load_app(app_dir)
    return caught.value.errors


INDEX = """
version: "1.0"
namespace: app

entries:
  # hosts
  - name: terminal
    kind: terminal.host
    lifecycle:
      auto_start: true

  - name: hello
    kind: process.lua
    meta:
      command: {name: hello, short: Say hello}
    source: file://hello.lua
    method: main
    modules: [io]

  - name: processes
    kind: process.host

  - name: worker
    kind: process.service
    process: hello
    host: app:processes
    lifecycle:
      auto_start: true
      depends_on: [processes]

  - name: os_env
    kind: env.storage.os

  - name: file_env
    kind: env.storage.file
    file_path: ./config.env
    file_mode: 0600
    auto_create: yes

  - name: token
    kind: env.variable
    variable: TOKEN
    storage: os_env
    default: "${env:FALLBACK|none}"

  - name: db
    kind: db.sql.postgres
    host: localhost
    password_env: app:token
    port: ${DB_PORT|5432}

  - name: product.laptop
    kind: registry.entry
    meta:
      type: product
      title: "Laptop Pro 16"
    sku: LAPTOP-001
    price: 1499.99
    released: 2024-03-01
    tags: [a, b]
"""

API = """
namespace: app.api
entries:
  - name: gateway
    kind: http.service
    addr: ":8080"
  - name: router
    kind: http.router
    meta:
      server: gateway
    prefix: /api
    middleware: [cors]
  - name: get_user
    kind: function.lua
    source: file://handlers/get_user.lua
    method: handler
    imports:
      json_util: lib.util:json
      local_helper: helper
  - name: get_user.endpoint
    kind: http.endpoint
    meta: {router: router}
    method: GET
    path: /users/{id}
    func: get_user
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    write(tmp_path, "src/_index.yaml", INDEX)
    write(tmp_path, "src/hello.lua", "return { main = function() print('hello') end }\n")
    write(tmp_path, "src/api/_index.yml", API)
    write(tmp_path, "src/api/handlers/get_user.lua", "local M = {}\nfunction M.handler() end\nreturn M\n")
    write(
        tmp_path,
        "src/api/health.yaml",
        """
        namespace: app.api
        name: health
        kind: function.lua
        source: "return { handler = function() return 'ok' end }"
        method: handler
        """,
    )
    write(tmp_path, "src/config/settings.yaml", "log_level: debug\nitems: [1, 2]\n")
    write(tmp_path, "src/docs/list.yaml", "- just\n- a list\n")
    write(tmp_path, "src/docs/empty.yaml", "# nothing here\n")
    write(tmp_path, "src/notes.txt", "namespace: ignored\n")
    return tmp_path


def test_loads_a_realistic_app(app_dir: Path) -> None:
    app = load_app(app_dir)
    entries = by_id(app)
    assert app.root == app_dir.resolve()
    assert app.warnings == ()
    assert dict(app.native_dependencies) == {}
    # Files sorted by path, entries in file order.
    assert [loaded.entry.id for loaded in app.entries] == [
        "app:terminal", "app:hello", "app:processes", "app:worker", "app:os_env", "app:file_env",
        "app:token", "app:db", "app:product.laptop",
        "app.api:gateway", "app.api:router", "app.api:get_user", "app.api:get_user.endpoint",
        "app.api:health",
    ]
    assert entries["app:terminal"] == Entry(
        "app:terminal", "terminal.host", {}, {"lifecycle": {"auto_start": True}}
    )
    hello = entries["app:hello"]
    assert hello.kind == "process.lua"
    assert hello.meta == {"command": {"name": "hello", "short": "Say hello"}}
    assert hello.data == {
        "source": "return { main = function() print('hello') end }\n",
        "method": "main",
        "modules": ["io"],
    }
    worker = entries["app:worker"]
    assert worker.data["process"] == "app:hello"
    assert worker.data["host"] == "app:processes"
    assert worker.data["lifecycle"]["depends_on"] == ["app:processes"]
    # Wippy's YAML rules (Go's): 0600 is octal, `yes` is a string; placeholders and *_env stay raw.
    assert entries["app:file_env"].data == {
        "file_path": "./config.env", "file_mode": 384, "auto_create": "yes",
    }
    assert entries["app:token"].data == {
        "variable": "TOKEN", "storage": "app:os_env", "default": "${env:FALLBACK|none}",
    }
    assert entries["app:db"].data == {
        "host": "localhost", "password_env": "app:token", "port": "${DB_PORT|5432}",
    }
    assert entries["app:product.laptop"].meta == {"type": "product", "title": "Laptop Pro 16"}
    assert entries["app:product.laptop"].data == {
        "sku": "LAPTOP-001", "price": 1499.99, "released": "2024-03-01", "tags": ["a", "b"],
    }
    router = entries["app.api:router"]
    assert router.meta == {"server": "app.api:gateway"}
    assert router.data == {"prefix": "/api", "middleware": ["cors"]}
    assert entries["app.api:get_user"].data["source"].startswith("local M = {}")
    assert entries["app.api:get_user"].data["imports"] == {
        "json_util": "lib.util:json", "local_helper": "app.api:helper",
    }
    endpoint = entries["app.api:get_user.endpoint"]
    assert endpoint.meta == {"router": "app.api:router"}
    assert endpoint.data == {"method": "GET", "path": "/users/{id}", "func": "app.api:get_user"}
    assert entries["app.api:health"].data["source"] == "return { handler = function() return 'ok' end }"


def test_origins_name_file_and_line(app_dir: Path) -> None:
    found = origins(load_app(app_dir))
    assert found["app:terminal"] == "src/_index.yaml:6"
    assert found["app:hello"] == "src/_index.yaml:11"
    assert found["app:product.laptop"] == "src/_index.yaml:51"
    assert found["app.api:gateway"] == "src/api/_index.yml:3"
    assert found["app.api:get_user.endpoint"] == "src/api/_index.yml:19"
    assert found["app.api:health"] == "src/api/health.yaml:1"


def test_origins_of_bare_dash_and_flow_items(tmp_path: Path) -> None:
    write(
        tmp_path,
        "src/_index.yaml",
        """
        namespace: app
        defaults: &defaults {auto_start: true}
        entries:
          - name: a
            kind: process.host
            lifecycle: *defaults

          -
            name: b
            kind: registry.entry
          - {name: c, kind: registry.entry, x: 1}
        """,
    )
    app = load_app(tmp_path)
    assert origins(app) == {
        "app:a": "src/_index.yaml:4", "app:b": "src/_index.yaml:8", "app:c": "src/_index.yaml:11",
    }
    assert by_id(app)["app:a"].data == {"lifecycle": {"auto_start": True}}
    assert by_id(app)["app:c"].data == {"x": 1}


def test_wippy_lock_names_the_source_dir(tmp_path: Path) -> None:
    write(tmp_path, "wippy.lock", "directories:\n    modules: deps\n    src: ./app_src\n")
    write(tmp_path, "app_src/nested/deeper/defs.yaml", defs("app", "name: x, kind: registry.entry"))
    write(tmp_path, "src/_index.yaml", defs("other", "name: y, kind: registry.entry"))
    app = load_app(tmp_path)
    assert origins(app) == {"app:x": "app_src/nested/deeper/defs.yaml:3"}


def test_wippy_lock_without_directories_uses_defaults(tmp_path: Path) -> None:
    write(tmp_path, "wippy.lock", "modules:\n  - {name: wippy/llm, version: 0.4.23}\n")
    write(tmp_path, "src/_index.yaml", defs("app", "name: x, kind: registry.entry"))
    assert [loaded.entry.id for loaded in load_app(tmp_path).entries] == ["app:x"]


def test_modules_dir_inside_src_is_not_read_as_app_files(tmp_path: Path) -> None:
    write(tmp_path, "wippy.lock", "directories: {src: ., modules: .wippy}\n")
    write(tmp_path, "_index.yaml", defs("app", "name: x, kind: registry.entry"))
    write(tmp_path, ".wippy/vendor/acme/lib/src/_index.yaml", defs("acme", "name: y, kind: registry.entry"))
    assert [loaded.entry.id for loaded in load_app(tmp_path).entries] == ["app:x"]


def test_missing_source_dir_is_named(tmp_path: Path) -> None:
    (errors,) = problems(tmp_path)
    assert "source directory ./src not found" in str(errors)


def test_missing_source_dir_from_lock_is_named(tmp_path: Path) -> None:
    write(tmp_path, "wippy.lock", "directories: {src: ./code}\n")
    (error,) = problems(tmp_path)
    assert "./code" in str(error)


@pytest.mark.parametrize(
    ("lock", "expect"),
    [
        ("directories: [src]\n", "wippy.lock: field directories: must be a mapping"),
        ("directories:\n  src: [a]\n", "wippy.lock: field directories.src: must be a non-empty path"),
        ("directories: {src: ./src\n", "wippy.lock:1: invalid YAML: unclosed bracket '{'"),
        ("- a\n", "wippy.lock: must be a mapping"),
    ],
)
def test_malformed_lock_is_named(tmp_path: Path, lock: str, expect: str) -> None:
    write(tmp_path, "wippy.lock", lock)
    write(tmp_path, "src/_index.yaml", "namespace: app\nentries: []\n")
    (error,) = problems(tmp_path)
    assert str(error) == expect


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "src/bad.yaml", "namespace: app\nentries:\n  - name: a\n    kind: [oops\n  - name: b\n")
    (error,) = problems(tmp_path)
    assert error.where is not None
    assert error.where.startswith("src/bad.yaml:")
    assert "invalid YAML" in error.reason
    assert int(error.where.split(":")[1]) >= 4


def test_every_problem_is_reported(tmp_path: Path) -> None:
    write(
        tmp_path,
        "src/a.yaml",
        """
        namespace: app
        entries:
          - name: ok
            kind: registry.entry
          - just a string
          - kind: registry.entry
          - name: "bad name"
            kind: registry.entry
          - name: with:colon
            kind: registry.entry
          - name: no_kind
          - name: bad_meta
            kind: registry.entry
            meta: [1, 2]
          - name: 42
            kind: registry.entry
          - name: empty_kind
            kind: ""
        """,
    )
    write(tmp_path, "src/b.yaml", "entries:\n  - {name: x, kind: registry.entry}\n")
    write(tmp_path, "src/c.yaml", "namespace: 'bad ns'\nentries: []\n")
    write(tmp_path, "src/d.yaml", "namespace: app.d\nentries: {name: x}\n")
    write(tmp_path, "src/e.yaml", "namespace: app.e\nentries:\n  - name: x\n    key: [unclosed\n")
    found = [str(e) for e in problems(tmp_path)]
    assert found == [
        "src/a.yaml:5: an entry must be a mapping with name and kind, not a string",
        "src/a.yaml:6: field name: missing required field",
        "src/a.yaml:7: field name: name 'bad name' must be non-empty, without ':' or whitespace",
        "src/a.yaml:9: field name: name 'with:colon' must be non-empty, without ':' or whitespace",
        "src/a.yaml:11: entry app:no_kind: field kind: missing required field",
        "src/a.yaml:14: entry app:bad_meta: field meta: must be a mapping, not a list",
        "src/a.yaml:15: field name: must be a string, not a number",
        "src/a.yaml:18: entry app:empty_kind: field kind: must be a non-empty string",
        "src/b.yaml:1: field namespace: a file with entries needs a namespace",
        "src/c.yaml:1: field namespace: namespace 'bad ns' must be dot-separated words of letters, digits, "
        "'_' or '-'",
        "src/d.yaml:2: field entries: entries must be a list, not a mapping",
        found[-1],
    ]
    assert found[-1].startswith("src/e.yaml:")
    assert "invalid YAML" in found[-1]


def test_duplicate_ids_name_both_origins(tmp_path: Path) -> None:
    write(tmp_path, "src/a.yaml", defs("app", "name: x, kind: a.b", "name: x, kind: a.b"))
    write(tmp_path, "src/b.yaml", "namespace: app\nname: x\nkind: registry.entry\n")
    found = [str(e) for e in problems(tmp_path)]
    assert found == [
        "src/a.yaml:4: entry app:x: duplicate entry id, first defined at src/a.yaml:3",
        "src/b.yaml:1: entry app:x: duplicate entry id, first defined at src/a.yaml:3",
    ]


def test_source_file_problems(tmp_path: Path) -> None:
    write(tmp_path, "src/ok.lua", "return 1\n")
    write(tmp_path, "src/latin1.lua", "return 'caf\xe9'\n".encode("latin-1"))
    write(tmp_path, "outside.lua", "return 2\n")
    write(
        tmp_path,
        "src/_index.yaml",
        """
        namespace: app
        entries:
          - name: ok
            kind: function.lua
            source: file://ok.lua
          - name: missing
            kind: function.lua
            method: main
            source: file://nope.lua
          - name: escape
            kind: function.lua
            source: file://../../etc/passwd
          - name: absolute
            kind: function.lua
            source: file:///etc/passwd
          - name: not_utf8
            kind: function.lua
            source: file://latin1.lua
        """,
    )
    found = [str(e) for e in problems(tmp_path)]
    assert found == [
        "src/_index.yaml:9: entry app:missing: field source: "
        "file://nope.lua: file src/nope.lua does not exist",
        "src/_index.yaml:12: entry app:escape: field source: "
        "file://../../etc/passwd points outside the app directory",
        "src/_index.yaml:15: entry app:absolute: field source: "
        "file:///etc/passwd points outside the app directory",
        "src/_index.yaml:18: entry app:not_utf8: field source: "
        "file://latin1.lua: src/latin1.lua is not UTF-8 text (invalid continuation byte at byte 11)",
    ]


def test_source_may_reach_outside_src_but_inside_the_app(tmp_path: Path) -> None:
    write(tmp_path, "shared/lib.lua", "return 3\n")
    write(tmp_path, "src/_index.yaml", "namespace: app\nname: lib\nkind: library.lua\nsource: file://../shared/lib.lua\n")
    assert by_id(load_app(tmp_path))["app:lib"].data["source"] == "return 3\n"


def test_values_come_out_json_compatible(tmp_path: Path) -> None:
    write(
        tmp_path,
        "src/_index.yaml",
        """
        namespace: app
        entries:
          - name: values
            kind: registry.entry
            meta:
              2: two
              true: yes
              null: ~
              2024-01-02: date key
            when: 2024-01-02 10:30:00
            when_tz: 2024-01-02T10:30:00+02:00
            octal: 0755
            hex: 0x1F
            sexagesimal: 1:30
            off: off
            float: 1e3
            plain_on: on
        """,
    )
    entry = by_id(load_app(tmp_path))["app:values"]
    assert entry.meta == {"2": "two", "true": "yes", "null": None, "2024-01-02": "date key"}
    assert entry.data == {
        "when": "2024-01-02 10:30:00",  # timestamps stay text
        "when_tz": "2024-01-02T10:30:00+02:00",
        "octal": 493,  # Go's leading-zero octal
        "hex": 31,
        "sexagesimal": "1:30",  # YAML 1.2: no base 60
        "off": "off",  # only true/false are booleans
        "float": 1000.0,
        "plain_on": "on",
    }


@pytest.mark.parametrize(
    ("value", "field"),
    [("!!set {a, b}", "blob"), (".nan", "blob"), ("[1, .inf]", "blob[1]"), ("[1, 99999999999999999999]", "blob[1]")],
)
def test_values_without_json_form_are_errors(tmp_path: Path, value: str, field: str) -> None:
    text = f"namespace: app\nentries:\n  - name: x\n    kind: a\n    blob: {value}\n"
    write(tmp_path, "src/_index.yaml", text)
    (error,) = problems(tmp_path)
    assert error.where == "src/_index.yaml:5"
    assert error.field == field
    assert "JSON-compatible" in error.reason


def test_single_entry_file_keeps_version_as_data(tmp_path: Path) -> None:
    write(tmp_path, "src/dep.yaml", "namespace: app\nname: dep\nkind: registry.entry\nversion: '^1.0'\n")
    write(tmp_path, "src/many.yaml", "version: '1.0'\n" + defs("app", "name: x, kind: registry.entry"))
    entries = by_id(load_app(tmp_path))
    assert entries["app:dep"].data == {"version": "^1.0"}
    assert entries["app:x"].data == {}


def test_empty_entries_and_namespace_only_files_define_nothing(tmp_path: Path) -> None:
    write(tmp_path, "src/a.yaml", "namespace: app\nentries:\n")
    write(tmp_path, "src/b.yaml", "namespace: app\n")
    assert load_app(tmp_path).entries == ()


def test_loaded_values_are_fresh_and_stable(app_dir: Path) -> None:
    first = load_app(app_dir)
    second = load_app(app_dir)
    assert first == second
    first.entries[0].entry.data["lifecycle"]["auto_start"] = False
    assert second.entries[0].entry.data["lifecycle"]["auto_start"] is True


# -- property: what is written is what is loaded ------------------------------------------------

_WORD = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True)
_NAMESPACE = st.builds(".".join, st.lists(_WORD, min_size=1, max_size=3))
_NAME = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters=":"),
    min_size=1,
    max_size=12,
).filter(lambda s: not any(c.isspace() for c in s))
_RESERVED = {
    "name", "kind", "meta", "source", "func", "process", "host", "storage", "storages", "lifecycle",
    "imports", "driver", "queue", "database", "store", "set", "contracts", "client", "config", "fs",
    "server", "router",
}
# pyyaml writes NEL and the Unicode line separators raw with allow_unicode, then reads them as
# line breaks: that round trip is pyyaml's own, so they are left out.
_TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x85\u2028\u2029")
_KEY = st.text(_TEXT, max_size=10).filter(lambda k: k not in _RESERVED)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(_TEXT, max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEY, inner, max_size=3),
    max_leaves=8,
)
_REF = st.one_of(_WORD, st.builds(lambda ns, n: f"{ns}:{n}", _NAMESPACE, _WORD))
_KINDS = [
    "registry.entry", "function.lua", "http.endpoint", "http.router", "process.service", "env.variable",
    "x.custom",
]


@st.composite
def _entries(draw: st.DrawFn) -> list[dict[str, Any]]:
    names = draw(st.lists(_NAME, min_size=1, max_size=6, unique=True))
    out = []
    for name in names:
        kind = draw(st.sampled_from(_KINDS))
        entry: dict[str, Any] = {"name": name, "kind": kind}
        meta = draw(st.dictionaries(_KEY, _JSON, max_size=3))
        data = draw(st.dictionaries(_KEY, _JSON, max_size=4))
        if kind == "http.router":
            meta["server"] = draw(_REF)
        if kind == "http.endpoint":
            meta["router"] = draw(_REF)
            data["func"] = draw(_REF)
        if kind == "process.service":
            data.update(process=draw(_REF), host=draw(_REF))
            data["lifecycle"] = {"depends_on": draw(st.lists(_REF, max_size=3)), "auto_start": True}
        if kind == "env.variable":
            data["storage"] = draw(_REF)
        if kind == "function.lua":
            data["imports"] = draw(st.dictionaries(_WORD, _REF, max_size=3))
        if meta or draw(st.booleans()):
            entry["meta"] = meta
        entry.update(data)
        out.append(entry)
    return out


def _expected(ns: str, entry: dict[str, Any]) -> Entry:
    def resolve(value: str) -> str:
        return value if ":" in value else f"{ns}:{value}"

    data = {k: v for k, v in entry.items() if k not in ("name", "kind", "meta")}
    meta = dict(entry.get("meta", {}))
    for key in ("server", "router"):
        if key in meta:
            meta[key] = resolve(meta[key])
    for key in ("func", "process", "host", "storage"):
        if key in data:
            data[key] = resolve(data[key])
    if "lifecycle" in data:
        depends_on = [resolve(v) for v in data["lifecycle"]["depends_on"]]
        data["lifecycle"] = {**data["lifecycle"], "depends_on": depends_on}
    if "imports" in data:
        data["imports"] = {k: resolve(v) for k, v in data["imports"].items()}
    return Entry(f"{ns}:{entry['name']}", entry["kind"], meta, data)


class _Quoting(yaml.SafeDumper):
    """Quotes every string: PyYAML's dumper writes YAML 1.1, which leaves strings like `0E0` plain
    that YAML 1.2 (Wippy's rules) reads as numbers."""


_Quoting.add_representer(str, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style='"'))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    files=st.lists(st.tuples(_NAMESPACE, _entries()), min_size=1, max_size=4),
    flow=st.sampled_from([False, None]),
    unicode=st.booleans(),
)
def test_written_entries_load_back(
    files: list[tuple[str, list[dict[str, Any]]]], flow: bool | None, unicode: bool
) -> None:
    seen: set[str] = set()
    expected = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "src").mkdir()
        for number, (ns, entries) in enumerate(files):
            kept = [e for e in entries if f"{ns}:{e['name']}" not in seen]
            seen.update(f"{ns}:{e['name']}" for e in kept)
            doc = {"namespace": ns, "entries": kept}
            text = yaml.dump(doc, Dumper=_Quoting, sort_keys=False, default_flow_style=flow, allow_unicode=unicode)
            folder = "src/nested" if number % 2 else "src"
            (root / folder).mkdir(exist_ok=True)
            (root / folder / f"{number:02d}.yaml").write_text(text, encoding="utf-8")
            expected.append((f"{folder}/{number:02d}.yaml", [_expected(ns, e) for e in kept]))
        expected.sort(key=lambda pair: pair[0])
        app = load_app(root)
        assert [loaded.entry for loaded in app.entries] == [e for _, group in expected for e in group]
        assert load_app(root) == app
