"""`json` with Wippy's encoding rules."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from .helpers import fn, run_entry


async def run(body: str, *args: object) -> tuple[bool, tuple[object, ...]]:
    entry = fn("app:j", "local json = require('json')\nreturn { call = function(...) " + body + " end }",
               modules=["json"])
    return await run_entry(entry, args=args)


async def test_encode_rules() -> None:
    ok, res = await run("""
        return {json.encode({}), json.encode({1, 2, 3}), json.encode({a = 1}), json.encode(nil),
                json.encode(1.0), json.encode("x"), json.encode({a = {b = {true, false}}})}
    """)
    assert ok, res
    assert res[0] == ["[]", "[1,2,3]", '{"a":1}', "null", "1", '"x"', '{"a":{"b":[true,false]}}']


async def test_frozen_tables_encode_like_plain_ones() -> None:
    ok, res = await run("return json.encode(table.freeze({a = 1, list = table.freeze({1, 2})}))")
    assert ok, res
    assert res[0] in ('{"a":1,"list":[1,2]}', '{"list":[1,2],"a":1}')


async def test_sparse_and_mixed_tables_are_errors() -> None:
    ok, res = await run("""
        local _, e1 = json.encode({[1] = "a", [3] = "c"})
        local _, e2 = json.encode({1, 2, x = 3})
        local _, e3 = json.encode({f = function() end})
        return {e1:kind(), e2:kind(), e3:kind(), e1:message()}
    """)
    assert ok, res
    assert res[0][:3] == ["INVALID", "INVALID", "INVALID"]
    assert "sparse" in res[0][3]


async def test_decode_and_errors() -> None:
    ok, res = await run("""
        local v = json.decode('{"a": [1, 2.5, "x", null, {"b": true}]}')
        local bad, err = json.decode("{nope")
        return {v.a[1], v.a[2], v.a[3], v.a[5].b, bad == nil, err:kind()}
    """)
    assert ok, res
    assert res[0] == [1, 2.5, "x", True, True, "INVALID"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10),
    lambda inner: st.lists(inner.filter(lambda v: v is not None), min_size=1, max_size=4)
    | st.dictionaries(st.text(min_size=1, max_size=5), inner.filter(lambda v: v is not None), min_size=1,
                      max_size=4),
    max_leaves=10,
)


@settings(max_examples=40, deadline=None)
@given(json_values)
async def test_decode_then_encode_round_trips(value: object) -> None:
    text = json.dumps(value)
    ok, res = await run("return json.encode(json.decode(...))", text)
    assert ok, res
    assert json.loads(res[0]) == value  # type: ignore[arg-type]


async def test_nan_and_infinity_encode_as_null_like_wippy() -> None:
    ok, res = await run("return json.encode({a = 0/0, b = 1/0, c = -1/0, d = 1.5})")
    assert ok, res
    assert json.loads(res[0]) == {"a": None, "b": None, "c": None, "d": 1.5}


async def test_binary_strings_encode_with_replacement_characters_like_go() -> None:
    ok, res = await run("local s = ...; return json.encode({k = s, list = {s}}), json.encode(s)", b"ok\xff\xfe")
    assert ok, res
    assert json.loads(res[0]) == {"k": "ok\ufffd\ufffd", "list": ["ok\ufffd\ufffd"]}
    assert json.loads(res[1]) == "ok\ufffd\ufffd"


async def test_self_referencing_tables_are_errors() -> None:
    ok, res = await run("local t = {}; t.me = t; local _, err = json.encode(t); return err:kind(), err:message()")
    assert ok, res
    assert res[0] == "INVALID"
    assert "contains itself" in res[1]


async def test_decode_edge_cases() -> None:
    ok, res = await run("""
        local _, e1 = json.decode("")
        local _, e2 = json.decode(42)
        local _, e3 = json.decode(...)
        local big = json.decode("[9223372036854775807, 18446744073709551615]")
        return {e1:kind(), e2:kind(), e2:message(), e3:kind(), math.type(big[1]), big[1] == math.maxinteger,
                math.type(big[2]), json.decode("null") == nil}
    """, b"\xff")
    assert ok, res
    assert res[0] == ["INVALID", "INVALID", "json.decode: expected a string, got number", "INVALID", "integer", True,
                      "float", True]


SCHEMA = """{ type = "object",
    properties = { name = {type = "string", minLength = 1}, email = {type = "string", format = "email"},
                   age = {type = "integer", minimum = 0, maximum = 150}, tags = {type = "array"},
                   meta = {type = "object"}, items = {type = "array", items = {type = "object", required = {"sku"}}} },
    required = {"name", "email"} }"""


async def test_validate_accepts_valid_data_and_names_failing_paths() -> None:
    ok, res = await run(f"""
        local schema = {SCHEMA}
        local v1, e1 = json.validate(schema, {{name = "Alice", email = "a@example.com", age = 30, tags = {{}},
                                              meta = {{}}, items = {{{{sku = "A"}}}}}})
        local v2, e2 = json.validate(schema, {{name = "", age = 200, items = {{{{qty = 1}}}}}})
        return {{v1, e1 == nil, v2, e2:kind(), e2:message(), e2:details()}}
    """)
    assert ok, res
    v1, no_err, v2, kind, message, details = res[0]
    assert (v1, no_err, v2, kind) == (True, True, False, "INVALID")
    assert message.startswith("json.validate: validation failed: ")
    for path in ("$: 'email' is a required property", "$.age: 200 is greater than the maximum of 150",
                 "$.name: '' should be non-empty", "$.items[0]: 'sku' is a required property"):
        assert path in message
    assert {"path": "$.age", "message": "200 is greater than the maximum of 150"} in details["errors"]


async def test_validate_string_schemas_and_format_is_an_annotation() -> None:
    ok, res = await run("""
        local a = json.validate('{"type":"number","minimum":0}', 42)
        local b, e = json.validate('{"type":"number","minimum":0}', -1)
        local c = json.validate({type = "string", format = "email"}, "not-an-email")
        local d = json.validate({type = "array", items = {type = "integer"}}, {1, 2, 3})
        return {a, b, e:message(), c, d}
    """)
    assert ok, res
    assert res[0] == [True, False, "json.validate: validation failed: $: -1 is less than the minimum of 0", True, True]


async def test_validate_string_checks_json_text() -> None:
    ok, res = await run(f"""
        local schema = {SCHEMA}
        local a = json.validate_string(schema, '{{"name":"x","email":"y"}}')
        local b, e1 = json.validate_string(schema, '{{"name":"x"}}')
        local c, e2 = json.validate_string(schema, '{{nope')
        local d, e3 = json.validate_string(schema, 42)
        return {{a, b, e1:message(), c, e2:kind(), e2:message(), d, e3:message()}}
    """)
    assert ok, res
    a, b, m1, c, k2, m2, d, m3 = res[0]
    assert (a, b, c, d, k2) == (True, False, False, False, "INVALID")
    assert "'email' is a required property" in m1
    assert m2.startswith("json.validate_string: data is not valid JSON")
    assert m3 == "json.validate_string: data must be a JSON string, got number"


async def test_bad_schemas_and_arguments_are_invalid_errors() -> None:
    ok, res = await run("""
        local out = {}
        for _, case in ipairs({
            {'{"type": 12}', 1}, {'{nope', 1}, {{minLength = "x"}, "a"}, {42, 1}, {{type = "string"}, nil},
            {{["$ref"] = "http://example.com/schema.json"}, 1},
        }) do
            local v, err = json.validate(case[1], case[2])
            out[#out + 1] = {v, err:kind(), err:message()}
        end
        local v, err = json.validate(nil, 1)
        out[#out + 1] = {v, err:kind(), err:message()}
        return out
    """)
    assert ok, res
    rows = res[0]
    assert all(r[0] is False and r[1] == "INVALID" for r in rows)
    messages = [r[2] for r in rows]
    assert messages[0].startswith("json.validate: invalid schema at $.type")
    assert messages[1].startswith("json.validate: schema is not valid JSON")
    assert messages[2].startswith("json.validate: invalid schema at $.minLength")
    assert messages[3] == "json.validate: schema must be a table or a JSON string, got number"
    assert messages[4] == "json.validate: data is required"
    assert messages[5].startswith("json.validate: schema reference cannot be resolved")
    assert messages[6] == "json.validate: schema is required"


async def test_empty_tables_validate_as_arrays_and_objects() -> None:
    ok, res = await run("""
        return {json.validate({type = "array", maxItems = 0}, {}), json.validate({type = "object"}, {}),
                json.validate({type = "object", properties = {}}, {a = 1}), (json.validate({type = "string"}, {}))}
    """)
    assert ok, res
    assert res[0] == [True, True, True, False]


@settings(max_examples=60, deadline=None)
@given(json_values)
async def test_validate_agrees_with_jsonschema(value: object) -> None:
    from jsonschema import Draft202012Validator

    schema = {"type": ["object", "array", "string"], "minLength": 2, "maxProperties": 2,
              "items": {"type": ["integer", "boolean", "string"]}, "additionalProperties": {"type": "string"}}
    ok, res = await run("local s, v = ...; local ok, err = json.validate_string(s, v); return ok, err and err:kind()",
                        json.dumps(schema), json.dumps(value))
    assert ok, res
    assert res[0] is Draft202012Validator(schema).is_valid(value)
    assert res[1] == (None if res[0] else "INVALID")


async def test_error_objects_encode_as_their_message() -> None:
    ok, res = await run("""
        local err = errors.new({message = "boom", kind = errors.NOT_FOUND, details = {f = print}})
        return json.encode({err = err})
    """)
    assert ok, res
    assert json.loads(res[0]) == {"err": "boom"}
