"""The terminal host: runs one process.lua entry with stdin/stdout/stderr (`wippy run -x`).

The process gets a PID on the app's terminal.host, the `io` module bound to the real streams and
its command-line arguments. Its result is the exit code: an integer return is the code, nothing
is 0, an error (raised or returned as the second value) is printed with its Lua location and
gives 1.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from wippy.core import ConfigError, Entry, NotFoundError, evaluate_expr
from wippy.lua_stdlib import HostContext, LuaCodeError, LuaHost, LuaSettings, Stdio

_pids = itertools.count(1)


def _expr_evaluator() -> Any:
    """The expr-lang evaluator (security.policy.expr needs it)."""
    return evaluate_expr


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    short: str
    entry: str


def commands(entries: Mapping[str, Entry]) -> list[Command]:
    """Process entries that declare ``meta.command`` (what ``wippy run <command>`` runs)."""
    out = []
    for e in entries.values():
        cmd = e.meta.get("command")
        if e.kind == "process.lua" and isinstance(cmd, dict) and isinstance(cmd.get("name"), str):
            out.append(Command(cmd["name"], str(cmd.get("short") or ""), e.id))
    return sorted(out, key=lambda c: c.name)


def find_command(entries: Mapping[str, Entry], name: str) -> Command:
    for c in commands(entries):
        if c.name == name:
            return c
    known = ", ".join(c.name for c in commands(entries)) or "none"
    raise NotFoundError(f"no command {name!r} in this app (commands: {known}; see `wippy run list`)")


def terminal_host(entries: Mapping[str, Entry]) -> Entry:
    hosts = sorted((e for e in entries.values() if e.kind == "terminal.host"), key=lambda e: e.id)
    if not hosts:
        raise ConfigError("this app has no terminal.host entry; `wippy run -x` runs processes on one")
    return hosts[0]


def _command_name(entry: Any) -> str | None:
    command = entry.meta.get("command")
    name = command.get("name") if isinstance(command, dict) else None
    return name if isinstance(name, str) else None


async def run_terminal_process(
    registry: Any,
    node: str,
    entry_id: str,
    args: Sequence[str],
    *,
    settings: LuaSettings | None = None,
    strict: bool = False,
    stores: Any = None,
    env: Any = None,
    telemetry: Any = None,
    processes: Any = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run a process.lua entry to completion on the terminal host; returns the exit code.

    With the node's ``processes`` runtime the entry runs as a real process (it can spawn, send and
    receive); without one, on a private host where only ``process.pid`` works.
    """
    err_stream = stderr or sys.stderr
    entries = registry.current()
    entry = entries.get(entry_id)
    if entry is None:
        hint = ""
        if ":" not in entry_id:  # `-x` takes namespace:entry; suggest what the user may have meant
            named = sorted(eid for eid, e in entries.items() if e.kind == "process.lua"
                           and (eid.partition(":")[2] == entry_id or _command_name(e) == entry_id))
            hint = " (`-x` takes namespace:entry"
            hint += f"; did you mean {' or '.join(named)}, or `wippy run {entry_id}`?)" if named else ")"
        raise NotFoundError(f"entry {entry_id} does not exist{hint}")
    if entry.kind != "process.lua":
        raise ConfigError(f"{entry_id} is a {entry.kind}; `wippy run -x` runs process.lua entries")
    host_entry = terminal_host(entries)
    stdio = Stdio(stdin or sys.stdin, stdout or sys.stdout, err_stream)
    if processes is not None:
        try:
            return await _run_as_process(processes, host_entry.id, entry_id, args, stdio)
        finally:
            stdio.stdout.flush()
    pid = f"{{{node}@{host_entry.id}|0x{next(_pids):05x}}}"
    host = LuaHost(HostContext(registry=registry, node=node, pid=pid, settings=settings or LuaSettings(),
                               stdio=stdio, args=tuple(args), strict=strict, stores=stores,
                               audit=registry.record_denied, expr=_expr_evaluator(), env=env,
                               telemetry=telemetry))
    try:
        try:
            fn = host.callable(entry)
        except LuaCodeError as exc:
            err_stream.write(f"error: {exc}\n")
            return 1
        ok, results = await host.vm.run(fn, *args)
        if not ok:
            message = str(results[0]) if results else "unknown error"
            trace = str(results[1]) if len(results) > 1 and results[1] else ""
            return _exit_code(entry_id, None, message, trace, err_stream)
        value = results[0] if results else None
        failure = results[1] if len(results) > 1 else None
        return _exit_code(entry_id, value, None if failure is None else str(failure), "", err_stream)
    finally:
        stdio.stdout.flush()
        await host.aclose()


async def _run_as_process(processes: Any, host_id: str, entry_id: str, args: Sequence[str], stdio: Stdio) -> int:
    processes.terminal(host_id, stdio, tuple(args))
    try:
        pid = processes.spawn(None, entry_id, host_id, {}, list(args))
    except LuaCodeError as exc:
        stdio.stderr.write(f"error: {exc}\n")
        return 1
    proc = processes.procs[pid]
    value, error = await proc.done
    return _exit_code(entry_id, value, error, proc.trace, stdio.stderr)


def _exit_code(entry_id: str, value: Any, error: str | None, trace: str, err_stream: TextIO) -> int:
    """An integer result is the exit code; nothing is 0; an error is printed and gives 1."""
    if error is not None:
        err_stream.write(f"error: {entry_id}: {error}\n")
        if trace:
            err_stream.write(trace.rstrip() + "\n")
        return 1
    if isinstance(value, int) and not isinstance(value, bool):
        return value & 0xFF
    return 0
