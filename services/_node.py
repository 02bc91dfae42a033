"""A runtime bound to a state dir: the log connection, the projections and the registry service.

``Runtime`` is what one process needs to read and write the registry with the state dir's
projections (one-off CLI commands open it for their duration). ``Node`` is a runtime that keeps
running and answers admin requests (``wippy run``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from wippy.core import (
    PROCESS_HOST_MEMORY,
    JetStreamEventStore,
    LogError,
    LogServer,
    ServerSettings,
    StoreSettings,
    Subjects,
    evaluate_expr,
    host_mailbox_limit,
    host_memory,
)
from wippy.lua_stdlib import HostContext, LuaHost, LuaSettings
from wippy.projections import (
    AGENTS,
    AGENTS_TABLES,
    AUDIT,
    EVENTS,
    PROC,
    PROC_TABLES,
    REGISTRY,
    REGISTRY_TABLES,
    AgentsProjection,
    AuditProjection,
    EventsProjection,
    ProcProjection,
    ProjectionDB,
    ProjectionSettings,
    RegistryProjection,
    replay_to,
)

from ._admin import AdminServer
from ._admin_http import AdminHttp, AdminHttpSettings
from ._agent_runs import RunJournal
from ._env import EnvService
from ._events import EventBus, LogsToEvents
from ._http import HttpServers
from ._http_middleware import MiddlewareDeps
from ._llm import LlmService, env_chain
from ._llm_recorder import LlmCallLog, RecordedLlmService
from ._processes import ProcessRuntime
from ._queues import QueueHub
from ._registry import RegistryService
from ._sql import SqlHub
from ._statedir import NodeRecord, StateDir
from ._stores import StoreHub
from ._supervisor import Supervisor
from ._telemetry import Telemetry, TelemetrySettings


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeSettings:
    state_dir: Path
    nats_url: str | None = None  # None: the embedded server
    namespace: str = "wippy"
    node: str | None = None
    server: ServerSettings = field(default_factory=ServerSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    projection: ProjectionSettings = field(default_factory=ProjectionSettings)
    #: security.strict_mode: code without an actor and a scope is denied everything
    security_strict: bool = False
    #: the app dir (env.storage.file paths are relative to it); None: the working directory
    app_dir: Path | None = None
    #: the OS environment as read at start-up (what env.storage.os entries serve)
    environ: Mapping[str, str] = field(default_factory=dict)
    #: metrics export (.wippy.yaml telemetry.metrics); a node records metrics either way
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)
    #: logmanager.stream_to_events: the node's log records also go to the event bus (system "logs")
    logs_to_events: bool = False
    #: the HTTP admin API (.wippy.yaml admin.http / admin.token); off unless an address is given
    admin_http: AdminHttpSettings = field(default_factory=AdminHttpSettings)


class Runtime:
    """Owns a state dir for its lifetime (the caller must hold the state dir's owner lock)."""

    def __init__(self, settings: RuntimeSettings, state: StateDir) -> None:
        self.settings = settings
        self.state_dir = state
        self.node = state.node_id(settings.node)
        self.subjects = Subjects(settings.namespace)
        self.server: LogServer | None = None
        self._store: JetStreamEventStore | None = None
        self._db: ProjectionDB | None = None
        self._projection: RegistryProjection | None = None
        self._audit: AuditProjection | None = None
        self._proc: ProcProjection | None = None
        self._events: EventsProjection | None = None
        self._agents: AgentsProjection | None = None
        self._registry: RegistryService | None = None
        self.stores: StoreHub | None = None
        self.env: EnvService | None = None
        #: the node's SQL databases (`sql` in Lua, store.sql)
        self.databases: SqlHub | None = None

    @property
    def store(self) -> JetStreamEventStore:
        assert self._store is not None, "runtime not open"
        return self._store

    @property
    def registry(self) -> RegistryService:
        assert self._registry is not None, "runtime not open"
        return self._registry

    @property
    def url(self) -> str:
        if self.settings.nats_url:
            return self.settings.nats_url
        assert self.server is not None
        return self.server.url

    async def open(self) -> Self:
        try:
            if self.settings.nats_url is None:
                self.server = await LogServer.open(self.state_dir.path, self.settings.server)
            self._store = await JetStreamEventStore.connect(
                self.url, self.subjects, self.settings.store, name=f"wippy:{self.node}"
            )
            await self._store.provision()
            self._db = ProjectionDB(self.state_dir.duckdb_path)
            self._projection = RegistryProjection(self._store, self._db, self.settings.projection)
            await self._projection.start()
            self._audit = AuditProjection(self._store, self._db)
            await self._audit.start()
            self._proc = ProcProjection(self._store, self._db, self.settings.projection)
            await self._proc.start()
            self._events = EventsProjection(self._store, self._db, self.settings.projection)
            await self._events.start()
            self._agents = AgentsProjection(self._store, self._db, self.settings.projection)
            await self._agents.start()
            self._registry = RegistryService(self._projection, node=self.node, audit=self._audit, proc=self._proc,
                                             events=self._events)
            self._registry.agents_projection = self._agents
            self._registry.rebuilder = self.rebuild_projections
            self.env = EnvService(self._registry, environ=self.settings.environ, base_dir=self.settings.app_dir)
            self.databases = SqlHub(self._registry, env=self.env, cwd=self.settings.app_dir)
            self.stores = StoreHub(self._registry, nats=self._store.client, namespace=self.settings.namespace,
                                   databases=self.databases)
        except BaseException:
            await self.aclose()
            raise
        return self

    async def run_positions(self, run_id: str) -> list[int]:
        """Where the records of an agent run are on the agents stream (the agents projection's index)."""
        assert self._agents is not None, "runtime not open"
        return await self._agents.run_positions(run_id)

    async def rebuild_projections(self) -> dict[str, Any]:
        """Rebuild the projections from the start of the log beside the live ones, then swap each in:
        the registry's tables are replaced in its writer (its state in memory is the log's already);
        each stream projection's runner stops, its tables are replaced in one transaction, and a new
        runner carries on from where the rebuild ended. Queries never wait."""
        assert self._db is not None and self._store is not None and self._registry is not None, "runtime not open"
        out = self.state_dir.path / "projections.rebuild.duckdb"
        swapped: dict[str, int] = {}
        try:
            assert self._projection is not None
            for _attempt in range(5):  # the registry's tables must cover exactly what it has written
                await self._projection.flush()
                result = await replay_to(self._store, out, full=True)
                await self._projection.wait_for(result.registry_seq)
                if await self._projection.swap_tables(out, REGISTRY_TABLES, expect_seq=result.registry_seq):
                    swapped[REGISTRY] = result.registry_seq
                    break
            else:
                raise LogError("the registry kept changing during the rebuild; try again")
            for attr, factory, tables, name in (
                ("_proc", ProcProjection, PROC_TABLES, PROC),
                ("_events", EventsProjection, ("events",), EVENTS),
                ("_audit", AuditProjection, ("audit",), AUDIT),
                ("_agents", AgentsProjection, AGENTS_TABLES, AGENTS),
            ):
                old = getattr(self, attr)
                if old is not None:
                    await old.aclose()
                swapped[name] = await asyncio.to_thread(self._db.replace_from, out, tables, checkpoint=name)
                fresh = factory(self._store, self._db, self.settings.projection)
                await fresh.start()
                setattr(self, attr, fresh)
            self._registry.proc_projection = self._proc
            self._registry.events_projection = self._events
            self._registry.audit_projection = self._audit
            self._registry.agents_projection = self._agents
        finally:
            await asyncio.to_thread(out.unlink, missing_ok=True)
            await asyncio.to_thread(out.with_name(out.name + ".wal").unlink, missing_ok=True)
        return {"rebuilt": swapped, "records": result.records}

    async def aclose(self) -> None:
        """Release everything in reverse order. Idempotent."""
        projection, self._projection = self._projection, None
        databases, self.databases = self.databases, None
        audit, self._audit = self._audit, None
        proc, self._proc = self._proc, None
        events, self._events = self._events, None
        agents, self._agents = self._agents, None
        db, self._db = self._db, None
        store, self._store = self._store, None
        server, self.server = self.server, None
        try:
            if databases is not None:
                await databases.aclose()
            if events is not None:
                await events.aclose()
            if agents is not None:
                await agents.aclose()
            if proc is not None:
                await proc.aclose()
            if audit is not None:
                await audit.aclose()
            if projection is not None:
                await projection.aclose()
        finally:
            try:
                if db is not None:
                    db.close()
            finally:
                try:
                    if store is not None:
                        await store.aclose()
                finally:
                    if server is not None:
                        await server.aclose()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


class Node(Runtime):
    """A runtime that serves admin requests and advertises itself in the state dir."""

    def __init__(self, settings: RuntimeSettings, state: StateDir) -> None:
        super().__init__(settings, state)
        self._admin: AdminServer | None = None
        #: the node's metrics (the `metrics` module records into it)
        self.telemetry: Telemetry | None = None
        #: the node's processes (process hosts, mailboxes, links, names)
        self.processes: ProcessRuntime | None = None
        #: starts auto_start hosts and services (`start_all`), restarts services, stops them in order
        self.supervisor: Supervisor | None = None
        #: the node's HTTP servers (started by `start_services`, rebuilt on registry versions)
        self.http: HttpServers | None = None
        #: the node's event bus (`events` in Lua)
        self.events: EventBus | None = None
        self._log_handler: LogsToEvents | None = None
        #: the HTTP admin API, when configured
        self.admin_http: AdminHttp | None = None
        #: the node's queues and queue consumers (started by `start_services`)
        self.queues: QueueHub | None = None
        #: the node's LLM service (the native wippy.llm:llm library calls it)
        self.llm: LlmService | None = None
        #: the llm.call records of this node's model calls (on the agents stream)
        self.llm_calls: LlmCallLog | None = None
        #: the records of this node's agent runs (durable, resumable runs)
        self.agent_runs: RunJournal | None = None

    async def open(self) -> Self:
        await super().open()
        try:
            self.telemetry = Telemetry(self.settings.telemetry)
            self.events = EventBus(node=self.node, store=self.store)
            await self.events.start()
            if self.settings.logs_to_events:
                self._log_handler = LogsToEvents(self.events)
                logging.getLogger().addHandler(self._log_handler)
            self.llm_calls = LlmCallLog(node=self.node, store=self.store)
            await self.llm_calls.start()
            self.agent_runs = RunJournal(node=self.node, store=self.store, positions=self.run_positions)
            self.llm = RecordedLlmService(self.registry, env_chain(self.env, self.settings.environ),
                                          calls=self.llm_calls, runs=self.agent_runs)  # before any host
            self.processes = ProcessRuntime(node=self.node, store=self.store, registry=self.registry,
                                            host_factory=self.make_host)
            await self.processes.start()
            self.supervisor = Supervisor(self.processes, self.registry)
            self.queues = QueueHub(self.registry, self.processes, nats=self.store.client,
                                   namespace=self.settings.namespace)
            self.http = HttpServers(
                registry=self.registry, processes=self.processes, node=self.node, store=self.store,
                base_dir=self.settings.app_dir,
                deps=MiddlewareDeps(registry=self.registry, stores=self.stores, env=self.env,
                                    telemetry=self.telemetry, expr=evaluate_expr,
                                    strict=self.settings.security_strict))
            self._admin = AdminServer(self.store, self.registry, self.node)
            await self._admin.start()
            if self.settings.admin_http.addr is not None:
                self.admin_http = AdminHttp(self.settings.admin_http, registry=self.registry, bus=self.events,
                                            node=self.node)
                await self.admin_http.start()
            self.state_dir.write_node_record(
                NodeRecord(pid=os.getpid(), node=self.node, nats_url=self.url, namespace=self.subjects.namespace)
            )
        except BaseException:
            await self.aclose()
            raise
        return self

    def make_host(self, host_id: str, pid: str, *, stdio: Any = None, args: tuple[str, ...] = ()) -> LuaHost:
        """A LuaHost for one process host of this node (its processes share it)."""
        entry = self.registry.get(host_id)
        limits = LuaSettings()
        mailbox_limit = 10_000  # HostContext's default
        if entry is not None:
            default = PROCESS_HOST_MEMORY if entry.kind == "process.host" else limits.max_memory
            limits = dataclasses.replace(limits, max_memory=host_memory(entry, default))
            mailbox_limit = host_mailbox_limit(entry, mailbox_limit)
        return LuaHost(HostContext(registry=self.registry, node=self.node, pid=pid, stdio=stdio, args=args,
                                   settings=limits, mailbox_limit=mailbox_limit,
                                   strict=self.settings.security_strict, stores=self.stores,
                                   audit=self.registry.record_denied, expr=evaluate_expr, env=self.env,
                                   telemetry=self.telemetry, processes=self.processes,
                                   supervisor=self.supervisor, events=self.events, queues=self.queues,
                                   databases=self.databases, base_dir=self.settings.app_dir, llm=self.llm,
                                   agent_runs=self.agent_runs))

    async def start_services(self) -> list[str]:
        """Start the auto_start hosts and services, then the queue consumers and HTTP servers."""
        assert self.supervisor is not None and self.http is not None and self.queues is not None, "node not open"
        started = await self.supervisor.start_all()
        assert self.processes is not None
        await self.processes.settle()  # services run to their first wait before anything is served
        started += await self.queues.start()
        started += await self.http.start()
        self.registry.ready = True
        return started

    async def aclose(self) -> None:
        self.state_dir.clear_node_record()
        admin, self._admin = self._admin, None
        admin_http, self.admin_http = self.admin_http, None
        telemetry, self.telemetry = self.telemetry, None
        processes, self.processes = self.processes, None
        supervisor, self.supervisor = self.supervisor, None
        http, self.http = self.http, None
        queues, self.queues = self.queues, None
        events, self.events = self.events, None
        llm, self.llm = self.llm, None
        llm_calls, self.llm_calls = self.llm_calls, None
        if self._log_handler is not None:
            logging.getLogger().removeHandler(self._log_handler)
            self._log_handler = None
        try:
            if admin_http is not None:
                await admin_http.aclose()
            if http is not None:  # no new requests; running ones finish before their code goes away
                await http.aclose()
            if queues is not None:  # no new deliveries; running handlers finish
                await queues.aclose()
            if supervisor is not None:
                await supervisor.aclose()
            if processes is not None:
                await processes.aclose()
            if events is not None:
                await events.aclose()
            if llm is not None:  # after the processes: no call is running any more
                await llm.aclose()
            if llm_calls is not None:  # the records of the last calls reach the log
                await llm_calls.aclose()
            if admin is not None:
                await admin.aclose()
        finally:
            try:
                if telemetry is not None:
                    await asyncio.to_thread(telemetry.close)  # a final OTLP push must not block the loop
            finally:
                await super().aclose()
