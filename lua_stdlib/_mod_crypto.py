"""`crypto`: random data, HMAC, authenticated encryption, JWT and PBKDF2 (on `cryptography`, `pyjwt`).

    crypto.random.bytes(n) -> string, err         n: 1 .. 1 MiB of random bytes
    crypto.random.string(n, charset?) -> string, err
                                                  n characters drawn uniformly from charset (its
                                                  characters; default A-Z a-z 0-9)
    crypto.random.uuid() -> string, err           a version 4 UUID
    crypto.hmac.sha256(key, data) / sha512 -> hex string, err      (key first, unlike `hash`)
    crypto.encrypt.aes(data, key, aad?) -> string, err
                                                  AES-GCM with a 16/24/32-byte key; the result is
                                                  nonce (12 bytes) .. ciphertext .. tag (16 bytes)
    crypto.decrypt.aes(data, key, aad?) -> string, err
    crypto.encrypt.chacha20 / decrypt.chacha20    the same with ChaCha20-Poly1305 and a 32-byte key
    crypto.jwt.encode(payload, key, alg?) -> token, err
                                                  alg: HS256 (default), HS384, HS512 or RS256 (key: a
                                                  PEM private key, PKCS#1 or PKCS#8); payload._header
                                                  (a table) adds header fields; claims are written
                                                  with sorted keys, as Go writes them
    crypto.jwt.verify(token, key, alg?, require_exp?) -> claims, err
                                                  key: the secret, or for RS256 a PEM public key or
                                                  certificate; the token's alg must be `alg`; exp
                                                  (required unless require_exp is false) and nbf
                                                  are checked, with no leeway
    crypto.pbkdf2(password, salt, iterations, key_length, "sha256"|"sha512"?) -> bytes, err
                                                  iterations up to 10,000,000; long derivations run
                                                  on a worker thread while the task waits
    crypto.constant_time_compare(a, b) -> boolean

Errors: bad arguments (types, lengths, key sizes, empty keys) are INVALID; failed decryption,
an expired, forged or malformed token are INTERNAL (as in Wippy), with the reason in the message.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import os
import random
import string
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import jwt
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from ._binary import Raw, as_bytes, type_name, wrap
from ._host import LuaHost, register_module
from ._mod_json import JsonValueError, lua_to_json, no_big_ints
from ._mod_uuid import uuid4

_MAX_RANDOM = 1024 * 1024
_MAX_ITERATIONS = 10_000_000
_MAX_KEY_LENGTH = 1024 * 1024
_NONCE = 12
_ALNUM = string.ascii_uppercase + string.ascii_lowercase + string.digits
_JWT_ALGS = ("HS256", "HS384", "HS512", "RS256")
#: PBKDF2 work (iterations x output blocks) above which the derivation leaves the event loop
_INLINE_WORK = 20_000
_SYSTEM_RANDOM = random.SystemRandom()


class _BadKey(ValueError):
    pass


@functools.lru_cache(maxsize=64)
def _private_key(pem: bytes) -> RSAPrivateKey:
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise _BadKey(f"invalid RSA private key: {exc}") from exc
    if not isinstance(key, RSAPrivateKey):
        raise _BadKey("invalid RSA private key: the key is not an RSA key")
    return key


@functools.lru_cache(maxsize=64)
def _public_key(pem: bytes) -> RSAPublicKey:
    try:
        key: Any = x509.load_pem_x509_certificate(pem).public_key()
    except ValueError:
        try:
            key = load_pem_public_key(pem)
        except (ValueError, TypeError) as exc:
            raise _BadKey(f"invalid RSA public key: {exc}") from exc
    if not isinstance(key, RSAPublicKey):
        raise _BadKey("invalid RSA public key: the key is not an RSA key")
    return key


@contextmanager
def _any_secret_length() -> Iterator[None]:
    """Wippy accepts HMAC secrets of any length; pyjwt warns about short ones on every call."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        yield


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value


def _count(value: Any) -> int | None:
    """A Lua number that is a whole count, as an int."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


class _Crypto:
    """The module's functions for one host (each returns ``value, err``)."""

    def __init__(self, host: LuaHost) -> None:
        self.host = host
        self.vm = host.vm
        self.to_python = lua_to_json(host)
        self.table_type = type(self.vm.rt.table())

    def invalid(self, message: str) -> tuple[None, Any]:
        return None, self.vm.error("INVALID", message)

    def failed(self, message: str) -> tuple[None, Any]:
        return None, self.vm.error("INTERNAL", message)

    def length_of(self, fn: str, value: Any, limit: int) -> tuple[int | None, Any]:
        n = _count(value)
        if n is None or n <= 0:
            shown = value if n is not None else type_name(value)
            return self.invalid(f"crypto.{fn}: length must be a positive integer, got {shown}")
        if n > limit:
            return self.invalid(f"crypto.{fn}: length {n} exceeds the maximum ({limit} bytes)")
        return n, None

    # -- random ------------------------------------------------------------------------------
    def random_bytes(self, n: Any = None, *_: Any) -> Any:
        count, err = self.length_of("random.bytes", n, _MAX_RANDOM)
        return (None, err) if count is None else (os.urandom(count), None)

    def random_string(self, n: Any = None, charset: Any = None, *_: Any) -> Any:
        count, err = self.length_of("random.string", n, _MAX_RANDOM)
        if count is None:
            return None, err
        if isinstance(charset, Raw):  # binary: draw bytes
            if not charset.data:
                return self.invalid("crypto.random.string: charset cannot be empty")
            return bytes(_SYSTEM_RANDOM.choices(charset.data, k=count)), None
        chars = charset if isinstance(charset, str) else _ALNUM
        if not chars:
            return self.invalid("crypto.random.string: charset cannot be empty")
        return "".join(_SYSTEM_RANDOM.choices(chars, k=count)), None

    def random_uuid(self, *_: Any) -> Any:
        return uuid4(), None

    # -- hmac --------------------------------------------------------------------------------
    def keyed(self, algo: str) -> Callable[..., Any]:
        def run(key: Any = None, data: Any = None, *_: Any) -> Any:
            k, d = as_bytes(key), as_bytes(data)
            if k is None:
                return self.invalid(f"crypto.hmac.{algo}: key must be a string, got {type_name(key)}")
            if d is None:
                return self.invalid(f"crypto.hmac.{algo}: data must be a string, got {type_name(data)}")
            if not k:
                return self.invalid(f"crypto.hmac.{algo}: key cannot be empty")
            return hmac.new(k, d, algo).hexdigest(), None

        return run

    # -- encryption --------------------------------------------------------------------------
    def cipher(self, name: str, make: Callable[[bytes], Any], sizes: tuple[int, ...],
               encrypting: bool) -> Callable[..., Any]:
        fn = f"crypto.{'encrypt' if encrypting else 'decrypt'}.{name}"
        size_text = str(sizes[0]) if len(sizes) == 1 else f"{', '.join(map(str, sizes[:-1]))} or {sizes[-1]}"

        def run(data: Any = None, key: Any = None, aad: Any = None, *_: Any) -> Any:
            d, k = as_bytes(data), as_bytes(key)
            if d is None:
                return self.invalid(f"{fn}: data must be a string, got {type_name(data)}")
            if k is None:
                return self.invalid(f"{fn}: key must be a string, got {type_name(key)}")
            if len(k) not in sizes:
                return self.invalid(f"{fn}: key must be {size_text} bytes, got {len(k)}")
            extra = as_bytes(aad)  # anything but a string means no associated data, as in Wippy
            box = make(k)
            if encrypting:
                nonce = os.urandom(_NONCE)
                return nonce + box.encrypt(nonce, d, extra), None
            if len(d) < _NONCE:
                return self.invalid(f"{fn}: encrypted data too short ({len(d)} bytes)")
            try:
                return box.decrypt(d[:_NONCE], d[_NONCE:], extra), None
            except InvalidTag:
                return self.failed(f"{fn}: decryption failed: wrong key, different aad, or the data was altered")

        return run

    # -- jwt ---------------------------------------------------------------------------------
    def jwt_encode(self, payload: Any = None, key: Any = None, alg: Any = None, *_: Any) -> Any:
        algorithm = "HS256" if alg is None else alg
        if algorithm not in _JWT_ALGS:
            return self.invalid(f"crypto.jwt.encode: unsupported algorithm {algorithm!r} (HS256, HS384, HS512, RS256)")
        if type(payload) is not self.table_type:
            return self.invalid(f"crypto.jwt.encode: payload must be a table, got {type_name(payload)}")
        secret = as_bytes(key)
        if secret is None:
            return self.invalid(f"crypto.jwt.encode: key must be a string, got {type_name(key)}")
        if not secret:
            return self.invalid("crypto.jwt.encode: key cannot be empty")
        try:
            claims = self.to_python(payload, dict)
        except JsonValueError as exc:
            return self.invalid(f"crypto.jwt.encode: payload: {exc}")
        if not isinstance(claims, dict):
            return self.invalid("crypto.jwt.encode: payload must be a table with named claims, not a list")
        header = claims.pop("_header", None)
        try:
            signing_key: Any = _private_key(secret) if algorithm == "RS256" else secret
            with _any_secret_length():
                token = jwt.encode(_sorted_keys(claims), signing_key, algorithm=algorithm,
                                   headers=header if isinstance(header, dict) else None)
        except _BadKey as exc:
            return self.invalid(f"crypto.jwt.encode: {exc}")
        except (jwt.PyJWTError, TypeError, ValueError) as exc:
            return self.failed(f"crypto.jwt.encode: signing failed: {exc}")
        return token, None

    def jwt_verify(self, token: Any = None, key: Any = None, alg: Any = None, require_exp: Any = None,
                   *_: Any) -> Any:
        algorithm = "HS256" if alg is None else alg
        if algorithm not in _JWT_ALGS:
            return self.invalid(f"crypto.jwt.verify: unsupported algorithm {algorithm!r} (HS256, HS384, HS512, RS256)")
        if isinstance(token, Raw):
            return self.failed("crypto.jwt.verify: invalid token: it is binary data, not text")
        if not isinstance(token, str):
            return self.invalid(f"crypto.jwt.verify: token must be a string, got {type_name(token)}")
        secret = as_bytes(key)
        if secret is None:
            return self.invalid(f"crypto.jwt.verify: key must be a string, got {type_name(key)}")
        if not secret:
            return self.invalid("crypto.jwt.verify: key cannot be empty")
        options: Any = {"verify_iat": False, "verify_aud": False, "verify_iss": False,
                        "require": [] if require_exp is False else ["exp"]}
        try:
            verify_key: Any = _public_key(secret) if algorithm == "RS256" else secret
            with _any_secret_length():
                claims = jwt.decode(token, verify_key, algorithms=[algorithm], options=options)
        except _BadKey as exc:
            return self.invalid(f"crypto.jwt.verify: {exc}")
        except jwt.InvalidKeyError as exc:
            return self.invalid(f"crypto.jwt.verify: invalid key: {exc}")
        except jwt.PyJWTError as exc:
            return self.failed(f"crypto.jwt.verify: invalid token: {exc}")
        try:
            return self.vm.to_lua(claims), None
        except OverflowError:
            return self.vm.to_lua(no_big_ints(claims)), None

    # -- key derivation, comparison --------------------------------------------------------
    def pbkdf2(self, password: Any = None, salt: Any = None, iterations: Any = None, key_length: Any = None,
               digest: Any = None, *_: Any) -> Any:
        pw, sl = as_bytes(password), as_bytes(salt)
        if not pw:
            return self.invalid("crypto.pbkdf2: password must be a non-empty string")
        if not sl:
            return self.invalid("crypto.pbkdf2: salt must be a non-empty string")
        rounds = _count(iterations)
        if rounds is None or rounds <= 0:
            return self.invalid("crypto.pbkdf2: iterations must be a positive integer")
        if rounds > _MAX_ITERATIONS:
            return self.invalid(f"crypto.pbkdf2: iterations exceeds the maximum ({_MAX_ITERATIONS})")
        size, err = self.length_of("pbkdf2", key_length, _MAX_KEY_LENGTH)
        if size is None:
            return None, err
        name = digest if isinstance(digest, str) else "sha256"
        if name not in ("sha256", "sha512"):
            return self.invalid(f"crypto.pbkdf2: unsupported hash function {name!r} (sha256 or sha512)")
        blocks = -(-size // (32 if name == "sha256" else 64))
        if rounds * blocks <= _INLINE_WORK:
            key = hashlib.pbkdf2_hmac(name, pw, sl, rounds, size)

            # answered through a Pending either way: asyncify hands a first result that is not a
            # Pending to Python, which cannot take binary strings
            async def derive() -> tuple[Any, ...]:
                return key, None
        else:
            async def derive() -> tuple[Any, ...]:
                return await asyncio.to_thread(hashlib.pbkdf2_hmac, name, pw, sl, rounds, size), None

        return self.vm.pending(derive())

    def constant_time_compare(self, a: Any = None, b: Any = None, *_: Any) -> Any:
        x, y = as_bytes(a), as_bytes(b)
        if x is None or y is None:
            return False, self.vm.error("INVALID", "crypto.constant_time_compare: both values must be strings")
        return hmac.compare_digest(x, y), None

    def module(self) -> Any:
        host, vm = self.host, self.vm

        def group(name: str, funcs: dict[str, Callable[..., Any]]) -> Any:
            return host.readonly(vm.rt.table_from({k: wrap(host, f) for k, f in funcs.items()}), f"crypto.{name}")

        return vm.rt.table_from({
            "random": group("random", {"bytes": self.random_bytes, "string": self.random_string,
                                       "uuid": self.random_uuid}),
            "hmac": group("hmac", {"sha256": self.keyed("sha256"), "sha512": self.keyed("sha512")}),
            "encrypt": group("encrypt", {"aes": self.cipher("aes", AESGCM, (16, 24, 32), True),
                                         "chacha20": self.cipher("chacha20", ChaCha20Poly1305, (32,), True)}),
            "decrypt": group("decrypt", {"aes": self.cipher("aes", AESGCM, (16, 24, 32), False),
                                         "chacha20": self.cipher("chacha20", ChaCha20Poly1305, (32,), False)}),
            "jwt": group("jwt", {"encode": self.jwt_encode, "verify": self.jwt_verify}),
            "pbkdf2": wrap(host, vm.asyncify(self.pbkdf2)),
            "constant_time_compare": wrap(host, self.constant_time_compare),
        })


register_module("crypto", lambda host: _Crypto(host).module())
