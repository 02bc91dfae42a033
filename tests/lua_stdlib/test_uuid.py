"""`uuid`: generation, the accepted forms, and parts checked against Python's uuid module."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .helpers import fn, run_entry

STANDARD = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-([0-9a-f])[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}")


async def run(body: str, *args: object) -> object:
    entry = fn("app:u", "local uuid = require('uuid')\nreturn { call = function(...) " + body + " end }",
               modules=["uuid"])
    ok, res = await run_entry(entry, args=args)
    assert ok, res
    return res[0] if len(res) == 1 else list(res)


async def test_generated_ids_have_their_version_and_variant() -> None:
    res = await run("return {uuid.v1(), uuid.v4(), uuid.v7()}")
    assert isinstance(res, list)
    for text, version in zip(res, (1, 4, 7), strict=True):
        m = STANDARD.fullmatch(text)
        assert m and int(m.group(1)) == version
        assert uuid.UUID(text).variant == uuid.RFC_4122


async def test_v7_ids_increase_and_carry_the_time() -> None:
    before = int(time.time() * 1000)
    res = await run("""
        local ids = {}
        for i = 1, 2000 do ids[i] = uuid.v7() end
        local sorted = true
        for i = 2, #ids do if ids[i] <= ids[i - 1] then sorted = false end end
        return {sorted, ids[1], ids[#ids], uuid.parse(ids[1]).timestamp}
    """)
    after = int(time.time() * 1000)
    assert isinstance(res, list)
    assert res[0] is True  # strictly increasing, even within one millisecond
    assert len(set(res[1:3])) == 2
    millis = uuid.UUID(res[1]).int >> 80
    assert before <= millis <= after
    assert res[3] == millis // 1000


async def test_v1_parse_gives_time_and_the_raw_node() -> None:
    res = await run("""
        local id = uuid.v1()
        local p = uuid.parse(id)
        return {id, p.version, p.variant, p.timestamp, #p.node}
    """)
    assert isinstance(res, list)
    parsed = uuid.UUID(res[0])
    assert res[1:3] == [1, "RFC4122"]
    assert abs(res[3] - time.time()) < 60
    assert res[3] == (parsed.time - 0x01B21DD213814000) // 10_000_000
    assert res[4] == 6
    assert parsed.node & (1 << 40)  # a random node id, marked as such


async def test_name_based_ids_match_rfc_values() -> None:
    res = await run("""
        local ns = "6ba7b811-9dad-11d1-80b4-00c04fd430c8"
        return {uuid.v5(ns, "https://example.com/resource"), uuid.v3(ns, "https://example.com/resource"),
                uuid.v5("{6BA7B811-9DAD-11D1-80B4-00C04FD430C8}", "x"), uuid.v5(ns, ...)}
    """, b"\xff\x00")
    url = uuid.NAMESPACE_URL
    assert res == [str(uuid.uuid5(url, "https://example.com/resource")),
                   str(uuid.uuid3(url, "https://example.com/resource")), str(uuid.uuid5(url, "x")),
                   str(uuid.UUID(bytes=_v5_bytes(url, b"\xff\x00")))]


def _v5_bytes(ns: uuid.UUID, name: bytes) -> bytes:
    import hashlib

    digest = bytearray(hashlib.sha1(ns.bytes + name).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    return bytes(digest)


async def test_accepted_forms_and_formats() -> None:
    res = await run("""
        local id = "6BA7B811-9DAD-11D1-80B4-00C04FD430C8"
        local out = {}
        for _, form in ipairs({id, "{" .. id .. "}", "urn:uuid:" .. id, "URN:UUID:" .. id, (id:gsub("-", ""))}) do
            out[#out + 1] = uuid.validate(form)
        end
        return {out, uuid.format(id), uuid.format(id, "simple"), uuid.format(id, "urn"), uuid.format(id, 5)}
    """)
    assert res == [[True] * 5, "6ba7b811-9dad-11d1-80b4-00c04fd430c8", "6ba7b8119dad11d180b400c04fd430c8",
                   "urn:uuid:6ba7b811-9dad-11d1-80b4-00c04fd430c8", "6ba7b811-9dad-11d1-80b4-00c04fd430c8"]


_ID = "6ba7b811-9dad-11d1-80b4-00c04fd430c8"


@pytest.mark.parametrize("bad", ["", "nope", _ID[:-1], "6ba7b8119-dad-11d1-80b4-00c04fd430c8", _ID[:-1] + "g",
                                 "{" + _ID, _ID + "\n", " " + _ID, "6b a7b8119dad11d180b400c04fd430c8", "uuid:" + _ID])
async def test_malformed_ids_are_invalid(bad: str) -> None:
    res = await run("""
        local bad = ...
        local out = {uuid.validate(bad)}
        for _, f in ipairs({uuid.version, uuid.variant, uuid.parse, uuid.format}) do
            local v, err = f(bad)
            out[#out + 1] = {v == nil, err:kind()}
        end
        local _, e = uuid.v5(bad, "x")
        out[#out + 1] = e:message()
        return out
    """, bad)
    assert res == [False, *[[True, "INVALID"]] * 4, "uuid.v5: invalid namespace UUID"]


async def test_wrong_types_and_formats() -> None:
    res = await run("""
        local _, e1 = uuid.version(12)
        local _, e2 = uuid.format(uuid.v4(), "braces")
        local _, e3 = uuid.v3(nil, "x")
        return {uuid.validate(12), uuid.validate(nil), e1:message(), e2:kind(), e2:message(), e3:kind()}
    """)
    assert res == [False, False, "uuid.version: input must be a string, got number", "INVALID",
                   "uuid.format: unsupported format 'braces' (standard, simple or urn)", "INVALID"]


@settings(max_examples=80, deadline=None)
@given(st.binary(min_size=16, max_size=16))
async def test_any_id_parses_in_every_form(raw: bytes) -> None:
    u = uuid.UUID(bytes=raw)
    res = await run("""
        local std = ...
        local forms = {uuid.format(std, "simple"), uuid.format(std, "urn"), "{" .. std .. "}", std:upper()}
        local same = true
        for _, f in ipairs(forms) do same = same and uuid.format(f) == std end
        return {same, uuid.version(std), uuid.variant(std)}
    """, str(u))
    variant = {uuid.RFC_4122: "RFC4122", uuid.RESERVED_MICROSOFT: "Microsoft", uuid.RESERVED_FUTURE: "Future",
               uuid.RESERVED_NCS: "Reserved"}[u.variant]
    assert res == [True, raw[6] >> 4, variant]
