"""Queue drivers: where a queue's messages wait, and how deliveries are settled.

Both drivers hand out ``Message`` deliveries through a *source* with one shape::

    await source.fetch(n, timeout) -> [Message]     up to n deliveries, [] after timeout seconds
    await source.ack(m) / nack(m, delay) / drop(m)  settle (drop: remove without success)
    await source.touch(m)                           "still working" (resets the redelivery timer)
    await source.give_back(m)                       an unstarted delivery returns to the queue
    await source.close()

- ``queue.driver.memory``: a bounded in-process buffer per queue (``driver_options.memory.
  max_length``, default 1000; a publish waits for room). Lost when the node stops: for tests
  and single-node apps, as Wippy's own memory driver.
- ``queue.driver.jetstream`` (ours): the deployment's JetStream work queue (core's
  JetStreamQueues). Durable, shared by every node; a delivery not settled within
  ``driver_options.jetstream.ack_wait`` (default 30s) is delivered again, so a crashed node's
  messages go to the others. Running handlers keep their messages by touching them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from dataclasses import dataclass, field
from typing import Any

from wippy.core import QueueMessage


@dataclass(slots=True)
class Message:
    """One delivery: the body as published, its id, user headers and delivery count."""

    id: str
    body: bytes
    headers: dict[str, Any]
    attempts: int = 1
    native: Any = None  # the driver's own handle (a JetStream message)
    extra: dict[str, Any] = field(default_factory=dict)


class MemoryQueue:
    """A bounded FIFO of messages; waiting readers and writers are woken by events."""

    def __init__(self, max_length: int) -> None:
        self.items: collections.deque[Message] = collections.deque()
        self.max_length = max_length
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self.in_flight = 0

    async def put(self, msg: Message) -> None:
        while len(self.items) >= self.max_length:
            self._writable.clear()
            await self._writable.wait()
        self.items.append(msg)
        self._readable.set()

    def put_back(self, msg: Message, *, front: bool) -> None:
        """A message returns (redelivery, or unstarted); room is not checked: it was counted before."""
        if front:
            self.items.appendleft(msg)
        else:
            self.items.append(msg)
        self._readable.set()

    def take_now(self, n: int) -> list[Message]:
        out: list[Message] = []
        while self.items and len(out) < n:
            out.append(self.items.popleft())
        if out:
            self._writable.set()
        return out

    async def wait_readable(self, timeout: float) -> None:
        if self.items:
            return
        self._readable.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._readable.wait(), timeout)


class MemorySource:
    def __init__(self, queue: MemoryQueue) -> None:
        self.queue = queue
        self._redeliveries: dict[asyncio.TimerHandle, Message] = {}

    async def fetch(self, n: int, timeout: float) -> list[Message]:
        await self.queue.wait_readable(timeout)
        got = self.queue.take_now(n)
        self.queue.in_flight += len(got)
        return got

    async def ack(self, msg: Message) -> None:
        self.queue.in_flight -= 1

    async def drop(self, msg: Message) -> None:
        self.queue.in_flight -= 1

    async def nack(self, msg: Message, delay: float) -> None:
        self.queue.in_flight -= 1
        msg.attempts += 1
        if delay <= 0:
            self.queue.put_back(msg, front=False)
            return
        loop = asyncio.get_running_loop()

        def again() -> None:
            self._redeliveries.pop(timer, None)
            self.queue.put_back(msg, front=False)

        timer = loop.call_later(delay, again)
        self._redeliveries[timer] = msg

    async def touch(self, msg: Message) -> None:
        return None

    async def give_back(self, msg: Message) -> None:
        self.queue.in_flight -= 1
        self.queue.put_back(msg, front=True)

    async def close(self) -> None:
        for timer, msg in self._redeliveries.items():  # messages waiting to be redelivered go back now
            timer.cancel()
            self.queue.put_back(msg, front=False)
        self._redeliveries.clear()


class JetStreamSource:
    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer

    async def fetch(self, n: int, timeout: float) -> list[Message]:
        got: list[QueueMessage] = await self.consumer.fetch(n, timeout)
        return [Message(m.id, m.body, m.headers, m.attempts, native=m) for m in got]

    async def ack(self, msg: Message) -> None:
        await self.consumer.ack(msg.native)

    async def drop(self, msg: Message) -> None:
        await self.consumer.ack(msg.native)  # work-queue retention: an ack removes it

    async def nack(self, msg: Message, delay: float) -> None:
        await self.consumer.nack(msg.native, delay)

    async def touch(self, msg: Message) -> None:
        await self.consumer.in_progress(msg.native)

    async def give_back(self, msg: Message) -> None:
        await self.consumer.nack(msg.native, 0)

    async def close(self) -> None:
        await self.consumer.close()

