"""The routes of one HTTP server: a segment tree matched most-specific first.

At each segment a literal beats ``{param}``, which beats ``{tail...}``; so ``/users/me`` wins over
``/users/{id}`` whatever the order of the entries. A path that matches with another method gives
405 with an ``Allow`` header; HEAD falls back to GET. Trailing slashes do not matter
(``/users/`` is ``/users``). A table is immutable once built: a new registry version builds a new
one and requests already running keep theirs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from wippy.core import PathSegment


@dataclass(slots=True)
class _Node:
    literal: dict[str, _Node] = field(default_factory=dict)
    param: _Node | None = None
    tail: dict[str, Any] | None = None
    methods: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Match:
    """What a path matched: the route for the method (None: 405), params, and the allowed methods."""

    route: Any
    params: dict[str, str]
    allowed: tuple[str, ...]
    any_route: Any  # a route of the same path (any method): its router's middleware applies to 405s


class Conflict(Exception):
    """Two routes claim the same method and path."""


class RouteTree:
    def __init__(self) -> None:
        self._root = _Node()
        self._count = 0
        #: routes without parameters by their path: most requests are matched here, by one lookup
        self._exact: dict[str, dict[str, Any]] = {}

    def __len__(self) -> int:
        return self._count

    def add(self, method: str, segments: Iterable[PathSegment], route: Any) -> None:
        segments = tuple(segments)
        node = self._root
        for seg in segments:
            if seg.tail:
                assert seg.param is not None
                if node.tail is None:
                    node.tail = {}
                self._put(node.tail, method, route)
                return
            if seg.param is not None:
                # routes that differ only in a parameter's name share the position; each route
                # names the values itself (route.param_names)
                if node.param is None:
                    node.param = _Node()
                node = node.param
            else:
                node = node.literal.setdefault(seg.text, _Node())
        self._put(node.methods, method, route)
        if all(seg.param is None for seg in segments):
            self._exact["/" + "/".join(seg.text for seg in segments)] = node.methods

    def _put(self, methods: dict[str, Any], method: str, route: Any) -> None:
        if method in methods:
            raise Conflict(method)
        methods[method] = route
        self._count += 1

    def match(self, method: str, path: str) -> Match | None:
        if "%" not in path:
            key = path[:-1] if len(path) > 1 and path.endswith("/") else path
            methods = self._exact.get(key)
            if methods is not None:
                route = methods.get(method)
                if route is not None:
                    return Match(route, {}, (), route)
        parts = [unquote(p) for p in path.split("/")[1:]] if path != "/" else []
        if parts and parts[-1] == "":
            parts.pop()
        values: list[str] = []
        found = self._find(self._root, parts, 0, values)
        if found is None:
            return None
        methods, tail = found
        route = methods.get(method)
        if route is None and method == "HEAD":
            route = methods.get("GET")
        any_route = route if route is not None else next(iter(methods.values()))
        params = dict(zip(any_route.param_names, values, strict=False))
        if tail is not None and any_route.tail_name is not None:
            params[any_route.tail_name] = tail
        allowed = tuple(sorted(set(methods) | ({"HEAD"} if "GET" in methods else set())))
        return Match(route, params, allowed, any_route)

    def _find(self, node: _Node, parts: list[str], i: int, values: list[str]
              ) -> tuple[dict[str, Any], str | None] | None:
        if i == len(parts):
            if node.methods:
                return node.methods, None
            if node.tail is not None:  # "/files/{p...}" matches "/files" with an empty tail
                return node.tail, ""
            return None
        part = parts[i]
        child = node.literal.get(part)
        if child is not None:
            found = self._find(child, parts, i + 1, values)
            if found is not None:
                return found
        if node.param is not None and part:
            values.append(part)
            found = self._find(node.param, parts, i + 1, values)
            if found is not None:
                return found
            values.pop()
        if node.tail is not None:
            return node.tail, "/".join(parts[i:])
        return None
