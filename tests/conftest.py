"""Shared fixtures: a real nats-server (from the installed wheel) for the whole session, and a
fresh stream namespace per test so tests never see each other's records."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from wippy.core import JetStreamEventStore, Subjects, find_nats_server

_LISTEN = re.compile(r"Listening for client connections on ([0-9.]+):(\d+)")


class NatsServer:
    """A nats-server child process with JetStream on a free loopback port."""

    def __init__(self, store_dir: Path) -> None:
        self.store_dir = store_dir
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self, port: int = -1) -> None:
        """Start (or start again: ``port`` = the port it had, to keep its clients' URL)."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [str(find_nats_server()), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(self.store_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            m = _LISTEN.search(line)
            if m:
                self.url = f"nats://{m.group(1)}:{m.group(2)}"
            if "Server is ready" in line:
                break
        else:
            raise RuntimeError("nats-server exited before it was ready")
        # keep draining the log so the pipe never fills
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for _ in self.proc.stderr:
            pass

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def kill(self) -> None:
        """Stop it the hard way (SIGKILL), as a crash would."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)
        self._drainer.join(timeout=5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        if self.proc is not None and self.proc.stderr is not None:
            self._drainer.join(timeout=5)
            self.proc.stderr.close()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("nats") / "store")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    return nats_server.url


@pytest.fixture
def namespace() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
async def store(nats_url: str, namespace: str) -> AsyncIterator[JetStreamEventStore]:
    s = await JetStreamEventStore.connect(nats_url, Subjects(namespace))
    await s.provision()
    try:
        yield s
    finally:
        js = s.client.jetstream()
        for spec in s.subjects.streams():
            with contextlib.suppress(Exception):  # the test may have deleted it or stopped the server
                await js.delete_stream(spec.name)
        await s.aclose()


@pytest.fixture
def wippy_bin() -> list[str]:
    """The installed console script, run as a subprocess."""
    exe = Path(sys.executable).parent / "wippy"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "wippy.ops"]

