"""The node's process runtime: Lua actor processes on process hosts, with every message and
lifecycle change a record on the ``proc`` stream (schema: core/_proc_records.py).

Hosts. Each ``process.host`` (and ``terminal.host``) entry gets one LuaHost, made on first use;
its processes are tasks of that host's VM (many processes share one Lua state; each has its own
task, mailbox and security context; they share the entries' compiled code and module tables).

Messages. ``send`` appends a ``proc.message`` record to the addressee's node subject, pipelined
(``send`` returns once the record is queued on the connection, in order; it is durable when
JetStream acknowledges it, which the publisher checks in the background). Each node consumes its
own subject with an ordered push consumer and routes every record to the mailbox of its pid; a
message for a pid that is gone (or whose mailbox is full) becomes a ``proc.dead_letter`` record.
Because signals (a monitored process's EXIT, LINK_DOWN, CANCEL, forced termination) travel the
same way, a process sees the messages another one sent before it exited ahead of its EXIT.
Code that runs outside any process (a function called from the host) has the host's own pid,
``{node@host|0x00000}``; messages and EXIT events to it reach that code's mailbox too.

Payloads are log data: JSON values, binary strings as ``{"$bytes": base64}`` (see
lua_stdlib/_process.py). A message too large for one log record is refused (INVALID); an
exit value that large is logged as a short note instead (the process still ends normally).

Lifecycle records (spawned, exited, links, monitors, names) are appended the same pipelined way
to ``<ns>.proc.<node>.log``. Pids are ``{node@host|0x...}``; a node's pids never repeat, also
across runs (each run counts up from its start time in milliseconds), because the log outlives
runs and the projections key processes by pid.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import orjson

from wippy.core import (
    ConfigError,
    EventStore,
    NotFoundError,
    PayloadTooLargeError,
    Pipeline,
    Record,
    RecordError,
    Subscription,
    WippyError,
    proc_records,
)
from wippy.lua_stdlib import LuaCodeError, LuaMemoryError, decode_binary

log = logging.getLogger("wippy.processes")

HOST_KINDS = ("process.host", "terminal.host")
CALL_HOST_KINDS = ("http.service", "queue.consumer")
_PID_EPOCH_MS = 1_767_225_600_000  # 2026-01-01: keeps pids short
_DEFAULT_ID = "0x00000"  # the pid of code that runs on a host outside any process
_ENVELOPE = 4096  # bytes a record needs besides its payload (envelope, ids, topic)
_DEAD_REASONS = {"gone": "no such process", "full": "mailbox full", "closed": "the channel for this topic is closed"}


class ProcessError(WippyError):
    """A process operation the caller got wrong (bad entry, host, pid)."""

    kind = "INVALID"


class AlreadyExistsError(WippyError):
    kind = "ALREADY_EXISTS"


@dataclass(slots=True)
class Proc:
    """What the runtime knows of one live process of this node."""

    pid: str
    entry_id: str
    host_id: str
    parent: str | None
    bridge: Any  # the host's ProcessBridge
    done: asyncio.Future[tuple[Any, str | None]]
    # empty until used (most processes never link, are never monitored, never take a name)
    links: AbstractSet[str] = frozenset()
    watchers: AbstractSet[str] = frozenset()  # who monitors this process
    names: AbstractSet[str] = frozenset()
    ended: bool = False
    trace: str = ""  # the Lua traceback of an error exit
    kind: str | None = None  # the error kind of an error exit, when the error said
    upgrade: tuple[str, Any, list[Any]] | None = None  # (entry id, compiled main, args) once upgrade was called


# (host entry id, default pid, stdio=None, args=()) -> LuaHost
HostFactory = Callable[..., Any]


class ProcessRuntime:
    """Processes of one node. Use from the node's event loop."""

    def __init__(self, *, node: str, store: EventStore, registry: Any, host_factory: HostFactory) -> None:
        self.node = node
        self.store = store
        self.registry = registry
        self._host_factory = host_factory
        self._subjects = store.subjects
        self._inbound = self._subjects.proc(node)
        self._log_subject = self._subjects.proc_log(node)
        self.hosts: dict[str, Any] = {}
        self.procs: dict[str, Proc] = {}
        self.names: dict[str, str] = {}
        #: function calls running outside any process, each with a pid and mailbox of its own
        self.calls: dict[str, Any] = {}
        #: hosts of http.service entries: they run function calls only
        self._call_hosts: set[str] = set()
        #: running function calls (token -> host, bridge, the pid it was given if it needed one)
        self._lazy: dict[int, tuple[str, Any, list[str]]] = {}
        self._next_call = 0
        #: (host, entry) -> (the entry version, the host, its compiled function) for calls
        self._fns: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
        # pids never repeat on a node (the log outlives runs): a run counts up from its start time
        self._next_id = time.time_ns() // 1_000_000 - _PID_EPOCH_MS
        self._sub: Subscription | None = None
        self._publisher = Pipeline(store, self._subjects.proc_stream)
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Follow this node's deliveries from the current end of the stream."""
        stream = self._subjects.proc_stream
        head = await self.store.last_seq(stream)
        await self._publisher.start(head)
        self._sub = await self.store.subscribe_raw(stream, head + 1, self._on_raw, subject=self._inbound)
        projection = getattr(self.registry, "projection", None)
        if projection is not None:
            projection.add_listener(self._on_registry)

    def _on_registry(self, applied: Any) -> None:
        """A new version of a process.lua: its live processes that set `upgradable` get OUTDATED."""
        changed = {op.id for op in applied.ops
                   if op.op == "update" and op.after is not None and op.after.kind == "process.lua"}
        if not changed:
            return
        at = time.time()
        for proc in list(self.procs.values()):
            if proc.entry_id in changed and proc.bridge.upgradable(proc.pid):
                proc.bridge.event(proc.pid, {"kind": "pid.outdated", "from": proc.pid, "at": at,
                                             "sources": [proc.entry_id]})

    async def aclose(self) -> None:
        """Stop every process, write what is queued, stop following. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for pid in list(self.procs):
            self._kill(pid, "the node is stopping")
        await self._publisher.aclose()
        if self._sub is not None:
            await self._sub.stop()
        hosts, self.hosts = self.hosts, {}
        for host in hosts.values():
            await host.aclose()

    # -- hosts --------------------------------------------------------------------------------
    def host(self, host_id: str, *, calls: bool = False) -> Any:
        """The LuaHost of a process.host / terminal.host entry (made on first use); with ``calls``,
        also of an http.service (its handlers run there, as function calls, never processes)."""
        found = self.hosts.get(host_id)
        if found is not None and (calls or host_id not in self._call_hosts):
            return found
        entry = self.registry.get(host_id)
        if entry is None:
            raise NotFoundError(f"host {host_id} does not exist")
        if entry.kind not in HOST_KINDS and not (calls and entry.kind in CALL_HOST_KINDS):
            raise ProcessError(f"{host_id} is a {entry.kind}, not a process host (process.host or terminal.host)")
        if found is not None:
            return found
        if entry.kind in CALL_HOST_KINDS:
            self._call_hosts.add(host_id)
        found = self._host_factory(host_id, self._default_pid(host_id))
        self.hosts[host_id] = found
        return found

    def _default_pid(self, host_id: str) -> str:
        return f"{{{self.node}@{host_id}|{_DEFAULT_ID}}}"

    def _host_bridge(self, pid: str) -> Any:
        """The bridge of the host whose default pid ``pid`` is (code outside processes); None if none."""
        if not pid.endswith(f"|{_DEFAULT_ID}}}"):
            return None
        host_id = pid[pid.find("@") + 1:-len(_DEFAULT_ID) - 2]
        host = self.hosts.get(host_id)
        return host.process if host is not None and pid == self._default_pid(host_id) else None

    def terminal(self, host_id: str, stdio: Any, args: tuple[str, ...]) -> None:
        """Make the terminal host's LuaHost with the real streams and the command-line arguments."""
        if host_id not in self.hosts:
            entry = self.registry.get(host_id)
            if entry is None or entry.kind != "terminal.host":
                raise ProcessError(f"{host_id} is not a terminal.host")
            self.hosts[host_id] = self._host_factory(host_id, self._default_pid(host_id), stdio=stdio, args=args)

    def _new_pid(self, host_id: str) -> str:
        self._next_id += 1
        return f"{{{self.node}@{host_id}|0x{self._next_id:05x}}}"

    # -- spawning ------------------------------------------------------------------------------
    def spawn(self, parent: str | None, entry_id: str, host_id: str, opts: dict[str, Any], args: list[Any]) -> str:
        """Start a process of ``entry_id`` on ``host_id``; ``args`` are log data. Returns its pid.

        ``opts``: link, monitor (to ``parent``), name, context, security, messages (with_message).
        """
        entry = self._entry(entry_id, "process.lua")
        host = self.host(host_id)
        try:
            return self._start(host, entry, parent, host_id, opts=opts, args=args)
        except LuaMemoryError as exc:
            raise _out_of_memory(f"cannot start {entry_id}", host_id, host) from exc

    def _start(self, host: Any, entry: Any, parent: str | None, host_id: str, *, opts: dict[str, Any],
               args: list[Any]) -> str:
        entry_id = entry.id
        fn = _load(host, host_id, entry, f"cannot start {entry_id}")
        name = opts.get("name")
        if name is not None and name in self.names:
            raise AlreadyExistsError(f"the name {name} is already registered (to {self.names[name]})")
        if opts.get("link") and parent is not None and parent not in self.procs:
            raise ProcessError(f"cannot link {entry_id} to {parent}: only a process can link (this code runs "
                               "outside one)")
        vm = host.vm
        lua_args = [vm.to_lua(_restore(a)) for a in args]
        pid = self._new_pid(host_id)
        done: asyncio.Future[tuple[Any, str | None]] = asyncio.get_running_loop().create_future()
        bridge = host.process
        task = vm.spawn(bridge.main(fn), tuple(lua_args), lambda ok, results: self._exited(pid, ok, results))
        bridge.attach(task, pid)
        try:
            bridge.setup(task, _restore(opts.get("context")), _restore(opts.get("security")))
        except WippyError:
            bridge.kill(pid)  # it never ran
            bridge.detach(pid)
            raise
        proc = Proc(pid, entry_id, host_id, parent, bridge, done)
        self.procs[pid] = proc
        self._log(proc_records.SPAWNED, {"pid": pid, "entry": entry_id, "host": host_id, "parent": parent,
                                         "linked": bool(opts.get("link")), "monitored": bool(opts.get("monitor"))})
        if parent is not None and opts.get("link"):
            self.link(parent, pid)
        if parent is not None and opts.get("monitor"):
            self.monitor(parent, pid)
        if name is not None:
            self.register(pid, str(name), pid)
        for message in opts.get("messages") or ():
            self.send(parent, pid, message["topic"], message["args"])
        return pid

    async def call(self, entry_id: str, host_id: str, args: list[Any], *, context: Any = None,
                   security: Any = None, data: Any = None, timeout: float | None = None,
                   ) -> tuple[bool, tuple[Any, ...], str | None]:
        """Run a function.lua entry outside any process, as an HTTP handler is run.

        The call gets a pid of its own when its code first needs one (``process.pid/send/inbox/
        listen``: request/reply with processes). Coroutines it starts run on after it returns (an
        HTTP handler's background work); the pid lives until the last of them ends, and messages
        to it after that are dead letters.
        A call is not a process: no spawn or exit records. ``data`` rides on the call's task (the
        HTTP server puts the request there; see LuaVM.call). Past ``timeout`` seconds the call is stopped and
        TimeoutError raised. Returns (ok, Lua results, the pid or None if it never needed one)."""
        host, fn = self._callable(entry_id, host_id)
        bridge = host.process
        vm = host.vm
        finished: asyncio.Future[tuple[bool, tuple[Any, ...]]] = asyncio.get_running_loop().create_future()
        self._next_call += 1
        token = self._next_call
        pids: list[str] = []
        self._lazy[token] = (host_id, bridge, pids)

        def release() -> None:  # the function and the coroutines it started have ended
            del self._lazy[token]
            for pid in pids:
                self.calls.pop(pid, None)
                bridge.detach(pid)

        def done(ok: bool, results: tuple[Any, ...]) -> None:
            if not finished.done():
                finished.set_result((ok, results))

        try:
            task = vm.call(fn, tuple(vm.to_lua(_restore(a)) for a in args) if args else (), token, done=done,
                           released=release, data=data)
            if context is not None or security is not None:
                bridge.setup(task, _restore(context), _restore(security))
        except LuaMemoryError as exc:
            raise _out_of_memory(f"cannot call {entry_id}", host_id, host) from exc
        except WippyError:
            vm.kill(task)  # it never ran
            vm.forget(token)
            release()
            raise
        if timeout is None:
            ok, results = await finished
        else:
            try:
                ok, results = await asyncio.wait_for(finished, timeout)
            except TimeoutError:
                vm.kill(task)
                vm.forget(token)
                release()
                raise
        return ok, results, pids[0] if pids else None

    def call_pid(self, token: int) -> str:
        """A pid for the running function call ``token``, made when its code first needs one."""
        found = self._lazy.get(token)
        if found is None:
            raise ProcessError("this code belongs to a function call that has returned; it has no pid any more")
        host_id, bridge, pids = found
        pid = self._new_pid(host_id)
        self.calls[pid] = bridge
        pids.append(pid)
        return pid

    def _entry(self, entry_id: str, kind: str) -> Any:
        """The entry to run, of ``kind``; NotFoundError / ProcessError naming it otherwise."""
        if self._closed:
            raise ProcessError("the node is stopping; nothing new starts")
        entry = self.registry.get(entry_id)
        if entry is None:
            raise NotFoundError(f"{kind} entry {entry_id} does not exist")
        if entry.kind != kind:
            raise ProcessError(f"{entry_id} is a {entry.kind}, not a {kind}")
        return entry

    def _callable(self, entry_id: str, host_id: str) -> tuple[Any, Any]:
        """The host of a call and the compiled function of ``entry_id`` on it (cached per version)."""
        entry = self._entry(entry_id, "function.lua")
        host = self.host(host_id, calls=True)
        cached = self._fns.get((host_id, entry_id))
        if cached is not None and cached[0] is entry and cached[1] is host:  # the same version on the same host
            return host, cached[2]
        fn = _load(host, host_id, entry, f"cannot call {entry_id}")
        self._fns[(host_id, entry_id)] = (entry, host, fn)
        return host, fn

    def open_endpoint(self, host_id: str, endpoint: Any) -> str:
        """A pid for a connection the node relays (WebSocket, SSE): messages and signals to it go
        to ``endpoint.deliver(to, topic, sender, args)`` / ``endpoint.event(to, event)``. Processes
        may monitor it (``endpoint.watchers``, a set: EXIT when it closes) and link to it
        (``endpoint.links``: a linked process that fails sends it LINK_DOWN; its close is normal)."""
        pid = self._new_pid(host_id)
        self.calls[pid] = endpoint
        return pid

    def close_endpoint(self, pid: str, reason: str = "closed") -> None:
        """The relayed connection is gone: its monitors get EXIT (a normal end, ``reason`` as
        its value); messages to its pid become dead letters."""
        endpoint = self.calls.pop(pid, None)
        for watcher in sorted(getattr(endpoint, "watchers", ())):
            self._signal(watcher, pid, "exit", result={"value": reason})
        for peer in sorted(getattr(endpoint, "links", ())):  # a normal end: links just go
            if self._is_local(peer):
                self._unlink_local(peer, pid)
            else:
                self._signal(peer, pid, "unlink")

    async def settle(self, timeout: float = 2.0) -> None:
        """Let the processes started so far run until each waits for something (a message, a
        timer, I/O) or ends, or ``timeout`` seconds pass: what `start_services` waits for, so a
        service's first steps (registering its name, say) are done before the app is served."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            await asyncio.sleep(0.001)
            if not any(h.vm.busy for h in list(self.hosts.values())):
                return

    async def drop_host(self, host_id: str) -> None:
        """Close the Lua host of an http.service that is gone (its calls end)."""
        if host_id in self._call_hosts:
            self._call_hosts.discard(host_id)
            host = self.hosts.pop(host_id, None)
            self._fns = {k: v for k, v in self._fns.items() if k[0] != host_id}
            if host is not None:
                await host.aclose()

    async def exec(self, parent: str | None, entry_id: str, host_id: str, opts: dict[str, Any],
                   args: list[Any]) -> tuple[Any, str | None, str | None]:
        """Run a process to its end: (result, None, None) or (None, error message, error kind)."""
        pid = self.spawn(parent, entry_id, host_id, opts, args)
        proc = self.procs[pid]
        value, error = await asyncio.shield(proc.done)
        return value, error, proc.kind

    def wait(self, pid: str) -> asyncio.Future[tuple[Any, str | None]]:
        """The (result, error) of a live local process, when it ends (the result is log data)."""
        proc = self.procs.get(pid)
        if proc is None:
            raise NotFoundError(f"no process {pid} on this node")
        return proc.done

    def prepare_upgrade(self, pid: str, entry_id: str | None, args: list[Any]) -> None:
        """Check and compile the code ``pid`` upgrades to; it starts when the old `main` has ended."""
        proc = self.procs.get(pid)
        if proc is None:
            raise NotFoundError(f"no process {pid} on this node")
        target = entry_id or proc.entry_id
        entry = self.registry.get(target)
        if entry is None:
            raise NotFoundError(f"process.upgrade: entry {target} does not exist")
        if entry.kind != "process.lua":
            raise ProcessError(f"process.upgrade: {target} is a {entry.kind}, not a process.lua")
        fn = _load(self.host(proc.host_id), proc.host_id, entry, f"process.upgrade: cannot load {target}")
        proc.upgrade = (target, fn, args)

    def _upgraded(self, proc: Proc) -> None:
        """Start the code a process upgraded to, on its pid, mailbox and contexts."""
        assert proc.upgrade is not None
        entry_id, fn, args = proc.upgrade
        proc.upgrade = None
        host = self.hosts[proc.host_id]
        vm = host.vm
        pid = proc.pid
        task = vm.spawn(proc.bridge.main(fn), tuple(vm.to_lua(_restore(a)) for a in args),
                        lambda ok, results: self._exited(pid, ok, results))
        proc.bridge.reattach(task, pid)
        self._log(proc_records.UPGRADED, {"pid": pid, "from": proc.entry_id, "entry": entry_id})
        proc.entry_id = entry_id

    def _exited(self, pid: str, ok: bool, results: tuple[Any, ...]) -> None:
        proc = self.procs.get(pid)
        if proc is None or proc.ended:
            return
        if proc.upgrade is not None and ok and proc.bridge.upgrading(results):
            self._upgraded(proc)
            return
        value, error, proc.kind, proc.trace = proc.bridge.outcome(ok, results)
        self._end(proc, value, error, proc.kind)

    def _end(self, proc: Proc, value: Any, error: str | None, kind: str | None = None) -> None:
        proc.ended = True
        pid = proc.pid
        self.procs.pop(pid, None)
        proc.bridge.detach(pid)
        for name in sorted(proc.names):
            if self.names.get(name) == pid:
                del self.names[name]
                self._log(proc_records.UNREGISTERED, {"name": name, "pid": pid})
        logged = self._fit(value, f"the exit value of {pid}")
        self._log(proc_records.EXITED, {"pid": pid, "entry": proc.entry_id, "ok": error is None,
                                        "result": logged if error is None else None, "error": error, "kind": kind})
        result = {"value": logged} if error is None else {"error": error}
        for watcher in proc.watchers:
            self._signal(watcher, pid, "exit", result=result)
        for peer in proc.links:  # the peer drops the link when LINK_DOWN reaches it (unless it unlinked first)
            if error is not None:
                self._signal(peer, pid, "link_down", result=result)
            elif self._is_local(peer):
                self._unlink_local(peer, pid)
            else:
                self._signal(peer, pid, "unlink")
        if not proc.done.done():
            proc.done.set_result((value, error))

    def _fit(self, value: Any, what: str) -> Any:
        """``value``, or a note in its place when it is too large for a log record."""
        size = len(orjson.dumps(value))
        if size + _ENVELOPE <= self.store.max_payload:
            return value
        return f"<{what}: {size} bytes, more than a log record holds>"

    def _kill(self, pid: str, error: str) -> None:
        proc = self.procs.get(pid)
        if proc is None or proc.ended:
            return
        proc.bridge.kill(pid)
        proc.kind = "CANCELED"
        self._end(proc, None, error, kind="CANCELED")

    # -- messages --------------------------------------------------------------------------------
    def resolve(self, dest: str) -> str:
        """A pid, or the pid a local name is registered to."""
        if dest.startswith("{"):
            self._subject_for(dest)  # a ProcessError for a pid no node can have
            return dest
        pid = self.names.get(dest)
        if pid is None:
            raise NotFoundError(f"no process is registered as {dest}")
        return pid

    def _subject_for(self, pid: str) -> str:
        node = proc_records.node_of(pid) or self.node
        try:
            return self._subjects.proc(node)
        except ConfigError as exc:
            raise ProcessError(f"{pid} is not a valid pid: {exc}") from exc

    def send(self, sender: str | None, dest: str, topic: str, args: list[Any]) -> None:
        """Send a message (``args``: log data) to a pid or a name registered on this node."""
        to = self.resolve(dest)
        subject = self._subject_for(to)
        try:
            size = len(orjson.dumps(args))
        except TypeError as exc:
            raise ProcessError(f"process.send: the payload is not JSON data: {exc}") from exc
        limit = self.store.max_payload - _ENVELOPE
        if size > limit:
            raise PayloadTooLargeError(f"process.send: the message to {dest} is {size} bytes; a message may be "
                                       f"at most {limit} bytes (send a reference to large data instead)")
        body = {"to": to, "from": sender, "topic": topic, "payload": args, "bytes": size}
        self._emit(subject, Record(type=proc_records.MESSAGE, body=body, node=self.node))

    def _signal(self, to: str, sender: str, signal: str, *, result: Any = None, reason: str | None = None) -> None:
        body = {"to": to, "from": sender, "signal": signal, "result": result, "reason": reason}
        try:
            subject = self._subject_for(to)
        except ProcessError:
            log.warning("signal %s to %s dropped: not a valid pid", signal, to)
            return
        self._emit(subject, Record(type=proc_records.SIGNAL, body=body, node=self.node))

    def _log(self, type_name: str, body: dict[str, Any]) -> None:
        self._emit(self._log_subject, Record(type=type_name, body=body, node=self.node))

    def _emit(self, subject: str, record: Record) -> None:
        data = record.encode()
        if len(data) > self.store.max_payload:  # never queue what the server refuses: it would block the rest
            log.error("%s record of %d bytes dropped: larger than the log's maximum", record.type, len(data))
            return
        self._publisher.emit(subject, data)

    def _on_raw(self, seq: int, data: bytes, _pending: int) -> None:
        try:
            record = Record.decode(data)
        except RecordError as exc:
            log.error("proc record %d skipped: %s", seq, exc)
            return
        body = record.body
        to = body.get("to")
        if not isinstance(to, str):
            return
        if record.type == proc_records.MESSAGE:
            self._deliver(seq, len(data), to, body)
        elif record.type == proc_records.SIGNAL:
            self._on_signal(record, to, body)

    def _bridge_of(self, pid: str) -> Any:
        proc = self.procs.get(pid)
        if proc is not None:
            return proc.bridge
        call = self.calls.get(pid)
        return call if call is not None else self._host_bridge(pid)

    def _deliver(self, seq: int, size: int, to: str, body: dict[str, Any]) -> None:
        bridge = self._bridge_of(to)
        status = "gone"
        if bridge is not None:
            args = body.get("payload") or []
            status = bridge.deliver(to, str(body.get("topic")), body.get("from"), [_restore(a) for a in args])
        if status != "ok":
            self._log(proc_records.DEAD_LETTER, {"to": to, "from": body.get("from"), "topic": body.get("topic"),
                                                 "reason": _DEAD_REASONS.get(status, status), "bytes": size,
                                                 "seq": seq})

    def _on_signal(self, record: Record, to: str, body: dict[str, Any]) -> None:
        sender = str(body.get("from"))
        signal = body.get("signal")
        at = record.at / 1e9
        if signal in ("monitor", "unmonitor", "link", "unlink"):  # from another node
            getattr(self, f"_{signal}_remote")(sender, to)
            return
        bridge = self._bridge_of(to)
        if bridge is None:
            return
        result = _restore(body.get("result"))
        if signal == "exit":
            bridge.event(to, {"kind": "pid.exit", "from": sender, "at": at, "result": result})
        elif signal == "link_down":
            proc = self.procs.get(to)
            if proc is None:
                links = getattr(bridge, "links", None)  # a relayed connection: it closes
                if links is not None and sender in links:
                    links.discard(sender)
                    bridge.event(to, {"kind": "pid.link.down", "from": sender, "at": at, "result": result})
                return
            if sender not in proc.links:  # unlinked meanwhile
                return
            proc.links = _without(proc.links, sender)
            if bridge.traps_links(to):
                bridge.event(to, {"kind": "pid.link.down", "from": sender, "at": at, "result": result})
            else:
                failed = (result or {}).get("error")
                self._kill(to, f"linked process {sender} failed: {failed}")
        elif signal == "cancel":
            bridge.event(to, {"kind": "pid.cancel", "from": sender, "at": at, "reason": body.get("reason")})
        elif signal == "terminate" and to in self.procs:
            self._kill(to, f"terminated by {sender}")

    # -- signals -----------------------------------------------------------------------------------
    def _is_local(self, pid: str) -> bool:
        return (proc_records.node_of(pid) or self.node) == self.node

    def terminate(self, sender: str, dest: str) -> None:
        self._signal(self.resolve(dest), sender, "terminate")

    def cancel(self, sender: str, dest: str, reason: str | None) -> None:
        self._signal(self.resolve(dest), sender, "cancel", reason=reason)

    def monitor(self, sender: str, dest: str) -> None:
        target = self.resolve(dest)
        self._log(proc_records.MONITORED, {"pid": sender, "target": target})
        if self._is_local(target):
            self._monitor_remote(sender, target)
        else:
            self._signal(target, sender, "monitor")

    def _monitor_remote(self, watcher: str, target: str) -> None:
        proc = self.procs.get(target)
        watchers = getattr(self.calls.get(target), "watchers", None) if proc is None else None
        if watchers is not None:  # a relayed connection
            watchers.add(watcher)
            return
        if proc is None:  # already gone: the watcher hears so at once, as in OTP
            self._signal(watcher, target, "exit", result={"error": "no such process"})
            return
        proc.watchers = _with(proc.watchers, watcher)

    def unmonitor(self, sender: str, dest: str) -> None:
        target = self.resolve(dest)
        self._log(proc_records.DEMONITORED, {"pid": sender, "target": target})
        if self._is_local(target):
            self._unmonitor_remote(sender, target)
        else:
            self._signal(target, sender, "unmonitor")

    def _unmonitor_remote(self, watcher: str, target: str) -> None:
        proc = self.procs.get(target)
        if proc is not None:
            proc.watchers = _without(proc.watchers, watcher)
        else:
            getattr(self.calls.get(target), "watchers", set()).discard(watcher)

    def link(self, sender: str, dest: str) -> None:
        target = self.resolve(dest)
        if target == sender:
            raise ProcessError("process.link: a process cannot link to itself")
        if sender not in self.procs:
            raise ProcessError("process.link: only a process can link (this code runs outside one)")
        self._log(proc_records.LINKED, {"pid": sender, "peer": target})
        self._link_remote(target, sender)  # our side (sender is local)
        if self._is_local(target):
            self._link_remote(sender, target)
        else:
            self._signal(target, sender, "link")

    def _link_remote(self, peer: str, pid: str) -> None:
        """``pid`` (local) learns it is linked to ``peer``; a dead ``pid`` answers with LINK_DOWN."""
        proc = self.procs.get(pid)
        links = getattr(self.calls.get(pid), "links", None) if proc is None else None
        if links is not None:  # a relayed connection
            links.add(peer)
            return
        if proc is None:
            self._signal(peer, pid, "link_down", result={"error": "no such process"})
            return
        proc.links = _with(proc.links, peer)

    def unlink(self, sender: str, dest: str) -> None:
        target = self.resolve(dest)
        self._log(proc_records.UNLINKED, {"pid": sender, "peer": target})
        self._unlink_local(sender, target)
        if self._is_local(target):
            self._unlink_local(target, sender)
        else:
            self._signal(target, sender, "unlink")

    def _unlink_remote(self, peer: str, pid: str) -> None:
        self._unlink_local(pid, peer)

    def _unlink_local(self, pid: str, peer: str) -> None:
        proc = self.procs.get(pid)
        if proc is not None:
            proc.links = _without(proc.links, peer)
        else:
            getattr(self.calls.get(pid), "links", set()).discard(peer)

    # -- names ---------------------------------------------------------------------------------------
    def register(self, sender: str, name: str, pid: str) -> None:
        holder = self.names.get(name)
        if holder is not None and holder != pid:
            raise AlreadyExistsError(f"the name {name} is already registered (to {holder})")
        proc = self.procs.get(pid)
        if proc is None:
            raise NotFoundError(f"no live process {pid} on this node to register as {name}")
        self.names[name] = pid
        proc.names = _with(proc.names, name)
        self._log(proc_records.REGISTERED, {"name": name, "pid": pid})

    def lookup(self, name: str) -> str:
        pid = self.names.get(name)
        if pid is None:
            raise NotFoundError(f"no process is registered as {name}")
        return pid

    def unregister(self, sender: str, name: str) -> bool:
        pid = self.names.pop(name, None)
        if pid is None:
            return False
        proc = self.procs.get(pid)
        if proc is not None:
            proc.names = _without(proc.names, name)
        self._log(proc_records.UNREGISTERED, {"name": name, "pid": pid})
        return True

    async def flush(self) -> None:
        """Return once every record queued so far is acknowledged by JetStream."""
        await self._publisher.flush()

    @property
    def unpublished(self) -> int:
        """Records queued and not yet handed to the NATS connection (their acks are pipelined)."""
        return self._publisher.queued


def _load(host: Any, host_id: str, entry: Any, what: str) -> Any:
    """The compiled entry point of ``entry`` on ``host``; a ProcessError starting with ``what``."""
    try:
        return host.callable(entry)
    except LuaCodeError as exc:
        raise ProcessError(f"{what}: {exc}") from exc
    except LuaMemoryError as exc:
        raise _out_of_memory(what, host_id, host) from exc


def _out_of_memory(what: str, host_id: str, host: Any) -> ProcessError:
    return ProcessError(f"{what}: host {host_id} has reached its Lua memory limit "
                        f"({host.vm.settings.max_memory // (1024 * 1024)} MB; set host.max_memory on it, "
                        "or spread processes over more hosts)")


def _restore(value: Any) -> Any:
    return decode_binary(value) if value is not None else None


def _with(items: AbstractSet[str], item: str) -> set[str]:
    out = items if isinstance(items, set) else set(items)
    out.add(item)
    return out


def _without(items: AbstractSet[str], item: str) -> AbstractSet[str]:
    if isinstance(items, set):
        items.discard(item)
    return items
