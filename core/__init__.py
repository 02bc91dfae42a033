"""The log and the registry model.

``core`` imports nothing from the other folders. It holds the record envelope, subject names,
the JetStream event store and embedded server, and the registry's domain: entries, changesets,
validation, the three-way file merge and the app loader.
"""

from . import _fs_exec_kinds as _fs_exec_kinds  # registers fs.directory/exec.native kind checks
from . import _proc_records as proc_records
from ._agent_records import RUN_FINISHED as AGENT_RUN_FINISHED
from ._agent_records import RUN_RECORD_TYPES as AGENT_RUN_RECORD_TYPES
from ._agent_records import RUN_STARTED as AGENT_RUN_STARTED
from ._agent_records import TOOL_RESULT as AGENT_TOOL_RESULT
from ._agent_records import TOOL_STARTED as AGENT_TOOL_STARTED
from ._agent_records import cap_run_body as cap_run_body
from ._agent_records import is_truncated as is_truncated
from ._changeset import AppliedOp as AppliedOp
from ._changeset import Changeset as Changeset
from ._changeset import ChangesetBuilder as ChangesetBuilder
from ._changeset import Op as Op
from ._changeset import OpKind as OpKind
from ._changeset import apply_ops as apply_ops
from ._changeset import diff_states as diff_states
from ._changeset import squash as squash
from ._components import NativeComponent as NativeComponent
from ._components import native_components as native_components
from ._components import register_native_component as register_native_component
from ._contracts import BINDING_KIND as CONTRACT_BINDING_KIND
from ._contracts import DEFINITION_KIND as CONTRACT_DEFINITION_KIND
from ._contracts import BoundContract as BoundContract
from ._contracts import bound_contracts as bound_contracts
from ._data_kinds import QUEUE_CODECS as QUEUE_CODECS
from ._data_kinds import ConsumerSpec as ConsumerSpec
from ._data_kinds import QueueSpec as QueueSpec
from ._data_kinds import consumer_spec as consumer_spec
from ._data_kinds import queue_spec as queue_spec
from ._durations import MAX_DURATION as MAX_DURATION
from ._durations import MIN_DURATION as MIN_DURATION
from ._durations import format_go_duration as format_go_duration
from ._durations import go_quote as go_quote
from ._durations import parse_go_duration as parse_go_duration
from ._entry import Entry as Entry
from ._entry import canonical_json as canonical_json
from ._entry import parse_id as parse_id
from ._env import STORAGE_KINDS as ENV_STORAGE_KINDS
from ._env import EnvLookup as EnvLookup
from ._env import EnvVariable as EnvVariable
from ._env import env_file_spec as env_file_spec
from ._env import env_router_storages as env_router_storages
from ._env import env_static_values as env_static_values
from ._env import env_variable_from_entry as env_variable_from_entry
from ._env import resolve_entry as resolve_entry
from ._env import resolve_entry_data as resolve_entry_data
from ._errors import ConfigError as ConfigError
from ._errors import ConflictError as ConflictError
from ._errors import DefinitionError as DefinitionError
from ._errors import DefinitionErrors as DefinitionErrors
from ._errors import LogError as LogError
from ._errors import LogUnavailableError as LogUnavailableError
from ._errors import NotFoundError as NotFoundError
from ._errors import NotImplementedFeatureError as NotImplementedFeatureError
from ._errors import PayloadTooLargeError as PayloadTooLargeError
from ._errors import RecordError as RecordError
from ._errors import WippyError as WippyError
from ._errors import error_from_json as error_from_json
from ._errors import error_to_json as error_to_json
from ._events import EVENT as EVENT_RECORD
from ._events import PatternError as EventPatternError
from ._events import compile_pattern as compile_event_pattern
from ._events import event_body as event_body
from ._events import matches as event_matches
from ._expr import ExprError as ExprError
from ._expr import ExprEvalError as ExprEvalError
from ._expr import Program as ExprProgram
from ._expr import compile_expr as compile_expr
from ._expr import evaluate as evaluate_expr
from ._hosts import PROCESS_HOST_MEMORY as PROCESS_HOST_MEMORY
from ._hosts import host_mailbox_limit as host_mailbox_limit
from ._hosts import host_memory as host_memory
from ._hosts import parse_size as parse_size
from ._http import DEFAULT_MAX_BODY as HTTP_DEFAULT_MAX_BODY
from ._http import EndpointSpec as EndpointSpec
from ._http import RouterSpec as RouterSpec
from ._http import Segment as PathSegment
from ._http import ServiceSpec as ServiceSpec
from ._http import TlsSpec as TlsSpec
from ._http import endpoint_spec as endpoint_spec
from ._http import join_path as join_path
from ._http import parse_addr as parse_addr
from ._http import parse_path as parse_path
from ._http import router_spec as router_spec
from ._http import service_spec as service_spec
from ._jet_lex import JetSyntaxError as JetSyntaxError
from ._jet_parse import parse_template as parse_jet_template
from ._kinds import KNOWN_KINDS as KNOWN_KINDS
from ._kinds import iter_references as iter_references
from ._llm_records import LLM_CALL as LLM_CALL_RECORD
from ._llm_records import cap_call_body as cap_llm_call_body
from ._loader import LoadedApp as LoadedApp
from ._loader import LoadedEntry as LoadedEntry
from ._loader import load_app as load_app
from ._merge import FileEntry as FileEntry
from ._merge import MergePlan as MergePlan
from ._merge import plan_files_apply as plan_files_apply
from ._nats_kv import JetStreamKV as JetStreamKV
from ._nats_kv import KeyExistsError as KeyExistsError
from ._nats_kv import bucket_name as kv_bucket_name
from ._nats_queue import JetStreamQueues as JetStreamQueues
from ._nats_queue import QueueConsumer as QueueConsumer
from ._nats_queue import QueueMessage as QueueMessage
from ._pipeline import Pipeline as Pipeline
from ._records import Record as Record
from ._records import new_traceparent as new_traceparent
from ._records import register_type as register_type
from ._regex import RegexError as RegexError
from ._regex import compile_re2 as compile_re2
from ._regex import re2_search as re2_search
from ._registry_log import Appended as Appended
from ._registry_log import ChangesetAssembler as ChangesetAssembler
from ._registry_log import DecodedChangeset as DecodedChangeset
from ._registry_log import WriteContext as WriteContext
from ._registry_log import append_changeset as append_changeset
from ._security import POLICY_KINDS as POLICY_KINDS
from ._security import PolicySpec as PolicySpec
from ._security import Request as Request
from ._security import evaluate as evaluate_policies
from ._security import policy_from_entry as policy_from_entry
from ._server import LogServer as LogServer
from ._server import ServerSettings as ServerSettings
from ._server import find_nats_server as find_nats_server
from ._sql_kinds import DB_KINDS as DB_KINDS
from ._sql_kinds import NULL as SQL_NULL
from ._sql_kinds import DuckdbSpec as DuckdbSpec
from ._sql_kinds import ServerSpec as ServerSpec
from ._sql_kinds import SqliteSpec as SqliteSpec
from ._sql_kinds import SqlNull as SqlNull
from ._sql_kinds import TypedValue as TypedValue
from ._sql_kinds import db_spec as db_spec
from ._sql_kinds import plain_param as plain_param
from ._sql_kinds import sql_store_spec as sql_store_spec
from ._store import EventStore as EventStore
from ._store import JetStreamEventStore as JetStreamEventStore
from ._store import StoreSettings as StoreSettings
from ._store import Subscription as Subscription
from ._subjects import Subjects as Subjects
from ._template_kinds import SET_KIND as TEMPLATE_SET_KIND
from ._template_kinds import TEMPLATE_KIND as TEMPLATE_JET_KIND
from ._template_kinds import engine_spec as template_engine_spec
from ._template_kinds import template_name as template_name
from ._tokens import Authorizer as Authorizer
from ._tokens import Grant as Grant
from ._tokens import InvalidTokenError as InvalidTokenError
from ._tokens import PermissionDeniedError as PermissionDeniedError
from ._tokens import TokenService as TokenService
from ._validate import KindCheck as KindCheck
from ._validate import RegistryView as RegistryView
from ._validate import register_kind_check as register_kind_check
from ._validate import validate_changeset as validate_changeset
from ._yaml import YamlError as YamlError
from ._yaml import loads as load_yaml

__all__ = [
    "AGENT_RUN_FINISHED",
    "AGENT_RUN_RECORD_TYPES",
    "AGENT_RUN_STARTED",
    "AGENT_TOOL_RESULT",
    "AGENT_TOOL_STARTED",
    "CONTRACT_BINDING_KIND",
    "CONTRACT_DEFINITION_KIND",
    "DB_KINDS",
    "ENV_STORAGE_KINDS",
    "EVENT_RECORD",
    "HTTP_DEFAULT_MAX_BODY",
    "KNOWN_KINDS",
    "LLM_CALL_RECORD",
    "MAX_DURATION",
    "MIN_DURATION",
    "POLICY_KINDS",
    "PROCESS_HOST_MEMORY",
    "QUEUE_CODECS",
    "SQL_NULL",
    "TEMPLATE_JET_KIND",
    "TEMPLATE_SET_KIND",
    "Appended",
    "AppliedOp",
    "Authorizer",
    "BoundContract",
    "Changeset",
    "ChangesetAssembler",
    "ChangesetBuilder",
    "ConfigError",
    "ConflictError",
    "ConsumerSpec",
    "DecodedChangeset",
    "DefinitionError",
    "DefinitionErrors",
    "DuckdbSpec",
    "EndpointSpec",
    "Entry",
    "EnvLookup",
    "EnvVariable",
    "EventPatternError",
    "EventStore",
    "ExprError",
    "ExprEvalError",
    "ExprProgram",
    "FileEntry",
    "Grant",
    "InvalidTokenError",
    "JetStreamEventStore",
    "JetStreamKV",
    "JetStreamQueues",
    "JetSyntaxError",
    "KeyExistsError",
    "KindCheck",
    "LoadedApp",
    "LoadedEntry",
    "LogError",
    "LogServer",
    "LogUnavailableError",
    "MergePlan",
    "NativeComponent",
    "NotFoundError",
    "NotImplementedFeatureError",
    "Op",
    "OpKind",
    "PathSegment",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Pipeline",
    "PolicySpec",
    "QueueConsumer",
    "QueueMessage",
    "QueueSpec",
    "Record",
    "RecordError",
    "RegexError",
    "RegistryView",
    "Request",
    "RouterSpec",
    "ServerSettings",
    "ServerSpec",
    "ServiceSpec",
    "SqlNull",
    "SqliteSpec",
    "StoreSettings",
    "Subjects",
    "Subscription",
    "TlsSpec",
    "TokenService",
    "TypedValue",
    "WippyError",
    "WriteContext",
    "YamlError",
    "append_changeset",
    "apply_ops",
    "bound_contracts",
    "canonical_json",
    "cap_llm_call_body",
    "cap_run_body",
    "compile_event_pattern",
    "compile_expr",
    "compile_re2",
    "consumer_spec",
    "db_spec",
    "diff_states",
    "endpoint_spec",
    "env_file_spec",
    "env_router_storages",
    "env_static_values",
    "env_variable_from_entry",
    "error_from_json",
    "error_to_json",
    "evaluate_expr",
    "evaluate_policies",
    "event_body",
    "event_matches",
    "find_nats_server",
    "format_go_duration",
    "go_quote",
    "host_mailbox_limit",
    "host_memory",
    "is_truncated",
    "iter_references",
    "join_path",
    "kv_bucket_name",
    "load_app",
    "load_yaml",
    "native_components",
    "new_traceparent",
    "parse_addr",
    "parse_go_duration",
    "parse_id",
    "parse_jet_template",
    "parse_path",
    "parse_size",
    "plain_param",
    "plan_files_apply",
    "policy_from_entry",
    "proc_records",
    "queue_spec",
    "re2_search",
    "register_kind_check",
    "register_native_component",
    "register_type",
    "resolve_entry",
    "resolve_entry_data",
    "router_spec",
    "service_spec",
    "sql_store_spec",
    "squash",
    "template_engine_spec",
    "template_name",
    "validate_changeset",
]
