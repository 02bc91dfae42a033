"""The JetStream work-queue adapter: the durable queues of `queue.driver.jetstream`.

One stream per deployment, ``<NS>_QUEUES`` (work-queue retention: a message is removed once
acknowledged), subject ``<ns>.queue.<queue_name>`` per queue, and one durable pull consumer per
queue that every consumer entry on every node shares (competing consumers). A message a
consumer holds and does not settle within ``ack_wait`` (a crashed node) is delivered again, so
delivery is at least once; nothing acknowledged by the server at publish is lost (subject to
the server's fsync setting, see PITFALLS).

User headers travel as one JSON header (``Wippy-Headers``) so their types survive; the message
id is ``Nats-Msg-Id``, which also de-duplicates a publish retried within the stream's window.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig
from nats.js.errors import NotFoundError as JsNotFoundError

from ._errors import LogError

HEADERS = "Wippy-Headers"
MSG_ID = "Nats-Msg-Id"


@dataclass(frozen=True, slots=True)
class QueueMessage:
    """One delivery of a message: body, id, user headers, and how often it was delivered."""

    id: str
    body: bytes
    headers: dict[str, Any]
    attempts: int
    raw: Msg


class JetStreamQueues:
    """The deployment's queue stream; ``consumer`` opens a queue's shared durable consumer."""

    def __init__(self, nc: NatsClient, namespace: str) -> None:
        self._js = nc.jetstream()
        self.stream = f"{namespace.upper()}_QUEUES"
        self._prefix = f"{namespace}.queue."
        self._ready = False
        self._lock = asyncio.Lock()

    def subject(self, queue_name: str) -> str:
        return self._prefix + queue_name.replace(".", "_")

    async def provision(self) -> None:
        async with self._lock:
            if self._ready:
                return
            config = StreamConfig(name=self.stream, subjects=[self._prefix + ">"],
                                  retention=RetentionPolicy.WORK_QUEUE, duplicate_window=120.0,
                                  description="queues of queue.driver.jetstream (work-queue retention)")
            try:
                await self._js.stream_info(self.stream)
            except JsNotFoundError:
                await self._js.add_stream(config)
            self._ready = True

    async def publish(self, queue_name: str, msg_id: str, body: bytes, headers: dict[str, Any]) -> int:
        await self.provision()
        hdrs = {MSG_ID: msg_id}
        if headers:
            hdrs[HEADERS] = orjson.dumps(headers).decode()
        ack = await self._js.publish(self.subject(queue_name), body, headers=hdrs)
        return int(ack.seq)

    async def count(self, queue_name: str) -> int:
        """Messages waiting in (or held from) the queue."""
        await self.provision()
        info = await self._js.stream_info(self.stream, subjects_filter=self.subject(queue_name))
        return int((info.state.subjects or {}).get(self.subject(queue_name), 0))

    async def consumer(self, queue_name: str, *, ack_wait: float, max_ack_pending: int) -> QueueConsumer:
        await self.provision()
        durable = "q_" + queue_name.replace(".", "_")
        config = ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT, ack_wait=ack_wait,
                                max_ack_pending=max_ack_pending, filter_subject=self.subject(queue_name))
        sub = await self._js.pull_subscribe(self.subject(queue_name), durable=durable, stream=self.stream,
                                            config=config)
        return QueueConsumer(sub)


class QueueConsumer:
    """A pull subscription on a queue's durable consumer."""

    def __init__(self, sub: Any) -> None:
        self._sub = sub

    async def fetch(self, batch: int, timeout: float) -> list[QueueMessage]:
        """Up to ``batch`` deliveries; [] when none arrived within ``timeout`` seconds."""
        try:
            msgs = await self._sub.fetch(batch, timeout=timeout)
        except TimeoutError:
            return []
        out = []
        for m in msgs:
            hdrs = m.headers or {}
            user = orjson.loads(hdrs[HEADERS]) if HEADERS in hdrs else {}
            out.append(QueueMessage(id=hdrs.get(MSG_ID, ""), body=m.data, headers=user,
                                    attempts=int(m.metadata.num_delivered or 1), raw=m))
        return out

    @staticmethod
    async def ack(msg: QueueMessage) -> None:
        try:  # not waiting for the server's reply: a lost ack means one redelivery (at least once)
            await msg.raw.ack()
        except Exception as exc:
            raise LogError(f"acknowledging message {msg.id} failed: {exc}") from exc

    @staticmethod
    async def nack(msg: QueueMessage, delay: float) -> None:
        await msg.raw.nak(delay=delay)

    @staticmethod
    async def term(msg: QueueMessage) -> None:
        await msg.raw.term()

    @staticmethod
    async def in_progress(msg: QueueMessage) -> None:
        await msg.raw.in_progress()

    async def close(self) -> None:
        await self._sub.unsubscribe()
