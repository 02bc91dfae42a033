"""The `process` global of one LuaHost (the Lua side is lua/process.lua).

The host's processes are tasks of its VM. What crosses between processes (messages, spawn
arguments, exit results) is plain data, because it goes through the log and may go to another VM
or node: Lua values become JSON-ready Python data here (binary strings as ``{"$bytes": base64}``),
and back on delivery. Functions, userdata and tables JSON cannot hold are refused with INVALID.

``runtime`` is the node's process runtime (services/_processes.py), structurally typed by
``ProcessRuntimeLike``; without one (a host built for plain function calls) every process call
but ``pid`` raises UNAVAILABLE.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, Protocol

from wippy.core import WippyError

from ._binary import Raw
from ._mod_json import JsonValueError, lua_to_json
from ._vm import _source

_BYTES = "$bytes"


class ProcessRuntimeLike(Protocol):
    """What a host needs from the node's process runtime (every call is from the event loop)."""

    def send(self, sender: str, dest: str, topic: str, args: list[Any]) -> None: ...
    def spawn(self, parent: str, entry_id: str, host_id: str, opts: dict[str, Any], args: list[Any]) -> str: ...
    async def exec(self, parent: str, entry_id: str, host_id: str, opts: dict[str, Any],
                   args: list[Any]) -> tuple[Any, str | None]: ...
    def terminate(self, sender: str, dest: str) -> None: ...
    def cancel(self, sender: str, dest: str, reason: str | None) -> None: ...
    def monitor(self, sender: str, dest: str) -> None: ...
    def unmonitor(self, sender: str, dest: str) -> None: ...
    def link(self, sender: str, dest: str) -> None: ...
    def unlink(self, sender: str, dest: str) -> None: ...
    def register(self, sender: str, name: str, pid: str) -> None: ...
    def lookup(self, name: str) -> str: ...
    def unregister(self, sender: str, name: str) -> bool: ...


def encode_binary(raw: Raw) -> dict[str, str]:
    return {_BYTES: base64.b64encode(raw.data).decode("ascii")}


def decode_binary(value: Any) -> Any:
    """JSON data from the log with ``{"$bytes": ...}`` turned back into bytes (Lua strings)."""
    if isinstance(value, dict):
        if len(value) == 1 and _BYTES in value and isinstance(value[_BYTES], str):
            return base64.b64decode(value[_BYTES])
        return {k: decode_binary(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_binary(v) for v in value]
    return value


class ProcessBridge:
    """Builds the `process` global for one host and delivers into its processes' mailboxes."""

    def __init__(self, host: Any, runtime: ProcessRuntimeLike | None, default_pid: str, mailbox_limit: int) -> None:
        self.host = host
        self.runtime = runtime
        vm = host.vm
        self.vm = vm
        self._to_python = lua_to_json(host, binary=encode_binary)
        bridge = vm.rt.table_from({
            "send": self._send, "spawn": self._spawn, "exec": vm.asyncify(self._exec),
            "terminate": self._targeted("terminate"), "monitor": self._targeted("monitor"),
            "unmonitor": self._targeted("unmonitor"), "link": self._targeted("link"),
            "unlink": self._targeted("unlink"), "cancel": self._cancel,
            "register": self._register, "lookup": self._lookup, "unregister": self._unregister,
        })
        side = vm.rt.execute(_source("process.lua"), vm.S, vm.channel, vm.errors, host.readonly, host.payload,
                             host.security, bridge, default_pid, mailbox_limit)
        # read once here: reading Lua table fields inside callbacks is unsafe (see _vm)
        self.public = side.public
        self._attach = side.attach
        self._detach = side.detach
        self._deliver = side.deliver
        self._event = side.event
        self._options = side.options
        self._task = side.task
        self._setup = side.setup
        self._kill = side.kill

    # -- from the runtime ------------------------------------------------------------------------
    def attach(self, task: Any, pid: str) -> None:
        self._attach(task, pid)

    def detach(self, pid: str) -> None:
        self._detach(pid)

    def setup(self, task: Any, context: Any, security: dict[str, Any] | None) -> None:
        """Context values and security context for a new process; WippyError for an unknown policy."""
        err = self._setup(task, self.vm.to_lua(context) if context is not None else None,
                          self.vm.to_lua(security) if security is not None else None)
        if err is not None:
            raise WippyError(f"process security: {self.vm.tostring(err)}")

    def kill(self, pid: str) -> None:
        self._kill(pid)

    def deliver(self, to: str, topic: str, sender: str | None, args: list[Any]) -> str:
        """"ok", "gone" (no such process here) or "full" (its mailbox is at its limit)."""
        fields: dict[Any, Any] = {i + 1: self.vm.to_lua(a) for i, a in enumerate(args)}
        fields["n"] = len(args)
        packed = self.vm.rt.table_from(fields)
        result = self._deliver(to, topic, sender, packed)
        self.vm.schedule_pump()
        return str(result)

    def event(self, to: str, event: dict[str, Any]) -> bool:
        delivered = bool(self._event(to, self.vm.to_lua(event)))
        self.vm.schedule_pump()
        return delivered

    def traps_links(self, pid: str) -> bool:
        options = self._options(pid)
        return bool(options is not None and self.vm.get(options, "trap_links"))

    def task_of(self, pid: str) -> Any:
        return self._task(pid)

    def to_python(self, value: Any, what: str) -> Any:
        """A Lua value as JSON-ready data; WippyError (INVALID) naming ``what`` when it cannot be."""
        try:
            return self._to_python(value)
        except JsonValueError as exc:
            raise WippyError(f"{what}: {exc}") from exc

    def args_of(self, packed: Any, what: str) -> list[Any]:
        """The values of a ``table.pack`` as data (nil stays None)."""
        n = int(self.vm.get(packed, "n") or 0)
        return [self.to_python(self.vm.get(packed, i), what) for i in range(1, n + 1)]

    # -- from Lua ---------------------------------------------------------------------------------
    def _runtime(self, fn: str) -> ProcessRuntimeLike:
        if self.runtime is None:
            raise _Unavailable(f"process.{fn} is not available here: this code runs outside a process host")
        return self.runtime

    def _call(self, fn: str, body: Callable[[ProcessRuntimeLike], Any]) -> Any:
        try:
            return body(self._runtime(fn))
        except _Unavailable as exc:
            return None, self.vm.error("UNAVAILABLE", str(exc))
        except WippyError as exc:
            return None, self.vm.error(exc.kind, str(exc), retryable=exc.retryable)

    def _send(self, sender: str, dest: str, topic: str, packed: Any) -> Any:
        def body(rt: ProcessRuntimeLike) -> Any:
            rt.send(sender, dest, topic, self.args_of(packed, "process.send"))
            return True
        return self._call("send", body)

    def _spawn(self, parent: str, entry_id: str, host_id: str, opts: Any, packed: Any) -> Any:
        def body(rt: ProcessRuntimeLike) -> Any:
            options = self._spawn_options(opts)
            return rt.spawn(parent, entry_id, host_id, options, self.args_of(packed, "process.spawn"))
        return self._call("spawn", body)

    def _exec(self, parent: str, entry_id: str, host_id: str, opts: Any, packed: Any) -> Any:
        def body(rt: ProcessRuntimeLike) -> Any:
            options = self._spawn_options(opts)
            return self.vm.pending(rt.exec(parent, entry_id, host_id, options, self.args_of(packed, "process.exec")))
        return self._call("exec", body)

    def _spawn_options(self, opts: Any) -> dict[str, Any]:
        raw = self.vm.from_lua(opts) if opts is not None else {}
        options: dict[str, Any] = raw if isinstance(raw, dict) else {}
        messages = self.vm.get(opts, "messages") if opts is not None else None
        if messages is not None:  # with_message payloads: converted with binary strings kept
            listed = sorted(messages.items(), key=lambda kv: int(kv[0]))  # iteration is safe here (see _vm)
            options["messages"] = [
                {"topic": str(self.vm.get(m, "topic")), "args": self.args_of(self.vm.get(m, "args"), "with_message")}
                for _i, m in listed
            ]
        context = self.vm.get(opts, "context") if opts is not None else None
        if context is not None:
            options["context"] = self.to_python(context, "process.with_context")
        return options

    def _targeted(self, fn: str) -> Callable[..., Any]:
        def call(sender: str, dest: str) -> Any:
            def body(rt: ProcessRuntimeLike) -> Any:
                getattr(rt, fn)(sender, dest)
                return True
            return self._call(fn, body)
        return call

    def _cancel(self, sender: str, dest: str, reason: str | None = None) -> Any:
        def body(rt: ProcessRuntimeLike) -> Any:
            rt.cancel(sender, dest, reason)
            return True
        return self._call("cancel", body)

    def _register(self, sender: str, name: str, pid: str) -> Any:
        def body(rt: ProcessRuntimeLike) -> Any:
            rt.register(sender, name, pid)
            return True
        return self._call("registry.register", body)

    def _lookup(self, name: str) -> Any:
        return self._call("registry.lookup", lambda rt: rt.lookup(name))

    def _unregister(self, sender: str, name: str) -> Any:
        def body(rt: ProcessRuntimeLike) -> Any:
            return rt.unregister(sender, name)
        result = self._call("registry.unregister", body)
        return False if isinstance(result, tuple) else result


class _Unavailable(Exception):
    pass
