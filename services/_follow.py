"""Following registry versions: re-apply a service's view of the registry when entries of its kinds change.

The HTTP servers and the queue consumers each keep a running picture of some entry kinds. A
``RegistryFollower`` listens to the registry projection, and when an applied version touches one
of those kinds, runs the owner's ``apply`` (again, while versions keep arriving) on one task, so
versions are applied in order and never concurrently. ``settled()`` waits for what was seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

log = logging.getLogger("wippy.services")


class RegistryFollower:
    def __init__(self, registry: Any, kinds: Iterable[str], apply: Callable[[], Awaitable[None]], what: str) -> None:
        self._registry = registry
        self._kinds = frozenset(kinds)
        self._apply = apply
        self._what = what
        self._task: asyncio.Task[None] | None = None
        self._dirty = False
        self._closed = False

    def start(self) -> None:
        """Listen from now on (a registry without a projection, as in some tests, is not followed)."""
        projection = getattr(self._registry, "projection", None)
        if projection is not None:
            projection.add_listener(self._on_registry)

    def _on_registry(self, applied: Any) -> None:
        kinds = self._kinds
        if self._closed or not any((op.after is not None and op.after.kind in kinds)
                                   or (op.before is not None and op.before.kind in kinds) for op in applied.ops):
            return
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"wippy-follow:{self._what}")

    async def _loop(self) -> None:
        while self._dirty and not self._closed:
            self._dirty = False
            try:
                await self._apply()
            except Exception:
                log.exception("%s: applying a registry version failed", self._what)

    async def settled(self) -> None:
        """Return once every registry version seen so far is applied."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def aclose(self) -> None:
        """Stop following; an apply under way is cancelled. Idempotent."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
