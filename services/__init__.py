"""Services consume the log and never hold truth of their own.

The registry service validates and appends changesets and answers reads from the projections;
a node composes the log connection, the projections and the admin API over NATS.
"""

from . import _system_agents as _system_agents  # registers the wippy/registry and wippy/coder components
from ._admin import AdminClient as AdminClient
from ._admin import AdminServer as AdminServer
from ._admin_http import AdminHttpSettings as AdminHttpSettings
from ._commands import COMMANDS as COMMANDS
from ._commands import CallContext as CallContext
from ._commands import execute as execute
from ._env import EnvService as EnvService
from ._node import Node as Node
from ._node import Runtime as Runtime
from ._node import RuntimeSettings as RuntimeSettings
from ._queues import QueueHub as QueueHub
from ._registry import ApplyResult as ApplyResult
from ._registry import RegistryService as RegistryService
from ._sql import SqlError as SqlError
from ._sql import SqlHub as SqlHub
from ._statedir import NodeRecord as NodeRecord
from ._statedir import StateDir as StateDir
from ._telemetry import MetricError as MetricError
from ._telemetry import Telemetry as Telemetry
from ._telemetry import TelemetryError as TelemetryError
from ._telemetry import TelemetrySettings as TelemetrySettings
from ._terminal import Command as Command
from ._terminal import commands as commands
from ._terminal import find_command as find_command
from ._terminal import run_terminal_process as run_terminal_process

__all__ = [
    "COMMANDS",
    "AdminClient",
    "AdminHttpSettings",
    "AdminServer",
    "ApplyResult",
    "CallContext",
    "Command",
    "EnvService",
    "MetricError",
    "Node",
    "NodeRecord",
    "QueueHub",
    "RegistryService",
    "Runtime",
    "RuntimeSettings",
    "SqlError",
    "SqlHub",
    "StateDir",
    "Telemetry",
    "TelemetryError",
    "TelemetrySettings",
    "commands",
    "execute",
    "find_command",
    "run_terminal_process",
]
