"""Native components that carry a bundle of entries: loaded and linked like a vendored module."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wippy.core._components import NativeComponent, native_components
from wippy.core._entry import Entry
from wippy.core._errors import DefinitionErrors
from wippy.core._loader import LoadedApp, load_app

BUNDLE = """
namespace: acme.web
entries:
  - name: router
    kind: ns.requirement
    targets:
      - {entry: acme.web.api:hello.endpoint, path: .meta.router}
  - name: greeting
    kind: ns.requirement
    default: hi
    targets:
      - {entry: acme.web.api:hello, path: .meta.greeting}
"""

API = """
namespace: acme.web.api
entries:
  - name: hello
    kind: function.lua
    source: file://hello.lua
    method: handler
  - name: hello.endpoint
    kind: http.endpoint
    method: GET
    path: /hello
    func: hello
"""

APP = """
namespace: app
entries:
  - {name: gateway, kind: http.service, addr: ":8080"}
  - {name: api, kind: http.router, meta: {server: app:gateway}}
  - name: dep.web
    kind: ns.dependency
    component: acme/web
    parameters:
      - {name: router, value: app:api}
      - {name: theme, value: dark}
"""


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


@pytest.fixture
def web(tmp_path: Path) -> NativeComponent:
    bundle = tmp_path / "bundles" / "acme.web"
    write(bundle, "_index.yaml", BUNDLE)
    write(bundle, "api/_index.yaml", API)
    write(bundle, "api/hello.lua", "return {handler = function() end}\n")
    return NativeComponent("acme/web", "Web things, provided natively", bundle=bundle)


def app_with(tmp_path: Path, index: str) -> Path:
    app = tmp_path / "app"
    write(app, "src/_index.yaml", index)
    return app


def load(app: Path, web: NativeComponent) -> LoadedApp:
    return load_app(app, components={web.name: web})


def by_id(app: LoadedApp) -> dict[str, Entry]:
    return {loaded.entry.id: loaded.entry for loaded in app.entries}


def test_bundle_entries_are_linked_with_the_dependencys_parameters(tmp_path: Path, web: NativeComponent) -> None:
    app = load(app_with(tmp_path, APP), web)
    entries = by_id(app)
    assert entries["acme.web.api:hello.endpoint"].meta["router"] == "app:api"
    assert entries["acme.web.api:hello"].data["source"] == "return {handler = function() end}\n"
    # the component stays native: its parameters are recorded for the runtime's own code, and one
    # the bundle does not declare (theme) is no warning, since that code may read it
    assert dict(app.native_dependencies) == {"acme/web": {"router": "app:api", "theme": "dark"}}
    assert app.warnings == ()
    # no vendored copy is looked for
    assert not (app.root / ".wippy").exists()


def test_a_requirement_without_parameter_takes_its_default(tmp_path: Path, web: NativeComponent) -> None:
    assert by_id(load(app_with(tmp_path, APP), web))["acme.web.api:hello"].meta["greeting"] == "hi"
    index = APP + "      - {name: acme.web:greeting, value: hello}\n"
    assert by_id(load(app_with(tmp_path / "2", index), web))["acme.web.api:hello"].meta["greeting"] == "hello"


def test_a_missing_required_parameter_is_a_warning_and_its_targets_are_left_out(
    tmp_path: Path, web: NativeComponent
) -> None:
    index = APP.replace("      - {name: router, value: app:api}\n", "")
    app = load(app_with(tmp_path, index), web)
    entries = by_id(app)
    assert "acme.web.api:hello.endpoint" not in entries
    assert "acme.web.api:hello" in entries and entries["acme.web.api:hello"].meta["greeting"] == "hi"
    not_provided, left_out = app.warnings
    assert not_provided.endswith(
        "requirement acme.web:router is not provided: no dependency passes a parameter 'router' and it has no default")
    assert left_out.endswith("the runtime leaves out what acme.web:router would wire: acme.web.api:hello.endpoint")


def test_without_a_dependency_the_bundle_is_not_loaded(tmp_path: Path, web: NativeComponent) -> None:
    app = load(app_with(tmp_path, "namespace: app\nentries:\n  - {name: x, kind: registry.entry}\n"), web)
    assert list(by_id(app)) == ["app:x"]


def test_bundle_errors_are_reported_with_their_file(tmp_path: Path, web: NativeComponent) -> None:
    assert web.bundle is not None
    write(web.bundle, "api/_index.yaml", API.replace("file://hello.lua", "file://../../../secret.lua"))
    with pytest.raises(DefinitionErrors) as caught:
        load(app_with(tmp_path, APP), web)
    # the entry is dropped, so the requirement aimed at it is reported too
    assert [str(e) for e in caught.value.errors] == [
        "../bundles/acme.web/api/_index.yaml:5: entry acme.web.api:hello: field source: "
        "file://../../../secret.lua points outside ../bundles/acme.web",
        "../bundles/acme.web/_index.yaml:7: entry acme.web:greeting: field targets[0].entry: "
        "target entry acme.web.api:hello does not exist",
    ]


def test_two_dependents_share_one_bundle(tmp_path: Path, web: NativeComponent) -> None:
    index = APP + "  - {name: dep.again, kind: ns.dependency, component: acme/web}\n"
    app = load(app_with(tmp_path, index), web)
    ids = [loaded.entry.id for loaded in app.entries]
    assert ids.count("acme.web.api:hello") == 1


def test_registered_components_compare_by_their_bundle(tmp_path: Path) -> None:
    plain = NativeComponent("acme/web", "Web things")
    assert plain.bundle is None and plain != NativeComponent("acme/web", "Web things", bundle=tmp_path)
    views = native_components().get("wippy/views")
    assert views is None or views.bundle is None or (views.bundle / "_index.yaml").is_file()


_VALUES = st.recursive(  # what an app's YAML may hold (integers past 64 bits are refused at load)
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(min_size=1, max_size=5), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=_VALUES)
def test_any_parameter_value_reaches_the_target(tmp_path_factory: pytest.TempPathFactory, value: Any) -> None:
    import json

    root = tmp_path_factory.mktemp("v")
    bundle = root / "bundle"
    write(bundle, "_index.yaml", BUNDLE)
    write(bundle, "api/_index.yaml", API)
    write(bundle, "api/hello.lua", "return {}\n")
    web = NativeComponent("acme/web", "Web things", bundle=bundle)
    index = APP + f"      - {{name: greeting, value: {json.dumps(value)}}}\n"
    assert by_id(load(app_with(root, index), web))["acme.web.api:hello"].meta["greeting"] == value
