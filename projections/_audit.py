"""The audit projection: the audit stream, row by row, into DuckDB's ``audit`` table.

Append-only: each batch of records and the checkpoint are written in one transaction; on start
the runner follows the stream from the checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import orjson

from wippy.core import EventStore, Record, RecordError, Subscription

from ._duckdb import ProjectionDB

log = logging.getLogger("wippy.projections.audit")

AUDIT = "audit"


class AuditProjection:
    def __init__(self, store: EventStore, db: ProjectionDB, *, flush_interval: timedelta = timedelta(seconds=1)
                 ) -> None:
        self.store = store
        self.db = db
        self._interval = flush_interval.total_seconds()
        self._rows: list[tuple[Any, ...]] = []
        self._seq = 0
        self.db_seq = 0
        self._sub: Subscription | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wippy-audit")
        self._closed = False

    async def start(self) -> None:
        seq, _ = await asyncio.get_running_loop().run_in_executor(self._executor, self.db.checkpoint, AUDIT)
        self._seq = self.db_seq = seq
        self._task = asyncio.create_task(self._loop(), name="wippy-audit-flush")
        self._sub = await self.store.subscribe_raw(self.store.subjects.audit_stream, seq + 1, self._on_raw)

    def _on_raw(self, seq: int, data: bytes, _pending: int) -> None:
        if seq <= self._seq:
            return
        self._seq = seq
        try:
            rec = Record.decode(data)
        except RecordError as exc:
            log.error("audit record %d skipped: %s", seq, exc)
            return
        b = rec.body
        self._rows.append((seq, rec.at // 1000, rec.type, rec.actor, rec.node, b.get("action"), b.get("resource"),
                           b.get("entry"), orjson.dumps(b).decode()))
        self._wake.set()

    async def flush(self) -> None:
        await self._write()

    async def _loop(self) -> None:
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self._interval)  # a batching delay, not a readiness wait
            await self._write()

    async def _write(self) -> None:
        if not self._rows and self._seq <= self.db_seq:
            return
        rows, self._rows = self._rows, []
        seq = self._seq
        await asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: self.db.write_rows(AUDIT, rows, checkpoint=AUDIT, seq=seq))
        self.db_seq = seq

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._sub is not None:
            await self._sub.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self._write()
        finally:
            self._executor.shutdown(wait=True)
