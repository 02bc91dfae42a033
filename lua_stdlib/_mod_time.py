"""`time`: sleeping and timers on the asyncio loop (the Lua side is lua/time.lua)."""

from __future__ import annotations

import asyncio
import time as _time
from typing import Any

from ._durations import parse_go_duration
from ._host import LuaHost, register_module
from ._vm import _source


def _build(host: LuaHost) -> Any:
    vm = host.vm

    def call_later(seconds: float, fn: Any) -> asyncio.TimerHandle:
        def fire() -> None:
            fn()
            vm.schedule_pump()

        return asyncio.get_running_loop().call_later(max(0.0, float(seconds)), fire)

    def cancel(handle: Any) -> None:
        if isinstance(handle, asyncio.TimerHandle):
            handle.cancel()

    def parse_duration(text: str) -> tuple[int | None, str | None]:
        try:
            return parse_go_duration(str(text)), None
        except ValueError as exc:
            return None, str(exc)

    bridge = vm.rt.table_from({
        "call_later": call_later, "cancel": cancel, "parse_duration": parse_duration, "now_ns": _time.time_ns,
    })
    return vm.rt.execute(_source("time.lua"), vm.S, vm.channel, vm.errors, bridge)


register_module("time", _build)
