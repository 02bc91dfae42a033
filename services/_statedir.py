"""The state dir: who owns it, and how other commands find the node running on it.

``<state>/owner.lock`` is held (flock) by whichever process has the dir's DuckDB file open: a
``wippy run`` node for its lifetime, or a one-off CLI command for its duration. The kernel drops
the lock when the holder dies, even by ``kill -9``, so a lock is never stale. ``<state>/node.json``
names the running node (pid, node id, NATS URL, stream namespace) while it serves admin requests.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from wippy.core import ConfigError


@dataclass(frozen=True, slots=True)
class NodeRecord:
    pid: int
    node: str
    nats_url: str
    namespace: str


class StateDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_file: Any = None

    # -- files -----------------------------------------------------------------------------------
    @property
    def duckdb_path(self) -> Path:
        return self.path / "projections.duckdb"

    @property
    def node_record_path(self) -> Path:
        return self.path / "node.json"

    def ensure(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the state dir {self.path}: {exc}") from exc

    def node_id(self, explicit: str | None) -> str:
        """The node's id: ``explicit`` if given, else a stable one kept in the state dir."""
        if explicit:
            return explicit
        path = self.path / "node_id"
        try:
            existing = path.read_text().strip()
        except FileNotFoundError:
            existing = ""
        if existing:
            return existing
        node = f"node-{secrets.token_hex(4)}"
        self.ensure()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(node + "\n")
        os.replace(tmp, path)
        return node

    # -- ownership ---------------------------------------------------------------------------------
    def try_own(self) -> bool:
        """Take the owner lock without waiting; False if another live process holds it."""
        self.ensure()
        f = (self.path / "owner.lock").open("a+b")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return False
        self._lock_file = f
        return True

    def own(self, timeout: float) -> None:
        """Take the owner lock, waiting up to ``timeout`` seconds for a one-off command to end."""
        deadline = time.monotonic() + timeout
        while not self.try_own():
            if time.monotonic() >= deadline:
                holder = self.read_node_record()
                who = f"node {holder.node} (pid {holder.pid})" if holder else "another wippy command"
                raise ConfigError(f"the state dir {self.path} is in use by {who}")
            time.sleep(0.05)  # polling a kernel lock: there is no event to wait on

    def release(self) -> None:
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    # -- the running node ------------------------------------------------------------------------
    def write_node_record(self, record: NodeRecord) -> None:
        tmp = self.node_record_path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps({
            "pid": record.pid, "node": record.node, "nats_url": record.nats_url, "namespace": record.namespace,
        }))
        os.replace(tmp, self.node_record_path)

    def clear_node_record(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.node_record_path.unlink()

    def read_node_record(self) -> NodeRecord | None:
        try:
            raw = orjson.loads(self.node_record_path.read_bytes())
            return NodeRecord(pid=int(raw["pid"]), node=str(raw["node"]), nats_url=str(raw["nats_url"]),
                              namespace=str(raw["namespace"]))
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
