"""The native ``wippy.llm:output`` library (component ``wippy/llm``) in processes of a real node.

Covered: its constants (the same Python constants the LLM service uses, and the values Wippy's
output module has), the chunk builders, ``wrap``, ``usage`` and truncation detection, streamers
sending every chunk kind to another real process, buffering (a property over chunk splits and
buffer sizes, checked against the service's own stream buffering to the same kind of receiver),
and the structured error builders with their kind/retryable mapping. The library also loads in a
host with no LLM service.
"""

from __future__ import annotations

import asyncio
import re
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.lua_stdlib.helpers import Entries, fn, run_entry
from wippy.core import Changeset, Entry, Op
from wippy.lua_stdlib._mod_llm_host import ProcessStream
from wippy.services import Node, RuntimeSettings, StateDir
from wippy.services._llm_types import LUA_ERROR_TYPE, LUA_FINISH_REASON, LUA_OUTPUT_ERROR_TYPE, error_kind

from .conftest import HOSTS, lua

IMPORTS = {"output": "wippy.llm:output", "llm": "wippy.llm:llm"}

#: Wippy's output module's error types and their errors kinds, as its output.lua spells them
WIPPY_OUTPUT_ERROR_TYPE = {
    "INVALID_REQUEST": "invalid_request", "AUTHENTICATION": "authentication_error",
    "RATE_LIMIT": "rate_limit_exceeded", "SERVER_ERROR": "server_error",
    "CONTEXT_LENGTH": "context_length_exceeded", "CONTENT_FILTER": "content_filtered",
    "TIMEOUT": "timeout_error", "MODEL_ERROR": "model_error", "NETWORK_ERROR": "network_error",
}
WIPPY_KINDS = {
    "rate_limit_exceeded": ("RATE_LIMITED", True), "server_error": ("UNAVAILABLE", True),
    "timeout_error": ("TIMEOUT", True), "network_error": ("UNAVAILABLE", True),
    "invalid_request": ("INVALID", False), "authentication_error": ("PERMISSION_DENIED", False),
    "model_error": ("NOT_FOUND", False), "context_length_exceeded": ("INVALID", False),
    "content_filtered": ("INVALID", False),
}


@pytest.fixture
async def node(nats_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[Node]:
    settings_ = RuntimeSettings(state_dir=tmp_path / "state", nats_url=nats_url, namespace=namespace, node="n1")
    state = StateDir(settings_.state_dir)
    assert state.try_own()
    try:
        async with Node(settings_, state) as n:
            await n.registry.apply(Changeset(ops=tuple(Op("create", e.id, e) for e in HOSTS)))
            yield n
    finally:
        state.release()


def proc(name: str, body: str) -> Entry:
    """A process whose ``main(...)`` is ``body``, with output and llm imported."""
    source = ('local output = require("output")\nlocal llm = require("llm")\nlocal time = require("time")\n'
              "return { main = function(...)\n" + textwrap.dedent(body) + "\nend }\n")
    return lua(name, source, imports=IMPORTS, modules=["time"])


async def apply(node: Node, *entries: Entry) -> None:
    ops = tuple(Op("update" if node.registry.get(e.id) else "create", e.id, e) for e in entries)
    await node.registry.apply(Changeset(ops=ops))


def processes(node: Node) -> Any:
    assert node.processes is not None
    return node.processes


async def run(node: Node, entry: Entry, *args: Any) -> Any:
    await apply(node, entry)
    pid = processes(node).spawn(None, entry.id, "app:procs", {}, list(args))
    value, err = await asyncio.wait_for(processes(node).wait(pid), 20)
    assert err is None, err
    return value


#: collects what arrives on a topic until a "done" chunk (or 5 s of silence) and returns it
RECEIVER = proc("app:receiver", """
    local topic = ...
    local ch = process.listen(topic)
    local got = {}
    while true do
        local r = channel.select { ch:case_receive(), time.after("5s"):case_receive() }
        if r.channel ~= ch then return { got = got, timed_out = true } end
        got[#got + 1] = r.value
        if r.value.type == "done" then return { got = got } end
    end
""")


# -- constants ----------------------------------------------------------------------------------------

async def test_constants_are_the_services_and_wippys(node: Node) -> None:
    got = await run(node, proc("app:consts", """
        local kinds = {}
        for t, m in pairs(output.ERROR_KIND_MAP) do kinds[t] = { m.kind, m.retryable } end
        return { type = output.TYPE, error_type = output.ERROR_TYPE, finish = output.FINISH_REASON, kinds = kinds,
                 llm_error_type = llm.ERROR_TYPE, llm_finish = llm.FINISH_REASON,
                 errors_kinds = { errors.RATE_LIMITED, errors.UNAVAILABLE, errors.INVALID } }
    """))
    assert got["type"] == {"CONTENT": "chunk", "TOOL_CALL": "tool_call", "ERROR": "error", "THINKING": "thinking",
                           "DONE": "done"}
    assert got["error_type"] == LUA_OUTPUT_ERROR_TYPE == WIPPY_OUTPUT_ERROR_TYPE
    assert got["llm_error_type"] == LUA_ERROR_TYPE
    assert got["finish"] == got["llm_finish"] == LUA_FINISH_REASON == {
        "STOP": "stop", "LENGTH": "length", "CONTENT_FILTER": "filtered", "TOOL_CALL": "tool_call", "ERROR": "error"}
    assert {t: tuple(k) for t, k in got["kinds"].items()} == WIPPY_KINDS
    assert all(error_kind(t) == k for t, k in WIPPY_KINDS.items())  # the service's LlmError agrees
    assert got["errors_kinds"] == ["RATE_LIMITED", "UNAVAILABLE", "INVALID"]  # kinds are errors' own names


async def test_each_library_gets_its_own_copy_of_the_constants(node: Node) -> None:
    got = await run(node, proc("app:mutate", """
        output.FINISH_REASON.STOP = "changed"
        return { llm = llm.FINISH_REASON.STOP }
    """))
    assert got == {"llm": "stop"}


# -- chunk builders -------------------------------------------------------------------------------------

async def test_chunk_builders_wrap_usage_and_truncation(node: Node) -> None:
    got = await run(node, proc("app:builders", """
        local usage = output.usage(100, 50, 25)
        local R, one = output.FINISH_REASON, { { id = "1" } }
        local tc_args = '{"location":"London"}'
        return {
            content = output.content("Hello world"),
            err = output.error(output.ERROR_TYPE.INVALID_REQUEST, "Bad request", 400),
            err_default = output.error(nil, nil),
            tc = output.tool_call("get_weather", tc_args, "call_123"),
            thinking = output.thinking("Analyzing data..."),
            done = output.done(), done_meta = output.done({ finish_reason = "stop" }),
            usage = usage, usage_zero = output.usage(),
            w_content = output.wrap(output.TYPE.CONTENT, "Hello world", usage),
            w_tc = output.wrap(output.TYPE.TOOL_CALL, { name = "get_weather", arguments = tc_args, id = "c1" }),
            w_tc_raw = output.wrap(output.TYPE.TOOL_CALL, "{}"),
            w_err = output.wrap(output.TYPE.ERROR, { type = "server_error", message = "Internal error", code = 500 }),
            w_thinking = output.wrap(output.TYPE.THINKING, "hm"),
            w_done = output.wrap(output.TYPE.DONE, { model = "m" }),
            w_other = output.wrap("custom", "ignored"),
            trunc = {
                output.detect_truncation({ finish_reason = R.LENGTH, tool_calls = one }),
                output.detect_truncation({ finish_reason = R.LENGTH, tool_calls = {} }),
                output.detect_truncation({ finish_reason = R.STOP, tool_calls = one }),
                output.detect_truncation({ finish_reason = R.TOOL_CALL, tool_calls = one }),
                output.detect_truncation(nil),
                output.detect_truncation({ finish_reason = R.LENGTH }),
            },
            truncation_msg = output.TRUNCATION_MSG,
        }
    """))
    assert got["content"] == {"type": "chunk", "content": "Hello world"}
    assert got["err"] == {"type": "error", "error": {"type": "invalid_request", "message": "Bad request", "code": 400}}
    assert got["err_default"] == {"type": "error", "error": {"type": "server_error", "message": "Unknown error"}}
    assert got["tc"] == {"type": "tool_call", "name": "get_weather", "arguments": '{"location":"London"}',
                         "id": "call_123"}
    assert got["thinking"] == {"type": "thinking", "content": "Analyzing data..."}
    assert got["done"]["type"] == "done" and not got["done"].get("meta")
    assert got["done_meta"] == {"type": "done", "meta": {"finish_reason": "stop"}}
    usage = {"prompt_tokens": 100, "completion_tokens": 50, "thinking_tokens": 25, "cache_write_tokens": 0,
             "cache_read_tokens": 0, "total_tokens": 175}
    assert got["usage"] == usage
    assert got["usage_zero"]["total_tokens"] == 0
    assert got["w_content"] == {"type": "chunk", "content": "Hello world", "usage": usage}
    assert got["w_tc"] == {"type": "tool_call", "name": "get_weather", "arguments": '{"location":"London"}', "id": "c1"}
    assert got["w_tc_raw"] == {"type": "tool_call", "name": "unknown", "arguments": "{}"}
    assert got["w_err"] == {"type": "error", "error": {"type": "server_error", "message": "Internal error",
                                                       "code": 500}}
    assert got["w_thinking"] == {"type": "thinking", "content": "hm"}
    assert got["w_done"] == {"type": "done", "meta": {"model": "m"}}
    assert got["w_other"] == {"type": "custom"}
    assert got["trunc"] == [True, False, False, False, False, False]
    assert len(got["truncation_msg"]) > 40


# -- streamers ----------------------------------------------------------------------------------------------

async def test_a_streamer_sends_every_kind_to_another_process(node: Node) -> None:
    await apply(node, RECEIVER)
    receiver = processes(node).spawn(None, RECEIVER.id, "app:procs", {}, ["answers"])
    received = processes(node).wait(receiver)
    sent = await run(node, proc("app:sender", """
        local to = ...
        local s = assert(output.streamer(to, "answers", 20))
        local oks = {
            s:send_thinking("Analyzing..."),
            s:send_content("Hello world"),
            s:send_tool_call("get_weather", '{"location":"London"}', "call_123"),
            s:send_error(output.ERROR_TYPE.RATE_LIMIT, "Too many requests", 429),
            s:send_done({ finish_reason = "stop", model = "m" }),
        }
        local nopid, err = output.streamer(nil)
        local defaults = assert(output.streamer(to))
        return { oks = oks, fields = { s.pid, s.topic, s.buffer_size, s.buffer }, nopid = nopid == nil, err = err,
                 defaults = { defaults.topic, defaults.buffer_size } }
    """), receiver)
    assert sent["oks"] == [True] * 5
    assert sent["fields"] == [receiver, "answers", 20, ""]
    assert sent["nopid"] is True and sent["err"] == "PID is required for streamer"
    assert sent["defaults"] == ["llm_response", 10]
    value, err = await asyncio.wait_for(received, 20)
    assert err is None and not value.get("timed_out")
    assert value["got"] == [
        {"type": "thinking", "content": "Analyzing..."},
        {"type": "chunk", "content": "Hello world"},
        {"type": "tool_call", "name": "get_weather", "arguments": '{"location":"London"}', "id": "call_123"},
        {"type": "error", "error": {"type": "rate_limit_exceeded", "message": "Too many requests", "code": 429}},
        {"type": "done", "meta": {"finish_reason": "stop", "model": "m"}},
    ]


async def test_buffer_content_sends_on_a_sentence_end_and_flush_sends_the_rest(node: Node) -> None:
    got = await run(node, proc("app:buffering", """
        local s = assert(output.streamer(process.pid(), "mine"))
        local ch = process.listen("mine")
        local steps = { s:buffer_content("Hello"), s:buffer_content(" world."), s.buffer,
                        s:flush(), s:buffer_content("abc"), s.buffer, s:flush(), s:flush() }
        local got = {}
        for _ = 1, 2 do got[#got + 1] = ch:receive().content end
        return { steps = steps, got = got }
    """))
    assert got == {"steps": [False, True, "", False, False, "abc", True, False], "got": ["Hello world.", "abc"]}


_SENTENCE = re.compile(r"[.!?][ \n]*$")


def buffered(pieces: list[str], size: int) -> list[str]:
    """Wippy's buffering rule, as a plain fold: send once ``size`` bytes gathered or a sentence ended."""
    out, buf = [], ""
    for piece in pieces:
        buf += piece
        if size > 0 and (len(buf.encode()) >= size or _SENTENCE.search(buf)):
            out.append(buf)
            buf = ""
    if buf:
        out.append(buf)
    return out


LUA_STREAMER = proc("app:lua_streamer", """
    local to, size, pieces = ...
    local s = assert(output.streamer(to, "buffered", size))
    local sent = {}
    for _, p in ipairs(pieces) do sent[#sent + 1] = s:buffer_content(p) end
    local flushed = s:flush()
    s:send_done()
    return { sent = sent, flushed = flushed }
""")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(st.text(alphabet="ab .!?\n", max_size=8), max_size=8), size=st.integers(-1, 16))
async def test_buffering_is_wippys_rule_and_the_services(node: Node, pieces: list[str], size: int) -> None:
    """Any chunk split and buffer size: the Lua streamer and the service's stream (the Python side that
    streams llm.generate) deliver the same chunks to a real process, and they are Wippy's rule's."""
    await apply(node, RECEIVER, LUA_STREAMER)
    expected = buffered(pieces, size)
    lua_receiver = processes(node).spawn(None, RECEIVER.id, "app:procs", {}, ["buffered"])
    service_receiver = processes(node).spawn(None, RECEIVER.id, "app:procs", {}, ["buffered"])
    received = [processes(node).wait(lua_receiver), processes(node).wait(service_receiver)]
    report = await run(node, LUA_STREAMER, lua_receiver, size, pieces)
    sent = report.get("sent") or []
    assert sum(sent) + int(report["flushed"]) == len(expected)
    stream = ProcessStream(processes(node), None, service_receiver, "buffered", size)
    for piece in pieces:
        await stream({"type": "chunk", "content": piece})
    await stream({"type": "done", "meta": {}})
    for waiting in received:
        value, err = await asyncio.wait_for(waiting, 20)
        assert err is None and not value.get("timed_out")
        assert [c["content"] for c in value["got"][:-1]] == expected
        assert value["got"][-1]["type"] == "done"


# -- structured errors --------------------------------------------------------------------------------------

ERRORS = proc("app:errors", """
    local results = {}
    local function shape(e)
        return { kind = e:kind(), retryable = e:retryable(), message = e:message(), details = e:details() }
    end
    for name, t in pairs(output.ERROR_TYPE) do
        results[t] = shape(output.errors.embed({ model = "m1", _provider_id = "p1" }):kind(t):message(name):build())
    end
    local classify = function(http_err)
        return output.ERROR_TYPE.RATE_LIMIT, "slow down: " .. tostring(http_err and http_err.status),
               { status = http_err and http_err.status, from_classifier = true }
    end
    local b = output.errors.generate({ model = "gpt", _provider_id = "wippy.llm.openai:provider" }):classifier(classify)
    local classified = shape(b:from({ status = 429 }):build())
    local overridden = shape(b:from({ status = 500 }):kind(output.ERROR_TYPE.AUTHENTICATION):message("mine")
                             :details({ status = 401, extra = 1 }):build())
    local reused = shape(b:build())                       -- state was reset: no classifier call without :from
    local from_nil = shape(b:from(nil):build())           -- :from(nil) still asks the classifier
    local unknown = shape(output.errors.status():kind("no_such_type"):build())
    local contract = shape(output.errors.structured_output({ model = "x" }):with_contract({ model = "y" }):build())
    return { results = results, classified = classified, overridden = overridden, reused = reused,
             from_nil = from_nil, unknown = unknown, contract = contract,
             is_error = errors.is(b:build(), errors.UNAVAILABLE) }
""")


async def test_error_builders_map_types_to_kinds_and_merge_details(node: Node) -> None:
    got = await run(node, ERRORS)
    assert set(got["results"]) == set(WIPPY_KINDS)
    for err_type, result in got["results"].items():
        assert (result["kind"], result["retryable"]) == WIPPY_KINDS[err_type]
        assert result["details"] == {"provider": "p1", "operation": "embed", "model": "m1"}
    assert got["classified"] == {
        "kind": "RATE_LIMITED", "retryable": True, "message": "slow down: 429",
        "details": {"status": 429, "from_classifier": True, "provider": "wippy.llm.openai:provider",
                    "operation": "generate", "model": "gpt"}}
    assert got["overridden"]["kind"] == "PERMISSION_DENIED" and got["overridden"]["message"] == "mine"
    assert got["overridden"]["details"]["status"] == 401 and got["overridden"]["details"]["from_classifier"] is True
    assert got["reused"] == {"kind": "UNAVAILABLE", "retryable": True, "message": "LLM error",
                             "details": {"provider": "wippy.llm.openai:provider", "operation": "generate",
                                         "model": "gpt"}}
    assert got["from_nil"]["message"] == "slow down: nil" and got["from_nil"]["kind"] == "RATE_LIMITED"
    assert got["unknown"]["kind"] == "UNKNOWN" and got["unknown"]["retryable"] is False
    assert got["unknown"]["details"] == {"operation": "status"}
    assert got["contract"]["details"]["model"] == "y"
    assert got["is_error"] is True


# -- without an LLM service -----------------------------------------------------------------------------------

async def test_the_libraries_load_in_a_host_without_an_llm_service() -> None:
    entry = fn("app:no_llm", """
        local output, llm = require("output"), require("llm")
        return { call = function()
            local resp, err = llm.generate("hi", { model = "m" })
            return { chunk = output.content("x").type, rate = llm.ERROR_TYPE.RATE_LIMIT, resp = resp, err = err }
        end }
    """, imports=IMPORTS)
    ok, results = await run_entry(entry, registry=Entries(entry))
    assert ok, results
    assert results[0] == {"chunk": "chunk", "rate": "rate_limit_exceeded",
                          "err": "no LLM service is available to this process"}
