"""Running Lua snippets as entries on a real LuaHost."""

from __future__ import annotations

import asyncio
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


class Node:
    """A registry service on the session's nats-server, a store hub, and Lua hosts on them."""

    def __init__(self, svc: Any, stores: Any, *, strict: bool = False, expr: Any = None) -> None:
        self.svc = svc
        self.stores = stores
        self.strict = strict
        self.expr = expr

    async def apply(self, *entries: Entry) -> int:
        from wippy.core import Changeset, Op

        ops = [Op("update" if self.svc.get(e.id) else "create", e.id, e) for e in entries]
        return int((await self.svc.apply(Changeset(ops=tuple(ops)))).version)

    async def run(self, entry: Entry, *others: Entry, args: tuple[Any, ...] = ()) -> tuple[bool, tuple[Any, ...]]:
        await self.apply(entry, *others)
        host = LuaHost(HostContext(registry=self.svc, node="n1", pid="{n1|0x1}", strict=self.strict,
                                   stores=self.stores, audit=self.svc.record_denied, expr=self.expr))
        try:
            lua_args = tuple(host.vm.to_lua(a) for a in args)
            ok, results = await host.vm.run(host.callable(entry), *lua_args)
            out = tuple(host.vm.from_lua(r) if not isinstance(r, str) else r for r in results)
            await asyncio.sleep(0)  # let background audit appends start
            await host.vm.aclose()
            return ok, out
        finally:
            await host.aclose()
