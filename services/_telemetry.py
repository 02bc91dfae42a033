"""Node telemetry: the OpenTelemetry MeterProvider behind Lua's ``metrics`` module.

One ``Telemetry`` per node. Lua code records counters, gauges and histograms by name with string
labels (``metrics.counter_inc("orders_total", {status = "ok"})``); they are OpenTelemetry
instruments of one meter, created on first use. Recording always works; exporting is off unless
configured (``TelemetrySettings.metrics_exporter``): ``"console"`` prints the SDK's JSON export to
stderr every ``metrics_interval``. An in-memory reader is always attached, so ``read()`` can
report current values (for tests and introspection) without any exporter.

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
from opentelemetry.sdk.resources import Resource

from wippy.core import WippyError

Exporter = Literal["none", "console"]
EXPORTERS: tuple[Exporter, ...] = ("none", "console")

# OpenTelemetry's instrument name syntax
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-/]{0,254}")
_KIND_NAMES = {"counter": "a counter", "gauge": "a gauge", "histogram": "a histogram"}


@dataclass(frozen=True, slots=True, kw_only=True)
class TelemetrySettings:
    """``.wippy.yaml`` ``telemetry.metrics``: where metrics go."""

    #: "none" (record only; the default) or "console" (print exports to stderr)
    metrics_exporter: Exporter = "none"
    #: how often the exporter runs
    metrics_interval: timedelta = timedelta(seconds=60)
    #: the ``service.name`` resource attribute of exported metrics
    service_name: str = "wippy"


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
        if self.settings.metrics_exporter == "console":
            interval_ms = max(self.settings.metrics_interval.total_seconds(), 0.001) * 1000
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(out=sys.stderr),
                                                         export_interval_millis=interval_ms))
        self._provider = MeterProvider(metric_readers=readers,
                                       resource=Resource.create({"service.name": self.settings.service_name}))
        self._meter = self._provider.get_meter("wippy.lua.metrics")
        self._instruments: dict[str, tuple[str, Any]] = {}
        self._gauges: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        self._lock = threading.Lock()
        self._closed = False

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
        """Flush the exporter (if any) and stop its thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._provider.shutdown()


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
