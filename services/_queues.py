"""Queues of a node: publishing (the `queue` module) and queue.consumer entries.

A consumer fetches up to ``prefetch`` deliveries ahead and runs ``concurrency`` workers; each
delivery calls the consumer's ``func`` (a function call on the consumer's own Lua host, as an
HTTP handler is called) with the decoded body. The handler settles it: a return other than
``false`` acks, ``false``, ``nil, err`` or an error nacks; ``queue.message():ack()/nack()`` settle
early (single-shot). ``auto_ack: true`` acks on receipt (at most once). A nacked message is
delivered again after a back-off (0.1s doubling, at most 30s); with ``dead_letter`` set, once
delivered ``max_attempts`` times it goes to the dead-letter queue instead, with the headers
``x_original_queue``, ``x_dead_letter_reason``, ``x_dead_letter_time`` and ``attempts``.

Consumers whose entry is auto_start start with the node and follow registry versions: a changed
consumer or queue restarts, a removed one stops (running handlers finish first; deliveries
fetched but not started go back to the queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

import orjson

from wippy.core import (
    ConsumerSpec,
    DefinitionError,
    Entry,
    JetStreamQueues,
    NotFoundError,
    NotImplementedFeatureError,
    QueueSpec,
    WippyError,
    consumer_spec,
    parse_go_duration,
    queue_spec,
)

from ._follow import RegistryFollower
from ._queue_drivers import JetStreamSource, MemoryQueue, MemorySource, Message
from ._supervisor import lifecycle_of, security_option

log = logging.getLogger("wippy.queue")

QUEUE_KINDS = frozenset({"queue.queue", "queue.consumer", "queue.driver.memory", "queue.driver.jetstream",
                         "queue.driver.amqp", "queue.driver.sqs"})
_MAX_BACKOFF = 30.0


def encode(codec: str, value: Any) -> bytes:
    if codec == "application/msgpack":
        import msgpack

        return bytes(msgpack.packb(value, use_bin_type=True))
    return orjson.dumps(value)


def decode(codec: str, body: bytes) -> Any:
    if codec == "application/msgpack":
        import msgpack

        return msgpack.unpackb(body, raw=False)
    return orjson.loads(body)


class Delivery:
    """A message a handler is processing: what `queue.message()` returns, settled once."""

    def __init__(self, consumer: Consumer, msg: Message) -> None:
        self.consumer = consumer
        self.msg = msg
        self.settled = False
        self.released = False

    def claim(self) -> bool:
        """Take the right to settle (once): False if it was taken before."""
        if self.settled:
            return False
        self.settled = True
        return True

    async def settle(self, ok: bool, reason: str = "handler failed", *, claimed: bool = False) -> None:
        if claimed or self.claim():
            await self.consumer.settle(self.msg, ok, reason)


class Consumer:
    """One running queue.consumer entry."""

    def __init__(self, hub: QueueHub, entry: Entry, spec: ConsumerSpec, queue: QueueSpec, source: Any, *,
                 ack_wait: float = 30.0) -> None:
        self.hub = hub
        self.entry = entry
        self.spec = spec
        self.queue = queue
        self.source = source
        self.security = security_option(lifecycle_of(entry).security, hub.registry)
        self.touch_every = max(ack_wait / 2, 0.5)
        self._buffer: asyncio.Queue[Message] = asyncio.Queue()
        self._free = spec.prefetch  # deliveries that may be fetched now
        self._freed = asyncio.Event()
        self._stopping = False
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        #: the queue and driver entries this consumer was opened with (a change restarts it)
        self.sources = (hub.registry.get(queue.id), hub.registry.get(queue.driver))
        self._tasks: list[asyncio.Task[None]] = []
        self.processed = 0
        self.failed = 0

    def start(self) -> None:
        name = f"wippy-queue:{self.spec.id}"
        self._tasks = [asyncio.create_task(self._fetch(), name=name)]
        self._tasks += [asyncio.create_task(self._work(), name=name) for _ in range(self.spec.concurrency)]

    async def _fetch(self) -> None:
        """Keep up to ``prefetch`` deliveries fetched; fetch in batches of at least half of it
        while the workers still have work buffered (one fetch per message would cost a round
        trip each)."""
        low = max(1, self.spec.prefetch // 2)
        while not self._stopping:
            while self._free == 0 or (self._free < low and not self._buffer.empty()):
                self._freed.clear()
                await self._freed.wait()
            want, self._free = self._free, 0
            try:
                got = await self.source.fetch(want, 1.0)
            except Exception:  # a lost connection: nats-py reconnects; fetch again after a pause
                log.exception("queue consumer %s: fetching failed; retrying", self.spec.id)
                got = []
                await asyncio.sleep(1.0)
            self._free += want - len(got)
            for msg in got:
                self._buffer.put_nowait(msg)

    async def _work(self) -> None:
        while True:
            msg = await self._buffer.get()
            self._busy += 1
            self._idle.clear()
            try:
                await self._handle(msg)
            except Exception:
                log.exception("queue consumer %s: settling message %s failed", self.spec.id, msg.id)
            finally:
                self._busy -= 1
                if not self._busy:
                    self._idle.set()
                self._free += 1
                self._freed.set()

    async def _handle(self, msg: Message) -> None:
        spec = self.spec
        d = Delivery(self, msg)
        if spec.auto_ack:
            await d.settle(True)
        try:
            body = decode(self.queue.codec, msg.body)
        except Exception as exc:
            log.error("queue message cannot be decoded", extra={"fields": {
                "consumer": spec.id, "queue": self.queue.id, "message": msg.id, "error": str(exc)}})
            await d.settle(False, f"undecodable body: {exc}")
            return
        keep = asyncio.create_task(self._keep(d), name=f"wippy-queue-touch:{msg.id}")
        try:
            processes = self.hub.processes
            data = processes.host(spec.id, calls=True).vm.rt.table_from({"queue_delivery": d})
            ok, results, _pid = await processes.call(spec.func, spec.id, [body], security=self.security, data=data)
        except WippyError as exc:
            ok, results = False, (str(exc),)
        finally:
            keep.cancel()
            d.released = True
        failure: Any = None
        if not ok:
            failure = results[0] if results else "the handler stopped"
        elif len(results) >= 2 and results[1] is not None:
            failure = results[1]
        elif results and results[0] is False:
            failure = "the handler returned false"
        if failure is not None:
            self.failed += 1
            text = failure if isinstance(failure, str) else self.hub.processes.host(spec.id, calls=True).process.text(
                failure)
            log.warning("queue handler failed", extra={"fields": {
                "consumer": spec.id, "func": spec.func, "message": msg.id, "attempt": msg.attempts, "error": text}})
            await d.settle(False, text)
        else:
            self.processed += 1
            await d.settle(True)

    async def _keep(self, d: Delivery) -> None:
        """Tell the driver the message is still being worked on, so it is not delivered again."""
        while True:
            await asyncio.sleep(self.touch_every)
            if not d.settled:
                with contextlib.suppress(Exception):
                    await self.source.touch(d.msg)

    async def settle(self, msg: Message, ok: bool, reason: str) -> None:
        if ok:
            await self.source.ack(msg)
            return
        q = self.queue
        if q.max_attempts and msg.attempts >= q.max_attempts:
            if q.dead_letter:
                headers = {**msg.headers, "x_original_queue": q.id, "x_dead_letter_reason": reason,
                           "x_dead_letter_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "attempts": msg.attempts}
                await self.hub.publish_raw(q.dead_letter, msg.body, headers, codec=q.codec)
            else:
                log.error("queue message dropped after its last attempt", extra={"fields": {
                    "queue": q.id, "message": msg.id, "attempts": msg.attempts, "error": reason}})
            await self.source.drop(msg)
            return
        await self.source.nack(msg, min(0.1 * 2 ** (msg.attempts - 1), _MAX_BACKOFF))

    async def stop(self) -> None:
        """Stop fetching; let running handlers finish; return fetched, unstarted deliveries."""
        self._stopping = True
        fetcher, workers = self._tasks[0], self._tasks[1:]
        fetcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await fetcher
        while not self._buffer.empty():
            msg = self._buffer.get_nowait()
            with contextlib.suppress(Exception):
                await self.source.give_back(msg)
        # workers idle on an empty buffer are cancelled; busy ones finish their message first
        deadline = lifecycle_of(self.entry).stop_timeout
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(deadline):
                await self._idle.wait()
        for t in workers:
            t.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await self.source.close()


class QueueHub:
    """The node's queues: memory buffers, the JetStream queues, and the running consumers."""

    def __init__(self, registry: Any, processes: Any, *, nats: Any = None, namespace: str = "wippy") -> None:
        self.registry = registry
        self.processes = processes
        self._jetstream = JetStreamQueues(nats, namespace) if nats is not None else None
        self._memory: dict[tuple[str, str], MemoryQueue] = {}
        self.consumers: dict[str, Consumer] = {}
        self._follower = RegistryFollower(registry, QUEUE_KINDS, self.reconcile, "queue consumers")
        self._lock = asyncio.Lock()
        self._closed = False

    # -- queues ---------------------------------------------------------------------------------
    def spec(self, queue_id: str) -> tuple[QueueSpec, str]:
        """The queue's spec and its driver's kind (NOT_FOUND / INVALID / UNAVAILABLE otherwise)."""
        entry = self.registry.get(queue_id)
        if entry is None:
            raise NotFoundError(f"queue {queue_id} does not exist")
        if entry.kind != "queue.queue":
            raise DefinitionError(f"{queue_id} is a {entry.kind}, not a queue.queue")
        driver = self.registry.get(entry.data.get("driver"))
        if driver is None:
            raise NotFoundError(f"queue {queue_id}: its driver {entry.data.get('driver')} does not exist")
        if driver.kind not in ("queue.driver.memory", "queue.driver.jetstream"):
            raise NotImplementedFeatureError(f"queue {queue_id}: driver kind {driver.kind} is not implemented in "
                                             f"this runtime (use queue.driver.memory or queue.driver.jetstream)")
        spec, errors = queue_spec(entry, driver.kind)
        if spec is None:
            raise errors[0]
        return spec, driver.kind

    def _memory_queue(self, spec: QueueSpec) -> MemoryQueue:
        key = (spec.driver, spec.name)
        found = self._memory.get(key)
        if found is None:
            found = self._memory[key] = MemoryQueue(int(spec.options.get("max_length") or 1000))
        return found

    def _js(self, queue_id: str) -> JetStreamQueues:
        if self._jetstream is None:
            raise NotImplementedFeatureError(f"queue {queue_id}: queue.driver.jetstream needs a node connected to NATS")
        return self._jetstream

    async def publish(self, queue_id: str, value: Any, headers: dict[str, Any] | None = None) -> str:
        """Put a message on the queue; its id. Waits for room on a full memory queue."""
        spec, _ = self.spec(queue_id)
        try:
            body = encode(spec.codec, value)
        except (TypeError, ValueError) as exc:
            raise DefinitionError(f"queue {queue_id}: the message cannot be encoded as {spec.codec}: {exc}") from exc
        return await self.publish_raw(queue_id, body, headers or {}, codec=spec.codec)

    async def publish_raw(self, queue_id: str, body: bytes, headers: dict[str, Any], *, codec: str) -> str:
        spec, kind = self.spec(queue_id)
        msg_id = uuid.uuid4().hex
        if kind == "queue.driver.jetstream":
            await self._js(queue_id).publish(spec.name, msg_id, body, headers)
        else:
            await self._memory_queue(spec).put(Message(msg_id, body, dict(headers)))
        return msg_id

    async def info(self, queue_id: str) -> dict[str, Any]:
        spec, kind = self.spec(queue_id)
        consumers = sum(1 for c in self.consumers.values() if c.queue.id == queue_id)
        if kind == "queue.driver.jetstream":
            count = await self._js(queue_id).count(spec.name)
        else:
            q = self._memory_queue(spec)
            count = len(q.items) + q.in_flight
        return {"queue": queue_id, "driver": kind, "message_count": count, "consumer_count": consumers,
                "ready": True}

    # -- consumers ------------------------------------------------------------------------------
    async def start(self) -> list[str]:
        """Start the auto_start consumers; follow registry versions from now on."""
        self._follower.start()
        await self.reconcile()
        return sorted(self.consumers)

    async def settled(self) -> None:
        """Return once every registry version seen so far is applied to the consumers."""
        await self._follower.settled()

    async def reconcile(self) -> None:
        async with self._lock:
            wanted = {e.id: e for e in self.registry.current().values()
                      if e.kind == "queue.consumer" and lifecycle_of(e).auto_start}
            for cid, running in list(self.consumers.items()):
                entry = wanted.get(cid)
                now = (self.registry.get(running.queue.id), self.registry.get(running.queue.driver))
                if entry is running.entry and now[0] is running.sources[0] and now[1] is running.sources[1]:
                    continue
                del self.consumers[cid]
                await running.stop()
                if entry is None:  # removed (or no longer auto_start): its Lua host goes too
                    await self.processes.drop_host(cid)
            for cid, entry in sorted(wanted.items()):
                if cid in self.consumers or self._closed:
                    continue
                try:
                    self.consumers[cid] = await self._open(entry)
                except WippyError as exc:
                    log.error("queue consumer cannot start", extra={"fields": {"consumer": cid, "error": str(exc)}})

    async def _open(self, entry: Entry) -> Consumer:
        spec, errors = consumer_spec(entry)
        if spec is None:
            raise errors[0]
        queue, kind = self.spec(spec.queue)
        ack_wait = 30.0
        if kind == "queue.driver.jetstream":
            ack_wait = parse_go_duration(str(queue.options.get("ack_wait", "30s"))) / 1e9
            pending = int(queue.options.get("max_ack_pending") or max(1000, spec.prefetch * 4))
            source: Any = JetStreamSource(await self._js(queue.id).consumer(queue.name, ack_wait=ack_wait,
                                                                             max_ack_pending=pending))
        else:
            source = MemorySource(self._memory_queue(queue))
        consumer = Consumer(self, entry, spec, queue, source, ack_wait=ack_wait)
        consumer.start()
        log.info("queue consumer started", extra={"fields": {"consumer": spec.id, "queue": queue.id,
                                                             "concurrency": spec.concurrency}})
        return consumer

    async def aclose(self) -> None:
        """Stop every consumer (running handlers finish). Idempotent."""
        self._closed = True
        await self._follower.aclose()
        consumers, self.consumers = self.consumers, {}
        await asyncio.gather(*(c.stop() for c in consumers.values()), return_exceptions=True)
