"""Pipelined appends from synchronous callers, kept until JetStream acknowledges them.

A caller (``process.send``, a spawn) queues a record and goes on; one task publishes the queue in
order without waiting for each acknowledgement (on the store's ack channel: the reply subject
carries a token), and holds every record until its acknowledgement arrives. ``flush()`` returns
when every record queued before it is acknowledged: that is when they are durable.

A record whose acknowledgement failed, or never came (lost with the connection; given up after
``ack_timeout``), may or may not be in the stream. Once the server answers again the pipeline
reads the stream from the last record it saw acknowledged before the first such record, and
appends again, awaited and in order, only those whose exact bytes are not there. No message id
header is needed, so readers pay nothing for this in the normal case (nats-py parses a header on
every delivery, which halves a consumer's throughput). A record's bytes identify it: every record
carries its writer's node and a nanosecond timestamp. A record the server refuses for good (a
limit of the stream) is logged and counted in ``failed``.

Ordering: records are published in the order queued. A record re-sent after a server restart can
land after records queued later that were still buffered on the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from ._errors import LogError, LogUnavailableError, PayloadTooLargeError

log = logging.getLogger("wippy.core.pipeline")

#: (subject, data)
_Item = tuple[str, bytes]


class Pipeline:
    """Appends records to one stream in order, pipelined; re-sends what was not acknowledged.

    Use from one event loop. At most ``window`` records are awaiting their acknowledgement."""

    def __init__(self, store: Any, stream: str, *, ack_timeout: float = 5.0, window: int = 8192) -> None:
        self._store = store
        self._stream = stream
        self._queue: deque[_Item] = deque()
        #: not acknowledged, with the stream position to look for them after
        self._retry: deque[tuple[_Item, int]] = deque()
        #: published, not yet settled, by token: [item, loop time published, state]; state is 0
        #: while waiting, the stream sequence once acknowledged, -1 when refused or lost
        self._inflight: dict[int, list[Any]] = {}
        self._order: deque[int] = deque()  # their tokens, oldest first
        self._token = 0
        self._window = window
        self._room = asyncio.Event()
        self._room.set()
        #: the sequence of the newest record acknowledged in publishing order
        self._acked_seq = 0
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        self._settled.set()
        self._ack_timeout = ack_timeout
        self._acks: Any = None
        self._task: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        #: records refused for good, records appended again, records found stored after all
        self.failed = 0
        self.resent = 0
        self.found = 0

    async def start(self, after_seq: int) -> None:
        """Start publishing; ``after_seq``: the stream's last sequence now (where a recovery looks from)."""
        self._acked_seq = after_seq
        self._acks = await self._store.open_acks(self._on_ack)
        self._task = asyncio.create_task(self._run(), name=f"wippy-pipeline-{self._stream}")
        self._watch = asyncio.create_task(self._watchdog(), name=f"wippy-pipeline-watch-{self._stream}")

    def emit(self, subject: str, data: bytes) -> None:
        """Queue a record; PayloadTooLargeError (and nothing queued) if the server would refuse its size."""
        if len(data) > self._store.max_payload:
            raise PayloadTooLargeError(f"a record for {subject} is {len(data)} bytes; the log takes at most "
                                       f"{self._store.max_payload}")
        self._queue.append((subject, data))
        self._settled.clear()
        self._wake.set()

    @property
    def queued(self) -> int:
        """Records not yet handed to the connection."""
        return len(self._queue) + len(self._retry)

    @property
    def pending(self) -> int:
        """Records queued or published and not yet acknowledged."""
        return len(self._queue) + len(self._retry) + len(self._inflight)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        inflight, order, queue = self._inflight, self._order, self._queue
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._retry or queue:
                if self._retry:
                    await self._recover()
                    continue
                if len(order) >= self._window:
                    self._room.clear()
                    await self._room.wait()
                    continue
                subject, data = item = queue[0]
                self._token += 1
                token = self._token
                inflight[token] = [item, loop.time(), 0]
                order.append(token)
                try:
                    await self._acks.publish(subject, data, token)
                except LogUnavailableError as exc:
                    if inflight.pop(token, None) is not None and order and order[-1] == token:
                        order.pop()
                    log.warning("record not published yet (%s); retrying", exc)
                    await asyncio.sleep(0.2)
                    continue
                queue.popleft()
            self._check_settled()

    def _on_ack(self, token: int, seq: int | None) -> None:
        entry = self._inflight.get(token)
        if entry is None or entry[2]:
            return
        # None: refused, or nobody answered; the recovery finds out which
        entry[2] = seq or -1
        if self._order[0] == token:
            self._settle()

    def _settle(self) -> None:
        """Take settled records off the front, in publishing order."""
        order, inflight = self._order, self._inflight
        while order:
            entry = inflight[order[0]]
            state = entry[2]
            if not state:
                break
            del inflight[order.popleft()]
            if state > 0:
                self._acked_seq = max(self._acked_seq, state)
                continue
            self._retry.append((entry[0], self._acked_seq))
            self._wake.set()
        if len(order) < self._window:
            self._room.set()
        self._check_settled()

    async def _recover(self) -> None:
        """Append again, in order, the unacknowledged records the stream does not hold."""
        batch = list(self._retry)
        after = min(seq for _, seq in batch)
        log.warning("%d records were not acknowledged; checking the log after sequence %d", len(batch), after)
        stored = await self._until_available(lambda: self._store.read_raw(self._stream, after + 1))
        present: dict[bytes, int] = {}
        for _, data in stored:
            present[data] = present.get(data, 0) + 1
        for index, ((subject, data), _) in enumerate(batch):
            if present.get(data):
                present[data] -= 1
                self.found += 1
                continue
            try:
                await self._store.append_raw(subject, data)
                self.resent += 1
            except LogUnavailableError as exc:
                # this one's answer may be lost again: look again, from the same position
                log.warning("re-sending records: the log is not available (%s)", exc)
                for _ in range(index):
                    self._retry.popleft()
                await asyncio.sleep(0.5)
                return
            except LogError as exc:
                self.failed += 1
                log.error("a record for %s was refused by the server: %s", subject, exc)
        for _ in batch:
            self._retry.popleft()

    async def _until_available(self, call: Any) -> Any:
        delay = 0.05
        while True:
            try:
                return await call()
            except LogUnavailableError as exc:
                log.warning("the log is not available yet (%s)", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _check_settled(self) -> None:
        if not (self._queue or self._retry or self._inflight):
            self._settled.set()

    async def _watchdog(self) -> None:
        """Give up waiting on acknowledgements lost with the connection, so they are recovered."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(1.0, self._ack_timeout / 2))
            deadline = loop.time() - self._ack_timeout
            lost = False
            for token in self._order:
                entry = self._inflight[token]
                if entry[1] >= deadline:
                    break
                if not entry[2]:
                    entry[2] = -1
                    lost = True
            if lost:
                self._settle()

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
        if self._acks is not None:
            await self._acks.close()
