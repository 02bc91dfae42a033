"""Wippy's module system: the components an app depends on, and the link stage that wires them in.

Three entry kinds carry it, all stored as plain data: ``ns.definition`` describes a module,
``ns.requirement`` is a hole the module's user fills, ``ns.dependency`` mounts a component
(``org/module``) and fills its holes with ``parameters``. A dependency is satisfied either by the
runtime itself (a native component, see ``_components``) or by a module unpacked under
``<modules dir>/vendor/<org>/<module>/`` (``wippy.yaml`` + ``src/``), whose own dependencies are
resolved the same way, each component once. A native component may carry a bundle of entries
(``NativeComponent.bundle``): they are loaded and linked like a vendored module's, except that the
targets of a requirement left without a value are left out (with a warning) instead of failing the
app on a dangling reference, since the app never chose to copy them in.

The link stage then gives every requirement its value (a parameter named like the requirement,
bare or by full id; else its ``default``; else it stays open, with a warning) and writes that
value into each target entry at a dot path (``.host``, ``.meta.router``, ``.middleware+=``).
Entries are never changed in place: a target gets a new ``Entry``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ._components import COMPONENT_NAME, NativeComponent
from ._entry import Entry
from ._errors import DefinitionError

if TYPE_CHECKING:
    from ._loader import LoadedEntry


class ModuleReader(Protocol):
    """How the module system reads files (the loader provides it)."""

    def entries(self, src_dir: Path, confine: Path) -> tuple[list[LoadedEntry], list[DefinitionError]]:
        """Entries of the definition files below ``src_dir``; ``file://`` stays inside ``confine``."""
        ...

    def manifest(self, path: Path) -> Any:
        """A ``wippy.yaml`` as plain data, None when absent; DefinitionError when unreadable."""
        ...

    def relative(self, path: Path | str) -> str:
        """``path`` as shown in messages (relative to the app)."""
        ...


@dataclass(slots=True)
class Linked:
    """The app's and its vendored modules' entries after the link stage, and what was found."""

    entries: list[LoadedEntry]
    warnings: list[str] = field(default_factory=list)
    native: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[DefinitionError] = field(default_factory=list)


@dataclass(slots=True)
class _Declaration:
    """One ``ns.dependency`` entry."""

    loaded: LoadedEntry
    component: str
    version: str | None
    parameters: dict[str, Any]
    from_app: bool


@dataclass(slots=True)
class _Component:
    """A set of loaded entries: the app itself (``name`` None) or one vendored module."""

    name: str | None
    entries: list[LoadedEntry]
    version: str | None = None


def link_components(
    modules_dir: Path,
    app_entries: list[LoadedEntry],
    components: Mapping[str, NativeComponent],
    reader: ModuleReader,
) -> Linked:
    """Resolve the app's dependencies (transitively), load vendored modules and run the link stage."""
    linker = _Linker(modules_dir, components, reader)
    return linker.run(app_entries)


class _Linker:
    def __init__(
        self, modules_dir: Path, components: Mapping[str, NativeComponent], reader: ModuleReader
    ) -> None:
        self._vendor = modules_dir / "vendor"
        self._native = components
        self._reader = reader
        self._loaded: list[_Component] = []
        self._declared: dict[str, list[_Declaration]] = {}
        self._state: dict[str, str] = {}  # component -> native | vendored | missing
        self._out = Linked(entries=[])

    def run(self, app_entries: list[LoadedEntry]) -> Linked:
        self._loaded.append(_Component(None, app_entries))
        done = 0
        while done < len(self._loaded):  # grows while modules are found: breadth-first
            component = self._loaded[done]
            done += 1
            for loaded in component.entries:
                if loaded.entry.kind == "ns.dependency":
                    self._depend(loaded, from_app=component.name is None)
        self._check_versions()
        for name, declarations in self._declared.items():
            if self._state[name] == "native":
                params: dict[str, Any] = {}
                for declaration in declarations:
                    for key, value in declaration.parameters.items():
                        params.setdefault(key, value)
                self._out.native[name] = params
        self._out.entries = [loaded for component in self._loaded for loaded in component.entries]
        self._link()
        return self._out

    # -- dependencies -------------------------------------------------------------------------

    def _depend(self, loaded: LoadedEntry, *, from_app: bool) -> None:
        declaration = self._declaration(loaded, from_app)
        if declaration is None:
            return
        name = declaration.component
        self._declared.setdefault(name, []).append(declaration)
        state = self._state.get(name)
        if state is None:
            state = self._state[name] = self._locate(name)
        if state == "missing":
            org, module = name.split("/")
            shown = self._reader.relative(self._vendor / org / module)
            hint = ""
            if (self._vendor / org).is_dir() and any(
                p.name.startswith(module) and p.suffix == ".wapp" for p in (self._vendor / org).iterdir()
            ):
                hint = " (a .wapp pack is there; this runtime needs modules unpacked: options.unpack_modules)"
            self._error(
                loaded,
                f"component {name} is neither provided by this runtime nor vendored under {shown}{hint}",
                "component",
            )

    def _declaration(self, loaded: LoadedEntry, from_app: bool) -> _Declaration | None:
        data = loaded.entry.data
        name = data.get("component")
        if not isinstance(name, str) or not COMPONENT_NAME.match(name):
            why = "missing required field" if name is None else f"must be 'org/module', not {name!r}"
            self._error(loaded, why, "component")
            return None
        version = data.get("version")
        if isinstance(version, int | float) and not isinstance(version, bool):
            version = str(version)
        elif version is not None and not isinstance(version, str):
            self._error(loaded, "must be a version constraint string", "version")
            version = None
        params: dict[str, Any] = {}
        raw = data.get("parameters")
        if raw is not None and not isinstance(raw, list):
            self._error(loaded, "must be a list of {name, value}", "parameters")
            raw = None
        for index, param in enumerate(raw or ()):
            if not isinstance(param, dict) or not isinstance(param.get("name"), str) or not param["name"]:
                self._error(loaded, "each parameter needs a name", f"parameters[{index}].name")
            elif "value" not in param:
                self._error(loaded, "missing required field", f"parameters[{index}].value")
            else:
                params.setdefault(param["name"], param["value"])
        return _Declaration(loaded, name, version, params, from_app)

    def _locate(self, name: str) -> str:
        native = self._native.get(name)
        if native is not None:
            if native.bundle is not None:
                entries, errors = self._reader.entries(native.bundle, native.bundle)
                self._out.errors.extend(errors)
                self._loaded.append(_Component(name, entries))
            return "native"
        org, module = name.split("/")
        module_root = self._vendor / org / module
        if not module_root.is_dir():
            return "missing"
        version = None
        try:
            manifest = self._reader.manifest(module_root / "wippy.yaml")
        except DefinitionError as e:
            self._out.errors.append(e)
            manifest = None
        if isinstance(manifest, dict) and manifest.get("version") is not None:
            version = str(manifest["version"])
        src = module_root / "src"
        if not src.is_dir():
            where = self._reader.relative(module_root)
            reason = f"vendored module {name} has no src directory"
            self._out.errors.append(DefinitionError(reason, where=where))
            return "vendored"
        entries, errors = self._reader.entries(src, module_root)
        self._out.errors.extend(errors)
        self._loaded.append(_Component(name, entries, version))
        return "vendored"

    def _check_versions(self) -> None:
        """Each vendored module against the constraints on it; the app's own, when it has any, win."""
        for component in self._loaded[1:]:
            declarations = self._declared[str(component.name)]
            ruling = [d for d in declarations if d.from_app] or declarations
            for declaration in ruling:
                if declaration.version is None or component.version is None:
                    continue
                fits = version_satisfies(component.version, declaration.version)
                if fits is None:
                    self._out.warnings.append(
                        f"{declaration.loaded.origin}: version constraint {declaration.version!r} on "
                        f"{component.name} (vendored {component.version}) not checked: syntax not understood"
                    )
                elif not fits:
                    self._error(
                        declaration.loaded,
                        f"vendored {component.name} is version {component.version}, "
                        f"which does not satisfy {declaration.version!r}",
                        "version",
                    )

    # -- the link stage -----------------------------------------------------------------------

    def _link(self) -> None:
        entries = self._out.entries
        index: dict[str, int] = {}
        for position, loaded in enumerate(entries):
            index.setdefault(loaded.entry.id, position)
        left_out: set[str] = set()
        for component in self._loaded:
            params: dict[str, tuple[Any, _Declaration]] = {}
            declarations = self._declared.get(component.name, []) if component.name else []
            for declaration in declarations:
                for key, value in declaration.parameters.items():
                    params.setdefault(key, (value, declaration))
            # a native component's own code may read parameters its bundle does not declare
            native = component.name is not None and self._state.get(component.name) == "native"
            used: set[str] = set()
            for loaded in component.entries:
                if loaded.entry.kind == "ns.requirement" and not self._fill(loaded, params, used, index) and native:
                    left_out |= self._left_out(loaded)
            for key, (_, declaration) in params.items():
                if key not in used and not native:
                    self._out.warnings.append(
                        f"{declaration.loaded.origin}: {declaration.loaded.entry.id} passes parameter "
                        f"{key!r}, but {component.name} has no such requirement"
                    )
        if left_out:
            self._out.entries = [loaded for loaded in entries if loaded.entry.id not in left_out]

    def _left_out(self, requirement: LoadedEntry) -> set[str]:
        """The targets of a native bundle's requirement that got no value, dropped with a warning."""
        targets = requirement.entry.data.get("targets")
        ids = {
            _target_id(requirement.entry, target["entry"])
            for target in (targets if isinstance(targets, list) else ())
            if isinstance(target, dict) and isinstance(target.get("entry"), str)
        }
        if ids:
            self._out.warnings.append(
                f"{requirement.origin}: the runtime leaves out what {requirement.entry.id} would wire: "
                f"{', '.join(sorted(ids))}"
            )
        return ids

    def _fill(
        self,
        requirement: LoadedEntry,
        params: dict[str, tuple[Any, _Declaration]],
        used: set[str],
        index: dict[str, int],
    ) -> bool:
        """Write the requirement's value into its targets; False when it has no value."""
        entry = requirement.entry
        given = entry.name if entry.name in params else entry.id if entry.id in params else None
        if given is not None:
            value = params[given][0]
            used.add(given)
        elif "default" in entry.data:
            value = entry.data["default"]
        else:
            self._out.warnings.append(
                f"{requirement.origin}: requirement {entry.id} is not provided: no dependency passes "
                f"a parameter {entry.name!r} and it has no default"
            )
            return False
        targets = entry.data.get("targets")
        if targets is None:
            return True
        if not isinstance(targets, list):
            self._error(requirement, "must be a list of {entry, path}", "targets")
            return True
        entries = self._out.entries
        for number, target in enumerate(targets):
            if (
                not isinstance(target, dict)
                or not isinstance(target.get("entry"), str)
                or not isinstance(target.get("path"), str)
            ):
                reason = "must be a mapping with entry and path strings"
                self._error(requirement, reason, f"targets[{number}]")
                continue
            target_id = _target_id(entry, target["entry"])
            position = index.get(target_id)
            if position is None:
                reason = f"target entry {target_id} does not exist"
                self._error(requirement, reason, f"targets[{number}].entry")
                continue
            try:
                changed = inject(entries[position].entry, target["path"], value)
            except DefinitionError as e:
                self._error(requirement, f"{target_id}: {e.reason}", f"targets[{number}].path")
                continue
            entries[position] = replace(entries[position], entry=changed)
        return True

    def _error(self, loaded: LoadedEntry, reason: str, field_name: str) -> None:
        self._out.errors.append(
            DefinitionError(reason, where=loaded.origin, entry=loaded.entry.id, field=field_name)
        )


def _target_id(requirement: Entry, target: str) -> str:
    """A requirement's target entry as a full id (a bare name is in the requirement's namespace)."""
    return target if ":" in target else f"{requirement.ns}:{target}"


def inject(entry: Entry, path: str, value: Any) -> Entry:
    """A copy of ``entry`` with ``value`` written at a dot path.

    ``.host`` is ``data["host"]``, ``.meta.x`` is ``meta["x"]``, ``.a.b`` is ``data["a"]["b"]``
    (missing mappings are created) and a trailing ``+=`` appends to a list (created if missing).
    """
    text = path.strip()
    append = text.endswith("+=")
    if append:
        text = text[:-2].rstrip()
    parts = text.removeprefix(".").split(".")
    if not all(parts):
        raise DefinitionError(f"path {path!r} must be a dot path such as .host or .meta.router")
    if isinstance(value, dict | list):
        value = copy.deepcopy(value)
    if parts[0] == "meta":
        if len(parts) == 1:
            raise DefinitionError(f"path {path!r} must name a field inside meta")
        return replace(entry, meta=_written(entry.meta, parts[1:], value, append=append, path=path))
    return replace(entry, data=_written(entry.data, parts, value, append=append, path=path))


def _written(
    mapping: dict[str, Any], parts: list[str], value: Any, *, append: bool, path: str
) -> dict[str, Any]:
    """A copy of ``mapping`` with the value written; only the mappings on the path are copied."""
    top = dict(mapping)
    node = top
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = {}
        elif isinstance(child, dict):
            child = dict(child)
        else:
            at = ".".join(parts[: depth + 1])
            raise DefinitionError(f"path {path!r}: {at} is not a mapping")
        node[part] = child
        node = child
    last = parts[-1]
    if not append:
        node[last] = value
        return top
    current = node.get(last)
    if current is None:
        node[last] = [value]
    elif isinstance(current, list):
        node[last] = [*current, value]
    else:
        raise DefinitionError(f"path {path!r}: {'.'.join(parts)} is not a list")
    return top


# ---------------------------------------------------------------------------------------------
# Version constraints: exact, ^, ~, >=, <=, >, <, partial versions and x/* wildcards, ranges
# joined by spaces or commas (all must hold), alternatives joined by ||, hyphen ranges (a - b).
# Prerelease versions compare by semver precedence, with no special exclusion from ranges.
# ---------------------------------------------------------------------------------------------

_VERSION = re.compile(
    r"v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-([0-9A-Za-z.\-]+))?(?:\+[0-9A-Za-z.\-]+)?"
)
_COMPARATOR = re.compile(r"(\^|~|>=|<=|>|<|=)?(.+)")
_HYPHEN = re.compile(r"(\S+)\s+-\s+(\S+)")

_Precedence = tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]


def _precedence(numbers: list[int], pre: str | None) -> _Precedence:
    major, minor, patch = [*numbers, 0, 0, 0][:3]
    if pre is None:
        return (major, minor, patch, 1, ())
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (major, minor, patch, 0, ids)


def _partial(text: str) -> tuple[list[int], str | None] | None:
    match = _VERSION.fullmatch(text)
    if match is None:
        return None
    numbers: list[int] = []
    for part in match.group(1, 2, 3):
        if part is None or not part.isdigit():
            break
        numbers.append(int(part))
    return numbers, match.group(4)


def _bump(numbers: list[int], at: int) -> _Precedence:
    head = numbers[: at + 1]
    head[at] += 1
    return _precedence(head, None)


def _holds(version: _Precedence, comparator: str) -> bool | None:
    match = _COMPARATOR.fullmatch(comparator)
    parsed = _partial(match.group(2)) if match else None
    if match is None or parsed is None:
        return None
    op = match.group(1) or "="
    numbers, pre = parsed
    given = len(numbers)
    if given == 0:
        return True
    low = _precedence(numbers, pre)
    if op == "=":
        return version == low if given == 3 else low <= version < _bump(numbers, given - 1)
    if op == "^":
        at = 0 if numbers[0] > 0 or given == 1 else 1 if given == 2 or numbers[1] > 0 else 2
        return low <= version < _bump(numbers, at)
    if op == "~":
        return low <= version < _bump(numbers, 1 if given >= 2 else 0)
    if op == ">=":
        return version >= low
    if op == ">":
        return version > low if given == 3 else version >= _bump(numbers, given - 1)
    if op == "<":
        return version < low
    return version <= low if given == 3 else version < _bump(numbers, given - 1)  # <=


def version_satisfies(version: str, constraint: str) -> bool | None:
    """Whether ``version`` meets ``constraint``; None when either is not understood."""
    parsed = _partial(version.strip())
    if parsed is None or (len(parsed[0]) < 3 and re.search(r"[xX*]", version)):
        return None
    have = _precedence(*parsed)
    for alternative in constraint.split("||"):
        text = re.sub(r"(\^|~|>=|<=|>|<|=)\s+", r"\1", alternative.strip())
        hyphen = _HYPHEN.fullmatch(text)
        if hyphen:
            text = f">={hyphen.group(1)} <={hyphen.group(2)}"
        results = [_holds(have, part) for part in re.split(r"[\s,]+", text) if part]
        if None in results:
            return None
        if all(results):
            return True
    return False
