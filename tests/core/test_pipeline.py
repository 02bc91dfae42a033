"""The pipelined publisher: order, acknowledgement, recovering unacknowledged records once, refusals."""

from __future__ import annotations

import asyncio

import pytest
from nats.js import api as js_api

from wippy.core import JetStreamEventStore, PayloadTooLargeError, Pipeline


async def _bodies(store: JetStreamEventStore, stream: str) -> list[bytes]:
    return [data for _, data in await store.read_raw(stream)]


async def _handed_over(pipe: Pipeline) -> None:
    """Until every queued record is published on the connection (its ack outstanding)."""
    for _ in range(100_000):
        if not pipe._queue:
            return
        await asyncio.sleep(0)
    raise AssertionError("the pipeline did not publish its queue")


async def _pipeline(store: JetStreamEventStore, **kw: float) -> Pipeline:
    pipe = Pipeline(store, store.subjects.proc_stream, **kw)
    pipe.start(await store.last_seq(store.subjects.proc_stream))
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


async def test_records_whose_ack_was_lost_are_resent_and_stored_once(store: JetStreamEventStore) -> None:
    # as when the connection drops: published, and no acknowledgement will ever come (the
    # watchdog cancels such futures after ack_timeout); some of them did land on the server
    pipe = await _pipeline(store)
    subject = store.subjects.proc("n1")
    for i in range(300):
        pipe.emit(subject, b"%d" % i)
    await _handed_over(pipe)
    lost = [fut for fut, _, _ in pipe._inflight if not fut.done()]
    for fut in lost:
        fut.cancel()
    assert await pipe.flush(60)
    # each lost one was either found in the stream or appended again, never both
    assert pipe.resent + pipe.found == len(lost) > 0
    bodies = await _bodies(store, store.subjects.proc_stream)
    assert sorted(bodies, key=int) == [b"%d" % i for i in range(300)]
    await pipe.aclose()


async def test_the_watchdog_gives_up_on_acks_that_never_come(store: JetStreamEventStore) -> None:
    pipe = await _pipeline(store, ack_timeout=0.2)
    subject = store.subjects.proc("n1")
    pipe.emit(subject, b"0")
    await _handed_over(pipe)
    fut = pipe._inflight[0][0]
    # an ack that never arrives: detach it from the connection's table of outstanding acks
    for token, pending in list(store._js._publish_async_futures.items()):
        if pending is fut:
            del store._js._publish_async_futures[token]
    assert await pipe.flush(10)
    assert fut.cancelled() and (pipe.found, pipe.resent) == (1, 0)
    assert await _bodies(store, store.subjects.proc_stream) == [b"0"]
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
