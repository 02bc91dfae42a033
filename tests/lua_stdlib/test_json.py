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
