"""`wippy run`: the embedded NATS server, the node's admin API, clean shutdown, crashes."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Wippy


def nats_servers_for(store: Path) -> list[int]:
    """PIDs of nats-server processes whose config points into this state dir."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"nats-server") and any(str(store).encode() in c for c in cmd):
            pids.append(int(proc.name))
    return pids


def wait_exited(pids: list[int], timeout: float = 10) -> None:
    """Block until these (non-child) processes are gone, without polling (pidfd)."""
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            ready, _, _ = select.select([fd], [], [], timeout)
            assert ready, f"process {pid} still running after {timeout}s"
        finally:
            os.close(fd)


class RunningNode:
    def __init__(self, proc: subprocess.Popen[str], ready: str) -> None:
        self.proc = proc
        self.ready = ready
        self.stderr = ""

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        _out, self.stderr = self.proc.communicate(timeout=30)  # also closes the pipes
        return self.proc.returncode


@pytest.fixture
def start_node(wippy_embedded: Wippy, app: Path) -> Iterator[object]:
    nodes: list[RunningNode] = []

    def _start(*extra: str) -> RunningNode:
        proc = subprocess.Popen([*wippy_embedded.bin, "run", *extra], cwd=app, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=os.environ | {"USER": "tester"})
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the ready line; no sleeping
        if "running" not in line:
            proc.kill()
            raise AssertionError(f"node did not start: {line}\n{proc.stderr.read() if proc.stderr else ''}")
        node = RunningNode(proc, line)
        nodes.append(node)
        return node

    yield _start
    for node in nodes:
        node.stop(signal.SIGKILL)


def test_run_serves_the_cli_through_one_embedded_server(start_node, wippy_embedded: Wippy,  # type: ignore[no-untyped-def]
                                                        app: Path) -> None:
    state = app / ".wippy" / "state"
    node = start_node()
    assert "running app" in node.ready
    record = json.loads((state / "node.json").read_text())
    server = json.loads((state / "nats" / "server.json").read_text())
    assert record["nats_url"] == server["url"]
    assert nats_servers_for(state) == [server["pid"]]

    # commands while the node runs go through its admin API and its one server
    entries = wippy_embedded.json("registry", "list")
    assert any(e["id"] == "hello:greeting.en" for e in entries)
    (app / "src" / "more.yaml").write_text("namespace: more\nentries:\n  - name: m\n    kind: registry.entry\n")
    v = wippy_embedded.json("registry", "apply")["version"]
    assert wippy_embedded.json("query", "SELECT max(version) AS v FROM registry_versions") == [{"v": v}]
    assert nats_servers_for(state) == [server["pid"]]

    # a second node on the same state dir is refused
    second = wippy_embedded("run", check=False, timeout=30)
    assert second.returncode == 1 and "already running" in second.stderr

    assert node.stop() == 0
    assert not (state / "node.json").exists()
    assert not (state / "nats" / "server.json").exists()
    assert nats_servers_for(state) == []

    # restart: nothing changed in the files, so nothing is applied
    again = start_node()
    assert "(unchanged)" in again.ready
    assert again.stop(signal.SIGTERM) == 0


def test_one_off_commands_use_the_embedded_server_and_stop_it(wippy_embedded: Wippy, app: Path) -> None:
    state = app / ".wippy" / "state"
    v = wippy_embedded.json("registry", "apply")["version"]
    assert wippy_embedded.json("registry", "versions")[0]["version"] == v
    assert nats_servers_for(state) == []
    node_id = (state / "node_id").read_text().strip()
    assert node_id.startswith("node-")
    wippy_embedded.json("registry", "list")
    assert (state / "node_id").read_text().strip() == node_id  # stable


def test_a_stale_server_record_is_replaced(wippy_embedded: Wippy, app: Path) -> None:
    state = app / ".wippy" / "state"
    wippy_embedded.json("registry", "apply")
    dead = subprocess.run(["true"], check=True)
    assert dead.returncode == 0
    (state / "nats").mkdir(parents=True, exist_ok=True)
    (state / "nats" / "server.json").write_text(json.dumps({"url": "nats://127.0.0.1:1", "pid": 999999}))
    (state / "node.json").write_text(json.dumps({"pid": 999999, "node": "gone", "nats_url": "nats://127.0.0.1:1",
                                                 "namespace": "wippy"}))
    assert len(wippy_embedded.json("registry", "list")) > 0
    assert nats_servers_for(state) == []


def test_kill_9_of_a_running_node_loses_nothing(start_node, wippy_embedded: Wippy,  # type: ignore[no-untyped-def]
                                                app: Path) -> None:
    node = start_node()
    (app / "src" / "more.yaml").write_text("namespace: more\nentries:\n  - name: m\n    kind: registry.entry\n")
    v = wippy_embedded.json("registry", "apply")["version"]
    state = app / ".wippy" / "state"
    servers = nats_servers_for(state)
    node.stop(signal.SIGKILL)
    wait_exited(servers)  # the server dies with its owner (PR_SET_PDEATHSIG)
    assert nats_servers_for(state) == []
    # the next command finds a stale record and an unlocked dir, and sees everything
    assert wippy_embedded.json("registry", "show", "more:m")["kind"] == "registry.entry"
    assert wippy_embedded.json("query", "SELECT max(version) AS v FROM registry_versions") == [{"v": v}]


def test_run_serves_prometheus_metrics_when_configured(start_node, wippy_embedded: Wippy,  # type: ignore[no-untyped-def]
                                                       app: Path) -> None:
    import socket
    import urllib.request

    with socket.socket() as probe:  # a free loopback port for the node to take
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (app / ".wippy.yaml").write_text(f"prometheus:\n  enabled: true\n  address: 127.0.0.1:{port}\n")
    node = start_node()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        # nothing recorded yet: an empty exposition, served
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
    assert node.stop() == 0

    with socket.socket() as taken:  # an address in use: the node says so and exits
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (app / ".wippy.yaml").write_text(f"prometheus:\n  enabled: true\n  address: 127.0.0.1:{port}\n")
        failed = wippy_embedded("run", check=False, timeout=60)
    assert failed.returncode != 0
    assert f"cannot serve /metrics on 127.0.0.1:{port}" in failed.stderr
