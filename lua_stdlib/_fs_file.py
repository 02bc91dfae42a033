"""An open file of a directory volume, and the errors and file information the volume reports.

``VolumeFile`` is a raw descriptor (no buffering between Lua and the disk) that threads can
share safely with the event loop: see ``hold``. ``stat`` reports Wippy's fields, with ``mode`` in
Go's ``fs.FileMode`` encoding (type bits such as ``1 << 31`` for a directory above the permission
bits), as Wippy's Lua module hands Go's value through.
"""

from __future__ import annotations

import os
import stat as st
import threading
from typing import Any

from wippy.core import WippyError

#: Go's fs.FileMode type bits, which Wippy's stat reports in ``mode``.
_GO_TYPE_BITS = ((st.S_ISDIR, 1 << 31), (st.S_ISLNK, 1 << 27), (st.S_ISFIFO, 1 << 25), (st.S_ISSOCK, 1 << 24),
                 (st.S_ISBLK, 1 << 26), (st.S_ISCHR, (1 << 26) | (1 << 21)))


class VolumeError(WippyError):
    """A file operation failed; ``kind`` is the Lua error kind."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _go_mode(mode: int) -> int:
    bits = st.S_IMODE(mode)
    for test, go_bit in _GO_TYPE_BITS:
        if test(mode):
            bits |= go_bit
            break
    return bits


def file_info(name: str, s: os.stat_result) -> dict[str, Any]:
    is_dir = st.S_ISDIR(s.st_mode)
    return {"name": name, "size": s.st_size, "mode": _go_mode(s.st_mode), "modified": int(s.st_mtime),
            "is_dir": is_dir, "type": "directory" if is_dir else "file"}


class VolumeFile:
    """An open regular file of a volume (a raw descriptor: no buffering between Lua and the disk).

    A thread working on the file ``hold``s it first and ``release``s it when done; ``close`` while
    held only marks it closed, and the last release closes the descriptor, so a descriptor number
    is never reused under a running read."""

    __slots__ = ("__weakref__", "_holds", "_lock", "_open", "closed", "fd", "label", "name", "readable",
                 "writable")

    def __init__(self, fd: int, *, name: str, label: str, mode: str) -> None:
        self.fd, self.name, self.label = fd, name, label
        self.readable, self.writable = mode == "r", mode != "r"
        self.closed = False
        self._open = True
        self._holds = 0
        self._lock = threading.Lock()

    def check(self, what: str) -> None:
        """Raise INVALID unless the file is open (and open for ``what``: "read" or "write")."""
        if self.closed:
            raise VolumeError("INVALID", f"{self.label}: file is closed")
        if what == "read" and not self.readable:
            raise VolumeError("INVALID", f"{self.label}: the file is open for writing, not reading")
        if what == "write" and not self.writable:
            raise VolumeError("INVALID", f"{self.label}: the file is open for reading, not writing")

    def hold(self, what: str) -> None:
        with self._lock:
            self.check(what)
            self._holds += 1

    def release(self) -> None:
        with self._lock:
            self._holds -= 1
            if self.closed and self._holds == 0:
                self._close_fd()

    def read(self, n: int) -> bytes | None:
        """Up to ``n`` bytes; None at the end of the file."""
        self.check("read")
        data = _os_call(self.label, "read", os.read, self.fd, n)
        return data or None

    def read_all(self) -> bytes:
        self.check("read")
        parts = []
        while chunk := _os_call(self.label, "read", os.read, self.fd, 1 << 20):
            parts.append(chunk)
        return b"".join(parts)

    def write(self, data: bytes) -> None:
        self.check("write")
        view = memoryview(data)
        while view:
            view = view[_os_call(self.label, "write", os.write, self.fd, view):]

    def seek(self, offset: int, whence: int) -> int:
        self.check("seek")
        return int(_os_call(self.label, "seek", os.lseek, self.fd, offset, whence))

    def stat(self) -> dict[str, Any]:
        self.check("stat")
        return file_info(self.name, _os_call(self.label, "stat", os.fstat, self.fd))

    def sync(self) -> None:
        self.check("sync")
        _os_call(self.label, "sync", os.fsync, self.fd)

    def close(self) -> None:
        """Idempotent; the descriptor closes now, or when the last thread using it is done."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            if self._holds == 0:
                self._close_fd()

    def _close_fd(self) -> None:
        if self._open:
            self._open = False
            os.close(self.fd)

    def __del__(self) -> None:
        # a handle Lua dropped without closing: release the descriptor (never warn from a finalizer)
        if getattr(self, "_open", False):
            self._open = False
            os.close(self.fd)


def _os_call(label: str, what: str, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except OSError as exc:
        raise VolumeError("INTERNAL", f"{label}: {what} failed: {exc.strerror or exc}") from exc
