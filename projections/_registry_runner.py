"""Runs the registry projection: log -> in-memory state (at once) -> DuckDB (in batches).

On start the state is loaded from the DuckDB file's checkpoint, then the registry stream is read
from the next position with an ordered push consumer (the fast replay path) and followed live.
Records this process appends itself are folded as soon as JetStream acknowledges them
(``apply_local``), so a writer sees its own version at once; the subscription delivers the same
records later and the fold skips positions it has already applied.

DuckDB trails by at most ``flush_interval`` (or ``batch_size`` changesets); ``flush()`` forces a
write and returns when the file has caught up, which is what a query asking about a version
waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from wippy.core import EventStore, Record, RecordError, Subscription

from ._duckdb import REGISTRY, ProjectionDB
from ._registry_state import AppliedChangeset, RegistryState, fold

log = logging.getLogger("wippy.projections.registry")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectionSettings:
    flush_interval: timedelta = timedelta(milliseconds=500)
    batch_size: int = 5000


Listener = Callable[[AppliedChangeset], None]


class RegistryProjection:
    def __init__(self, store: EventStore, db: ProjectionDB, settings: ProjectionSettings | None = None) -> None:
        self.store = store
        self.db = db
        self.settings = settings or ProjectionSettings()
        self.state = RegistryState()
        self.db_seq = 0
        self._batch: list[AppliedChangeset] = []
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._db_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._flush_now = asyncio.Event()
        self._sub: Subscription | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wippy-duckdb")
        self._listeners: list[Listener] = []
        self._closed = False
        self._flush_error: BaseException | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the persisted state, subscribe, and return once caught up with the stream."""
        loop = asyncio.get_running_loop()
        persisted = await loop.run_in_executor(self._executor, self.db.load_registry)
        self.state.load(persisted.entries, persisted.origins, persisted.files_base,
                        version=persisted.version, seq=persisted.seq, versions=persisted.versions)
        self.db_seq = persisted.seq
        stream = self.store.subjects.registry_stream
        head = await self.store.last_seq(stream)
        self._flusher = asyncio.create_task(self._flush_loop(), name="wippy-registry-flush")
        self._sub = await self.store.subscribe_raw(stream, self.state.last_seq + 1, self._on_raw)
        await self.wait_for(head)

    async def aclose(self) -> None:
        """Stop following the log and write what is pending. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._sub is not None:
                await self._sub.stop()
            if self._flusher is not None:
                self._flush_now.set()
                self._wake.set()
                await self._flusher
        finally:
            self._executor.shutdown(wait=True)
            for _s, fut in self._waiters + self._db_waiters:
                if not fut.done():
                    fut.set_exception(RecordError("the registry projection stopped"))

    # -- folding ----------------------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        """Called with every changeset as it is folded into memory (kind handlers hook in here)."""
        self._listeners.append(listener)

    def apply_local(self, seq: int, record: Record) -> AppliedChangeset | None:
        """Fold a record this process has just appended (acknowledged at ``seq``)."""
        return self._fold(seq, record)

    def _on_raw(self, seq: int, data: bytes, _pending: int) -> None:
        if seq <= self.state.last_seq:
            return  # appended by this process: folded already (apply_local)
        try:
            record = Record.decode(data)
        except RecordError as exc:
            log.error("registry record %d skipped: %s", seq, exc)
            self.state.last_seq = seq
            self._wake.set()
            _release(self._waiters, seq)
            return
        self._fold(seq, record)

    def _fold(self, seq: int, record: Record) -> AppliedChangeset | None:
        try:
            applied = fold(self.state, seq, record)
        except (RecordError, KeyError, TypeError, ValueError) as exc:
            log.error("registry record %d skipped: %s", seq, exc)
            self.state.last_seq = max(self.state.last_seq, seq)
            applied = None
        if applied is not None:
            self._batch.append(applied)
            for listener in self._listeners:
                listener(applied)
            if len(self._batch) >= self.settings.batch_size:
                self._flush_now.set()
        self._wake.set()
        _release(self._waiters, self.state.last_seq)
        return applied

    async def swap_tables(self, source: Path, tables: Sequence[str], *, expect_seq: int) -> bool:
        """Replace this projection's DuckDB tables with a rebuild's, if the rebuild covers exactly
        what has been written (checked in the writer, so no write slips in between); False if not."""
        await self.flush()

        def swap() -> bool:
            if self.db.checkpoint(REGISTRY)[0] != expect_seq:
                return False
            self.db.replace_from(source, tables, checkpoint=REGISTRY)
            return True

        return await asyncio.get_running_loop().run_in_executor(self._executor, swap)

    async def wait_for(self, seq: int) -> None:
        """Return once the in-memory state has folded position ``seq``."""
        if self.state.last_seq >= seq:
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((seq, fut))
        await fut

    # -- DuckDB ---------------------------------------------------------------------------------
    async def flush(self, until: int | None = None) -> None:
        """Return once DuckDB holds everything up to ``until`` (default: all folded so far)."""
        if self._flush_error is not None:
            raise self._flush_error
        target = self.state.stable_seq if until is None else min(until, self.state.stable_seq)
        if self.db_seq >= target:
            return
        fut = asyncio.get_running_loop().create_future()
        self._db_waiters.append((target, fut))
        self._flush_now.set()
        self._wake.set()
        await fut

    async def _flush_loop(self) -> None:
        interval = self.settings.flush_interval.total_seconds()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._flush_now.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await self._flush_now.wait()
            self._flush_now.clear()
            try:
                await self._write_pending()
            except Exception as exc:  # keep the node up; waiters see the error
                log.exception("writing the registry projection failed")
                self._flush_error = exc
                for _s, fut in self._db_waiters:
                    if not fut.done():
                        fut.set_exception(exc)
                self._db_waiters.clear()
            if self._closed:
                return

    async def _write_pending(self) -> None:
        seq = self.state.stable_seq
        if not self._batch and seq <= self.db_seq:
            return
        batch, self._batch = self._batch, []
        version = self.state.version
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(
                self._executor, lambda: self.db.write_registry(batch, seq=seq, version=version)
            )
        except Exception:
            self._batch = batch + self._batch
            raise
        self._flush_error = None
        self.db_seq = seq
        _release(self._db_waiters, seq)


def _release(waiters: list[tuple[int, asyncio.Future[None]]], reached: int) -> None:
    if not waiters:
        return
    keep = []
    for seq, fut in waiters:
        if seq <= reached:
            if not fut.done():
                fut.set_result(None)
        else:
            keep.append((seq, fut))
    waiters[:] = keep
