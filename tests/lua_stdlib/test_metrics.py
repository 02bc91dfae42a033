"""The `metrics` module recording into the node's OpenTelemetry meters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wippy.services import Telemetry

from .helpers import fn, run_entry


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    t = Telemetry()
    yield t
    t.close()


async def run(body: str, *args: object, telemetry: Telemetry | None) -> tuple[bool, tuple[object, ...]]:
    entry = fn("app:m", "local metrics = require('metrics')\nreturn { call = function(...) " + body + " end }",
               modules=["metrics"])
    return await run_entry(entry, args=args, telemetry=telemetry)


def values(t: Telemetry, name: str) -> dict[tuple[tuple[str, str], ...], object]:
    out = {}
    for point in t.read().get(name, []):
        labels = tuple(sorted(point["labels"].items()))
        out[labels] = point["value"] if "value" in point else (point["count"], point["sum"])
    return out


async def test_every_function_records(telemetry: Telemetry) -> None:
    ok, res = await run("""
        local r = {}
        r[#r + 1] = {metrics.counter_inc("requests_total", {method = "POST"})}
        r[#r + 1] = {metrics.counter_inc("requests_total", {method = "POST"})}
        r[#r + 1] = {metrics.counter_add("bytes_total", 1024, {direction = "out"})}
        r[#r + 1] = {metrics.counter_add("bytes_total", 0.5, {direction = "out"})}
        r[#r + 1] = {metrics.gauge_set("queue_depth", 42, {queue = "emails"})}
        r[#r + 1] = {metrics.gauge_inc("connections", {pool = "db"})}
        r[#r + 1] = {metrics.gauge_inc("connections", {pool = "db"})}
        r[#r + 1] = {metrics.gauge_dec("connections", {pool = "db"})}
        r[#r + 1] = {metrics.gauge_dec("connections")}
        r[#r + 1] = {metrics.histogram("duration_seconds", 0.123, {method = "GET"})}
        r[#r + 1] = {metrics.histogram("duration_seconds", 0.377, {method = "GET"})}
        return r
    """, telemetry=telemetry)
    assert ok, res
    assert res[0] == [[True]] * 11
    assert values(telemetry, "requests_total") == {(("method", "POST"),): 2}
    assert values(telemetry, "bytes_total") == {(("direction", "out"),): 1024.5}
    assert values(telemetry, "queue_depth") == {(("queue", "emails"),): 42}
    assert values(telemetry, "connections") == {(("pool", "db"),): 1, (): -1}
    assert values(telemetry, "duration_seconds") == {(("method", "GET"),): (2, 0.5)}


async def test_the_metrics_example_app_calls(telemetry: Telemetry) -> None:
    # the calls examples/16-metrics makes per order (its HTTP parts aside)
    ok, res = await run("""
        local body = {item = "laptop", amount = 2, price = 999.99}
        metrics.counter_inc("orders_total", {status = "ok"})
        metrics.counter_add("revenue_total", body.price * body.amount, {item = body.item})
        metrics.counter_add("items_sold_total", body.amount, {item = body.item})
        metrics.gauge_inc("orders_pending", {})
        metrics.gauge_dec("orders_pending", {})
        return metrics.histogram("request_duration_seconds", 0.01, {endpoint = "create_order", status = "ok"})
    """, telemetry=telemetry)
    assert ok, res
    assert res[0] is True
    assert values(telemetry, "revenue_total") == {(("item", "laptop"),): pytest.approx(1999.98)}
    assert values(telemetry, "orders_pending") == {(): 0}


async def test_label_values_are_text(telemetry: Telemetry) -> None:
    ok, res = await run("""
        return {metrics.counter_inc("hits", {status = 200, cached = true, ratio = 0.5, name = "x"})}
    """, telemetry=telemetry)
    assert ok, res
    assert values(telemetry, "hits") == {(("cached", "true"), ("name", "x"), ("ratio", "0.5"), ("status", "200")): 1}


async def test_bad_input_is_an_error_value(telemetry: Telemetry) -> None:
    ok, res = await run("""
        local function e(ok, err) return {ok == nil, err and err:kind(), err and err:message()} end
        return {
            e(metrics.counter_inc(nil)),
            e(metrics.counter_inc("bad name!")),
            e(metrics.counter_inc("1starts_with_digit")),
            e(metrics.counter_add("c", -1)),
            e(metrics.counter_add("c", "5")),
            e(metrics.gauge_set("g", 0/0)),
            e(metrics.histogram("h", -0.5)),
            e(metrics.counter_inc("c2", {"a", "b"})),
            e(metrics.counter_inc("c2", {k = {}})),
            e(metrics.counter_inc("c2", "label")),
            e(metrics.gauge_set("c3", 1)),
            e(metrics.counter_inc("c3")),
        }
    """, telemetry=telemetry)
    assert ok, res
    got = res[0]
    assert [r[:2] for r in got[:10]] == [[True, "INVALID"]] * 10
    assert got[0][2] == "metrics.counter_inc: the metric name must be a string, got nil"
    assert "invalid metric name 'bad name!'" in got[1][2]
    assert "counters only go up" in got[3][2]
    assert got[4][2] == "metrics.counter_add: the value must be a number, got string"
    assert "finite number" in got[5][2]
    assert "histogram values must be >= 0" in got[6][2]
    assert "(a list)" in got[7][2] and "label k must be a string, got table" in got[8][2]
    assert got[10] == [False]  # gauge_set succeeded
    assert got[11][:2] == [True, "INVALID"] and "c3 is a gauge, not a counter" in got[11][2]
    assert "c" not in telemetry.read()  # nothing was recorded by the failed calls


async def test_without_a_collector_calls_fail_like_wippy() -> None:
    ok, res = await run("local ok, err = metrics.counter_inc('x'); return {ok == nil, err:kind(), err:message()}",
                        telemetry=None)
    assert ok, res
    assert res[0] == [True, "INTERNAL", "metrics collector not available"]


async def test_module_is_read_only(telemetry: Telemetry) -> None:
    ok, res = await run("return pcall(function() metrics.counter_inc = nil end)", telemetry=telemetry)
    assert ok and res[0] is False


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=10))
async def test_counter_sums(amounts: list[int]) -> None:
    t = Telemetry()
    try:
        ok, res = await run("""
            for n in (...):gmatch("%d+") do metrics.counter_add("total", math.tointeger(tonumber(n))) end
            return true
        """, ",".join(map(str, amounts)), telemetry=t)
        assert ok, res
        assert values(t, "total") == {(): sum(amounts)}
    finally:
        t.close()
