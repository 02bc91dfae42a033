"""An embeddings repository on DuckDB: vectors in ``FLOAT[N]`` columns, exact top-k search.

Wippy's embeddings repo keeps vectors in SQLite (vec0) or Postgres (pgvector); this runtime keeps
them in a ``db.sql.duckdb`` database of the app, one table (``embeddings`` by default) of
``dimensions``-long vectors. Vectors are normalised to unit length when written, so the inner
product DuckDB computes (``array_inner_product``, built in) is the cosine similarity, and a search
is an exact scan: no index to build or drift, about 50 ms over 100,000 x 384 on this machine.

    repo = EmbeddingRepo(sql_hub, "app:vectors", dimensions=384)
    await repo.add("text", "doc", "doc-1", None, {"page": 1}, vector)        -> {entry_id, ...}
    await repo.search_by_embedding(vector, {"limit": 10, "content_type": "doc"})
        -> [{entry_id, content, content_type, origin_id, context_id, meta, created_at, updated_at,
             similarity}]
    await repo.get_by_origin("doc-1") / repo.delete_by_origin("doc-1") / repo.delete_by_entry(entry_id)

``origin_id`` in search options may be a list (any of them matches), as in Wippy. The Lua
libraries ``wippy.embeddings:embedding_repo`` / ``:embeddings`` reach this class through
``lua_stdlib/_mod_embeddings_host.py``, one table per dimension count (``embeddings_384``, ...).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from wippy.core import DefinitionError

_FILTERS = ("content_type", "context_id")
_COLUMNS = "entry_id, origin_id, content_type, context_id, content, meta, created_at, updated_at"


def normalised(vector: Sequence[float], dimensions: int) -> list[float]:
    """``vector`` scaled to unit length; DefinitionError for a wrong length, a zero vector or non-numbers."""
    if not isinstance(vector, list | tuple) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in vector):
        raise DefinitionError("an embedding must be a list of numbers")
    if len(vector) != dimensions:
        raise DefinitionError(f"an embedding must have {dimensions} numbers, not {len(vector)}")
    norm = math.sqrt(math.fsum(float(x) * float(x) for x in vector))
    if norm == 0.0 or not math.isfinite(norm):
        raise DefinitionError("an embedding must have a finite, non-zero length")
    return [float(x) / norm for x in vector]


class EmbeddingRepo:
    def __init__(self, hub: Any, db_id: str, *, dimensions: int, table: str = "embeddings") -> None:
        if not table.replace("_", "").isalnum():
            raise DefinitionError(f"embeddings table name {table!r} must be letters, digits and '_'")
        if dimensions <= 0:
            raise DefinitionError("embedding dimensions must be positive")
        self._hub = hub
        self.db_id = db_id
        self.dimensions = dimensions
        self.table = table
        self._ready = False

    async def _run(self, sql: str, params: Sequence[Any] = (), *, fetch: bool = False) -> Any:
        lease = self._hub.acquire(self.db_id)
        try:
            if getattr(lease.db, "type", None) != "duckdb":
                raise DefinitionError(f"{self.db_id}: the embeddings repository needs a db.sql.duckdb database")
            if not self._ready:
                await lease.db.execute(None, (
                    f"CREATE TABLE IF NOT EXISTS {self.table} (entry_id TEXT PRIMARY KEY, content TEXT, "
                    f"content_type TEXT, origin_id TEXT, context_id TEXT, meta JSON, "
                    f"embedding FLOAT[{self.dimensions}] NOT NULL, created_at TIMESTAMP DEFAULT now(), "
                    f"updated_at TIMESTAMP DEFAULT now())"))
                self._ready = True
            if fetch:
                return await lease.db.query(None, sql, params)
            return await lease.db.execute(None, sql, params)
        finally:
            lease.release()

    async def add(self, content: str, content_type: str, origin_id: str, context_id: str | None,  # noqa: PLR0917 - Wippy's order
                  meta: Mapping[str, Any] | None, embedding: Sequence[float]) -> dict[str, Any]:
        added = await self.add_batch([{"content": content, "content_type": content_type, "origin_id": origin_id,
                                       "context_id": context_id, "meta": meta, "embedding": embedding}])
        first: dict[str, Any] = added["items"][0]
        return first

    async def add_batch(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        rows, out = [], []
        for i, item in enumerate(items):
            try:
                vector = normalised(item["embedding"], self.dimensions)
            except (KeyError, TypeError, ValueError) as exc:
                raise DefinitionError(f"item {i + 1}: needs `embedding`, a list of numbers") from exc
            except DefinitionError as exc:
                raise DefinitionError(f"item {i + 1}: {exc}") from exc
            entry_id = str(uuid.uuid4())
            rows.append((entry_id, str(item.get("content") or ""), str(item.get("content_type") or ""),
                         str(item.get("origin_id") or ""), item.get("context_id"),
                         orjson.dumps(item.get("meta") or {}).decode(), vector))
            out.append({"entry_id": entry_id, "origin_id": rows[-1][3], "content_type": rows[-1][2],
                        "context_id": rows[-1][4]})
        if not rows:
            return {"count": 0, "items": []}
        marks = ", ".join(f"(?, ?, ?, ?, ?, ?, ?::FLOAT[{self.dimensions}])" for _ in rows)
        await self._run(f"INSERT INTO {self.table} (entry_id, content, content_type, origin_id, context_id, meta, "
                        f"embedding) VALUES {marks}", [v for row in rows for v in row])
        return {"count": len(out), "items": out}

    async def search_by_embedding(self, embedding: Sequence[float],
                                  options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        opts = dict(options or {})
        vector = normalised(embedding, self.dimensions)
        where: list[str] = []
        params: list[Any] = [vector]
        for key in _FILTERS:
            if opts.get(key) is not None:
                where.append(f"{key} = ?")
                params.append(str(opts[key]))
        origins = opts.get("origin_id")
        if origins is not None:
            origins = [str(o) for o in origins] if isinstance(origins, list | tuple) else [str(origins)]
            if not origins:
                return []
            where.append(f"origin_id IN ({', '.join('?' for _ in origins)})")
            params.extend(origins)
        limit = opts.get("limit")
        limit = 10 if limit is None else limit
        if isinstance(limit, bool) or not isinstance(limit, int | float) or limit < 1 or limit != int(limit):
            raise DefinitionError(f"search limit must be a positive whole number, not {limit!r}")
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        columns, rows = await self._run(
            f"SELECT {_COLUMNS}, array_inner_product(embedding, ?::FLOAT[{self.dimensions}]) AS similarity "
            f"FROM {self.table} {clause}ORDER BY similarity DESC, entry_id LIMIT {int(limit)}", params, fetch=True)
        return [_record(columns, row) for row in rows]

    async def get_by_origin(self, origin_id: str) -> list[dict[str, Any]]:
        """Every entry of ``origin_id``, oldest first."""
        columns, rows = await self._run(f"SELECT {_COLUMNS} FROM {self.table} WHERE origin_id = ? "
                                        f"ORDER BY created_at, entry_id", [origin_id], fetch=True)
        return [_record(columns, row) for row in rows]

    async def delete_by_origin(self, origin_id: str) -> dict[str, Any]:
        _last, count = await self._run(f"DELETE FROM {self.table} WHERE origin_id = ?", [origin_id])
        return {"deleted": count}

    async def delete_by_entry(self, entry_id: str) -> int:
        """How many entries went (0 or 1)."""
        _last, count = await self._run(f"DELETE FROM {self.table} WHERE entry_id = ?", [entry_id])
        return int(count)


def _record(columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    record = dict(zip(columns, row, strict=True))
    meta = record.get("meta")
    record["meta"] = orjson.loads(meta) if isinstance(meta, str) and meta else (meta or {})
    return record
