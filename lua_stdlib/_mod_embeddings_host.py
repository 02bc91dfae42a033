"""`embeddings_host`: the bridge from the native ``wippy.embeddings:*`` libraries to the node's services.

Only those libraries list it in their ``modules:``. The database and the embedder come from the
app's ``ns.dependency`` on ``wippy/embeddings`` (see ``services/_embed_config``); vectors go to the
DuckDB repository (``services/_embeddings``) through the node's SqlHub, and texts are embedded by
the node's LLM service. Every call answers Wippy's way, ``value`` or ``nil, error_string``; the
strings are the ones Wippy's repository returns (``Failed to insert embedding: ...``,
``Search failed: ...``), after the setup errors, which come bare.

    config()                          -> {target_db, dimensions, model, table}
    add_batch(items)                  -> {count, items = {{entry_id, origin_id, content_type, context_id}}}
    search(embedding, options)        -> {{entry_id, origin_id, content_type, context_id, content, meta,
                                           created_at, updated_at, similarity}}
    get_by_origin(origin_id)          -> the same records without similarity
    delete_by_origin(origin_id)       -> {deleted = true, count}
    delete_by_entry(entry_id)         -> {deleted = true} | nil, "Embedding not found"
    embed(texts)                      -> {vector, ...}, one per text (errors are the LLM service's)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from wippy.core import WippyError
from wippy.services._embed_config import EmbeddingsConfig, EmbeddingsConfigError, check_database, resolve
from wippy.services._embeddings import EmbeddingRepo

from ._host import LuaHost, ModuleUnavailable, register_module
from ._mod_json import JsonValueError, lua_to_json

_REPOS = "embeddings_host.repos"


def _message(exc: WippyError) -> str:
    return str(getattr(exc, "message", None) or exc)


def _build(host: LuaHost) -> Any:  # noqa: PLR0915 - one closure per Lua-facing function
    ctx = host.ctx
    if ctx.databases is None:
        raise ModuleUnavailable("no SQL databases are available to this process")
    vm = host.vm
    to_python = lua_to_json(host)
    repos: dict[tuple[str, int], tuple[Any, EmbeddingRepo]] = host.extras.setdefault(_REPOS, {})

    def setup() -> tuple[EmbeddingsConfig, EmbeddingRepo]:
        config = resolve(ctx.registry, ctx.llm)
        check_database(ctx.registry, config.target_db)
        entry = ctx.registry.get(config.target_db)
        key = (config.target_db, config.dimensions)
        known = repos.get(key)
        if known is None or known[0] is not entry:  # a changed database entry: its table is made anew
            known = repos[key] = (entry, EmbeddingRepo(ctx.databases, config.target_db,
                                                       dimensions=config.dimensions, table=config.table))
        return config, known[1]

    def data(value: Any, what: str) -> Any:
        try:
            return to_python(value)
        except JsonValueError as exc:
            raise EmbeddingsConfigError(f"{what}: {exc}") from exc

    def call(prefix: str, work: Callable[[EmbeddingRepo], Awaitable[Any]]) -> Any:
        """Run ``work(repo)`` as a Pending: the value, or nil and the error string."""
        try:
            _config, repo = setup()
        except WippyError as exc:
            return None, _message(exc)

        async def run() -> tuple[Any, ...]:
            try:
                return (vm.to_lua(await work(repo)),)
            except WippyError as exc:
                return None, prefix + _message(exc)

        return vm.pending(run())

    def config() -> Any:
        try:
            found, _repo = setup()
        except WippyError as exc:
            return None, _message(exc)
        return vm.to_lua({"target_db": found.target_db, "dimensions": found.dimensions, "model": found.model,
                          "table": found.table})

    def add_batch(items: Any = None) -> Any:
        try:
            batch = data(items, "batch")
        except EmbeddingsConfigError as exc:
            return None, "Failed to insert embedding: " + str(exc)
        if not isinstance(batch, list):
            return None, "Batch is empty"
        return call("Failed to insert embedding: ", lambda repo: repo.add_batch(batch))

    def search(embedding: Any = None, options: Any = None) -> Any:
        try:
            vector = data(embedding, "embedding")
            opts = data(options, "options") if options is not None else {}
        except EmbeddingsConfigError as exc:
            return None, "Search failed: " + str(exc)
        if not isinstance(opts, dict):
            opts = {}
        return call("Search failed: ", lambda repo: repo.search_by_embedding(vector, opts))

    def get_by_origin(origin_id: Any = None) -> Any:
        return call("Failed to get embeddings: ", lambda repo: repo.get_by_origin(str(origin_id)))

    def delete_by_origin(origin_id: Any = None) -> Any:
        async def work(repo: EmbeddingRepo) -> dict[str, Any]:
            gone = await repo.delete_by_origin(str(origin_id))
            return {"deleted": True, "count": int(gone["deleted"])}

        return call("Failed to delete embeddings: ", work)

    def delete_by_entry(entry_id: Any = None) -> Any:
        async def run(repo: EmbeddingRepo) -> tuple[Any, ...]:
            try:
                gone = await repo.delete_by_entry(str(entry_id))
            except WippyError as exc:
                return None, "Failed to delete embedding: " + _message(exc)
            return (vm.to_lua({"deleted": True}),) if gone else (None, "Embedding not found")

        try:
            _config, repo = setup()
        except WippyError as exc:
            return None, _message(exc)
        return vm.pending(run(repo))

    def embed(texts: Any = None) -> Any:
        try:
            found = resolve(ctx.registry, ctx.llm)
            batch = data(texts, "texts")
        except WippyError as exc:
            return None, _message(exc)
        service = ctx.llm
        if service is None:
            return None, "no LLM service is available to this process"
        if not isinstance(batch, list) or not batch or not all(isinstance(t, str) for t in batch):
            return None, "texts must be a list of strings"

        async def run() -> tuple[Any, ...]:
            try:
                answer = await service.embed(batch, found.embed_options())
            except WippyError as exc:
                return None, _message(exc)
            return (vm.to_lua(answer["result"]),)

        return vm.pending(run())

    return vm.rt.table_from({
        "config": config,
        "add_batch": vm.asyncify(add_batch),
        "search": vm.asyncify(search),
        "get_by_origin": vm.asyncify(get_by_origin),
        "delete_by_origin": vm.asyncify(delete_by_origin),
        "delete_by_entry": vm.asyncify(delete_by_entry),
        "embed": vm.asyncify(embed),
    })


register_module("embeddings_host", _build)
