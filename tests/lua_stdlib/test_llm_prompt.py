"""The native ``wippy.llm:prompt`` library (component ``wippy/llm``) on a real LuaHost.

Each test runs a function entry that imports the builder by its entry id and checks the messages it
builds in Wippy's wire format: every builder method, merging of consecutive messages, function
results carrying images, clone independence, and (hypothesis) arbitrary sequences of turns against a
model of the merge rule.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from wippy.core import native_components

from .helpers import fn, run_entry

PROMPT = {"prompt": "wippy.llm:prompt"}


async def run_prompt(body: str, *args: Any) -> Any:
    """Run ``body`` (Lua, with ``prompt`` and ``json`` in scope, ``...`` = args) and return its value."""
    source = 'local prompt = require("prompt")\nlocal json = require("json")\nreturn { call = function(...)\n' + \
        textwrap.indent(textwrap.dedent(body), "    ") + "\nend }\n"
    ok, results = await run_entry(fn("app:t", source, imports=PROMPT, modules=["json"]), args=args)
    assert ok, results
    return results[0] if results else None


def text(s: str) -> dict[str, Any]:
    return {"type": "text", "text": s}


def test_the_component_is_native() -> None:
    assert "wippy/llm" in native_components()


async def test_constants_and_parts() -> None:
    got = await run_prompt("""
        return { role = prompt.ROLE, ct = prompt.CONTENT_TYPE, t = prompt.text("hi"),
                 url = prompt.image("http://x/a.png", "image/png"), url2 = prompt.image("http://x/b.png"),
                 b64 = prompt.image_base64("image/jpeg", "QUJD"),
                 doc = prompt.document_base64("application/pdf", "UEQ=") }
    """)
    assert got["role"] == {"SYSTEM": "system", "USER": "user", "ASSISTANT": "assistant", "DEVELOPER": "developer",
                           "FUNCTION_CALL": "function_call", "FUNCTION_RESULT": "function_result",
                           "CACHE_MARKER": "cache_marker"}
    assert got["ct"] == {"TEXT": "text", "IMAGE": "image", "DOCUMENT": "document"}
    assert got["t"] == text("hi")
    assert got["url"] == {"type": "image", "source": {"type": "url", "url": "http://x/a.png", "mime_type": "image/png"}}
    assert got["url2"] == {"type": "image", "source": {"type": "url", "url": "http://x/b.png"}}
    assert got["b64"] == {"type": "image", "source": {"type": "base64", "mime_type": "image/jpeg", "data": "QUJD"}}
    assert got["doc"] == {"type": "document",
                          "source": {"type": "base64", "mime_type": "application/pdf", "data": "UEQ="}}


async def test_role_methods_chain_and_carry_meta() -> None:
    got = await run_prompt("""
        local p = prompt.new()
        local same = p:add_system("be brief", { tag = "s" }) == p
        p:add_user("question", { id = 1 }):add_assistant("answer"):add_developer("tip")
        return { same = same, messages = p:get_messages() }
    """)
    assert got["same"] is True
    assert got["messages"] == [
        {"role": "system", "content": [text("be brief")], "metadata": {"tag": "s"}},
        {"role": "user", "content": [text("question")], "metadata": {"id": 1}},
        {"role": "assistant", "content": [text("answer")]},
        {"role": "developer", "content": [text("tip")]},
    ]


async def test_consecutive_messages_of_a_role_merge() -> None:
    got = await run_prompt("""
        local p = prompt.new()
        p:add_user("one", { first = true }):add_user("two", { second = true })
        p:add_message(prompt.ROLE.USER, { prompt.image("http://x/i.png") })
        p:add_message(prompt.ROLE.USER, { prompt.text("three") })
        p:add_assistant("a"):add_message("assistant", { prompt.text("b") }, "bot")
        p:add_message("assistant", { prompt.text("c") }, "bot")
        p:add_message("assistant", { prompt.text("d") }, "other")
        return p:get_messages()
    """)
    assert got == [
        {"role": "user", "metadata": {"first": True},
         "content": [text("one\n\ntwo"), {"type": "image", "source": {"type": "url", "url": "http://x/i.png"}},
                     text("three")]},
        {"role": "assistant", "content": [text("a")]},
        {"role": "assistant", "content": [text("b\n\nc")], "name": "bot"},  # a name must match to merge
        {"role": "assistant", "content": [text("d")], "name": "other"},
    ]


async def test_empty_text_and_empty_parts() -> None:
    got = await run_prompt("""
        local p = prompt.new():add_system(""):add_developer(""):add_message("user", {})
        local empty = #p:get_messages()
        p:add_user("")
        return { empty = empty, messages = p:get_messages() }
    """)
    assert got == {"empty": 0, "messages": [{"role": "user", "content": [text("")]}]}


async def test_function_calls_results_and_markers() -> None:
    got = await run_prompt("""
        local p = prompt.new()
        p:add_function_call("search", '{"q":"x"}', "call_1", { provider_metadata = { sig = "abc" } })
        p:add_function_result("search", "found", "call_1")
        p:add_function_call("calc", { a = 1 })
        p:add_function_result("calc", { sum = 3 })
        p:add_function_call("nothing", nil):add_function_result("nothing", nil)
        p:add_cache_marker():add_cache_marker("m2")
        return p:build()
    """)
    msgs = got["messages"]
    assert msgs[0] == {"role": "function_call", "content": {},  # an empty Lua table
                       "function_call": {"name": "search", "arguments": '{"q":"x"}', "id": "call_1",
                                         "provider_metadata": {"sig": "abc"}}}
    assert msgs[1] == {"role": "function_result", "name": "search", "content": [text("found")],
                       "function_call_id": "call_1"}
    assert msgs[2] == {"role": "function_call", "content": {}, "function_call": {"name": "calc", "arguments": {"a": 1}}}
    assert msgs[3]["role"] == "function_result" and "function_call_id" not in msgs[3]
    assert json.loads(msgs[3]["content"][0]["text"]) == {"sum": 3}  # a table result goes out as JSON text
    assert msgs[4:] == [{"role": "cache_marker", "marker_id": "default"}, {"role": "cache_marker", "marker_id": "m2"}]
    assert len(msgs) == 6


async def test_images_in_function_results_follow_the_run_of_calls() -> None:
    got = await run_prompt("""
        local p = prompt.new():add_user("look")
        p:add_function_call("shot", "{}", "c1")
        local shot = json.encode({ result = "took it", _images = { { url = "http://x/1.png" } } })
        p:add_function_result("shot", shot, "c1")
        p:add_function_call("shot", "{}", "c2")
        p:add_function_result("shot", { result = 7, _images = {
            { type = "image", source = { type = "base64", mime_type = "image/png", data = "AAA" } },
            "ignored" } }, "c2")
        p:add_assistant("seen")
        return p:get_messages()
    """)
    roles = [m["role"] for m in got]
    assert roles == ["user", "function_call", "function_result", "function_call", "function_result", "user",
                     "assistant"]
    assert json.loads(got[2]["content"][0]["text"]) == {"result": "took it (see image results below)"}
    assert json.loads(got[4]["content"][0]["text"]) == {"result": 7}  # not a string: no note added
    assert got[5]["content"] == [
        {"type": "image", "source": {"type": "url", "url": "http://x/1.png"}},
        {"type": "image", "source": {"type": "base64", "mime_type": "image/png", "data": "AAA"}},
    ]


async def test_results_without_images_are_untouched() -> None:
    got = await run_prompt("""
        local p = prompt.new()
        p:add_function_result("f", '{"_images": "not json', "c")
        p:add_function_result("g", '{"result": 1}', "d")
        return p:get_messages()
    """)
    assert [m["content"][0]["text"] for m in got] == ['{"_images": "not json', '{"result": 1}']


async def test_build_new_with_system_and_clear() -> None:
    got = await run_prompt("""
        local given = { { role = "user", content = { prompt.text("hi") } } }
        local p = prompt.new(given)
        p:add_user("again")
        local ws = prompt.with_system("rules")
        local none = prompt.with_system("")
        local built = ws:build()
        local cleared = ws:clear() == ws
        return { shared = p.messages == given, n = #given, merged = given[1].content[1].text,
                 built = built, ws_after = #ws:get_messages(), none = #none:get_messages(), cleared = cleared }
    """)
    assert got["shared"] is True and got["n"] == 1 and got["merged"] == "hi\n\nagain"
    assert got["built"] == {"messages": [{"role": "system", "content": [text("rules")]}]}
    assert got["ws_after"] == 0 and got["none"] == 0 and got["cleared"] is True


async def test_clone_is_independent() -> None:
    got = await run_prompt("""
        local base = prompt.new():add_system("sys", { tags = { a = 1 } })
        base:add_function_call("f", "{}", "c1"):add_cache_marker("m")
        base:add_message("user", { prompt.image("http://x/a.png") }, "ann")
        local copy = base:clone()
        copy:add_user("only in the copy")
        copy.messages[1].content[1].text = "changed"
        copy.messages[1].metadata.tags.a = 2
        copy.messages[2].function_call.name = "g"
        copy.messages[4].content[1].source.url = "http://x/b.png"
        base:add_assistant("only in the base")
        return { base = base:get_messages(), copy = copy:get_messages() }
    """)
    base, copy = got["base"], got["copy"]
    assert base[0] == {"role": "system", "content": [text("sys")], "metadata": {"tags": {"a": 1}}}
    assert base[1]["function_call"]["name"] == "f"
    assert base[2] == {"role": "cache_marker", "marker_id": "m"}
    assert base[3] == {"role": "user", "name": "ann",
                       "content": [{"type": "image", "source": {"type": "url", "url": "http://x/a.png"}}]}
    assert base[4]["role"] == "assistant" and len(base) == 5
    assert copy[0]["content"] == [text("changed")] and copy[0]["metadata"] == {"tags": {"a": 2}}
    assert copy[1]["function_call"] == {"name": "g", "arguments": "{}", "id": "c1"}
    # the user turn joins the named user message before it (no name given: no name to differ)
    assert copy[3]["content"] == [{"type": "image", "source": {"type": "url", "url": "http://x/b.png"}},
                                  text("only in the copy")]
    assert len(copy) == 4


# -- any sequence of turns --------------------------------------------------------------------------

_ROLES = ("system", "user", "assistant", "developer")
_turns = st.lists(st.tuples(st.sampled_from(_ROLES), st.text(alphabet="abc \n", max_size=6)), max_size=12)


def expected(turns: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The merge rule: a turn joins the previous message of its role; system/developer skip empty text."""
    out: list[dict[str, Any]] = []
    for role, s in turns:
        if role in ("system", "developer") and not s:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"][0]["text"] += "\n\n" + s
        else:
            out.append({"role": role, "content": [text(s)]})
    return out


@settings(max_examples=40, deadline=None)
@given(_turns)
async def test_any_sequence_of_turns_merges_by_role(turns: list[tuple[str, str]]) -> None:
    got = await run_prompt("""
        local turns = json.decode(...)
        local p = prompt.new()
        for _, t in ipairs(turns) do p["add_" .. t[1]](p, t[2]) end
        local clone = p:clone()
        return { messages = p:get_messages(), clone = clone:build().messages }
    """, json.dumps([list(t) for t in turns]))
    messages = got["messages"] or []  # an empty Lua table reads back as {}
    assert messages == expected(turns)
    assert (got["clone"] or []) == messages
