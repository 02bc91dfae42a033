"""Projections: folds of the log into state, in memory and in DuckDB.

The registry projection keeps current entries in memory for serving and writes the
``registry_*`` tables of the state dir's DuckDB file in batches, with its checkpoint in the same
transaction. The audit and process projections follow their streams into the ``audit`` and
``process*`` tables the same way.
"""

from ._agents import AGENTS as AGENTS
from ._agents import AGENTS_TABLES as AGENTS_TABLES
from ._agents import AgentsProjection as AgentsProjection
from ._audit import AUDIT as AUDIT
from ._audit import AuditProjection as AuditProjection
from ._duckdb import REGISTRY as REGISTRY
from ._duckdb import REGISTRY_TABLES as REGISTRY_TABLES
from ._duckdb import PersistedRegistry as PersistedRegistry
from ._duckdb import ProjectionDB as ProjectionDB
from ._duckdb import QueryResult as QueryResult
from ._events import EVENTS as EVENTS
from ._events import EventsProjection as EventsProjection
from ._proc import PROC as PROC
from ._proc import PROC_TABLES as PROC_TABLES
from ._proc import ProcProjection as ProcProjection
from ._registry_runner import ProjectionSettings as ProjectionSettings
from ._registry_runner import RegistryProjection as RegistryProjection
from ._registry_state import AppliedChangeset as AppliedChangeset
from ._registry_state import RegistryState as RegistryState
from ._registry_state import fold as fold
from ._replay import ReplayResult as ReplayResult
from ._replay import replay_to as replay_to

__all__ = [
    "AGENTS",
    "AGENTS_TABLES",
    "AUDIT",
    "EVENTS",
    "PROC",
    "PROC_TABLES",
    "REGISTRY",
    "REGISTRY_TABLES",
    "AgentsProjection",
    "AppliedChangeset",
    "AuditProjection",
    "EventsProjection",
    "PersistedRegistry",
    "ProcProjection",
    "ProjectionDB",
    "ProjectionSettings",
    "QueryResult",
    "RegistryProjection",
    "RegistryState",
    "ReplayResult",
    "fold",
    "replay_to",
]
