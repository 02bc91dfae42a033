"""`events`: send to and subscribe on the node's event bus (the Lua side is lua/events.lua).

    events.send(system, kind, path, data?) -> true | nil, err
    events.subscribe(system_pattern, kind_pattern?, {from = "start" | seq | iso_time}?) -> sub | nil, err
    sub:channel() -> channel of {system, kind, path, data};  sub:close() -> true

Patterns: ``*`` one segment, ``**`` any number, ``(a|b)`` alternatives (wippy.core's
compile_event_pattern); a pattern that cannot compile is an INVALID error. ``data`` is JSON data
(binary strings travel as base64, as process messages do). Permissions: ``events.send`` and
``events.subscribe`` on the system (pattern).
"""

from __future__ import annotations

from typing import Any

from wippy.core import WippyError

from ._host import LuaHost, ModuleUnavailable, register_module
from ._process import decode_binary
from ._vm import _source


def _build(host: LuaHost) -> Any:
    bus = host.ctx.events
    if bus is None:
        raise ModuleUnavailable("no event bus runs here (events need a node)")
    vm = host.vm
    bridge_proc = host.process

    def send(system: str, kind: str, path: str, data: Any = None) -> Any:
        try:
            bus.send(str(system), str(kind), str(path), bridge_proc.to_python(data, "events.send: data"),
                     actor=None)
        except WippyError as exc:
            return None, vm.error(exc.kind, str(exc))
        return True, None

    def subscribe(system: str, kind: Any = None) -> Any:
        try:
            return bus.subscribe(str(system), str(kind) if kind is not None else None), None
        except WippyError as exc:
            return None, vm.error(exc.kind, str(exc))

    def subscribe_from(system: str, kind: Any, start: Any) -> Any:
        async def open_() -> tuple[Any, ...]:
            sub = await bus.subscribe_from(str(system), str(kind) if kind is not None else None, start)
            return sub, None

        return vm.pending(open_())

    def next_batch(sub: Any) -> Any:
        async def wait() -> tuple[Any, ...]:
            batch = await sub.next_batch()
            if batch is None:
                return (None,)
            return (vm.to_lua([{"system": e["system"], "kind": e["kind"], "path": e["path"],
                                "data": decode_binary(e.get("data"))} for e in batch]),)

        return vm.pending(wait())

    def close(sub: Any) -> None:
        sub.close()

    bridge = vm.rt.table_from({"send": send, "subscribe": subscribe, "subscribe_from": vm.asyncify(subscribe_from),
                               "next": vm.asyncify(next_batch), "close": close})
    return vm.rt.execute(_source("events.lua"), bridge, vm.S, vm.channel, vm.errors, host.security)


register_module("events", _build)
