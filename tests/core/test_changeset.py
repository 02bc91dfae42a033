"""Changesets: Wippy's squash rules, diffs and application."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wippy.core import ChangesetBuilder, DefinitionError, Entry, Op, apply_ops, diff_states, squash

IDS = [f"app:e{i}" for i in range(6)]


def entry(eid: str, v: int) -> Entry:
    return Entry(eid, "registry.entry", {"v": v}, {"x": v})


def test_create_then_update_is_a_create_with_the_new_content() -> None:
    ops = squash([Op("create", "app:a", entry("app:a", 1)), Op("update", "app:a", entry("app:a", 2))])
    assert ops == (Op("create", "app:a", entry("app:a", 2)),)


def test_create_then_delete_is_nothing() -> None:
    assert squash([Op("create", "app:a", entry("app:a", 1)), Op("delete", "app:a")]) == ()


def test_update_then_delete_is_a_delete() -> None:
    assert squash([Op("update", "app:a", entry("app:a", 1)), Op("delete", "app:a")]) == (Op("delete", "app:a"),)


def test_delete_then_create_is_an_update() -> None:
    ops = squash([Op("delete", "app:a"), Op("create", "app:a", entry("app:a", 3))])
    assert ops == (Op("update", "app:a", entry("app:a", 3)),)


@pytest.mark.parametrize(
    ("first", "second"),
    [("create", "create"), ("delete", "delete"), ("delete", "update")],
)
def test_impossible_sequences_are_errors(first: str, second: str) -> None:
    b = ChangesetBuilder()
    b.add(Op(first, "app:a", None if first == "delete" else entry("app:a", 1)))  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="app:a"):
        b.add(Op(second, "app:a", None if second == "delete" else entry("app:a", 2)))  # type: ignore[arg-type]


@st.composite
def valid_sequences(draw: st.DrawFn) -> tuple[dict[str, Entry], list[Op]]:
    initial = {eid: entry(eid, 0) for eid in draw(st.sets(st.sampled_from(IDS)))}
    state = dict(initial)
    ops: list[Op] = []
    for n in range(draw(st.integers(0, 25))):
        eid = draw(st.sampled_from(IDS))
        if eid in state:
            if draw(st.booleans()):
                ops.append(Op("update", eid, entry(eid, n + 1)))
                state[eid] = entry(eid, n + 1)
            else:
                ops.append(Op("delete", eid))
                del state[eid]
        else:
            ops.append(Op("create", eid, entry(eid, n + 1)))
            state[eid] = entry(eid, n + 1)
    return initial, ops


@given(valid_sequences())
def test_squashed_changeset_has_the_same_effect(case: tuple[dict[str, Entry], list[Op]]) -> None:
    initial, ops = case
    one_by_one = dict(initial)
    apply_ops(one_by_one, ops)
    squashed = dict(initial)
    sq = squash(ops)
    apply_ops(squashed, sq)
    assert squashed == one_by_one
    assert len({op.id for op in sq}) == len(sq)
    assert squash(sq) == sq


@given(valid_sequences(), valid_sequences())
def test_diff_turns_one_state_into_another(a: tuple[dict[str, Entry], list[Op]],
                                           b: tuple[dict[str, Entry], list[Op]]) -> None:
    before = dict(a[0])
    apply_ops(before, a[1])
    after = dict(b[0])
    apply_ops(after, b[1])
    state = dict(before)
    apply_ops(state, diff_states(before, after))
    assert state == after
    assert diff_states(after, after) == ()


def test_apply_reports_before_and_after() -> None:
    state = {"app:a": entry("app:a", 1)}
    applied = apply_ops(state, [Op("update", "app:a", entry("app:a", 2)), Op("delete", "app:a")])
    assert [(a.op, a.before, a.after) for a in applied] == [
        ("update", entry("app:a", 1), entry("app:a", 2)),
        ("delete", entry("app:a", 2), None),
    ]
