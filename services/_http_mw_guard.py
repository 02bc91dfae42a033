"""Middleware that decides who the client is and what it may do: `real_ip`, `ratelimit`,
`token_auth` (sets the actor and scope, never blocks) and the `endpoint_firewall` /
`resource_firewall` post-match checks."""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import hdrs, web

from wippy.core import (
    Authorizer,
    TokenService,
    WippyError,
    format_go_duration,
    parse_go_duration,
)

from . import _http_keys as keys
from ._http_keys import Handler, MiddlewareDeps
from ._http_mw_web import error_response
from ._http_options import IP, Network

log = logging.getLogger("wippy.http.middleware")

# -- real_ip --------------------------------------------------------------------------------------

def parse_ip(text: str | None) -> IP | None:
    """An address from a header or the peer: plain, ``[v6]:port`` or ``v4:port``; v4-mapped v6 as v4."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class RealIp:
    def __init__(self, o: Mapping[str, Any]) -> None:
        self.subnets: tuple[Network, ...] = o["trusted.subnets"]
        self.trust_all: bool = o["trust_all"]

    def _trusted(self, ip: IP) -> bool:
        return self.trust_all or any(ip in net for net in self.subnets)

    def _client(self, request: web.BaseRequest) -> IP | None:
        for name in ("True-Client-IP", "X-Real-IP"):
            ip = parse_ip(request.headers.get(name))
            if ip is not None:
                return ip
        hops = [ip for part in ",".join(request.headers.getall("X-Forwarded-For", ())).split(",")
                if (ip := parse_ip(part)) is not None]
        if not hops or self.trust_all:
            return hops[0] if hops else None
        # the nearest hop our proxies did not add: everything to its right is a trusted proxy
        for ip in reversed(hops):
            if not self._trusted(ip):
                return ip
        return hops[0]

    async def __call__(self, request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        peer = parse_ip(request.remote)
        client = self._client(request) if peer is not None and self._trusted(peer) else None
        address = client or peer
        request[keys.REMOTE_ADDR] = str(address) if address is not None else (request.remote or "")
        return await handler(request)

# -- ratelimit ------------------------------------------------------------------------------------

class TokenBuckets:
    """A token bucket per key (``capacity`` tokens, refilled at ``rate`` per second), least recently used
    first. Memory is bounded: past ``max_entries`` the least recently used key goes, and every
    ``cleanup`` seconds keys idle for ``ttl`` are dropped, lazily, on the next request."""

    def __init__(self, *, rate: float, capacity: float, ttl: float, cleanup: float, max_entries: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = capacity
        self.ttl = ttl
        self.cleanup = cleanup
        self.max_entries = max_entries
        self.clock = clock
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # key -> [tokens, last refill]
        self._next_sweep = clock() + cleanup

    def __len__(self) -> int:
        return len(self._buckets)

    def wait(self, key: str) -> float:
        """Take a token for ``key``: 0.0 when there was one, else the seconds until there is one."""
        now = self.clock()
        buckets = self._buckets
        if now >= self._next_sweep:
            self._next_sweep = now + self.cleanup
            while buckets and now - next(iter(buckets.values()))[1] > self.ttl:
                buckets.popitem(last=False)
        bucket = buckets.get(key)
        if bucket is None:
            while len(buckets) >= self.max_entries:
                buckets.popitem(last=False)
            bucket = buckets[key] = [self.capacity, now]
        else:
            buckets.move_to_end(key)
            bucket[0] = min(self.capacity, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return 0.0
        return (1.0 - bucket[0]) / self.rate


class RateLimit:
    def __init__(self, o: Mapping[str, Any]) -> None:
        self.requests: int = o["requests"]
        self.window_ns: int = o["window"]
        # Wippy's default burst is 20; here it is never above the per-window allowance
        capacity = o["burst"] if o["burst"] is not None else min(20, self.requests)
        self.buckets = TokenBuckets(rate=self.requests / (self.window_ns / 1e9), capacity=float(capacity),
                                    ttl=o["entry_ttl"] / 1e9, cleanup=o["cleanup_interval"] / 1e9,
                                    max_entries=o["max_entries"])
        self.key: tuple[str, str] = o["key"]

    def _key(self, request: web.BaseRequest) -> str:
        kind, name = self.key
        value = request.headers.get(name) if kind == "header" else request.query.get(name) if kind == "query" else None
        if value:
            return f"{kind}:{value}"
        return "ip:" + (request.get(keys.REMOTE_ADDR) or request.remote or "")

    async def __call__(self, request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        wait = self.buckets.wait(self._key(request))
        if wait > 0:
            return error_response(429, "too many requests", {
                hdrs.RETRY_AFTER: str(max(1, math.ceil(wait))), "X-RateLimit-Limit": str(self.requests),
                "X-RateLimit-Window": format_go_duration(self.window_ns)})
        return await handler(request)

# -- token_auth -----------------------------------------------------------------------------------

class TokenAuth:
    def __init__(self, o: Mapping[str, Any], deps: MiddlewareDeps) -> None:
        self.store: str = o["store"]
        self.header: str = o["header.name"]
        self.prefix: str = o["header.prefix"]
        self.query: str = o["query.param"]
        self.cookie: str = o["cookie.name"]
        env = deps.env.lookup if deps.env is not None else None
        self.tokens = TokenService(deps.registry, deps.stores, parse_go_duration, env=env)

    def _token(self, request: web.BaseRequest) -> str | None:
        value = request.headers.get(self.header) if self.header else None
        if value:
            if not self.prefix:
                return value.strip() or None
            if value[:len(self.prefix)].lower() == self.prefix.lower() and value[len(self.prefix):].strip():
                return value[len(self.prefix):].strip()
        return (request.query.get(self.query) if self.query else None) or \
            (request.cookies.get(self.cookie) if self.cookie else None) or None

    async def __call__(self, request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        token = self._token(request)
        if token:
            try:
                grant = await self.tokens.validate(self.store, token)
            except (WippyError, LookupError, TypeError, ValueError, AttributeError) as exc:
                # no valid token is no actor: authorization (the firewalls) decides what that allows
                log.debug("token_auth: %s", exc)
            else:
                request[keys.SECURITY] = {"actor": {"id": grant.actor_id, "meta": dict(grant.actor_meta)},
                                          "policies": list(grant.policy_ids)}
        return await handler(request)

# -- firewalls ------------------------------------------------------------------------------------

class Firewall:
    """401 without an actor; 403 unless the request's policies allow ``action`` on the resource (the
    matched endpoint, or a fixed ``target``). Policies that are gone or broken deny."""

    def __init__(self, deps: MiddlewareDeps, action: str, target: str | None) -> None:
        self.registry = deps.registry
        self.auth = Authorizer(deps.registry, strict=deps.strict, expr_eval=deps.expr)
        self.action = action
        self.target = target

    def _policies(self, security: Mapping[str, Any]) -> list[str]:
        ids = [p for p in security.get("policies") or () if isinstance(p, str)]
        groups = {g for g in security.get("groups") or () if isinstance(g, str)}
        if groups:  # a service default may name groups; their policies count too
            ids += [e.id for e in self.registry.current().values()
                    if e.kind.startswith("security.policy") and groups & set(e.data.get("groups") or ())]
        return ids

    async def __call__(self, request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        security = request.get(keys.SECURITY)
        if not isinstance(security, dict):
            security = {}
        actor = security.get("actor")
        if not isinstance(actor, Mapping) or not isinstance(actor.get("id"), str) or not actor["id"]:
            return error_response(401, "authentication required", {hdrs.WWW_AUTHENTICATE: "Bearer"})
        resource = self.target or request.get(keys.ENDPOINT)
        meta = actor.get("meta")
        try:
            if not resource:
                raise WippyError("no resource to check")  # never reached for a matched endpoint: fail closed
            self.auth.check((actor["id"], meta if isinstance(meta, Mapping) else {}), self._policies(security),
                            self.action, resource)
        except WippyError as exc:
            log.debug("firewall: %s", exc)
            return error_response(403, "permission denied")
        return await handler(request)



