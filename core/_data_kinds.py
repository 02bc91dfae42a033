"""Apply-time checks of the store and queue kinds (the `store` and `queue` modules serve them).

A bad field is refused when the changeset is applied, naming the entry and the field, rather
than when a process first touches the store or queue.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._durations import parse_go_duration
from ._entry import Entry
from ._errors import DefinitionError
from ._validate import register_kind_check

#: Codecs a queue may use for message bodies (Wippy's payload format names).
QUEUE_CODECS = ("json/plain", "application/msgpack")
#: Queue drivers this runtime runs; amqp and sqs are refused when used (not implemented).
QUEUE_DRIVERS = ("queue.driver.memory", "queue.driver.jetstream")
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True, slots=True)
class QueueSpec:
    id: str
    driver: str
    name: str
    codec: str
    #: queue id failed messages go to, and the deliveries before they do (0: redelivered forever)
    dead_letter: str | None
    max_attempts: int
    options: dict[str, Any]  # this queue's driver_options sub-bag for its driver


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    id: str
    queue: str
    func: str
    concurrency: int
    prefetch: int
    auto_ack: bool


class _Errors:
    def __init__(self, entry: Entry) -> None:
        self.entry = entry
        self.found: list[DefinitionError] = []

    def add(self, field: str, message: str) -> None:
        self.found.append(DefinitionError(message, entry=self.entry.id, field=field))

    def count(self, field: str, default: int, *, minimum: int) -> int:
        raw = self.entry.data.get(field, default)
        if not isinstance(raw, int) or isinstance(raw, bool) or raw < minimum:
            self.add(field, f"must be an integer >= {minimum}")
            return default
        return raw

    def ref(self, field: str, value: Any) -> str:
        if not isinstance(value, str) or ":" not in value:
            self.add(field, "must name an entry (namespace:name)")
            return ""
        return value

    def duration(self, field: str, value: Any) -> None:
        if value is None or (isinstance(value, int | float) and not isinstance(value, bool) and value >= 0):
            return
        try:
            parse_go_duration(str(value))
        except ValueError as exc:
            self.add(field, str(exc))


def queue_spec(entry: Entry, driver_kind: str | None = None) -> tuple[QueueSpec | None, list[DefinitionError]]:
    e = _Errors(entry)
    d = entry.data
    driver = e.ref("driver", d.get("driver"))
    name = d.get("queue_name") or entry.id.split(":", 1)[-1]
    if not isinstance(name, str) or not _QUEUE_NAME.match(name.replace(".", "_")):
        e.add("queue_name", "must be letters, digits, '.', '_' or '-'")
    codec = d.get("codec") or "json/plain"
    if codec not in QUEUE_CODECS:
        e.add("codec", f"unknown codec {codec!r}; one of {', '.join(QUEUE_CODECS)}")
    dl = d.get("dead_letter") or {}
    dead_letter: str | None = None
    max_attempts = 0
    if not isinstance(dl, dict):
        e.add("dead_letter", "must be a map with `queue` and `max_attempts`")
    else:
        if dl.get("queue") is not None:
            dead_letter = e.ref("dead_letter.queue", dl.get("queue"))
            if dead_letter == entry.id:
                e.add("dead_letter.queue", "a queue cannot be its own dead-letter queue")
        raw = dl.get("max_attempts", 5 if dead_letter else 0)
        if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
            e.add("dead_letter.max_attempts", "must be a non-negative integer")
        else:
            max_attempts = raw
    opts = d.get("driver_options") or {}
    if not isinstance(opts, dict):
        e.add("driver_options", "must be a map keyed by driver (memory, jetstream, ...)")
        opts = {}
    short = (driver_kind or "").rsplit(".", 1)[-1]
    mine = opts.get(short) or {}
    if not isinstance(mine, dict):
        e.add(f"driver_options.{short}", "must be a map")
        mine = {}
    for key in ("max_length", "max_ack_pending"):
        if key in mine and (not isinstance(mine[key], int) or isinstance(mine[key], bool) or mine[key] < 0):
            e.add(f"driver_options.{short}.{key}", "must be a non-negative integer")
    e.duration(f"driver_options.{short}.ack_wait", mine.get("ack_wait"))
    if e.found:
        return None, e.found
    return QueueSpec(id=entry.id, driver=driver, name=str(name), codec=str(codec), dead_letter=dead_letter,
                     max_attempts=max_attempts, options=dict(mine)), []


def consumer_spec(entry: Entry) -> tuple[ConsumerSpec | None, list[DefinitionError]]:
    e = _Errors(entry)
    d = entry.data
    queue = e.ref("queue", d.get("queue"))
    func = e.ref("func", d.get("func"))
    concurrency = e.count("concurrency", 1, minimum=1)
    prefetch = e.count("prefetch", 10, minimum=1)
    auto_ack = d.get("auto_ack", False)
    if not isinstance(auto_ack, bool):
        e.add("auto_ack", "must be true or false")
    if e.found:
        return None, e.found
    return ConsumerSpec(id=entry.id, queue=queue, func=func, concurrency=concurrency,
                        prefetch=max(prefetch, 1), auto_ack=bool(auto_ack)), []


def _store_errors(entry: Entry) -> list[DefinitionError]:
    e = _Errors(entry)
    d = entry.data
    if entry.kind == "store.memory":
        e.count("max_size", 10000, minimum=1)
        e.duration("cleanup_interval", d.get("cleanup_interval"))
    if entry.kind == "store.kv.raft":
        if d.get("namespace") is not None and not isinstance(d.get("namespace"), str):
            e.add("namespace", "must be a string (the bucket's name)")
        e.count("replicas", 1, minimum=1)
        if d.get("durable") is not None and not isinstance(d.get("durable"), bool):
            e.add("durable", "must be true or false")
    if "read_only" in d and not isinstance(d["read_only"], bool):
        e.add("read_only", "must be true or false")
    if "max_value_size" in d:
        e.count("max_value_size", 0, minimum=0)
    return e.found


def _checks(fn: Callable[[Entry], tuple[Any, list[DefinitionError]]]) -> Callable[[Entry], list[DefinitionError]]:
    return lambda entry: fn(entry)[1]


register_kind_check(["store.memory", "store.kv.raft", "store.sql"], _store_errors)
register_kind_check(["queue.queue"], _checks(queue_spec))
register_kind_check(["queue.consumer"], _checks(consumer_spec))
