"""Contracts: `contract.definition` (an interface of named methods) and `contract.binding` (which
function.lua entries implement each method of one or more contracts).

The shapes are checked when an entry is applied; the runtime reads them with ``definition_of``
and ``binding_of``, which assume a checked entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._entry import Entry
from ._errors import DefinitionError
from ._validate import register_kind_check

DEFINITION_KIND = "contract.definition"
BINDING_KIND = "contract.binding"


@dataclass(frozen=True, slots=True)
class BoundContract:
    contract: str
    #: method name -> function.lua entry id
    methods: dict[str, str]
    context_required: tuple[str, ...]
    default: bool


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and value.count(":") == 1 and all(value.split(":"))


def _schema_errors(entry: Entry, where: str, schemas: Any) -> list[DefinitionError]:
    if schemas is None:
        return []
    if not isinstance(schemas, list):
        return [DefinitionError("must be a list of {format, definition}", entry=entry.id, field=where)]
    out = []
    for i, schema in enumerate(schemas):
        if not isinstance(schema, dict) or "definition" not in schema:
            out.append(DefinitionError("must be a map with a `definition` (and a `format`)", entry=entry.id,
                                       field=f"{where}[{i}]"))
        elif "format" in schema and not isinstance(schema["format"], str):
            out.append(DefinitionError("must be a string", entry=entry.id, field=f"{where}[{i}].format"))
    return out


def definition_errors(entry: Entry) -> list[DefinitionError]:
    """Problems with a contract.definition: `methods` is a list of uniquely named methods."""
    methods = entry.data.get("methods")
    if not isinstance(methods, list):
        return [DefinitionError("must be a list of methods ({name, description, input_schemas, output_schemas})",
                                entry=entry.id, field="methods")]
    out: list[DefinitionError] = []
    seen: set[str] = set()
    for i, method in enumerate(methods):
        where = f"methods[{i}]"
        if not isinstance(method, dict):
            out.append(DefinitionError("must be a map with a `name`", entry=entry.id, field=where))
            continue
        name = method.get("name")
        if not isinstance(name, str) or not name.isidentifier():
            out.append(DefinitionError("must be a method name (letters, digits, underscores)", entry=entry.id,
                                       field=f"{where}.name"))
        elif name in seen:
            out.append(DefinitionError(f"method {name} is defined twice", entry=entry.id, field=f"{where}.name"))
        else:
            seen.add(name)
        if "description" in method and not isinstance(method["description"], str):
            out.append(DefinitionError("must be a string", entry=entry.id, field=f"{where}.description"))
        for key in ("input_schemas", "output_schemas"):
            out.extend(_schema_errors(entry, f"{where}.{key}", method.get(key)))
    return out


def binding_errors(entry: Entry) -> list[DefinitionError]:
    """Problems with a contract.binding: each item names a contract and maps methods to functions."""
    contracts = entry.data.get("contracts")
    if not isinstance(contracts, list) or not contracts:
        return [DefinitionError("must be a non-empty list of {contract, methods, default, context_required}",
                                entry=entry.id, field="contracts")]
    out: list[DefinitionError] = []
    for i, item in enumerate(contracts):
        where = f"contracts[{i}]"
        if not isinstance(item, dict):
            out.append(DefinitionError("must be a map with `contract` and `methods`", entry=entry.id, field=where))
            continue
        if not _is_id(item.get("contract")):
            out.append(DefinitionError("must name a contract.definition ('ns:name')", entry=entry.id,
                                       field=f"{where}.contract"))
        methods = item.get("methods")
        if not isinstance(methods, dict) or not methods:
            out.append(DefinitionError("must map method names to function ids", entry=entry.id,
                                       field=f"{where}.methods"))
        else:
            for name, fn in methods.items():
                if not _is_id(fn):
                    out.append(DefinitionError("must be a function id ('ns:name')", entry=entry.id,
                                               field=f"{where}.methods.{name}"))
        if "default" in item and not isinstance(item["default"], bool):
            out.append(DefinitionError("must be true or false", entry=entry.id, field=f"{where}.default"))
        required = item.get("context_required")
        if required is not None and (not isinstance(required, list)
                                     or not all(isinstance(k, str) and k for k in required)):
            out.append(DefinitionError("must be a list of context keys", entry=entry.id,
                                       field=f"{where}.context_required"))
    return out


def bound_contracts(entry: Entry) -> tuple[BoundContract, ...]:
    """The contracts a (checked) binding implements, in the order it lists them."""
    return tuple(
        BoundContract(
            contract=str(item.get("contract")),
            methods={str(k): str(v) for k, v in (item.get("methods") or {}).items()},
            context_required=tuple(str(k) for k in item.get("context_required") or ()),
            default=item.get("default") is True,
        )
        for item in entry.data.get("contracts") or ()
    )


register_kind_check([DEFINITION_KIND], definition_errors)
register_kind_check([BINDING_KIND], binding_errors)
