"""The pipelined publisher: order, acknowledgement, recovering unacknowledged records once, refusals."""

from __future__ import annotations

import pytest
from nats.js import api as js_api

from wippy.core import JetStreamEventStore, PayloadTooLargeError, Pipeline


async def _bodies(store: JetStreamEventStore, stream: str) -> list[bytes]:
    return [data for _, data in await store.read_raw(stream)]


async def _pipeline(store: JetStreamEventStore, ack_timeout: float = 5.0, window: int = 8192) -> Pipeline:
    pipe = Pipeline(store, store.subjects.proc_stream, ack_timeout=ack_timeout, window=window)
    await pipe.start(await store.last_seq(store.subjects.proc_stream))
    return pipe


async def test_records_land_in_order_and_flush_waits_for_their_acks(store: JetStreamEventStore) -> None:
    pipe = await _pipeline(store)
    subject = store.subjects.proc("n1")
    for i in range(500):
        pipe.emit(subject, b"%d" % i)
    assert pipe.pending == 500
    assert await pipe.flush(30)
    assert pipe.pending == 0
    assert await _bodies(store, store.subjects.proc_stream) == [b"%d" % i for i in range(500)]
    await pipe.aclose()


async def test_records_whose_acks_never_come_are_found_in_the_stream(store: JetStreamEventStore) -> None:
    # as when acknowledgements are lost with the connection: the records are stored, no answer
    # comes, the watchdog gives up after ack_timeout, and the recovery finds each one in the stream
    pipe = await _pipeline(store, ack_timeout=0.3)
    await pipe._acks.close()  # nobody hears the acknowledgements
    subject = store.subjects.proc("n1")
    for i in range(300):
        pipe.emit(subject, b"%d" % i)
    assert await pipe.flush(30)
    assert (pipe.found, pipe.resent, pipe.failed) == (300, 0, 0)
    assert await _bodies(store, store.subjects.proc_stream) == [b"%d" % i for i in range(300)]
    await pipe.aclose()


async def test_a_flood_waits_for_room_in_the_window(store: JetStreamEventStore) -> None:
    pipe = await _pipeline(store, window=16)
    subject = store.subjects.proc("n1")
    for i in range(2000):
        pipe.emit(subject, b"%d" % i)
    assert await pipe.flush(30)
    assert await _bodies(store, store.subjects.proc_stream) == [b"%d" % i for i in range(2000)]
    await pipe.aclose()


async def test_a_refused_record_is_counted_and_does_not_block_the_rest(store: JetStreamEventStore) -> None:
    js = store.client.jetstream()
    stream = store.subjects.proc_stream
    config = (await js.stream_info(stream)).config
    config.max_msgs = 2
    config.discard = js_api.DiscardPolicy.NEW
    await js.update_stream(config)
    pipe = await _pipeline(store, ack_timeout=0.5)
    for i in range(5):
        pipe.emit(store.subjects.proc("n1"), b"%d" % i)
    assert await pipe.flush(30)
    # each refused record was looked for, tried again (awaited, which reports the refusal) and given up
    assert (pipe.failed, pipe.resent, pipe.found) == (3, 0, 0)
    assert await _bodies(store, stream) == [b"0", b"1"]
    await pipe.aclose()


async def test_an_oversized_record_is_refused_when_queued(store: JetStreamEventStore) -> None:
    pipe = await _pipeline(store)
    with pytest.raises(PayloadTooLargeError, match="at most"):
        pipe.emit(store.subjects.proc("n1"), b"x" * (store.max_payload + 1))
    assert pipe.pending == 0
    assert await pipe.flush(1)
    await pipe.aclose()
