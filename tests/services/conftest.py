"""A real node (registry, projections, process runtime) on the session's nats-server, for process tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from wippy.core import Changeset, Entry, Op
from wippy.services import Node, RuntimeSettings, StateDir

#: every app in these tests has these hosts
HOSTS = (
    Entry("app:procs", "process.host", {}, {}),
    Entry("app:terminal", "terminal.host", {}, {}),
)


def lua(name: str, source: str, *, kind: str = "process.lua", method: str | None = "main",
        modules: list[str] | None = None, imports: dict[str, str] | None = None, **data: Any) -> Entry:
    """A Lua entry (``ns:name`` in ``name``) with its source inline."""
    body: dict[str, Any] = {"source": source, **data}
    if method:
        body["method"] = method
    if modules:
        body["modules"] = modules
    if imports:
        body["imports"] = imports
    return Entry(name, kind, {}, body)


class ProcNode:
    """A node with helpers: apply entries, run a process to its end."""

    def __init__(self, node: Node) -> None:
        self.node = node

    @property
    def processes(self) -> Any:
        assert self.node.processes is not None
        return self.node.processes

    async def apply(self, *entries: Entry) -> int:
        ops = [Op("update" if self.node.registry.get(e.id) else "create", e.id, e) for e in entries]
        return int((await self.node.registry.apply(Changeset(ops=tuple(ops)))).version)

    def spawn(self, entry_id: str, *args: Any, host: str = "app:procs") -> str:
        return str(self.processes.spawn(None, entry_id, host, {}, list(args)))

    async def run(self, entry_id: str, *args: Any, host: str = "app:procs",
                  timeout: float = 20) -> tuple[Any, str | None]:
        """Spawn a process and wait for its end: (result, None) or (None, error)."""
        pid = self.spawn(entry_id, *args, host=host)
        result: tuple[Any, str | None] = await asyncio.wait_for(self.processes.wait(pid), timeout)
        return result


@pytest.fixture
async def proc_node(nats_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[ProcNode]:
    """A node named n1 with the hosts app:procs and app:terminal applied."""
    settings = RuntimeSettings(state_dir=tmp_path / "state", nats_url=nats_url, namespace=namespace, node="n1")
    state = StateDir(settings.state_dir)
    assert state.try_own()
    try:
        async with Node(settings, state) as node:
            pn = ProcNode(node)
            await pn.apply(*HOSTS)
            yield pn
    finally:
        state.release()
