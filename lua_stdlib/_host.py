"""The Lua host of one process: sandboxes for entries, `require`, and the code of entries.

One ``LuaHost`` owns one ``LuaVM`` (one Lua runtime, bounded memory). The entries it runs (a
process's own code, the functions and libraries it calls) each get their own environment. Their
code comes from registry entries: translated from Wippy's dialect, compiled once per entry
content (a new registry version with a changed entry compiles anew; an unchanged one is reused).

Modules are built once per host by factories registered by name (``register_module``). A name
Wippy documents that this runtime does not provide yet raises UNAVAILABLE when required.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from wippy.core import Entry

from ._native_libs import native_library
from ._security_host import SecurityHost
from ._vm import LuaSettings, LuaVM, _source

log = logging.getLogger("wippy.lua")

CODE_KINDS = frozenset({"function.lua", "process.lua", "library.lua", "module.lua"})

#: Modules Wippy documents that are not built here yet: requiring one raises UNAVAILABLE.
WIPPY_MODULES = frozenset({
    "http", "http_client", "websocket", "sql", "store", "fs", "exec", "templates", "queue", "security",
    "events", "hash", "crypto", "uuid", "base64", "yaml", "logger", "env", "metrics", "system", "expr",
    "text", "treesitter", "contract", "compress", "archive", "excel", "html", "eval_runner", "loader",
    "cloudstorage", "pg", "workflow", "tty", "hub", "cdc", "ctx", "payload", "time", "json", "io", "funcs",
    "registry",
})


class RegistryReader(Protocol):
    """What the host needs from the registry to find code (the registry service provides it)."""

    def get(self, entry_id: str) -> Entry | None: ...


ModuleFactory = Callable[["LuaHost"], Any]
_MODULES: dict[str, ModuleFactory] = {}


def register_module(name: str, factory: ModuleFactory) -> None:
    """Make ``require(name)`` available to entries that list ``name`` in ``modules:``."""
    _MODULES[name] = factory


def available_modules() -> frozenset[str]:
    return frozenset(_MODULES)


class LuaCodeError(Exception):
    """User code failed to load (translation, compilation, top-level error)."""


class ModuleUnavailable(Exception):
    """A module factory cannot serve this host (say, `io` off a terminal host)."""


@dataclass(slots=True)
class _Loaded:
    entry: Entry
    digest: str
    env: Any
    value: Any  # what the chunk returned


@dataclass(frozen=True, slots=True, kw_only=True)
class HostContext:
    """Who the code runs as and what it may reach. Services are structurally typed."""

    registry: Any
    node: str
    pid: str
    settings: LuaSettings = field(default_factory=LuaSettings)
    stdio: Any = None  # the terminal host's streams, for `io`
    args: tuple[str, ...] = ()
    #: security.strict_mode: without an actor and a scope, everything is denied
    strict: bool = False
    #: the node's stores (services.StoreHub), for `store` and token stores
    stores: Any = None
    #: async (action, resource, actor, entry, reason) -> None: puts a denial on the audit stream
    audit: Any = None
    #: (expression, env) -> value: the expr-lang evaluator, for security.policy.expr
    expr: Any = None
    #: the node's env registry (services.EnvService), for `env` and env placeholders
    env: Any = None
    #: the node's metrics (services.Telemetry), for `metrics`
    telemetry: Any = None
    #: the node's process runtime (services.ProcessRuntime), for `process`; None: only process.pid()
    processes: Any = None
    #: messages one mailbox queue may hold before further ones become dead letters (0: no limit)
    mailbox_limit: int = 10_000
    #: the node's supervisor (services.Supervisor), for `system.supervisor`
    supervisor: Any = None
    #: the node's event bus (services.EventBus), for `events`
    events: Any = None
    #: the node's SQL databases (services.SqlHub), for `sql` and store.sql
    databases: Any = None
    #: the node's queues (services.QueueHub), for `queue`
    queues: Any = None
    #: the app's directory: relative fs.directory / exec work dirs resolve against it (None: the cwd)
    base_dir: Path | None = None
    #: the node's LLM service (services.LlmService), for the native wippy.llm:llm library
    llm: Any = None
    #: the node's agent run journal (services.RunJournal), for runner:run's durable runs
    agent_runs: Any = None


class LuaHost:
    def __init__(self, ctx: HostContext) -> None:
        self.ctx = ctx
        self.vm = LuaVM(ctx.settings, label=ctx.pid)
        self._modules: dict[str, Any] = {}
        #: Per-host state of module implementations (Lua libraries built once, caches).
        self.extras: dict[str, Any] = {}
        self._loaded: dict[str, _Loaded] = {}
        self._loading: set[str] = set()
        #: async callables run when the host closes (modules release connections and sessions)
        self._closers: list[Callable[[], Awaitable[None]]] = []
        rt = self.vm.rt
        self._bridge = rt.table_from({
            "print": self._print,
            "payload": None,
        })
        types = self._types_library()
        self.sandbox = rt.execute(_source("sandbox.lua"), self.vm.S, self.vm.channel, self.vm.errors, types,
                                  self._bridge)
        self.vm.channel.public = self.sandbox.readonly(rt.table_from({
            "new": self.vm.channel.new, "select": self.vm.channel.select,
        }), "channel")
        self.vm.errors.public = self.sandbox.readonly(self.vm.errors, "errors")
        # read once here: reading Lua table fields inside callbacks is unsafe (see _vm)
        self._make_env = self.sandbox.make_env
        self._compile = self.sandbox.compile
        self.readonly = self.sandbox.readonly
        self.payload = rt.execute(_source("payload.lua"), self.sandbox.readonly)
        self._bridge.payload = self.payload
        self.security_host = SecurityHost(self.vm, ctx.registry, strict=ctx.strict, stores=ctx.stores,
                                          expr=ctx.expr, env=ctx.env)
        self.security = rt.execute(_source("security.lua"), self.vm.S, self.vm.errors, self.security_host.bridge(),
                                   self.readonly)
        self.check = self.security.check
        from ._process import ProcessBridge

        self.process = ProcessBridge(self, ctx.processes, ctx.pid, ctx.mailbox_limit)
        self.process_global = self.process.public
        #: the pid of the process running now (the host's own pid outside any process)
        self.current_pid = self.vm.get(self.process_global, "pid")

    def _types_library(self) -> Any:
        try:
            from ._types_lib import load_types
        except ImportError:  # the dialect's runtime type library is optional at this layer
            return None
        return load_types(self.vm.rt)

    # -- modules -------------------------------------------------------------------------------
    def module(self, name: str) -> Any:
        found = self._modules.get(name)
        if found is None:
            factory = _MODULES.get(name)
            if factory is None:
                return None
            self.vm.settle()  # factories use rt.execute; we may be inside a Lua call (see _vm)
            found = self.readonly(factory(self), name)
            self._modules[name] = found
        return found

    def _print(self, label: str, text: str) -> None:
        log.info(text, extra={"fields": {"entry": label, "pid": self.current_pid(), "source": "print"}})

    # -- entries ---------------------------------------------------------------------------------
    def entry(self, entry_id: str) -> Entry:
        entry = self.ctx.registry.get(entry_id)
        if entry is None:
            raise LookupError(entry_id)
        assert isinstance(entry, Entry)
        return entry

    def load(self, entry: Entry) -> Any:
        """The value an entry's code returns (a table or a function), compiled once per content."""
        cached = self._loaded.get(entry.id)
        if cached is not None and cached.entry is entry:
            return cached.value
        digest = entry.digest()
        if cached is not None and cached.digest == digest:
            cached.entry = entry
            return cached.value
        if entry.kind not in CODE_KINDS:
            raise LuaCodeError(f"{entry.id} is a {entry.kind}, not Lua code")
        if entry.id in self._loading:
            raise LuaCodeError(f"{entry.id} requires itself (circular imports)")
        source = entry.data.get("source")
        if not isinstance(source, str):
            raise LuaCodeError(f"{entry.id} has no source")
        self._loading.add(entry.id)
        self.vm.settle()
        try:
            env = self._make_env(entry.id, self._require_fn(entry), self.process_global)
            code = self._translate(source, entry)
            compiled = self._compile(code, entry.id, env)
            if isinstance(compiled, tuple):  # load() failed: nil, message
                raise LuaCodeError(str(compiled[1]))
            chunk = compiled
            try:
                value = chunk()
            except Exception as exc:  # lupa raises LuaError for errors in top-level code
                raise LuaCodeError(f"{entry.id}: loading failed: {_lua_message(exc)}") from exc
        finally:
            self._loading.discard(entry.id)
        self._loaded[entry.id] = _Loaded(entry, digest, env, value)
        return value

    def _translate(self, source: str, entry: Entry) -> str:
        from ._dialect import DialectError, translate

        try:
            return translate(source, entry.id).code
        except DialectError as exc:
            raise LuaCodeError(str(exc)) from exc

    def callable(self, entry: Entry) -> Any:
        """The function an entry runs: its ``method`` in the returned table, or the returned function."""
        value = self.load(entry)
        method = entry.data.get("method")
        from lupa.lua54 import lua_type  # type: ignore[import-untyped]

        if method:
            if lua_type(value) != "table":
                raise LuaCodeError(f"{entry.id}: method {method!r} named, but the code returns a {lua_type(value)}")
            fn = self.vm.get(value, method)
            if lua_type(fn) != "function":
                raise LuaCodeError(f"{entry.id}: the code returns no function named {method!r}")
            return fn
        if lua_type(value) == "function":
            return value
        raise LuaCodeError(f"{entry.id}: the code returns a {lua_type(value)}; name its function with `method:`")

    def _require_fn(self, entry: Entry) -> Any:
        allowed = entry.data.get("modules") or []
        imports = entry.data.get("imports") or {}
        modules = {str(m) for m in allowed} if isinstance(allowed, list) else set()
        import_map = {str(k): str(v) for k, v in imports.items()} if isinstance(imports, dict) else {}

        def require(name: Any) -> tuple[Any, str | None]:
            name = str(name)
            if name in import_map:
                target = import_map[name]
                lib = self.ctx.registry.get(target) or native_library(target)
                if lib is None:
                    return None, f"require({name!r}): library {target} does not exist ({entry.id} imports it)"
                try:
                    return self.load(lib), None
                except LuaCodeError as exc:
                    return None, f"require({name!r}): {exc}"
            if name not in modules:
                if name in WIPPY_MODULES or name in _MODULES:
                    return None, f"require({name!r}): module {name} is not in the modules: list of {entry.id}"
                return None, f"require({name!r}): no module or import named {name} (entry {entry.id})"
            try:
                found = self.module(name)
            except ModuleUnavailable as exc:
                return None, f"require({name!r}): UNAVAILABLE: {exc}"
            if found is None:
                return None, f"require({name!r}): UNAVAILABLE: module {name} is not implemented in this runtime yet"
            return found, None

        return require

    def on_close(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Run ``closer`` when the host closes, after its tasks are stopped (newest first)."""
        self._closers.append(closer)

    async def aclose(self) -> None:
        await self.vm.aclose()
        closers, self._closers = self._closers, []
        for closer in reversed(closers):
            try:
                await closer()
            except Exception:
                log.exception("%s: releasing a module's resources failed", self.ctx.pid)


def _lua_message(exc: BaseException) -> str:
    text = str(exc)
    return text.split("\nstack traceback:", 1)[0]
