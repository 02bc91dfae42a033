"""`queue`: publishing to queues and the delivery a consumer's handler is processing (lua/queue.lua).

The node's QueueHub (services) does the work; a consumer puts the delivery on the handler call's
task, where ``queue.message()`` finds it. Bodies are encoded with the queue's codec (JSON by
default) from the Lua value; headers map strings to strings, numbers or booleans.
"""

from __future__ import annotations

from typing import Any

from wippy.core import WippyError

from ._binary import Raw, host_copy, wrap
from ._host import LuaHost, ModuleUnavailable, register_module
from ._vm import _source


def _bytes(value: Any) -> Any:
    if isinstance(value, Raw):
        return value.data
    if isinstance(value, dict):
        return {k: _bytes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_bytes(v) for v in value]
    return value


def _build(host: LuaHost) -> Any:
    hub = host.ctx.queues
    if hub is None:
        raise ModuleUnavailable("no queues here (queues need a node)")
    vm = host.vm

    def failed(exc: WippyError) -> tuple[Any, Any]:
        kind = exc.kind if exc.kind in ("INVALID", "NOT_FOUND", "UNAVAILABLE", "PERMISSION_DENIED") else "INTERNAL"
        return None, vm.error(kind, str(exc), retryable=exc.retryable or None)

    def body(data: Any) -> Any:
        if isinstance(data, Raw):
            return data.data
        try:
            return vm.from_lua(data)
        except UnicodeDecodeError:  # binary strings inside: copied as Raw, sent as bytes (msgpack carries them)
            return _bytes(vm.from_lua(host_copy(host, data)))

    def publish(queue_id: str, data: Any, headers: Any = None) -> Any:
        value = body(data)
        hdrs = vm.from_lua(headers) if headers is not None else None

        async def run() -> tuple[Any, ...]:
            try:
                await hub.publish(str(queue_id), value, hdrs if isinstance(hdrs, dict) else None)
            except WippyError as exc:
                return failed(exc)
            return True, None

        return vm.pending(run())

    def info(queue_id: str) -> Any:
        async def run() -> tuple[Any, ...]:
            try:
                return vm.to_lua(await hub.info(str(queue_id))), None
            except WippyError as exc:
                return failed(exc)

        return vm.pending(run())

    def settle(d: Any, ok: bool) -> Any:
        if not d.claim():
            return None, vm.error("INVALID", "queue.Message already settled")

        async def run() -> tuple[Any, ...]:
            try:
                await d.settle(bool(ok), "nacked by the handler", claimed=True)
            except WippyError as exc:
                return failed(exc)
            return True, None

        return vm.pending(run())

    bridge = vm.rt.table_from({
        "publish": vm.asyncify(wrap(host, publish)), "info": vm.asyncify(info), "settle": vm.asyncify(settle),
        "released": lambda d: d.released, "id": lambda d: d.msg.id,
        "header": lambda d, k: vm.to_lua(d.msg.headers.get(k)),
        "headers": lambda d: vm.to_lua(d.msg.headers),
    })
    return vm.rt.execute(_source("queue.lua"), bridge, vm.errors, vm.S, host.security)


register_module("queue", _build)
