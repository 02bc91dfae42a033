"""The Python side of security: the authorizer services call, and token stores without Lua."""

from __future__ import annotations

import pytest

from wippy.core import Authorizer, Entry, Grant, InvalidTokenError, PermissionDeniedError, TokenService
from wippy.lua_stdlib import parse_go_duration
from wippy.services._stores import StoreHub


class Reg:
    def __init__(self, *entries: Entry) -> None:
        self.entries = {e.id: e for e in entries}

    def get(self, entry_id: str) -> Entry | None:
        return self.entries.get(entry_id)


READ = Entry("app:read", "security.policy", {}, {"policy": {"actions": "*.read", "resources": "doc:*"}})
DENY = Entry("app:deny", "security.policy", {},
             {"policy": {"actions": "*", "resources": "doc:secret", "effect": "deny"}})
STORE = Entry("app:kv", "store.memory", {}, {})
TOKENS = Entry("app:tokens", "security.token_store", {}, {"store": "app:kv", "token_key": "k"})


def test_authorizer_decides_like_lua() -> None:
    auth = Authorizer(Reg(READ, DENY))
    actor = ("u1", {})
    auth.check(actor, ["app:read", "app:deny"], "doc.read", "doc:1")
    with pytest.raises(PermissionDeniedError, match=r"doc\.read on doc:secret for actor u1"):
        auth.check(actor, ["app:read", "app:deny"], "doc.read", "doc:secret")
    with pytest.raises(PermissionDeniedError):
        auth.check(actor, ["app:read"], "doc.write", "doc:1")  # undefined with an actor: denied
    auth.check(None, None, "anything", "x")  # no actor: allowed unless strict
    with pytest.raises(PermissionDeniedError, match="strict"):
        Authorizer(Reg(), strict=True).check(None, None, "anything", "x")


async def test_token_service_round_trip_and_forgery() -> None:
    reg = Reg(STORE, TOKENS)
    tokens = TokenService(reg, StoreHub(reg), parse_go_duration)
    token = await tokens.create("app:tokens", Grant("u1", {"role": "user"}, ("app:read",), {"ip": "1"}),
                          expiration="1h")
    grant = await tokens.validate("app:tokens", token)
    assert grant == Grant("u1", {"role": "user"}, ("app:read",), {"ip": "1"})
    body, _, sig = token.partition(".")
    with pytest.raises(InvalidTokenError, match="bad signature"):
        await tokens.validate("app:tokens", body + "." + sig[::-1])
    with pytest.raises(InvalidTokenError):
        await tokens.validate("app:tokens", body)  # signature stripped
    assert await tokens.revoke("app:tokens", token) is True
    with pytest.raises(InvalidTokenError, match="revoked"):
        await tokens.validate("app:tokens", token)
