"""YAML as Wippy reads it, fast.

Wippy (Go) reads definition files with YAML 1.2's core schema plus two YAML 1.1 habits that Go's
YAML decoder keeps: integers with a leading zero are octal (``file_mode: 0600`` is 384) and merge
keys (``<<: *base``) merge. Only ``true``/``false`` are booleans (``yes``/``on`` stay strings),
timestamps stay strings, ``1e3`` is a float.

Files are parsed by yaml-rs (Rust; ~20x faster than PyYAML's constructor, which alone would take
~2.7 s for a 10,000-entry app). yaml-rs has no legacy octals or merge keys, so a file that uses
either (rare) is read by PyYAML instead, with a resolver configured to the same rules; both paths
give identical values (property-tested).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

import yaml
import yaml_rs
from yaml.constructor import SafeConstructor
from yaml.cyaml import CParser, CSafeLoader  # type: ignore[attr-defined]  # CParser: not in the stubs
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver

#: A plain scalar that YAML 1.2 reads as decimal but Go reads as octal, or a merge key.
_LEGACY = re.compile(r"(?:[:\-\[,{]\s*|^\s*)[-+]?0[0-7_]+\s*(?:$|[,\]}#])|<<\s*:")
_ZERO_DIGIT = re.compile(r"0[0-7_]")


def _needs_pyyaml(text: str) -> bool:
    """Whether a file uses a legacy octal or a merge key (checked only on lines that could)."""
    if "<<" in text and _LEGACY.search(text):
        return True
    checked = -1
    for m in _ZERO_DIGIT.finditer(text):
        start = text.rfind("\n", 0, m.start()) + 1
        if start == checked:
            continue
        checked = start
        end = text.find("\n", m.start())
        if _LEGACY.search(text[start : end if end >= 0 else len(text)]):
            return True
    return False


_SEPARATOR = re.compile(r"(?m)^---")


@dataclass(frozen=True, slots=True)
class YamlError(Exception):
    """Invalid YAML: ``line`` is 1-based when known."""

    line: int | None
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line else self.reason


class _GoResolver(BaseResolver):
    pass


_GoResolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_GoResolver.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^[-+]?(?:0x[0-9a-fA-F_]*[0-9a-fA-F][0-9a-fA-F_]*|0o[0-7_]*[0-7][0-7_]*|0b[01_]*[01][01_]*"
               r"|[0-9_]*[0-9][0-9_]*)$"),
    list("-+0123456789"),
)
_GoResolver.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)
_GoResolver.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
_GoResolver.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^<<$"), ["<"])


class _GoConstructor(SafeConstructor):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _value in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate mapping key '{key_node.value}'", key_node.start_mark
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node)).replace("_", "")
        sign = -1 if text.startswith("-") else 1
        text = text.lstrip("+-")
        if text.startswith("0x"):
            return sign * int(text[2:], 16)
        if text.startswith("0o"):
            return sign * int(text[2:], 8)
        if text.startswith("0b"):
            return sign * int(text[2:], 2)
        if len(text) > 1 and text.startswith("0"):
            return sign * int(text, 8)  # Go keeps YAML 1.1's leading-zero octal
        return sign * int(text)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        text = str(self.construct_scalar(node)).lower()
        if text.endswith("inf"):
            return float("-inf") if text.startswith("-") else float("inf")
        if text.endswith("nan"):
            return float("nan")
        return float(text)


_GoConstructor.add_constructor("tag:yaml.org,2002:int", _GoConstructor.construct_yaml_int)  # type: ignore[type-var]
_GoConstructor.add_constructor(  # type: ignore[type-var]
    "tag:yaml.org,2002:float", _GoConstructor.construct_yaml_float
)
# Timestamps are not resolved implicitly (no resolver above), so they stay strings.


def _binary_as_text(loader: SafeConstructor, node: yaml.ScalarNode) -> str:
    return "".join(str(loader.construct_scalar(node)).split())  # base64 text, as yaml-rs gives it


def _untagged(loader: SafeConstructor, _suffix: str, node: yaml.Node) -> Any:
    """Unknown local tags (``!custom x``) are ignored, as yaml-rs ignores them."""
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    assert isinstance(node, yaml.ScalarNode)
    return loader.construct_scalar(node)


_GoConstructor.add_constructor("tag:yaml.org,2002:binary", _binary_as_text)  # type: ignore[type-var]
_GoConstructor.add_multi_constructor("!", _untagged)

class _GoLoader(CParser, _GoConstructor, _GoResolver):
    """libyaml's parser with the rules above (PyYAML's wheels ship libyaml)."""

    def __init__(self, stream: str) -> None:
        CParser.__init__(self, stream)
        _GoConstructor.__init__(self)
        _GoResolver.__init__(self)


def loads(text: str) -> Any:
    """Parse one YAML document with Wippy's rules; raises YamlError."""
    if _needs_pyyaml(text):
        return _pyyaml(text)
    try:
        value = yaml_rs.loads(text, parse_datetime=False)
    except yaml_rs.YAMLDecodeError as exc:
        return _rs_error(exc, text)
    if isinstance(value, list) and _SEPARATOR.search(text):
        raise YamlError(None, "several YAML documents in one file; a definition file holds one")
    return value


def _rs_error(exc: Exception, text: str) -> Any:
    message = str(exc)
    m = re.search(r"line (\d+)", message)
    line = int(m.group(1)) if m else None
    reason = message.strip().splitlines()[-1] if message.strip() else "invalid YAML"
    if "duplicate mapping key" in message:
        # yaml-rs names the key but not the line; PyYAML tells where (and accepts duplicates: use our message)
        key = message.split(":", 1)[-1].strip()
        line = _line_of_key(text, key.strip("'\""))
        reason = f"duplicate mapping key {key}"
    raise YamlError(line, reason)


def _line_of_key(text: str, key: str) -> int | None:
    seen = 0
    pattern = re.compile(rf"^\s*(?:-\s+)?['\"]?{re.escape(key)}['\"]?\s*:")
    for n, line in enumerate(text.splitlines(), 1):
        if pattern.match(line):
            seen += 1
            if seen == 2:
                return n
    return None


def _pyyaml(text: str) -> Any:
    loader = _GoLoader(text)
    try:
        if loader.check_node():
            node = loader.get_node()
            if loader.check_node():
                raise YamlError(None, "several YAML documents in one file; a definition file holds one")
            return loader.construct_document(node)
        return None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlError(mark.line + 1 if mark else None, exc.problem or str(exc)) from exc
    except yaml.YAMLError as exc:
        raise YamlError(None, str(exc)) from exc
    finally:
        loader.dispose()


_ENTRIES_KEY = re.compile(r"(?m)^entries[ \t]*:[ \t]*(?:#.*)?$")
_TOP_LEVEL_KEY = re.compile(r"(?m)^(?=[^\s#-])")
_ITEM = re.compile(r"(?m)^([ \t]*)-(?=[ \t]|$)")


def entry_lines(text: str) -> list[int]:
    """1-based lines where the items of the top-level ``entries:`` block sequence start.

    Used only to say where an entry is defined; a flow-style list gives no lines.
    """
    key = _ENTRIES_KEY.search(text)
    if key is None:
        return []
    stop = _TOP_LEVEL_KEY.search(text, key.end() + 1)
    end = stop.start() if stop else len(text)
    line = text.count("\n", 0, key.end()) + 1
    pos = key.end()
    indent: str | None = None
    out: list[int] = []
    for item in _ITEM.finditer(text, key.end(), end):
        line += text.count("\n", pos, item.start())
        pos = item.start()
        if indent is None:
            indent = item.group(1)
        if item.group(1) == indent:
            out.append(line)
    return out


class Locator:
    """Finds lines for error messages by composing the file again with pyyaml (only on errors)."""

    def __init__(self, text: str) -> None:
        self._node: Node | None = None
        with contextlib.suppress(yaml.YAMLError):  # then no lines: the message names the file only
            self._node = yaml.compose(text, Loader=CSafeLoader)

    def line(self, index: int | None, field: str | None = None) -> int | None:
        node = self._node
        if index is not None:
            node = self._child(node, "entries")
            if not isinstance(node, SequenceNode) or index >= len(node.value):
                return None
            node = node.value[index]
        if node is None:
            return None
        if field is not None and isinstance(node, MappingNode):
            for key, _ in node.value:
                if isinstance(key, ScalarNode) and key.value == field:
                    return key.start_mark.line + 1
        return node.start_mark.line + 1

    @staticmethod
    def _child(node: Node | None, name: str) -> Node | None:
        found = None
        if isinstance(node, MappingNode):
            for key, child in node.value:
                if isinstance(key, ScalarNode) and key.value == name:
                    found = child
        return found
