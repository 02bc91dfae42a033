"""The three-way merge of app files into a registry changed at run time."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wippy.core import Entry, FileEntry, apply_ops, plan_files_apply


def e(eid: str, v: int) -> Entry:
    return Entry(eid, "registry.entry", {}, {"v": v})


def files(*entries: Entry) -> list[FileEntry]:
    return [FileEntry(x, "src/_index.yaml:1") for x in entries]


def merged(registry: dict[str, Entry], fs: list[FileEntry], base: dict[str, str], reset: bool = False
           ) -> tuple[dict[str, Entry], dict[str, str], tuple[str, ...]]:
    plan = plan_files_apply(registry, fs, base, reset=reset)
    state = dict(registry)
    apply_ops(state, plan.ops)
    new_base = dict(base)
    for k, v in plan.base_delta.items():
        if v is None:
            new_base.pop(k, None)
        else:
            new_base[k] = v
    return state, new_base, plan.warnings


def test_first_apply_takes_the_files() -> None:
    state, base, warnings = merged({}, files(e("a:x", 1), e("a:y", 1)), {})
    assert state == {"a:x": e("a:x", 1), "a:y": e("a:y", 1)}
    assert base == {"a:x": e("a:x", 1).digest(), "a:y": e("a:y", 1).digest()}
    assert warnings == ()


def test_unchanged_files_change_nothing_and_keep_run_time_edits() -> None:
    fs = files(e("a:x", 1))
    state, base, _ = merged({}, fs, {})
    state["a:x"] = e("a:x", 99)  # edited at run time (say, by an agent)
    state["a:new"] = e("a:new", 5)  # created at run time
    plan = plan_files_apply(state, fs, base)
    assert not plan.changed


def test_file_change_on_an_untouched_entry_is_taken() -> None:
    state, base, _ = merged({}, files(e("a:x", 1), e("a:y", 1)), {})
    state["a:y"] = e("a:y", 50)
    state2, _, warnings = merged(state, files(e("a:x", 2), e("a:y", 1)), base)
    assert state2 == {"a:x": e("a:x", 2), "a:y": e("a:y", 50)}
    assert warnings == ()


def test_both_changed_files_win_with_a_warning() -> None:
    state, base, _ = merged({}, files(e("a:x", 1)), {})
    state["a:x"] = e("a:x", 50)
    state2, _, warnings = merged(state, files(e("a:x", 2)), base)
    assert state2 == {"a:x": e("a:x", 2)}
    assert len(warnings) == 1
    assert "a:x" in warnings[0]


def test_removed_from_files_is_deleted_but_run_time_entries_stay() -> None:
    state, base, _ = merged({}, files(e("a:x", 1), e("a:y", 1)), {})
    state["a:rt"] = e("a:rt", 1)
    state2, base2, _ = merged(state, files(e("a:x", 1)), base)
    assert set(state2) == {"a:x", "a:rt"}
    assert set(base2) == {"a:x"}


def test_reset_makes_the_registry_equal_to_the_files() -> None:
    state, base, _ = merged({}, files(e("a:x", 1)), {})
    state["a:rt"] = e("a:rt", 1)
    state["a:x"] = e("a:x", 7)
    state2, _, _ = merged(state, files(e("a:x", 1)), base, reset=True)
    assert state2 == {"a:x": e("a:x", 1)}


ids = st.sampled_from([f"a:e{i}" for i in range(5)])
versions = st.dictionaries(ids, st.integers(0, 3))


@given(versions, versions, versions)
def test_merge_properties(files_then: dict[str, int], edits: dict[str, int], files_now: dict[str, int]) -> None:
    fs_then = files(*(e(k, v) for k, v in files_then.items()))
    state, base, _ = merged({}, fs_then, {})
    for k, v in edits.items():  # run-time edits
        state[k] = e(k, v + 10)
    fs_now = files(*(e(k, v) for k, v in files_now.items()))
    result, new_base, _ = merged(state, fs_now, base)
    for k in set(files_now) | set(files_then) | set(state):
        file_changed = files_then.get(k) != files_now.get(k)
        if not file_changed:
            assert result.get(k) == state.get(k)  # run-time state survives
        elif k in files_now:
            assert result[k] == e(k, files_now[k])  # files win where they changed
        else:
            assert k not in result
    assert set(new_base) == set(files_now)
    # applying the same files again changes nothing
    assert not plan_files_apply(result, fs_now, new_base).changed
    # reset always gives exactly the files
    reset, _, _ = merged(state, fs_now, base, reset=True)
    assert reset == {k: e(k, v) for k, v in files_now.items()}
