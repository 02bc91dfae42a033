"""Helpers to drive the installed `wippy` command as a user would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


class Wippy:
    def __init__(self, bin_: list[str], cwd: Path, extra: list[str]) -> None:
        self.bin = bin_
        self.cwd = cwd
        self.extra = extra

    def __call__(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [*self.bin, *args, *self.extra]
        proc = subprocess.run(cmd, check=False, cwd=self.cwd, capture_output=True, text=True, timeout=timeout,
                              env=os.environ | {"USER": "tester"})
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A copy of the example app in a temp dir (state dirs go under it)."""
    dst = tmp_path / "app"
    shutil.copytree(REPO / "examples" / "hello", dst)
    return dst


@pytest.fixture
def wippy(wippy_bin: list[str], app: Path, nats_url: str, namespace: str) -> Wippy:
    """`wippy` on the session's nats-server with a fresh namespace."""
    return Wippy(wippy_bin, app, ["--nats", nats_url, "--namespace", namespace])


@pytest.fixture
def wippy_embedded(wippy_bin: list[str], app: Path) -> Wippy:
    """`wippy` with its embedded server (state dir under the app)."""
    return Wippy(wippy_bin, app, [])


Write = Callable[[str, str], Path]


@pytest.fixture
def write(app: Path) -> Write:
    def _write(rel: str, text: str) -> Path:
        path = app / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return _write
