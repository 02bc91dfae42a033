"""The module system: dependencies (native, vendored, transitive) and the link stage."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from wippy.core._components import NativeComponent, native_components, register_native_component
from wippy.core._entry import Entry
from wippy.core._errors import DefinitionError, DefinitionErrors
from wippy.core._loader import LoadedApp, load_app
from wippy.core._modules import inject, version_satisfies

LLM = NativeComponent("wippy/llm", "LLM calls, provided natively")


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def vendor(root: Path, name: str, index: str, *, version: str | None = "1.2.0") -> Path:
    module_root = root / ".wippy" / "vendor" / name
    org, module = name.split("/")
    manifest = f"organization: {org}\nmodule: {module}\n" + (f"version: {version}\n" if version else "")
    write(module_root, "wippy.yaml", manifest)
    write(module_root, "src/_index.yaml", index)
    return module_root


def by_id(app: LoadedApp) -> dict[str, Entry]:
    return {loaded.entry.id: loaded.entry for loaded in app.entries}


def one(ns: str, name: str, kind: str, **fields: str) -> str:
    """A single-entry definition file."""
    head = f"namespace: {ns}\nname: {name}\nkind: {kind}\n"
    return head + "".join(f"{k}: {v}\n" for k, v in fields.items())


def problems(app_dir: Path, **kwargs: object) -> list[str]:
    with pytest.raises(DefinitionErrors) as caught:
        load_app(app_dir, **kwargs)  # type: ignore[arg-type]
    return [str(e) for e in caught.value.errors]


APP = """
namespace: app
entries:
  - name: dep.web
    kind: ns.dependency
    component: acme/web
    version: "^1.0"
    parameters:
      - {name: router, value: app:api}
      - {name: acme.web:host, value: app:processes}
      - {name: label, value: {text: hi, tags: [a]}}
  - name: processes
    kind: process.host
  - name: gateway
    kind: http.service
    addr: ":8080"
  - name: api
    kind: http.router
    meta: {server: gateway}
    middleware: [logging]
"""

WEB = """
namespace: acme.web
entries:
  - name: definition
    kind: ns.definition
    meta: {title: Web things}
  - name: router
    kind: ns.requirement
    targets:
      - {entry: acme.web:hello.endpoint, path: .meta.router}
  - name: host
    kind: ns.requirement
    targets:
      - {entry: worker, path: .host}
  - name: middleware
    kind: ns.requirement
    default: cors
    targets:
      - {entry: app:api, path: .middleware+=}
      - {entry: app:api, path: .post_middleware +=}
  - name: label
    kind: ns.requirement
    targets:
      - {entry: hello, path: .options.ui.label}
  - name: optional_blank
    kind: ns.requirement
    default: ""
    targets:
      - {entry: hello, path: .meta.blank}
  - name: api_key
    kind: ns.requirement
    targets:
      - {entry: hello, path: .token}
  - name: hello
    kind: function.lua
    source: file://hello.lua
    method: handler
  - name: hello.endpoint
    kind: http.endpoint
    meta: {router: placeholder}
    method: GET
    path: /hello
    func: hello
  - name: worker_code
    kind: process.lua
    source: "return {}"
    method: main
  - name: worker
    kind: process.service
    process: worker_code
"""


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    write(tmp_path, "src/_index.yaml", APP)
    module_root = vendor(tmp_path, "acme/web", WEB)
    write(module_root, "src/hello.lua", "return { handler = function() return 'hi' end }\n")
    return tmp_path


def test_native_component_dependency_records_its_parameters(tmp_path: Path) -> None:
    write(
        tmp_path,
        "src/_index.yaml",
        """
        namespace: app
        entries:
          - name: __dependency.llm
            kind: ns.dependency
            component: wippy/llm
            version: "*"
            parameters:
              - {name: env_storage, value: app:file_env}
              - {name: process_host, value: app:processes}
        """,
    )
    app = load_app(tmp_path, components={LLM.name: LLM})
    assert dict(app.native_dependencies) == {
        "wippy/llm": {"env_storage": "app:file_env", "process_host": "app:processes"}
    }
    dependency = by_id(app)["app:__dependency.llm"]
    assert dependency.kind == "ns.dependency"
    assert dependency.data["component"] == "wippy/llm"
    assert app.warnings == ()


def test_components_default_to_the_registered_ones(tmp_path: Path) -> None:
    write(tmp_path, "src/_index.yaml", one("app", "dep", "ns.dependency", component="acme/widgets"))
    assert "acme/widgets" not in native_components()
    (error,) = problems(tmp_path)
    assert "acme/widgets is neither provided by this runtime nor vendored under .wippy/vendor/acme/widgets" in error


def test_unknown_component_names_the_dependency_entry(tmp_path: Path) -> None:
    write(
        tmp_path,
        "src/_index.yaml",
        """
        namespace: app
        entries:
          - name: ok
            kind: registry.entry
          - name: dep.widgets
            kind: ns.dependency
            component: acme/widgets
        """,
    )
    assert problems(tmp_path) == [
        "src/_index.yaml:5: entry app:dep.widgets: field component: component acme/widgets is neither provided "
        "by this runtime nor vendored under .wippy/vendor/acme/widgets"
    ]


def test_packed_module_gets_a_hint(tmp_path: Path) -> None:
    write(tmp_path, "src/_index.yaml", one("app", "dep", "ns.dependency", component="acme/web"))
    write(tmp_path, ".wippy/vendor/acme/web-1.2.0.wapp", "binary")
    (error,) = problems(tmp_path)
    assert "options.unpack_modules" in error


def test_vendored_module_is_loaded_and_linked(app_dir: Path) -> None:
    app = load_app(app_dir)
    entries = by_id(app)
    # The app's entries first, then the module's, each with its origin.
    ids = [loaded.entry.id for loaded in app.entries]
    assert ids[:4] == ["app:dep.web", "app:processes", "app:gateway", "app:api"]
    assert ids[4] == "acme.web:definition"
    origin = {loaded.entry.id: loaded.origin for loaded in app.entries}
    assert origin["acme.web:definition"] == ".wippy/vendor/acme/web/src/_index.yaml:3"
    # file:// is relative to the module's own file.
    assert entries["acme.web:hello"].data["source"] == "return { handler = function() return 'hi' end }\n"
    # .meta.x, by bare parameter name.
    assert entries["acme.web:hello.endpoint"].meta == {"router": "app:api"}
    assert entries["acme.web:hello.endpoint"].data["func"] == "acme.web:hello"
    # .host, by the requirement's full id; the target named bare, in the requirement's namespace.
    assert entries["acme.web:worker"].data == {"process": "acme.web:worker_code", "host": "app:processes"}
    # += appends to an existing list, or creates one; the default fills an unpassed requirement.
    assert entries["app:api"].data == {"middleware": ["logging", "cors"], "post_middleware": ["cors"]}
    # Nested paths create mappings; values are copied, never shared.
    assert entries["acme.web:hello"].data["options"] == {"ui": {"label": {"text": "hi", "tags": ["a"]}}}
    # A default that is present but empty still counts.
    assert entries["acme.web:hello"].meta == {"blank": ""}
    # Unresolved mandatory requirement: a warning, not an error, and its target is untouched.
    assert "token" not in entries["acme.web:hello"].data
    (warning,) = app.warnings
    assert warning.startswith(".wippy/vendor/acme/web/src/_index.yaml:")
    assert "requirement acme.web:api_key is not provided" in warning


def test_link_stage_does_not_change_entries_in_place(app_dir: Path) -> None:
    api = Entry("app:api", "http.router", {"server": "app:gateway"},
                {"middleware": ["logging"], "o": {"a": 1}})
    changed = inject(api, ".middleware+=", "cors")
    deeper = inject(changed, ".o.b.c", [1])
    assert api.data == {"middleware": ["logging"], "o": {"a": 1}}
    assert changed.data == {"middleware": ["logging", "cors"], "o": {"a": 1}}
    assert deeper.data == {"middleware": ["logging", "cors"], "o": {"a": 1, "b": {"c": [1]}}}
    assert changed.data["o"] is api.data["o"]  # untouched branches are shared, safely
    assert inject(api, "meta.server", "app:other").meta == {"server": "app:other"}
    assert load_app(app_dir) == load_app(app_dir)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("", "must be a dot path"),
        (".a..b", "must be a dot path"),
        (".meta", "must name a field inside meta"),
        (".o.a.x", "o.a is not a mapping"),
        (".o+=", "o is not a list"),
    ],
)
def test_bad_injection_paths(path: str, reason: str) -> None:
    entry = Entry("app:x", "registry.entry", {}, {"o": {"a": 1}})
    with pytest.raises(DefinitionError, match=reason.replace(".", r"\.")):
        inject(entry, path, "v")


def test_link_errors_name_the_requirement(tmp_path: Path) -> None:
    write(
        tmp_path,
        "src/_index.yaml",
        """
        namespace: app
        entries:
          - name: dep
            kind: ns.dependency
            component: acme/lib
            parameters: [{name: thing, value: x}, {value: 1}]
          - {name: target, kind: registry.entry, scalar: 1}
        """,
    )
    vendor(
        tmp_path,
        "acme/lib",
        """
        namespace: acme.lib
        entries:
          - name: thing
            kind: ns.requirement
            targets:
              - {entry: app:nope, path: .x}
              - {entry: app:target, path: .scalar.deeper}
              - {entry: app:target}
          - name: broken
            kind: ns.requirement
            default: 1
            targets: {entry: app:target}
        """,
    )
    assert problems(tmp_path) == [
        "src/_index.yaml:3: entry app:dep: field parameters[1].name: each parameter needs a name",
        ".wippy/vendor/acme/lib/src/_index.yaml:3: entry acme.lib:thing: field targets[0].entry: "
        "target entry app:nope does not exist",
        ".wippy/vendor/acme/lib/src/_index.yaml:3: entry acme.lib:thing: field targets[1].path: "
        "app:target: path '.scalar.deeper': scalar is not a mapping",
        ".wippy/vendor/acme/lib/src/_index.yaml:3: entry acme.lib:thing: field targets[2]: "
        "must be a mapping with entry and path strings",
        ".wippy/vendor/acme/lib/src/_index.yaml:9: entry acme.lib:broken: field targets: "
        "must be a list of {entry, path}",
    ]


def test_vendored_sources_stay_inside_the_module(tmp_path: Path) -> None:
    write(tmp_path, "src/_index.yaml", one("app", "dep", "ns.dependency", component="acme/lib"))
    write(tmp_path, "src/secret.lua", "return 'secret'\n")
    vendor(tmp_path, "acme/lib", "namespace: acme.lib\nname: f\nkind: function.lua\nsource: file://../../../../../src/secret.lua\n")
    assert problems(tmp_path) == [
        # The line of the offending field.
        ".wippy/vendor/acme/lib/src/_index.yaml:4: entry acme.lib:f: field source: "
        "file://../../../../../src/secret.lua points outside .wippy/vendor/acme/lib"
    ]


def test_transitive_dependencies_load_each_component_once(tmp_path: Path) -> None:
    write(
        tmp_path,
        "src/_index.yaml",
        """
        namespace: app
        entries:
          - {name: dep.a, kind: ns.dependency, component: acme/a, parameters: [{name: greeting, value: hi}]}
          - {name: dep.b, kind: ns.dependency, component: acme/b}
          - {name: dep.llm, kind: ns.dependency, component: wippy/llm, parameters: [{name: host, value: h}]}
        """,
    )
    vendor(
        tmp_path,
        "acme/a",
        """
        namespace: acme.a
        entries:
          - {name: greeting, kind: ns.requirement, targets: [{entry: config, path: .greeting}]}
          - {name: config, kind: registry.entry}
          - name: needs_b
            kind: ns.dependency
            component: acme/b
            parameters: [{name: source, value: acme.a:config}]
        """,
    )
    vendor(
        tmp_path,
        "acme/b",
        """
        namespace: acme.b
        entries:
          - {name: source, kind: ns.requirement, targets: [{entry: sink, path: .meta.from}]}
          - {name: sink, kind: registry.entry}
          - {name: back_to_a, kind: ns.dependency, component: acme/a}
          - {name: llm_too, kind: ns.dependency, component: wippy/llm, parameters: [{name: host, value: x}]}
        """,
    )
    app = load_app(tmp_path, components={LLM.name: LLM})
    entries = by_id(app)
    assert [loaded.entry.id for loaded in app.entries] == [
        "app:dep.a", "app:dep.b", "app:dep.llm",
        "acme.a:greeting", "acme.a:config", "acme.a:needs_b",
        "acme.b:source", "acme.b:sink", "acme.b:back_to_a", "acme.b:llm_too",
    ]
    assert entries["acme.a:config"].data == {"greeting": "hi"}
    assert entries["acme.b:sink"].meta == {"from": "acme.a:config"}
    # The app's parameters come first for a native component too.
    assert dict(app.native_dependencies) == {"wippy/llm": {"host": "h"}}
    assert app.warnings == ()


def test_unused_parameter_is_a_warning(tmp_path: Path) -> None:
    write(
        tmp_path,
        "src/_index.yaml",
        "namespace: app\nentries:\n"
        "  - {name: dep, kind: ns.dependency, component: acme/lib, parameters: [{name: typo, value: 1}]}\n",
    )
    vendor(tmp_path, "acme/lib", "namespace: acme.lib\nentries: []\n")
    (warning,) = load_app(tmp_path).warnings
    assert warning == (
        "src/_index.yaml:3: app:dep passes parameter 'typo', but acme/lib has no such requirement"
    )


def test_app_requirements_use_their_defaults(tmp_path: Path) -> None:
    write(
        tmp_path,
        "src/_index.yaml",
        """
        namespace: graph
        entries:
          - {name: prefix, kind: ns.requirement, default: /graph, targets: [{entry: router, path: .prefix}]}
          - {name: api_router, kind: ns.requirement, targets: [{entry: page, path: .meta.router}]}
          - {name: router, kind: http.router}
          - {name: page, kind: http.endpoint, method: GET, path: /}
        """,
    )
    app = load_app(tmp_path)
    assert by_id(app)["graph:router"].data == {"prefix": "/graph"}
    assert by_id(app)["graph:page"].meta == {}
    (warning,) = app.warnings
    assert "requirement graph:api_router is not provided" in warning


def test_version_constraints_are_checked(tmp_path: Path) -> None:
    write(
        tmp_path,
        "src/_index.yaml",
        """
        namespace: app
        entries:
          - {name: a, kind: ns.dependency, component: acme/a, version: ">=2.0 <3"}
          - {name: b, kind: ns.dependency, component: acme/b, version: "~1.2"}
          - {name: c, kind: ns.dependency, component: acme/c, version: "1.x || >=9"}
          - {name: d, kind: ns.dependency, component: acme/d, version: "latest-ish"}
        """,
    )
    for name in ("a", "b", "c", "d"):
        vendor(tmp_path, f"acme/{name}", f"namespace: acme.{name}\nentries: []\n", version="1.2.7")
    (error,) = problems(tmp_path)
    assert error == (
        "src/_index.yaml:3: entry app:a: field version: vendored acme/a is version 1.2.7, "
        "which does not satisfy '>=2.0 <3'"
    )
    (tmp_path / "src/_index.yaml").write_text(
        one("app", "d", "ns.dependency", component="acme/d", version="latest-ish")
    )
    (warning,) = load_app(tmp_path).warnings
    assert "not checked" in warning


def test_the_apps_constraint_wins_over_a_modules(tmp_path: Path) -> None:
    write(
        tmp_path,
        "src/_index.yaml",
        "namespace: app\nentries:\n"
        "  - {name: a, kind: ns.dependency, component: acme/a}\n"
        "  - {name: b, kind: ns.dependency, component: acme/b, version: ^2.0.0}\n",
    )
    vendor(tmp_path, "acme/a", one("acme.a", "b", "ns.dependency", component="acme/b", version="^1.0"))
    vendor(tmp_path, "acme/b", "namespace: acme.b\nentries: []\n", version="2.1.0")
    assert load_app(tmp_path).warnings == ()


@pytest.mark.parametrize(
    ("version", "constraint", "holds"),
    [
        ("1.2.3", "1.2.3", True),
        ("1.2.3", "=1.2.4", False),
        ("1.2.3", "*", True),
        ("1.2.3", "", True),
        ("1.2.3", "^1.0.0", True),
        ("2.0.0", "^1.0.0", False),
        ("0.4.23", "^0.4.0", True),
        ("0.5.0", "^0.4.0", False),
        ("0.0.3", "^0.0.3", True),
        ("0.0.4", "^0.0.3", False),
        ("1.2.9", "~1.2.3", True),
        ("1.3.0", "~1.2.3", False),
        ("1.9.0", "~1", True),
        ("1.2.3", ">= 1.2, < 2", True),
        ("2.0.0", ">=1.2 <2", False),
        ("1.2.3", ">1.2", False),
        ("1.3.0", ">1.2", True),
        ("1.2.9", "<=1.2", True),
        ("1.3.0", "<=1.2", False),
        ("1.5.0", "1.2 - 1.6", True),
        ("1.7.0", "1.2 - 1.6", False),
        ("3.0.0", "^1 || ^3", True),
        ("1.0.0-beta.2", ">=1.0.0-beta.10", False),
        ("1.0.0", ">1.0.0-rc.1", True),
        ("v1.2.3", "1.x", True),
        ("1.2.3", "banana", None),
        ("1.2.3", "~>1.2", None),
        ("1.x", "1.2.3", None),
    ],
)
def test_version_satisfies(version: str, constraint: str, holds: bool | None) -> None:
    assert version_satisfies(version, constraint) is holds


def test_native_component_registry() -> None:
    before = dict(native_components())
    snapshot = native_components()
    with pytest.raises(TypeError):
        snapshot["x/y"] = LLM  # type: ignore[index]
    with pytest.raises(ValueError, match="org/module"):
        register_native_component(NativeComponent("../etc", "nope"))
    assert dict(native_components()) == before


def test_registering_a_component_makes_it_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wippy.core import _components

    monkeypatch.setattr(_components, "_REGISTRY", {})
    register_native_component(LLM)
    register_native_component(NativeComponent("wippy/llm", "LLM calls, provided natively"))  # same: no-op
    with pytest.raises(ValueError, match="already registered"):
        register_native_component(NativeComponent("wippy/llm", "something else"))
    write(tmp_path, "src/_index.yaml", one("app", "dep", "ns.dependency", component="wippy/llm"))
    assert dict(load_app(tmp_path).native_dependencies) == {"wippy/llm": {}}
