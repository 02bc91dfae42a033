"""`fs`: sandboxed directory volumes (`fs.directory` entries) for Lua (the Lua side is lua/fs.lua).

    fs.get(id) -> vol, err                          (permission fs.get on the volume id)
    vol: readfile/read_file, writefile/write_file(p, data, "w"|"a"|"wx"), exists, isdir, stat, mkdir,
         remove, readdir (an iterator), open(p, "r"|"w"|"wx"|"a") -> file, chdir, pwd
    file: read(n = 4096) -> chunk | nil, NOT_FOUND at the end; write, seek(whence, offset), stat,
          sync, close, scanner("lines"|"words"|"bytes"|"runes")

Confinement lives in ``_fs_volume`` (paths never leave the root, symlinks included). A volume's
relative ``directory`` is under the app directory (``HostContext.base_dir`` when the host has one,
else the working directory); env placeholders in the entry are resolved first. ``auto_init``
creates the directory on the first ``fs.get``.

The event loop is never held for long: metadata calls (stat, open, mkdir, ...) and reads and
writes of up to 64 KiB run inline; larger reads and writes, whole-file reads of large files,
directory listings and fsync run in a worker thread while the Lua task waits. Files a host leaves
open are closed when it closes.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wippy.core import Entry, WippyError

from ._binary import Raw, wrap
from ._fs_file import VolumeError, VolumeFile
from ._fs_volume import Volume, volume_spec
from ._host import LuaHost, register_module
from ._streams import stream_lib
from ._vm import _source

_INLINE = 64 * 1024  # bytes read or written without leaving the event loop
_CHUNK = 32 * 1024  # what a scanner reads at a time
_MAX_READ = 16 * 1024 * 1024  # the most one file:read returns
_WHENCE = {"set": 0, "cur": 1, "end": 2}


def base_dir(host: LuaHost) -> Path:
    """Where relative paths of entries point: the app directory, else the working directory."""
    found = host.ctx.base_dir
    return Path(found) if found is not None else Path.cwd()


def resolved_entry(host: LuaHost, entry_id: str) -> Entry | None:
    """The registry entry with its env placeholders resolved (when the host has an env registry)."""
    entry = host.ctx.registry.get(entry_id)
    if entry is not None and host.ctx.env is not None:
        entry = host.ctx.env.resolve(entry)
    return entry if isinstance(entry, Entry) else None


class _Volumes:
    """The volumes one host has opened, rebuilt when their entry changes."""

    def __init__(self, host: LuaHost) -> None:
        self.host = host
        self.cache: dict[str, tuple[str, Volume]] = {}

    def get(self, volume_id: str) -> Volume:
        entry = resolved_entry(self.host, volume_id)
        if entry is None:
            raise VolumeError("NOT_FOUND", f"fs.get: filesystem not found: {volume_id}")
        if entry.kind != "fs.directory":
            raise VolumeError("INVALID", f"fs.get: {volume_id} is a {entry.kind}, not an fs.directory volume")
        digest = entry.digest()
        cached = self.cache.get(volume_id)
        if cached is not None and cached[0] == digest:
            return cached[1]
        volume = Volume(volume_spec(entry, base_dir(self.host)))
        volume.prepare()
        self.cache[volume_id] = (digest, volume)
        return volume


def _data(value: Any) -> bytes:
    if isinstance(value, Raw):
        return value.data
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", errors="surrogatepass")


class _Bridge:
    """The host functions lua/fs.lua calls. Each returns (value, nil) or (fail value, err), or a
    Pending the Lua task waits for."""

    def __init__(self, host: LuaHost) -> None:
        self.vm = host.vm
        self.volumes = _Volumes(host)
        self.files: weakref.WeakSet[VolumeFile] = weakref.WeakSet()
        host.on_close(self.close_files)

    async def close_files(self) -> None:
        for f in list(self.files):
            f.close()

    def _err(self, exc: WippyError) -> Any:
        return self.vm.error(exc.kind, str(exc))

    async def _threaded(self, fail: Any, fn: Callable[..., tuple[Any, ...]], *args: Any) -> tuple[Any, ...]:
        try:
            return await asyncio.to_thread(fn, *args)
        except WippyError as exc:
            return fail, self._err(exc)

    async def _held(self, fail: Any, f: VolumeFile, what: str, fn: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
        """``fn(*args)`` in a thread while ``f`` is held (see VolumeFile): (result, nil) or (fail, err)."""
        def run() -> Any:
            try:
                return fn(*args)
            finally:
                f.release()

        try:
            f.hold(what)
            return await asyncio.to_thread(run), None
        except WippyError as exc:
            return fail, self._err(exc)

    # -- the volume --------------------------------------------------------------------------
    def get(self, volume_id: str) -> Any:
        return self.volumes.get(volume_id), None

    def stat(self, v: Volume, cwd: str, path: str) -> Any:
        return self.vm.to_lua(v.stat(cwd, path)), None

    def exists(self, v: Volume, cwd: str, path: str) -> Any:
        return v.exists(cwd, path), None

    def isdir(self, v: Volume, cwd: str, path: str) -> Any:
        return v.stat(cwd, path)["is_dir"], None

    def chdir(self, v: Volume, cwd: str, path: str) -> Any:
        return v.chdir(cwd, path), None

    def mkdir(self, v: Volume, cwd: str, path: str) -> Any:
        v.mkdir(cwd, path)
        return True, None

    def remove(self, v: Volume, cwd: str, path: str) -> Any:
        v.remove(cwd, path)
        return True, None

    def readdir(self, v: Volume, cwd: str, path: str) -> Any:
        def listing() -> tuple[Any, ...]:
            # names as bytes: a name that is not UTF-8 reaches Lua as the bytes it is
            return [{"name": os.fsencode(n), "type": t} for n, t in v.listdir(cwd, path)], None

        return self.vm.pending(self._threaded(None, listing))

    def readfile(self, v: Volume, cwd: str, path: str) -> Any:
        f = v.open(cwd, path, "r")
        try:
            if f.stat()["size"] <= _INLINE:
                return f.read_all(), None
        except BaseException:
            f.close()
            raise

        def read_all() -> tuple[Any, ...]:
            try:
                return f.read_all(), None
            finally:
                f.close()

        return self.vm.pending(self._threaded(None, read_all))

    @staticmethod
    def _write_all(v: Volume, cwd: str, path: str, data: bytes, mode: str) -> tuple[Any, ...]:
        f = v.open(cwd, path, mode)
        try:
            f.write(data)
        finally:
            f.close()
        return True, None

    def writefile(self, v: Volume, cwd: str, path: str, data: Any, mode: str) -> Any:
        raw = _data(data)
        if len(raw) <= _INLINE:
            return self._write_all(v, cwd, path, raw, mode)
        return self.vm.pending(self._threaded(False, self._write_all, v, cwd, path, raw, mode))

    def open(self, v: Volume, cwd: str, path: str, mode: str) -> Any:
        f = v.open(cwd, path, mode)
        self.files.add(f)
        return f, None

    # -- files ---------------------------------------------------------------------------------
    def file_read(self, f: VolumeFile, n: int) -> Any:
        size = min(int(n), _MAX_READ) if n else _CHUNK
        if size <= _INLINE:
            return f.read(size), None
        return self.vm.pending(self._held(None, f, "read", f.read, size))

    def file_write(self, f: VolumeFile, data: Any) -> Any:
        raw = _data(data)
        if len(raw) <= _INLINE:
            f.write(raw)
            return True, None
        def write() -> bool:
            f.write(raw)
            return True

        return self.vm.pending(self._held(False, f, "write", write))

    def file_seek(self, f: VolumeFile, whence: str, offset: int) -> Any:
        return f.seek(int(offset), _WHENCE[whence]), None

    def file_stat(self, f: VolumeFile) -> Any:
        return self.vm.to_lua(f.stat()), None

    def file_sync(self, f: VolumeFile) -> Any:
        def sync() -> bool:
            f.sync()
            return True

        return self.vm.pending(self._held(False, f, "sync", sync))

    @staticmethod
    def file_close(f: VolumeFile) -> Any:
        f.close()
        return True, None

    def table(self, host: LuaHost) -> Any:
        """The bridge as a Lua table: errors as values; a Pending makes the Lua task wait. Paths
        arrive as text (lua/fs.lua refuses others); data may be binary."""
        vm = self.vm

        def failing(fail: Any, fn: Callable[..., Any], *, binary: bool = False, raw: bool = False) -> Any:
            """``raw``: the function may answer binary data, which vm.asyncify cannot pass (its
            Pending test decodes the first result as text), so lua/fs.lua waits for a Pending itself."""
            def call(*args: Any) -> Any:
                try:
                    return fn(*args)
                except WippyError as exc:
                    return fail, self._err(exc)
            made = wrap(host, call) if binary else call
            return made if raw else vm.asyncify(made)

        return vm.rt.table_from({
            "get": failing(None, self.get),
            "stat": failing(None, self.stat), "exists": failing(False, self.exists),
            "isdir": failing(False, self.isdir), "chdir": failing(False, self.chdir),
            "mkdir": failing(False, self.mkdir), "remove": failing(False, self.remove),
            "readdir": failing(None, self.readdir), "readfile": failing(None, self.readfile, raw=True),
            "open": failing(None, self.open), "writefile": failing(False, self.writefile, binary=True),
            "file_read": failing(None, self.file_read, raw=True),
            "file_write": failing(False, self.file_write, binary=True),
            "file_seek": failing(None, self.file_seek), "file_stat": failing(None, self.file_stat),
            "file_sync": failing(False, self.file_sync), "file_close": self.file_close,
        })


def _build(host: LuaHost) -> Any:
    bridge = _Bridge(host).table(host)
    return host.vm.rt.execute(_source("fs.lua"), bridge, host.vm.errors, host.security, stream_lib(host))


register_module("fs", _build)
