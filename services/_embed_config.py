"""Where ``wippy/embeddings`` stores and which model embeds: read from the app's registry.

Wippy's component has one requirement, ``target_db``, the database its repository writes to. An app
passes it as a parameter of its ``ns.dependency`` on ``wippy/embeddings`` (bare or as
``wippy.embeddings:target_db``); an ``ns.requirement`` entry ``wippy.embeddings:target_db`` with a
``default`` (Wippy's own shape) is read first. The runtime keeps the vectors in a ``db.sql.duckdb``
database, one table per vector length (``embeddings_<dimensions>``); SQLite (Wippy's vec0) and
Postgres (pgvector) targets are refused with a message saying so.

Two optional parameters of this runtime choose the embedder:

- ``model``: an ``llm.model`` name (or class) the app declares, or ``all-MiniLM-L6-v2`` for the
  offline embedder even without a model entry;
- ``dimensions``: the vector length (default: the model entry's ``dimensions``, else 512).

Without ``model``, Wippy's choice is kept when the app declares it (``text-embedding-3-small`` at
512 numbers); otherwise the offline embedder (``all-MiniLM-L6-v2``, 384 numbers, extra
``wippy[embed]``) is the default, so an app with no API key still embeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wippy.core import WippyError

from ._embed_local import DIMENSIONS as LOCAL_DIMENSIONS
from ._embed_local import MODEL as LOCAL_MODEL
from ._embed_local import PROVIDER_ID as LOCAL_PROVIDER

COMPONENT = "wippy/embeddings"
NAMESPACE = "wippy.embeddings"
#: Wippy's embeddings library embeds with this model at this length
WIPPY_MODEL = "text-embedding-3-small"
WIPPY_DIMENSIONS = 512
#: DuckDB's limit on a fixed-size array
MAX_DIMENSIONS = 100_000


class EmbeddingsConfigError(WippyError):
    """The app's wippy/embeddings setup cannot work; the message says what to change."""


@dataclass(frozen=True, slots=True)
class EmbeddingsConfig:
    target_db: str
    dimensions: int
    #: the name the LLM service is called with
    model: str
    #: set for the offline embedder (called by provider id, no model entry needed)
    provider_id: str | None

    @property
    def table(self) -> str:
        return f"embeddings_{self.dimensions}"

    def embed_options(self) -> dict[str, Any]:
        """The options ``LlmService.embed`` takes for this embedder."""
        if self.provider_id is not None:
            return {"model": self.model, "provider_id": self.provider_id}
        return {"model": self.model, "dimensions": self.dimensions}


def parameters(registry: Any) -> dict[str, Any]:
    """The parameters the app's ``ns.dependency`` entries on wippy/embeddings pass (first by id wins)."""
    found: dict[str, Any] = {}
    current: Mapping[str, Any] = registry.current()
    for entry_id in sorted(current):
        entry = current[entry_id]
        if entry.kind != "ns.dependency" or (entry.data or {}).get("component") != COMPONENT:
            continue
        for param in entry.data.get("parameters") or ():
            if isinstance(param, Mapping) and isinstance(param.get("name"), str) and "value" in param:
                name = param["name"].removeprefix(f"{NAMESPACE}:")
                found.setdefault(name, param["value"])
    return found


def resolve(registry: Any, llm: Any) -> EmbeddingsConfig:
    """The database and embedder the app configured; EmbeddingsConfigError naming what is missing.

    ``llm`` (the node's LLM service, or None) is asked whether the app declares a model by name.
    """
    params = parameters(registry)
    requirement = registry.get(f"{NAMESPACE}:target_db")
    target = (requirement.data or {}).get("default") if requirement is not None else None
    target = target or params.get("target_db")
    if not target or not isinstance(target, str):
        raise EmbeddingsConfigError(
            "target_db requirement is not configured: give the ns.dependency on wippy/embeddings the parameter "
            "target_db (the id of a db.sql.duckdb entry)")
    dimensions = _dimensions(params.get("dimensions"))
    model = params.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise EmbeddingsConfigError(f"wippy/embeddings parameter model must be a model name, not {model!r}")
    card = _card(llm, model or WIPPY_MODEL)
    if card is None and model in (None, LOCAL_MODEL):
        return EmbeddingsConfig(target, dimensions or LOCAL_DIMENSIONS, LOCAL_MODEL, LOCAL_PROVIDER)
    declared = _dimensions(card.get("dimensions")) if card is not None else None
    return EmbeddingsConfig(target, dimensions or declared or WIPPY_DIMENSIONS, model or WIPPY_MODEL, None)


def check_database(registry: Any, db_id: str) -> None:
    """EmbeddingsConfigError unless ``db_id`` is a ``db.sql.duckdb`` entry."""
    entry = registry.get(db_id)
    if entry is None:
        raise EmbeddingsConfigError(f"target_db {db_id}: there is no such database entry")
    if entry.kind in ("db.sql.sqlite", "db.sql.postgres", "db.sql.mysql"):
        raise EmbeddingsConfigError(
            f"target_db {db_id} is a {entry.kind}: this runtime keeps embeddings in db.sql.duckdb databases only "
            "(Wippy's SQLite store needs the vec0 extension and its Postgres store pgvector); point target_db at "
            "a db.sql.duckdb entry")
    if entry.kind != "db.sql.duckdb":
        raise EmbeddingsConfigError(f"target_db {db_id} is a {entry.kind}, not a db.sql.duckdb database")


def _dimensions(raw: Any) -> int | None:
    if raw is None:
        return None
    value = raw
    if isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit():
        value = int(raw)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_DIMENSIONS \
            or value != int(value):
        raise EmbeddingsConfigError(
            f"wippy/embeddings parameter dimensions must be a whole number from 1 to {MAX_DIMENSIONS}, not {raw!r}")
    return int(value)


def _card(llm: Any, name: str) -> dict[str, Any] | None:
    if llm is None:
        return None
    try:
        card: dict[str, Any] = llm.catalog.resolve(name)
    except WippyError:
        return None
    return card
