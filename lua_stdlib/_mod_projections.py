"""`projections`: read-only DuckDB SQL over the node's projections, from Lua (ours; Wippy has none).

    projections.query(sql, params?) -> rows | nil, err
        rows: an array of tables keyed by column (JSON columns as Lua values, times as ISO text)
        params: an array bound to ``?`` placeholders
        err: INVALID for SQL DuckDB refuses (its message), for a statement that writes, or for more
             than one statement; the query waits until the projections hold everything the log
             held when it was called (what `wippy query` does)

The tables are those of `wippy query`: registry_entries, registry_versions, registry_history,
processes, process_messages, process_dead_letters, process_events, events, audit. Permission:
``projections.query`` on the resource ``projections``.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import orjson

from wippy.core import WippyError

from ._host import LuaHost, ModuleUnavailable, register_module
from ._vm import _source


def _plain(value: Any) -> Any:
    """A DuckDB value as Lua-ready data."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:  # a JSON column arrives as text
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _build(host: LuaHost) -> Any:
    registry = host.ctx.registry
    if not hasattr(registry, "query"):
        raise ModuleUnavailable("no projections here (queries need a node)")
    vm = host.vm

    def query(sql: Any, params: Any = None) -> Any:
        values = vm.from_lua(params) if params is not None else None

        async def run() -> tuple[Any, ...]:
            try:
                rows = await registry.query(str(sql), params=values)
            except WippyError as exc:
                return None, vm.error("INVALID" if exc.kind == "INVALID" else exc.kind, str(exc))
            return vm.to_lua([{k: _plain(v) for k, v in row.items()} for row in rows]), None

        return vm.pending(run())

    bridge = vm.rt.table_from({"query": vm.asyncify(query)})
    return vm.rt.execute(_source("projections.lua"), bridge, vm.errors, host.security)


register_module("projections", _build)
