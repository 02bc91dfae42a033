"""`exec`: commands run by `exec.native` executors, for Lua (the Lua side is lua/exec.lua).

    exec.get(id) -> executor, err                 (permission exec.get on the executor id)
    executor:exec(cmd, {work_dir, env}) -> proc   (permission exec.run on the command)
    proc:start(); proc:stdout_stream() / stderr_stream() -> stream (read(n) waits for output);
    proc:write_stdin(s) ("" closes stdin); proc:wait() -> exit_code; proc:signal(n); proc:close(force?)

A command is split as a POSIX shell splits words (``shlex``) and run directly, with no shell (a
shell is a command like any other, ``sh -c '...'``). A ``command_whitelist`` lists exact command
strings (PERMISSION_DENIED for any other); absent or empty, every command is allowed.
The child sees a clean environment, the executor's ``default_env`` overlaid with the call's
``env`` (nothing of the runtime's own); a bare program name is looked up in that ``PATH``, else
in the standard system directories. ``work_dir`` (else ``default_work_dir``, else the app
directory) is relative to the app directory.

Each command runs in its own process group. ``close()`` signals the group (SIGTERM, or SIGKILL
with ``force``); ``signal(n)`` only the process. ``wait()`` returns the exit code (-1 when a signal
ended the process, as Go reports it) and discards output nobody asked a stream for, so a chatty
command cannot block on a full pipe; output a stream was asked for waits for its reader (pipes are
bounded: read the streams before or while waiting). When the host closes, the commands it started
get SIGTERM, and SIGKILL after a grace period. ``exec.docker`` is not implemented (UNAVAILABLE).
"""

from __future__ import annotations

import asyncio
import os
import shlex
from pathlib import Path
from typing import Any

from wippy.core import WippyError

from ._binary import Raw, host_copy, wrap
from ._exec_process import Command, ExecError, ExecutorSpec, Pipe, executor_spec
from ._host import LuaHost, register_module
from ._mod_fs import base_dir, resolved_entry
from ._streams import stream_lib
from ._vm import _source

_CHUNK = 32 * 1024  # what a stream read without a size returns at most
_MAX_READ = 16 * 1024 * 1024


class _Executor:
    """An executor Lua acquired (``exec.get``); released ones make no more commands."""

    __slots__ = ("released", "spec")

    def __init__(self, spec: ExecutorSpec) -> None:
        self.spec = spec
        self.released = False


def _text(value: Any) -> Any:
    """A Lua string as Python text; a binary one keeps its bytes (as the OS encodes names)."""
    return os.fsdecode(value.data) if isinstance(value, Raw) else value


def _env_value(value: Any, name: str) -> str:
    value = _text(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise ExecError("INVALID", f"executor:exec: options.env.{name} must be a string, got {type(value).__name__}")


class _Bridge:
    """The host functions lua/exec.lua calls: (value, nil) or (nil, err), or a Pending the Lua task
    waits for. Owns the commands its host started, and stops them when the host closes."""

    def __init__(self, host: LuaHost) -> None:
        self.host = host
        self.vm = host.vm
        self.running: set[Command] = set()
        host.on_close(self.stop_all)

    async def stop_all(self) -> None:
        commands = list(self.running)
        self.running.clear()
        async with asyncio.TaskGroup() as tg:
            for c in commands:
                tg.create_task(c.terminate())

    def get(self, executor_id: str) -> Any:
        entry = resolved_entry(self.host, executor_id)
        if entry is None:
            raise ExecError("NOT_FOUND", f"exec.get: executor not found: {executor_id}")
        if entry.kind == "exec.docker":
            raise ExecError("UNAVAILABLE", f"exec.get: {executor_id}: exec.docker executors are not implemented "
                                           "in this runtime")
        if entry.kind != "exec.native":
            raise ExecError("INVALID", f"exec.get: {executor_id} is a {entry.kind}, not an exec.native executor")
        return _Executor(executor_spec(entry, base_dir(self.host))), None

    def exec(self, ex: _Executor, command: str, opts: Any = None) -> Any:
        spec = ex.spec
        if ex.released:
            raise ExecError("INVALID", f"exec {spec.id}: executor is released")
        if spec.whitelist is not None and command not in spec.whitelist:
            raise ExecError("PERMISSION_DENIED", f"exec {spec.id}: command {command!r} is not in the executor's "
                                                 "command_whitelist")
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise ExecError("INVALID", f"exec {spec.id}: cannot split command {command!r}: {exc}") from exc
        if not argv:
            raise ExecError("INVALID", f"exec {spec.id}: the command {command!r} names no program")
        o = self.vm.from_lua(host_copy(self.host, opts)) if opts is not None else {}
        if not isinstance(o, dict):
            o = {}
        return Command(spec, command, argv, self._work_dir(spec, o.get("work_dir")), _env(spec, o.get("env"))), None

    def _work_dir(self, spec: ExecutorSpec, work: Any) -> Path:
        if work is None:
            return spec.work_dir
        work = _text(work)
        if not isinstance(work, str) or not work or "\0" in work:
            raise ExecError("INVALID", "executor:exec: options.work_dir must be a directory path")
        return base_dir(self.host) / work

    @staticmethod
    def release(ex: _Executor) -> Any:
        ex.released = True
        return True, None

    async def start(self, c: Command) -> tuple[Any, ...]:
        for done in [x for x in self.running if x.finished]:
            self.running.discard(done)
        await c.start()
        self.running.add(c)
        return True, None

    @staticmethod
    async def write_stdin(c: Command, data: Any) -> tuple[Any, ...]:
        raw = data.data if isinstance(data, Raw) else str(data).encode("utf-8", errors="surrogatepass")
        await c.write_stdin(raw)
        return True, None

    @staticmethod
    async def wait(c: Command) -> tuple[Any, ...]:
        return await c.wait(), None

    @staticmethod
    def signal(c: Command, signum: int) -> Any:
        c.signal(signum)
        return True, None

    @staticmethod
    def close(c: Command, force: Any = None) -> Any:
        c.close(bool(force))
        return True, None

    @staticmethod
    def pipe(c: Command, which: str) -> Any:
        return c.pipe(1 if which == "stdout" else 2), None

    @staticmethod
    async def pipe_read(p: Pipe, n: int) -> tuple[Any, ...]:
        return await p.read(min(int(n), _MAX_READ) if n else _CHUNK), None

    @staticmethod
    def pipe_close(p: Pipe) -> Any:
        p.close()
        return True, None

    def pipe_stat(self, p: Pipe) -> Any:
        return self.vm.to_lua(p.stat()), None

    def table(self) -> Any:
        vm = self.vm

        def failing(fn: Any) -> Any:
            def call(*args: Any) -> Any:
                try:
                    return fn(*args)
                except WippyError as exc:
                    return None, vm.error(exc.kind, str(exc))
            return call

        def waiting(make: Any, *, binary: bool = False) -> Any:
            """``make(*args)`` (a coroutine) awaited while the Lua task waits; ``binary``: string
            arguments may be binary (they arrive as Raw)."""
            async def run(coro: Any) -> tuple[Any, ...]:
                try:
                    result: tuple[Any, ...] = await coro
                except WippyError as exc:
                    return None, vm.error(exc.kind, str(exc))
                return result

            def call(*args: Any) -> Any:
                return vm.pending(run(make(*args)))

            return vm.asyncify(wrap(self.host, call) if binary else call)

        return vm.rt.table_from({
            "get": failing(self.get), "exec": failing(self.exec), "release": self.release,
            "start": waiting(self.start), "write_stdin": waiting(self.write_stdin, binary=True),
            "wait": waiting(self.wait), "signal": failing(self.signal), "close": self.close,
            "pipe": failing(self.pipe), "pipe_read": waiting(self.pipe_read), "pipe_close": self.pipe_close,
            "pipe_stat": self.pipe_stat,
        })


def _env(spec: ExecutorSpec, extra: Any) -> dict[str, str]:
    """The command's environment: the executor's default_env overlaid with the call's env."""
    env = dict(spec.env)
    if extra is None:
        return env
    if not isinstance(extra, dict):
        raise ExecError("INVALID", "executor:exec: options.env must be a table of names to strings")
    for k, v in extra.items():
        name = str(_text(k))
        env[name] = _env_value(v, name)
    if any("\0" in k or "=" in k or not k or "\0" in v for k, v in env.items()):
        raise ExecError("INVALID", "executor:exec: an environment name is empty or holds '=' or NUL, or a value "
                                   "holds NUL")
    return env


def _build(host: LuaHost) -> Any:
    bridge = _Bridge(host).table()
    return host.vm.rt.execute(_source("exec.lua"), bridge, host.vm.errors, host.security, stream_lib(host))


register_module("exec", _build)
