"""`wippy events tail`: events (and other streams) from a position, filtered, as text or JSON."""

from __future__ import annotations

import datetime
import json

from wippy.core import EVENT_RECORD, JetStreamEventStore, Record, Subjects, event_body

from .conftest import Wippy, Write


async def _send(nats_url: str, namespace: str, events: list[tuple[str, str, str, object]]) -> None:
    subjects = Subjects(namespace)
    store = await JetStreamEventStore.connect(nats_url, subjects)
    try:
        await store.provision()
        for system, kind, path, data in events:
            record = Record(type=EVENT_RECORD, body=event_body(system, kind, path, data), node="n1")
            await store.append(subjects.events("n1"), record)
    finally:
        await store.aclose()


async def test_tail_from_the_start_filters_and_stops_after_count(wippy: Wippy, nats_url: str,
                                                                  namespace: str) -> None:
    await _send(nats_url, namespace, [("users", "user.created", "/u/1", {"n": 1}), ("orders", "placed", "/o/1", 2),
                                      ("users", "user.deleted", "/u/1", None), ("users", "user.created", "/u/2", 3)])
    r = wippy("events", "tail", "users", "user.*", "--from", "start", "--count", "3", "--json")
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [(x["seq"], x["system"], x["kind"], x["path"], x["data"]) for x in lines] == [
        (1, "users", "user.created", "/u/1", {"n": 1}), (3, "users", "user.deleted", "/u/1", None),
        (4, "users", "user.created", "/u/2", 3)]
    assert datetime.datetime.fromisoformat(lines[0]["at"]).tzinfo is not None
    r = wippy("events", "tail", "(orders|users)", "--from", "2", "--count", "1")
    seq, _at, system, kind, path, data = r.stdout.strip().split("\t")
    assert (seq, system, kind, path, data) == ("2", "orders", "placed", "/o/1", "2")
    earlier = "2000-01-01T00:00:00+00:00"
    r = wippy("events", "tail", "**", "--from", earlier, "--count", "4", "--json")
    assert [json.loads(x)["seq"] for x in r.stdout.splitlines()] == [1, 2, 3, 4]


async def test_other_streams_and_bad_input(wippy: Wippy) -> None:
    wippy("registry", "apply")
    r = wippy("events", "tail", "--stream", "registry", "--from", "start", "--count", "1", "--json")
    record = json.loads(r.stdout)
    assert record["seq"] == 1 and record["type"].startswith("registry.")
    for args, message in [(["**", "--from", "99"], "ends at"),
                          (["a..b"], "empty segment"),
                          (["**", "--from", "yesterday"], "ISO time"),
                          (["--stream", "nope"], "--stream"),
                          ([], "system pattern"),
                          (["**", "--from", "2999-01-01T00:00:00Z"], "that recent")]:
        r = wippy("events", "tail", *args, check=False)
        assert r.returncode != 0 and message in r.stderr, (args, r.stderr)



async def test_replay_writes_the_projections_as_of_a_version(wippy: Wippy, write: Write, nats_url: str,
                                                             namespace: str) -> None:
    import duckdb

    wippy("registry", "apply")  # version 1: the example app
    await _send(nats_url, namespace, [("users", "user.created", "/u/1", 1)])
    write("src/extra.yaml", "namespace: extra\nentries:\n  - name: thing\n    kind: registry.entry\n")
    wippy("registry", "apply")  # version 2 adds extra:thing
    await _send(nats_url, namespace, [("users", "user.created", "/u/2", 2)])
    r = wippy("replay", "--to", "1", "--json")
    result = json.loads(r.stdout)
    assert result["version"] == 1 and result["records"]["events"] == 0  # the first event came after v1
    con = duckdb.connect(result["path"], read_only=True)
    try:
        ids = {row[0] for row in con.execute("SELECT id FROM registry_entries").fetchall()}
        assert "extra:thing" not in ids and ids
        assert con.execute("SELECT count(*) FROM events").fetchone() == (0,)
    finally:
        con.close()
    r = wippy("replay", "--to", "2", "--json")
    con = duckdb.connect(json.loads(r.stdout)["path"], read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM registry_entries WHERE id = 'extra:thing'").fetchone() == (1,)
        assert con.execute("SELECT count(*) FROM events").fetchone() == (1,)  # the second came after v2
    finally:
        con.close()
    r = wippy("replay", "--to", "9", check=False)
    assert r.returncode != 0 and "does not exist" in r.stderr


async def test_replay_rebuild_swaps_in_fresh_projections(wippy: Wippy, nats_url: str, namespace: str) -> None:
    wippy("registry", "apply")
    await _send(nats_url, namespace, [("users", "user.created", "/u/1", 1), ("users", "user.created", "/u/2", 2)])
    result = wippy.json("replay", "--rebuild")
    assert result["rebuilt"]["events"] == 2 and result["records"]["events"] == 2
    rows = wippy.json("query", "SELECT count(*) AS n FROM events")
    assert rows == [{"n": 2}]
    r = wippy("replay", check=False)
    assert r.returncode != 0 and "--rebuild" in r.stderr
