"""The `process` global of one LuaHost (the Lua side is lua/process.lua).

The host's processes are tasks of its VM. What crosses between processes (messages, spawn
arguments, exit results) is plain data, because it goes through the log and may go to another VM
or node: Lua values become JSON-ready Python data here, and back on delivery (``decode_binary``).
Functions, userdata and tables JSON cannot hold are refused with INVALID.

Two encodings keep that data lossless. A binary (non-UTF-8) string becomes ``{"$bytes": base64}``;
so that a user's own table can never be mistaken for one, a table key starting with ``$`` is
written with one more ``$`` (``{"$x": 1}`` is ``{"$$x": 1}`` on the log).

``runtime`` is the node's process runtime (services/_processes.py), structurally typed by
``ProcessRuntimeLike``; without one (a host built for plain function calls) every process call
but ``pid`` raises UNAVAILABLE.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import orjson

from wippy.core import WippyError

from ._binary import Raw, _bridge, host_copy
from ._mod_json import JsonValueError, lua_to_json
from ._vm import _source

_BYTES = "$bytes"


class ProcessRuntimeLike(Protocol):
    """What a host needs from the node's process runtime (every call is from the event loop)."""

    def send(self, sender: str, dest: str, topic: str, args: list[Any]) -> None: ...
    def prepare_upgrade(self, pid: str, entry_id: str | None, args: list[Any]) -> None: ...
    def spawn(self, parent: str, entry_id: str, host_id: str, opts: dict[str, Any], args: list[Any]) -> str: ...
    async def exec(self, parent: str, entry_id: str, host_id: str, opts: dict[str, Any],
                   args: list[Any]) -> tuple[Any, str | None, str | None]: ...
    def terminate(self, sender: str, dest: str) -> None: ...
    def cancel(self, sender: str, dest: str, reason: str | None) -> None: ...
    def monitor(self, sender: str, dest: str) -> None: ...
    def unmonitor(self, sender: str, dest: str) -> None: ...
    def link(self, sender: str, dest: str) -> None: ...
    def unlink(self, sender: str, dest: str) -> None: ...
    def register(self, sender: str, name: str, pid: str) -> None: ...
    def lookup(self, name: str) -> str: ...
    def unregister(self, sender: str, name: str) -> bool: ...
    def call_pid(self, token: int) -> str: ...


class _Bytes(dict[str, str]):
    """``{"$bytes": base64}`` made for a binary string (so escaping leaves it alone)."""


def encode_binary(raw: Raw) -> dict[str, str]:
    return _Bytes({_BYTES: base64.b64encode(raw.data).decode("ascii")})


def _escape_keys(value: Any) -> Any:
    """User table keys starting with ``$`` get one more ``$`` (see the module docstring)."""
    if isinstance(value, dict):
        if type(value) is _Bytes:
            return value
        return {("$" + k if k.startswith("$") else k): _escape_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape_keys(v) for v in value]
    return value


def decode_binary(value: Any) -> Any:
    """Data from the log as Python values: ``{"$bytes": ...}`` as bytes, ``$$`` keys unescaped."""
    if isinstance(value, dict):
        if len(value) == 1:
            encoded = value.get(_BYTES)
            if isinstance(encoded, str):
                try:
                    return base64.b64decode(encoded, validate=True)
                except binascii.Error:
                    pass  # not made by encode_binary: an ordinary value
        return {(k[1:] if k.startswith("$$") else k): decode_binary(v) for k, v in value.items()}
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
            "upgrade": self._upgrade, "call_pid": self._call_pid,
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
        self._reattach = side.reattach
        self._main = side.main
        # Build the binary-string helpers now, outside any task: lupa binds a Lua object made
        # during a call from a task to that task's coroutine, and a cached helper bound to a
        # coroutine that has since ended crashes the interpreter when used.
        _bridge(host)

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
            raise _Invalid(f"process security: {self.vm.tostring(err)}")

    def reattach(self, task: Any, pid: str) -> None:
        """Make ``task`` (upgraded code) the main task of the live process ``pid``."""
        self._reattach(task, pid)

    def upgradable(self, pid: str) -> bool:
        options = self._options(pid)
        return bool(options is not None and self.vm.get(options, "upgradable"))

    def upgrading(self, results: tuple[Any, ...]) -> bool:
        """Whether a task's results say its `main` ended by calling process.upgrade."""
        if not results:
            return False
        returned, failure = self._fields(results[0], (1, 2))
        if returned is not False or failure is None:
            return False
        (flag,) = self._fields(failure, ("upgrade",))
        return flag is True

    def kill(self, pid: str) -> None:
        self._kill(pid)

    def main(self, fn: Any) -> Any:
        """The function a process's task runs: ``fn``, its outcome packed for ``outcome``."""
        return self._main(fn)

    def outcome(self, ok: bool, results: tuple[Any, ...]) -> tuple[Any, str | None, str | None, str]:
        """How a process ended, from its task's results: (exit value as log data, error message or
        None, error kind or None, Lua traceback). A 2nd return value that is not nil is an error."""
        if not ok:  # the scheduler stopped it (its CPU budget): a message, nothing else
            return None, self._text(results[0] if results else None), None, ""
        returned, value, err = self._fields(results[0], (1, 2, 3))
        if returned:
            if err is None:
                try:
                    return self.to_python(value, "exit value"), None, None, ""
                except WippyError:  # a function or the like: the exit value is its description
                    return self._text(value), None, None, ""
            return None, self._text(err), self.error_kind(err), ""
        err, trace = self._fields(value, ("error", "trace"))
        return None, self._text(err), self.error_kind(err), self._text(trace)

    def text(self, value: Any) -> str:
        """A Lua error value (string, error object, binary string) as a message."""
        return self._text(value)

    def _text(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, Raw):
            return value.text()
        try:
            return str(self.vm.tostring(value))
        except UnicodeDecodeError:
            return "(an error whose message is binary data)"

    def deliver(self, to: str, topic: str, sender: str | None, args: list[Any]) -> str:
        """"ok", or why not: "gone" (no such process here), "full" (its mailbox is at its limit), "closed"."""
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
        """A Lua value as log data; WippyError (INVALID) naming ``what`` when it cannot be."""
        try:
            data = self._to_python(value)
        except JsonValueError as exc:
            raise _Invalid(f"{what}: {exc}") from exc
        if isinstance(data, dict | list) and b'"$' in orjson.dumps(data):  # rare: walk only then
            data = _escape_keys(data)
        return data

    def args_of(self, packed: Any, what: str) -> list[Any]:
        """The values of a ``table.pack`` as data (nil stays None)."""
        n = int(self.vm.get(packed, "n") or 0)
        return [self.to_python(v, what) for v in self._fields(packed, range(1, n + 1))]

    def _fields(self, table: Any, keys: Sequence[Any]) -> list[Any]:
        """``table[k]`` for each key, binary strings as ``Raw`` (lupa cannot hand them over as text)."""
        get = self.vm.get
        try:
            return [get(table, k) for k in keys]
        except UnicodeDecodeError:
            copy = host_copy(self.host, table)
            return [get(copy, k) for k in keys]

    def error_kind(self, err: Any) -> str | None:
        """The kind of a Lua error object; None for anything else (a string)."""
        if self.vm._is_error(err):
            return str(self.vm.get(err, "_kind"))
        return None

    # -- from Lua ---------------------------------------------------------------------------------
    def _call_pid(self, token: int) -> str:
        """The pid of a function call that first needs one (ProcessRuntime.call)."""
        return self._runtime("pid").call_pid(int(token))

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
        async def run(rt: ProcessRuntimeLike, options: dict[str, Any], args: list[Any]) -> tuple[Any, ...]:
            value, error, kind = await rt.exec(parent, entry_id, host_id, options, args)
            if error is not None:
                return None, self.vm.error(kind or "UNKNOWN", error)
            return (decode_binary(value),)

        def body(rt: ProcessRuntimeLike) -> Any:
            return self.vm.pending(run(rt, self._spawn_options(opts), self.args_of(packed, "process.exec")))
        return self._call("exec", body)

    def _spawn_options(self, opts: Any) -> dict[str, Any]:
        """The spawner's options as data: link, monitor, name, context, security, messages."""
        if opts is None:
            return {}
        get = self.vm.get
        options: dict[str, Any] = {"link": bool(get(opts, "link")), "monitor": bool(get(opts, "monitor"))}
        name = get(opts, "name")
        if name is not None:
            options["name"] = str(name)
        security = get(opts, "security")
        if security is not None:
            options["security"] = self.to_python(security, "process security")
        context = get(opts, "context")
        if context is not None:
            options["context"] = self.to_python(context, "process.with_context")
        messages = get(opts, "messages")
        if messages is not None:  # with_message payloads: converted with binary strings kept
            listed = sorted(messages.items(), key=lambda kv: int(kv[0]))  # iteration is safe here (see _vm)
            options["messages"] = [
                {"topic": str(get(m, "topic")), "args": self.args_of(get(m, "args"), "with_message")}
                for _i, m in listed
            ]
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

    def _upgrade(self, pid: str, entry_id: str | None, packed: Any) -> Any:
        def body(rt: ProcessRuntimeLike) -> Any:
            rt.prepare_upgrade(pid, entry_id, self.args_of(packed, "process.upgrade"))
            return True
        return self._call("upgrade", body)

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


class _Invalid(WippyError):
    kind = "INVALID"
