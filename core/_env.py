"""Env entries as data, and env placeholders in entry data.

Kinds: ``env.storage.os`` (the OS environment, read-only), ``env.storage.file`` (a ``.env`` file:
``file_path`` relative to the app dir, ``auto_create``, ``file_mode``, ``dir_mode``),
``env.storage.memory`` (volatile, per node), ``env.storage.static`` (``values`` in the entry,
read-only), ``env.storage.router`` (``storages``: reads search them in order, writes go to the
first) and ``env.variable`` (``variable``: the public name, omitted for a private variable reached
by entry id only; ``storage``; ``default``; ``readonly``, or ``read_only`` as the examples spell it).

Placeholders are resolved when an entry is decoded for use (stored entries keep them raw)::

    ${env:NAME}             NAME (a public variable name or an entry id) through the env registry;
                            an error when it has no value and no default
    ${env:NAME|default}     ... or ``default``
    ${NAME|default}         shorthand; NAME upper-snake, the default required
    ${NAME:-default}        shell style, as app templates write it
    $${                     a literal ``${``; a bare ``${VAR}`` is left untouched
    <field>_env: <var>      legacy sibling directive: <field> takes the variable's value; a name
                            that is no variable is left as it is, an unset variable keeps <field>

A field that is one placeholder takes the type of its inline default (``${env:PORT|8080}`` is an
integer, ``${env:PORT|"8080"}`` a string); a placeholder inside text always gives text. The
variable's own ``default`` comes before the placeholder's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._entry import Entry
from ._errors import DefinitionError
from ._validate import register_kind_check

#: name -> its value (the variable's default when unset); "" for a variable with neither; None
#: when no variable has that public name or id.
EnvLookup = Callable[[str], "str | None"]

STORAGE_KINDS = frozenset({"env.storage.os", "env.storage.file", "env.storage.memory", "env.storage.static",
                           "env.storage.router"})
VARIABLE_KIND = "env.variable"
_PUBLIC_NAME = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True, slots=True)
class EnvVariable:
    id: str
    #: the public name; None for a private variable
    name: str | None
    storage: str
    default: str
    readonly: bool

    @property
    def key(self) -> str:
        """The name its storage keeps it under (Wippy: the public name, else the entry id)."""
        return self.name or self.id


@dataclass(frozen=True, slots=True)
class FileStorageSpec:
    path: str
    auto_create: bool
    file_mode: int
    dir_mode: int


def _scalar_text(value: Any, entry: str, field: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise DefinitionError("must be a string", entry=entry, field=field)


def _flag(data: Mapping[str, Any], key: str, entry: str) -> bool:
    value = data.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise DefinitionError("must be true or false", entry=entry, field=key)
    return value


def env_variable_from_entry(entry: Entry) -> EnvVariable:
    """Read an ``env.variable`` entry; DefinitionError names the entry and field at fault."""
    data = entry.data
    name = data.get("variable")
    if name is not None and not isinstance(name, str):
        raise DefinitionError("must be a string", entry=entry.id, field="variable")
    if name and not _PUBLIC_NAME.fullmatch(name):
        raise DefinitionError(f"{name!r}: a variable name has only letters, digits and '_'", entry=entry.id,
                              field="variable")
    storage = data.get("storage")
    if not isinstance(storage, str) or storage.count(":") != 1:
        raise DefinitionError("must name an env storage entry ('ns:name')", entry=entry.id, field="storage")
    default = data.get("default")
    readonly = _flag(data, "readonly", entry.id) or _flag(data, "read_only", entry.id)
    return EnvVariable(id=entry.id, name=name or None, storage=storage,
                       default="" if default is None else _scalar_text(default, entry.id, "default"),
                       readonly=readonly)


def _mode(data: Mapping[str, Any], key: str, default: int, entry: str) -> int:
    raw = data.get(key)
    if raw is None:
        return default
    if isinstance(raw, str) and re.fullmatch(r"0?o?[0-7]{1,4}", raw):
        raw = int(raw.replace("o", "") or "0", 8)
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= 0o7777:
        raise DefinitionError("must be a file mode like 0600", entry=entry, field=key)
    return raw or default


def env_file_spec(entry: Entry) -> FileStorageSpec:
    path = entry.data.get("file_path")
    if not isinstance(path, str) or not path:
        raise DefinitionError("must be the path of a .env file", entry=entry.id, field="file_path")
    return FileStorageSpec(path=path, auto_create=_flag(entry.data, "auto_create", entry.id),
                           file_mode=_mode(entry.data, "file_mode", 0o644, entry.id),
                           dir_mode=_mode(entry.data, "dir_mode", 0o755, entry.id))


def env_static_values(entry: Entry) -> dict[str, str]:
    values = entry.data.get("values") or {}
    if not isinstance(values, dict):
        raise DefinitionError("must be a map of names to values", entry=entry.id, field="values")
    return {str(k): _scalar_text(v, entry.id, f"values.{k}") for k, v in values.items()}


def env_router_storages(entry: Entry) -> list[str]:
    raw = entry.data.get("storages")
    if not isinstance(raw, list) or not raw or not all(isinstance(s, str) and s for s in raw):
        raise DefinitionError("must be a non-empty list of env storage ids", entry=entry.id, field="storages")
    return list(raw)


def env_entry_errors(entry: Entry) -> list[DefinitionError]:
    """Kind check of env entries (registered with core._validate)."""
    readers: dict[str, Callable[[Entry], object]] = {
        VARIABLE_KIND: env_variable_from_entry, "env.storage.file": env_file_spec,
        "env.storage.static": env_static_values, "env.storage.router": env_router_storages,
    }
    reader = readers.get(entry.kind)
    if reader is None:
        return []
    try:
        reader(entry)
    except DefinitionError as exc:
        return [exc]
    return []


# -- placeholders ---------------------------------------------------------------------------------
_TOKEN = re.compile(r"\$\$\{|\$\{([^{}]*)\}")
_SHORTHAND = re.compile(r"([A-Z0-9_]+)\|(.*)", re.DOTALL)
_SHELL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*):-(.*)", re.DOTALL)
_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?[0-9]+[eE][-+]?[0-9]+")


@dataclass(frozen=True, slots=True)
class _Ref:
    text: str  # as written, for messages
    name: str
    default: str | None


def _parse(body: str, text: str) -> _Ref | None:
    if body.startswith("env:"):
        name, sep, default = body[4:].partition("|")
        return _Ref(text, name.strip(), default if sep else None) if name.strip() else None
    m = _SHORTHAND.fullmatch(body) or _SHELL.fullmatch(body)
    return _Ref(text, m.group(1), m.group(2)) if m else None


def _typed_default(raw: str) -> Any:
    """An inline default as YAML would type it: quoted text, true/false, integers, floats, text."""
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return raw


def _coerce(value: str, like: Any, ref: _Ref, entry: str, field: str) -> Any:
    try:
        if isinstance(like, bool):
            low = value.strip().lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise ValueError(value)
        if isinstance(like, int):
            return int(value.strip())
        if isinstance(like, float):
            return float(value.strip())
    except ValueError:
        want = {bool: "true or false", int: "an integer", float: "a number"}[type(like)]
        raise DefinitionError(f"{ref.text} is {value!r}, not {want} like its default", entry=entry,
                              field=field) from None
    return value


class _Resolver:
    def __init__(self, lookup: EnvLookup, entry: str) -> None:
        self.lookup = lookup
        self.entry = entry
        self.ns = entry.split(":", 1)[0] if ":" in entry else ""

    def find(self, name: str) -> str | None:
        value = self.lookup(name)
        if value is None and ":" not in name and self.ns:
            value = self.lookup(f"{self.ns}:{name}")  # a bare id in the entry's own namespace
        return value

    def value(self, ref: _Ref, field: str, *, typed: bool) -> Any:
        found = self.find(ref.name)
        if found:
            if typed and ref.default is not None:
                return _coerce(found, _typed_default(ref.default), ref, self.entry, field)
            return found
        if ref.default is not None:
            return _typed_default(ref.default) if typed else str(_typed_default(ref.default))
        why = "has no value and no default" if found == "" else "names no env variable (and has no default)"
        raise DefinitionError(f"{ref.text} {why}", entry=self.entry, field=field)

    def string(self, text: str, field: str) -> Any:
        if "${" not in text:
            return text
        whole = _TOKEN.fullmatch(text)
        if whole is not None and whole.group(1) is not None:
            ref = _parse(whole.group(1), text)
            if ref is not None:
                return self.value(ref, field, typed=True)
        out: list[str] = []
        last = 0
        for m in _TOKEN.finditer(text):
            out.append(text[last:m.start()])
            last = m.end()
            if m.group(0) == "$${":
                out.append("${")
                continue
            ref = _parse(m.group(1), m.group(0))
            out.append(m.group(0) if ref is None else str(self.value(ref, field, typed=False)))
        out.append(text[last:])
        return "".join(out)

    def node(self, value: Any, field: str) -> Any:
        if isinstance(value, str):
            return self.string(value, field)
        if isinstance(value, list):
            return [self.node(v, f"{field}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            return self.mapping(value, field)
        return value

    def mapping(self, data: Mapping[str, Any], trail: str, opaque: frozenset[str] = frozenset()) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in data.items():
            field = f"{trail}.{key}" if trail else str(key)
            out[key] = value if key in opaque else self.node(value, field)
        for key, value in data.items():  # legacy `<field>_env: <variable>` directives
            if not (isinstance(key, str) and key.endswith("_env") and len(key) > 4 and isinstance(value, str)):
                continue
            found = self.find(value)
            if found is None:
                continue  # not a variable: an ordinary field that happens to end in _env
            del out[key]
            if found:
                out[key[:-4]] = found
        return out


def resolve_entry_data(data: Mapping[str, Any], lookup: EnvLookup, *, entry_id: str,
                       opaque: frozenset[str] = frozenset({"source"})) -> dict[str, Any]:
    """``data`` with its env placeholders and ``_env`` directives resolved (a new dict; ``data`` is
    not changed). Top-level ``opaque`` fields (code, templates) are kept as written. A placeholder
    that resolves to nothing raises DefinitionError naming the entry and the field."""
    return _Resolver(lookup, entry_id).mapping(data, "", opaque)


def resolve_entry(entry: Entry, lookup: EnvLookup) -> Entry:
    """The entry as a kind handler should use it: data resolved, meta as stored."""
    data = resolve_entry_data(entry.data, lookup, entry_id=entry.id)
    return entry if data == entry.data else Entry(entry.id, entry.kind, entry.meta, data)


register_kind_check(sorted(STORAGE_KINDS | {VARIABLE_KIND}), env_entry_errors)
