"""The offline embedder (extra ``wippy[embed]``): real all-MiniLM-L6-v2 vectors, no network, no key.

End to end through a node: ``wippy.embeddings:embeddings`` with no model configured embeds with it
and finds texts by meaning; ``llm.embed`` reaches it by provider id or through a model entry.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.services.conftest import ProcNode, lua
from tests.services.test_embeddings_lib import dependency, duck
from wippy.core import Entry
from wippy.services._embed_local import DIMENSIONS, MODEL, PROVIDER_ID, LocalProvider, _package_file, embed_texts
from wippy.services._llm_types import LlmError, LlmRequest

pytest.importorskip("onnxruntime", reason="the offline embedder needs the wippy[embed] extra")

DOCS = [
    ("A cat is sleeping on the sofa.", "pets"),
    ("The central bank raised interest rates again.", "finance"),
    ("Heavy rain and thunderstorms are expected tomorrow.", "weather"),
    ("Our dog loves chasing the ball in the park.", "pets"),
    ("Stock prices fell after the quarterly earnings report.", "finance"),
]


def dot(a: list[float], b: list[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


def test_similar_sentences_rank_above_unrelated_ones() -> None:
    (query,), _ = embed_texts(["A kitten naps on the couch."])
    vectors, tokens = embed_texts([text for text, _ in DOCS])
    ranked = sorted(range(len(DOCS)), key=lambda i: -dot(query, vectors[i]))
    assert DOCS[ranked[0]][0] == "A cat is sleeping on the sofa."
    assert tokens > len(DOCS)
    money = embed_texts(["Shares dropped on the stock exchange."])[0][0]
    assert max(range(len(DOCS)), key=lambda i: dot(money, vectors[i])) in (1, 4)


@settings(max_examples=10, deadline=None)
@given(st.text(min_size=1, max_size=80), st.lists(st.text(max_size=40), max_size=3))
def test_vectors_are_deterministic_unit_length_and_independent_of_the_batch(text: str, others: list[str]) -> None:
    (alone,), _ = embed_texts([text])
    batched, _ = embed_texts([*others, text])
    assert batched[-1] == alone
    assert len(alone) == DIMENSIONS
    assert math.isclose(math.fsum(x * x for x in alone), 1.0, rel_tol=1e-4)


def test_a_missing_extra_names_it() -> None:
    with pytest.raises(LlmError, match=r"pip install 'wippy\[embed\]'"):
        _package_file("wippy_no_such_package", "model.onnx")


async def test_the_provider_only_embeds_and_only_its_model() -> None:
    provider = LocalProvider()
    with pytest.raises(LlmError, match="only embeds"):
        await provider.generate(LlmRequest(model=MODEL, messages=[]))
    with pytest.raises(LlmError, match="has one model"):
        await provider.embed(["x"], "other-model")
    with pytest.raises(LlmError, match="dimensions 512 is not possible"):
        await provider.embed(["x"], MODEL, 512)
    assert (await provider.status())["status"] == "healthy"


async def test_semantic_search_in_a_lua_app_with_no_api_key(proc_node: ProcNode, tmp_path: Path) -> None:
    docs = ", ".join(f'{{ content = "{t}", content_type = "{k}", origin_id = "doc-{i}", meta = {{ i = {i} }} }}'
                     for i, (t, k) in enumerate(DOCS))
    source = f"""
local embeddings, json = require("embeddings"), require("json")
return {{ main = function()
  local added, err = embeddings.add_batch({{ {docs} }})
  if err then return json.encode({{ err = err }}) end
  local one, one_err = embeddings.add("Snow is falling over the mountains.", "weather", "doc-9", "c", nil)
  if one_err then return json.encode({{ err = one_err }}) end
  local hits = embeddings.search("a kitten naps on the couch", {{ limit = 2 }})
  local money = embeddings.find_by_type("shares dropped on the stock exchange", "finance", {{ limit = 1 }})
  local cold = embeddings.find_by_origin("winter weather", "doc-9")
  local _, empty = embeddings.search("")
  return json.encode({{ count = added.count, one = one, hits = hits, money = money, cold = cold, empty = empty }})
end }}
"""
    await proc_node.apply(duck(tmp_path), dependency(("target_db", "app:vectors")),
                          lua("app:search", source, modules=["json"],
                              imports={"embeddings": "wippy.embeddings:embeddings"}))
    value, error = await proc_node.run("app:search", timeout=60)
    assert error is None, error
    out = json.loads(value)
    assert "err" not in out, out
    assert out["count"] == len(DOCS) and out["one"]["origin_id"] == "doc-9"
    assert out["hits"][0]["content"] == "A cat is sleeping on the sofa." and out["hits"][0]["meta"] == {"i": 0}
    assert out["hits"][0]["similarity"] > out["hits"][1]["similarity"]
    assert out["money"][0]["content_type"] == "finance"
    assert [h["origin_id"] for h in out["cold"]] == ["doc-9"]
    assert out["empty"] == "Query text is required"


async def test_llm_embed_reaches_it_by_provider_id_and_by_model_entry(proc_node: ProcNode) -> None:
    model = Entry("app:minilm", "registry.entry", {"type": "llm.model", "name": "local-mini",
                                                   "capabilities": ["embed"]},
                  {"dimensions": DIMENSIONS, "providers": [{"id": PROVIDER_ID, "provider_model": MODEL}]})
    source = f"""
local llm, json = require("llm"), require("json")
return {{ main = function()
  local a, err = llm.embed("offline vectors", {{ provider_id = "{PROVIDER_ID}", model = "{MODEL}" }})
  if err then return json.encode({{ err = err }}) end
  local b, berr = llm.embed({{ "offline vectors", "something else" }}, {{ model = "local-mini" }})
  if berr then return json.encode({{ err = berr }}) end
  local _, gen_err = llm.generate("hi", {{ model = "local-mini" }})
  return json.encode({{ a = a.result, b = b.result, tokens = b.tokens, gen_err = gen_err }})
end }}
"""
    await proc_node.apply(model, lua("app:emb", source, modules=["json"], imports={"llm": "wippy.llm:llm"}))
    value, error = await proc_node.run("app:emb", timeout=60)
    assert error is None, error
    out = json.loads(value)
    assert "err" not in out, out
    assert len(out["a"]) == DIMENSIONS and out["b"][0] == out["a"] and out["b"][1] != out["a"]
    assert out["tokens"]["prompt_tokens"] > 0
    assert "only embeds" in out["gen_err"]


async def test_wippys_model_choice_wins_when_the_app_declares_it(proc_node: ProcNode, tmp_path: Path) -> None:
    declared = Entry("app:small", "registry.entry", {"type": "llm.model", "name": "text-embedding-3-small"},
                     {"providers": [{"id": PROVIDER_ID, "provider_model": MODEL}]})
    source = 'local json = require("json")\nreturn { main = function() ' \
             'return json.encode(require("embeddings_host").config()) end }'
    await proc_node.apply(duck(tmp_path), dependency(("target_db", "app:vectors")), declared,
                          lua("app:cfg", source, modules=["json", "embeddings_host"]))
    value, error = await proc_node.run("app:cfg")
    assert error is None, error
    assert json.loads(value) == {"target_db": "app:vectors", "dimensions": 512, "model": "text-embedding-3-small",
                                 "table": "embeddings_512"}
