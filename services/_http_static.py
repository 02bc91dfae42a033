"""Static files of an `http.static` entry: a directory served under a mount path.

Files go out through aiohttp's ``FileResponse``: byte ranges, ETag and Last-Modified, 304 answers
to If-None-Match / If-Modified-Since, content types from the file name, and precompressed
``.gz``/``.br`` siblings when the client accepts them. A request never leaves the root: ``..``,
NUL and backslashes are refused, and a path whose real location (symlinks resolved) is outside the
root is not found. A directory serves its ``index`` file when there is one (a directory URL without
its trailing slash is redirected to it, so relative links in the page work), and is otherwise not
found: there are no listings. With ``spa: true`` a path that is not a file serves the root index,
for client-side routing. ``cache`` is the Cache-Control header of every file served. GET and HEAD
only.

Options come from ``static_options`` (``spa``, ``index``, ``cache``); older apps put them in
``options`` (``index: index.html``, ``spa: true``), which is read when ``static_options`` lacks them.

The directory served follows the rules of an fs.directory volume (lua_stdlib's ``_fs_volume``, as
the `fs` module uses them): the volume named by ``fs``, else the site's own ``directory``, with env
placeholders resolved, relative to the app directory, and created when the volume says
``auto_init: true``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import hdrs, web

from wippy.core import DefinitionError, Entry, register_kind_check
from wippy.lua_stdlib import Volume, volume_spec

_METHODS = "GET, HEAD"
_TRUE = frozenset({"1", "t", "true", "yes", "on"})
_FALSE = frozenset({"0", "f", "false", "no", "off"})


@dataclass(frozen=True, slots=True, kw_only=True)
class StaticOptions:
    spa: bool = False
    index: str | None = None
    cache: str | None = None


def _option(entry: Entry, name: str) -> tuple[str, Any]:
    """(field, raw value) of one option: ``static_options.<name>``, else the older ``options.<name>``."""
    for field in ("static_options", "options"):
        block = entry.data.get(field)
        if isinstance(block, dict) and block.get(name) is not None:
            return f"{field}.{name}", block[name]
    return f"static_options.{name}", None


def _flag(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = raw.strip().lower() if isinstance(raw, str) else None
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError("must be true or false")


def _index_name(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("must be a file name such as index.html")
    if _parts(raw) is None or raw.startswith("/"):
        raise ValueError(f"{raw!r} must be a path inside the served directory")
    return raw.strip()


def _cache(raw: Any) -> str:
    if not isinstance(raw, str) or any(c in raw for c in "\r\n\0"):
        raise ValueError("must be a Cache-Control value such as 'public, max-age=3600'")
    return raw.strip()


def static_options(entry: Entry) -> tuple[StaticOptions, list[DefinitionError]]:
    """The entry's options, and what is wrong with them (each naming the entry and field)."""
    errors: list[DefinitionError] = []
    raw = entry.data.get("static_options")
    if raw is not None and not isinstance(raw, dict):
        errors.append(DefinitionError("must be a mapping (spa, index, cache)", entry=entry.id,
                                      field="static_options"))
    values: dict[str, Any] = {}
    for name, parse in (("spa", _flag), ("index", _index_name), ("cache", _cache)):
        field, value = _option(entry, name)
        if value is None:
            continue
        try:
            values[name] = parse(value)
        except ValueError as exc:
            errors.append(DefinitionError(str(exc), entry=entry.id, field=field))
    if values.get("spa") and _option(entry, "index")[1] is None:
        errors.append(DefinitionError("is required when spa is true (the page served for client-side routes)",
                                      entry=entry.id, field="static_options.index"))
    return StaticOptions(**values), errors


def static_errors(entry: Entry) -> list[DefinitionError]:
    """Problems with an http.static entry's own fields (its middleware is checked with the routers')."""
    errors: list[DefinitionError] = []
    server = entry.meta.get("server")
    if not isinstance(server, str) or not server:
        errors.append(DefinitionError("must name the http.service this site is served by", entry=entry.id,
                                      field="meta.server"))
    path = entry.data.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        errors.append(DefinitionError("must be a URL path starting with '/'", entry=entry.id, field="path"))
    elif "//" in path or any(p in {".", ".."} for p in path.split("/")):
        errors.append(DefinitionError(f"{path!r} is not a plain URL path", entry=entry.id, field="path"))
    fs, directory = entry.data.get("fs"), entry.data.get("directory")
    if fs is not None and (not isinstance(fs, str) or not fs):
        errors.append(DefinitionError("must name an fs.directory entry", entry=entry.id, field="fs"))
    if directory is not None and (not isinstance(directory, str) or not directory):
        errors.append(DefinitionError("must be a directory path", entry=entry.id, field="directory"))
    if fs is None and directory is None:
        errors.append(DefinitionError("is required: the fs entry (or directory) to serve files from",
                                      entry=entry.id, field="fs"))
    errors.extend(static_options(entry)[1])
    return errors


register_kind_check(["http.static"], static_errors)


def static_volume(entry: Entry, entries: Mapping[str, Entry], *, env: Any, base_dir: Path | None) -> Volume:
    """The volume an http.static entry serves: the fs.directory its ``fs`` names, else one made of
    the site's own ``directory`` (no auto_init). Env placeholders are resolved through ``env`` (the
    node's EnvService; None: taken as written); a relative directory is under ``base_dir`` (the app
    directory; None: the working directory). Raises a WippyError naming the entry and field when
    the site names nothing usable; the caller's ``Volume.prepare()`` honours auto_init."""
    fs_id = entry.data.get("fs")
    if isinstance(fs_id, str) and fs_id:
        source = entries.get(fs_id)
        if source is None:
            raise DefinitionError(f"names {fs_id}, which does not exist", entry=entry.id, field="fs")
        if source.kind != "fs.directory":
            raise DefinitionError(f"names {fs_id}, a {source.kind}, not an fs.directory", entry=entry.id, field="fs")
    else:
        own = ("directory", "directory_env")
        source = Entry(entry.id, entry.kind, {}, {k: v for k, v in entry.data.items() if k in own})
    if env is not None:
        source = env.resolve(source)
    return Volume(volume_spec(source, base_dir if base_dir is not None else Path.cwd()))


def mount_path(path: str) -> str:
    """A mount path without its trailing slash ("/" stays "/")."""
    return "/" + path.strip("/") if path.strip("/") else "/"


def _parts(rel: str) -> list[str] | None:
    """The segments of a relative path, or None when it could leave its directory or is not a
    plain path (``..``, NUL, backslashes)."""
    if "\0" in rel or "\\" in rel:
        return None
    parts = [p for p in rel.split("/") if p not in {"", "."}]
    return None if ".." in parts else parts


def resolve_under(root: Path, rel: str) -> Path | None:
    """The real path of ``rel`` below ``root`` (an absolute, resolved directory), or None when it
    would be outside it, symlinks included. The target need not exist."""
    parts = _parts(rel)
    if parts is None:
        return None
    try:
        target = root.joinpath(*parts).resolve()
    except (OSError, RuntimeError, ValueError):  # symlink loops, names the OS refuses
        return None
    return target if target.is_relative_to(root) else None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # names too long, ...
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"error": message}), content_type="application/json",
                        headers=headers)


class StaticSite:
    """One http.static entry, serving files from ``root`` under ``mount``."""

    def __init__(self, entry: Entry, *, root: Path) -> None:
        options, errors = static_options(entry)
        if errors:
            raise errors[0]
        path = entry.data.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise DefinitionError("must be a URL path starting with '/'", entry=entry.id, field="path")
        self.id = entry.id
        self.mount = mount_path(path)
        self.root = root.resolve()
        self.options = options

    def _index(self, directory: Path) -> Path | None:
        if self.options.index is None:
            return None
        try:
            found = (directory / self.options.index).resolve()
        except (OSError, RuntimeError, ValueError):
            return None
        return found if found.is_relative_to(self.root) and _is_file(found) else None

    def _file(self, path: Path) -> web.FileResponse:
        headers = {hdrs.CACHE_CONTROL: self.options.cache} if self.options.cache else None
        return web.FileResponse(path, headers=headers)

    async def handle(self, request: web.BaseRequest, rel: str) -> web.StreamResponse:
        """Answer a request for ``rel`` (the URL-decoded path below the mount)."""
        if request.method not in {hdrs.METH_GET, hdrs.METH_HEAD}:
            return _error(405, f"{request.method} is not allowed here", {hdrs.ALLOW: _METHODS})
        target = resolve_under(self.root, rel)
        if target is not None and _is_file(target):
            return self._file(target)
        if target is not None and _is_dir(target):
            index = self._index(target)
            if index is not None:
                if not request.path.endswith("/"):
                    url = request.rel_url
                    location = url.raw_path + "/" + (f"?{url.raw_query_string}" if url.raw_query_string else "")
                    return web.Response(status=301, headers={hdrs.LOCATION: location})
                return self._file(index)
        if self.options.spa:
            index = self._index(self.root)
            if index is not None:
                return self._file(index)
        return _error(404, "not found")
