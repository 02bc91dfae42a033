"""`system`: what the runtime can tell about itself (memory, GC, CPUs, the OS process, modules).

Wippy reports on its Go runtime; this runtime is one Python process whose Lua code runs in one
Lua VM per process (entry), so the Go figures map as follows:

    system.memory.stats() -> {alloc, heap_alloc, heap_objects, sys, num_gc}, err
        alloc, heap_alloc   bytes in use by the calling process's Lua VM
        heap_objects        memory blocks held by the Python allocator (sys.getallocatedblocks)
        sys                 resident set size of the runtime's OS process (psutil)
        num_gc              completed Python garbage collections (all generations)
        Go-only fields (total_alloc, heap_idle, mspan_*, stack_*, next_gc, ...) are absent.
    system.memory.allocated() -> alloc        system.memory.heap_objects() -> heap_objects
    system.memory.get_limit() -> bytes        the Lua VM's memory limit (math.maxinteger: none)
    system.memory.set_limit(bytes | -1) -> previous   lower this VM's limit (not below what is in
        use, not above the configured limit); -1 restores the configured limit
    system.gc.collect() -> true               a full Lua collection of this VM, then Python's
    system.gc.get_percent() / set_percent(p) -> previous   Go's GOGC mapped to this VM's Lua
        collector pause (pause = 100 + p: 100 means "collect when memory doubles" in both)
    system.runtime.cpu_count() -> CPUs this process may run on
    system.runtime.max_procs() -> 1           Lua code runs on the node's one event-loop thread;
        max_procs(n) (setting it) is UNAVAILABLE
    system.runtime.goroutines() -> asyncio tasks on the node's loop + Lua tasks of this process
    system.process.pid() / hostname() / cwd() -> the runtime's OS process
    system.modules() -> {{name, description, class}}   modules this runtime provides
    system.node.id() -> this node's id        system.node.role() -> "non-member" (no Raft here)
    system.cluster.members() -> {{id, is_local = true}}, leader() -> "", size() -> 1
        (Wippy's standalone-node answers: no clustering in this runtime)
    system.supervisor.state(id) -> {id, status, desired, retry_count, last_update, started_at, details,
        pid}; states() -> every supervised service on this node
    system.hosts.list() -> {{id, processes}}; system.hosts.processes(host) -> {{pid, entry, parent}}
    UNAVAILABLE (not in this runtime yet): system.exit, system.node.addr, system.raft.*,
        system.lock.acquire/release

Permissions (checked against the caller's security context; a denial is PERMISSION_DENIED,
where Wippy reports INVALID): ``system.read`` on memory, memory_limit, gc_percent, goroutines,
gomaxprocs, cpu, pid, hostname, cwd, modules, supervisor, hosts, node, cluster, raft,
raft_stats; ``system.control`` on memory_limit and gomaxprocs; ``system.gc`` on gc and
gc_percent; ``system.exit``; ``system.lock`` on the lock name.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

import psutil

from ._host import _MODULES, LuaHost, available_modules, register_module

_MAX_INT = 2**63 - 1

#: Wippy's module classes (from its module definitions), for system.modules().
_CLASSES: dict[str, tuple[str, ...]] = {
    "base64": ("encoding", "deterministic"), "compress": ("encoding", "deterministic"),
    "contract": ("workflow", "nondeterministic"), "crypto": ("security", "nondeterministic", "workflow"),
    "ctx": ("nondeterministic", "workflow"), "env": ("process", "nondeterministic"),
    "eval_runner": ("process", "nondeterministic"), "events": ("io", "nondeterministic"),
    "excel": ("io", "encoding"), "exec": ("io", "process", "nondeterministic"), "expr": ("deterministic",),
    "fs": ("storage", "io", "nondeterministic"), "funcs": ("workflow", "nondeterministic"),
    "hash": ("encoding", "security", "deterministic"), "html": ("security", "deterministic"),
    "http": ("network", "io", "nondeterministic"), "http_client": ("network", "io", "nondeterministic"),
    "hub": ("network", "io", "nondeterministic"), "io": ("io", "nondeterministic"),
    "json": ("encoding", "deterministic"), "logger": ("io",), "metrics": ("io", "nondeterministic"),
    "payload": ("encoding", "deterministic"), "pg": ("process", "nondeterministic"),
    "queue": ("io", "nondeterministic"), "registry": ("nondeterministic", "storage"),
    "security": ("security", "nondeterministic"), "sql": ("storage", "io", "nondeterministic"),
    "store": ("storage", "io", "nondeterministic"), "system": ("process", "nondeterministic"),
    "templates": ("deterministic",), "text": ("deterministic",), "time": ("time", "workflow"),
    "treesitter": ("encoding", "deterministic"), "tty": ("io", "nondeterministic"),
    "uuid": ("nondeterministic", "workflow"), "websocket": ("network", "io", "nondeterministic"),
    "workflow": ("workflow", "nondeterministic"), "yaml": ("encoding", "deterministic"),
}

_COUNT = "function(t) local n = 0 for _ in pairs(t) do n = n + 1 end return n end"


def _description(name: str) -> str:
    """The first line of the module's implementation docstring, without its "`name`: " prefix."""
    factory = _MODULES.get(name)
    doc = getattr(sys.modules.get(getattr(factory, "__module__", "")), "__doc__", None) or ""
    line = doc.strip().split("\n", 1)[0].strip()
    prefix = f"`{name}`: "
    return line.removeprefix(prefix) if line.startswith(prefix) else line


def _cpu_count() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        return len(affinity(0))
    return os.cpu_count() or 1


class _System:
    """The module's functions for one host; each checks its permission first."""

    def __init__(self, host: LuaHost) -> None:
        self.host = host
        self.vm = host.vm
        rt = self.vm.rt
        self.collect = rt.globals().collectgarbage
        self.count = rt.eval(_COUNT)
        self.tasks = self.vm.S.tasks
        self.configured_limit = self.vm.settings.max_memory
        self.gc_percent = 100

    # -- plumbing ------------------------------------------------------------------------------

    def guarded(self, action: str, resource: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            denied = self.host.check(action, resource, None)
            if denied is not None:
                return None, denied
            return fn(*args)

        return call

    def unavailable(self, what: str, why: str = "is not implemented in this runtime yet") -> Callable[..., Any]:
        return lambda *_a: (None, self.vm.error("UNAVAILABLE", f"{what} {why}"))

    def invalid(self, message: str) -> tuple[None, Any]:
        return None, self.vm.error("INVALID", message)

    # -- memory and GC ---------------------------------------------------------------------------

    def lua_bytes(self) -> int:
        return int(float(self.collect("count")) * 1024)

    def stats(self) -> tuple[Any, None]:
        used = self.lua_bytes()
        stats = {
            "alloc": used, "heap_alloc": used, "heap_objects": sys.getallocatedblocks(),
            "sys": psutil.Process().memory_info().rss, "num_gc": sum(s["collections"] for s in gc.get_stats()),
        }
        return self.vm.to_lua(stats), None

    def limit(self) -> int:
        current = int(self.vm.rt.get_max_memory())
        return _MAX_INT if current <= 0 or current > _MAX_INT else current

    def set_limit(self, value: Any = None) -> tuple[Any, Any]:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            return self.invalid("system.memory.set_limit: the limit must be an integer number of bytes (or -1)")
        previous = self.limit()
        if value == -1:
            value = self.configured_limit
        elif value < 0:
            return self.invalid("system.memory.set_limit: limit must be non-negative or -1")
        elif self.configured_limit and value > self.configured_limit:
            return self.invalid(f"system.memory.set_limit: {value} is above this VM's configured limit "
                                f"({self.configured_limit} bytes); only lowering is allowed")
        elif value <= self.lua_bytes():
            return self.invalid(f"system.memory.set_limit: {value} is not above the {self.lua_bytes()} bytes in use")
        self.vm.rt.set_max_memory(value)
        return previous, None

    def gc_collect(self) -> tuple[bool, None]:
        self.collect("collect")
        gc.collect()
        return True, None

    def set_percent(self, value: Any = None) -> tuple[Any, Any]:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return self.invalid("system.gc.set_percent: percent must be a non-negative integer "
                                "(turning the collector off is not supported)")
        previous, self.gc_percent = self.gc_percent, value
        self.collect("setpause", 100 + value)
        return previous, None

    # -- runtime and process ---------------------------------------------------------------------

    def goroutines(self) -> tuple[int, None]:
        try:
            loop_tasks = len(asyncio.all_tasks())
        except RuntimeError:  # no running loop (a host used outside one)
            loop_tasks = 0
        return loop_tasks + int(self.count(self.tasks)), None

    def max_procs(self, n: Any = None) -> tuple[Any, Any]:
        if n is None:
            denied = self.host.check("system.read", "gomaxprocs", None)
            return (None, denied) if denied is not None else (1, None)
        denied = self.host.check("system.control", "gomaxprocs", None)
        if denied is not None:
            return None, denied
        return None, self.vm.error("UNAVAILABLE", "system.runtime.max_procs: parallelism cannot be changed; "
                                                  "Lua code runs on the node's one event-loop thread")

    def cwd(self) -> tuple[Any, Any]:
        try:
            return os.getcwd(), None
        except OSError as exc:
            return None, self.vm.error("INTERNAL", f"system.process.cwd: {exc}")

    def modules(self) -> tuple[Any, None]:
        found = [{"name": name, "description": _description(name), "class": list(_CLASSES.get(name, ()))}
                 for name in sorted(available_modules())]
        return self.vm.to_lua(found), None

    # -- the module table ------------------------------------------------------------------------

    def table(self) -> Any:
        g, node, ro = self.guarded, self.host.ctx.node, self.host.readonly
        rt = self.vm.rt
        no_cluster = "is not available: this runtime has no cluster membership"
        no_raft = "is not available: raft not running (this runtime has no Raft consensus core)"

        def sub(name: str, fields: dict[str, Any]) -> Any:
            return ro(rt.table_from(fields), f"system.{name}")

        return rt.table_from({
            "memory": sub("memory", {
                "stats": g("system.read", "memory", self.stats),
                "allocated": g("system.read", "memory", lambda: (self.lua_bytes(), None)),
                "heap_objects": g("system.read", "memory", lambda: (sys.getallocatedblocks(), None)),
                "get_limit": g("system.read", "memory_limit", lambda: (self.limit(), None)),
                "set_limit": g("system.control", "memory_limit", self.set_limit),
            }),
            "gc": sub("gc", {
                "collect": g("system.gc", "gc", self.gc_collect),
                "get_percent": g("system.read", "gc_percent", lambda: (self.gc_percent, None)),
                "set_percent": g("system.gc", "gc_percent", self.set_percent),
            }),
            "runtime": sub("runtime", {
                "goroutines": g("system.read", "goroutines", self.goroutines),
                "max_procs": self.max_procs,
                "cpu_count": g("system.read", "cpu", lambda: (_cpu_count(), None)),
            }),
            "process": sub("process", {
                "pid": g("system.read", "pid", lambda: (os.getpid(), None)),
                "hostname": g("system.read", "hostname", lambda: (socket.gethostname(), None)),
                "cwd": g("system.read", "cwd", self.cwd),
            }),
            "node": sub("node", {
                "id": g("system.read", "node", lambda: (node, None)),
                "addr": g("system.read", "node", self.unavailable("system.node.addr", no_cluster)),
                "role": g("system.read", "node", lambda: ("non-member", None)),
            }),
            "cluster": sub("cluster", {
                "members": g("system.read", "cluster",
                             lambda: (self.vm.to_lua([{"id": node, "is_local": True}]), None)),
                "leader": g("system.read", "cluster", lambda: ("", None)),
                "size": g("system.read", "cluster", lambda: (1, None)),
            }),
            "raft": sub("raft", {
                name: g("system.read", "raft_stats" if name == "stats" else "raft",
                        self.unavailable(f"system.raft.{name}", no_raft))
                for name in ("is_leader", "is_member", "role", "term", "commit_index", "stats")
            }),
            "lock": sub("lock", {
                "acquire": self.lock("acquire"), "release": self.lock("release"),
            }),
            "supervisor": sub("supervisor", {
                "state": g("system.read", "supervisor", self.service_state),
                "states": g("system.read", "supervisor", self.service_states),
            }),
            "hosts": sub("hosts", {
                "list": g("system.read", "hosts", self.hosts_list),
                "processes": g("system.read", "hosts", self.host_processes),
            }),
            "modules": g("system.read", "modules", self.modules),
            "exit": g("system.exit", "", self.unavailable(
                "system.exit", "is not available: this runtime cannot shut the node down from Lua yet")),
        })

    # -- supervisor and hosts (the node's process runtime) ------------------------------------------
    def _supervisor(self, what: str) -> Any:
        sup = self.host.ctx.supervisor
        if sup is None:
            raise _NoRuntime(f"{what}: no supervisor here (this code runs outside a node)")
        return sup

    def service_state(self, service_id: Any = None, *_a: Any) -> tuple[Any, Any]:
        if not isinstance(service_id, str) or not service_id:
            return self.invalid("system.supervisor.state: the service id must be a non-empty string")
        try:
            state = self._supervisor("system.supervisor.state").state(service_id)
        except _NoRuntime as exc:
            return None, self.vm.error("UNAVAILABLE", str(exc))
        if state is None:
            return None, self.vm.error("NOT_FOUND", f"system.supervisor.state: {service_id} is not a supervised "
                                                    "service on this node")
        return self.vm.to_lua(state), None

    def service_states(self, *_a: Any) -> tuple[Any, Any]:
        try:
            return self.vm.to_lua(self._supervisor("system.supervisor.states").states()), None
        except _NoRuntime as exc:
            return None, self.vm.error("UNAVAILABLE", str(exc))

    def hosts_list(self, *_a: Any) -> tuple[Any, Any]:
        procs = self.host.ctx.processes
        if procs is None:
            return None, self.vm.error("UNAVAILABLE", "system.hosts.list: no process runtime here")
        counts: dict[str, int] = dict.fromkeys(procs.hosts, 0)
        for p in list(procs.procs.values()):
            counts[p.host_id] = counts.get(p.host_id, 0) + 1
        return self.vm.to_lua([{"id": h, "processes": n} for h, n in sorted(counts.items())]), None

    def host_processes(self, host_id: Any = None, *_a: Any) -> tuple[Any, Any]:
        procs = self.host.ctx.processes
        if procs is None:
            return None, self.vm.error("UNAVAILABLE", "system.hosts.processes: no process runtime here")
        if not isinstance(host_id, str) or not host_id:
            return self.invalid("system.hosts.processes: the host id must be a non-empty string")
        if host_id not in procs.hosts:
            return None, self.vm.error("NOT_FOUND", f"system.hosts.processes: {host_id} is not a running host")
        return self.vm.to_lua([{"pid": p.pid, "entry": p.entry_id, "parent": p.parent}
                               for p in list(procs.procs.values()) if p.host_id == host_id]), None

    def lock(self, op: str) -> Callable[..., Any]:
        def call(name: Any = None, *_a: Any) -> tuple[Any, Any]:
            if not isinstance(name, str) or not name:
                return self.invalid(f"system.lock.{op}: the lock name must be a non-empty string")
            denied = self.host.check("system.lock", name, None)
            if denied is not None:
                return None, denied
            return None, self.vm.error("UNAVAILABLE", f"system.lock.{op} is not available: locks need the "
                                                      "cluster-wide process registry, not in this runtime yet")

        return call


class _NoRuntime(Exception):
    pass


def _build(host: LuaHost) -> Any:
    return _System(host).table()


register_module("system", _build)
