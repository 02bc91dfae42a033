"""The strict-mode schema normaliser for structured output (OpenAI strict: all required, no extras)."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
from hypothesis import given
from hypothesis import strategies as st

from wippy.services._llm_schema import drop_added_nulls, strict_schema

LEAVES = st.sampled_from([{"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"},
                          {"type": "string", "enum": ["a", "b"]}, {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                          {"description": "anything"}])
NAMES = st.from_regex(r"[a-z]{1,6}", fullmatch=True)


def _object(fields: dict[str, tuple[dict[str, Any], bool]], closed: bool | None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": {k: v for k, (v, _) in fields.items()},
                              "required": [k for k, (_, req) in fields.items() if req]}
    if closed is not None:
        schema["additionalProperties"] = closed
    return schema


SCHEMAS = st.recursive(LEAVES, lambda children: st.one_of(
    st.builds(_object, st.dictionaries(NAMES, st.tuples(children, st.booleans()), max_size=4),
              st.sampled_from([None, True, False])),
    st.builds(lambda item: {"type": "array", "items": item}, children),
    st.builds(lambda a, b: {"oneOf": [a, b]}, children, children),
), max_leaves=12)


def _objects(node: Any) -> list[dict[str, Any]]:
    """Every object schema inside ``node``."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "properties" in node:
            found.append(node)
        for value in node.values():
            found += _objects(value)
    elif isinstance(node, list):
        for value in node:
            found += _objects(value)
    return found


@given(SCHEMAS)
def test_every_object_requires_all_properties_and_allows_no_others(schema: dict[str, Any]) -> None:
    before = copy.deepcopy(schema)
    strict = strict_schema(schema)
    assert schema == before  # the app's schema is not touched
    for node in _objects(strict):
        assert node["required"] == list(node["properties"]) and node["additionalProperties"] is False
    assert "oneOf" not in str(strict)
    assert strict_schema(strict) == strict
    jsonschema.Draft202012Validator.check_schema(strict)


@given(SCHEMAS)
def test_optional_properties_accept_null_and_required_ones_keep_their_type(schema: dict[str, Any]) -> None:
    strict = strict_schema({"type": "object", "properties": {"opt": schema, "req": schema}, "required": ["req"]})
    assert jsonschema.Draft202012Validator(strict["properties"]["opt"]).is_valid(None)
    # strict mode has no oneOf: it becomes the (looser) anyOf, the rest keeps its meaning
    as_any_of = json.loads(json.dumps(schema).replace('"oneOf"', '"anyOf"'))
    accepts_null_before = jsonschema.Draft202012Validator(as_any_of).is_valid(None)
    assert jsonschema.Draft202012Validator(strict["properties"]["req"]).is_valid(None) == accepts_null_before


def test_refs_defs_and_nullable_shapes() -> None:
    schema = {"type": "object", "$defs": {"pt": {"type": "object", "properties": {"x": {"type": "number"}}}},
              "properties": {"at": {"$ref": "#/$defs/pt"}, "kind": {"type": "string", "enum": ["a", "b"]},
                             "either": {"type": ["string", "integer"]}}}
    strict = strict_schema(schema)
    assert strict["properties"]["at"] == {"anyOf": [{"$ref": "#/$defs/pt"}, {"type": "null"}]}
    assert strict["properties"]["kind"] == {"type": ["string", "null"], "enum": ["a", "b", None]}
    assert strict["properties"]["either"]["type"] == ["string", "integer", "null"]
    assert strict["$defs"]["pt"] == {"type": "object", "properties": {"x": {"type": ["number", "null"]}},
                                     "required": ["x"], "additionalProperties": False}
    validator = jsonschema.Draft202012Validator(strict)
    assert validator.is_valid({"at": {"x": None}, "kind": None, "either": 3})
    assert not validator.is_valid({"at": None, "kind": None, "either": None, "extra": 1})


def test_nulls_for_optional_fields_are_dropped_again() -> None:
    schema = {"type": "object", "required": ["name", "note"], "properties": {
        "name": {"type": "string"}, "note": {"type": ["string", "null"]}, "age": {"type": "integer"},
        "items": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "integer"}}}}}}
    value = {"name": "Ada", "note": None, "age": None, "items": [{"x": None}, {"x": 1}]}
    assert drop_added_nulls(value, schema) == {"name": "Ada", "note": None, "items": [{}, {"x": 1}]}
    assert drop_added_nulls("plain", schema) == "plain"
