"""Commands of `exec.native` executors: the executor's settings, and one command's process and
output pipes on asyncio subprocesses (the Lua bridge is _mod_exec.py).

A command runs with no shell, in its own process group (``start_new_session``), with a clean
environment. Output arrives through asyncio's stream protocol, bounded per pipe (the child waits
for a reader beyond that); the exit is noticed as soon as the process ends, even while a
grandchild still holds a pipe open.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from asyncio.subprocess import PIPE, SubprocessStreamProtocol
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wippy.core import Entry, WippyError

#: Where a bare program name is looked up when the command's environment has no PATH.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_GRACE_SECONDS = 2.0  # how long a command has to exit after SIGTERM when its host closes
_LIMIT = 64 * 1024  # output buffered per stream before the child waits for a reader
_CHUNK = 32 * 1024


class ExecError(WippyError):
    """An exec operation failed; ``kind`` is the Lua error kind."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutorSpec:
    id: str
    work_dir: Path
    env: dict[str, str]
    whitelist: frozenset[str] | None  # None: every command


def executor_spec(entry: Entry, base: Path) -> ExecutorSpec:
    """The executor an `exec.native` entry describes (fields are checked at apply; this rechecks
    what running needs, for entries logged before the checks existed)."""
    d = entry.data
    work = d.get("default_work_dir")
    if work is not None and not isinstance(work, str):
        raise ExecError("INVALID", f"exec {entry.id}: field default_work_dir must be a directory path")
    env = d.get("default_env") or {}
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise ExecError("INVALID", f"exec {entry.id}: field default_env must map names to strings")
    listed = d.get("command_whitelist") or []
    if not isinstance(listed, list) or not all(isinstance(c, str) for c in listed):
        raise ExecError("INVALID", f"exec {entry.id}: field command_whitelist must be a list of commands")
    return ExecutorSpec(id=entry.id, work_dir=base / work if work else base, env={str(k): v for k, v in env.items()},
                        whitelist=frozenset(listed) or None)


class _Protocol(SubprocessStreamProtocol):
    """asyncio's stream protocol, plus an event when the process exits (a 3.11 ``Process.wait``
    only returns once the output pipes have closed too, which a grandchild can hold open)."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit, loop)
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


class Pipe:
    """The stdout or stderr of a command, read by Lua as a stream."""

    __slots__ = ("closed", "command", "fd", "position", "requested")

    def __init__(self, command: Command, fd: int) -> None:
        self.command, self.fd = command, fd
        self.requested = False
        self.closed = False
        self.position = 0

    def _reader(self) -> asyncio.StreamReader | None:
        proto = self.command.protocol
        if proto is None:
            return None
        return proto.stdout if self.fd == 1 else proto.stderr

    async def read(self, n: int) -> bytes | None:
        """Up to ``n`` bytes as soon as there are some; None at the end."""
        if self.closed:
            raise ExecError("INTERNAL", f"{self.command.label}: stream closed")
        if not self.command.started and not self.command.closed:
            raise ExecError("INVALID", f"{self.command.label}: process not started: call start() before reading")
        await self.command.launched.wait()
        reader = self._reader()
        if reader is None:  # closed before it started
            return None
        data = await reader.read(n)
        self.position += len(data)
        return data or None

    async def discard(self) -> None:
        reader = self._reader()
        while reader is not None and await reader.read(_CHUNK):
            pass

    def close(self) -> None:
        """Stop reading; the command gets EPIPE when it writes more (as with a closed Go pipe)."""
        self.closed = True
        transport = self.command.transport
        pipe = transport.get_pipe_transport(self.fd) if transport is not None else None
        if pipe is not None:
            pipe.close()

    def stat(self) -> dict[str, Any]:
        return {"size": -1, "position": self.position, "readable": not self.closed, "writable": False,
                "seekable": False}


class Command:
    """One command of an executor: made by ``exec``, run by ``start``."""

    def __init__(self, spec: ExecutorSpec, command: str, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.spec, self.command, self.argv, self.cwd, self.env = spec, command, argv, cwd, env
        self.label = f"exec {spec.id}: {command!r}"
        self.started = False
        self.closed = False
        self.transport: asyncio.SubprocessTransport | None = None
        self.protocol: _Protocol | None = None
        #: set once the process runs, or once it never will (closed first)
        self.launched = asyncio.Event()
        self.pipes = {1: Pipe(self, 1), 2: Pipe(self, 2)}

    def _usable(self, *, started: bool = True) -> None:
        if self.closed:
            raise ExecError("INVALID", f"{self.label}: process is closed")
        if started and not self.started:
            raise ExecError("INVALID", f"{self.label}: process not started: call start() first")

    def pipe(self, fd: int) -> Pipe:
        self._usable(started=False)
        p = self.pipes[fd]
        p.requested = True
        return p

    async def start(self) -> None:
        self._usable(started=False)
        if self.started:
            raise ExecError("INVALID", f"{self.label}: process already started")
        self.started = True
        try:
            await self._spawn()
        except BaseException:
            self.closed = True  # it never ran: every later call says so
            raise
        finally:
            self.launched.set()
        for p in self.pipes.values():
            if p.closed:
                p.close()

    async def _spawn(self) -> None:
        program = self.argv[0]
        if "/" not in program:
            found = shutil.which(program, path=self.env.get("PATH", DEFAULT_PATH))
            if found is None:
                raise ExecError("INTERNAL", f"{self.label}: start process: {program}: executable file not "
                                            "found in $PATH")
            program = found
        if not self.cwd.is_dir():
            raise ExecError("INTERNAL", f"{self.label}: start process: the working directory {self.cwd} "
                                        "does not exist")
        loop = asyncio.get_running_loop()
        try:
            self.transport, self.protocol = await loop.subprocess_exec(
                lambda: _Protocol(_LIMIT, loop), program, *self.argv[1:], stdin=PIPE, stdout=PIPE, stderr=PIPE,
                cwd=self.cwd, env=self.env, start_new_session=True)
        except OSError as exc:
            raise ExecError("INTERNAL", f"{self.label}: start process: {program}: {exc.strerror or exc}") from exc

    async def write_stdin(self, data: bytes) -> None:
        self._usable()
        writer = self.protocol.stdin if self.protocol is not None else None
        if writer is None or writer.is_closing():
            raise ExecError("INTERNAL", f"{self.label}: write stdin: stdin is closed")
        try:
            if not data:
                writer.close()
                await writer.wait_closed()
                return
            writer.write(data)
            await writer.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ExecError("INTERNAL", f"{self.label}: write stdin: the process no longer reads its "
                                        "input") from exc

    async def wait(self) -> int:
        """The exit code (-1: ended by a signal). The process counts as closed from here on."""
        self._usable()
        self.closed = True
        await self.launched.wait()  # a start() still spawning it
        if self.protocol is None or self.transport is None:
            raise ExecError("INVALID", f"{self.label}: the process never started")
        drains = [asyncio.create_task(p.discard()) for p in self.pipes.values() if not p.requested]
        try:
            await self.protocol.exited.wait()
        finally:
            for task in drains:
                task.cancel()
            for task in drains:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        code = self.transport.get_returncode()
        return -1 if code is None or code < 0 else code

    def signal(self, signum: int) -> None:
        self._usable()
        assert self.transport is not None
        if self.transport.get_returncode() is not None:
            raise ExecError("INTERNAL", f"{self.label}: send signal: process already finished")
        try:
            self.transport.send_signal(signum)
        except ProcessLookupError as exc:
            raise ExecError("INTERNAL", f"{self.label}: send signal: process already finished") from exc

    def close(self, force: bool) -> None:
        """Signal the command's process group (SIGTERM; SIGKILL with ``force``). Idempotent."""
        if self.closed:
            return
        self.closed = True
        self.launched.set()
        self._signal_group(signal.SIGKILL if force else signal.SIGTERM)

    def _signal_group(self, signum: int) -> None:
        if self.transport is None or self.transport.get_returncode() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.transport.get_pid(), signum)

    @property
    def finished(self) -> bool:
        """Never ran, or exited with its pipes released (nothing left to clean up)."""
        return self.transport is None or self.transport.is_closing()

    async def terminate(self) -> None:
        """Stop the command for good (its host is closing): SIGTERM, SIGKILL after the grace period."""
        self.closed = True
        self.launched.set()
        if self.transport is None or self.protocol is None:
            return
        for signum in (signal.SIGTERM, signal.SIGKILL):
            if self.transport.get_returncode() is not None:
                break
            self._signal_group(signum)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_GRACE_SECONDS):
                    await self.protocol.exited.wait()
        self.transport.close()
