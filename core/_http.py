"""HTTP entries as data: `http.service`, `http.router`, `http.endpoint`, `http.static`.

The specs here are what the HTTP server is built from; the checks run when entries are applied,
so a bad definition is refused with an error naming entry and field and the running server keeps
its current routes. Paths are Wippy's patterns: literal segments, ``{name}`` (one segment) and a
final ``{name...}`` (the rest of the path).

Fields beyond Wippy's (our extensions, documented in the README), on http.service: ``max_body``
(bytes or a size such as ``10MB``; larger request bodies get 413), ``access_log`` (each request
becomes a record on the log; off by default) and ``reuse_port`` (SO_REUSEPORT, so several nodes
on one machine share a port).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._durations import parse_go_duration
from ._entry import Entry
from ._errors import DefinitionError
from ._hosts import parse_size
from ._validate import register_changeset_check, register_kind_check

METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT"})
#: Wippy's default limit for a request body read by a handler (http.request's max_body)
DEFAULT_MAX_BODY = 120 * 1024 * 1024
_PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)(\.\.\.)?\}$")
_ADDR = re.compile(r"^(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d{1,5})$")


@dataclass(frozen=True, slots=True)
class Segment:
    """One path segment: a literal, a ``{param}`` or the final ``{tail...}``."""

    text: str
    param: str | None = None
    tail: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsSpec:
    cert: str
    key: str
    client_ca: str | None = None
    client_auth: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSpec:
    id: str
    host: str | None  # None: every interface
    port: int
    read_timeout: float | None = None
    write_timeout: float | None = None
    idle_timeout: float | None = None
    max_body: int = DEFAULT_MAX_BODY
    access_log: bool = False
    #: SO_REUSEPORT: several nodes on one machine may listen on the same port (ours)
    reuse_port: bool = False
    tls: TlsSpec | None = None
    auto_start: bool = False
    stop_timeout: float = 10.0
    security: Mapping[str, Any] | None = None

    @property
    def bind(self) -> tuple[Any, ...]:
        """What a listener is made of: a change here means rebinding."""
        return self.host, self.port, self.tls, self.reuse_port, self.idle_timeout, self.stop_timeout


@dataclass(frozen=True, slots=True, kw_only=True)
class RouterSpec:
    id: str
    server: str
    prefix: str
    middleware: tuple[str, ...] = ()
    options: Mapping[str, Any] | None = None
    post_middleware: tuple[str, ...] = ()
    post_options: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointSpec:
    id: str
    router: str
    method: str
    path: str
    segments: tuple[Segment, ...]
    func: str


def parse_addr(value: Any) -> tuple[str | None, int]:
    """``":8080"``, ``"127.0.0.1:0"``, ``"[::1]:80"`` -> (host or None for every interface, port)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = f":{value}"
    if not isinstance(value, str):
        raise ValueError("must be an address such as ':8080' or '127.0.0.1:8080'")
    m = _ADDR.match(value.strip())
    if m is None:
        raise ValueError(f"{value!r} is not an address such as ':8080' or '127.0.0.1:8080'")
    port = int(m.group("port"))
    if port > 65535:
        raise ValueError(f"port {port} is out of range")
    host = m.group("v6") or m.group("host") or None
    return host, port


def parse_path(path: Any) -> tuple[Segment, ...]:
    """The segments of a route path; ValueError naming what is wrong."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError("must be a path starting with '/'")
    parts = path.split("/")[1:]
    if parts and parts[-1] == "":
        parts.pop()  # "/users/" matches like "/users"
    out: list[Segment] = []
    names: set[str] = set()
    for i, part in enumerate(parts):
        if "{" in part or "}" in part:
            m = _PARAM.match(part)
            if m is None:
                raise ValueError(f"segment {part!r}: a parameter is a whole segment, {{name}} or {{name...}}")
            name, tail = m.group(1), bool(m.group(2))
            if tail and i != len(parts) - 1:
                raise ValueError(f"segment {part!r}: a {{name...}} wildcard must be the last segment")
            if name in names:
                raise ValueError(f"parameter {name!r} appears twice")
            names.add(name)
            out.append(Segment(part, name, tail))
        elif part == "":
            raise ValueError("has an empty segment ('//')")
        else:
            out.append(Segment(part))
    return tuple(out)


def join_path(prefix: str, path: str) -> str:
    """A router prefix and an endpoint path as one path ("/" + "/hello" -> "/hello")."""
    prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
    rest = path if path.startswith("/") else "/" + path
    joined = prefix + rest
    if len(joined) > 1 and joined.endswith("/"):
        joined = joined[:-1]
    return joined or "/"


def _seconds(raw: Any) -> float | None:
    if raw is None or raw in {0, "0"}:
        return None
    if isinstance(raw, bool):
        raise ValueError("must be a duration such as '30s'")
    if isinstance(raw, int | float):
        if raw < 0:
            raise ValueError("must not be negative")
        return float(raw) / 1000.0  # Wippy's numeric durations are milliseconds
    if isinstance(raw, str):
        ns = parse_go_duration(raw)
        if ns < 0:
            raise ValueError("must not be negative")
        return ns / 1e9 or None
    raise ValueError("must be a duration such as '30s'")


def _field(errors: list[DefinitionError], entry: Entry, field: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except ValueError as exc:
        errors.append(DefinitionError(str(exc), entry=entry.id, field=field))
        return None


def _lifecycle(entry: Entry) -> dict[str, Any]:
    raw = entry.data.get("lifecycle")
    return raw if isinstance(raw, dict) else {}


def service_spec(entry: Entry) -> tuple[ServiceSpec | None, list[DefinitionError]]:
    d = entry.data
    errors: list[DefinitionError] = []
    if d.get("addr") is None:
        errors.append(DefinitionError("is required (an address such as ':8080')", entry=entry.id, field="addr"))
        addr = None
    else:
        addr = _field(errors, entry, "addr", lambda: parse_addr(d.get("addr")))
    timeouts = d.get("timeouts") or {}
    if not isinstance(timeouts, dict):
        errors.append(DefinitionError("must be a mapping (read, write, idle)", entry=entry.id, field="timeouts"))
        timeouts = {}
    read = _field(errors, entry, "timeouts.read", lambda: _seconds(timeouts.get("read")))
    write = _field(errors, entry, "timeouts.write", lambda: _seconds(timeouts.get("write")))
    idle = _field(errors, entry, "timeouts.idle", lambda: _seconds(timeouts.get("idle")))
    max_body = DEFAULT_MAX_BODY
    if d.get("max_body") is not None:
        got = _field(errors, entry, "max_body", lambda: parse_size(d.get("max_body")))
        if got is not None and got < 0:
            errors.append(DefinitionError("must not be negative", entry=entry.id, field="max_body"))
        elif got is not None:
            max_body = got
    errors.extend(DefinitionError("must be true or false", entry=entry.id, field=flag)
                  for flag in ("access_log", "reuse_port") if not isinstance(d.get(flag, False), bool))
    tls = _tls(entry, errors)
    life = _lifecycle(entry)
    stop = _field(errors, entry, "lifecycle.stop_timeout", lambda: _seconds(life.get("stop_timeout")))
    security = life.get("security")
    if errors or addr is None:
        return None, errors
    return ServiceSpec(id=entry.id, host=addr[0], port=addr[1], read_timeout=read, write_timeout=write,
                       idle_timeout=idle, max_body=max_body, access_log=d.get("access_log") is True,
                       reuse_port=d.get("reuse_port") is True, tls=tls,
                       auto_start=life.get("auto_start") is True, stop_timeout=stop or 10.0,
                       security=security if isinstance(security, dict) else None), []


def _tls(entry: Entry, errors: list[DefinitionError]) -> TlsSpec | None:
    raw = entry.data.get("tls")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        errors.append(DefinitionError("must be a mapping (mode, cert, key, ...)", entry=entry.id, field="tls"))
        return None
    mode = raw.get("mode") or ""
    if mode == "":
        return None
    if mode == "auto":
        errors.append(DefinitionError("mode auto needs a network overlay, which this runtime does not provide; "
                                      "use mode: manual with cert and key", entry=entry.id, field="tls.mode"))
        return None
    if mode != "manual":
        errors.append(DefinitionError(f"must be '', manual or auto, not {mode!r}", entry=entry.id, field="tls.mode"))
        return None
    errors.extend(DefinitionError("is required with mode: manual (PEM text or a file path)", entry=entry.id,
                                  field=f"tls.{key}")
                  for key in ("cert", "key") if not isinstance(raw.get(key), str) or not raw[key])
    auth = raw.get("client_auth")
    if auth is not None and auth not in ("request", "require_any", "verify_if_given", "require_and_verify"):
        errors.append(DefinitionError("must be request, require_any, verify_if_given or require_and_verify",
                                      entry=entry.id, field="tls.client_auth"))
    if auth in ("verify_if_given", "require_and_verify") and not raw.get("client_ca"):
        errors.append(DefinitionError(f"client_auth {auth} needs client_ca", entry=entry.id, field="tls.client_ca"))
    if any(e.entry == entry.id and (e.field or "").startswith("tls") for e in errors):
        return None
    return TlsSpec(cert=raw["cert"], key=raw["key"], client_ca=raw.get("client_ca"), client_auth=auth)


def _names(entry: Entry, field: str, errors: list[DefinitionError]) -> tuple[str, ...]:
    raw = entry.data.get(field)
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        errors.append(DefinitionError("must be a list of middleware names", entry=entry.id, field=field))
        return ()
    return tuple(raw)


def _options(entry: Entry, field: str, errors: list[DefinitionError]) -> Mapping[str, Any] | None:
    raw = entry.data.get(field)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        errors.append(DefinitionError("must be a mapping of option names to values", entry=entry.id, field=field))
        return None
    return raw


def router_spec(entry: Entry) -> tuple[RouterSpec | None, list[DefinitionError]]:
    errors: list[DefinitionError] = []
    server = entry.meta.get("server")
    if not isinstance(server, str) or not server:
        errors.append(DefinitionError("must name the http.service this router belongs to", entry=entry.id,
                                      field="meta.server"))
    prefix = entry.data.get("prefix", "")
    if prefix is None:
        prefix = ""
    if not isinstance(prefix, str) or (prefix and not prefix.startswith("/")):
        errors.append(DefinitionError("must be a path starting with '/' (or empty)", entry=entry.id, field="prefix"))
    elif prefix and prefix != "/":
        _field(errors, entry, "prefix", lambda: parse_path(prefix))
    mw = _names(entry, "middleware", errors)
    opts = _options(entry, "options", errors)
    post = _names(entry, "post_middleware", errors)
    post_opts = _options(entry, "post_options", errors)
    if errors:
        return None, errors
    assert isinstance(server, str) and isinstance(prefix, str)
    return RouterSpec(id=entry.id, server=server, prefix=prefix, middleware=mw, options=opts, post_middleware=post,
                      post_options=post_opts), []


def endpoint_spec(entry: Entry) -> tuple[EndpointSpec | None, list[DefinitionError]]:
    errors: list[DefinitionError] = []
    router = entry.meta.get("router")
    if not isinstance(router, str) or not router:
        errors.append(DefinitionError("must name the http.router this endpoint belongs to", entry=entry.id,
                                      field="meta.router"))
    method = entry.data.get("method")
    if not isinstance(method, str) or method.upper() not in METHODS:
        errors.append(DefinitionError(f"must be one of {', '.join(sorted(METHODS))}", entry=entry.id, field="method"))
    path = entry.data.get("path")
    segments = _field(errors, entry, "path", lambda: parse_path(path))
    func = entry.data.get("func")
    if not isinstance(func, str) or not func:
        errors.append(DefinitionError("must name the function.lua that handles requests", entry=entry.id,
                                      field="func"))
    if errors:
        return None, errors
    assert isinstance(router, str) and isinstance(method, str) and isinstance(path, str) and isinstance(func, str)
    return EndpointSpec(id=entry.id, router=router, method=method.upper(), path=path, segments=segments,
                        func=func), []


def _service_errors(entry: Entry) -> list[DefinitionError]:
    return service_spec(entry)[1]


def _router_errors(entry: Entry) -> list[DefinitionError]:
    return router_spec(entry)[1]


def _endpoint_errors(entry: Entry) -> list[DefinitionError]:
    return endpoint_spec(entry)[1]


register_kind_check(["http.service"], _service_errors)
register_kind_check(["http.router"], _router_errors)
register_kind_check(["http.endpoint"], _endpoint_errors)


def _route_key(method: str, segments: tuple[Segment, ...]) -> tuple[str, tuple[str, ...]]:
    """What two routes collide on: the method and the path with parameter names left out."""
    return method, tuple("{...}" if seg.tail else "{}" if seg.param else seg.text for seg in segments)


def _duplicate_routes(post: Callable[[str], Entry | None], referrers: Callable[[str], set[str]],
                      changed: list[Entry]) -> list[DefinitionError]:
    """Two endpoints of one server claiming the same method and path (whatever their routers)."""
    servers: set[str] = set()
    for entry in changed:
        router = post(entry.meta.get("router", "")) if entry.kind == "http.endpoint" else entry
        if router is not None and router.kind == "http.router" and isinstance(router.meta.get("server"), str):
            servers.add(router.meta["server"])
    errors: list[DefinitionError] = []
    for server in sorted(servers):
        seen: dict[tuple[str, tuple[str, ...]], str] = {}
        for router_id in sorted(referrers(server)):
            router = post(router_id)
            spec = router_spec(router)[0] if router is not None and router.kind == "http.router" else None
            if spec is None or spec.server != server:
                continue
            for endpoint_id in sorted(referrers(router_id)):
                endpoint = post(endpoint_id)
                ep = endpoint_spec(endpoint)[0] if endpoint is not None and endpoint.kind == "http.endpoint" else None
                if ep is None or ep.router != router_id:
                    continue
                key = _route_key(ep.method, parse_path(join_path(spec.prefix, ep.path)))
                other = seen.setdefault(key, ep.id)
                if other != ep.id:
                    errors.append(DefinitionError(
                        f"{ep.method} {join_path(spec.prefix, ep.path)} on {server} is also served by {other}",
                        entry=ep.id, field="path"))
    return errors


register_changeset_check(_duplicate_routes)
