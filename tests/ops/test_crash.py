"""kill -9 in the middle of an apply: afterwards the apply either fully happened or not at all."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

from wippy.core import JetStreamEventStore

N = 1500


def big_app(root: Path) -> Path:
    src = root / "src"
    src.mkdir(parents=True)
    pad = "x" * 6000  # ~9 MB in all: about ten chunk records before the commit
    lines = ["namespace: big", "entries:"]
    for i in range(N):
        lines += [f"  - name: e{i}", "    kind: registry.entry", f"    n: {i}", f"    pad: {pad}"]
    (src / "_index.yaml").write_text("\n".join(lines) + "\n")
    return root


def cli(wippy_bin: list[str], app: Path, url: str, ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*wippy_bin, *args, "--app", str(app), "--nats", url, "--namespace", ns, "--json"],
                          check=False, capture_output=True, text=True, timeout=120)


async def test_kill_9_during_a_chunked_apply_is_all_or_nothing(
    wippy_bin: list[str], tmp_path: Path, nats_url: str, namespace: str, store: JetStreamEventStore
) -> None:
    app = big_app(tmp_path / "app")
    first_chunk = asyncio.Event()

    def on_record(seq: int, data: bytes, _pending: int) -> None:
        first_chunk.set()

    sub = await store.subscribe_raw(store.subjects.registry_stream, 1, on_record)
    proc = await asyncio.create_subprocess_exec(
        *wippy_bin, "registry", "apply", str(app), "--nats", nats_url, "--namespace", namespace,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        await first_chunk.wait()
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()
    await sub.stop()
    assert proc.returncode == -signal.SIGKILL

    listed = await asyncio.to_thread(cli, wippy_bin, app, nats_url, namespace, "registry", "list", "--ns", "big")
    assert listed.returncode == 0, listed.stderr
    count = len(json.loads(listed.stdout))
    versions = json.loads((await asyncio.to_thread(cli, wippy_bin, app, nats_url, namespace,
                                                   "registry", "versions")).stdout)
    assert (count, len(versions)) in ((0, 0), (N, 1))  # all or nothing

    again = await asyncio.to_thread(cli, wippy_bin, app, nats_url, namespace, "registry", "apply", str(app))
    assert again.returncode == 0, again.stderr
    listed = await asyncio.to_thread(cli, wippy_bin, app, nats_url, namespace, "registry", "list", "--ns", "big")
    entries = json.loads(listed.stdout)
    assert len(entries) == N
    assert sorted(e["data"]["n"] for e in entries) == list(range(N))
