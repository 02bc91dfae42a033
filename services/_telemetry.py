"""Node telemetry: the OpenTelemetry MeterProvider behind Lua's ``metrics`` module.

One ``Telemetry`` per node. Lua code records counters, gauges and histograms by name with string
labels (``metrics.counter_inc("orders_total", {status = "ok"})``); they are OpenTelemetry
instruments of one meter, created on first use. Recording always works; exporting is off unless
configured, in any combination:

- ``prometheus_address`` ("host:port"): a Prometheus text endpoint at ``/metrics`` (the
  OpenTelemetry Prometheus exporter on a registry of this node's own, served by prometheus_client
  from a thread, so a scrape never waits for the event loop);
- ``otlp_endpoint`` (a base URL): OTLP over HTTP/protobuf to ``<endpoint>/v1/metrics`` every
  ``metrics_interval`` and once more on close;
- ``metrics_exporter="console"``: the SDK's JSON export on stderr every ``metrics_interval``.

An in-memory reader is always attached, so ``read()`` can report current values (for tests and
introspection) without any exporter.

Wippy's gauges move up and down (``gauge_inc``/``gauge_dec``) as well as being set; OpenTelemetry's
synchronous gauge is set-only, so the current value per label set is kept here and each change
records the new value.
"""

from __future__ import annotations

import math
import re
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import Histogram as _HistogramInstrument
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    Gauge,
    Histogram,
    InMemoryMetricReader,
    MetricReader,
    PeriodicExportingMetricReader,
    Sum,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, start_http_server

from wippy.core import WippyError

Exporter = Literal["none", "console"]
EXPORTERS: tuple[Exporter, ...] = ("none", "console")

# OpenTelemetry's instrument name syntax
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-/]{0,254}")
_KIND_NAMES = {"counter": "a counter", "gauge": "a gauge", "histogram": "a histogram"}
# histogram buckets: Prometheus's defaults (seconds-scale, as Wippy's exporters use), not
# OpenTelemetry's millisecond-scale defaults
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class TelemetrySettings:
    """Where metrics go (``.wippy.yaml`` ``telemetry.metrics``, ``prometheus``, ``otel``)."""

    #: "none" (record only; the default) or "console" (print exports to stderr)
    metrics_exporter: Exporter = "none"
    #: how often the periodic exporters (console, OTLP) run
    metrics_interval: timedelta = timedelta(seconds=60)
    #: the ``service.name`` resource attribute of exported metrics
    service_name: str = "wippy-runtime"
    #: serve Prometheus text at http://<host:port>/metrics (port 0: any free port)
    prometheus_address: tuple[str, int] | None = None
    #: push OTLP (HTTP/protobuf) to <otlp_endpoint>/v1/metrics, e.g. "http://localhost:4318"
    otlp_endpoint: str | None = None


class TelemetryError(WippyError):
    """An exporter cannot start (say, the Prometheus address is taken)."""

    kind = "INTERNAL"


class MetricError(WippyError):
    """A metric call with a bad name, labels or value (the caller's mistake)."""

    kind = "INVALID"


Labels = Mapping[str, str]


class Telemetry:
    """The node's meters. Use from one thread (the node's event loop); ``close`` is idempotent."""

    def __init__(self, settings: TelemetrySettings | None = None) -> None:
        self.settings = settings or TelemetrySettings()
        self._memory = InMemoryMetricReader()
        readers: list[MetricReader] = [self._memory]
        interval_ms = max(self.settings.metrics_interval.total_seconds(), 0.001) * 1000
        if self.settings.metrics_exporter == "console":
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(out=sys.stderr),
                                                         export_interval_millis=interval_ms))
        if self.settings.otlp_endpoint:
            exporter = OTLPMetricExporter(endpoint=self.settings.otlp_endpoint.rstrip("/") + "/v1/metrics")
            readers.append(PeriodicExportingMetricReader(exporter, export_interval_millis=interval_ms))
        self._server: Any = None
        self._server_thread: threading.Thread | None = None
        self._prometheus: PrometheusMetricReader | None = None
        if self.settings.prometheus_address is not None:
            host, port = self.settings.prometheus_address
            registry = CollectorRegistry(auto_describe=True)
            self._prometheus = PrometheusMetricReader(registry=registry, scope_info_enabled=False)
            readers.append(self._prometheus)
            try:
                self._server, self._server_thread = start_http_server(port, host, registry=registry)
            except OSError as exc:
                self._prometheus.shutdown()
                raise TelemetryError(f"prometheus: cannot serve /metrics on {host}:{port}: {exc}") from exc
        self._provider = MeterProvider(
            metric_readers=readers, resource=Resource.create({"service.name": self.settings.service_name}),
            views=[View(instrument_name="*", instrument_type=_HistogramInstrument,
                        aggregation=ExplicitBucketHistogramAggregation(BUCKETS))])
        self._meter = self._provider.get_meter("wippy.lua.metrics")
        self._instruments: dict[str, tuple[str, Any]] = {}
        self._gauges: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        self._lock = threading.Lock()
        self._closed = False

    @property
    def prometheus_address(self) -> tuple[str, int] | None:
        """Where /metrics is served (the bound port when the settings asked for port 0)."""
        if self._server is None:
            return None
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    # -- recording -----------------------------------------------------------------------------

    def counter_add(self, name: str, value: float, labels: Labels | None = None) -> None:
        """Add ``value`` (>= 0) to a counter."""
        value = _finite(name, value)
        if value < 0:
            raise MetricError(f"counter {name}: cannot add {value:g} (counters only go up; use a gauge)")
        self._instrument(name, "counter").add(value, dict(labels or {}))

    def gauge_set(self, name: str, value: float, labels: Labels | None = None) -> None:
        self._gauge(name, labels, lambda _old: _finite(name, value))

    def gauge_add(self, name: str, delta: float, labels: Labels | None = None) -> None:
        """Move a gauge up or down by ``delta`` from its current value (0 when never set)."""
        delta = _finite(name, delta)
        self._gauge(name, labels, lambda old: old + delta)

    def histogram_record(self, name: str, value: float, labels: Labels | None = None) -> None:
        """Record one observation (>= 0, as OpenTelemetry histograms require)."""
        value = _finite(name, value)
        if value < 0:
            raise MetricError(f"histogram {name}: cannot record {value:g} (histogram values must be >= 0)")
        self._instrument(name, "histogram").record(value, dict(labels or {}))

    def _gauge(self, name: str, labels: Labels | None, change: Any) -> None:
        attrs = dict(labels or {})
        gauge = self._instrument(name, "gauge")
        key = (name, frozenset(attrs.items()))
        with self._lock:
            value = float(change(self._gauges.get(key, 0.0)))
            self._gauges[key] = value
        gauge.set(value, attrs)

    def _instrument(self, name: str, kind: str) -> Any:
        if self._closed:
            raise MetricError(f"metric {name}: telemetry is closed")
        found = self._instruments.get(name)
        if found is None:
            if not _NAME.fullmatch(name):
                raise MetricError(
                    f"invalid metric name {name!r}: start with a letter; use letters, digits, _ . - / (at most 255)"
                )
            with self._lock:
                found = self._instruments.get(name)
                if found is None:
                    create = {"counter": self._meter.create_counter, "gauge": self._meter.create_gauge,
                              "histogram": self._meter.create_histogram}[kind]
                    found = self._instruments[name] = (kind, create(name))
        if found[0] != kind:
            raise MetricError(f"metric {name} is {_KIND_NAMES[found[0]]}, not {_KIND_NAMES[kind]}")
        return found[1]

    # -- reading -------------------------------------------------------------------------------

    def read(self) -> dict[str, list[dict[str, Any]]]:
        """Current values by metric name: ``[{labels, value}]`` (histograms: count, sum, min, max)."""
        out: dict[str, list[dict[str, Any]]] = {}
        data = self._memory.get_metrics_data()
        if data is None:
            return out
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    out[metric.name] = [_point(metric.data, p) for p in metric.data.data_points]
        return out

    def close(self) -> None:
        """Flush the exporters (an OTLP push may wait for its collector: call it off the event
        loop), stop their threads and the /metrics server. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._provider.shutdown()
        finally:
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
            if self._server_thread is not None:
                self._server_thread.join(timeout=5)


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MetricError(f"metric {name}: the value must be a finite number, got {value!r}")
    return float(value)


def _point(data: Any, point: Any) -> dict[str, Any]:
    labels = dict(point.attributes or {})
    if isinstance(data, Histogram):
        return {"labels": labels, "count": point.count, "sum": point.sum, "min": point.min, "max": point.max}
    if isinstance(data, Sum | Gauge):
        return {"labels": labels, "value": point.value}
    return {"labels": labels}  # pragma: no cover - only the three kinds above are created
