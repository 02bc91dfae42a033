"""The optional contracts ``wippy.llm:llm`` consults, bound by an app on a real node.

``wippy.llm:usage_tracker`` gets each successful call's usage (model name and token counts, as
Wippy's library passes them) and its id becomes ``usage_record``; a failing tracker never fails
the call. ``wippy.llm:model_resolver`` is asked first and its card redirects a model to another
provider model; a nil card, an error or a failure leaves resolution to the registry. With
nothing bound (or a binding whose contract no definition declares) nothing changes. Model calls
go through the real SDKs to the fake vendor server (tests/llm_fake.py).
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.llm_fake import FakeLlm, llm_fake_fixture, reply  # noqa: F401 - fixture
from wippy.core import Changeset, Entry, Op
from wippy.services import Node, RuntimeSettings, StateDir
from wippy.services._llm_providers import aclose_all

from .conftest import HOSTS, lua
from .test_llm_service import MODELS, OPENAI

TRACKER_CONTRACT = Entry("wippy.llm:usage_tracker", "contract.definition", {},
                         {"methods": [{"name": "track_usage"}]})
RESOLVER_CONTRACT = Entry("wippy.llm:model_resolver", "contract.definition", {},
                          {"methods": [{"name": "resolve"}]})


def function(name: str, body: str) -> Entry:
    return Entry(name, "function.lua", {}, {"source": textwrap.dedent(body), "method": "call", "modules": ["json"]})


def binding(name: str, contract: str, method: str, function_id: str) -> Entry:
    return Entry(name, "contract.binding", {}, {"contracts": [
        {"contract": contract, "default": True, "methods": {method: function_id}}]})


#: a tracker whose usage id is the JSON of what it was given
TRACK = function("app:track", """
    local json = require("json")
    return { call = function(model, prompt, completion, thinking, cache_read, cache_write, options)
        return json.encode({ model = model, tokens = { prompt, completion, thinking, cache_read, cache_write },
                             metadata = options and options.metadata })
    end }
""")
TRACKER = binding("app:usage", "wippy.llm:usage_tracker", "track_usage", "app:track")

#: "alias" is redirected to another provider model; "broken" errors; "raises" raises; the rest declined
RESOLVE = function("app:resolve", f"""
    return {{ call = function(args)
        if args.model == "alias" then
            return {{ id = "custom:alias", name = "custom-alias", dimensions = 5, providers = {{
                {{ id = "{OPENAI}", provider_model = "fake-redirected", options = {{ temperature = 0.1 }},
                   context = {{ timeout = 30 }} }} }} }}
        elseif args.model == "no-providers" then
            return {{ id = "custom:bad", name = "custom-bad" }}
        elseif args.model == "with-key" then
            return {{ id = "custom:k", name = "k", providers = {{
                {{ id = "{OPENAI}", provider_model = "x", context = {{ api_key = "sk-profile" }} }} }} }}
        elseif args.model == "broken" then
            return nil, "resolver backend unavailable"
        elseif args.model == "raises" then
            error("resolver crashed")
        end
        return nil
    end }}
""")
RESOLVER = binding("app:resolver", "wippy.llm:model_resolver", "resolve", "app:resolve")


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    await aclose_all()  # SDK clients are shared per process and bound to this test's event loop


@pytest.fixture
async def node(nats_url: str, namespace: str, tmp_path: Path, llm_fake: FakeLlm) -> AsyncIterator[Node]:
    settings_ = RuntimeSettings(state_dir=tmp_path / "state", nats_url=nats_url, namespace=namespace, node="n1",
                                environ={"OPENAI_API_KEY": "sk-shell", "OPENAI_BASE_URL": llm_fake.openai_url})
    state = StateDir(settings_.state_dir)
    assert state.try_own()
    try:
        async with Node(settings_, state) as n:
            await apply(n, *HOSTS, *MODELS)
            yield n
    finally:
        state.release()


async def apply(node: Node, *entries: Entry) -> None:
    ops = tuple(Op("update" if node.registry.get(e.id) else "create", e.id, e) for e in entries)
    await node.registry.apply(Changeset(ops=ops))


async def run_lua(node: Node, body: str, *args: Any) -> Any:
    source = 'local llm = require("llm")\nreturn { main = function(...)\n' + textwrap.dedent(body) + "\nend }\n"
    entry = lua("app:caller", source, imports={"llm": "wippy.llm:llm"})
    await apply(node, entry)
    assert node.processes is not None
    pid = node.processes.spawn(None, entry.id, "app:procs", {}, list(args))
    value, err = await asyncio.wait_for(node.processes.wait(pid), 30)
    assert err is None, err
    return value


CALLS = """
    local gen, gen_err = llm.generate("hello", { model = "class:fast", metadata = { source = "test" } })
    local so, so_err = llm.structured_output({ type = "object", properties = { ok = { type = "boolean" } },
        required = { "ok" }, additionalProperties = false }, "judge", { model = "mini" })
    local emb, emb_err = llm.embed("text", { model = "embedder" })
    local direct, direct_err = llm.generate("direct", { model = "raw-model", provider_id = "$OPENAI" })
    local function usage(r) return r and r.usage_record and r.usage_record.usage_id end
    return { errs = { gen = gen_err, so = so_err, emb = emb_err, direct = direct_err }, result = gen and gen.result,
             usage = { gen = usage(gen), so = usage(so), emb = usage(emb), direct = usage(direct) } }
""".replace("$OPENAI", OPENAI)


@pytest.mark.parametrize("declared", [True, False], ids=["app-declares-the-contract", "runtime-declares-it"])
async def test_a_bound_usage_tracker_gets_each_calls_usage(node: Node, llm_fake: FakeLlm, declared: bool) -> None:
    """The app may declare the contract itself (as a vendored wippy/llm does) or rely on the runtime's
    declaration of it (a binding from Wippy's wippy/usage component, with no definition in the app)."""
    await apply(node, *((TRACKER_CONTRACT,) if declared else ()), TRACK, TRACKER)
    llm_fake.queue(reply("hi", prompt_tokens=40, completion_tokens=9, reasoning_tokens=3, cache_read_tokens=30),
                   reply('{"ok": true}'))
    got = await run_lua(node, CALLS)
    assert got.get("errs") in (None, [])
    assert got["result"] == "hi"
    gen, so, emb, direct = (json.loads(got["usage"][k]) for k in ("gen", "so", "emb", "direct"))
    # the resolved model's name (class:fast is "mini"), prompt/completion/thinking/cache read/cache write
    assert gen == {"model": "mini", "tokens": [40, 9, 3, 30, 0], "metadata": {"source": "test"}}
    assert so == {"model": "mini", "tokens": [11, 7, 0, 0, 0]}
    assert emb["model"] == "embedder" and emb["tokens"][0] > 0 and emb["tokens"][1:] == [0, 0, 0, 0]
    assert direct["model"] == "raw-model"  # a provider_id call: the model as given


@pytest.mark.parametrize("failure", ['error("tracker database down")', 'return nil, "tracker database down"'])
async def test_a_failing_tracker_never_fails_the_call(node: Node, llm_fake: FakeLlm, failure: str) -> None:
    broken = function("app:track", f"return {{ call = function() {failure} end }}")
    await apply(node, TRACKER_CONTRACT, broken, TRACKER)
    llm_fake.queue(reply("hello"), reply('{"ok": true}'))
    got = await run_lua(node, CALLS)
    assert got.get("errs") in (None, []) and got["result"] == "hello"
    assert sorted(got["usage"]) == ["direct", "emb", "gen", "so"]
    assert all(len(u) == 32 for u in got["usage"].values())  # the node's own usage ids, not the tracker's


async def test_a_bound_model_resolver_redirects_a_model(node: Node, llm_fake: FakeLlm) -> None:
    await apply(node, RESOLVER_CONTRACT, RESOLVE, RESOLVER, TRACKER_CONTRACT, TRACK, TRACKER)
    got = await run_lua(node, """
        local function try(model, f)
            local r, err = (f or llm.generate)("hi", { model = model })
            return { result = r and r.result, err = err, usage = r and r.usage_record and r.usage_record.usage_id }
        end
        local emb = llm.embed("text", { model = "alias" })
        local status = llm.status({ model = "alias" })
        return { alias = try("alias"), declined = try("mini"), broken = try("broken"), raises = try("raises"),
                 no_providers = try("no-providers"), with_key = try("with-key"), unknown = try("nope"),
                 dims = #emb.result, status = status.status,
                 so = try("alias", function(_, opts)  -- the fake echoes the input: valid JSON
                     return llm.structured_output({ type = "object", properties = {} }, '{"ok": true}', opts) end) }
    """)
    chats = [r.body for r in llm_fake.requests if r.api == "openai.chat"]
    redirected = chats[0]
    assert redirected["model"] == "fake-redirected" and redirected["temperature"] == 0.1
    assert got["alias"]["result"] == "hi" and json.loads(got["alias"]["usage"])["model"] == "custom-alias"
    assert json.loads(got["declined"]["usage"])["model"] == "mini"  # declined: the registry's model
    assert chats[1]["model"] == "gpt-mini"
    for fallback in ("broken", "raises"):  # an error or a failure: the registry's models answer
        assert got[fallback]["err"] == f"Model or class not found: {fallback}"
    assert got["no_providers"]["err"] == "Model has no configured providers: no-providers"
    # the card's provider context reaches the provider: its key, not the node's default account
    assert got["with_key"]["result"] == "hi"
    keyed = next(r for r in llm_fake.requests if isinstance(r.body, dict) and r.body.get("model") == "x")
    assert keyed.headers["authorization"] == "Bearer sk-profile"
    assert got["unknown"]["err"] == "Model or class not found: nope"
    assert got["dims"] == 5  # the card's dimensions
    assert llm_fake.last("openai.embeddings").body["model"] == "fake-redirected"
    assert got["status"] == "healthy"
    assert "err" not in got["so"] and got["so"]["result"] == {"ok": True}
    assert json.loads(got["so"]["usage"])["model"] == "custom-alias"


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bound=st.sampled_from(["none", "definitions only", "binding of an undeclared contract"]),
       model=st.sampled_from(["mini", "class:fast", "chat"]))
async def test_unbound_contracts_change_nothing(node: Node, llm_fake: FakeLlm, bound: str, model: str) -> None:
    """No binding (or one of a contract nobody declares): the call, its request and its usage id are as without."""
    elsewhere = binding("app:usage_other", "app.other:usage_tracker", "track_usage", "app:track")
    entries = {"none": (), "definitions only": (TRACKER_CONTRACT, RESOLVER_CONTRACT),
               "binding of an undeclared contract": (TRACK, elsewhere)}[bound]
    if entries:
        await apply(node, *entries)
    before = len(llm_fake.requests)
    got = await run_lua(node, """
        local r, err = llm.generate("same", { model = ... })
        return { result = r and r.result, err = err, usage = r.usage_record.usage_id, model = r.metadata.model }
    """, model)
    assert got["result"] == "same" and got.get("err") is None and len(got["usage"]) == 32
    assert len(llm_fake.requests) == before + 1
    assert llm_fake.last("openai.chat").body["model"] == {"mini": "gpt-mini", "class:fast": "gpt-mini",
                                                         "chat": "chat-v1"}[model]
    if entries:  # leave the node as the next example expects it
        await node.registry.apply(Changeset(ops=tuple(Op("delete", e.id) for e in entries)))
