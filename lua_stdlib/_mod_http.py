"""`http`: the request a handler serves and its response (the Lua side is lua/http.lua).

The node's HTTP server (services) runs each request's handler as a function call and puts an
*exchange* on the call's task; ``http.request()`` / ``http.response()`` find it there, so
functions the handler calls with ``funcs.call`` (same task) and coroutines it starts see the same
request. The exchange does the I/O (aiohttp); this module only converts values between Lua and it:

    exchange.info() -> (method, path, host, remote_addr, content_type, content_length, has_body)
    exchange.header(name) / request_headers() / query(name) / query_params() / param(name) / params()
    exchange.accepts(ct) / cookie(name)
    await exchange.body(max_body, timeout_s) -> bytes            (WippyError on failure)
    await exchange.read(n) -> bytes | None; exchange.open_stream(max_body) -> None
    await exchange.multipart(max_memory, max_body) -> {"values": {...}, "files": {field: [...]}}
                                       (a file: {name, size, headers, blob: index into exchange.blobs})
    exchange.set_status(code) / set_header(k, v) / set_transfer(mode) / set_cookie(dict) -> str | None
    exchange.write(bytes) -> awaitable | str | None  (an awaitable when the response is streaming)
    await exchange.flush(); await exchange.write_event(name, json_bytes)

A Python string error from a setter becomes an INVALID error; a WippyError raised while waiting
becomes an error of its kind.
"""

from __future__ import annotations

from typing import Any

import orjson

from wippy.core import WippyError

from ._binary import Raw, as_bytes, wrap
from ._host import LuaHost, register_module
from ._mod_json import JsonValueError, lua_to_json, no_big_ints
from ._vm import _source


def _build(host: LuaHost) -> Any:
    vm = host.vm
    to_python = lua_to_json(host)

    def invalid(message: str | None) -> Any:
        return None if message is None else vm.error("INVALID", message)

    def info(x: Any) -> Any:
        return vm.rt.table_from(x.info())

    def table(value: Any) -> Any:
        return vm.to_lua(value)

    def body(x: Any, max_body: Any = None, timeout_ms: Any = None) -> Any:
        async def read() -> tuple[Any, ...]:
            return await x.body(max_body, _seconds(timeout_ms)), None

        return vm.pending(read())

    def body_json(x: Any, max_body: Any = None, timeout_ms: Any = None) -> Any:
        async def read() -> tuple[Any, ...]:
            data = await x.body(max_body, _seconds(timeout_ms))
            if not data:
                return None, vm.error("INVALID", "request:body_json: the request has no body")
            try:
                value = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                return None, vm.error("INVALID", f"request:body_json: the body is not valid JSON: {exc}")
            try:
                return vm.to_lua(value), None
            except OverflowError:
                return vm.to_lua(no_big_ints(value)), None

        return vm.pending(read())

    def open_stream(x: Any, max_body: Any = None) -> Any:
        try:
            x.open_stream(max_body)
        except WippyError as exc:
            return None, vm.error(exc.kind, str(exc))
        return True, None

    def read(x: Any, n: Any = 0) -> Any:
        async def chunk() -> tuple[Any, ...]:
            return await x.read(int(n or 0)), None

        return vm.pending(chunk())

    def multipart(x: Any, max_memory: Any = None, max_body: Any = None) -> Any:
        async def parse() -> tuple[Any, ...]:
            form = await x.multipart(max_memory, max_body)
            return vm.to_lua(form), None

        return vm.pending(parse())

    def write(x: Any, data: Any) -> Any:
        raw = data.data if isinstance(data, Raw) else as_bytes(data)
        if raw is None:
            return vm.error("INVALID", "response:write: expected a string")
        return _outcome(x.write(raw))

    def write_json(x: Any, value: Any = None) -> Any:
        try:
            encoded = orjson.dumps(to_python(value))
        except JsonValueError as exc:
            return vm.error("INVALID", f"response:write_json: {exc}")
        return _outcome(x.write_json(encoded))

    def write_event(x: Any, name: str, data: Any) -> Any:
        try:
            encoded = data.encode() if isinstance(data, str) else orjson.dumps(to_python(data))
        except JsonValueError as exc:
            return vm.error("INVALID", f"response:write_event: {exc}")
        return _outcome(x.write_event(str(name), encoded))

    def flush(x: Any) -> Any:
        return _outcome(x.flush())

    def set_cookie(x: Any, cookie: Any) -> Any:
        return invalid(x.set_cookie(vm.from_lua(cookie)))

    def _outcome(result: Any) -> Any:
        """A setter's error message, or the wait for a streaming write."""
        if result is None:
            return None
        if not isinstance(result, str):
            async def wait() -> tuple[Any, ...]:
                await result
                return (None,)

            return vm.pending(wait())
        return invalid(result)

    bridge = vm.rt.table_from({
        "info": info,
        "header": lambda x, k: x.header(k), "headers": lambda x: table(x.request_headers()),
        "query": lambda x, k: x.query(k), "query_params": lambda x: table(x.query_params()),
        "param": lambda x, k: x.param(k), "params": lambda x: table(dict(x.params)),
        "accepts": lambda x, ct: x.accepts(ct), "cookie": lambda x, k: x.cookie(k),
        "body": vm.asyncify(body), "body_json": vm.asyncify(body_json), "open_stream": open_stream,
        "read": vm.asyncify(read), "multipart": vm.asyncify(multipart),
        # a file's content: returned (not put in a table), so bytes arrive as a Lua string
        "blob": lambda x, i: x.blobs[int(i)],
        "set_status": lambda x, code: invalid(x.set_status(code)),
        "set_header": lambda x, k, v: invalid(x.set_header(k, v)),
        "set_transfer": lambda x, mode: invalid(x.set_transfer(mode)),
        "set_cookie": set_cookie,
        "write": vm.asyncify(wrap(host, write)), "write_json": vm.asyncify(write_json),
        "write_event": vm.asyncify(write_event), "flush": vm.asyncify(flush),
    })
    return vm.rt.execute(_source("http.lua"), bridge, vm.errors, vm.S)


def _seconds(timeout_ms: Any) -> float | None:
    if isinstance(timeout_ms, int | float) and not isinstance(timeout_ms, bool) and timeout_ms > 0:
        return float(timeout_ms) / 1000.0
    return None


register_module("http", _build)
