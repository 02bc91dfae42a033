"""The node's env registry: env storages and variables from the current registry entries.

One ``EnvService`` per node answers ``env.get``/``env.set``/``env.get_all`` for Lua and the env
lookups that placeholders in entry data need (``resolve``). It reads the registry on every call
(its index of variables is rebuilt when the registry version changes), so a variable applied a
moment ago is visible to the next ``env.get``. Storage backends are made on first use from their
entries and made anew when an entry changes (a changed memory storage starts empty).

Backends (services/_env_storages.py): the OS environment as ``ops`` read it at start-up (read-only),
memory (per node), static values (read-only), ``.env`` files and routers. Lookups follow Wippy: a public variable name
first, then an entry id, then a bare name in the caller's namespace; an empty value counts as
unset, so the variable's ``default`` applies. Names that are no ``env.variable`` are not found:
the OS environment is reachable only through variables.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wippy.core import (
    ENV_STORAGE_KINDS,
    DefinitionError,
    Entry,
    EnvVariable,
    NotFoundError,
    PermissionDeniedError,
    WippyError,
    env_static_values,
    env_variable_from_entry,
    resolve_entry,
)

from ._env_storages import FileStorage, MemoryStorage, ReadOnlyStorage, RouterStorage, Storage

log = logging.getLogger("wippy.env")


@dataclass(slots=True)
class _Index:
    key: tuple[Any, int]
    variables: dict[str, EnvVariable | DefinitionError] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    storages: list[str] = field(default_factory=list)


class EnvService:
    """env.get/set/get_all and placeholder lookups over the registry's env entries."""

    def __init__(self, registry: Any, *, environ: Mapping[str, str] | None = None,
                 base_dir: Path | None = None) -> None:
        self._registry = registry
        self._environ = dict(environ or {})
        self._base_dir = base_dir
        self._backends: dict[str, tuple[Entry, Storage]] = {}
        self._index_cache: _Index | None = None

    # -- the registry side ---------------------------------------------------------------------
    def _index(self) -> _Index:
        current = self._registry.current()
        key = (getattr(self._registry, "version", None), id(current))
        cached = self._index_cache
        if cached is not None and cached.key == key and key[0] is not None:
            return cached
        index = _Index(key)
        for entry in list(current.values()):
            if entry.kind == "env.variable":
                try:
                    var = env_variable_from_entry(entry)
                except DefinitionError as exc:
                    index.variables[entry.id] = exc
                    continue
                index.variables[entry.id] = var
                index.names.setdefault(var.key, entry.id)  # the first variable to claim a name keeps it
            elif entry.kind in ENV_STORAGE_KINDS:
                index.storages.append(entry.id)
        self._index_cache = index
        return index

    def variable(self, name: str, ns: str | None = None) -> EnvVariable | None:
        """The variable a name means: a public name, an entry id, or a bare name in ``ns``."""
        index = self._index()
        found = index.variables.get(index.names.get(name, name))
        if found is None and ns and ":" not in name:
            found = index.variables.get(f"{ns}:{name}")
        if isinstance(found, DefinitionError):
            raise found
        return found

    def storage(self, storage_id: str) -> Storage:
        entry = self._registry.get(storage_id)
        if entry is None:
            raise NotFoundError(f"env storage {storage_id} does not exist")
        cached = self._backends.get(storage_id)
        if cached is not None and cached[0] is entry:
            return cached[1]
        backend: Storage
        if entry.kind == "env.storage.os":
            backend = ReadOnlyStorage(entry.id, self._environ)
        elif entry.kind == "env.storage.static":
            backend = ReadOnlyStorage(entry.id, env_static_values(entry))
        elif entry.kind == "env.storage.memory":
            backend = MemoryStorage(entry.id)
        elif entry.kind == "env.storage.file":
            backend = FileStorage(entry, self._base_dir)
        elif entry.kind == "env.storage.router":
            backend = RouterStorage(entry, self)
        else:
            raise DefinitionError(f"{storage_id} is a {entry.kind}, not an env storage")
        self._backends[storage_id] = (entry, backend)
        return backend

    # -- reads and writes ----------------------------------------------------------------------
    def _value(self, var: EnvVariable) -> str:
        """The stored value, else the default, else "" (unset)."""
        return self.storage(var.storage).get(var.key) or var.default

    def get(self, name: str, ns: str | None = None) -> str:
        var = self.variable(name, ns)
        if var is None:
            raise NotFoundError(f"environment variable {name} not found (no env.variable has that name or id)")
        value = self._value(var)
        if not value:
            raise NotFoundError(f"environment variable {name} is not set and has no default")
        return value

    def lookup(self, name: str) -> str | None:
        """For placeholders (core.EnvLookup): the value or default; "" when unset; None when no
        variable has that name."""
        var = self.variable(name)
        return None if var is None else self._value(var)

    def _writable(self, name: str, ns: str | None) -> tuple[EnvVariable, Storage]:
        var = self.variable(name, ns)
        if var is None:
            raise NotFoundError(f"environment variable {name} not found (no env.variable has that name or id)")
        if var.readonly:
            raise PermissionDeniedError(f"environment variable {name} is read-only")
        return var, self.storage(var.storage)

    def set(self, name: str, value: str, ns: str | None = None) -> None:
        var, storage = self._writable(name, ns)
        storage.set(var.key, value)

    async def aset(self, name: str, value: str, ns: str | None = None) -> None:
        """``set`` with file writes off the event loop."""
        var, storage = self._writable(name, ns)
        await storage.aset(var.key, value)

    def all(self) -> dict[str, str]:
        """What every storage holds, with each variable's value (or default) under its name."""
        index = self._index()
        out: dict[str, str] = {}
        for sid in index.storages:
            try:
                for k, v in self.storage(sid).list().items():
                    out.setdefault(k, v)
            except WippyError as exc:
                log.warning("env storage %s cannot be listed: %s", sid, exc)
        for var in index.variables.values():
            if isinstance(var, DefinitionError):
                continue
            try:
                value = self._value(var)
            except WippyError as exc:
                log.warning("env variable %s cannot be read: %s", var.id, exc)
                continue
            if value:
                out[var.key] = value
        return out

    def resolve(self, entry: Entry) -> Entry:
        """The entry with its env placeholders resolved (see core.resolve_entry)."""
        return resolve_entry(entry, self.lookup)
