"""Middleware that observes requests: `metrics` (request count, duration, in flight) and `otel`
(a server span per request, continuing the caller's traceparent)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import hdrs, web
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from wippy.core import (
    WippyError,
)

from . import _http_keys as keys
from ._http_keys import Handler

log = logging.getLogger("wippy.http.middleware")

# -- metrics and otel -----------------------------------------------------------------------------

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})


class Metrics:
    def __init__(self, telemetry: Any) -> None:
        self.telemetry = telemetry

    def _record(self, action: Callable[[], None]) -> None:
        try:
            action()
        except WippyError as exc:  # a closed telemetry: metrics never fail a request
            log.debug("metrics: %s", exc)

    async def __call__(self, request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        t = self.telemetry
        if t is None:
            return await handler(request)
        router = request.get(keys.ROUTER) or ""
        flight = {"router": router}
        self._record(lambda: t.gauge_add("wippy_http_requests_in_flight", 1, flight))
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away
            raise
        finally:
            labels = {"method": request.method if request.method in _METHODS else "OTHER", "status": str(status),
                      "router": router, "endpoint": request.get(keys.ENDPOINT) or ""}
            elapsed = time.perf_counter() - started
            self._record(lambda: t.counter_add("wippy_http_requests_total", 1, labels))
            self._record(lambda: t.histogram_record("wippy_http_request_duration_seconds", elapsed, labels))
            self._record(lambda: t.gauge_add("wippy_http_requests_in_flight", -1, flight))


_PROPAGATOR = TraceContextTextMapPropagator()


class Otel:
    """A server span per request, child of the caller's W3C traceparent; current while the handler runs.
    Without a configured TracerProvider the API's no-op tracer makes this nearly free."""

    def __init__(self) -> None:
        self.tracer = trace.get_tracer("wippy.http")

    async def __call__(self, request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
        parent = _PROPAGATOR.extract(request.headers)
        attributes = {"http.request.method": request.method, "url.path": request.path, "url.scheme": request.scheme,
                      "server.address": request.host, "client.address": request.remote or "",
                      "user_agent.original": request.headers.get(hdrs.USER_AGENT, "")}
        with self.tracer.start_as_current_span(request.method, context=parent, kind=trace.SpanKind.SERVER,
                                               attributes=attributes, record_exception=False,
                                               set_status_on_exception=False) as span:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                self._finish(span, request, exc.status)
                raise
            except Exception as exc:
                span.record_exception(exc)
                self._finish(span, request, 500)
                raise
            self._finish(span, request, response.status)
            return response

    @staticmethod
    def _finish(span: trace.Span, request: web.BaseRequest, status: int) -> None:
        span.set_attribute("http.response.status_code", status)
        endpoint = request.get(keys.ENDPOINT)
        if endpoint:
            span.set_attribute("wippy.endpoint", endpoint)
            span.update_name(f"{request.method} {endpoint}")
        if status >= 500:
            span.set_status(trace.Status(trace.StatusCode.ERROR))

