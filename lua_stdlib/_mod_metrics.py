"""`metrics`: counters, gauges and histograms on the node's OpenTelemetry meters.

    metrics.counter_inc(name, labels?) -> true, err          add 1
    metrics.counter_add(name, value, labels?) -> true, err   add value (>= 0)
    metrics.gauge_set(name, value, labels?) -> true, err
    metrics.gauge_inc(name, labels?) / gauge_dec(name, labels?) -> true, err   move by 1
    metrics.histogram(name, value, labels?) -> true, err     record one observation (>= 0)

Names follow OpenTelemetry's syntax (a letter, then letters, digits, ``_ . - /``); a name keeps
the kind it was first used with. Labels are a table of name = value: strings, or numbers and
booleans written as text (Wippy silently drops non-string values; here they count). A bad name,
label or value is an INVALID error; with no node telemetry attached (a host built without one)
every call returns INTERNAL "metrics collector not available", as Wippy does.

Where metrics go is node configuration (``.wippy.yaml`` ``telemetry.metrics``; see
services/_telemetry.py): recorded always, exported only when an exporter is configured.
"""

from __future__ import annotations

from typing import Any

from wippy.core import WippyError

from ._binary import type_name
from ._host import LuaHost, register_module


class _BadInput(Exception):
    pass


def _build(host: LuaHost) -> Any:
    vm = host.vm
    telemetry = host.ctx.telemetry

    def name_of(name: Any, where: str) -> str:
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        if not isinstance(name, str):
            raise _BadInput(f"{where}: the metric name must be a string, got {type_name(name)}")
        return name

    def value_of(value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _BadInput(f"{where}: the value must be a number, got {type_name(value)}")
        return float(value)

    def labels_of(value: Any, where: str) -> dict[str, str]:
        if value is None:
            return {}
        data = vm.from_lua(value)
        if data in ([], {}):
            return {}
        if not isinstance(data, dict):
            raise _BadInput(f"{where}: labels must be a table of name = value, got {type_name(data)}"
                            + (" (a list)" if isinstance(data, list) else ""))
        out = {}
        for key, v in data.items():
            if isinstance(v, bool):
                out[key] = "true" if v else "false"
            elif isinstance(v, int | float):
                out[key] = str(vm.tostring(v))
            elif isinstance(v, str):
                out[key] = v
            else:
                raise _BadInput(f"{where}: label {key} must be a string, got {type_name(v)}")
        return out

    def record(where: str, action: Any) -> tuple[Any, Any]:
        if telemetry is None:
            return None, vm.error("INTERNAL", "metrics collector not available")
        try:
            action()
        except _BadInput as exc:
            return None, vm.error("INVALID", str(exc))
        except WippyError as exc:
            return None, vm.error(exc.kind, f"{where}: {exc}")
        return True, None

    def counter_inc(name: Any = None, labels: Any = None, *_: Any) -> tuple[Any, Any]:
        where = "metrics.counter_inc"
        return record(where, lambda: telemetry.counter_add(name_of(name, where), 1.0, labels_of(labels, where)))

    def counter_add(name: Any = None, value: Any = None, labels: Any = None, *_: Any) -> tuple[Any, Any]:
        where = "metrics.counter_add"
        return record(where, lambda: telemetry.counter_add(name_of(name, where), value_of(value, where),
                                                            labels_of(labels, where)))

    def gauge_set(name: Any = None, value: Any = None, labels: Any = None, *_: Any) -> tuple[Any, Any]:
        where = "metrics.gauge_set"
        return record(where, lambda: telemetry.gauge_set(name_of(name, where), value_of(value, where),
                                                          labels_of(labels, where)))

    def gauge_step(step: float, where: str) -> Any:
        def step_fn(name: Any = None, labels: Any = None, *_: Any) -> tuple[Any, Any]:
            return record(where, lambda: telemetry.gauge_add(name_of(name, where), step, labels_of(labels, where)))

        return step_fn

    def histogram(name: Any = None, value: Any = None, labels: Any = None, *_: Any) -> tuple[Any, Any]:
        where = "metrics.histogram"
        return record(where, lambda: telemetry.histogram_record(name_of(name, where), value_of(value, where),
                                                                 labels_of(labels, where)))

    return vm.rt.table_from({
        "counter_inc": counter_inc, "counter_add": counter_add, "gauge_set": gauge_set,
        "gauge_inc": gauge_step(1.0, "metrics.gauge_inc"), "gauge_dec": gauge_step(-1.0, "metrics.gauge_dec"),
        "histogram": histogram,
    })


register_module("metrics", _build)
