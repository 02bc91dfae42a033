"""The event store: the one module that talks to NATS JetStream.

What an acknowledgement means (see README, "Durability"): ``append`` returns only after the
stream leader has written the record to its files and answered with its sequence, so an
acknowledged record survives a crash (even ``kill -9``) of the runtime and of nats-server. The
embedded server fsyncs every second (``sync_interval: 1s``), so a power failure can lose the last
second; ``sync_interval: always`` fsyncs before every ack. Replicated streams (``replicas`` > 1 on
a cluster) survive the loss of a node.

Optimistic concurrency: ``append(..., expected_last_seq=N)`` sets ``Nats-Expected-Last-Sequence``,
so a writer that did not see the newest record gets a ConflictError and nothing is written.
Idempotent retry: ``msg_id`` sets ``Nats-Msg-Id``; the server drops a repeat within its
duplicate window and answers with the original sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import orjson

from ._errors import ConflictError, LogError, LogUnavailableError, PayloadTooLargeError
from ._records import Record
from ._subjects import StreamSpec, Subjects

# nats-py imports aiohttp (a quarter of a second) only to offer ws:// URLs, which the runtime does
# not use: hide it while nats loads, so every `wippy` command starts faster. Code that needs
# aiohttp imports it later as usual.
_hide_aiohttp = "aiohttp" not in sys.modules
if _hide_aiohttp:
    sys.modules["aiohttp"] = None  # type: ignore[assignment]
try:
    import nats
    import nats.errors
    import nats.js.errors
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.js import api as js_api
finally:
    if _hide_aiohttp:
        del sys.modules["aiohttp"]


#: Called for each delivered record with its stream sequence and the number still pending.
RecordHandler = Callable[[int, Record, int], Awaitable[None] | None]
RawHandler = Callable[[int, bytes, int], Awaitable[None] | None]
#: An acknowledgement of a pipelined publish: (token, stream sequence or None if refused or unanswerable).
AckHandler = Callable[[int, int | None], None]
#: Answers a request: (subject, payload) -> reply bytes.
RequestHandler = Callable[[str, bytes], Awaitable[bytes]]
_PART = "Wippy-Part"

_WRONG_LAST_SEQUENCE = 10071
_JETSTREAM_UNAVAILABLE = 10008
_DUPLICATE_WINDOW = timedelta(minutes=2)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreSettings:
    """How streams are created. Replicas > 1 needs a NATS cluster."""

    replicas: int = 1
    #: Largest record this store writes; None: the server's max payload. Larger changesets
    #: are chunked below this size.
    max_record_bytes: int | None = None
    connect_timeout: timedelta = timedelta(seconds=5)
    request_timeout: timedelta = timedelta(seconds=10)


class Subscription(Protocol):
    async def stop(self) -> None: ...


class EventStore(Protocol):
    """The log as the rest of the runtime sees it."""

    subjects: Subjects

    @property
    def max_payload(self) -> int: ...
    async def provision(self) -> None: ...
    async def append(
        self, subject: str, record: Record, *, expected_last_seq: int | None = None, msg_id: str | None = None
    ) -> int: ...
    async def last_seq(self, stream: str) -> int: ...
    async def read(self, stream: str, start: int = 1, end: int | None = None) -> list[tuple[int, Record]]: ...
    async def subscribe(self, stream: str, from_seq: int, handler: RecordHandler) -> Subscription: ...
    async def subscribe_raw(self, stream: str, from_seq: int, handler: RawHandler, *,
                            subject: str | None = None) -> Subscription: ...
    async def publish_pipelined(self, subject: str, data: bytes) -> asyncio.Future[Any]: ...
    async def open_acks(self, on_ack: AckHandler) -> AckChannel: ...
    async def append_raw(self, subject: str, payload: bytes, *, msg_id: str | None = None) -> int: ...
    async def read_raw(self, stream: str, start: int = 1, end: int | None = None) -> list[tuple[int, bytes]]: ...
    async def get_raw(self, stream: str, seqs: Sequence[int]) -> list[tuple[int, bytes]]: ...
    async def seq_at(self, stream: str, at_ns: int) -> int: ...
    async def aclose(self) -> None: ...


class AckChannel(Protocol):
    async def publish(self, subject: str, data: bytes, token: int) -> None: ...
    async def close(self) -> None: ...


class _AckChannel:
    """Pipelined publishes whose acknowledgements go to one handler, by token.

    Leaner than nats-py's ``publish_async`` (no future, semaphore or random token per record):
    the reply subject carries the caller's token, and the handler gets the sequence, or None when
    the server answered with an error or nobody answered (JetStream not ready). Flow control is
    the caller's (see Pipeline)."""

    def __init__(self, nc: NatsClient, on_ack: AckHandler) -> None:
        self._nc = nc
        self._on_ack = on_ack
        self._prefix = nc.new_inbox() + "."
        self._sub: Any = None

    async def open(self) -> None:
        self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._cb)

    async def _cb(self, msg: Msg) -> None:
        try:
            token = int(msg.subject[len(self._prefix):])
        except ValueError:
            return
        seq: int | None = None
        if msg.data:
            try:
                seq = int(orjson.loads(msg.data).get("seq") or 0) or None
            except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
                seq = None
        self._on_ack(token, seq)

    async def publish(self, subject: str, data: bytes, token: int) -> None:
        try:
            await self._nc.publish(subject, data, reply=f"{self._prefix}{token}")
        except (TimeoutError, nats.errors.Error) as exc:
            raise LogUnavailableError(f"publish to {subject} failed: {exc or type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
                await self._sub.unsubscribe()


class _NatsSubscription:
    def __init__(self, sub: Any) -> None:
        self._sub = sub
        self._stopped = False

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError):
            await self._sub.unsubscribe()


class _Feed:
    """An ordered push consumer that survives a NATS server restart.

    nats-py's ordered consumer notices a lost server-side consumer only after two missed idle
    heartbeats (10-20 s); a feed is re-created as soon as the connection is back, from the record
    after the last one delivered, and never hands a sequence to its handler twice.
    """

    def __init__(self, store: JetStreamEventStore, stream: str, subject: str, from_seq: int,
                 handler: RawHandler) -> None:
        self._store = store
        self._stream = stream
        self._subject = subject
        self._handler = handler
        self.last = max(1, from_seq) - 1
        self._sub: Any = None
        self._stopped = False
        self._restarting: asyncio.Task[None] | None = None

    async def _cb(self, msg: Msg) -> None:
        seq, pending = _meta(msg)
        if seq <= self.last:  # a repeat from a consumer being replaced
            return
        self.last = seq
        result = self._handler(seq, msg.data, pending)
        if result is not None:
            await result

    async def open(self) -> None:
        config = js_api.ConsumerConfig(deliver_policy=js_api.DeliverPolicy.BY_START_SEQUENCE,
                                       opt_start_seq=self.last + 1)
        try:
            self._sub = await self._store._js.subscribe(
                self._subject, stream=self._stream, cb=self._cb, ordered_consumer=True, config=config,
                pending_msgs_limit=0, pending_bytes_limit=0,
            )
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise LogUnavailableError(f"cannot subscribe to {self._stream}: {exc or type(exc).__name__}") from exc

    def reopen(self) -> None:
        """After a reconnect: replace the consumer (in the background, retrying until it works)."""
        if not self._stopped and (self._restarting is None or self._restarting.done()):
            self._restarting = asyncio.create_task(self._reopen(), name=f"wippy-feed-{self._stream}")

    async def _reopen(self) -> None:
        old, self._sub = self._sub, None
        if old is not None:
            _drop_quietly(old)
        delay = 0.1
        while not self._stopped and not self._store.client.is_closed:
            try:
                await self.open()
            except LogUnavailableError:  # JetStream still recovering its streams
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if self.stopped:  # stopped while subscribing
                _drop_quietly(self._sub)
            return

    @property
    def stopped(self) -> bool:
        return self._stopped

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._store._feeds.discard(self)
        if self._restarting is not None and not self._restarting.done():
            self._restarting.cancel()
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError):
                await self._sub.unsubscribe()


def _drop_quietly(sub: Any) -> None:
    """Stop delivering to ``sub`` now; tell the server in the background (it may not answer)."""
    async def drop() -> None:
        with contextlib.suppress(nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError):
            await sub.unsubscribe()
    task = asyncio.create_task(drop())
    _background.add(task)
    task.add_done_callback(_background.discard)


_background: set[asyncio.Task[None]] = set()


def _meta(msg: Msg) -> tuple[int, int]:
    """(stream sequence, pending) from a JetStream delivery's reply subject.

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`` (v1) or
    ``$JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[...]``
    (v2); read directly, as nats-py's ``metadata`` costs more than the rest of a delivery.
    """
    tokens = msg.reply.split(".")
    if len(tokens) == 9:
        return int(tokens[5]), int(tokens[8])
    if len(tokens) >= 11 and tokens[0] == "$JS":
        return int(tokens[7]), int(tokens[10])
    md = msg.metadata
    return md.sequence.stream, md.num_pending


class JetStreamEventStore:
    """EventStore on a NATS JetStream connection."""

    def __init__(self, nc: NatsClient, subjects: Subjects, settings: StoreSettings) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=settings.request_timeout.total_seconds())
        self.subjects = subjects
        self._settings = settings
        self._timeout = settings.request_timeout.total_seconds()
        self._feeds: set[_Feed] = set()

    @classmethod
    async def connect(
        cls, url: str, subjects: Subjects, settings: StoreSettings | None = None, *, name: str = "wippy"
    ) -> JetStreamEventStore:
        settings = settings or StoreSettings()
        made: list[JetStreamEventStore] = []

        async def reconnected() -> None:
            if made:
                made[0]._reconnected()

        try:
            nc = await nats.connect(
                url,
                name=name,
                connect_timeout=settings.connect_timeout.total_seconds(),
                max_reconnect_attempts=60,
                reconnect_time_wait=0.5,
                allow_reconnect=True,
                error_cb=_quiet,
                disconnected_cb=_quiet_noarg,
                reconnected_cb=reconnected,
            )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            raise LogUnavailableError(f"cannot connect to NATS at {url}: {exc or type(exc).__name__}") from exc
        # once connected, outlive a NATS server restart however long it takes (nats-py reads the
        # option at each reconnect; the first connect above still gives up)
        nc.options["max_reconnect_attempts"] = -1
        made.append(cls(nc, subjects, settings))
        return made[0]

    @property
    def client(self) -> NatsClient:
        """The underlying connection, for adapters that build on it (admin requests)."""
        return self._nc

    @property
    def max_payload(self) -> int:
        server = int(self._nc.max_payload)
        limit = self._settings.max_record_bytes
        return min(server, limit) if limit else server

    async def provision(self) -> None:
        """Create the deployment's streams, or bring their subjects up to date. Idempotent."""
        for spec in self.subjects.streams():
            await self._ensure_stream(spec)

    async def _ensure_stream(self, spec: StreamSpec) -> None:
        config = js_api.StreamConfig(
            name=spec.name,
            description=spec.description,
            subjects=list(spec.subjects),
            retention=js_api.RetentionPolicy.LIMITS,
            storage=js_api.StorageType.FILE,
            num_replicas=self._settings.replicas,
            duplicate_window=_DUPLICATE_WINDOW.total_seconds(),
            allow_direct=True,
            discard=js_api.DiscardPolicy.OLD,
        )
        try:
            try:
                info = await self._js.stream_info(spec.name)
            except nats.js.errors.NotFoundError:
                await self._js.add_stream(config)
                return
            if sorted(info.config.subjects or []) != sorted(spec.subjects):
                await self._js.update_stream(config)
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise LogError(f"cannot provision stream {spec.name}: {exc}") from exc

    async def append(
        self, subject: str, record: Record, *, expected_last_seq: int | None = None, msg_id: str | None = None
    ) -> int:
        """Append one record; returns its stream sequence.

        With ``msg_id`` the append is idempotent: a lost acknowledgement is retried, and a repeat
        of an append that already landed answers with the original sequence (also when the
        expected-last-sequence check fires first, which the server does before deduplicating).
        """
        headers: dict[str, str] = {}
        if expected_last_seq is not None:
            headers["Nats-Expected-Last-Sequence"] = str(expected_last_seq)
        if msg_id is not None:
            headers["Nats-Msg-Id"] = msg_id
        payload = record.encode()
        attempts = 3 if msg_id is not None else 1
        for attempt in range(attempts):
            try:
                return await self._publish(subject, payload, headers, record.type)
            except ConflictError as exc:
                if msg_id is not None and exc.actual is not None and await self._holds(subject, exc.actual, msg_id):
                    return exc.actual
                raise ConflictError(str(exc), expected=expected_last_seq, actual=exc.actual) from exc
            except LogUnavailableError:
                if attempt + 1 >= attempts:
                    raise
        raise AssertionError("unreachable")

    async def _publish(self, subject: str, payload: bytes, headers: dict[str, str], what: str) -> int:
        try:
            ack = await self._js.publish(subject, payload, timeout=self._timeout, headers=headers or None)
        except nats.errors.MaxPayloadError as exc:
            raise PayloadTooLargeError(
                f"record {what} is {len(payload)} bytes; the server accepts at most {self.max_payload}"
            ) from exc
        except nats.js.errors.APIError as exc:
            if exc.err_code == _WRONG_LAST_SEQUENCE:
                actual = _trailing_int(exc.description)
                raise ConflictError(
                    f"the log moved on: expected last sequence {headers.get('Nats-Expected-Last-Sequence')}, "
                    f"it is {actual}",
                    actual=actual,
                ) from exc
            if exc.code == 503 and exc.err_code in (None, _JETSTREAM_UNAVAILABLE):
                raise LogUnavailableError(f"append to {subject} failed: {exc.description or exc}") from exc
            raise LogError(f"append to {subject} failed: {exc.description or exc}") from exc
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise LogUnavailableError(f"append to {subject} failed: {exc or type(exc).__name__}") from exc
        return int(ack.seq)

    async def _holds(self, subject: str, seq: int, msg_id: str) -> bool:
        """Whether the record at ``seq`` is the append with ``msg_id`` (a retried append)."""
        stream = stream_for_subject(self.subjects, subject)
        try:
            msg = await self._js.get_msg(stream, seq)
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error):
            return False
        return bool(msg.headers and msg.headers.get("Nats-Msg-Id") == msg_id)

    async def last_seq(self, stream: str) -> int:
        try:
            info = await self._js.stream_info(stream)
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise LogUnavailableError(f"cannot read stream {stream}: {exc or type(exc).__name__}") from exc
        return int(info.state.last_seq)

    async def read(self, stream: str, start: int = 1, end: int | None = None) -> list[tuple[int, Record]]:
        """Records with start <= seq <= end (end defaults to the stream's last sequence)."""
        raw = await self.read_raw(stream, start, end)
        return [(seq, Record.decode(data)) for seq, data in raw]

    async def seq_at(self, stream: str, at_ns: int) -> int:
        """The first position whose record was written at or after ``at_ns`` (ns since the epoch);
        the stream's end + 1 if none was. A binary search: records are in time order per stream."""
        lo, hi = 1, await self.last_seq(stream) + 1
        while lo < hi:
            mid = (lo + hi) // 2
            rows = await self.read_raw(stream, mid, mid)
            at = Record.decode(rows[0][1]).at if rows else 0
            if at < at_ns:
                lo = mid + 1
            else:
                hi = mid
        return lo

    async def read_raw(self, stream: str, start: int = 1, end: int | None = None) -> list[tuple[int, bytes]]:
        last = await self.last_seq(stream)
        end = last if end is None else min(end, last)
        out: list[tuple[int, bytes]] = []
        if start > end:
            return out
        done = asyncio.get_running_loop().create_future()

        def collect(seq: int, data: bytes, pending: int) -> None:
            if seq <= end:
                out.append((seq, data))
            if (seq >= end or pending == 0) and not done.done():
                done.set_result(None)

        sub = await self.subscribe_raw(stream, start, collect)
        try:
            await done
        finally:
            await sub.stop()
        return out

    async def get_raw(self, stream: str, seqs: Sequence[int]) -> list[tuple[int, bytes]]:
        """The records at the given positions (fetched concurrently with direct gets), in the order
        asked; a position that holds nothing (deleted, beyond the end) is left out."""

        async def one(seq: int) -> tuple[int, bytes] | None:
            try:
                msg = await self._js.get_msg(stream, seq, direct=True)
            except nats.js.errors.NotFoundError:
                return None
            except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
                raise LogUnavailableError(f"cannot read {stream} at {seq}: {exc or type(exc).__name__}") from exc
            return seq, bytes(msg.data or b"")

        found = await asyncio.gather(*(one(seq) for seq in seqs))
        return [item for item in found if item is not None]

    async def subscribe(self, stream: str, from_seq: int, handler: RecordHandler) -> Subscription:
        """Deliver every record with seq >= from_seq, in order, then new ones as they arrive."""

        async def on_raw(seq: int, data: bytes, pending: int) -> None:
            result = handler(seq, Record.decode(data), pending)
            if result is not None:
                await result

        return await self.subscribe_raw(stream, from_seq, on_raw)

    async def subscribe_raw(self, stream: str, from_seq: int, handler: RawHandler, *,
                            subject: str | None = None) -> Subscription:
        """Like subscribe, undecoded: an ordered push consumer with a callback (the fast path).

        ``subject`` narrows it to one subject of the stream (a node's process deliveries). The
        subscription resumes after a NATS server restart where it left off."""
        feed = _Feed(self, stream, subject or stream_subject_wildcard(self.subjects, stream), from_seq, handler)
        await feed.open()
        self._feeds.add(feed)
        return feed

    def _reconnected(self) -> None:
        for feed in list(self._feeds):
            feed.reopen()

    async def open_acks(self, on_ack: AckHandler) -> AckChannel:
        """A channel for pipelined publishes whose acknowledgements ``on_ack`` gets (a Pipeline's)."""
        channel = _AckChannel(self._nc, on_ack)
        try:
            await channel.open()
        except (TimeoutError, nats.errors.Error) as exc:
            raise LogUnavailableError(f"cannot subscribe for acknowledgements: {exc or type(exc).__name__}") from exc
        return channel

    async def publish_pipelined(self, subject: str, data: bytes) -> asyncio.Future[Any]:
        """Publish without waiting for the acknowledgement (pipelined on this connection, in order).

        Returns the future of the acknowledgement; awaiting this call only waits when too many
        acknowledgements are outstanding (nats-py's publish_async limit). Pipeline re-sends what
        was not acknowledged."""
        try:
            return await self._js.publish_async(subject, data)
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise LogUnavailableError(f"publish to {subject} failed: {exc or type(exc).__name__}") from exc

    async def append_raw(self, subject: str, payload: bytes, *, msg_id: str | None = None) -> int:
        """Append encoded record bytes and wait for the acknowledgement (a Pipeline's re-send).

        LogUnavailableError when the server is away or still starting (worth another try), LogError
        when it refused the record."""
        return await self._publish(subject, payload, {"Nats-Msg-Id": msg_id} if msg_id else {}, subject)

    # -- request/reply (admin) -----------------------------------------------------------------
    async def serve(self, subject: str, handler: RequestHandler) -> Subscription:
        """Answer requests on ``subject`` (wildcards allowed). A reply larger than the server's
        max payload is sent as numbered parts (header ``Wippy-Part: i/n``)."""

        async def cb(msg: Msg) -> None:
            if not msg.reply:
                return
            body = await handler(msg.subject, msg.data)
            room = max(1024, self.max_payload - 1024)
            parts = [body[i : i + room] for i in range(0, len(body), room)] or [b""]
            for i, part in enumerate(parts):
                await self._nc.publish(msg.reply, part, headers={_PART: f"{i + 1}/{len(parts)}"})

        try:
            sub = await self._nc.subscribe(subject, cb=cb)
        except (TimeoutError, nats.errors.Error) as exc:
            raise LogUnavailableError(f"cannot serve {subject}: {exc or type(exc).__name__}") from exc
        return _NatsSubscription(sub)

    async def request(self, subject: str, payload: bytes, *, timeout: timedelta) -> bytes:
        """Send a request and reassemble its (possibly multi-part) reply."""
        inbox = self._nc.new_inbox()
        parts: dict[int, bytes] = {}
        done = asyncio.get_running_loop().create_future()

        async def cb(msg: Msg) -> None:
            index, total = _part(msg)
            parts[index] = msg.data
            if len(parts) >= total and not done.done():
                done.set_result(total)

        sub = await self._nc.subscribe(inbox, cb=cb)
        try:
            await self._nc.publish(subject, payload, reply=inbox)
            async with asyncio.timeout(timeout.total_seconds()):
                total = await done
        except TimeoutError as exc:
            raise LogUnavailableError(f"no answer on {subject} within {timeout.total_seconds():g}s") from exc
        except nats.errors.Error as exc:
            raise LogUnavailableError(f"request on {subject} failed: {exc}") from exc
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        return b"".join(parts[i] for i in range(1, total + 1))

    async def aclose(self) -> None:
        if self._nc.is_closed:
            return
        with contextlib.suppress(nats.errors.Error, asyncio.TimeoutError):
            await self._nc.drain()
        if not self._nc.is_closed:
            await self._nc.close()


def stream_for_subject(subjects: Subjects, subject: str) -> str:
    for spec in subjects.streams():
        if any(subject.startswith(pattern.removesuffix(">")) for pattern in spec.subjects):
            return spec.name
    raise LogError(f"no stream holds subject {subject}")


def stream_subject_wildcard(subjects: Subjects, stream: str) -> str:
    for spec in subjects.streams():
        if spec.name == stream:
            return spec.subjects[0]
    raise LogError(f"unknown stream {stream}")


def _part(msg: Msg) -> tuple[int, int]:
    raw = (msg.headers or {}).get(_PART, "1/1")
    index, _, total = raw.partition("/")
    return int(index), int(total)


def _trailing_int(text: str | None) -> int | None:
    if not text:
        return None
    tail = text.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else None


async def _quiet(_exc: Exception) -> None:
    """nats-py logs connection errors itself; the store reports them when they matter."""


async def _quiet_noarg() -> None:
    """See _quiet."""
