"""`wippy events tail`: print records of a stream as they arrive, from now or from a position.

    wippy events tail SYSTEM_PATTERN [KIND_PATTERN] [--from start|SEQ|ISO_TIME] [--count N] [--json]
    wippy events tail --stream registry|proc|audit|http [--from ...] [--count N] [--json]

Events print as ``seq  at  system  kind  path  data`` (JSON lines ``{seq, at, system, kind, path,
data}`` under ``--json``); other streams as ``seq  at  type  body``. The command reads the log
directly (the app's embedded server, or ``--nats``), so it works whether a node runs or not.
``--from`` a time starts at the first record at or after it (``EventStore.seq_at``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import orjson

from wippy.core import (
    EVENT_RECORD,
    ConfigError,
    JetStreamEventStore,
    LogServer,
    Record,
    RecordError,
    Subjects,
    compile_event_pattern,
)

from ._config import CliConfig

STREAMS = ("events", "registry", "proc", "audit", "http", "agents")


def _stream_name(subjects: Subjects, which: str) -> str:
    return {"events": subjects.events_stream, "registry": subjects.registry_stream, "proc": subjects.proc_stream,
            "audit": subjects.audit_stream, "http": subjects.http_stream, "agents": subjects.agents_stream}[which]


def _iso(at_ns: int) -> str:
    return datetime.datetime.fromtimestamp(at_ns / 1e9, tz=datetime.UTC).isoformat(timespec="microseconds")


def parse_from(raw: str | None) -> int | datetime.datetime | None:
    """``start`` (1), a sequence number, or an ISO time; None: from now."""
    if raw is None:
        return None
    if raw == "start":
        return 1
    if raw.isdigit():
        seq = int(raw)
        if seq < 1:
            raise ConfigError("--from: a position starts at 1")
        return seq
    try:
        at = datetime.datetime.fromisoformat(raw)
    except ValueError:
        raise ConfigError(f"--from {raw!r}: expected start, a position (a number) or an ISO time such as "
                          "2026-12-03T10:00:00Z") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=datetime.UTC)


@contextlib.asynccontextmanager
async def open_log(cfg: CliConfig, name: str) -> AsyncIterator[JetStreamEventStore]:
    """The app's log for a command that only reads it: the state dir's embedded server (started if
    no node runs) or ``--nats``; streams provisioned."""
    server = None
    if cfg.runtime.nats_url is None:
        server = await LogServer.open(cfg.runtime.state_dir, cfg.runtime.server)
    url = cfg.runtime.nats_url or (server.url if server is not None else "")
    try:
        store = await JetStreamEventStore.connect(url, Subjects(cfg.runtime.namespace), cfg.runtime.store, name=name)
        try:
            await store.provision()
            yield store
        finally:
            await store.aclose()
    finally:
        if server is not None:
            await server.aclose()


async def tail(cfg: CliConfig, *, stream: str, system: str | None, kind: str | None, start: str | None,
               count: int | None) -> int:
    if stream not in STREAMS:
        raise ConfigError(f"--stream must be one of {', '.join(STREAMS)}, not {stream!r}")
    if stream == "events" and not system:
        raise ConfigError("wippy events tail: give a system pattern (** for every event)")
    system_re = compile_event_pattern(system) if system else None
    kind_re = compile_event_pattern(kind) if kind else None
    if count is not None and count < 1:
        raise ConfigError("--count must be at least 1")
    origin = parse_from(start)
    async with open_log(cfg, "wippy-tail") as store:
        name = _stream_name(store.subjects, stream)
        head = await store.last_seq(name)
        if origin is None:
            first = head + 1
        elif isinstance(origin, int):
            if origin > head + 1:
                raise ConfigError(f"--from {origin}: the {stream} stream ends at {head}")
            first = origin
        else:
            first = await store.seq_at(name, int(origin.timestamp() * 1e9))
            if first > head:
                raise ConfigError(f"--from {start}: no {stream} record is that recent (the stream holds {head})")
        return await _follow(store, name, first, stream=stream, system_re=system_re, kind_re=kind_re,
                             count=count, as_json=cfg.json)


async def _follow(store: JetStreamEventStore, name: str, first: int, *, stream: str, system_re: Any,
                  kind_re: Any, count: int | None, as_json: bool) -> int:
    done = asyncio.Event()
    printed = 0
    out = sys.stdout

    def line(seq: int, rec: Record) -> str | None:
        if stream == "events":
            if rec.type != EVENT_RECORD:
                return None
            b = rec.body
            if system_re is not None and system_re.fullmatch("." + str(b.get("system"))) is None:
                return None
            if kind_re is not None and kind_re.fullmatch("." + str(b.get("kind"))) is None:
                return None
            if as_json:
                return orjson.dumps({"seq": seq, "at": _iso(rec.at), "system": b.get("system"),
                                     "kind": b.get("kind"), "path": b.get("path"), "data": b.get("data")}).decode()
            return "\t".join([str(seq), _iso(rec.at), str(b.get("system")), str(b.get("kind")), str(b.get("path")),
                              orjson.dumps(b.get("data")).decode()])
        if as_json:
            return orjson.dumps({"seq": seq, "at": _iso(rec.at), "type": rec.type, "node": rec.node,
                                 "body": rec.body}).decode()
        return "\t".join([str(seq), _iso(rec.at), rec.type, orjson.dumps(rec.body).decode()])

    def on_raw(seq: int, data: bytes, _pending: int) -> None:
        nonlocal printed
        if done.is_set():
            return
        try:
            text = line(seq, Record.decode(data))
        except RecordError as exc:
            print(f"# record {seq} skipped: {exc}", file=sys.stderr)
            return
        if text is None:
            return
        out.write(text + "\n")
        out.flush()
        printed += 1
        if count is not None and printed >= count:
            done.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    sub = await store.subscribe_raw(name, first, on_raw)
    try:
        await done.wait()
    finally:
        await sub.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
    return 0
