"""`base64`, `hash` and `yaml`: values checked against Python's own libraries, binary data included."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wippy.core import load_yaml

from .helpers import fn, run_entry

# Lua strings with arbitrary bytes cannot come back to Python as results (lupa decodes them as
# UTF-8), so snippets return binary results as hex.
HEX = "local function hex(s) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end)) end\n"
ALL_BYTES = bytes(range(256))


async def run(body: str, *args: object, modules: tuple[str, ...] = ("base64", "hash", "yaml", "json")) -> object:
    requires = "".join(f"local {m} = require('{m}')\n" for m in modules)
    entry = fn("app:enc", requires + HEX + "return { call = function(...) " + body + " end }", modules=list(modules))
    ok, res = await run_entry(entry, args=args)
    assert ok, res
    return res[0] if len(res) == 1 else list(res)


# -- base64 ----------------------------------------------------------------------------------
async def test_base64_text_and_every_byte_value() -> None:
    res = await run("""
        local data = ...
        local enc = base64.encode(data)
        local dec, err = base64.decode(enc)
        return {enc, dec == data, #dec, err == nil, base64.encode("Hello, World!"), base64.encode(""),
                base64.decode("")}
    """, ALL_BYTES)
    assert res == [base64.b64encode(ALL_BYTES).decode(), True, 256, True, "SGVsbG8sIFdvcmxkIQ==", "", ""]


async def test_base64_decode_skips_line_breaks_like_go() -> None:
    assert await run("return (base64.decode('SGVs\\nbG8=\\r\\n'))") == "Hello"


@pytest.mark.parametrize("bad", ["!!!!", "SGVsbG8", "SGVsbG8==", "=SGVs", "SGVsbG8=SGVs", "SGV sbG8="])
async def test_base64_malformed_input_is_an_invalid_error(bad: str) -> None:
    res = await run("local v, err = base64.decode(...); return {v == nil, err:kind(), err:message()}", bad)
    assert isinstance(res, list)
    assert res[:2] == [True, "INVALID"]
    assert "base64.decode" in res[2]


async def test_base64_non_strings_are_invalid() -> None:
    res = await run("""
        local _, e1 = base64.encode(12)
        local _, e2 = base64.decode({})
        return {e1:kind(), e1:message(), e2:kind(), e2:message()}
    """)
    assert res == ["INVALID", "base64.encode: data must be a string, got number",
                   "INVALID", "base64.decode: data must be a string, got table"]


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
async def test_base64_round_trips_any_bytes(data: bytes) -> None:
    res = await run("local d = ...; local e = base64.encode(d); return {e, base64.decode(e) == d}", data)
    assert res == [base64.b64encode(data).decode(), True]


# -- hash ------------------------------------------------------------------------------------
async def test_digests_hex_and_raw() -> None:
    res = await run("""
        local data = ...
        return {hash.md5(data), hash.sha1(data), hash.sha256(data), hash.sha512(data),
                hex(hash.sha256(data, true)), #hash.md5("x", true), hash.sha256("hello")}
    """, ALL_BYTES)
    assert res == [hashlib.md5(ALL_BYTES).hexdigest(), hashlib.sha1(ALL_BYTES).hexdigest(),
                   hashlib.sha256(ALL_BYTES).hexdigest(), hashlib.sha512(ALL_BYTES).hexdigest(),
                   hashlib.sha256(ALL_BYTES).hexdigest(), 16,
                   "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"]


async def test_hmacs_take_data_then_secret() -> None:
    res = await run("""
        local data, secret = ...
        return {hash.hmac_md5(data, secret), hash.hmac_sha1(data, secret), hash.hmac_sha256(data, secret),
                hash.hmac_sha512(data, secret), hex(hash.hmac_sha256(data, secret, true))}
    """, b"message \xff", b"\x00secret\x80")
    key, msg = b"\x00secret\x80", b"message \xff"
    want = [hmac.new(key, msg, a).hexdigest() for a in ("md5", "sha1", "sha256", "sha512")]
    assert res == [*want, want[2]]


async def test_fnv_is_fnv1_like_gos_hash_fnv() -> None:
    # Go's hash/fnv test vectors for New32 and New64 (FNV-1); fnv64 is a float, as in Wippy
    res = await run("""
        local out = {}
        for _, s in ipairs({"", "a", "ab", "abc"}) do out[#out + 1] = {hash.fnv32(s), hash.fnv64(s)} end
        out[#out + 1] = math.type(hash.fnv32("a"))
        out[#out + 1] = math.type(hash.fnv64("a"))
        return out
    """)
    assert isinstance(res, list)
    assert [r[0] for r in res[:4]] == [0x811C9DC5, 0x050C5D7E, 0x70772D38, 0x439C2F4B]
    assert [r[1] for r in res[:4]] == [float(v) for v in (0xCBF29CE484222325, 0xAF63BD4C8601B7BE,
                                                            0x08326707B4EB37B8, 0xD8DCCA186BAFADCB)]
    assert res[4:] == ["integer", "float"]


async def test_hash_bad_input_is_an_invalid_error() -> None:
    res = await run("""
        local v, e1 = hash.sha256(nil)
        local _, e2 = hash.hmac_sha256("x", 5)
        local _, e3 = hash.fnv32({})
        return {v == nil, e1:kind(), e1:message(), e2:message(), e3:message()}
    """)
    assert res == [True, "INVALID", "hash.sha256: data must be a string, got nil",
                   "hash.hmac_sha256: secret must be a string, got number",
                   "hash.fnv32: data must be a string, got table"]


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=40))
async def test_hashes_match_hashlib_for_any_bytes(data: bytes, secret: bytes) -> None:
    res = await run("local d, s = ...; return {hash.sha1(d), hash.hmac_sha512(d, s)}", data, secret)
    assert res == [hashlib.sha1(data).hexdigest(), hmac.new(secret, data, "sha512").hexdigest()]


# -- yaml ------------------------------------------------------------------------------------
async def test_yaml_encode_sorts_keys_and_honours_field_order() -> None:
    res = await run("""
        local entry = {zebra = 1, alpha = 2, name = "test", kind = "demo", a10 = 1, a2 = 2,
                       meta = {name = "x", b = true}}
        return {yaml.encode(entry, {field_order = {"name", "kind"}, sort_unordered = true}),
                yaml.encode(entry)}
    """)
    assert res == [
        "name: test\nkind: demo\na2: 2\na10: 1\nalpha: 2\nmeta:\n  name: x\n  b: true\nzebra: 1\n",
        "a2: 2\na10: 1\nalpha: 2\nkind: demo\nmeta:\n  b: true\n  name: x\nname: test\nzebra: 1\n",
    ]


async def test_yaml_encode_lists_scalars_and_quoting() -> None:
    text = await run("""
        return (yaml.encode({items = {1, 2.0, 2.5, "x"}, empty = {}, flag = "true", octal = "0600",
                             multi = "a\\nb", word = "yes"}))
    """)
    assert isinstance(text, str)
    assert load_yaml(text) == {"items": [1, 2, 2.5, "x"], "empty": {}, "flag": "true", "octal": "0600",
                               "multi": "a\nb", "word": "yes"}
    assert "  - 2\n" in text  # a whole float is written as an integer, as Go writes it


async def test_yaml_decode_with_gos_rules() -> None:
    res = await run("""
        local v, err = yaml.decode("server:\\n  host: localhost\\n  port: 8080\\nfeatures: [auth, logs]\\n"
                                   .. "mode: 0600\\nflag: yes\\nratio: 3.5\\non: true\\n")
        return {v.server.host, v.server.port, v.features[2], v.mode, v.flag, v.ratio, v.on, err == nil,
                math.type(v.server.port)}
    """)
    assert res == ["localhost", 8080, "logs", 384, "yes", 3.5, True, True, "integer"]


async def test_yaml_errors() -> None:
    res = await run("""
        local _, e1 = yaml.decode("a: [")
        local _, e2 = yaml.decode("")
        local _, e3 = yaml.decode(42)
        local _, e4 = yaml.encode("text")
        local _, e5 = yaml.encode({f = print})
        return {e1:kind(), e1:message(), e2:kind(), e3:kind(), e4:kind(), e4:message(), e5:kind(), e5:message(),
}
    """)
    assert isinstance(res, list)
    assert res[0] == "INTERNAL"
    assert res[1].startswith("yaml.decode: line 1")
    assert res[2:6] == ["INVALID", "INVALID", "INVALID", "yaml.encode: data must be a table, got string"]
    assert res[6:] == ["INVALID", "yaml.encode: cannot encode a function"]


async def test_yaml_writes_binary_strings_as_binary_like_go() -> None:
    text = await run("return (yaml.encode({data = ...}))", ALL_BYTES)
    assert isinstance(text, str)
    assert text.startswith("data: !!binary |")
    assert base64.b64decode("".join(text.splitlines()[1:])) == ALL_BYTES


_scalars = st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=12) | st.floats(
    allow_nan=False, allow_infinity=False, width=64)
yaml_values = st.recursive(
    st.dictionaries(st.text(min_size=1, max_size=6), _scalars, min_size=1, max_size=4),
    lambda inner: st.lists(inner | _scalars, min_size=1, max_size=4)
    | st.dictionaries(st.text(min_size=1, max_size=6), inner | _scalars, min_size=1, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(yaml_values)
async def test_yaml_encode_decode_round_trips(value: object) -> None:
    res = await run("""
        local t = json.decode(...)
        local text, err = yaml.encode(t)
        assert(err == nil, tostring(err))
        local back, derr = yaml.decode(text)
        assert(derr == nil, tostring(derr))
        return {text, json.encode(back)}
    """, json.dumps(value))
    assert isinstance(res, list)
    assert load_yaml(res[0]) == value
    assert json.loads(res[1]) == value
