"""The Lua stream and scanner library (lua/stream.lua), loaded once per host and shared by the
modules that hand Lua streams (exec's process output, fs files' scanners)."""

from __future__ import annotations

from typing import Any

from ._vm import _source


def stream_lib(host: Any) -> Any:
    """The host's instance of lua/stream.lua: ``new(name, ops, h)`` and ``scanner(read, split, label)``."""
    lib = host.extras.get("streams")
    if lib is None:
        host.vm.settle()  # rt.execute may run inside a Lua call (see _vm)
        lib = host.extras["streams"] = host.vm.rt.execute(_source("stream.lua"), host.vm.errors)
    return lib
