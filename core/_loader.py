"""The app loader: a Wippy app directory in, every registry entry it defines out.

``load_app`` finds the source dirs (``wippy.lock``), reads every definition file below them, turns
each entry into an ``Entry`` (kind fields at the root become ``data``, ``file://`` sources are
inlined, bare names in reference fields resolved), hands the result to the module system
(``_modules``: dependencies, vendored modules, requirement injection) and checks ids are unique.
It reports every problem it finds in one ``DefinitionErrors``, each naming file, line, entry and
field, and returns nothing when there is any.

YAML is read with Wippy's rules (``_yaml``: YAML 1.2's core schema plus Go's leading-zero octals
and merge keys); values come out JSON-compatible: mapping keys are strings. For speed, files in the plain
subset of YAML that definition files use are read by a small reader of our own (`_fast_read`),
which declines anything else; pyyaml (libyaml) reads what it declines and decides every error.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from . import _yaml
from ._components import NativeComponent, native_components
from ._entry import Entry, check_namespace, parse_id
from ._errors import DefinitionError, DefinitionErrors
from ._kinds import resolve_names
from ._modules import link_components

_DEFAULT_SRC = "./src"
_DEFAULT_MODULES = ".wippy"


@dataclass(frozen=True, slots=True)
class LoadedEntry:
    """An entry and where it was defined: ``src/api/_index.yaml:12`` (app-relative path, 1-based line)."""

    entry: Entry
    origin: str


@dataclass(frozen=True, slots=True)
class LoadedApp:
    """Everything an app directory defines, linked and checked.

    ``entries`` are in a stable order: files sorted by path, entries in file order; the app's own
    first, then vendored modules. ``native_dependencies`` holds, for each dependency the runtime
    satisfies itself, the parameters the app passed (name -> value).
    """

    root: Path
    entries: tuple[LoadedEntry, ...]
    warnings: tuple[str, ...] = ()
    native_dependencies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def load_app(app_dir: Path, *, components: Mapping[str, NativeComponent] | None = None) -> LoadedApp:
    """Load, link and check every entry an app directory defines.

    ``components`` are the components the runtime provides natively (default: the registered ones).
    Raises DefinitionErrors carrying every problem found.
    """
    if components is None:
        components = native_components()
    root = Path(os.path.realpath(app_dir))
    errors: list[DefinitionError] = []
    src_name, modules_name = _read_lock(root, errors)
    if errors:
        raise DefinitionErrors(errors)
    src_dir = root / src_name
    if not src_dir.is_dir():
        raise DefinitionErrors([DefinitionError(f"source directory {src_name} not found in {root}")])
    modules_dir = root / modules_name
    reader = _Reader(root, skip=modules_dir)
    # Sources must stay inside the app; a src dir placed elsewhere by the lock confines to itself.
    confine = root if _inside(src_dir, root) else src_dir
    entries, errors = reader.entries(src_dir, confine)
    linked = link_components(modules_dir, entries, components, reader)
    errors.extend(linked.errors)
    errors.extend(_duplicates(linked.entries))
    if errors:
        raise DefinitionErrors(errors)
    return LoadedApp(
        root=root,
        entries=tuple(linked.entries),
        warnings=tuple(linked.warnings),
        native_dependencies=linked.native,
    )


def _read_lock(root: Path, errors: list[DefinitionError]) -> tuple[str, str]:
    """``directories.src`` and ``directories.modules`` from ``wippy.lock`` (defaults without one)."""
    lock = root / "wippy.lock"
    if not lock.is_file():
        return _DEFAULT_SRC, _DEFAULT_MODULES
    try:
        doc = _load_small_yaml(lock)
    except DefinitionError as e:
        errors.append(_with_where(e, "wippy.lock"))
        return _DEFAULT_SRC, _DEFAULT_MODULES
    if doc is None:
        return _DEFAULT_SRC, _DEFAULT_MODULES
    if not isinstance(doc, dict):
        errors.append(DefinitionError("must be a mapping", where="wippy.lock"))
        return _DEFAULT_SRC, _DEFAULT_MODULES
    dirs = doc.get("directories")
    if dirs is None:
        dirs = {}
    if not isinstance(dirs, dict):
        errors.append(DefinitionError("must be a mapping", where="wippy.lock", field="directories"))
        return _DEFAULT_SRC, _DEFAULT_MODULES
    found = []
    for key, default in (("src", _DEFAULT_SRC), ("modules", _DEFAULT_MODULES)):
        value = dirs.get(key, default)
        if not isinstance(value, str) or not value.strip():
            errors.append(
                DefinitionError("must be a non-empty path", where="wippy.lock", field=f"directories.{key}")
            )
            value = default
        found.append(value)
    return found[0], found[1]


def _load_small_yaml(path: Path) -> Any:
    """A small YAML file (lock, module manifest) as plain data; DefinitionError(where=line) if bad."""
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DefinitionError(f"cannot read: {e}") from e
    try:
        return _plain(_yaml.loads(text))
    except _yaml.YamlError as e:
        line, reason = _yaml_problem(e)
        raise DefinitionError(f"invalid YAML: {reason}", where=f":{line}" if line else None) from e
    except _NotJson as e:
        raise DefinitionError(e.reason(), field=_dotted(e.path) or None) from e


def _with_where(error: DefinitionError, name: str) -> DefinitionError:
    where = f"{name}{error.where}" if error.where else name
    return DefinitionError(error.reason, where=where, entry=error.entry, field=error.field)


def _duplicates(entries: list[LoadedEntry]) -> list[DefinitionError]:
    first: dict[str, LoadedEntry] = {}
    errors = []
    for loaded in entries:
        seen = first.setdefault(loaded.entry.id, loaded)
        if seen is not loaded:
            errors.append(
                DefinitionError(
                    f"duplicate entry id, first defined at {seen.origin}",
                    where=loaded.origin,
                    entry=loaded.entry.id,
                )
            )
    return errors


def _inside(path: Path, root: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))


class _Reader:
    """Reads definition files into entries; origins are relative to the app root.

    Also the module system's way to read a vendored module (``_modules.ModuleReader``).
    """

    def __init__(self, root: Path, *, skip: Path | None = None) -> None:
        self._root = root
        self._skip = os.path.normpath(skip) if skip is not None else None
        self._sources: dict[tuple[str, str], str | DefinitionError] = {}

    def relative(self, path: Path | str) -> str:
        return Path(os.path.relpath(path, self._root)).as_posix()

    def manifest(self, path: Path) -> Any:
        """A module's ``wippy.yaml`` as plain data (None when absent)."""
        if not path.is_file():
            return None
        try:
            return _load_small_yaml(path)
        except DefinitionError as e:
            raise _with_where(e, self.relative(path)) from e

    def entries(self, src_dir: Path, confine: Path) -> tuple[list[LoadedEntry], list[DefinitionError]]:
        """Every entry defined by the YAML files below ``src_dir``; file:// sources stay in ``confine``."""
        entries: list[LoadedEntry] = []
        errors: list[DefinitionError] = []
        real_confine = os.path.realpath(confine)
        for path in self._yaml_files(src_dir, errors):
            self._read_file(Path(path), real_confine, entries, errors)
        return entries, errors

    def _yaml_files(self, src_dir: Path, errors: list[DefinitionError]) -> list[str]:
        def failed(e: OSError) -> None:
            where = self.relative(e.filename) if e.filename else None
            errors.append(DefinitionError(f"cannot read directory: {e.strerror}", where=where))

        found: list[str] = []
        for folder, dirs, files in os.walk(src_dir, onerror=failed):
            if self._skip is not None:
                dirs[:] = [d for d in dirs if os.path.normpath(os.path.join(folder, d)) != self._skip]
            found.extend(os.path.join(folder, f) for f in files if f.endswith((".yaml", ".yml")))
        return sorted(found, key=self.relative)

    def _read_file(
        self, path: Path, confine: str, entries: list[LoadedEntry], errors: list[DefinitionError]
    ) -> None:
        rel = self.relative(path)
        try:
            text = path.read_bytes().decode("utf-8")
        except OSError as e:
            errors.append(DefinitionError(f"cannot read file: {e.strerror}", where=rel))
            return
        except UnicodeDecodeError as e:
            why = f"file is not UTF-8 text ({e.reason} at byte {e.start})"
            errors.append(DefinitionError(why, where=rel))
            return
        try:
            doc = _read_yaml(text)
        except _yaml.YamlError as e:
            line, reason = _yaml_problem(e)
            errors.append(DefinitionError(f"invalid YAML: {reason}", where=f"{rel}:{line}" if line else rel))
            return
        except _NotJson as e:
            errors.append(_not_json_error(e, text, rel))
            return
        _FileEntries(
            self, path=path, rel=rel, text=text, doc=doc, confine=confine, entries=entries, errors=errors
        ).read()

    def source(self, folder: Path, ref: str, confine: str) -> str | DefinitionError:
        """The text a ``file://`` source names, or the problem (cached: entries share files)."""
        key = (str(folder), ref)
        found = self._sources.get(key)
        if found is None:
            found = self._sources[key] = self._read_source(folder, ref, confine)
        return found

    def _read_source(self, folder: Path, ref: str, confine: str) -> str | DefinitionError:
        target = os.path.realpath(folder / ref[len("file://") :])
        if not Path(target).is_relative_to(confine):
            boundary = self.relative(confine)
            return DefinitionError(
                f"{ref} points outside {'the app directory' if boundary == '.' else boundary}"
            )
        shown = self.relative(target)
        try:
            raw = Path(target).read_bytes()
        except FileNotFoundError:
            return DefinitionError(f"{ref}: file {shown} does not exist")
        except OSError as e:
            return DefinitionError(f"{ref}: cannot read {shown}: {e.strerror}")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            return DefinitionError(f"{ref}: {shown} is not UTF-8 text ({e.reason} at byte {e.start})")


class _FileEntries:
    """Turns one parsed definition file into entries (or errors)."""

    def __init__(
        self,
        reader: _Reader,
        *,
        path: Path,
        rel: str,
        text: str,
        doc: _Doc,
        confine: str,
        entries: list[LoadedEntry],
        errors: list[DefinitionError],
    ) -> None:
        self._reader = reader
        self._folder = path.parent
        self._rel = rel
        self._text = text
        self._doc = doc
        self._confine = confine
        self._entries = entries
        self._errors = errors
        self._locator: _yaml.Locator | None = None

    def read(self) -> None:
        value = self._doc.value
        if not isinstance(value, dict) or ("namespace" not in value and "entries" not in value):
            return  # not a definition file
        try:
            ns = check_namespace(value.get("namespace"))
        except DefinitionError as e:
            self._error(e.reason if "namespace" in value else "a file with entries needs a namespace",
                        None, "namespace")
            return
        if "entries" in value:
            items = value["entries"]
            if items is None:
                return
            if not isinstance(items, list):
                self._error(f"entries must be a list, not {_type_name(items)}", None, "entries")
                return
            lines = self._doc.entry_lines
            known = len(lines)
            add = self._entries.append
            rel = self._rel
            for index, item in enumerate(items):
                entry = self._entry(ns, item, index)
                if entry is not None:
                    line = lines[index] if index < known else self._doc.root_line
                    add(LoadedEntry(entry, f"{rel}:{line}"))
        elif "name" in value or "kind" in value:
            # Single-entry form: the file itself is the entry (its `version`, if any, is entry data).
            item = dict(value)
            del item["namespace"]
            entry = self._entry(ns, item, None)
            if entry is not None:
                self._entries.append(LoadedEntry(entry, f"{self._rel}:{self._doc.root_line}"))

    def _entry(self, ns: str, item: Any, index: int | None) -> Entry | None:
        """The entry an item of ``entries`` defines, or None after reporting what is wrong with it."""
        if type(item) is not dict:
            self._error(f"an entry must be a mapping with name and kind, not {_type_name(item)}", index)
            return None
        name = item.pop("name", None)
        kind = item.pop("kind", None)
        meta = item.pop("meta", None)
        valid = not (
            type(name) is not str
            or not name
            or _BAD_NAME.search(name)
            or type(kind) is not str
            or not kind
            or (meta is not None and type(meta) is not dict)
        )
        entry_id = f"{ns}:{name}" if valid else self._invalid(ns, name, kind, meta, index)
        source = item.get("source")
        if type(source) is str and source.startswith("file://"):
            text = self._reader.source(self._folder, source, self._confine)
            if isinstance(text, DefinitionError):
                self._error(text.reason, index, "source", entry_id)
                return None
            item["source"] = text
        if not valid or entry_id is None:
            return None
        if meta is None:
            meta = {}
        resolve_names(ns, kind, meta, item)
        return Entry(entry_id, kind, meta, item)

    def _invalid(self, ns: str, name: Any, kind: Any, meta: Any, index: int | None) -> str | None:
        """Report every problem with an entry's name, kind and meta; the entry's id if it has one."""
        entry_id = None
        if type(name) is not str:
            why = "missing required field" if name is None else f"must be a string, not {_type_name(name)}"
            self._error(why, index, "name")
        else:
            try:
                entry_id = f"{ns}:{name}"
                parse_id(entry_id)
                if _BAD_NAME.search(name):
                    raise DefinitionError(name)
            except DefinitionError:
                self._error(f"name {name!r} must be non-empty, without ':' or whitespace", index, "name")
                entry_id = None
        if type(kind) is not str or not kind:
            why = "missing required field" if kind is None else "must be a non-empty string"
            self._error(why, index, "kind", entry_id)
        if meta is not None and type(meta) is not dict:
            self._error(f"must be a mapping, not {_type_name(meta)}", index, "meta", entry_id)
        return entry_id

    def _error(
        self, reason: str, index: int | None, field: str | None = None, entry: str | None = None
    ) -> None:
        if self._locator is None:
            self._locator = _yaml.Locator(self._text)
        line = self._locator.line(index, field)
        where = f"{self._rel}:{line}" if line else self._rel
        self._errors.append(DefinitionError(reason, where=where, entry=entry, field=field))


# Names: non-empty, no ':' and no whitespace (as `parse_id` checks, but also at the very end).
_BAD_NAME = re.compile(r"[\s:]")
def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _not_json_error(error: _NotJson, text: str, rel: str) -> DefinitionError:
    path = error.path
    if len(path) >= 2 and path[0] == "entries" and isinstance(path[1], int):
        top = path[2] if len(path) > 2 and isinstance(path[2], str) else None
        line = _yaml.Locator(text).line(path[1], top)
        field_path = _dotted(path[2:])
    else:
        line = _yaml.Locator(text).line(None, path[0] if path and isinstance(path[0], str) else None)
        field_path = _dotted(path)
    where = f"{rel}:{line}" if line else rel
    return DefinitionError(error.reason(), where=where, field=field_path or None)


def _dotted(path: list[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


# ---------------------------------------------------------------------------------------------
# pyyaml: the general reader, error positions, plain values
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Doc:
    value: Any
    root_line: int = 1
    #: Start line of each item of a top-level ``entries`` list (empty when there is none).
    entry_lines: list[int] = field(default_factory=list)


def _read_yaml(text: str) -> _Doc:
    """Parse a definition file with Wippy's YAML rules (see ``_yaml``)."""
    return _Doc(_json_ready(_yaml.loads(text), text), 1, _yaml.entry_lines(text))


def _json_ready(value: Any, text: str) -> Any:
    """``value`` as JSON-compatible data the loader may change in place.

    The common case needs no copy: the parser's objects are fresh, and orjson (which refuses
    non-string keys, sets and oversized integers) confirms they are JSON. Anchors (shared objects),
    NaN/infinity (which orjson would write as null) and anything orjson refuses go through
    ``_plain``, which copies, converts keys and says where a bad value is.
    """
    lowered = text.lower()
    if "&" not in text and ".nan" not in lowered and ".inf" not in lowered:
        try:
            orjson.dumps(value)
        except TypeError:
            pass
        else:
            return value
    return _plain(value)


def _yaml_problem(error: _yaml.YamlError) -> tuple[int | None, str]:
    return error.line, error.reason


class _NotJson(Exception):
    """A YAML value with no JSON equivalent (binary, set, NaN); ``path`` says where."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what
        self.path: list[str | int] = []

    def reason(self) -> str:
        return f"{self.what} is not allowed: values must be JSON-compatible"


def _plain(value: Any) -> Any:
    """A fresh copy of a constructed YAML value with JSON types only (keys str, dates ISO text)."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        if not -(2**63) <= value < 2**64:
            raise _NotJson(f"the integer {value} (beyond 64 bits)")
        return value
    if kind is dict:
        out = {}
        for key, item in value.items():
            name = _key(key)
            try:
                out[name] = _plain(item)
            except _NotJson as e:
                e.path.insert(0, name)
                raise
        return out
    if kind is list or kind is tuple:
        items = []
        for index, item in enumerate(value):
            try:
                items.append(_plain(item))
            except _NotJson as e:
                e.path.insert(0, index)
                raise
        return items
    if kind is float:
        if not math.isfinite(value):
            raise _NotJson(f"the number {value}")
        return value
    if isinstance(value, date):
        return value.isoformat()
    raise _NotJson(f"a value of type {kind.__name__}")


def _key(value: Any) -> str:
    """Mapping keys are strings in the registry; scalars are written the way JSON would."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
