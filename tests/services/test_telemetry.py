"""Node telemetry: instruments, reading values, the console, Prometheus and OTLP exporters, and their
.wippy.yaml config."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from wippy.core import ConfigError
from wippy.ops._config import build_config
from wippy.services import MetricError, Telemetry, TelemetryError, TelemetrySettings


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


def _config(tmp_path: Path, yaml: str | None, environ: dict[str, str] | None = None) -> TelemetrySettings:
    if yaml is not None:
        (tmp_path / ".wippy.yaml").write_text(yaml)
    cfg = build_config(app_dir=str(tmp_path), state_dir=None, nats=None, node=None, namespace=None,
                       sync_interval=None, json_output=False, verbose=False, environ=environ or {})
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


# -- Prometheus ----------------------------------------------------------------------------------

def _scrape(address: tuple[str, int]) -> str:
    with urllib.request.urlopen(f"http://{address[0]}:{address[1]}/metrics", timeout=5) as resp:
        assert resp.status == 200
        return str(resp.read().decode())


def test_prometheus_endpoint_serves_current_values() -> None:
    t = Telemetry(TelemetrySettings(prometheus_address=("127.0.0.1", 0)))
    try:
        address = t.prometheus_address
        assert address is not None and address[1] > 0
        t.counter_add("orders_total", 2, {"status": "ok"})
        t.counter_add("orders_total", 1, {"status": "ok"})
        t.gauge_add("orders_pending", 1)
        t.gauge_add("orders_pending", 1)
        t.gauge_add("orders_pending", -1)
        t.histogram_record("request_duration_seconds", 0.2)
        t.histogram_record("request_duration_seconds", 0.4)
        text = _scrape(address)
        lines = {line.split(" ")[0]: line.rsplit(" ", 1)[1] for line in text.splitlines() if line and line[0] != "#"}
        assert float(lines['orders_total{status="ok"}']) == 3
        pending = [v for k, v in lines.items() if k.split("{")[0] == "orders_pending"]
        assert [float(v) for v in pending] == [1]
        count = [v for k, v in lines.items() if k.split("{")[0] == "request_duration_seconds_count"]
        total = [v for k, v in lines.items() if k.split("{")[0] == "request_duration_seconds_sum"]
        assert [float(v) for v in count] == [2]
        assert abs(float(total[0]) - 0.6) < 1e-9
        buckets = {k.split('le="')[1].split('"')[0]: float(v) for k, v in lines.items()
                   if k.startswith("request_duration_seconds_bucket{")}
        assert (buckets["0.1"], buckets["0.25"], buckets["0.5"], buckets["+Inf"]) == (0, 1, 2, 2)
        t.counter_add("orders_total", 1, {"status": "ok"})  # the next scrape sees the change
        assert 'orders_total{status="ok"} 4.0' in _scrape(address)
    finally:
        t.close()
    with pytest.raises(urllib.error.URLError):
        _scrape(address)


def test_two_nodes_keep_separate_registries() -> None:
    a = Telemetry(TelemetrySettings(prometheus_address=("127.0.0.1", 0)))
    b = Telemetry(TelemetrySettings(prometheus_address=("127.0.0.1", 0)))
    try:
        a.counter_add("only_in_a", 1)
        b.counter_add("only_in_b", 1)
        assert a.prometheus_address is not None and b.prometheus_address is not None
        text_a, text_b = _scrape(a.prometheus_address), _scrape(b.prometheus_address)
        assert "only_in_a" in text_a and "only_in_b" not in text_a
        assert "only_in_b" in text_b and "only_in_a" not in text_b
    finally:
        a.close()
        b.close()


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TelemetryError, match=f"prometheus: cannot serve /metrics on 127.0.0.1:{port}"):
            Telemetry(TelemetrySettings(prometheus_address=("127.0.0.1", port)))


# -- OTLP ----------------------------------------------------------------------------------------

class _Collector:
    """An OTLP/HTTP receiver on loopback (a thread: the exporter posts synchronously)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.requests.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector() -> Iterator[_Collector]:
    c = _Collector()
    yield c
    c.close()


def test_otlp_push_reaches_the_collector_on_close(collector: _Collector) -> None:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    t = Telemetry(TelemetrySettings(otlp_endpoint=collector.url + "/", service_name="shop"))
    t.counter_add("orders_total", 5, {"status": "ok"})
    t.histogram_record("latency", 0.5)
    t.close()  # flushes
    assert collector.requests, "nothing was pushed"
    path, body = collector.requests[-1]
    assert path == "/v1/metrics"
    request = ExportMetricsServiceRequest()
    request.ParseFromString(body)
    (resource,) = request.resource_metrics
    attrs = {a.key: a.value.string_value for a in resource.resource.attributes}
    assert attrs["service.name"] == "shop"
    metrics = {m.name: m for scope in resource.scope_metrics for m in scope.metrics}
    assert metrics["orders_total"].sum.data_points[0].as_double == 5
    assert metrics["latency"].histogram.data_points[0].count == 1


# -- config ---------------------------------------------------------------------------------------

def test_config_prometheus_and_otel(tmp_path: Path) -> None:
    got = _config(tmp_path, "prometheus:\n  enabled: true\n  address: localhost:9090\n")
    assert got.prometheus_address == ("localhost", 9090)
    assert _config(tmp_path, "prometheus:\n  enabled: true\n  address: ':9091'\n").prometheus_address == \
        ("0.0.0.0", 9091)
    assert _config(tmp_path, "prometheus:\n  enabled: false\n  address: x\n").prometheus_address is None
    otel = "otel:\n  enabled: true\n  metrics_enabled: true\n"
    assert _config(tmp_path, otel).otlp_endpoint == "http://localhost:4318"
    assert _config(tmp_path, otel + "  endpoint: collector:4318\n  insecure: false\n").otlp_endpoint == \
        "https://collector:4318"
    assert _config(tmp_path, "otel:\n  enabled: true\n").otlp_endpoint is None  # metrics_enabled defaults off
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://10.0.0.5:4318", "OTEL_SERVICE_NAME": "svc"}
    got = _config(tmp_path, otel + "  endpoint: ignored:1\n  service_name: app\n", env)
    assert (got.otlp_endpoint, got.service_name) == ("http://10.0.0.5:4318", "svc")
    assert _config(tmp_path, otel, {"OTEL_SDK_DISABLED": "true"}).otlp_endpoint is None


@pytest.mark.parametrize(("yaml", "message"), [
    ("prometheus:\n  enabled: true\n", "prometheus.address must be set"),
    ("prometheus:\n  enabled: true\n  address: localhost\n", "must be host:port"),
    ("prometheus:\n  enabled: true\n  address: 'a:99999'\n", "must be host:port"),
    ("prometheus: [1]\n", "prometheus: expected a mapping"),
    ("prometheus:\n  enabled: maybe\n  address: ':1'\n", "prometheus.enabled must be true or false"),
    ("otel:\n  enabled: true\n  metrics_enabled: true\n  protocol: grpc\n", "only http/protobuf"),
    ("otel:\n  service_name: [1]\n", "service_name must be a string"),
])
def test_config_exporter_mistakes(tmp_path: Path, yaml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, yaml)
