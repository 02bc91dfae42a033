"""The events projection: rows from records, the same whatever the batching, restarts, or replay."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wippy.core import EVENT_RECORD, Record, RecordError, event_body
from wippy.projections import EVENTS, ProjectionDB
from wippy.projections._events import EventsBatch, write_events

_names = st.text(alphabet="abcxyz.", min_size=1, max_size=8).filter(lambda s: "" not in s.split("."))
_ints = st.integers(-(2**63), 2**63 - 1)  # what Lua and orjson hold
_events = st.lists(st.tuples(_names, _names, st.text(max_size=6),
                             st.none() | _ints | st.dictionaries(st.text(max_size=3), _ints, max_size=2)),
                   max_size=30)


def _encoded(events: list[tuple[str, str, str, object]]) -> list[tuple[int, bytes]]:
    return [(i + 1, Record(type=EVENT_RECORD, body=event_body(s, k, p, d), node="n1", at=1_000_000 * (i + 1)).encode())
            for i, (s, k, p, d) in enumerate(events)]


def _rows(db: ProjectionDB) -> list[tuple[object, ...]]:
    return [tuple(r.values()) for r in db.query("SELECT seq, node, system, kind, path, data::VARCHAR AS data "
                                                "FROM events ORDER BY seq").records()]


@settings(max_examples=40, deadline=None)
@given(_events, st.lists(st.integers(1, 30), max_size=5))
def test_any_batching_gives_the_rows_of_one_batch(events: list[tuple[str, str, str, object]],
                                                   cuts: list[int]) -> None:
    records = _encoded(events)
    whole = ProjectionDB(None)
    batch = EventsBatch()
    for seq, data in records:
        batch.add_raw(seq, data)
    write_events(whole, batch, len(records))
    split = ProjectionDB(None)
    bounds = sorted({c for c in cuts if c < len(records)} | {len(records)})
    start = 0
    for end in bounds:
        part = EventsBatch()
        for seq, data in records[start:end]:
            part.add_raw(seq, data)
        write_events(split, part, end)
        start = end
    assert _rows(whole) == _rows(split)
    assert whole.checkpoint(EVENTS)[0] == split.checkpoint(EVENTS)[0] == len(records)
    assert [orjson.loads(r[5]) for r in _rows(whole)] == [d for _s, _k, _p, d in events]


def test_malformed_records_are_refused_whole() -> None:
    batch = EventsBatch()
    with pytest.raises(RecordError):
        batch.add_raw(1, b"{not json")
    with pytest.raises(RecordError):
        batch.add_raw(2, Record(type=EVENT_RECORD, body={"system": 1, "kind": "k", "path": "/"}).encode())
    batch.add_raw(3, Record(type="something.else", body={}).encode())  # not an event: no row
    assert len(batch) == 0
