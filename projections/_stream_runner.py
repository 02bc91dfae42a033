"""The runner of an append-style projection: follow one stream from a checkpoint into DuckDB.

Records arrive through an ordered push consumer and wait, encoded, for the writer thread, which
turns them into the projection's batch (its own type: it checks each record and makes rows) and
writes the batch and the checkpoint in one transaction, at most ``flush_interval`` after a record arrived or as soon as
``batch_size`` records wait. A restart resumes after the checkpoint, so nothing is written twice
or skipped; a record delivered again (at or below the newest position seen) is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, Protocol, TypeVar

import orjson

from wippy.core import EventStore, Record, RecordError, Subscription

from ._duckdb import ProjectionDB
from ._registry_runner import ProjectionSettings, _release


class Batch(Protocol):
    def __len__(self) -> int: ...
    def add_raw(self, seq: int, data: bytes) -> None:
        """Check an encoded record and add its rows; RecordError (and nothing added) when it cannot."""


B = TypeVar("B", bound=Batch)


class StreamProjection(Generic[B]):
    """One stream into DuckDB: ``flush()`` writes what has arrived, ``catch_up()`` waits for
    everything the stream holds now."""

    def __init__(self, store: EventStore, db: ProjectionDB, settings: ProjectionSettings | None, *, name: str,
                 stream: str, new_batch: Callable[[], B], write: Callable[[ProjectionDB, B, int], None]) -> None:
        self.store = store
        self.db = db
        self.settings = settings or ProjectionSettings()
        self.name = name
        self.stream = stream
        self._new_batch = new_batch
        self._write = write
        self.db_seq = 0
        self._seq = 0  # newest position handled (written to the batch or skipped)
        #: records received and not yet written: decoded in the writer thread, off the event loop
        self._raw: list[tuple[int, bytes]] = []
        #: records being written by the writer thread (in neither ``_raw`` nor the database yet)
        self._inflight: list[tuple[int, bytes]] = []
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._db_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._flush_now = asyncio.Event()
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"wippy-{name}")
        self._closed = False
        self.log = logging.getLogger(f"wippy.projections.{name}")

    async def start(self) -> None:
        """Read the checkpoint and follow the stream from the next position (returns at once)."""
        seq, _ = await asyncio.get_running_loop().run_in_executor(self._executor, self.db.checkpoint, self.name)
        self._seq = self.db_seq = seq
        self._task = asyncio.create_task(self._loop(), name=f"wippy-{self.name}-flush")
        self._sub = await self.store.subscribe_raw(self.stream, seq + 1, self._on_raw)

    def _on_raw(self, seq: int, data: bytes, _pending: int) -> None:
        if seq <= self._seq:
            return  # redelivered
        self._seq = seq
        self._raw.append((seq, data))
        if len(self._raw) >= self.settings.batch_size:
            self._flush_now.set()
        self._wake.set()
        if self._waiters:
            _release(self._waiters, seq)

    def _decode_and_write(self, raw: list[tuple[int, bytes]], seq: int) -> None:
        """In the writer thread: the rows of ``raw`` (a record that cannot be read is skipped and
        logged), written with the checkpoint ``seq``."""
        batch = self._new_batch()
        for rseq, data in raw:
            try:
                batch.add_raw(rseq, data)
            except RecordError as exc:
                self.log.error("%s record %d skipped: %s", self.name, rseq, exc)
        self._write(self.db, batch, seq)

    async def wait_for(self, seq: int) -> None:
        """Return once position ``seq`` has been received (not necessarily written)."""
        if self._seq >= seq:
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((seq, fut))
        await fut

    async def flush(self) -> None:
        """Return once DuckDB holds every record received so far; raises if the write fails."""
        target = self._seq
        if self.db_seq >= target:
            return
        fut = asyncio.get_running_loop().create_future()
        self._db_waiters.append((target, fut))
        self._flush_now.set()
        self._wake.set()
        await fut

    async def catch_up(self) -> None:
        """Return once DuckDB holds every record the stream had when called (what a query waits for)."""
        await self.wait_for(await self.store.last_seq(self.stream))
        await self.flush()

    async def _loop(self) -> None:
        interval = self.settings.flush_interval.total_seconds()
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            if not self._flush_now.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):  # a batching delay, not a readiness wait
                        await self._flush_now.wait()
            self._flush_now.clear()
            try:
                await self._write_pending()
            except Exception as exc:  # keep the node up; flush() callers see the error, the batch is retried
                self.log.exception("writing the %s projection failed", self.name)
                for _s, fut in self._db_waiters:
                    if not fut.done():
                        fut.set_exception(exc)
                self._db_waiters.clear()

    async def _write_pending(self) -> None:
        seq = self._seq
        if not self._raw and seq <= self.db_seq:
            return
        raw, self._raw = self._raw, []
        self._inflight = raw
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._decode_and_write, raw, seq)
        except Exception:
            self._raw[:0] = raw
            raise
        finally:
            self._inflight = []
        self.db_seq = seq
        _release(self._db_waiters, seq)

    async def received(self) -> list[tuple[int, bytes]]:
        """Once every record the stream holds now has been received: those not yet in the database
        (being written, or waiting). A reader that takes these first and then queries the database
        sees every record, without waiting for a write (a record leaves this list only once its
        write has committed)."""
        await self.wait_for(await self.store.last_seq(self.stream))
        return [*self._inflight, *self._raw]

    async def aclose(self) -> None:
        """Stop following the stream and write what is pending. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._sub is not None:
                await self._sub.stop()
            if self._task is not None:
                self._flush_now.set()
                self._wake.set()
                await self._task
            await self._write_pending()
        finally:
            self._executor.shutdown(wait=True)
            for _s, fut in self._waiters + self._db_waiters:
                if not fut.done():
                    fut.set_exception(RecordError(f"the {self.name} projection stopped"))


def envelope(data: bytes, record_type: str) -> tuple[int, str, dict[str, Any]] | None:
    """(at, node, body) of a stored record of ``record_type``; None for another type (see
    :func:`envelope_any`)."""
    found = envelope_any(data, (record_type,))
    return None if found is None else found[1:]


def envelope_any(data: bytes, record_types: Collection[str]) -> tuple[str, int, str, dict[str, Any]] | None:
    """(type, at, node, body) of a stored record of one of ``record_types``; None for another type. The hot
    path of a replay reads the envelope directly (a Record costs twice the parse); a record at
    another schema version goes through Record.decode and its upcasters. RecordError when the
    data cannot be read."""
    try:
        raw = orjson.loads(data)
        record_type = raw.get("type")
        if record_type not in record_types:
            return None
        if raw.get("schema") != 1:
            rec = Record.decode(data)
            return rec.type, int(rec.at), rec.node or "", dict(rec.body)
        body = raw["body"]
        if not isinstance(body, dict):
            raise TypeError("the body is not an object")
        return str(record_type), int(raw["at"]), raw.get("node") or "", body
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RecordError(f"undecodable record: {exc}") from exc

