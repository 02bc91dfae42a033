"""The registry and query commands as data in, data out.

The CLI runs these directly on a registry service it opened itself, or sends them to a running
node over NATS (services._admin); either way the same function answers, so the two paths cannot
drift apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from wippy.core import ConfigError, DefinitionError

from ._agent_replay import replay_run, run_records
from ._registry import RegistryService

Args = dict[str, Any]
Handler = Callable[[RegistryService, Args, "CallContext"], Awaitable[Any]]


class CallContext:
    __slots__ = ("actor", "trace")

    def __init__(self, actor: str | None = None, trace: str | None = None) -> None:
        self.actor = actor
        self.trace = trace


def _int(args: Args, key: str, *, required: bool = False) -> int | None:
    value = args.get(key)
    if value is None:
        if required:
            raise DefinitionError(f"missing argument {key}")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise DefinitionError(f"argument {key} must be an integer version, got {value!r}")
    return value


async def _ping(svc: RegistryService, _a: Args, _c: CallContext) -> Any:
    return {"node": svc.node, "version": svc.version}


async def _ready(svc: RegistryService, _a: Args, _c: CallContext) -> Any:
    return {"node": svc.node, "ready": svc.ready, "version": svc.version}


async def _processes(svc: RegistryService, _a: Args, _c: CallContext) -> Any:
    """The processes running now, from the process projection."""
    return await svc.query(
        "SELECT pid, entry_id, host, node, started_at FROM processes WHERE status = 'running' ORDER BY pid")


async def _rebuild(svc: RegistryService, _a: Args, _c: CallContext) -> Any:
    """Rebuild the process, events and audit projections from the log and swap them in."""
    if svc.rebuilder is None:
        raise ConfigError("this registry service cannot rebuild projections")
    return await svc.rebuilder()


async def _apply_files(svc: RegistryService, a: Args, c: CallContext) -> Any:
    app = a.get("app")
    if not isinstance(app, str):
        raise ConfigError("apply needs the app directory")
    result = await svc.apply_files(
        Path(app), reset=bool(a.get("reset")), message=str(a.get("message") or ""), actor=c.actor, trace=c.trace
    )
    return result.to_json()


async def _rollback(svc: RegistryService, a: Args, c: CallContext) -> Any:
    version = _int(a, "version", required=True)
    assert version is not None
    result = await svc.rollback(version, message=str(a.get("message") or ""), actor=c.actor, trace=c.trace)
    return result.to_json()


async def _list(svc: RegistryService, a: Args, _c: CallContext) -> Any:
    entries = await svc.list_entries(kind=a.get("kind"), ns=a.get("ns"), at=_int(a, "at"))
    return [e.to_dict() for e in entries]


async def _show(svc: RegistryService, a: Args, _c: CallContext) -> Any:
    return (await svc.show(str(a.get("id")), at=_int(a, "at"))).to_dict()


async def _versions(svc: RegistryService, _a: Args, _c: CallContext) -> Any:
    return await svc.versions()


async def _history(svc: RegistryService, a: Args, _c: CallContext) -> Any:
    return await svc.history(str(a.get("id")))


async def _diff(svc: RegistryService, a: Args, _c: CallContext) -> Any:
    v1 = _int(a, "v1", required=True)
    v2 = _int(a, "v2", required=True)
    assert v1 is not None and v2 is not None
    return await svc.diff(v1, v2)


async def _query(svc: RegistryService, a: Args, _c: CallContext) -> Any:
    return await svc.query(str(a.get("sql") or ""), at=_int(a, "at"))


async def _agents_replay(svc: RegistryService, a: Args, _c: CallContext) -> Any:
    run = a.get("run")
    if not isinstance(run, str) or not run:
        raise DefinitionError("agents replay needs the run id (see `wippy query \"SELECT * FROM agent_runs\"`)")
    return await replay_run(svc, run, at=_int(a, "at"))


async def _agents_show(svc: RegistryService, a: Args, _c: CallContext) -> Any:
    run = a.get("run")
    if not isinstance(run, str) or not run:
        raise DefinitionError("agents show needs the run id (see `wippy query \"SELECT * FROM agent_runs\"`)")
    return await run_records(svc, run)


COMMANDS: dict[str, Handler] = {
    "ping": _ping,
    "processes": _processes,
    "ready": _ready,
    "rebuild": _rebuild,
    "apply": _apply_files,
    "rollback": _rollback,
    "list": _list,
    "show": _show,
    "versions": _versions,
    "history": _history,
    "diff": _diff,
    "query": _query,
    "agents_replay": _agents_replay,
    "agents_show": _agents_show,
}


async def execute(svc: RegistryService, verb: str, args: Args, ctx: CallContext | None = None) -> Any:
    handler = COMMANDS.get(verb)
    if handler is None:
        raise ConfigError(f"unknown command {verb!r}")
    return await handler(svc, args, ctx or CallContext())
