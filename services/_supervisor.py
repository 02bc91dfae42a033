"""Supervision: `auto_start` entries started in dependency order, `process.service` restarts,
reverse-order shutdown; every service event is a ``proc.service`` record.

Lifecycle (Wippy's ``lifecycle`` block): ``auto_start`` (false), ``start_timeout`` (10s),
``stop_timeout`` (10s), ``stable_threshold`` (5s), ``requires`` / ``depends_on`` (ids started
first; a service also waits for its ``host``), ``restart`` {``initial_delay`` 1s, ``max_delay``
90s, ``backoff_factor`` 2.0, ``jitter`` 0.1, ``max_attempts`` 0 = unlimited}, ``security``
{``actor`` {id, meta}, ``policies`` [ids], ``groups`` [ids]}.

A service is restarted only after an error exit (a raise, or a second return value); a normal
return ends it ("exited"). A run that lasted ``stable_threshold`` resets the attempt count. Beyond
Wippy, as OTP does: restart intensity, at most ``restart.intensity`` restarts (default 10) within
``restart.period`` (default 60s); past it, or past ``max_attempts``, the service is marked failed,
logged at error level and recorded, and not started again until the node restarts.

Shutdown: every service gets a CANCEL event (in reverse start order) and they are awaited together;
one still running after its ``stop_timeout`` is terminated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wippy.core import ConfigError, Entry, Record, WippyError, proc_records
from wippy.lua_stdlib import parse_go_duration

from ._processes import HOST_KINDS, ProcessRuntime

log = logging.getLogger("wippy.supervisor")

SUPERVISED_KINDS = (*HOST_KINDS, "process.service")


@dataclass(frozen=True, slots=True)
class Restart:
    initial_delay: float = 1.0
    max_delay: float = 90.0
    backoff_factor: float = 2.0
    jitter: float = 0.1
    max_attempts: int = 0
    intensity: int = 10
    period: float = 60.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before restart number ``attempt`` (1-based), jittered."""
        base = min(self.max_delay, self.initial_delay * self.backoff_factor ** max(0, attempt - 1))
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))


@dataclass(frozen=True, slots=True)
class Lifecycle:
    auto_start: bool = False
    start_timeout: float = 10.0
    stop_timeout: float = 10.0
    stable_threshold: float = 5.0
    after: tuple[str, ...] = ()
    restart: Restart = field(default_factory=Restart)
    security: dict[str, Any] | None = None


def _seconds(value: Any, where: str, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool):
        raise ConfigError(f"{where} must be a duration like \"5s\", not {value!r}")
    if isinstance(value, int | float):
        return float(value) / 1000.0  # a bare number is milliseconds, as Wippy's config reads it
    if isinstance(value, str):
        try:
            return parse_go_duration(value) / 1e9
        except ValueError:
            pass
    raise ConfigError(f"{where} must be a duration like \"5s\", not {value!r}")


def lifecycle_of(entry: Entry) -> Lifecycle:
    """The entry's lifecycle block, checked; ConfigError naming the entry and field."""
    raw = entry.data.get("lifecycle") or {}
    where = f"{entry.id}: lifecycle"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping")
    after: list[str] = []
    for key in ("requires", "depends_on"):
        ids = raw.get(key) or []
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ConfigError(f"{where}.{key} must be a list of entry ids")
        after.extend(ids)
    restart_raw = raw.get("restart") or {}
    if not isinstance(restart_raw, dict):
        raise ConfigError(f"{where}.restart must be a mapping")
    rw = f"{where}.restart"
    default = Restart()
    restart = Restart(
        initial_delay=_seconds(restart_raw.get("initial_delay", restart_raw.get("delay")), f"{rw}.initial_delay",
                               default.initial_delay),
        max_delay=_seconds(restart_raw.get("max_delay"), f"{rw}.max_delay", default.max_delay),
        backoff_factor=_number(restart_raw.get("backoff_factor"), f"{rw}.backoff_factor", default.backoff_factor, 1.0),
        jitter=_number(restart_raw.get("jitter"), f"{rw}.jitter", default.jitter, 0.0),
        max_attempts=int(_number(restart_raw.get("max_attempts"), f"{rw}.max_attempts", 0, 0)),
        intensity=int(_number(restart_raw.get("intensity"), f"{rw}.intensity", default.intensity, 0)),
        period=_seconds(restart_raw.get("period"), f"{rw}.period", default.period),
    )
    security = raw.get("security")
    if security is not None and not isinstance(security, dict):
        raise ConfigError(f"{where}.security must be a mapping")
    auto = raw.get("auto_start", False)
    if not isinstance(auto, bool):
        raise ConfigError(f"{where}.auto_start must be true or false")
    return Lifecycle(
        auto_start=auto,
        start_timeout=_seconds(raw.get("start_timeout"), f"{where}.start_timeout", 10.0),
        stop_timeout=_seconds(raw.get("stop_timeout"), f"{where}.stop_timeout", 10.0),
        stable_threshold=_seconds(raw.get("stable_threshold"), f"{where}.stable_threshold", 5.0),
        after=tuple(after),
        restart=restart,
        security=security,
    )


def _number(value: Any, where: str, default: float, minimum: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise ConfigError(f"{where} must be a number >= {minimum:g}, not {value!r}")
    return float(value)


def start_order(entries: Mapping[str, Entry]) -> list[Entry]:
    """The ``auto_start`` entries of the kinds supervised here, dependencies first.

    A dependency on an entry that is not started here (a function, a store) is ignored; a cycle is
    a ConfigError naming its entries.
    """
    chosen = {e.id: e for e in entries.values() if e.kind in SUPERVISED_KINDS and lifecycle_of(e).auto_start}
    order: list[Entry] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def deps(e: Entry) -> list[str]:
        found = list(lifecycle_of(e).after)
        if e.kind == "process.service" and isinstance(e.data.get("host"), str):
            found.append(e.data["host"])
        return [d for d in found if d in chosen]

    def visit(e: Entry, path: list[str]) -> None:
        mark = state.get(e.id)
        if mark == 2:
            return
        if mark == 1:
            cycle = [*path[path.index(e.id):], e.id]
            raise ConfigError(f"lifecycle dependencies form a cycle: {' -> '.join(cycle)}")
        state[e.id] = 1
        for d in deps(e):
            visit(chosen[d], [*path, e.id])
        state[e.id] = 2
        order.append(e)

    for e in sorted(chosen.values(), key=lambda x: x.id):
        visit(e, [])
    return order


@dataclass(slots=True)
class _Service:
    entry: Entry
    lifecycle: Lifecycle
    pid: str | None = None
    attempt: int = 0
    restarts: list[float] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    state: str = "starting"  # running | restarting | exited | failed | stopped
    stopping: bool = False
    error: str | None = None
    started_at: int = 0  # ns since the epoch, of the current run
    updated_at: int = 0  # ns since the epoch, of the last state change


class Supervisor:
    """Starts and watches one node's auto_start hosts and services."""

    def __init__(self, processes: ProcessRuntime, registry: Any) -> None:
        self.processes = processes
        self.registry = registry
        self.services: dict[str, _Service] = {}
        self._started: list[str] = []
        self._closed = False
        self._writes: set[asyncio.Task[Any]] = set()
        #: the sender of the CANCEL/terminate signals the supervisor sends
        self.pid = f"{{{processes.node}@supervisor|0x00000}}"

    async def start_all(self) -> list[str]:
        """Start every auto_start host and service in dependency order; their ids, in that order."""
        for entry in start_order(self.registry.current()):
            if entry.kind == "terminal.host":
                continue  # made with the real streams when `wippy run -x` runs a process on it
            if entry.kind in HOST_KINDS:
                self.processes.host(entry.id)
            else:
                self.start_service(entry)
            self._started.append(entry.id)
        return list(self._started)

    def start_service(self, entry: Entry) -> None:
        svc = _Service(entry, lifecycle_of(entry))
        for key in ("process", "host"):
            if not isinstance(entry.data.get(key), str):
                raise ConfigError(f"{entry.id}: a process.service needs `{key}` (an entry id)")
        self.services[entry.id] = svc
        # the first process is spawned now, so a service has started (its code runs at the host's
        # next turn) when start_all returns, as Wippy's Starting -> Running step promises
        first: tuple[str, asyncio.Future[tuple[Any, str | None]]] | WippyError
        try:
            pid = self._spawn(svc)
            first = (pid, self.processes.wait(pid))  # held now: a quick process may end before we wait
        except WippyError as exc:
            first = exc
        svc.task = asyncio.create_task(self._supervise(svc, first), name=f"wippy-service:{entry.id}")

    def _spawn(self, svc: _Service) -> str:
        data = svc.entry.data
        args = data.get("input") or []
        if not isinstance(args, list):
            args = [args]
        opts: dict[str, Any] = {}
        security = security_option(svc.lifecycle.security, self.registry)
        if security:
            opts["security"] = security
        return self.processes.spawn(None, str(data["process"]), str(data["host"]), opts, list(args))

    async def _supervise(self, svc: _Service,
                         first: tuple[str, asyncio.Future[tuple[Any, str | None]]] | WippyError | None = None,
                         ) -> None:
        restart = svc.lifecycle.restart
        while not svc.stopping:
            started = time.monotonic()
            error: str | None
            try:
                if first is None:
                    svc.pid = self._spawn(svc)
                    ended = self.processes.wait(svc.pid)
                elif isinstance(first, WippyError):
                    raise first
                else:
                    svc.pid, ended = first
            except WippyError as exc:
                svc.pid, error = None, str(exc)
            else:
                svc.state = "running"
                svc.started_at = time.time_ns()
                self._record(svc, "started")
                _value, error = await ended
            first = None
            if _stopping(svc):  # set while we waited
                break
            if error is None:
                svc.state = "exited"
                self._record(svc, "exited")
                return
            svc.error = error
            now = time.monotonic()
            if now - started >= svc.lifecycle.stable_threshold:
                svc.attempt = 0
            svc.attempt += 1
            svc.restarts = [t for t in svc.restarts if now - t < restart.period]
            svc.restarts.append(now)
            if restart.max_attempts and svc.attempt > restart.max_attempts:
                self._fail(svc, f"failed {svc.attempt} times in a row (max_attempts {restart.max_attempts}): {error}")
                return
            if restart.intensity and len(svc.restarts) > restart.intensity:
                self._fail(svc, f"restarted more than {restart.intensity} times within {restart.period:g}s: {error}")
                return
            delay = restart.delay(svc.attempt)
            svc.state = "restarting"
            self._record(svc, "restarting", error=error, delay_ms=int(delay * 1000))
            log.warning("service %s failed (%s); restart %d in %.2fs", svc.entry.id, error, svc.attempt, delay)
            await asyncio.sleep(delay)
        svc.state = "stopped"
        self._record(svc, "stopped")

    def _fail(self, svc: _Service, reason: str) -> None:
        svc.state = "failed"
        svc.error = reason
        log.error("service %s: %s; not restarting", svc.entry.id, reason)
        self._record(svc, "failed", error=reason)

    def _record(self, svc: _Service, event: str, *, error: str | None = None, delay_ms: int | None = None) -> None:
        svc.updated_at = time.time_ns()
        body = {"service": svc.entry.id, "event": event, "pid": svc.pid, "attempt": svc.attempt,
                "error": error, "delay_ms": delay_ms}
        store = self.processes.store
        record = Record(type=proc_records.SERVICE, body=body, node=self.processes.node)
        task = asyncio.create_task(store.append(store.subjects.proc_log(self.processes.node), record))
        self._writes.add(task)
        task.add_done_callback(self._written)

    async def flush(self) -> None:
        """Return once every service record so far is written."""
        if self._writes:
            await asyncio.wait(list(self._writes), timeout=10)

    def _written(self, task: asyncio.Task[Any]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a service record was not written: %s", task.exception())

    def state(self, service_id: str) -> dict[str, Any] | None:
        """What `system.supervisor.state(id)` reports (Wippy's fields, plus pid); None: not supervised."""
        svc = self.services.get(service_id)
        if svc is None:
            return None
        desired = "stopped" if svc.stopping or svc.state in ("exited", "failed") else "running"
        return {"id": svc.entry.id, "status": svc.state, "desired": desired, "retry_count": svc.attempt,
                "last_update": svc.updated_at, "started_at": svc.started_at, "details": svc.error or "",
                "pid": svc.pid}

    def states(self) -> list[dict[str, Any]]:
        """Every supervised service's state, by id."""
        return [s for s in (self.state(i) for i in sorted(self.services)) if s is not None]

    async def aclose(self) -> None:
        """Stop the services: CANCEL to each, in reverse start order, then wait for them together;
        whichever is still running after its ``stop_timeout`` is terminated."""
        if self._closed:
            return
        self._closed = True
        stopping = [self.services[i] for i in reversed(self._started) if i in self.services]
        waits = []
        for svc in stopping:
            svc.stopping = True
            if svc.pid is not None and svc.pid in self.processes.procs:
                self.processes.cancel(self.pid, svc.pid, "the node is stopping")
                waits.append(self._stop(svc, svc.pid))
        await asyncio.gather(*waits)
        for svc in stopping:
            if svc.task is not None:
                svc.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await svc.task
        await self.flush()

    async def _stop(self, svc: _Service, pid: str) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self.processes.wait(pid)), svc.lifecycle.stop_timeout)
        except TimeoutError:
            log.warning("service %s did not stop within %gs; terminating it", svc.entry.id, svc.lifecycle.stop_timeout)
            with contextlib.suppress(WippyError, TimeoutError):
                self.processes.terminate(self.pid, pid)
                await asyncio.wait_for(asyncio.shield(self.processes.wait(pid)), 5)
        except WippyError:  # already gone
            pass


def _stopping(svc: _Service) -> bool:
    return svc.stopping


def security_option(raw: dict[str, Any] | None, registry: Any) -> dict[str, Any] | None:
    """A service's lifecycle.security as a spawn's security option (groups expand to their policies)."""
    if not raw:
        return None
    out: dict[str, Any] = {}
    actor = raw.get("actor")
    if isinstance(actor, dict) and isinstance(actor.get("id"), str):
        out["actor"] = {"id": actor["id"], "meta": actor.get("meta") or {}}
    policies = [p for p in raw.get("policies") or [] if isinstance(p, str)]
    groups = {g for g in raw.get("groups") or [] if isinstance(g, str)}
    if groups:
        policies.extend(e.id for e in registry.current().values()
                        if e.kind.startswith("security.policy") and groups & set(e.data.get("groups") or []))
    if policies or "policies" in raw or "groups" in raw:
        out["policies"] = sorted(set(policies))
    return out
