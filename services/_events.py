"""The event bus of a node: `events.send` appends a record, subscriptions follow the stream.

Every event is an ``events.event`` record on the ``events`` stream (subject per sending node), so
events cross nodes and stay on the log. The node follows the whole stream from where it started
with one ordered push consumer and hands each event to its matching subscriptions. Each
subscription has a queue of its own: a subscriber that does not keep up never holds up the others
or the node; past ``capacity`` unread events it loses the newest ones, and counts them (``dropped``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import logging
import threading
from typing import Any

import orjson

from wippy.core import (
    EVENT_RECORD,
    EventStore,
    Pipeline,
    Record,
    RecordError,
    Subscription,
    WippyError,
    compile_event_pattern,
    event_body,
)

log = logging.getLogger("wippy.events")

#: unread events one subscription may hold before it drops new ones
DEFAULT_CAPACITY = 10_000


class EventError(WippyError):
    """An event that cannot be sent as given."""

    kind = "INVALID"


class EventSubscription:
    """The events matching one (system, kind) pattern pair, for one subscriber."""

    def __init__(self, bus: EventBus, system: str, kind: str | None, capacity: int) -> None:
        self.bus = bus
        self.system = system
        self.kind = kind
        self._system = compile_event_pattern(system)
        self._kind = compile_event_pattern(kind) if kind else None
        self.capacity = capacity
        self.queue: collections.deque[dict[str, Any]] = collections.deque()
        self.dropped = 0
        self.closed = False
        self._waiter: asyncio.Future[None] | None = None
        #: its own reader of the stream, when it started at a past position
        self.feed: Subscription | None = None

    def offer(self, event: dict[str, Any]) -> None:
        if self.closed:
            return
        if self._system.fullmatch("." + event["system"]) is None:
            return
        if self._kind is not None and self._kind.fullmatch("." + event["kind"]) is None:
            return
        if len(self.queue) >= self.capacity:
            if self.dropped == 0:
                log.warning("an event subscription fell %d events behind; new events are dropped until it "
                            "catches up", self.capacity, extra={"fields": {"system": self.system}})
            self.dropped += 1
            return
        self.queue.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next_batch(self) -> list[dict[str, Any]] | None:
        """Every event waiting now (waits for one); None once the subscription is closed."""
        while not self.queue:
            if self.closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        batch = list(self.queue)
        self.queue.clear()
        return batch

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.bus.subscriptions.discard(self)
        self.bus.positioned.discard(self)
        if self.feed is not None:  # a subscription from a past position reads the stream itself
            self.bus.stop_feed(self.feed)
            self.feed = None
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class EventBus:
    """Send and subscribe on one node. Use from the node's event loop."""

    def __init__(self, *, node: str, store: EventStore) -> None:
        self.node = node
        self.store = store
        self.subscriptions: set[EventSubscription] = set()
        #: subscriptions that started at a past position (each reads the stream itself)
        self.positioned: set[EventSubscription] = set()
        self._subject = store.subjects.events(node)
        self._publisher = Pipeline(store, store.subjects.events_stream)
        self._feed: Subscription | None = None
        self._stopping: set[asyncio.Task[None]] = set()
        self._closed = False

    async def start(self) -> None:
        """Follow the stream from its current end; events sent from now on reach subscribers."""
        stream = self.store.subjects.events_stream
        head = await self.store.last_seq(stream)
        await self._publisher.start(head)
        self._feed = await self.store.subscribe_raw(stream, head + 1, self._on_raw)

    def send(self, system: str, kind: str, path: str, data: Any, *, actor: str | None = None) -> None:
        """Append an event (pipelined: ``flush`` waits for the log to hold it)."""
        for name, value in (("system", system), ("kind", kind), ("path", path)):
            if not isinstance(value, str) or not value:
                raise EventError(f"events.send: {name} must be a non-empty string")
        if self._closed:
            raise EventError("events.send: the node is stopping")
        record = Record(type=EVENT_RECORD, body=event_body(system, kind, path, data), node=self.node, actor=actor)
        self._publisher.emit(self._subject, record.encode())

    def subscribe(self, system: str, kind: str | None = None, *, capacity: int = DEFAULT_CAPACITY
                  ) -> EventSubscription:
        """Events whose system (and kind) match the patterns, from now on."""
        sub = EventSubscription(self, system, kind, capacity)
        self.subscriptions.add(sub)
        return sub

    async def subscribe_from(self, system: str, kind: str | None, start: Any, *,
                             capacity: int = DEFAULT_CAPACITY) -> EventSubscription:
        """Events matching the patterns from a past position: ``"start"``, a sequence number, or
        an ISO time (the first event at or after it); EventError for one past the stream's end."""
        stream = self.store.subjects.events_stream
        head = await self.store.last_seq(stream)
        if start == "start":
            first = 1
        elif isinstance(start, int) and not isinstance(start, bool):
            if not 1 <= start <= head + 1:
                raise EventError(f"events.subscribe: from {start}: the events stream holds positions 1 to {head}")
            first = start
        elif isinstance(start, str):
            try:
                when = datetime.datetime.fromisoformat(start)
            except ValueError:
                raise EventError(f"events.subscribe: from {start!r}: expected \"start\", a position or an ISO "
                                 "time") from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=datetime.UTC)
            first = await self.store.seq_at(stream, int(when.timestamp() * 1e9))
        else:
            raise EventError("events.subscribe: from must be \"start\", a position or an ISO time")
        sub = EventSubscription(self, system, kind, capacity)
        self.positioned.add(sub)
        sub.feed = await self.store.subscribe_raw(stream, first, lambda seq, data, _p: self._offer(seq, data, (sub,)))
        return sub

    def stop_feed(self, feed: Subscription) -> None:
        task = asyncio.get_running_loop().create_task(feed.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def _on_raw(self, seq: int, data: bytes, _pending: int) -> None:
        if self.subscriptions:
            self._offer(seq, data, list(self.subscriptions))

    def _offer(self, seq: int, data: bytes, subs: Any) -> None:
        try:
            record = Record.decode(data)
        except RecordError as exc:
            log.error("event record %d skipped: %s", seq, exc)
            return
        if record.type != EVENT_RECORD:
            return
        event = dict(record.body)
        event["seq"] = seq
        event["at"] = record.at
        for sub in subs:
            sub.offer(event)

    async def flush(self) -> None:
        await self._publisher.flush()

    async def aclose(self) -> None:
        """Stop sending and following; open subscriptions end. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for sub in [*self.subscriptions, *self.positioned]:
            sub.close()
        for task in list(self._stopping):
            await task
        await self._publisher.aclose()
        if self._feed is not None:
            await self._feed.stop()


class LogsToEvents(logging.Handler):
    """Sends the node's log records to its bus as events: system ``logs``, kind ``logs.entry``,
    path the logger's name, data ``{level, message, fields}`` (logmanager.stream_to_events).
    Records of the bus itself and of the NATS client stay off it (they would feed themselves)."""

    def __init__(self, bus: EventBus) -> None:
        super().__init__(logging.INFO)
        self.bus = bus
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("wippy.events", "nats", "asyncio")):
            return
        fields = getattr(record, "fields", None)
        data = {"level": record.levelname.lower(), "message": record.getMessage(),
                "fields": fields if isinstance(fields, dict) else {}}
        if threading.get_ident() == self._thread:
            self._send(record.name, data)
        else:  # a log line from another thread (a projection writer): send it from the loop
            self._loop.call_soon_threadsafe(self._send, record.name, data)

    def _send(self, name: str, data: dict[str, Any]) -> None:
        with contextlib.suppress(WippyError):  # the bus is stopping: the record went to the log output anyway
            self.bus.send("logs", "logs.entry", name, orjson.loads(orjson.dumps(data, default=str)))
