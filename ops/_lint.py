"""``wippy lint``: check an app's files without running anything, without NATS or a state dir.

What it checks, in order:

1. ``.wippy.yaml`` reads as the runtime would read it (``build_config``).
2. The app loads (``wippy.core.load_app``: YAML, entry names, kinds' fields, vendored modules) and
   its entries pass the checks ``wippy run`` makes before a version is appended
   (``validate_changeset`` against an empty registry: references, kind-specific fields). When
   loading fails nothing else can be checked, so lint stops there with what it found.
3. Each Lua entry (``CODE_KINDS``): its source translates from Wippy's dialect (Luau-style types
   are accepted) and compiles as plain Lua 5.4, in a Lua runtime of its own, without running a line;
   ``modules:`` names modules this runtime has; ``imports:`` targets exist (in the app or as a
   native library) and are Lua code; a ``function.lua`` or ``process.lua`` whose top-level
   ``return`` is visibly a table names its function with ``method:`` (and one visibly returning a
   function names none).

Severity. An *error* is something that makes ``wippy run`` refuse the app or makes the entry fail
whenever it loads or is called: bad YAML, invalid fields, an unresolved reference, a syntax error,
a module name that neither this runtime nor Wippy knows (modules come from the runtime itself;
vendored components supply libraries through ``imports:``, never modules), a missing import, a
table returned without ``method:``. A *warning* is something that may be intended or fail only on
one code path: an unknown kind (stored, no handler), a module Wippy documents that this runtime
does not provide yet (``require`` raises UNAVAILABLE), ``require`` of a name the entry does not
list, a ``method:`` the returned table does not visibly define. Lint exits 1 when it found an
error, 0 otherwise (warnings are printed but do not fail it).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from wippy.core import (
    ConfigError,
    DefinitionError,
    DefinitionErrors,
    Entry,
    LoadedApp,
    Op,
    YamlError,
    load_app,
    load_yaml,
    validate_changeset,
)
from wippy.lua_stdlib import (
    CODE_KINDS,
    WIPPY_MODULES,
    DialectError,
    LuaMemoryError,
    LuaSettings,
    LuaVM,
    available_modules,
    native_library,
    required_names,
    returned_shape,
    translate,
)

from ._config import build_config
from ._output import emit_json

Severity = Literal["error", "warning"]
_CALLED_KINDS = frozenset({"function.lua", "process.lua"})  # run through `method:` (LuaHost.callable)


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: where (app-relative file, 1-based line), which entry and field, what."""

    file: str | None
    line: int | None
    entry: str | None
    field: str | None
    message: str
    severity: Severity = "error"

    def render(self) -> str:
        """``file:line: entry id: message`` (parts that are unknown are left out)."""
        parts = []
        if self.file:
            parts.append(f"{self.file}:{self.line}" if self.line else self.file)
        if self.entry:
            parts.append(self.entry)
        if self.severity == "warning":
            parts.append("warning")
        if self.field:
            parts.append(f"field {self.field}")
        return ": ".join([*parts, self.message])

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "entry": self.entry, "field": self.field,
                "message": self.message, "severity": self.severity}


@dataclass(frozen=True, slots=True)
class LintResult:
    problems: tuple[Problem, ...]
    entries: int  #: entries loaded (0 when the app did not load)
    lua_entries: int  #: Lua entries compiled

    @property
    def errors(self) -> int:
        return sum(p.severity == "error" for p in self.problems)

    @property
    def warnings(self) -> int:
        return len(self.problems) - self.errors

    def summary(self) -> str:
        checked = f"{self.entries} entries, {self.lua_entries} Lua chunks checked"
        if not self.problems:
            return f"ok: {checked}, no problems"
        return f"{self.errors} error(s), {self.warnings} warning(s); {checked}"


def lint_command(app_dir: str, *, json_output: bool, out: TextIO | None = None) -> int:
    """``wippy lint``: print the problems and a summary (or JSON); 0 clean, 1 errors, 2 no such dir."""
    out = out or sys.stdout
    path = Path(app_dir)
    if not path.is_dir():
        print(f"error: wippy lint: app directory {app_dir} does not exist", file=sys.stderr)
        return 2
    result = lint_app(path)
    if json_output:
        emit_json([p.to_json() for p in result.problems], out)
    else:
        for problem in result.problems:
            out.write(problem.render() + "\n")
        out.write(result.summary() + "\n")
    return 1 if result.errors else 0


def lint_app(app_dir: Path) -> LintResult:
    """Every problem lint finds in the app at ``app_dir`` (which must be a directory)."""
    from wippy import services  # noqa: F401 - registers the service-side modules and kind checks

    problems: list[Problem] = []
    try:
        build_config(app_dir=str(app_dir), state_dir=None, nats=None, node=None, namespace=None,
                     sync_interval=None, json_output=False, verbose=False, environ={})
    except ConfigError as exc:
        problems.append(Problem(".wippy.yaml", None, None, None, _strip_prefix(str(exc))))
    try:
        loaded = load_app(app_dir)
    except DefinitionErrors as exc:
        problems.extend(_from_definition(e) for e in exc.errors)
        return LintResult(tuple(problems), 0, 0)
    origins = {le.entry.id: le.origin for le in loaded.entries}
    problems.extend(Problem(None, None, None, None, w, "warning") for w in loaded.warnings)
    problems.extend(_registry_checks(loaded, origins))
    lua = _LuaChecker(loaded)
    for le in loaded.entries:
        if le.entry.kind in CODE_KINDS:
            problems.extend(lua.check(le.entry, le.origin))
    problems.sort(key=lambda p: (p.file or "", p.line or 0, p.entry or "", p.message))
    return LintResult(tuple(problems), len(loaded.entries), lua.compiled)


def _strip_prefix(text: str) -> str:
    """A ConfigError about .wippy.yaml without the path it starts with (the file column has it)."""
    return re.sub(r"^\S*\.wippy\.yaml:?\s*", "", text)


_WHERE = re.compile(r"^(?P<file>.*?)(?::(?P<line>\d+))?(?::\d+)?$")


def _split_where(where: str | None) -> tuple[str | None, int | None]:
    if not where:
        return None, None
    m = _WHERE.match(where)
    assert m is not None  # the pattern matches any text
    line = m.group("line")
    return m.group("file") or None, int(line) if line else None


def _from_definition(error: DefinitionError, severity: Severity = "error") -> Problem:
    file, line = _split_where(error.where)
    return Problem(file, line, error.entry, error.field, error.reason, severity)


class _NoEntries:
    """The empty registry the app's files are checked against (a RegistryView)."""

    def get(self, entry_id: str) -> Entry | None:
        return None

    def referrers(self, entry_id: str) -> set[str]:
        return set()

    def origin(self, entry_id: str) -> str | None:
        return None


def _registry_checks(loaded: LoadedApp, origins: Mapping[str, str]) -> list[Problem]:
    """What `wippy run` checks before appending the app's entries as a first version."""
    ops = [Op("create", le.entry.id, le.entry, le.origin) for le in loaded.entries]
    try:
        warnings = validate_changeset(_NoEntries(), ops)
    except DefinitionErrors as exc:
        return [_from_definition(e) for e in exc.errors]
    found = []
    for text in warnings:  # "<entry id>: <what>"
        entry, _, message = text.partition(": ")
        file, line = _split_where(origins.get(entry))
        found.append(Problem(file, line, entry if file else None, None, message if file else text, "warning"))
    return found


class _LuaChecker:
    """Translates and compiles Lua entries in one Lua runtime that never runs their code."""

    def __init__(self, loaded: LoadedApp) -> None:
        self._root = loaded.root
        self._entries = {le.entry.id: le.entry for le in loaded.entries}
        self._modules = available_modules()
        # no watchdog: nothing here runs user code
        self._vm = LuaVM(LuaSettings(max_slice_seconds=0), label="lint")
        self._compile = self._vm.rt.eval("function(code, name) return load(code, '=' .. name, 't', {}) end")
        self._yaml: dict[str, Any] = {}
        self.compiled = 0

    def check(self, entry: Entry, origin: str) -> Iterator[Problem]:
        file, line = _split_where(origin)
        listed = yield from self._check_modules(entry, file, line)
        imports = yield from self._check_imports(entry, file, line)
        source = entry.data.get("source")
        if not isinstance(source, str):
            yield Problem(file, line, entry.id, "source", "Lua code needs a source (inline text or file://)")
            return
        where = self._source_where(entry, file, line)
        try:
            code = translate(source, entry.id).code
        except DialectError as exc:
            yield where.problem(entry.id, exc.line, exc.reason)
            return
        self.compiled += 1
        message = self._compile_error(code, entry.id)
        if message is not None:
            lua_line, reason = _lua_position(message, entry.id)
            yield where.problem(entry.id, lua_line, reason)
            return
        yield from self._check_code(entry, code, where, listed | set(imports))

    def _check_modules(self, entry: Entry, file: str | None, line: int | None) -> Generator[Problem, None, set[str]]:
        names = entry.data.get("modules")
        if names is None:
            return set()
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            yield Problem(file, line, entry.id, "modules", "must be a list of module names")
            return set()
        for name in names:
            if name in self._modules:
                continue
            if name in WIPPY_MODULES:
                yield Problem(file, line, entry.id, "modules",
                              f"module {name} is not provided by this runtime yet (require raises UNAVAILABLE)",
                              "warning")
            else:
                yield Problem(file, line, entry.id, "modules", f"no module named {name}")
        return set(names)

    def _check_imports(self, entry: Entry, file: str | None, line: int | None
                       ) -> Generator[Problem, None, dict[str, Any]]:
        imports = entry.data.get("imports")
        if imports is None:
            return {}
        if not isinstance(imports, dict):
            yield Problem(file, line, entry.id, "imports", "must be a mapping of local name to library entry id")
            return {}
        for alias, target in imports.items():
            fld = f"imports.{alias}"
            if not isinstance(target, str):
                yield Problem(file, line, entry.id, fld, "must be an entry id (namespace:name)")
                continue
            found = self._entries.get(target) or native_library(target)
            if found is None:
                yield Problem(file, line, entry.id, fld,
                              f"names {target}, which is neither in the app nor a library this runtime provides")
            elif found.kind not in CODE_KINDS:
                yield Problem(file, line, entry.id, fld, f"names {target}, which is a {found.kind}, not Lua code")
        return dict(imports)

    def _compile_error(self, code: str, name: str) -> str | None:
        try:
            result = self._compile(code, name)
        except LuaMemoryError:
            return "the code is too large to compile"
        except UnicodeError as exc:
            return f"the source is not valid text: {exc}"
        if isinstance(result, tuple):  # load() failed: nil, message
            return str(result[1])
        return None

    def _check_code(self, entry: Entry, code: str, where: _SourceWhere, known: set[str]) -> Iterator[Problem]:
        for line_no, name in required_names(code):
            if name not in known:
                yield where.problem(entry.id, line_no,
                                    f"require({name!r}): {name} is in neither modules: nor imports:", "warning")
        if entry.kind not in _CALLED_KINDS:
            return
        shape = returned_shape(code)
        if shape is None:
            return
        method = entry.data.get("method")
        line = shape.line
        if shape.kind == "table" and not method:
            yield where.problem(entry.id, line, "the code returns a table; name its function with `method:`")
        elif shape.kind == "function" and method:
            yield where.problem(entry.id, line, f"method {method!r} is named, but the code returns a function")
        elif shape.kind == "table" and isinstance(method, str) and shape.keys is not None and method not in shape.keys:
            yield where.problem(entry.id, line, f"the returned table has no visible function {method!r} "
                                "(method:)", "warning")

    def _source_where(self, entry: Entry, file: str | None, line: int | None) -> _SourceWhere:
        """Where line 1 of an entry's Lua source is: its own .lua file, or inside the YAML file."""
        if file is None or line is None:
            return _SourceWhere(file, line, None)
        doc = self._yaml_doc(file)
        raw = _raw_source(doc, entry.id.split(":", 1)[1])
        if isinstance(raw, str) and raw.startswith("file://"):
            path = (self._root / file).parent / raw[len("file://"):]
            try:
                rel = path.resolve().relative_to(self._root).as_posix()
            except ValueError:
                rel = path.as_posix()
            return _SourceWhere(rel, 0, None)
        key = _source_key_line(self._root / file, line)
        return _SourceWhere(file, key, line)

    def _yaml_doc(self, file: str) -> Any:
        if file not in self._yaml:
            try:
                self._yaml[file] = load_yaml((self._root / file).read_text(encoding="utf-8"))
            except (OSError, UnicodeError, YamlError):
                self._yaml[file] = None
        return self._yaml[file]


@dataclass(frozen=True, slots=True)
class _SourceWhere:
    """Maps a line of an entry's Lua source to a file line: ``offset + n`` (unknown: the entry's line)."""

    file: str | None
    offset: int | None
    fallback: int | None

    def problem(self, entry: str, lua_line: int | None, message: str, severity: Severity = "error") -> Problem:
        if self.offset is None or lua_line is None:
            where = f" (source line {lua_line})" if lua_line is not None else ""
            return Problem(self.file, self.fallback, entry, "source", message + where, severity)
        return Problem(self.file, self.offset + lua_line, entry, None if self.fallback is None else "source",
                       message, severity)


def _raw_source(doc: Any, name: str) -> Any:
    if not isinstance(doc, dict):
        return None
    items = doc.get("entries")
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and item.get("name") == name:
                return item.get("source")
        return None
    return doc.get("source") if doc.get("name") == name else None


_SOURCE_KEY = re.compile(r"^\s*(?:-\s+)?source\s*:\s*(?P<rest>.*)$")


def _source_key_line(path: Path, entry_line: int) -> int | None:
    """The line before Lua line 1 of an inline ``source:`` (a block scalar starts on the next line)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeError):
        return None
    for number in range(entry_line, len(lines) + 1):
        m = _SOURCE_KEY.match(lines[number - 1])
        if m:
            rest = m.group("rest").strip()
            return number if rest.startswith(("|", ">")) else number - 1
    return None


def _lua_position(message: str, chunk: str) -> tuple[int | None, str]:
    m = re.match(re.escape(chunk) + r":(\d+): (.*)", message, re.DOTALL)
    if m is None:
        return None, message
    return int(m.group(1)), m.group(2)


def _line_of(code: str, offset: int) -> int:
    return code.count("\n", 0, offset) + 1
