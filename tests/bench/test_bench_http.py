"""HTTP: a function.lua endpoint against raw aiohttp, two nodes against one, live reload under load.

    pytest -m bench -s tests/bench/test_bench_http.py

Every server is its own OS process, as in a deployment: `wippy run` nodes (on the session's
nats-server) and the raw baseline `raw_http.py` (aiohttp, uvloop, the same JSON body). The load
comes from `loadgen.py` in a third process (keep-alive HTTP/1.1, closed loop, 32 connections),
so the load generator shares the two cores with the server exactly as wrk would.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from .conftest import report

pytestmark = pytest.mark.bench

HERE = Path(__file__).parent
SECONDS = float(os.environ.get("WIPPY_BENCH_SECONDS", "6"))
APP = """version: "1.0"
namespace: app
entries:
  - name: gateway
    kind: http.service
    addr: 127.0.0.1:{port}
    reuse_port: true
    access_log: {access_log}
    lifecycle:
      auto_start: true
  - name: api
    kind: http.router
    meta:
      server: gateway
    prefix: /
  - name: hello
    kind: function.lua
    source: file://hello.lua
    method: handler
    modules: [http]
  - name: hello.endpoint
    kind: http.endpoint
    meta:
      router: api
    method: GET
    path: /hello
    func: hello
"""
HANDLER = """local http = require("http")
return {{ handler = function()
    local res = http.response()
    res:set_content_type(http.CONTENT.JSON)
    res:set_status(http.STATUS.OK)
    res:write_json({{message = "{greeting}"}})
end }}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"no server on {port}")


@contextmanager
def _servers(cmds: list[list[str]], port: int, env: dict[str, str] | None = None) -> Iterator[None]:
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env) for c in cmds]
    try:
        for p in procs:
            _wait_ready(port, p)
        time.sleep(1.0)  # every worker is up (readiness answers from any one of them)
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def _load(port: int, seconds: float = SECONDS) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(HERE / "loadgen.py"), "127.0.0.1", str(port), "/hello",
                          "--connections", "32", "--seconds", str(seconds), "--warmup", "1.5"],
                         check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _app(tmp: Path, port: int, greeting: str = "hello world", *, access_log: bool = False) -> Path:
    app = tmp / ("app-logged" if access_log else "app")
    (app / "src").mkdir(parents=True, exist_ok=True)
    (app / "src" / "_index.yaml").write_text(APP.format(port=port, access_log=str(access_log).lower()))
    (app / "src" / "hello.lua").write_text(HANDLER.format(greeting=greeting))
    return app


def _wippy(app: Path, nats_url: str, namespace: str, node: str, *rest: str) -> list[str]:
    return [sys.executable, "-m", "wippy.ops", *rest, "--app", str(app), "--nats", nats_url, "--namespace",
            namespace, "--node", node, "--state-dir", str(app / f".state-{node}")]


def _raw(port: int) -> list[str]:
    return [sys.executable, str(HERE / "raw_http.py"), str(port)]


def _alternate(ports: dict[str, int], rounds: int = 5) -> dict[str, list[dict[str, Any]]]:
    """Load each server in turn, ``rounds`` times: the machine's speed drifts over a minute, so
    each ratio is taken between neighbouring runs and the median reported."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ports}
    for _ in range(rounds):
        for name, port in ports.items():
            runs[name].append(_load(port, SECONDS / 2))
    return runs


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def test_endpoint_against_raw_aiohttp(tmp_path: Path, nats_url: str, namespace: str) -> None:
    raw_port, our_port, logged_port = _free_port(), _free_port(), _free_port()
    app = _app(tmp_path, our_port)
    logged_app = _app(tmp_path, logged_port, access_log=True)
    with (_servers([_raw(raw_port)], raw_port), _servers([_wippy(app, nats_url, namespace, "n1", "run")], our_port),
          _servers([_wippy(logged_app, nats_url, f"{namespace}l", "n1", "run")], logged_port)):
        runs = _alternate({"raw": raw_port, "ours": our_port, "logged": logged_port})
    ratios = [o["rps"] / r["rps"] for o, r in zip(runs["ours"], runs["raw"], strict=True)]
    costs = [1 - lg["rps"] / o["rps"] for lg, o in zip(runs["logged"], runs["ours"], strict=True)]
    ours, raw = runs["ours"], runs["raw"]
    report("http function.lua endpoint vs raw aiohttp (1 worker each, 5 alternating rounds)",
           ours_rps=[o["rps"] for o in ours], raw_rps=[r["rps"] for r in raw],
           ratio_median=f"{_median(ratios):.0%}", ratios=[f"{x:.0%}" for x in ratios],
           ours_p50_ms=_median([o["p50_ms"] for o in ours]), ours_p99_ms=_median([o["p99_ms"] for o in ours]),
           raw_p50_ms=_median([r["p50_ms"] for r in raw]), raw_p99_ms=_median([r["p99_ms"] for r in raw]))
    report("http with the access log on (a record per request)", rps=[lg["rps"] for lg in runs["logged"]],
           cost_median=f"{_median(costs):.0%}", p99_ms=_median([lg["p99_ms"] for lg in runs["logged"]]))
    assert all(r["failures"] == 0 for rs in runs.values() for r in rs)


def test_two_nodes_against_two_raw_workers(tmp_path: Path, nats_url: str, namespace: str) -> None:
    port = _free_port()
    with _servers([_raw(port)], port):
        raw1 = _load(port)
    with _servers([_raw(port), _raw(port)], port):
        raw2 = _load(port)
    app = _app(tmp_path, port)
    with _servers([_wippy(app, nats_url, namespace, "n1", "run")], port):
        one = _load(port)
    with _servers([_wippy(app, nats_url, namespace, "n1", "run"), _wippy(app, nats_url, namespace, "n2", "run")],
                  port):
        two = _load(port)
    raw_gain, our_gain = raw2["rps"] / raw1["rps"], two["rps"] / one["rps"]
    report("http two nodes vs one (SO_REUSEPORT), against raw aiohttp 2 workers vs 1",
           one_node_rps=one["rps"], two_nodes_rps=two["rps"], our_speedup=f"{our_gain:.2f}x",
           raw_1_rps=raw1["rps"], raw_2_rps=raw2["rps"], raw_speedup=f"{raw_gain:.2f}x",
           share_of_raw_speedup=f"{(our_gain - 1) / (raw_gain - 1):.0%}" if raw_gain > 1 else "n/a")


def test_live_reload_under_load(tmp_path: Path, nats_url: str, namespace: str) -> None:
    port = _free_port()
    app = _app(tmp_path, port)
    with _servers([_wippy(app, nats_url, namespace, "n1", "run")], port):
        load = subprocess.Popen([sys.executable, str(HERE / "loadgen.py"), "127.0.0.1", str(port), "/hello",
                                 "--connections", "32", "--seconds", "10", "--warmup", "0.5"],
                                stdout=subprocess.PIPE, text=True)
        applied = 0
        time.sleep(1.5)
        for i in range(4):  # new handler code, then a route change and back, while the load runs
            (app / "src" / "hello.lua").write_text(HANDLER.format(greeting=f"hello v{i}"))
            subprocess.run(_wippy(app, nats_url, namespace, "n1", "registry", "apply", "-m", f"v{i}"),
                           check=True, capture_output=True)
            applied += 1
            time.sleep(1.5)
        out, _ = load.communicate(timeout=60)
        result = json.loads(out.strip().splitlines()[-1])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello", timeout=5) as r:
            body = json.loads(r.read())
    report("http live reload under load (10 s, 32 connections)", versions_applied=applied,
           requests=result["requests"], failed=result["failures"], rps=result["rps"], p99_ms=result["p99_ms"])
    assert body == {"message": "hello v3"}
    assert result["failures"] == 0
