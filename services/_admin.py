"""The admin API of a running node over NATS request subjects.

While ``wippy run`` holds a state dir, it alone may open that dir's DuckDB file; other commands
reach its registry and projections with requests on ``<ns>.admin.<node>.<verb>``. A request is
``{"args": {...}, "actor": ..., "trace": ...}``; the reply is ``{"ok": result}`` or
``{"error": {"type", "kind", "message"}}``, split into parts when large.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import orjson

from wippy.core import JetStreamEventStore, Subscription, WippyError, error_from_json, error_to_json

from ._commands import CallContext, execute
from ._registry import RegistryService

log = logging.getLogger("wippy.services.admin")


def _encode(value: Any) -> bytes:
    return orjson.dumps(value, default=str)


class AdminServer:
    """Serves the registry commands of one node."""

    def __init__(self, store: JetStreamEventStore, service: RegistryService, node: str) -> None:
        self._store = store
        self._service = service
        self._node = node
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self._store.serve(self._store.subjects.admin_all(self._node), self._handle)

    async def aclose(self) -> None:
        if self._sub is not None:
            await self._sub.stop()
            self._sub = None

    async def _handle(self, subject: str, payload: bytes) -> bytes:
        verb = subject.rsplit(".", 1)[-1]
        try:
            request = orjson.loads(payload) if payload else {}
            ctx = CallContext(actor=request.get("actor"), trace=request.get("trace"))
            result = await execute(self._service, verb, request.get("args") or {}, ctx)
            return _encode({"ok": result})
        except WippyError as exc:
            return _encode({"error": error_to_json(exc)})
        except Exception as exc:
            log.exception("admin %s failed", verb)
            return _encode({"error": {"type": "WippyError", "kind": "INTERNAL", "message": f"internal error: {exc}"}})


class AdminClient:
    """Calls a running node's admin API."""

    def __init__(self, store: JetStreamEventStore, node: str, *, timeout: timedelta = timedelta(minutes=5)) -> None:
        self._store = store
        self._node = node
        self._timeout = timeout

    async def call(self, verb: str, args: dict[str, Any], *, actor: str | None = None,
                   trace: str | None = None, timeout: timedelta | None = None) -> Any:
        payload = _encode({"args": args, "actor": actor, "trace": trace})
        reply = await self._store.request(
            self._store.subjects.admin(self._node, verb), payload, timeout=timeout or self._timeout
        )
        answer = orjson.loads(reply)
        if "error" in answer:
            raise error_from_json(answer["error"])
        return answer.get("ok")
