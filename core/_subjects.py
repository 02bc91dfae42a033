"""Stream names and subjects: built here, never by string formatting anywhere else.

One deployment (the streams of one app) lives under a *namespace* prefix, ``wippy`` by default,
so several apps can share one NATS server without seeing each other's records::

    stream WIPPY_REGISTRY   wippy.registry.commit   one record per applied changeset
                            wippy.registry.chunk    parts of a changeset too big for one message
    stream WIPPY_PROC       wippy.proc.<node>[.log] process deliveries [lifecycle], pid in the body
    stream WIPPY_EVENTS     wippy.events.<node>     the event bus (events sent on that node)
    stream WIPPY_AUDIT      wippy.audit.<kind>      security decisions worth keeping (denied changes)
    stream WIPPY_HTTP       wippy.http.<node>       the HTTP access log (services that turn it on)
    stream WIPPY_AGENTS     wippy.agents.<node>     model calls (llm.call) made on that node
    (no stream)             wippy.admin.<node>.<verb>   requests to a running node
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._errors import ConfigError

_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


def _check_token(value: str, what: str) -> str:
    if not _TOKEN.match(value):
        raise ConfigError(f"{what} {value!r} must be letters, digits, '_' or '-' (it becomes a NATS subject token)")
    return value


@dataclass(frozen=True, slots=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    description: str


@dataclass(frozen=True, slots=True)
class Subjects:
    """Every stream name and subject of one deployment namespace."""

    namespace: str = "wippy"

    def __post_init__(self) -> None:
        _check_token(self.namespace, "namespace")

    # -- streams ---------------------------------------------------------------------------
    @property
    def registry_stream(self) -> str:
        return f"{self.namespace.upper()}_REGISTRY"

    @property
    def proc_stream(self) -> str:
        return f"{self.namespace.upper()}_PROC"

    @property
    def events_stream(self) -> str:
        return f"{self.namespace.upper()}_EVENTS"

    @property
    def audit_stream(self) -> str:
        return f"{self.namespace.upper()}_AUDIT"

    @property
    def http_stream(self) -> str:
        return f"{self.namespace.upper()}_HTTP"

    @property
    def agents_stream(self) -> str:
        return f"{self.namespace.upper()}_AGENTS"

    def streams(self) -> tuple[StreamSpec, ...]:
        ns = self.namespace
        return (
            StreamSpec(self.registry_stream, (f"{ns}.registry.>",), "registry changesets; seq = version"),
            StreamSpec(self.proc_stream, (f"{ns}.proc.>",), "process messages and lifecycle"),
            StreamSpec(self.events_stream, (f"{ns}.events.>",), "the event bus"),
            StreamSpec(self.audit_stream, (f"{ns}.audit.>",), "security audit records"),
            StreamSpec(self.http_stream, (f"{ns}.http.>",), "the HTTP access log"),
            StreamSpec(self.agents_stream, (f"{ns}.agents.>",), "model calls and agent runs"),
        )

    # -- registry ----------------------------------------------------------------------------
    @property
    def registry_commit(self) -> str:
        return f"{self.namespace}.registry.commit"

    @property
    def registry_chunk(self) -> str:
        return f"{self.namespace}.registry.chunk"

    @property
    def registry_all(self) -> str:
        return f"{self.namespace}.registry.>"

    # -- processes and events ------------------------------------------------------------------
    def proc(self, node: str) -> str:
        """Deliveries to the processes of ``node`` (messages, signals): what that node consumes."""
        return f"{self.namespace}.proc.{_check_token(node, 'node id')}"

    def proc_log(self, node: str) -> str:
        """The lifecycle records of ``node``'s processes (spawned, exited, links, names, services)."""
        return f"{self.namespace}.proc.{_check_token(node, 'node id')}.log"

    def events(self, node: str) -> str:
        """The events sent on ``node`` (system, kind and path are in the record)."""
        return f"{self.namespace}.events.{_check_token(node, 'node id')}"

    def audit(self, kind: str) -> str:
        return f"{self.namespace}.audit.{_check_token(kind, 'audit kind')}"

    def http(self, node: str) -> str:
        """The access-log records of ``node``'s HTTP servers."""
        return f"{self.namespace}.http.{_check_token(node, 'node id')}"

    def agents(self, node: str) -> str:
        """The model-call (and, later, agent-run) records of ``node``."""
        return f"{self.namespace}.agents.{_check_token(node, 'node id')}"

    # -- admin -------------------------------------------------------------------------------
    def admin(self, node: str, verb: str) -> str:
        return f"{self.namespace}.admin.{_check_token(node, 'node id')}.{_check_token(verb, 'admin verb')}"

    def admin_all(self, node: str) -> str:
        return f"{self.namespace}.admin.{_check_token(node, 'node id')}.*"
