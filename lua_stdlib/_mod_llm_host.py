"""`llm_host`: the bridge from the native ``wippy.llm:llm`` library to the node's LLM service.

Only the library lists it in its ``modules:`` (an app may too, but has no reason to). Every call
hands Lua tables to ``host.ctx.llm`` (services/_llm.py, structurally typed here) as plain data and
returns Wippy's answers: ``value`` or ``nil, error_string``.

    generate(messages, options)                 options.stream = {reply_to, topic, buffer_size}
    structured_output(schema, messages, options)
    embed(text | texts, options)
    status(options)
    available_models(capability?) / get_classes()

Streaming sends each event to ``stream.reply_to`` as a message on ``stream.topic`` (default
``llm_response``) through the node's process runtime, as Wippy's llm streamer does: text is
buffered and sent once ``buffer_size`` characters (default 10) have gathered or the text ends a
sentence (``.``, ``!`` or ``?``), so a receiver gets phrases rather than single tokens; thinking
and tool calls go at once; ``done`` (or ``error``) comes last, after the buffered text.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from wippy.core import WippyError

from ._host import LuaHost, ModuleUnavailable, register_module
from ._mod_json import JsonValueError, _schema_shape, lua_to_json
from ._process import _escape_keys

log = logging.getLogger("wippy.llm")

_SENTENCE_END = re.compile(r"[.!?]\s*$")
DEFAULT_TOPIC = "llm_response"
DEFAULT_BUFFER = 10


class ProcessStream:
    """An LLM service event sink that sends Wippy's stream chunks to one process."""

    def __init__(self, processes: Any, sender: str | None, reply_to: str, topic: str, buffer_size: int) -> None:
        self._processes = processes
        self._sender = sender
        self._to = reply_to
        self._topic = topic
        self._size = buffer_size
        self._buffer = ""

    async def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "chunk":
            self._buffer += str(event.get("content") or "")
            if self._size > 0 and (len(self._buffer) >= self._size or _SENTENCE_END.search(self._buffer)):
                self._flush()
        elif kind == "thinking":
            self._send({"type": "thinking", "content": str(event.get("content") or "")})
        elif kind == "tool_call":
            self._send({"type": "tool_call", "name": event.get("name"), "arguments": event.get("arguments"),
                        "id": event.get("id")})
        elif kind in ("done", "error"):
            self._flush()
            self._send(event)

    def _flush(self) -> None:
        if self._buffer:
            text, self._buffer = self._buffer, ""
            self._send({"type": "chunk", "content": text})

    def _send(self, payload: dict[str, Any]) -> None:
        try:
            self._processes.send(self._sender, self._to, self._topic, [_escape_keys(payload)])
        except WippyError as exc:  # the stream's reader went away or never was: the call still completes
            log.warning("llm stream to %s dropped a %s event: %s", self._to, payload.get("type"), exc)


def _message(exc: WippyError) -> str:
    return str(getattr(exc, "message", None) or exc)


def _build(host: LuaHost) -> Any:
    service = host.ctx.llm
    if service is None:
        raise ModuleUnavailable("no LLM service is available to this process")
    vm = host.vm
    to_python = lua_to_json(host)

    def data(value: Any, what: str) -> Any:
        try:
            return to_python(value)
        except JsonValueError as exc:
            raise _BadInput(f"{what}: {exc}") from exc

    def options_of(opts: Any) -> dict[str, Any]:
        options = data(opts, "options")
        if not isinstance(options, dict):
            raise _BadInput("options must be a table")
        tools = options.get("tools")
        if isinstance(tools, list):
            options["tools"] = [
                {**t, "schema": _schema_shape(t["schema"])} if isinstance(t, dict) and "schema" in t else t
                for t in tools
            ]
        return options

    def stream_of(options: dict[str, Any]) -> ProcessStream | None:
        stream = options.pop("stream", None)
        if not isinstance(stream, dict) or not stream.get("reply_to"):
            return None
        if host.ctx.processes is None:
            raise _BadInput("stream: there is no process runtime here to send the stream to")
        size = stream.get("buffer_size")
        buffer = int(size) if isinstance(size, int | float) and not isinstance(size, bool) else DEFAULT_BUFFER
        return ProcessStream(host.ctx.processes, str(host.current_pid()), str(stream["reply_to"]),
                             str(stream.get("topic") or DEFAULT_TOPIC), buffer)

    def caller() -> str | None:
        pid = host.current_pid()
        return None if pid is None else str(pid)

    def call(make: Any) -> Any:
        """Run ``make()`` (which builds the service call) as a Pending; errors come back as strings."""
        try:
            awaitable = make()
        except _BadInput as exc:
            return None, str(exc)

        async def run() -> tuple[Any, ...]:
            try:
                return (await awaitable,)
            except WippyError as exc:
                return None, _message(exc)

        return vm.pending(run())

    def generate(messages: Any = None, opts: Any = None) -> Any:
        def make() -> Any:
            options = options_of(opts)
            sink = stream_of(options)
            return service.generate(data(messages, "messages"), options, sink, caller=caller())
        return call(make)

    def structured_output(schema: Any = None, messages: Any = None, opts: Any = None) -> Any:
        def make() -> Any:
            shaped = _schema_shape(data(schema, "schema"))
            return service.structured_output(shaped, data(messages, "messages"), options_of(opts), caller=caller())
        return call(make)

    def embed(text: Any = None, opts: Any = None) -> Any:
        return call(lambda: service.embed(data(text, "input"), options_of(opts), caller=caller()))

    def status(opts: Any = None) -> Any:
        return call(lambda: service.status(options_of(opts)))

    def available_models(capability: Any = None) -> Any:
        return vm.to_lua(service.available_models(None if capability is None else str(capability)))

    def get_classes() -> Any:
        return vm.to_lua(service.get_classes())

    return vm.rt.table_from({
        "generate": vm.asyncify(generate),
        "structured_output": vm.asyncify(structured_output),
        "embed": vm.asyncify(embed),
        "status": vm.asyncify(status),
        "available_models": available_models,
        "get_classes": get_classes,
    })


class _BadInput(Exception):
    """Lua passed data the service cannot take (a function in options, a sparse array)."""


register_module("llm_host", _build)
