"""`logger`: structured logs from Lua into Python logging (the Lua side is lua/logger.lua).

    logger:debug|info|warn|error(message, fields?)   fields: a table (string keys; values may be
                                                     tables, which are logged as plain data)
    logger:with(fields) -> Logger                    a child adding these fields to every line
    logger:named(name) -> Logger                     a child logging as "wippy.lua.<name>"

Called with a dot (``logger.info("x")``), with a message that is no string, or with fields that
are no table, it raises an INVALID error, as Wippy does. Each line goes to the Python logger
"wippy.lua" (plus the name) with ``extra={"fields": {...}}`` so the JSON log formatter prints the
fields: ``pid`` and ``entry`` (as ``print`` has them), ``location`` (the calling entry and line),
then the ``with`` fields, then the call's fields (the automatic ones win a clash). Fields are
converted only when the level is enabled.
"""

from __future__ import annotations

import logging
from typing import Any

from lupa.lua54 import lua_type  # type: ignore[import-untyped]

from ._binary import Raw, host_copy, wrap
from ._host import LuaHost, register_module
from ._vm import _source

_ROOT = "wippy.lua"


def _build(host: LuaHost) -> Any:
    vm = host.vm
    current_pid = host.current_pid
    loggers: dict[str | None, logging.Logger] = {}

    def plain(value: Any) -> Any:
        """Lua values (already through from_lua) as JSON-friendly data; functions and the like as text."""
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        if value is None or isinstance(value, str | int | float | bool):
            return value
        if isinstance(value, Raw):  # a binary string: its bytes, undecodable ones replaced
            return value.text()
        return str(vm.tostring(value)) if lua_type(value) is not None else str(value)

    def fields_of(table: Any) -> dict[str, Any]:
        if table is None:
            return {}
        try:
            converted = vm.from_lua(table)
        except UnicodeDecodeError:  # binary strings inside: read a copy holding Raw strings
            converted = vm.from_lua(host_copy(host, table))
        return {str(k): v for k, v in plain(converted).items()} if isinstance(converted, dict) else {}

    def emit(level: int, name: str | None, context: Any, message: str, table: Any = None,  # noqa: PLR0917 - called from Lua
             entry: str | None = None, line: int | None = None) -> None:
        log = loggers.get(name)
        if log is None:
            log = loggers[name] = logging.getLogger(f"{_ROOT}.{name}" if name else _ROOT)
        if not log.isEnabledFor(level):
            return
        fields: dict[str, Any] = dict(context) if isinstance(context, dict) else {}
        fields.update(fields_of(table))
        fields["pid"] = current_pid()
        if entry:
            fields["entry"] = entry
            fields["location"] = f"{entry}:{line}"
        log.log(level, str(message), extra={"fields": fields})

    def merge(context: Any, table: Any) -> dict[str, Any]:
        out = dict(context) if isinstance(context, dict) else {}
        out.update(fields_of(table))
        return out

    bridge = vm.rt.table_from({"emit": wrap(host, emit), "merge": wrap(host, merge)})
    return vm.rt.execute(_source("logger.lua"), bridge, vm.errors, vm.rt.globals().debug.getinfo, host.readonly)


register_module("logger", _build)
