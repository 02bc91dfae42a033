"""Exact top-10 search over 100,000 384-dim vectors in the DuckDB embeddings repository.

    pytest -m bench -s tests/bench/test_bench_embeddings.py

The table is filled by DuckDB itself (random unit vectors), then 30 searches go through
``EmbeddingRepo.search_by_embedding`` (normalising the query, the SQL, the thread hop, rows back
as dicts); the raw baseline is the same SQL on a raw DuckDB connection to a copy of the file.
"""

from __future__ import annotations

import random
import shutil
import statistics
import time
from pathlib import Path

import duckdb
import pytest

from wippy.core import Entry
from wippy.services._embeddings import EmbeddingRepo
from wippy.services._sql import SqlHub

from .conftest import report, run

pytestmark = pytest.mark.bench

N, DIM, QUERIES = 100_000, 384, 30

FILL = f"""INSERT INTO embeddings (entry_id, content, content_type, origin_id, meta, embedding)
WITH r AS (SELECT i, list_transform(range({DIM}), lambda k: random() - 0.5 + 0 * i) AS v FROM range({N}) t(i)),
     s AS (SELECT i, v, sqrt(list_sum(list_transform(v, lambda y: y * y))) AS n FROM r)
SELECT 'e' || i, 'text ' || i, 'doc', 'o' || (i % 100), '{{}}', list_transform(v, lambda x: x / n)::FLOAT[{DIM}]
FROM s"""


class _Entries:
    def __init__(self, *entries: Entry) -> None:
        self.entries = {e.id: e for e in entries}

    def get(self, entry_id: str) -> Entry | None:
        return self.entries.get(entry_id)


def test_top10_over_100k_vectors(tmp_path: Path) -> None:
    async def main() -> None:
        path = tmp_path / "v.duckdb"
        hub = SqlHub(_Entries(Entry("app:v", "db.sql.duckdb", {}, {"file": str(path)})))
        repo = EmbeddingRepo(hub, "app:v", dimensions=DIM)
        rnd = random.Random(7)
        queries = [[rnd.uniform(-1, 1) for _ in range(DIM)] for _ in range(QUERIES)]
        try:
            await repo.search_by_embedding(queries[0])  # makes the table
            lease = hub.acquire("app:v")
            t0 = time.perf_counter()
            await lease.db.execute(None, FILL)
            fill_s = time.perf_counter() - t0
            lease.release()
            ours = []
            for q in queries:
                t0 = time.perf_counter()
                hits = await repo.search_by_embedding(q, {"limit": 10})
                ours.append(time.perf_counter() - t0)
                assert len(hits) == 10
        finally:
            await hub.aclose()
        copy = tmp_path / "raw.duckdb"
        shutil.copy(path, copy)
        con = duckdb.connect(str(copy))
        raw = []
        for q in queries:
            t0 = time.perf_counter()
            con.execute(f"SELECT entry_id, content, array_inner_product(embedding, ?::FLOAT[{DIM}]) AS s "
                        f"FROM embeddings ORDER BY s DESC LIMIT 10", [q]).fetchall()
            raw.append(time.perf_counter() - t0)
        con.close()
        report("embeddings: exact top-10 over 100,000 x 384 (DuckDB, through EmbeddingRepo)",
               p50_ms=f"{statistics.median(ours) * 1000:.1f}", max_ms=f"{max(ours) * 1000:.1f}",
               raw_duckdb_p50_ms=f"{statistics.median(raw) * 1000:.1f}",
               ratio=f"{statistics.median(ours) / statistics.median(raw):.2f}x", goal="<= 100 ms",
               fill_s=f"{fill_s:.1f}")

    run(main())
