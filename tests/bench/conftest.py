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


async def raw_publish_consume(store: Any, stream: str, subject: str, n: int, payload_size: int) -> float:
    """The raw baseline of the log's hot paths: nats-py ``publish_async`` of ``n`` records into
    ``subject`` while an ordered push consumer with a callback receives them; records/s."""
    import time

    payload = b"x" * payload_size
    got = 0
    done = asyncio.get_running_loop().create_future()

    def cb(_seq: int, _data: bytes, _pending: int) -> None:
        nonlocal got
        got += 1
        if got == n and not done.done():
            done.set_result(None)

    sub = await store.subscribe_raw(stream, await store.last_seq(stream) + 1, cb, subject=subject)
    t0 = time.perf_counter()
    for _ in range(n):
        await store.publish_pipelined(subject, payload)
    await done
    took = time.perf_counter() - t0
    await sub.stop()
    return n / took


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    return tmp_path


