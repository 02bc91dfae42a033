"""`llm_host`: the bridge from the native ``wippy/llm`` libraries to the node's LLM service.

Only the libraries list it in their ``modules:`` (an app may too, but has no reason to). Every call
hands Lua tables to ``host.ctx.llm`` (services/_llm.py, structurally typed here) as plain data and
returns Wippy's answers: ``value`` or ``nil, error_string``.

    generate(messages, options, card?)          options.stream = {reply_to, topic, buffer_size}
    structured_output(schema, messages, options, card?)
    embed(text | texts, options, card?)
    status(options, card?)
    available_models(capability?) / get_classes()
    model_name(model) -> the name of the model a name, class or "class:x" resolves to, or nil
    constants() -> {ERROR_TYPE, FINISH_REASON, OUTPUT_ERROR_TYPE, ERROR_KIND_MAP, STREAM_TYPE}
    bound(contract_id) -> the default binding of that contract (its definition declared), or nil

``card`` is a model card an app's ``wippy.llm:model_resolver`` gave instead of the registry's; the
service uses it as it uses a registry model's card (its first provider with its ``provider_model``,
``options`` and ``context`` such as keys and base URLs, its ``pricing`` for the cost, its
``dimensions`` for embed, its ``name`` on the answer and the call's record).

``constants()`` is the one source of the constant tables of ``wippy.llm:llm`` and
``wippy.llm:output``: they are the Python constants the service raises and streams with
(services/_llm_types.py), so Lua and Python cannot drift. ``bound`` answers from an index of the
registry's contract bindings rebuilt only when the registry changes, so a library asking for an
optional contract costs one dictionary lookup when nothing is bound.

Streaming sends each event to ``stream.reply_to`` as a message on ``stream.topic`` (default
``llm_response``) through the node's process runtime, as Wippy's llm streamer does: text is
buffered and sent once ``buffer_size`` characters (default 10) have gathered or the text ends a
sentence (``.``, ``!`` or ``?``), so a receiver gets phrases rather than single tokens; thinking
and tool calls go at once; ``done`` (or ``error``) comes last, after the buffered text.

Without an LLM service (a host made for a tool, say) the module still loads: ``constants`` and
``bound`` work, and every call answers ``nil, "no LLM service is available to this process"``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from wippy.core import CONTRACT_BINDING_KIND, CONTRACT_DEFINITION_KIND, WippyError, bound_contracts
from wippy.services._llm_types import (
    LUA_ERROR_TYPE,
    LUA_FINISH_REASON,
    LUA_OUTPUT_ERROR_TYPE,
    LlmError,
    error_kind,
)

from ._host import LuaHost, register_module
from ._mod_json import JsonValueError, _schema_shape, lua_to_json
from ._native_libs import native_contract
from ._process import _escape_keys

log = logging.getLogger("wippy.llm")

_SENTENCE_END = re.compile(r"[.!?]\s*$")
DEFAULT_TOPIC = "llm_response"
DEFAULT_BUFFER = 10
NO_SERVICE = "no LLM service is available to this process"

#: the kinds of stream message (Wippy's ``output.TYPE``): what a streaming receiver gets in ``type``
STREAM_TYPE = {"CONTENT": "chunk", "THINKING": "thinking", "TOOL_CALL": "tool_call", "ERROR": "error",
               "DONE": "done"}
_CHUNK, _THINKING, _TOOL_CALL = STREAM_TYPE["CONTENT"], STREAM_TYPE["THINKING"], STREAM_TYPE["TOOL_CALL"]
_LAST = (STREAM_TYPE["DONE"], STREAM_TYPE["ERROR"])


def constants() -> dict[str, Any]:
    """The constant tables of the ``wippy/llm`` libraries, by their Lua names, as fresh plain data."""
    return {
        "ERROR_TYPE": dict(LUA_ERROR_TYPE),
        "FINISH_REASON": dict(LUA_FINISH_REASON),
        "OUTPUT_ERROR_TYPE": dict(LUA_OUTPUT_ERROR_TYPE),
        "ERROR_KIND_MAP": {value: dict(zip(("kind", "retryable"), error_kind(value), strict=True))
                           for value in LUA_OUTPUT_ERROR_TYPE.values()},
        "STREAM_TYPE": dict(STREAM_TYPE),
    }


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
        if kind == _CHUNK:
            self._buffer += str(event.get("content") or "")
            if self._size > 0 and (len(self._buffer) >= self._size or _SENTENCE_END.search(self._buffer)):
                self._flush()
        elif kind == _THINKING:
            self._send({"type": _THINKING, "content": str(event.get("content") or "")})
        elif kind == _TOOL_CALL:
            self._send({"type": _TOOL_CALL, "name": event.get("name"), "arguments": event.get("arguments"),
                        "id": event.get("id")})
        elif kind in _LAST:
            self._flush()
            self._send(event)

    def _flush(self) -> None:
        if self._buffer:
            text, self._buffer = self._buffer, ""
            self._send({"type": _CHUNK, "content": text})

    def _send(self, payload: dict[str, Any]) -> None:
        try:
            self._processes.send(self._sender, self._to, self._topic, [_escape_keys(payload)])
        except WippyError as exc:  # the stream's reader went away or never was: the call still completes
            log.warning("llm stream to %s dropped a %s event: %s", self._to, payload.get("type"), exc)


def _message(exc: WippyError) -> str:
    return str(getattr(exc, "message", None) or exc)


class _Bindings:
    """The default binding of each contract whose definition the registry holds, rebuilt per registry state."""

    def __init__(self, registry: Any) -> None:
        self._registry = registry
        self._key: tuple[Any, int] | None = None
        self._defaults: dict[str, str] = {}

    def default(self, contract_id: str) -> str | None:
        current = self._registry.current()
        key = (getattr(self._registry, "version", None), id(current))
        if key != self._key or key[0] is None:
            self._defaults = self._index(current)
            self._key = key
        return self._defaults.get(contract_id)

    def _index(self, current: Mapping[str, Any]) -> dict[str, str]:
        defaults: dict[str, str] = {}
        for entry in sorted(current.values(), key=lambda e: e.id):  # several defaults: the first by id
            if entry.kind != CONTRACT_BINDING_KIND:
                continue
            for bc in bound_contracts(entry):
                if bc.default and bc.contract not in defaults:
                    defaults[bc.contract] = entry.id
        for contract_id, binding_id in list(defaults.items()):
            definition = current.get(contract_id) or native_contract(contract_id)
            if definition is None or definition.kind != CONTRACT_DEFINITION_KIND:
                _warn_undefined(contract_id, binding_id)
                del defaults[contract_id]
        return defaults


_warned: set[tuple[str, str]] = set()


def _warn_undefined(contract_id: str, binding_id: str) -> None:
    if (contract_id, binding_id) not in _warned:
        _warned.add((contract_id, binding_id))
        log.warning("binding %s implements contract %s, which no contract.definition entry declares; "
                    "it is not used", binding_id, contract_id)


class _Bridge:
    """The module's functions for one Lua host (each answers ``value`` or ``nil, error_string``)."""

    def __init__(self, host: LuaHost) -> None:
        self.host = host
        self.service = host.ctx.llm
        self.vm = host.vm
        self._to_python = lua_to_json(host)
        self._bindings = _Bindings(host.ctx.registry)

    def table(self) -> Any:
        vm = self.vm
        return vm.rt.table_from({
            "generate": vm.asyncify(self.generate),
            "structured_output": vm.asyncify(self.structured_output),
            "embed": vm.asyncify(self.embed),
            "status": vm.asyncify(self.status),
            "available_models": self.available_models,
            "get_classes": self.get_classes,
            "model_name": self.model_name,
            "constants": lambda: vm.to_lua(constants()),
            "bound": lambda contract_id=None: self._bindings.default(str(contract_id)),
        })

    # -- arguments -------------------------------------------------------------------------------
    def _data(self, value: Any, what: str) -> Any:
        try:
            return self._to_python(value)
        except JsonValueError as exc:
            raise _BadInput(f"{what}: {exc}") from exc

    def _options(self, opts: Any) -> dict[str, Any]:
        options: dict[str, Any] = self._data(opts, "options")
        if not isinstance(options, dict):
            raise _BadInput("options must be a table")
        tools = options.get("tools")
        if isinstance(tools, list):
            options["tools"] = [
                {**t, "schema": _schema_shape(t["schema"])} if isinstance(t, dict) and "schema" in t else t
                for t in tools
            ]
        return options

    def _stream(self, options: dict[str, Any]) -> ProcessStream | None:
        stream = options.pop("stream", None)
        if not isinstance(stream, dict) or not stream.get("reply_to"):
            return None
        processes = self.host.ctx.processes
        if processes is None:
            raise _BadInput("stream: there is no process runtime here to send the stream to")
        size = stream.get("buffer_size")
        buffer = int(size) if isinstance(size, int | float) and not isinstance(size, bool) else DEFAULT_BUFFER
        return ProcessStream(processes, str(self.host.current_pid()), str(stream["reply_to"]),
                             str(stream.get("topic") or DEFAULT_TOPIC), buffer)

    def _caller(self) -> str | None:
        pid = self.host.current_pid()
        return None if pid is None else str(pid)

    def _call(self, make: Callable[[Any], Any]) -> Any:
        """Run ``make(service)`` (which builds the service call) as a Pending; errors come back as strings."""
        if self.service is None:
            return None, NO_SERVICE
        try:
            awaitable = make(self.service)
        except _BadInput as exc:
            return None, str(exc)

        async def run() -> tuple[Any, ...]:
            try:
                return (await awaitable,)
            except WippyError as exc:
                return None, _message(exc)

        return self.vm.pending(run())

    # -- calls -----------------------------------------------------------------------------------
    def _card(self, card: Any) -> Any:
        return None if card is None else self._data(card, "model card")

    def generate(self, messages: Any = None, opts: Any = None, card: Any = None) -> Any:
        def make(service: Any) -> Any:
            options = self._options(opts)
            sink = self._stream(options)
            return service.generate(self._data(messages, "messages"), options, sink, caller=self._caller(),
                                    card=self._card(card))
        return self._call(make)

    def structured_output(self, schema: Any = None, messages: Any = None, opts: Any = None, card: Any = None) -> Any:
        def make(service: Any) -> Any:
            shaped = _schema_shape(self._data(schema, "schema"))
            return service.structured_output(shaped, self._data(messages, "messages"), self._options(opts),
                                             caller=self._caller(), card=self._card(card))
        return self._call(make)

    def embed(self, text: Any = None, opts: Any = None, card: Any = None) -> Any:
        return self._call(lambda service: service.embed(self._data(text, "input"), self._options(opts),
                                                        caller=self._caller(), card=self._card(card)))

    def status(self, opts: Any = None, card: Any = None) -> Any:
        return self._call(lambda service: service.status(self._options(opts), card=self._card(card)))

    # -- discovery -------------------------------------------------------------------------------
    def available_models(self, capability: Any = None) -> Any:
        if self.service is None:
            return None, NO_SERVICE
        return self.vm.to_lua(self.service.available_models(None if capability is None else str(capability)))

    def get_classes(self) -> Any:
        if self.service is None:
            return None, NO_SERVICE
        return self.vm.to_lua(self.service.get_classes())

    def model_name(self, model: Any = None) -> Any:
        if self.service is None or model is None:
            return None
        try:
            return self.service.catalog.resolve(str(model))["name"] or None
        except LlmError:
            return None


class _BadInput(Exception):
    """Lua passed data the service cannot take (a function in options, a sparse array, a bad model card)."""


register_module("llm_host", lambda host: _Bridge(host).table())
