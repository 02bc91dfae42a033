"""A directory volume (`fs.directory`): file operations that never leave the volume's root.

Paths are the volume's own. ``/`` is the root; a relative path starts at a working directory (the
Lua handle's ``chdir``). A path is first cleaned as text, as Go's ``filepath.Clean`` does
(``a/../b`` is ``b``, ``//x`` is ``/x``); a ``..`` that climbs above the root is refused with
PERMISSION_DENIED, and a NUL byte is INVALID.

The cleaned path is then found on disk one name at a time, starting from a descriptor of the root:
each directory is opened relative to its parent with ``O_NOFOLLOW`` (``openat``), and a symlink
is read and followed by hand, its target resolved the same way from the directory that holds it
(``..`` in a target steps back up the descriptors; an absolute target must lie under the root).
So no symlink, however it points, reaches outside the root, and one swapped in between the check
and the use cannot redirect the operation: the last open also carries ``O_NOFOLLOW``.

Only regular files are opened (a FIFO or device inside the root is refused instead of blocking).
Files are created with the volume's mode without execute bits (``0755`` -> ``0644``), directories
with the mode plus execute bits wherever it grants read (``0644`` -> ``0755``), the umask applying.
Everything here is blocking and thread-safe (no shared descriptors): the Lua module decides what
runs inline and what goes to a thread.
"""

from __future__ import annotations

import errno
import os
import stat as st
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wippy.core import Entry

from ._fs_file import VolumeError, VolumeFile, file_info

#: Links followed while resolving one path before giving up (Linux's own limit).
_MAX_LINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_FLAGS = {
    "r": os.O_RDONLY,
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "wx": os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_EXCL,
    "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeSpec:
    id: str
    root: Path
    auto_init: bool = False
    mode: int = 0o755


def parse_mode(raw: Any) -> int | None:
    """A permission mode: an octal string ("0755", "755", "0o755") or the number YAML made of an
    unquoted ``0755``; None when it is neither."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw if 0 <= raw <= 0o7777 else None
    if not isinstance(raw, str):
        return None
    text = raw.strip().lower().removeprefix("0o")
    if not text or any(c not in "01234567" for c in text):
        return None
    value = int(text, 8)
    return value if value <= 0o7777 else None


def volume_spec(entry: Entry, base_dir: Path) -> VolumeSpec:
    """The volume an `fs.directory` entry describes; a relative directory is under ``base_dir``."""
    directory = entry.data.get("directory")
    if not isinstance(directory, str) or not directory.strip():
        raise VolumeError("INVALID", f"fs {entry.id}: field directory must be a directory path")
    if "\0" in directory:
        raise VolumeError("INVALID", f"fs {entry.id}: field directory contains a NUL byte")
    mode = parse_mode(entry.data.get("mode", "0755"))
    if mode is None:
        raise VolumeError("INVALID", f"fs {entry.id}: field mode must be an octal mode such as \"0755\"")
    path = Path(directory).expanduser()
    return VolumeSpec(id=entry.id, root=path if path.is_absolute() else base_dir / path,
                      auto_init=entry.data.get("auto_init") is True, mode=mode)


def clean(cwd: str, path: str) -> str | None:
    """``path`` (from the working directory ``cwd``, itself clean) as a clean path below the root
    without a leading slash ("" is the root); None when it climbs above the root."""
    joined = path if path.startswith("/") else cwd + "/" + path
    parts: list[str] = []
    for name in joined.split("/"):
        if name in ("", "."):
            continue
        if name == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(name)
    return "/".join(parts)


class _Target:
    """Where a path leads: the open directories from the root down, and the last name in the
    innermost ("." when the path is that directory itself). Closes its descriptors on exit."""

    __slots__ = ("fds", "name")

    def __init__(self, fds: list[int], name: str) -> None:
        self.fds, self.name = fds, name

    @property
    def dir_fd(self) -> int:
        return self.fds[-1]

    def __enter__(self) -> _Target:
        return self

    def __exit__(self, *exc: object) -> None:
        _close_all(self.fds)


def _close_all(fds: list[int]) -> None:
    while fds:
        os.close(fds.pop())


class Volume:
    """One fs.directory root. Stateless apart from its spec: safe to share between hosts and threads."""

    def __init__(self, spec: VolumeSpec) -> None:
        self.spec = spec
        self.id = spec.id
        self.root = spec.root
        # the spellings an absolute symlink target may use for the root
        self._roots = {os.path.normpath(os.path.abspath(spec.root)), os.path.realpath(spec.root)}
        self.dir_mode = spec.mode | ((spec.mode & 0o444) >> 2)
        self.file_mode = spec.mode & 0o666

    def prepare(self) -> None:
        """Create the root when ``auto_init`` asks for it; fail when it is missing otherwise."""
        if self.spec.auto_init:
            try:
                self.root.mkdir(mode=self.dir_mode, parents=True, exist_ok=True)
            except OSError as exc:
                raise VolumeError("INTERNAL", f"fs {self.id}: cannot create {self.root}: "
                                              f"{exc.strerror or exc}") from exc
        if not self.root.is_dir():
            raise VolumeError("NOT_FOUND", f"fs {self.id}: the directory {self.root} does not exist "
                                           "(auto_init: true creates it)")

    # -- paths ---------------------------------------------------------------------------------
    def _label(self, path: str) -> str:
        return f"fs {self.id}: {path!r}"

    def clean(self, cwd: str, path: str) -> str:
        """The clean path ``path`` names from ``cwd``; PERMISSION_DENIED when it leaves the root."""
        if "\0" in path:
            raise VolumeError("INVALID", f"fs {self.id}: path contains a NUL byte")
        found = clean(cwd, path)
        if found is None:
            raise self._outside(path)
        return found

    def _outside(self, path: str) -> VolumeError:
        return VolumeError("PERMISSION_DENIED", f"{self._label(path)} leads outside the volume")

    def _inside(self, target: str) -> str | None:
        """An absolute symlink target as a path below the root, or None when it is not under it."""
        norm = os.path.normpath(target)
        for root in self._roots:
            if norm == root:
                return ""
            if norm.startswith(root.rstrip("/") + "/"):
                return norm[len(root.rstrip("/")) + 1:]
        return None

    def _open_root(self) -> int:
        try:
            return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise VolumeError("NOT_FOUND", f"fs {self.id}: the volume's directory {self.root} cannot be opened: "
                                           f"{exc.strerror or exc}") from exc

    def target(self, rel: str, shown: str, *, follow: bool) -> _Target:
        """Find clean path ``rel`` (``shown`` names it in errors). Every directory on the way must
        exist; the last name need not. ``follow``: a symlink as the last name is followed too."""
        fds = [self._open_root()]
        todo = deque(p for p in rel.split("/") if p)
        links = 0
        try:
            while todo:
                name = todo.popleft()
                if name == ".":
                    continue
                if name == "..":  # only from a symlink's target
                    if len(fds) == 1:
                        raise self._outside(shown)
                    os.close(fds.pop())
                    continue
                last = not todo
                try:
                    s = os.stat(name, dir_fd=fds[-1], follow_symlinks=False)
                except FileNotFoundError:
                    if last:
                        return _Target(fds, name)
                    raise VolumeError("NOT_FOUND", f"{self._label(shown)}: {name!r} does not exist") from None
                if st.S_ISLNK(s.st_mode) and (follow or not last):
                    links += 1
                    if links > _MAX_LINKS:
                        raise VolumeError("INVALID", f"{self._label(shown)}: too many levels of symbolic links")
                    link = os.readlink(name, dir_fd=fds[-1])
                    if link.startswith("/"):
                        inside = self._inside(link)
                        if inside is None:
                            raise self._outside(shown)
                        _close_all(fds[1:])
                        del fds[1:]
                        link = inside
                    todo.extendleft(reversed(link.split("/")))
                    continue
                if last:
                    return _Target(fds, name)
                if not st.S_ISDIR(s.st_mode):
                    raise VolumeError("INVALID", f"{self._label(shown)}: {name!r} is not a directory")
                fds.append(os.open(name, _DIR_FLAGS, dir_fd=fds[-1]))
            return _Target(fds, ".")
        except OSError as exc:
            _close_all(fds)
            raise self._os_error(shown, exc) from exc
        except BaseException:
            _close_all(fds)
            raise

    def _os_error(self, shown: str, exc: OSError) -> VolumeError:
        label = self._label(shown)
        code = exc.errno
        if code == errno.ENOENT:
            return VolumeError("NOT_FOUND", f"{label} does not exist")
        if code == errno.EEXIST:
            return VolumeError("ALREADY_EXISTS", f"{label} already exists")
        if code == errno.ENOTEMPTY:
            return VolumeError("INVALID", f"{label}: directory not empty")
        if code == errno.EISDIR:
            return VolumeError("INVALID", f"{label} is a directory")
        if code == errno.ENOTDIR:
            return VolumeError("INVALID", f"{label} is not a directory")
        if code == errno.ELOOP:  # a symlink swapped in after the path was checked
            return VolumeError("INVALID", f"{label} changed into a symbolic link while in use")
        if code in (errno.EACCES, errno.EPERM, errno.EROFS):
            return VolumeError("PERMISSION_DENIED", f"{label}: {exc.strerror}")
        return VolumeError("INTERNAL", f"{label}: {exc.strerror or exc}")

    # -- operations (``path`` as the user wrote it, ``cwd`` the handle's clean working directory) --
    def stat(self, cwd: str, path: str) -> dict[str, Any]:
        rel = self.clean(cwd, path)
        with self.target(rel, path, follow=True) as t:
            try:
                s = os.stat(t.name, dir_fd=t.dir_fd, follow_symlinks=False)
            except OSError as exc:
                raise self._os_error(path, exc) from exc
        return file_info(rel.rsplit("/", 1)[-1] or "/", s)

    def exists(self, cwd: str, path: str) -> bool:
        try:
            self.stat(cwd, path)
        except VolumeError as exc:
            if exc.kind in ("NOT_FOUND", "INVALID") and "\0" not in path:
                return False
            raise
        return True

    def chdir(self, cwd: str, path: str) -> str:
        """The new working directory (a clean path) when ``path`` is a directory."""
        if not self.stat(cwd, path)["is_dir"]:
            raise VolumeError("INVALID", f"{self._label(path)} is not a directory")
        return self.clean(cwd, path)

    def mkdir(self, cwd: str, path: str) -> None:
        rel = self.clean(cwd, path)
        with self.target(rel, path, follow=False) as t:
            try:
                os.mkdir(t.name, self.dir_mode, dir_fd=t.dir_fd)
            except OSError as exc:
                raise self._os_error(path, exc) from exc

    def remove(self, cwd: str, path: str) -> None:
        rel = self.clean(cwd, path)
        if rel == "":
            raise VolumeError("INVALID", f"{self._label(path)}: the volume's root cannot be removed")
        with self.target(rel, path, follow=False) as t:
            try:
                s = os.stat(t.name, dir_fd=t.dir_fd, follow_symlinks=False)
                if st.S_ISDIR(s.st_mode):
                    os.rmdir(t.name, dir_fd=t.dir_fd)
                else:
                    os.unlink(t.name, dir_fd=t.dir_fd)
            except OSError as exc:
                raise self._os_error(path, exc) from exc

    def listdir(self, cwd: str, path: str) -> list[tuple[str, str]]:
        """(name, "file" | "directory") of each entry, sorted by name; symlinks are files (as Go's)."""
        rel = self.clean(cwd, path)
        with self.target(rel, path, follow=True) as t:
            try:
                fd = os.open(t.name, _DIR_FLAGS, dir_fd=t.dir_fd)
            except OSError as exc:
                raise self._os_error(path, exc) from exc
            try:
                with os.scandir(fd) as it:
                    found = [(e.name, "directory" if e.is_dir(follow_symlinks=False) else "file") for e in it]
            except OSError as exc:
                raise self._os_error(path, exc) from exc
            finally:
                os.close(fd)
        return sorted(found)

    def open(self, cwd: str, path: str, mode: str) -> VolumeFile:
        """Open a regular file: "r" (must exist), "w" (create or truncate), "wx" (create; ALREADY_EXISTS
        when the name is taken), "a" (create or append)."""
        flags = _OPEN_FLAGS.get(mode)
        if flags is None:
            raise VolumeError("INVALID", f"fs {self.id}: invalid mode {mode!r}: must be 'r', 'w', 'wx' or 'a'")
        rel = self.clean(cwd, path)
        with self.target(rel, path, follow=mode != "wx") as t:
            try:
                fd = os.open(t.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, self.file_mode,
                             dir_fd=t.dir_fd)
            except OSError as exc:
                raise self._os_error(path, exc) from exc
        try:
            s = os.fstat(fd)
            if not st.S_ISREG(s.st_mode):
                what = "a directory" if st.S_ISDIR(s.st_mode) else "not a regular file"
                raise VolumeError("INVALID", f"{self._label(path)} is {what}")
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return VolumeFile(fd, name=rel.rsplit("/", 1)[-1] or "/", label=self._label(path), mode=mode)
