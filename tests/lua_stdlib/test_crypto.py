"""`crypto`: results cross-checked with `cryptography`, `pyjwt` and `hashlib` on the Python side."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import time

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from .helpers import fn, run_entry

HEX = """
local function hex(s) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end)) end
local function unhex(h) return (h:gsub('..', function(b) return string.char(tonumber(b, 16)) end)) end
"""
KEY32 = bytes(range(32))


async def run(body: str, *args: object) -> object:
    entry = fn("app:c", "local crypto = require('crypto')\n" + HEX + "return { call = function(...) " + body + " end }",
               modules=["crypto"])
    ok, res = await run_entry(entry, args=args)
    assert ok, res
    return res[0] if len(res) == 1 else list(res)


# -- random ------------------------------------------------------------------------------------
async def test_random_bytes_strings_and_uuids() -> None:
    res = await run("""
        local a, b = crypto.random.bytes(32), crypto.random.bytes(32)
        local s = crypto.random.string(40)
        local h = crypto.random.string(64, "0123456789abcdef")
        local u = crypto.random.string(20, "αβγ")
        return {#a, a ~= b, s, h, u, crypto.random.uuid()}
    """)
    assert isinstance(res, list)
    n, differ, s, h, u, uid = res
    assert (n, differ) == (32, True)
    assert re.fullmatch(r"[A-Za-z0-9]{40}", s)
    assert re.fullmatch(r"[0-9a-f]{64}", h)
    assert len(u) == 20 and set(u) <= set("αβγ")  # characters, not bytes, are drawn
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", uid)


@pytest.mark.parametrize("length", ["0", "-1", "1.5", "'x'", "nil", "1048577"])
async def test_random_lengths_are_checked(length: str) -> None:
    res = await run(f"""
        local v1, e1 = crypto.random.bytes({length})
        local v2, e2 = crypto.random.string({length})
        return {{v1 == nil, e1:kind(), e1:message(), v2 == nil, e2:kind()}}
    """)
    assert isinstance(res, list)
    assert res[0:2] == [True, "INVALID"]
    assert res[2].startswith("crypto.random.bytes: length")
    assert res[3:] == [True, "INVALID"]


async def test_random_string_empty_charset_is_invalid() -> None:
    res = await run("local _, e = crypto.random.string(5, ''); return e:message()")
    assert res == "crypto.random.string: charset cannot be empty"


# -- hmac --------------------------------------------------------------------------------------
async def test_hmac_takes_the_key_first() -> None:
    res = await run("""
        local key, data = ...
        local _, e = crypto.hmac.sha256("", "data")
        return {crypto.hmac.sha256(key, data), crypto.hmac.sha512(key, data), e:kind(), e:message()}
    """, b"\x00key\xff", b"payload")
    assert res == [hmac.new(b"\x00key\xff", b"payload", "sha256").hexdigest(),
                   hmac.new(b"\x00key\xff", b"payload", "sha512").hexdigest(),
                   "INVALID", "crypto.hmac.sha256: key cannot be empty"]


# -- encryption --------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "cls", "key"), [("aes", AESGCM, KEY32[:16]), ("aes", AESGCM, KEY32[:24]),
                                                  ("aes", AESGCM, KEY32), ("chacha20", ChaCha20Poly1305, KEY32)])
async def test_ciphertext_is_nonce_then_sealed_data(name: str, cls: type[AESGCM], key: bytes) -> None:
    nonce = bytes(range(100, 112))
    theirs = nonce + cls(key).encrypt(nonce, b"from python", b"aad")
    res = await run(f"""
        local key, theirs = ...
        local mine = crypto.encrypt.{name}("from lua \\0\\255", key, "aad")
        local plain, err = crypto.decrypt.{name}(theirs, key, "aad")
        return {{hex(mine), plain, err == nil}}
    """, key, theirs)
    assert isinstance(res, list)
    mine = bytes.fromhex(res[0])
    assert cls(key).decrypt(mine[:12], mine[12:], b"aad") == b"from lua \x00\xff"
    assert res[1:] == ["from python", True]


@pytest.mark.parametrize("name", ["aes", "chacha20"])
async def test_tampering_wrong_keys_and_bad_sizes(name: str) -> None:
    res = await run(f"""
        local key = ...
        local sealed = crypto.encrypt.{name}("secret", key, "ctx")
        local flipped = sealed:sub(1, 20) .. string.char((sealed:byte(21) + 1) % 256) .. sealed:sub(22)
        local out = {{}}
        for _, case in ipairs({{{{flipped, key, "ctx"}}, {{sealed, key, "other"}}, {{sealed, key}},
                                {{sealed, string.rep("k", 32), "ctx"}}}}) do
            local v, err = crypto.decrypt.{name}(case[1], case[2], case[3])
            out[#out + 1] = {{v == nil, err:kind()}}
        end
        local _, e1 = crypto.encrypt.{name}("x", "short")
        local _, e2 = crypto.decrypt.{name}("tiny", key)
        local _, e3 = crypto.encrypt.{name}(12, key)
        return {{out, e1:kind(), e1:message(), e2:kind(), e2:message(), e3:kind()}}
    """, KEY32)
    assert isinstance(res, list)
    assert res[0] == [[True, "INTERNAL"]] * 4
    assert res[1] == "INVALID"
    assert re.fullmatch(rf"crypto\.encrypt\.{name}: key must be (16, 24 or 32|32) bytes, got 5", res[2])
    assert res[3:] == ["INVALID", f"crypto.decrypt.{name}: encrypted data too short (4 bytes)", "INVALID"]


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=20), st.sampled_from(["aes", "chacha20"]))
async def test_encryption_round_trips_any_bytes(data: bytes, aad: bytes, name: str) -> None:
    res = await run(f"""
        local data, key, aad = ...
        local sealed = crypto.encrypt.{name}(data, key, aad)
        return crypto.decrypt.{name}(sealed, key, aad) == data, #sealed
    """, data, KEY32, aad)
    assert res == [True, len(data) + 28]


# -- jwt ---------------------------------------------------------------------------------------
async def test_jwt_hs256_interoperates_with_pyjwt() -> None:
    exp = int(time.time()) + 600
    theirs = jwt.encode({"sub": "py", "exp": exp, "n": [1, 2]}, "k" * 32, algorithm="HS256")
    res = await run("""
        local exp, theirs = ...
        local token = crypto.jwt.encode({sub = "u1", exp = exp, roles = {"a", "b"}, _header = {kid = "k1"}},
                                        string.rep("k", 32))
        local claims, err = crypto.jwt.verify(theirs, string.rep("k", 32))
        return {token, claims.sub, claims.n[2], err == nil}
    """, exp, theirs)
    assert isinstance(res, list)
    token = res[0]
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "kid": "k1", "typ": "JWT"}
    assert jwt.decode(token, "k" * 32, algorithms=["HS256"]) == {"exp": exp, "roles": ["a", "b"], "sub": "u1"}
    assert res[1:] == ["py", 2, True]


async def test_jwt_rejects_expired_forged_and_wrong_algorithm_tokens() -> None:
    now = int(time.time())
    res = await run("""
        local now = ...
        local ok = crypto.jwt.encode({sub = "x", exp = now + 60}, "secret", "HS512")
        local old = crypto.jwt.encode({sub = "x", exp = now - 60}, "secret")
        local noexp = crypto.jwt.encode({sub = "x"}, "secret", "HS384")
        local soon = crypto.jwt.encode({sub = "x", exp = now + 60, nbf = now + 30}, "secret")
        local forged = ok:sub(1, -3) .. (ok:sub(-2, -1) == "AA" and "AB" or "AA")
        local out = {}
        for _, case in ipairs({{ok, "secret", "HS512"}, {ok, "wrong", "HS512"}, {ok, "secret"}, {old, "secret"},
                               {noexp, "secret", "HS384"}, {forged, "secret", "HS512"}, {soon, "secret"},
                               {"not.a.token", "secret"}}) do
            local claims, err = crypto.jwt.verify(case[1], case[2], case[3])
            out[#out + 1] = {sub = claims and claims.sub or false, kind = err and err:kind() or false,
                             message = err and err:message() or false}
        end
        local relaxed = crypto.jwt.verify(noexp, "secret", "HS384", false)
        return {out, relaxed.sub}
    """, now)
    assert isinstance(res, list)
    rows, relaxed = res
    assert rows[0] == {"sub": "x", "kind": False, "message": False}
    reasons = [r["message"] for r in rows[1:]]
    assert all(r["kind"] == "INTERNAL" and r["sub"] is False for r in rows[1:])
    assert "Signature verification failed" in reasons[0]
    assert "algorithm" in reasons[1].lower() or "alg" in reasons[1]
    assert "expired" in reasons[2]
    assert 'missing the "exp" claim' in reasons[3]
    assert "Signature verification failed" in reasons[4]
    assert "not yet valid" in reasons[5]
    assert reasons[6].startswith("crypto.jwt.verify: invalid token")
    assert relaxed == "x"


async def test_jwt_argument_errors() -> None:
    res = await run("""
        local out = {}
        local function add(_, err) out[#out + 1] = {err:kind(), err:message()} end
        add(crypto.jwt.encode({a = 1}, "k", "ES256"))
        add(crypto.jwt.encode("claims", "k"))
        add(crypto.jwt.encode({1, 2}, "k"))
        add(crypto.jwt.encode({a = 1}, ""))
        add(crypto.jwt.encode({a = 1}, "not a pem", "RS256"))
        add(crypto.jwt.verify(12, "k"))
        add(crypto.jwt.verify("a.b.c", "k", "none"))
        return out
    """)
    assert isinstance(res, list)
    assert all(kind == "INVALID" for kind, _ in res)
    assert [m for _, m in res] == [
        "crypto.jwt.encode: unsupported algorithm 'ES256' (HS256, HS384, HS512, RS256)",
        "crypto.jwt.encode: payload must be a table, got string",
        "crypto.jwt.encode: payload must be a table with named claims, not a list",
        "crypto.jwt.encode: key cannot be empty",
        res[4][1],
        "crypto.jwt.verify: token must be a string, got number",
        "crypto.jwt.verify: unsupported algorithm 'none' (HS256, HS384, HS512, RS256)",
    ]
    assert res[4][1].startswith("crypto.jwt.encode: invalid RSA private key")


def _rsa_material() -> tuple[str, str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wippy test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return private, public, cert.public_bytes(serialization.Encoding.PEM).decode()


async def test_jwt_rs256_with_pem_keys_and_certificates() -> None:
    private, public, cert = _rsa_material()
    exp = int(time.time()) + 600
    res = await run("""
        local private, public, cert, exp = ...
        local token = crypto.jwt.encode({sub = "rsa", exp = exp}, private, "RS256")
        local a = crypto.jwt.verify(token, public, "RS256")
        local b = crypto.jwt.verify(token, cert, "RS256")
        local _, e1 = crypto.jwt.verify(token, public)
        local _, e2 = crypto.jwt.verify(token, "garbage", "RS256")
        return {token, a.sub, b.sub, e1:kind(), e2:kind(), e2:message()}
    """, private, public, cert, exp)
    assert isinstance(res, list)
    assert jwt.decode(res[0], public, algorithms=["RS256"])["sub"] == "rsa"
    assert res[1:5] == ["rsa", "rsa", "INTERNAL", "INVALID"]  # an RS256 token is refused when HS256 is expected
    assert res[5].startswith("crypto.jwt.verify: invalid RSA public key")


# -- pbkdf2, compare ---------------------------------------------------------------------------
async def test_pbkdf2_matches_hashlib_inline_and_on_a_thread() -> None:
    res = await run("""
        local salt = ...
        return {hex(crypto.pbkdf2("pw", salt, 1000, 32)), hex(crypto.pbkdf2("pw", salt, 200000, 48, "sha512")),
                hex(crypto.pbkdf2("pw", salt, 50000, 16, 42))}
    """, b"\x00salt\xff")
    salt = b"\x00salt\xff"
    assert res == [hashlib.pbkdf2_hmac("sha256", b"pw", salt, 1000, 32).hex(),
                   hashlib.pbkdf2_hmac("sha512", b"pw", salt, 200000, 48).hex(),
                   hashlib.pbkdf2_hmac("sha256", b"pw", salt, 50000, 16).hex()]


async def test_pbkdf2_argument_errors() -> None:
    res = await run("""
        local out = {}
        for _, case in ipairs({{"", "s", 1, 16}, {"p", "", 1, 16}, {"p", "s", 0, 16}, {"p", "s", 10000001, 16},
                               {"p", "s", 1, 0}, {"p", "s", 1, 16, "md5"}, {"p", "s", 1.5, 16}}) do
            local v, err = crypto.pbkdf2(table.unpack(case))
            out[#out + 1] = {v == nil, err:kind(), err:message()}
        end
        return out
    """)
    assert isinstance(res, list)
    assert all(r[:2] == [True, "INVALID"] for r in res)
    assert [r[2] for r in res] == [
        "crypto.pbkdf2: password must be a non-empty string",
        "crypto.pbkdf2: salt must be a non-empty string",
        "crypto.pbkdf2: iterations must be a positive integer",
        "crypto.pbkdf2: iterations exceeds the maximum (10000000)",
        "crypto.pbkdf2: length must be a positive integer, got 0",
        "crypto.pbkdf2: unsupported hash function 'md5' (sha256 or sha512)",
        "crypto.pbkdf2: iterations must be a positive integer",
    ]


async def test_constant_time_compare() -> None:
    res = await run("""
        local bin = ...
        local v, err = crypto.constant_time_compare("a", nil)
        return {crypto.constant_time_compare("abc", "abc"), crypto.constant_time_compare("abc", "abd"),
                crypto.constant_time_compare(bin, bin), crypto.constant_time_compare("", ""), v, err:kind()}
    """, b"\xff\x00")
    assert res == [True, False, True, True, False, "INVALID"]


async def test_module_tables_are_read_only() -> None:
    res = await run("""
        local a = pcall(function() crypto.random.bytes = nil end)
        local b = pcall(function() crypto.jwt = {} end)
        return {a, b, type(crypto.random.bytes)}
    """)
    assert res == [False, False, "function"]
