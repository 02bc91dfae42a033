"""The record envelope: what every message in every stream looks like.

A record is immutable. Its ``type`` is a stable dotted name (``registry.changeset.applied``),
never a Python path, and ``schema`` its integer schema version. Readers upcast old versions on
decode, so a fold only ever sees the newest shape; the log itself is never rewritten.

Wire format (orjson)::

    {"type": "registry.changeset.applied", "schema": 1, "at": <unix ns>, "node": "n1",
     "actor": "user:ann" | null, "trace": "00-<trace>-<span>-01" | null, "body": {...}}
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ._errors import RecordError

Body = dict[str, Any]
Upcaster = Callable[[Body], Body]

# (type, from_schema) -> function returning the body at from_schema + 1.
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}
_CURRENT: dict[str, int] = {}


def register_type(type_name: str, schema: int, upcasters: dict[int, Upcaster] | None = None) -> None:
    """Declare a record type, its current schema version and the upcasters from older ones."""
    _CURRENT[type_name] = schema
    for from_version, fn in (upcasters or {}).items():
        _UPCASTERS[(type_name, from_version)] = fn


def current_schema(type_name: str) -> int:
    return _CURRENT.get(type_name, 1)


def new_traceparent() -> str:
    """A fresh W3C traceparent (version 00, sampled)."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """One immutable log record."""

    type: str
    body: Body
    schema: int = 0  # 0 means "the current schema of this type"
    at: int = field(default_factory=time.time_ns)
    node: str = ""
    actor: str | None = None
    trace: str | None = None

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "type": self.type,
                "schema": self.schema or current_schema(self.type),
                "at": self.at,
                "node": self.node,
                "actor": self.actor,
                "trace": self.trace,
                "body": self.body,
            }
        )

    @staticmethod
    def decode(data: bytes | bytearray | memoryview) -> Record:
        """Decode and upcast a record; raises RecordError when it cannot be read."""
        try:
            raw = orjson.loads(data)
            type_name = raw["type"]
            schema = int(raw["schema"])
            body = raw["body"]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"undecodable record: {exc}") from exc
        if not isinstance(body, dict):
            raise RecordError(f"record {type_name}: body is not an object")
        target = _CURRENT.get(type_name, schema)
        if schema == target:  # the common case, kept cheap: replay decodes every record
            return Record(type=type_name, body=body, schema=schema, at=raw.get("at") or 0,
                          node=raw.get("node") or "", actor=raw.get("actor"), trace=raw.get("trace"))
        if schema > target:
            raise RecordError(
                f"record {type_name} has schema {schema}, newer than this runtime's {target}; upgrade wippy"
            )
        while schema < target:
            up = _UPCASTERS.get((type_name, schema))
            if up is None:
                raise RecordError(f"record {type_name}: no upcaster from schema {schema}")
            body = up(body)
            schema += 1
        return Record(
            type=type_name,
            schema=schema,
            body=body,
            at=int(raw.get("at") or 0),
            node=str(raw.get("node") or ""),
            actor=raw.get("actor"),
            trace=raw.get("trace"),
        )

