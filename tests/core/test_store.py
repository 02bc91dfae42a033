"""Contract tests of the JetStream event store against a real nats-server."""

from __future__ import annotations

import asyncio

import pytest

from wippy.core import ConflictError, JetStreamEventStore, PayloadTooLargeError, Record


def rec(n: int) -> Record:
    return Record(type="test.thing", body={"n": n}, node="n1", actor="user:t")


async def test_append_returns_increasing_sequences(store: JetStreamEventStore) -> None:
    subject = store.subjects.registry_commit
    seqs = [await store.append(subject, rec(i)) for i in range(3)]
    assert seqs == [1, 2, 3]
    assert await store.last_seq(store.subjects.registry_stream) == 3


async def test_expected_last_sequence_rejects_a_stale_writer(store: JetStreamEventStore) -> None:
    subject = store.subjects.registry_commit
    assert await store.append(subject, rec(1), expected_last_seq=0) == 1
    with pytest.raises(ConflictError) as info:
        await store.append(subject, rec(2), expected_last_seq=0)
    assert info.value.actual == 1
    assert await store.last_seq(store.subjects.registry_stream) == 1


async def test_msg_id_makes_a_retry_idempotent(store: JetStreamEventStore) -> None:
    subject = store.subjects.registry_commit
    first = await store.append(subject, rec(1), expected_last_seq=0, msg_id="abc")
    again = await store.append(subject, rec(1), expected_last_seq=0, msg_id="abc")
    assert first == again == 1
    assert await store.last_seq(store.subjects.registry_stream) == 1


async def test_read_range_and_envelope(store: JetStreamEventStore) -> None:
    subject = store.subjects.registry_commit
    for i in range(5):
        await store.append(subject, rec(i))
    got = await store.read(store.subjects.registry_stream, 2, 4)
    assert [seq for seq, _ in got] == [2, 3, 4]
    assert [r.body["n"] for _, r in got] == [1, 2, 3]
    r = got[0][1]
    assert (r.type, r.node, r.actor, r.schema) == ("test.thing", "n1", "user:t", 1)
    assert await store.read(store.subjects.registry_stream, 6) == []


async def test_subscribe_from_a_position_then_live(store: JetStreamEventStore) -> None:
    subject = store.subjects.registry_commit
    for i in range(3):
        await store.append(subject, rec(i))
    seen: list[int] = []
    four = asyncio.Event()

    def handler(seq: int, record: Record, _pending: int) -> None:
        seen.append(seq)
        if len(seen) == 2:
            four.set()

    sub = await store.subscribe(store.subjects.registry_stream, 2, handler)
    await store.append(subject, rec(3))
    async with asyncio.timeout(5):
        await four.wait()
    await sub.stop()
    assert seen == [2, 3] or seen[:3] == [2, 3, 4]


async def test_provision_is_idempotent(store: JetStreamEventStore) -> None:
    await store.provision()
    await store.provision()
    assert await store.last_seq(store.subjects.registry_stream) == 0


async def test_oversized_record_is_a_clear_error(store: JetStreamEventStore) -> None:
    big = Record(type="test.big", body={"x": "a" * (store.max_payload + 10)})
    with pytest.raises(PayloadTooLargeError, match="accepts at most"):
        await store.append(store.subjects.registry_commit, big)


async def test_request_reply_in_parts(store: JetStreamEventStore) -> None:
    from datetime import timedelta

    big = b"x" * (store.max_payload * 2 + 17)

    async def handler(subject: str, payload: bytes) -> bytes:
        return big if payload == b"big" else payload.upper()

    sub = await store.serve(store.subjects.admin_all("n1"), handler)
    try:
        assert await store.request(store.subjects.admin("n1", "echo"), b"hi", timeout=timedelta(seconds=5)) == b"HI"
        assert await store.request(store.subjects.admin("n1", "x"), b"big", timeout=timedelta(seconds=5)) == big
    finally:
        await sub.stop()
