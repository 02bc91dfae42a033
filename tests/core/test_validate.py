"""Validation of changesets before anything is appended."""

from __future__ import annotations

import pytest

from wippy.core import DefinitionErrors, Entry, Op, validate_changeset
from wippy.projections import RegistryState


def state_with(*entries: Entry) -> RegistryState:
    s = RegistryState()
    s.load({x.id: x for x in entries}, {x.id: f"src/_index.yaml:{i + 1}" for i, x in enumerate(entries)}, {},
           version=1, seq=1)
    return s


SERVER = Entry("app:gateway", "http.service", {}, {"addr": ":8080"})
ROUTER = Entry("app:api", "http.router", {"server": "app:gateway"}, {"prefix": "/"})
HANDLER = Entry("app:hello", "function.lua", {}, {"source": "return {}", "method": "handler"})
ENDPOINT = Entry("app:hello.endpoint", "http.endpoint", {"router": "app:api"},
                 {"method": "GET", "path": "/hello", "func": "app:hello"})


def test_valid_changeset_passes() -> None:
    ops = [Op("create", e.id, e) for e in (SERVER, ROUTER, HANDLER, ENDPOINT)]
    assert validate_changeset(state_with(), ops) == []


def test_dangling_reference_names_file_entry_and_field() -> None:
    ops = [Op("create", ENDPOINT.id, ENDPOINT, "src/api/_index.yaml:12")]
    with pytest.raises(DefinitionErrors) as info:
        validate_changeset(state_with(), ops)
    text = str(info.value)
    assert "src/api/_index.yaml:12" in text
    assert "app:hello.endpoint" in text
    assert "meta.router" in text and "app:api" in text
    assert "field func" in text and "app:hello" in text
    assert len(info.value.errors) == 2


def test_deleting_a_referenced_entry_is_refused() -> None:
    s = state_with(SERVER, ROUTER)
    with pytest.raises(DefinitionErrors, match=r"app:api.*meta\.server.*app:gateway"):
        validate_changeset(s, [Op("delete", "app:gateway")])
    # deleting both together is fine
    assert validate_changeset(s, [Op("delete", "app:gateway"), Op("delete", "app:api")]) == []


def test_create_existing_and_update_missing_are_errors() -> None:
    s = state_with(SERVER)
    with pytest.raises(DefinitionErrors, match="already exists"):
        validate_changeset(s, [Op("create", SERVER.id, SERVER)])
    with pytest.raises(DefinitionErrors, match="no such entry"):
        validate_changeset(s, [Op("update", HANDLER.id, HANDLER)])
    with pytest.raises(DefinitionErrors, match="no such entry"):
        validate_changeset(s, [Op("delete", "app:nope")])


def test_unknown_kind_is_allowed_and_reported() -> None:
    odd = Entry("app:odd", "my.custom.kind", {}, {})
    warnings = validate_changeset(state_with(), [Op("create", odd.id, odd)])
    assert warnings == ["app:odd: unknown kind 'my.custom.kind' (stored, no runtime handler)"]


def test_bad_id_is_an_error() -> None:
    bad = Entry("nocolon", "registry.entry", {}, {})
    with pytest.raises(DefinitionErrors, match="namespace:name"):
        validate_changeset(state_with(), [Op("create", bad.id, bad)])
