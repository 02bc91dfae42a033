"""Pipelined appends from synchronous callers, kept until JetStream acknowledges them.

A caller (``process.send``, a spawn) queues a record and goes on; one task publishes the queue in
order without waiting for each acknowledgement. Every record carries a ``Nats-Msg-Id`` unique to
this pipeline, and stays held until its acknowledgement arrives. A record whose acknowledgement
failed or never came (lost with the connection: ``ack_timeout``) is appended again, awaited,
with the same id, until the server takes it (it stores it once within its duplicate window, two
minutes) or refuses it for good (counted in ``failed`` and logged). ``flush()`` returns when every record
queued before it is acknowledged: that is when they are durable.

Ordering: records are published in the order queued. A record re-sent after a server restart can
land after records queued later that were still buffered on the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from typing import Any

from ._errors import LogError, LogUnavailableError, PayloadTooLargeError

log = logging.getLogger("wippy.core.pipeline")

#: (subject, data, msg id)
_Item = tuple[str, bytes, str]


class Pipeline:
    """Appends records in order, pipelined; re-sends what was not acknowledged. Use from one event loop."""

    def __init__(self, store: Any, name: str, *, ack_timeout: float = 5.0) -> None:
        self._store = store
        self._prefix = f"{name}.{secrets.token_hex(6)}."
        self._count = 0
        self._queue: deque[_Item] = deque()
        self._retry: deque[_Item] = deque()
        #: published, not yet settled, oldest first: (ack future, item, loop time published)
        self._inflight: deque[tuple[asyncio.Future[Any], _Item, float]] = deque()
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        self._settled.set()
        self._ack_timeout = ack_timeout
        self._task: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        #: records given up on (a permanent error from the server), and re-sends so far
        self.failed = 0
        self.resent = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"wippy-pipeline-{self._prefix}")
        self._watch = asyncio.create_task(self._watchdog(), name=f"wippy-pipeline-watch-{self._prefix}")

    def emit(self, subject: str, data: bytes) -> None:
        """Queue a record; PayloadTooLargeError (and nothing queued) if the server would refuse its size."""
        if len(data) > self._store.max_payload:
            raise PayloadTooLargeError(f"a record for {subject} is {len(data)} bytes; the log takes at most "
                                       f"{self._store.max_payload}")
        self._count += 1
        self._queue.append((subject, data, self._prefix + str(self._count)))
        self._settled.clear()
        self._wake.set()

    @property
    def pending(self) -> int:
        """Records queued or published and not yet acknowledged."""
        return len(self._queue) + len(self._retry) + len(self._inflight)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._retry or self._queue:
                if self._retry:
                    await self._resend(self._retry[0])
                    self._retry.popleft()
                    continue
                item = self._queue[0]
                try:
                    ack = await self._store.publish_pipelined(item[0], item[1], msg_id=item[2])
                except LogUnavailableError as exc:
                    log.warning("record not published yet (%s); retrying", exc)
                    await asyncio.sleep(0.2)
                    continue
                self._queue.popleft()
                self._inflight.append((ack, item, loop.time()))
                ack.add_done_callback(self._acked)
            self._check_settled()

    async def _resend(self, item: _Item) -> None:
        """Append one record again, awaited, until the server takes it or refuses it for good."""
        delay = 0.05
        while True:
            try:
                await self._store.append_raw(item[0], item[1], msg_id=item[2])
                return
            except LogUnavailableError as exc:
                log.warning("re-sending a record: the log is not available yet (%s)", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except LogError as exc:
                self.failed += 1
                log.error("a record for %s was refused by the server: %s", item[0], exc)
                return

    def _acked(self, _fut: asyncio.Future[Any]) -> None:
        inflight = self._inflight
        while inflight and inflight[0][0].done():  # settle in publishing order
            fut, item, _ = inflight.popleft()
            if fut.cancelled() or fut.exception() is not None:
                # lost with the connection, or refused: the awaited re-send tells which (and
                # nats-py cannot always report an error answer to a pipelined publish)
                self.resent += 1
                self._retry.append(item)
                self._wake.set()
        self._check_settled()

    def _check_settled(self) -> None:
        if not (self._queue or self._retry or self._inflight):
            self._settled.set()

    async def _watchdog(self) -> None:
        """Give up waiting on acknowledgements lost with the connection: cancel them, so they are re-sent."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self._ack_timeout / 2))
            deadline = loop.time() - self._ack_timeout
            stale = [fut for fut, _, at in self._inflight if at < deadline and not fut.done()]
            for fut in stale:
                fut.cancel()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record queued so far is acknowledged; False if ``timeout`` passed first."""
        if self._task is None:
            return not self.pending
        try:
            await asyncio.wait_for(self._settled.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def aclose(self, timeout: float = 10.0) -> None:
        """Write what is queued (waiting at most ``timeout``), then stop."""
        if self._task is None:
            return
        done = await self.flush(timeout)
        if not done:
            log.error("%d records were not acknowledged before the pipeline closed", self.pending)
        for task in (self._task, self._watch):
            if task is not None:
                task.cancel()
        for task in (self._task, self._watch):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
