"""`io`: the terminal host's stdin/stdout/stderr (only processes on a terminal.host have it).

    io.print(...)  io.write(...)  io.eprint(...)  io.flush()
    io.read(n?) -> string|nil (nil at end of input)   io.readline() -> string|nil
    io.args() -> {string}   io.raw(bool) -> UNAVAILABLE (no raw terminal mode here)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, TextIO

from ._host import LuaHost, ModuleUnavailable, register_module


@dataclass(frozen=True, slots=True)
class Stdio:
    stdin: TextIO
    stdout: TextIO
    stderr: TextIO


def _text(vm: Any, args: tuple[Any, ...]) -> str:
    return "\t".join(vm.tostring(a) for a in args)


def _build(host: LuaHost) -> Any:
    stdio = host.ctx.stdio
    if not isinstance(stdio, Stdio):
        raise ModuleUnavailable("io is only available to processes on a terminal.host")
    vm = host.vm

    def print_(*args: Any) -> None:
        stdio.stdout.write(_text(vm, args) + "\n")
        stdio.stdout.flush()

    def write(*args: Any) -> None:
        stdio.stdout.write("".join(vm.tostring(a) for a in args))

    def eprint(*args: Any) -> None:
        stdio.stderr.write(_text(vm, args) + "\n")
        stdio.stderr.flush()

    def flush() -> None:
        stdio.stdout.flush()
        stdio.stderr.flush()

    async def _read(n: int | None) -> tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(None, stdio.stdin.read, -1 if n is None else n)
        return (data if data else None,)

    async def _readline() -> tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        line = await loop.run_in_executor(None, stdio.stdin.readline)
        if not line:
            return (None,)
        return (line.rstrip("\n").rstrip("\r"),)

    def read(n: Any = None) -> Any:
        return vm.pending(_read(int(n) if n is not None else None))

    def readline() -> Any:
        return vm.pending(_readline())

    def args() -> Any:
        return vm.to_lua(list(host.ctx.args))

    def raw(_on: Any = None) -> Any:
        return None, vm.error("UNAVAILABLE", "io.raw: raw terminal mode is not implemented in this runtime")

    return vm.rt.table_from({
        "print": print_, "write": write, "eprint": eprint, "flush": flush,
        "read": vm.asyncify(read), "readline": vm.asyncify(readline), "args": args, "raw": raw,
    })


register_module("io", _build)
