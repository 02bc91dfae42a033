"""Node telemetry: instruments, reading values, the console exporter, and its .wippy.yaml config."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from wippy.core import ConfigError
from wippy.ops._config import build_config
from wippy.services import MetricError, Telemetry, TelemetrySettings


def test_instruments_and_reading() -> None:
    t = Telemetry()
    try:
        t.counter_add("c", 2, {"a": "1"})
        t.counter_add("c", 3, {"a": "1"})
        t.counter_add("c", 1, {"a": "2"})
        t.gauge_set("g", 10)
        t.gauge_add("g", -2.5)
        t.histogram_record("h", 1.0)
        t.histogram_record("h", 3.0)
        got = t.read()
        assert sorted((p["labels"]["a"], p["value"]) for p in got["c"]) == [("1", 5), ("2", 1)]
        assert got["g"] == [{"labels": {}, "value": 7.5}]
        assert got["h"] == [{"labels": {}, "count": 2, "sum": 4.0, "min": 1.0, "max": 3.0}]
    finally:
        t.close()


def test_mistakes_raise_metric_errors() -> None:
    t = Telemetry()
    try:
        t.counter_add("x", 1)
        with pytest.raises(MetricError, match="x is a counter, not a gauge"):
            t.gauge_set("x", 1)
        with pytest.raises(MetricError, match="invalid metric name"):
            t.counter_add("", 1)
        with pytest.raises(MetricError, match="counters only go up"):
            t.counter_add("x", -1)
        with pytest.raises(MetricError, match="finite number"):
            t.histogram_record("h", float("inf"))
        assert MetricError("x").kind == "INVALID"
    finally:
        t.close()
    t.close()  # idempotent
    with pytest.raises(MetricError, match="closed"):
        t.counter_add("x", 1)


def test_console_exporter_prints_on_close(capsys: pytest.CaptureFixture[str]) -> None:
    t = Telemetry(TelemetrySettings(metrics_exporter="console", metrics_interval=timedelta(hours=1),
                                    service_name="shop"))
    t.counter_add("orders_total", 3, {"status": "ok"})
    t.close()
    exported = json.loads(capsys.readouterr().err)
    resource = exported["resource_metrics"][0]
    assert resource["resource"]["attributes"]["service.name"] == "shop"
    metric = resource["scope_metrics"][0]["metrics"][0]
    assert metric["name"] == "orders_total"
    assert metric["data"]["data_points"][0]["value"] == 3


def test_no_exporter_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    t = Telemetry()
    t.counter_add("quiet", 1)
    t.close()
    assert capsys.readouterr().err == ""


def _config(tmp_path: Path, yaml: str | None) -> TelemetrySettings:
    if yaml is not None:
        (tmp_path / ".wippy.yaml").write_text(yaml)
    cfg = build_config(app_dir=str(tmp_path), state_dir=None, nats=None, node=None, namespace=None,
                       sync_interval=None, json_output=False, verbose=False, environ={})
    return cfg.runtime.telemetry


def test_config_defaults_and_console(tmp_path: Path) -> None:
    assert _config(tmp_path, None) == TelemetrySettings()
    assert _config(tmp_path, "telemetry:\n  metrics:\n    exporter: console\n    interval: 1m30s\n") == \
        TelemetrySettings(metrics_exporter="console", metrics_interval=timedelta(seconds=90))


@pytest.mark.parametrize(("yaml", "message"), [
    ("telemetry: 3\n", "expected a mapping"),
    ("telemetry:\n  metrics: [1]\n", "expected a mapping"),
    ("telemetry:\n  metrics:\n    exporter: otlp\n", "exporter must be none or console"),
    ("telemetry:\n  metrics:\n    interval: soon\n", "interval must be a positive duration"),
    ("telemetry:\n  metrics:\n    interval: 0s\n", "interval must be a positive duration"),
])
def test_config_mistakes(tmp_path: Path, yaml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, yaml)
