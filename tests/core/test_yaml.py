"""Wippy's YAML rules, and the two parsing paths (yaml-rs, PyYAML) agreeing on them."""

from __future__ import annotations

import math
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from wippy.core import _yaml


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("a: true\nb: False\nc: yes\nd: on\ne: off\n", {"a": True, "b": False, "c": "yes", "d": "on", "e": "off"}),
        ("a: 0600\nb: 0o600\nc: 0x1F\nd: 0b11\ne: 1_000\nf: 0\n", {"a": 384, "b": 384, "c": 31, "d": 3, "e": 1000,
                                                                      "f": 0}),
        ("a: 1e3\nb: .5\nc: -1.5\nd: 1:30\ne: 1.0.0\n", {"a": 1000.0, "b": 0.5, "c": -1.5, "d": "1:30", "e": "1.0.0"}),
        ("a: 2024-01-02\nb: 2024-01-02T03:04:05Z\n", {"a": "2024-01-02", "b": "2024-01-02T03:04:05Z"}),
        ("a: ~\nb: null\nc:\nd: ''\n", {"a": None, "b": None, "c": None, "d": ""}),
        ("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\n", {"base": {"x": 1, "y": 2}, "d": {"x": 1, "y": 3}}),
        ("a: |\n  one\n  two\nb: >\n  x\n  y\n", {"a": "one\ntwo\n", "b": "x y\n"}),
        ("a: '0600'\nb: \"yes\"\n", {"a": "0600", "b": "yes"}),
    ],
)
def test_wippy_yaml_rules(text: str, value: Any) -> None:
    assert _yaml.loads(text) == value
    assert _yaml._pyyaml(text) == value


def test_errors_carry_the_line() -> None:
    for text, lines in (("a: 1\nb: [x\n", {2}), ("a: 1\nb: 2\na: 3\n", {3}), ("a: 0600\nb: {x\n", {2, 3})):
        with pytest.raises(_yaml.YamlError) as info:
            _yaml.loads(text)
        assert info.value.line in lines


def test_several_documents_are_refused() -> None:
    with pytest.raises(_yaml.YamlError, match="several YAML documents"):
        _yaml.loads("---\na: 1\n---\nb: 2\n")


def test_entry_lines() -> None:
    text = "namespace: a\nentries:\n  # c\n  - name: x\n    list:\n      - a\n  -\n    name: y\n  - {name: z}\nk: 1\n"
    assert _yaml.entry_lines(text) == [4, 7, 9]


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
    st.sampled_from(["yes", "no", "on", "off", "0600", "007", "1:30", "2024-01-02", "1e3", "~", "<<", "0x1F"]),
)
docs = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text("abcxyz_.-", min_size=1, max_size=6), inner, max_size=4)),
    max_leaves=20,
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


@given(st.dictionaries(st.text("abcdefgh", min_size=1, max_size=5), docs, max_size=5),
       st.booleans())
def test_both_paths_read_dumped_data_identically(doc: dict[str, Any], flow: bool) -> None:
    text = yaml.safe_dump(doc, default_flow_style=flow, allow_unicode=True)
    fast = _yaml.loads(text)
    slow = _yaml._pyyaml(text)
    assert _same(fast, slow)
