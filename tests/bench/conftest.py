"""Benchmarks: run with `pytest -m bench -s tests/bench` on an otherwise idle machine.

Each prints its absolute figure and, where a raw baseline exists, the baseline measured in the
same run on the same server. None asserts a wall-clock time (machines are shared and noisy)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from wippy.core import LogServer, ServerSettings

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop, as the `wippy` command does."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


async def embedded_server(state: Path, sync_interval: str = "always") -> LogServer:
    return await LogServer.open(state, ServerSettings(sync_interval=sync_interval))


def percentile(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def report(name: str, **figures: Any) -> None:
    parts = ", ".join(f"{k}={v}" for k, v in figures.items())
    print(f"\nBENCH {name}: {parts}", flush=True)


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    return tmp_path


