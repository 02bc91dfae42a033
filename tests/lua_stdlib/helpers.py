"""Running Lua snippets as entries on a real LuaHost."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wippy.core import Entry
from wippy.lua_stdlib import HostContext, LuaHost, LuaSettings


class Entries:
    """A registry reader over a fixed set of entries (what the host reads code from)."""

    def __init__(self, *entries: Entry) -> None:
        self.entries = {e.id: e for e in entries}

    def get(self, entry_id: str) -> Entry | None:
        return self.entries.get(entry_id)

    def current(self) -> Mapping[str, Entry]:
        return self.entries


def fn(name: str, source: str, *, method: str | None = "call", modules: list[str] | None = None,
       kind: str = "function.lua", imports: dict[str, str] | None = None) -> Entry:
    data: dict[str, Any] = {"source": source}
    if method:
        data["method"] = method
    if modules:
        data["modules"] = modules
    if imports:
        data["imports"] = imports
    return Entry(name, kind, {}, data)


async def run_entry(entry: Entry, *others: Entry, args: tuple[Any, ...] = (), registry: Any = None,
                    settings: LuaSettings | None = None, **ctx: Any) -> tuple[bool, tuple[Any, ...]]:
    """Run an entry's function as a task on a fresh host; (ok, results) with Lua tables as Python data."""
    reg = registry or Entries(entry, *others)
    host = LuaHost(HostContext(registry=reg, node="n1", pid="{n1@app:t|0x00001}",
                               settings=settings or LuaSettings(), **ctx))
    try:
        ok, results = await host.vm.run(host.callable(entry), *args)
        return ok, tuple(host.vm.from_lua(r) if not isinstance(r, str) else r for r in results)
    finally:
        await host.aclose()
