"""Env storage backends: read-only values (the OS environment, static values), memory, ``.env``
files and routers.

A ``.env`` file is parsed as Wippy does (``KEY=VALUE``; ``#`` starts a comment anywhere; quotes
are kept as written) and parsed again only when it changed on disk. Writes rewrite it whole into
a temp file beside it, fsync it and rename it over the old one, so a reader never sees half a
file; the other lines and their comments are kept. Routers search their storages in order and
remember what they found (as Wippy's do); writes go to the first storage.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from wippy.core import DefinitionError, Entry, PermissionDeniedError, WippyError, env_file_spec, env_router_storages

_MAX_ROUTER_DEPTH = 16


class EnvStorageError(WippyError):
    """A storage that cannot be read or written (an unreadable or unwritable .env file)."""

    kind = "UNAVAILABLE"


class Storage(Protocol):
    id: str

    def get(self, key: str) -> str | None: ...
    def set(self, key: str, value: str) -> None: ...
    async def aset(self, key: str, value: str) -> None: ...
    def list(self) -> dict[str, str]: ...


class StorageSource(Protocol):
    """Where a router finds its storages (the env service)."""

    def storage(self, storage_id: str) -> Storage: ...


def _read_only(storage_id: str) -> PermissionDeniedError:
    return PermissionDeniedError(f"env storage {storage_id} is read-only")


class ReadOnlyStorage:
    """Fixed values: the OS environment as read once at start-up, or a static storage's values."""

    def __init__(self, storage_id: str, values: Mapping[str, str]) -> None:
        self.id = storage_id
        self._values = values

    def get(self, key: str) -> str | None:
        return self._values.get(key)

    def set(self, key: str, value: str) -> None:
        raise _read_only(self.id)

    async def aset(self, key: str, value: str) -> None:
        self.set(key, value)

    def list(self) -> dict[str, str]:
        return dict(self._values)


class MemoryStorage:
    def __init__(self, storage_id: str) -> None:
        self.id = storage_id
        self._values: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self._values.get(key)

    def set(self, key: str, value: str) -> None:
        self._values[key] = value

    async def aset(self, key: str, value: str) -> None:
        self.set(key, value)

    def list(self) -> dict[str, str]:
        return dict(self._values)


def parse_env_line(line: str) -> tuple[str, str] | None:
    """``KEY=VALUE`` as Wippy reads it: ``#`` starts a comment anywhere, quotes are kept as they are."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    text = text.split("#", 1)[0].strip()
    key, sep, value = text.partition("=")
    key = key.strip()
    return (key, value.strip()) if sep and key else None


class FileStorage:
    """A ``.env`` file. Reads parse it again only when it changed on disk."""

    def __init__(self, entry: Entry, base_dir: Path | None) -> None:
        spec = env_file_spec(entry)
        self.id = entry.id
        path = Path(spec.path)
        self.path = path if path.is_absolute() or base_dir is None else base_dir / path
        self.spec = spec
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int, int], dict[str, str]] | None = None

    def _fail(self, what: str, exc: OSError | UnicodeDecodeError) -> EnvStorageError:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return EnvStorageError(f"env storage {self.id}: cannot {what} {self.path}: {reason}")

    def _values(self) -> dict[str, str]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise self._fail("read", exc) from exc
        sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = self._cache
        if cached is not None and cached[0] == sig:
            return cached[1]
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise self._fail("read", exc) from exc
        values: dict[str, str] = {}
        for line in text.splitlines():
            parsed = parse_env_line(line)
            if parsed is not None:
                values.setdefault(parsed[0], parsed[1])  # the first line naming a key wins, as in Wippy
        self._cache = (sig, values)
        return values

    def get(self, key: str) -> str | None:
        return self._values().get(key)

    def list(self) -> dict[str, str]:
        return dict(self._values())

    def set(self, key: str, value: str) -> None:
        if any(c in value for c in "\r\n#"):
            raise DefinitionError(f"env storage {self.id}: a value with a line break or '#' cannot be kept in "
                                  f"a .env file (it would not read back the same)")
        with self._lock:
            try:
                lines = self.path.read_text(encoding="utf-8").splitlines()
            except FileNotFoundError:
                if not self.spec.auto_create:
                    raise EnvStorageError(f"env storage {self.id}: {self.path} does not exist (set auto_create: "
                                          f"true to create it)") from None
                lines = []
            except (OSError, UnicodeDecodeError) as exc:
                raise self._fail("read", exc) from exc
            out, found = [], False
            for line in lines:
                parsed = parse_env_line(line)
                if parsed is None or parsed[0] != key:
                    out.append(line)
                    continue
                found = True
                comment = line.find("#")
                out.append(f"{key}={value}" + (f" {line[comment:]}" if comment >= 0 else ""))
            if not found:
                out.append(f"{key}={value}")
            self._write("".join(f"{line}\n" for line in out))
            self._cache = None

    def _write(self, text: str) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=self.spec.dir_mode)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        except OSError as exc:
            raise self._fail("write", exc) from exc
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                os.fchmod(f.fileno(), self.spec.file_mode)
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the rename itself survives a crash
            finally:
                os.close(dir_fd)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise self._fail("write", exc) from exc

    async def aset(self, key: str, value: str) -> None:
        await asyncio.to_thread(self.set, key, value)


class RouterStorage:
    """Reads search the storages in order and remember hits; writes go to the first storage."""

    def __init__(self, entry: Entry, hub: StorageSource) -> None:
        self.id = entry.id
        self.storages = env_router_storages(entry)
        self._hub = hub
        self._cache: dict[str, str] = {}

    def _child(self, storage_id: str, seen: frozenset[str]) -> Storage:
        if self.id in seen or len(seen) >= _MAX_ROUTER_DEPTH:
            raise DefinitionError(f"env storage router {self.id} routes to itself (through {', '.join(sorted(seen))})",
                                  entry=self.id, field="storages")
        return self._hub.storage(storage_id)

    def lookup(self, key: str, seen: frozenset[str] = frozenset()) -> str | None:
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        for sid in self.storages:
            child = self._child(sid, seen)
            value = child.lookup(key, seen | {self.id}) if isinstance(child, RouterStorage) else child.get(key)
            if value is not None:
                self._cache[key] = value
                return value
        return None

    def get(self, key: str) -> str | None:
        return self.lookup(key)

    def _target(self, seen: frozenset[str] = frozenset()) -> tuple[Storage, list[RouterStorage]]:
        """The storage writes land in (the first one, through nested routers) and the routers on the way."""
        child = self._child(self.storages[0], seen)
        if isinstance(child, RouterStorage):
            target, routers = child._target(seen | {self.id})
            return target, [self, *routers]
        return child, [self]

    def set(self, key: str, value: str) -> None:
        target, routers = self._target()
        target.set(key, value)
        for r in routers:
            r._cache[key] = value

    async def aset(self, key: str, value: str) -> None:
        target, routers = self._target()
        await target.aset(key, value)
        for r in routers:
            r._cache[key] = value

    def list(self) -> dict[str, str]:
        return {}  # its storages are listed themselves
