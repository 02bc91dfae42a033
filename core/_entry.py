"""Registry entries: ``{id = "ns:name", kind, meta, data}``, as Wippy's ``registry.get`` returns them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from ._errors import DefinitionError

# Namespace: dot-separated words; name: anything without ':' or whitespace.
_NS = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
_NAME = re.compile(r"^[^\s:]+$")

Json = Any


def check_namespace(ns: object, *, where: str | None = None) -> str:
    if not isinstance(ns, str) or not _NS.fullmatch(ns):
        raise DefinitionError(
            f"namespace {ns!r} must be dot-separated words of letters, digits, '_' or '-'",
            where=where,
            field="namespace",
        )
    return ns


def parse_id(value: object, *, where: str | None = None) -> tuple[str, str]:
    """Split ``ns:name`` (single colon; the namespace may contain dots)."""
    if not isinstance(value, str) or value.count(":") != 1:
        raise DefinitionError(f"entry id {value!r} must be 'namespace:name'", where=where)
    ns, name = value.split(":")
    check_namespace(ns, where=where)
    if not _NAME.fullmatch(name):
        raise DefinitionError(f"entry id {value!r}: name must be non-empty, without ':' or spaces", where=where)
    return ns, name


def canonical_json(value: Json) -> bytes:
    """Key-sorted JSON: equal values give equal bytes (used for digests and equality)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, slots=True)
class Entry:
    """One registry entry. ``meta`` and ``data`` are JSON-compatible and never mutated in place."""

    id: str
    kind: str
    meta: dict[str, Json] = field(default_factory=dict)
    data: dict[str, Json] = field(default_factory=dict)

    @property
    def ns(self) -> str:
        return self.id.split(":", 1)[0]

    @property
    def name(self) -> str:
        return self.id.split(":", 1)[1]

    def to_dict(self) -> dict[str, Json]:
        return {"id": self.id, "kind": self.kind, "meta": self.meta, "data": self.data}

    @staticmethod
    def from_dict(raw: dict[str, Json]) -> Entry:
        return Entry(id=raw["id"], kind=raw["kind"], meta=raw.get("meta") or {}, data=raw.get("data") or {})

    def content(self) -> bytes:
        """Canonical bytes of what the entry says (kind, meta, data)."""
        return canonical_json([self.kind, self.meta, self.data])

    def digest(self) -> str:
        """A short content hash; equal digests mean equal entries."""
        return hashlib.blake2b(self.content(), digest_size=12).hexdigest()

    def same_as(self, other: Entry | None) -> bool:
        return other is not None and self.id == other.id and self.content() == other.content()
