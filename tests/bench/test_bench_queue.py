"""A JetStream queue of 10,000 messages, consumed with concurrency 4, its node killed (-9) mid-run.

    pytest -m bench -s tests/bench/test_bench_queue.py

A nats-server of its own (fsync always), then `wippy run` nodes as separate OS processes on it.
The handler records each message it finishes in a store.kv.raft bucket: ``seen/<id>`` created
only if absent, and a ``dup/<id>/<uuid>`` key when it was there already (a redelivery). The first
node is killed with SIGKILL once about a third is done; a second node takes over the queue (the
dead node's unacknowledged messages come back after ack_wait). Reported: lost (must be 0),
duplicates (only from redelivery after the kill), throughput.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wippy.core import JetStreamQueues, kv_bucket_name

from .conftest import embedded_server, report, run

pytestmark = pytest.mark.bench

N = 10_000

APP = """version: "1.0"
namespace: app
entries:
  - name: driver
    kind: queue.driver.jetstream
  - name: tasks
    kind: queue.queue
    driver: app:driver
    driver_options:
      jetstream:
        ack_wait: 3s
  - name: seen
    kind: store.kv.raft
  - name: handler
    kind: function.lua
    method: main
    modules: [store, uuid]
    source: |
      local store, uuid = require("store"), require("uuid")
      local function main(task)
        local s = store.get("app:seen")
        local _, err = s:put("seen/" .. task.id, true, {only_if_absent = true})
        if err then
          if err:kind() ~= "ALREADY_EXISTS" then return nil, err end
          s:set("dup/" .. task.id .. "/" .. uuid.v4(), true)
        end
        return true
      end
      return {main = main}
  - name: consumer
    kind: queue.consumer
    queue: app:tasks
    func: app:handler
    concurrency: 4
    prefetch: 16
    lifecycle:
      auto_start: true
"""


def _node(app: Path, state: Path, url: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "wippy.ops", "run", "--app", str(app), "--state-dir",
                                 str(state), "--nats", url], stdout=out, stderr=subprocess.STDOUT)


def test_no_message_lost_when_the_consumer_node_is_killed(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "src").mkdir(parents=True)
    (app / "src" / "_index.yaml").write_text(APP)

    async def main() -> None:
        import nats

        server = await embedded_server(tmp_path / "nats")
        nc = await nats.connect(server.url)
        nodes: list[subprocess.Popen[bytes]] = []
        try:
            queues = JetStreamQueues(nc, "wippy")
            t0 = time.perf_counter()
            for i in range(N):
                await queues.publish("tasks", f"p{i}", f'{{"id": "m{i}"}}'.encode(), {})
            publish_s = time.perf_counter() - t0
            js = nc.jetstream()
            bucket = kv_bucket_name("wippy", "app:seen")

            async def keys() -> tuple[int, int]:
                try:
                    kv = await js.key_value(bucket)
                    names = await kv.keys()
                except Exception:  # the bucket is made on first use; no keys yet
                    return 0, 0
                return sum(k.startswith("seen") for k in names), sum(k.startswith("dup") for k in names)

            t0 = time.perf_counter()
            nodes.append(_node(app, tmp_path / "n1", server.url, tmp_path / "n1.log"))
            seen_at_kill = 0
            while seen_at_kill < N // 3:
                await asyncio.sleep(0.5)
                seen_at_kill = (await keys())[0]
                assert nodes[0].poll() is None, (tmp_path / "n1.log").read_text()[-3000:]
            os.kill(nodes[0].pid, signal.SIGKILL)
            nodes[0].wait()
            killed_at = time.perf_counter() - t0
            nodes.append(_node(app, tmp_path / "n2", server.url, tmp_path / "n2.log"))
            deadline = time.monotonic() + 600
            seen, dups = await keys()
            while seen < N and time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                seen, dups = await keys()
                assert nodes[1].poll() is None, (tmp_path / "n2.log").read_text()[-3000:]
            elapsed = time.perf_counter() - t0
            await asyncio.sleep(5)  # anything still to be redelivered arrives within ack_wait
            seen, dups = await keys()
            left = await queues.count("tasks")
            report("queue.driver.jetstream, 10,000 messages, concurrency 4, consumer node killed -9 mid-run",
                   published=N, processed_before_kill=seen_at_kill, killed_after_s=f"{killed_at:.1f}",
                   processed=seen, lost=N - seen, duplicates=dups, left_in_queue=left,
                   total_s=f"{elapsed:.1f}", msgs_per_s=f"{N / elapsed:,.0f}",
                   publish_per_s=f"{N / publish_s:,.0f}")
            assert seen == N and left == 0
        finally:
            for p in nodes:
                if p.poll() is None:
                    p.terminate()
                    p.wait(30)
            await nc.close()
            await server.aclose()

    run(main())
