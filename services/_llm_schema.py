"""JSON-schema normalisation for vendors' strict structured-output modes.

OpenAI's strict mode accepts a schema only if every object lists all its properties in
``required`` and sets ``additionalProperties: false``; a property that was optional must instead
accept ``null``. :func:`strict_schema` rewrites an app's ordinary schema that way (recursively,
``$defs`` included, ``oneOf`` turned into the supported ``anyOf``), and :func:`drop_added_nulls`
removes the ``null`` values the model then returns for optional properties, so the app sees the
shape its own schema describes.
"""

from __future__ import annotations

import copy
from typing import Any

_NESTED_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_NESTED_LISTS = ("anyOf", "allOf", "prefixItems")


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` that OpenAI strict mode accepts (the input is left untouched)."""
    return _strict(copy.deepcopy(schema))


def _strict(node: dict[str, Any]) -> dict[str, Any]:
    if "oneOf" in node and "anyOf" not in node:
        node["anyOf"] = node.pop("oneOf")
    for key in _NESTED_MAPS:
        children = node.get(key)
        if isinstance(children, dict):
            node[key] = {k: _strict(v) if isinstance(v, dict) else v for k, v in children.items()}
    for key in _NESTED_LISTS:
        children = node.get(key)
        if isinstance(children, list):
            node[key] = [_strict(v) if isinstance(v, dict) else v for v in children]
    if isinstance(node.get("items"), dict):
        node["items"] = _strict(node["items"])
    properties = node.get("properties")
    if _is_object(node) or isinstance(properties, dict):
        props: dict[str, Any] = properties if isinstance(properties, dict) else {}
        node["properties"] = props
        required = set(node.get("required") or ())
        for name, prop in props.items():
            if name not in required and isinstance(prop, dict):
                props[name] = _nullable(prop)
        node["required"] = list(props)
        node["additionalProperties"] = False
    return node


def _is_object(node: dict[str, Any]) -> bool:
    kind = node.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind)


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    """``node`` widened to also accept ``null`` (a new dict: the same schema may also sit where it is required)."""
    node = dict(node)
    kind = node.get("type")
    if isinstance(kind, str):
        if kind != "null":
            node["type"] = [kind, "null"]
    elif isinstance(kind, list):
        if "null" not in kind:
            node["type"] = [*kind, "null"]
    elif isinstance(node.get("anyOf"), list):
        if not any(isinstance(v, dict) and v.get("type") == "null" for v in node["anyOf"]):
            node["anyOf"] = [*node["anyOf"], {"type": "null"}]
        return node
    else:
        return {"anyOf": [node, {"type": "null"}]}
    if isinstance(node.get("enum"), list) and None not in node["enum"]:
        node["enum"] = [*node["enum"], None]
    return node


def drop_added_nulls(value: Any, schema: dict[str, Any]) -> Any:
    """``value`` with ``null`` removed from properties that ``schema`` (the app's original) left optional."""
    if isinstance(value, dict):
        props = schema.get("properties")
        if not isinstance(props, dict):
            return value
        required = set(schema.get("required") or ())
        out: dict[str, Any] = {}
        for key, item in value.items():
            if item is None and key not in required:
                continue
            sub = props.get(key)
            out[key] = drop_added_nulls(item, sub) if isinstance(sub, dict) else item
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [drop_added_nulls(v, schema["items"]) for v in value]
    return value
