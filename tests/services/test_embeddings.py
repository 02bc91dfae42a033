"""The DuckDB embeddings repository: unit vectors in FLOAT[N] columns, exact top-k by inner product."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wippy.core import DefinitionError, Entry
from wippy.services._embeddings import EmbeddingRepo, normalised
from wippy.services._sql import SqlHub


class Entries:
    def __init__(self, *entries: Entry) -> None:
        self.entries = {e.id: e for e in entries}

    def get(self, entry_id: str) -> Entry | None:
        return self.entries.get(entry_id)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[SqlHub]:
    reg = Entries(Entry("app:vectors", "db.sql.duckdb", {}, {"file": str(tmp_path / "v.duckdb")}),
                  Entry("app:lite", "db.sql.sqlite", {}, {"file": ":memory:"}))
    h = SqlHub(reg)
    yield h
    await h.aclose()


def unit(seed: int, n: int = 8) -> list[float]:
    rnd = random.Random(seed)
    return [rnd.uniform(-1, 1) for _ in range(n)]


async def test_search_finds_the_nearest_with_filters_and_meta(hub: SqlHub) -> None:
    repo = EmbeddingRepo(hub, "app:vectors", dimensions=8)
    vectors = {i: unit(i) for i in range(50)}
    added = await repo.add_batch([{"content": f"text {i}", "content_type": "even" if i % 2 == 0 else "odd",
                                   "origin_id": f"doc-{i // 10}", "meta": {"i": i}, "embedding": v}
                                  for i, v in vectors.items()])
    assert added["count"] == 50
    hits = await repo.search_by_embedding([x * 3 for x in vectors[7]], {"limit": 3})  # scale does not matter
    assert hits[0]["content"] == "text 7" and hits[0]["meta"] == {"i": 7}
    assert math.isclose(hits[0]["similarity"], 1.0, rel_tol=1e-5)
    assert [h["similarity"] for h in hits] == sorted((h["similarity"] for h in hits), reverse=True)
    evens = await repo.search_by_embedding(vectors[7], {"limit": 5, "content_type": "even"})
    assert len(evens) == 5 and all(h["content_type"] == "even" for h in evens)
    doc = await repo.search_by_embedding(vectors[7], {"limit": 50, "origin_id": "doc-2"})
    assert {h["content"] for h in doc} == {f"text {i}" for i in range(20, 30)}
    assert (await repo.delete_by_origin("doc-2"))["deleted"] == 10
    assert await repo.search_by_embedding(vectors[7], {"limit": 50, "origin_id": "doc-2"}) == []


async def test_bad_vectors_and_databases_are_refused(hub: SqlHub) -> None:
    repo = EmbeddingRepo(hub, "app:vectors", dimensions=8)
    with pytest.raises(DefinitionError, match="8 numbers"):
        await repo.add("x", "t", "o", None, None, [1.0, 2.0])
    with pytest.raises(DefinitionError, match="non-zero"):
        await repo.search_by_embedding([0.0] * 8)
    with pytest.raises(DefinitionError, match=r"db\.sql\.duckdb"):
        await EmbeddingRepo(hub, "app:lite", dimensions=8).search_by_embedding(unit(1))


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=4, max_size=4).filter(
    lambda v: math.fsum(x * x for x in v) > 1e-6))
def test_vectors_are_unit_length_after_normalising(v: list[Any]) -> None:
    assert math.isclose(math.fsum(x * x for x in normalised(v, 4)), 1.0, rel_tol=1e-9)
