"""The ``wippy`` command line.

Every command that needs the log finds it the same way: with ``--nats`` it uses that server;
otherwise it uses the state dir's embedded server, starting one if none runs. Registry and query
commands run on the state dir directly when no node runs there, and through the running node's
admin API when ``wippy run`` holds it (DuckDB lets one process open the file).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from wippy.core import (
    ConfigError,
    DefinitionErrors,
    JetStreamEventStore,
    NotImplementedFeatureError,
    Subjects,
    WippyError,
    new_traceparent,
)
from wippy.services import AdminClient, ApplyResult, CallContext, Node, Runtime, StateDir, execute

from . import _output as output
from ._config import CliConfig, build_config
from ._logging import setup_logging

log = logging.getLogger("wippy.ops")

EXIT_ERROR = 1
EXIT_USAGE = 2
_OWN_TIMEOUT = 60.0


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("common options")
    g.add_argument("--app", dest="app", default=argparse.SUPPRESS, metavar="DIR",
                   help="app directory (default: current directory)")
    g.add_argument("--state-dir", default=argparse.SUPPRESS, metavar="DIR",
                   help="state dir (default: <app>/.wippy/state; env WIPPY_STATE_DIR)")
    g.add_argument("--nats", default=argparse.SUPPRESS, metavar="URL",
                   help="use this NATS server instead of the embedded one (env WIPPY_NATS_URL)")
    g.add_argument("--node", default=argparse.SUPPRESS, metavar="NAME", help="node id (env WIPPY_NODE)")
    g.add_argument("--namespace", default=argparse.SUPPRESS, metavar="NS",
                   help="stream namespace, to share one NATS between apps (env WIPPY_NAMESPACE)")
    g.add_argument("--sync-interval", default=argparse.SUPPRESS, metavar="always|DURATION",
                   help="embedded JetStream fsync policy: a duration (default 1s) or 'always'")
    g.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    g.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logs")
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog="wippy", parents=[common],
        description="An event-sourced Wippy runtime: every registry change is a record in NATS JetStream.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", parents=[common], help="apply the app's files and run the app until stopped")
    run.add_argument("-x", "--exec", dest="exec_entry", metavar="ENTRY",
                     help="run this process.lua entry on the terminal host and exit with its result")
    run.add_argument("rest", nargs=argparse.REMAINDER, metavar="[COMMAND] ARGS",
                     help="`list`, or a command (an entry's meta.command.name) and its arguments")
    run.add_argument("--reset", action="store_true", help="make the registry equal to the files")
    run.add_argument("-m", "--message", default="", help="message of the applied version")

    reg = sub.add_parser("registry", parents=[common], help="the versioned registry")
    rsub = reg.add_subparsers(dest="registry_command", metavar="SUBCOMMAND")
    p = rsub.add_parser("apply", parents=[common], help="apply the app's files as one version")
    p.add_argument("app_dir", nargs="?", metavar="APP_DIR")
    p.add_argument("-m", "--message", default="")
    p.add_argument("--reset", action="store_true", help="make the registry equal to the files")
    p = rsub.add_parser("list", parents=[common], help="list entries")
    p.add_argument("--kind", metavar="GLOB")
    p.add_argument("--ns", metavar="GLOB")
    p.add_argument("--at", type=int, metavar="VERSION")
    p = rsub.add_parser("show", parents=[common], help="show one entry")
    p.add_argument("id")
    p.add_argument("--at", type=int, metavar="VERSION")
    rsub.add_parser("versions", parents=[common], help="list versions")
    p = rsub.add_parser("history", parents=[common], help="the versions of one entry")
    p.add_argument("id")
    p = rsub.add_parser("diff", parents=[common], help="what changed between two versions")
    p.add_argument("v1", type=int)
    p.add_argument("v2", type=int)
    p = rsub.add_parser("rollback", parents=[common], help="append a version equal to an older one")
    p.add_argument("version", type=int)
    p.add_argument("-m", "--message", default="")

    q = sub.add_parser("query", parents=[common], help="read-only DuckDB SQL over the projections")
    q.add_argument("sql")
    q.add_argument("--at", type=int, metavar="VERSION", help="registry_entries as of this version")

    ev = sub.add_parser("events", parents=[common], help="the event bus and the other streams")
    esub = ev.add_subparsers(dest="events_command", metavar="SUBCOMMAND")
    p = esub.add_parser("tail", parents=[common], help="print events (or another stream's records) as they come")
    p.add_argument("system", nargs="?", metavar="SYSTEM_PATTERN", help="* one segment, ** any, (a|b) either")
    p.add_argument("kind", nargs="?", metavar="KIND_PATTERN")
    p.add_argument("--from", dest="start", metavar="start|SEQ|ISO_TIME", help="where to begin (default: now)")
    p.add_argument("--count", type=int, metavar="N", help="stop after N records")
    p.add_argument("--stream", default="events", metavar="NAME",
                   help="events (default), registry, proc, audit, http, agents")

    _agents_parser(sub, common)
    p = sub.add_parser("replay", parents=[common], help="the projections as of a version or time, in a file")
    p.add_argument("--to", metavar="VERSION|ISO_TIME")
    p.add_argument("--rebuild", action="store_true",
                   help="rebuild the live process, events and audit projections from the log and swap them in")
    p.add_argument("--out", metavar="FILE", help="the DuckDB file to write (default: in the state dir)")

    _local_parsers(sub, common)
    sub.add_parser("version", parents=[common], help="print the version of wippy")
    return parser


def _agents_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    ag = sub.add_parser("agents", parents=[common], help="agent runs recorded in the log")
    asub = ag.add_subparsers(dest="agents_command", metavar="SUBCOMMAND")
    p = asub.add_parser("show", parents=[common], help="a recorded agent run, step by step, from the log")
    p.add_argument("run", metavar="RUN_ID")
    p = asub.add_parser("replay", parents=[common],
                        help="run a recorded agent run again from the log (no model or tool calls) and "
                             "report where it differs; exit status 1 when it does")
    p.add_argument("run", metavar="RUN_ID")
    p.add_argument("--at", type=int, metavar="VERSION",
                   help="compile the agent as of this registry version (default: the run's own)")


def _local_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """`lint`, `init` and `bench`: commands that need no log or state dir."""
    p = sub.add_parser("lint", parents=[common],
                       help="check the app's files (YAML, entries, Lua code) without running anything")
    p.add_argument("app_dir", nargs="?", metavar="APP_DIR", help="the app directory (same as --app)")
    p = sub.add_parser("init", parents=[common], help="write a minimal runnable app into a directory")
    p.add_argument("dir", nargs="?", default=".", metavar="DIR", help="where (default: the current directory)")
    p.add_argument("--name", metavar="NAMESPACE", help="the app's namespace (default: from the directory name)")
    p = sub.add_parser("bench", parents=[common],
                       help="a few figures of this machine beside their raw baselines (embedded NATS, Lua, DuckDB)")
    p.add_argument("--quick", action="store_true", help="fewer rounds and smaller sizes (a smoke run)")


def _config(ns: argparse.Namespace) -> CliConfig:
    app = getattr(ns, "app", None)
    if getattr(ns, "app_dir", None):
        app = ns.app_dir
    return build_config(
        app_dir=app,
        state_dir=getattr(ns, "state_dir", None),
        nats=getattr(ns, "nats", None),
        node=getattr(ns, "node", None),
        namespace=getattr(ns, "namespace", None),
        sync_interval=getattr(ns, "sync_interval", None),
        json_output=bool(getattr(ns, "json", False)),
        verbose=bool(getattr(ns, "verbose", False)),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if ns.command is None or (ns.command == "registry" and ns.registry_command is None) or (
            ns.command == "events" and ns.events_command is None) or (
            ns.command == "agents" and ns.agents_command is None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if ns.command == "version":
        from importlib.metadata import version

        print(version("wippy"))
        return 0
    if ns.command == "lint":
        from ._lint import lint_command

        app = ns.app_dir or getattr(ns, "app", None) or "."
        return lint_command(app, json_output=bool(getattr(ns, "json", False)))
    if ns.command == "init":
        from ._init import init_command

        return init_command(ns.dir, name=ns.name)
    if ns.command == "bench":
        from ._bench import bench_command

        return _run_async(bench_command(json_output=bool(getattr(ns, "json", False)), quick=ns.quick))
    try:
        cfg = _config(ns)
        quiet = ns.command != "run" or bool(ns.exec_entry or ns.rest)
        setup_logging(verbose=cfg.verbose, default_level=logging.WARNING if quiet else logging.INFO,
                      encoding=cfg.log_encoding, level=cfg.log_level)
        return _run_async(_dispatch(ns, cfg))
    except NotImplementedFeatureError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DefinitionErrors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except WippyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def _run_async(coro: Any) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return int(asyncio.run(coro))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return int(runner.run(coro))


async def _dispatch(ns: argparse.Namespace, cfg: CliConfig) -> int:
    cmd = ns.command
    if cmd == "run":
        if ns.exec_entry or ns.rest:
            return await _run_process(cfg, ns, reset=ns.reset, message=ns.message)
        return await _run_node(cfg, reset=ns.reset, message=ns.message)
    if cmd == "replay":
        if ns.rebuild:
            result = await _call(cfg, "rebuild", {})
            if cfg.json:
                output.emit_json(result)
            else:
                print(", ".join(f"{name} rebuilt to {seq}" for name, seq in result["rebuilt"].items()))
            return 0
        if ns.to is None:
            raise ConfigError("wippy replay: give --to VERSION|ISO_TIME, or --rebuild")
        from ._replay import replay

        return await replay(cfg, to=ns.to, out=ns.out)
    if cmd == "events":
        from ._tail import tail

        return await tail(cfg, stream=ns.stream, system=ns.system, kind=ns.kind, start=ns.start, count=ns.count)
    verb, args = _request(ns, cfg)
    result = await _call(cfg, verb, args)
    _print(verb, result, cfg)
    if verb == "agents_replay" and not result.get("identical"):
        return EXIT_ERROR
    return 0


def _request(ns: argparse.Namespace, cfg: CliConfig) -> tuple[str, dict[str, Any]]:
    if ns.command == "query":
        return "query", {"sql": ns.sql, "at": ns.at}
    if ns.command == "agents":
        if ns.agents_command == "show":
            return "agents_show", {"run": ns.run}
        return "agents_replay", {"run": ns.run, "at": ns.at}
    sub = ns.registry_command
    if sub == "apply":
        return "apply", {"app": str(cfg.app_dir), "message": ns.message, "reset": ns.reset}
    if sub == "list":
        return "list", {"kind": ns.kind, "ns": ns.ns, "at": ns.at}
    if sub == "show":
        return "show", {"id": ns.id, "at": ns.at}
    if sub == "versions":
        return "versions", {}
    if sub == "history":
        return "history", {"id": ns.id}
    if sub == "diff":
        return "diff", {"v1": ns.v1, "v2": ns.v2}
    if sub == "rollback":
        return "rollback", {"version": ns.version, "message": ns.message}
    raise ConfigError(f"unknown command {sub}")


async def _call(cfg: CliConfig, verb: str, args: dict[str, Any]) -> Any:
    """Run one command: locally when the state dir is free, else through its running node."""
    state = StateDir(cfg.runtime.state_dir)
    ctx = CallContext(actor=cfg.actor, trace=new_traceparent())
    if not state.try_own():
        record = state.read_node_record()
        if record is not None:
            return await _call_node(record.nats_url, record.namespace, record.node, verb, args, ctx=ctx)
        await asyncio.to_thread(state.own, _OWN_TIMEOUT)
    try:
        state.clear_node_record()  # a record left by a killed node: we own the dir now
        async with Runtime(cfg.runtime, state) as rt:
            return await execute(rt.registry, verb, args, ctx)
    finally:
        state.release()


async def _call_node(url: str, namespace: str, node: str, verb: str, args: dict[str, Any], *,
                     ctx: CallContext) -> Any:
    store = await JetStreamEventStore.connect(url, Subjects(namespace), name="wippy-cli")
    try:
        return await AdminClient(store, node).call(verb, args, actor=ctx.actor, trace=ctx.trace)
    finally:
        await store.aclose()


def _print(verb: str, result: Any, cfg: CliConfig) -> None:
    if isinstance(result, dict) and result.get("warnings"):
        output.warnings(result["warnings"])
    if cfg.json:
        if verb in ("apply", "rollback") and isinstance(result, dict):
            result = {k: v for k, v in result.items() if k in ("version", "changed")}
        output.emit_json(result)
        return
    if verb in ("apply", "rollback"):
        output.apply_summary(result)
    elif verb == "list":
        output.table(["ID", "KIND", "TITLE"],
                     [[e["id"], e["kind"], (e.get("meta") or {}).get("title")] for e in result])
    elif verb == "show":
        output.entry_yaml(result)
    elif verb == "versions":
        output.table(["VERSION", "AT", "AUTHOR", "OPS", "MESSAGE"],
                     [[v["version"], v["at"], v["author"], len(v["ops"] or []), v["message"]] for v in result])
    elif verb == "history":
        output.table(["VERSION", "AT", "AUTHOR", "OP", "KIND", "ORIGIN"],
                     [[h["version"], h["at"], h["author"], h["op"], h["kind"], h["origin"]] for h in result])
    elif verb == "agents_replay":
        output.replay_report(result)
    elif verb == "agents_show":
        output.run_timeline(result)
    elif verb == "diff":
        marks = {"create": "+", "delete": "-", "update": "~"}
        for d in result:
            print(f"{marks[d['op']]} {d['id']}")
    else:
        output.records_table(result)


async def _run_process(cfg: CliConfig, ns: argparse.Namespace, *, reset: bool, message: str) -> int:
    """`wippy run -x ENTRY args`, `wippy run COMMAND args`, `wippy run list`."""
    from wippy.services import commands, find_command, run_terminal_process

    state = await _own_for_node(cfg)
    try:
        state.clear_node_record()
        async with Node(cfg.runtime, state) as node:
            await _apply_app(node, cfg, reset=reset, message=message)
            entries = node.registry.current()
            rest = list(ns.rest)
            if ns.exec_entry or rest[:1] != ["list"]:
                await node.start_services()
            if ns.exec_entry:
                entry_id, args = ns.exec_entry, rest
            elif rest[0] == "list":
                found = commands(entries)
                if cfg.json:
                    output.emit_json([{"name": c.name, "short": c.short, "entry": c.entry} for c in found])
                else:
                    output.table(["COMMAND", "ENTRY", "DESCRIPTION"], [[c.name, c.entry, c.short] for c in found])
                return 0
            else:
                entry_id, args = find_command(entries, rest[0]).entry, rest[1:]
            return await run_terminal_process(node.registry, node.node, entry_id, args,
                                              strict=cfg.runtime.security_strict, stores=node.stores,
                                              env=node.env, telemetry=node.telemetry, processes=node.processes)
    finally:
        state.release()


async def _own_for_node(cfg: CliConfig) -> StateDir:
    """Take the app's state dir for a node (refusing when another node runs on it)."""
    state = StateDir(cfg.runtime.state_dir)
    if not cfg.app_dir.is_dir():
        raise ConfigError(f"app directory {cfg.app_dir} does not exist")
    if not state.try_own():
        record = state.read_node_record()
        if record is not None:
            raise ConfigError(
                f"node {record.node} (pid {record.pid}) is already running on {state.path}; stop it first"
            )
        await asyncio.to_thread(state.own, _OWN_TIMEOUT)
    return state


async def _apply_app(node: Node, cfg: CliConfig, *, reset: bool, message: str) -> ApplyResult:
    result = await node.registry.apply_files(
        cfg.app_dir, reset=reset, message=message, actor=cfg.actor, trace=new_traceparent()
    )
    for w in result.warnings:
        log.warning(w)
    return result


async def _run_node(cfg: CliConfig, *, reset: bool, message: str) -> int:
    state = await _own_for_node(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        state.clear_node_record()
        async with Node(cfg.runtime, state) as node:
            result = await _apply_app(node, cfg, reset=reset, message=message)
            started = await node.start_services()
            # what start-up made (registry, compiled code, modules) lives as long as the node: keep
            # it out of the collector's full passes, which otherwise rescan it while serving
            gc.freeze()
            log.info(
                "node ready",
                extra={"fields": {"node": node.node, "app": str(cfg.app_dir), "version": result.version,
                                  "changed": result.changed, "nats": node.url, "started": started,
                                  "entries": len(node.registry.projection.state.entries)}},
            )
            if cfg.json:
                output.emit_json({"node": node.node, "nats": node.url, **result.to_json()})
            else:
                what = f"version {result.version}" + ("" if result.changed else " (unchanged)")
                print(f"wippy: node {node.node} running {cfg.app_dir.name} at {what}; Ctrl-C to stop",
                      flush=True)
            await stop.wait()
            log.info("stopping", extra={"fields": {"node": node.node}})
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
        state.release()
    return 0
