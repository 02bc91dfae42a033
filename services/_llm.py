"""The node's LLM service: what ``wippy.llm:llm`` calls, from model name to the provider's answer.

A call names a model the way Wippy's llm library takes it (``meta.name``, a class, or
``"class:x"``; see ``_llm_catalog``). The model's first provider is used: its ``id`` is either a
built-in provider (``wippy.llm.openai:provider``, ...) or an ``llm.provider`` entry of the app,
whose ``driver.id`` names the built-in driver (``wippy.llm.openai:driver`` is served by
``wippy.llm.openai:provider``) and whose ``driver.options`` configure it. ``provider_id`` in the
call's options skips the model lookup: ``model`` is then the provider's own model name.

Options merge as Wippy merges them: the model's provider ``options`` first, the call's options over
them. ``temperature``, ``max_tokens``, ``top_p``, ``top_k``, ``thinking_effort``, ``tools``,
``tool_choice`` and ``timeout`` become request fields; everything else goes to the provider as a
provider option.

Answers are Wippy's response tables as plain data: ``result``, ``tokens``, ``finish_reason``,
``tool_calls``, ``metadata`` (with ``cost`` when the model declares ``pricing``, per million tokens)
and, when a usage recorder is attached, ``usage_record = {usage_id}``. Failures raise ``LlmError``
whose message is the string Wippy's library returns and whose ``error_type`` is an
``llm.ERROR_TYPE`` value.

Keys and base URLs come from ``env_lookup``; :func:`env_chain` builds the node's: a public
``env.variable`` name (or entry id) first, then the OS environment as read at start-up, so both a
``.env`` file declared by the app and ``OPENAI_API_KEY`` exported in the shell work.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from wippy.core import WippyError

from ._llm_catalog import ModelCatalog
from ._llm_providers import Provider, aclose_all, make_provider
from ._llm_types import INVALID_REQUEST, EventSink, LlmError, LlmRequest, LlmResponse

log = logging.getLogger("wippy.llm")

EnvLookup = Callable[[str], str | None]
#: receives one record per completed call (usage_id, operation, model, provider, tokens, cost, latency_ms)
UsageRecorder = Callable[[dict[str, Any]], Awaitable[None]]

_NUMBERS = ("temperature", "top_p")
_INTEGERS = ("max_tokens", "top_k", "thinking_effort")
#: options the service consumes itself, never handed to a provider
_OWN = frozenset({"model", "provider_id", "stream", "schema", "dimensions", "schema_name", "run_id",
                  "turn"})
_TOKENS = ("prompt_tokens", "completion_tokens", "thinking_tokens", "total_tokens",
           "cache_read_tokens", "cache_write_tokens")


def env_chain(env: Any, environ: Mapping[str, str]) -> EnvLookup:
    """A lookup reading the node's env registry (``EnvService.lookup``), then ``environ``.

    An unset variable (empty value) falls through to ``environ``; a broken env entry is logged
    and falls through too, so one bad storage does not hide a key exported in the shell.
    """
    def lookup(name: str) -> str | None:
        if env is not None:
            try:
                value = env.lookup(name)
            except WippyError as exc:
                log.warning("env lookup of %s for an LLM provider failed: %s", name, exc)
                value = None
            if value:
                return str(value)
        return environ.get(name) or None

    return lookup


@dataclass(frozen=True, slots=True, kw_only=True)
class _Target:
    """A resolved call: the provider, its model name, the merged options, the model card if any."""

    provider: Provider
    provider_id: str
    #: the provider's own model name
    model: str
    #: the model's provider options (call options go over them)
    options: dict[str, Any]
    card: dict[str, Any] | None
    #: the model as the app names it (meta.name; the provider model in direct calls)
    name: str


class LlmService:
    """generate / structured_output / embed / status and model discovery for one node."""

    def __init__(self, registry: Any, env_lookup: EnvLookup, *, recorder: UsageRecorder | None = None) -> None:
        self.catalog = ModelCatalog(registry)
        self._env = env_lookup
        self._recorder = recorder

    # -- discovery -------------------------------------------------------------------------------
    def available_models(self, capability: str | None = None) -> list[dict[str, Any]]:
        return self.catalog.models(capability)

    def get_classes(self) -> list[dict[str, Any]]:
        return self.catalog.classes()

    # -- resolution ------------------------------------------------------------------------------
    def _target(self, opts: Mapping[str, Any], card: Mapping[str, Any] | None = None) -> _Target:
        """Where a call goes: ``provider_id`` directly, else the model's card (``card`` when a
        ``wippy.llm:model_resolver`` gave one, else the registry's)."""
        model = opts.get("model")
        if not model or not isinstance(model, str):
            raise LlmError("Model is required in options", error_type=INVALID_REQUEST)
        direct = opts.get("provider_id")
        if direct:
            provider = self._open(str(direct), {})
            return _Target(provider=provider, provider_id=str(direct), model=model, options={}, card=None, name=model)
        card = _resolved_card(card, model) if card is not None else self.catalog.resolve(model)
        if not card["providers"]:
            raise LlmError(f"Model has no configured providers: {model}", error_type=INVALID_REQUEST)
        ref = card["providers"][0]
        ref_options = dict(ref.get("options") or {}) if isinstance(ref.get("options"), Mapping) else {}
        context = dict(ref.get("context") or {}) if isinstance(ref.get("context"), Mapping) else {}
        provider = self._open(str(ref.get("id") or ""), {**context, **ref_options})
        if "timeout" in context and "timeout" not in ref_options:
            ref_options["timeout"] = context["timeout"]
        return _Target(provider=provider, provider_id=str(ref.get("id")),
                       model=str(ref.get("provider_model") or card["name"]), options=ref_options, card=card,
                       name=card["name"])

    def _open(self, provider_id: str, context: dict[str, Any]) -> Provider:
        if not provider_id:
            raise LlmError("Failed to open provider: Provider ID is required", error_type=INVALID_REQUEST)
        entry = self.catalog.provider_entry(provider_id)
        builtin, options = provider_id, context
        if entry is not None:
            driver = entry.data["driver"]
            builtin = str(driver["id"]).split(":", 1)[0] + ":provider"
            base = driver.get("options") if isinstance(driver.get("options"), Mapping) else {}
            options = {**base, **context}
        try:
            return make_provider(builtin, options, self._env)
        except LlmError as exc:
            raise LlmError(f"Failed to open provider: {exc.message}", error_type=exc.error_type,
                           provider=provider_id) from exc

    def _request(self, target: _Target, messages: list[dict[str, Any]], opts: Mapping[str, Any]) -> LlmRequest:
        merged = {**target.options, **{k: v for k, v in opts.items() if k not in _OWN}}
        fields: dict[str, Any] = {}
        for key in _NUMBERS + _INTEGERS:
            value = merged.pop(key, None)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise LlmError(f"option {key} must be a number, got {value!r}", error_type=INVALID_REQUEST)
            fields[key] = int(value) if key in _INTEGERS else float(value)
        timeout = merged.pop("timeout", None)
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
                raise LlmError(f"option timeout must be a positive number of seconds, got {timeout!r}",
                               error_type=INVALID_REQUEST)
            fields["timeout"] = float(timeout)
        tools = merged.pop("tools", None)
        if tools:
            fields["tools"] = _tools(tools)
        choice = merged.pop("tool_choice", None)
        if choice is not None:
            fields["tool_choice"] = str(choice)
        return LlmRequest(model=target.model, messages=[_message(m) for m in messages], options=merged, **fields)

    # -- calls -----------------------------------------------------------------------------------
    async def generate(self, messages: list[dict[str, Any]], opts: Mapping[str, Any],
                       on_event: EventSink | None = None, *, caller: str | None = None,
                       card: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Wippy's ``llm.generate`` answer. With ``on_event``, the provider streams: chunk, thinking
        and tool_call events as they come, then ``{type="done", meta}`` (or ``{type="error", error}``).
        ``caller`` (the calling process) is for a recording service; it does not change the call.
        ``card``: a model card a ``wippy.llm:model_resolver`` gave, used instead of the registry's."""
        try:
            target = self._target(opts, card)
            req = self._request(target, _messages(messages), opts)
            started = time.monotonic()
            resp = await target.provider.generate(req, on_event)
        except LlmError as exc:
            if on_event is not None:
                await on_event({"type": "error", "error": {"message": exc.message, "type": exc.error_type}})
            raise
        out = self._shape(resp, target)
        out["result"] = resp.result or ""
        out["tool_calls"] = list(resp.tool_calls or [])
        await self._record(out, target, "generate", started)
        if on_event is not None:
            await on_event({"type": "done", "meta": {"finish_reason": out["finish_reason"], "model": target.name,
                                                     "usage": out["tokens"]}})
        return out

    async def structured_output(self, schema: Mapping[str, Any], messages: list[dict[str, Any]],
                                opts: Mapping[str, Any], *, caller: str | None = None,
                                card: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Wippy's ``llm.structured_output`` answer: ``result`` is the decoded value."""
        if not opts.get("model"):
            raise LlmError("Model is required in options", error_type=INVALID_REQUEST)
        if not schema:
            raise LlmError("Schema is required", error_type=INVALID_REQUEST)
        if not isinstance(schema, Mapping):
            raise LlmError("Schema must be a table", error_type=INVALID_REQUEST)
        target = self._target(opts, card)
        req = self._request(target, _messages(messages), opts)
        name = str(opts.get("schema_name") or _schema_name(schema))
        started = time.monotonic()
        data, resp = await target.provider.structured(req, dict(schema), name)
        out = self._shape(resp, target)
        out["result"] = data
        await self._record(out, target, "structured_output", started)
        return out

    async def embed(self, texts: str | list[str], opts: Mapping[str, Any], *,
                    caller: str | None = None, card: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Wippy's ``llm.embed`` answer: one vector for a string, a list of vectors for a list."""
        target = self._target(opts, card)
        if isinstance(texts, str):
            batch = [texts]
        elif isinstance(texts, list) and texts and all(isinstance(t, str) for t in texts):
            batch = list(texts)
        else:
            raise LlmError("Input is required: a string or a list of strings", error_type=INVALID_REQUEST)
        dimensions = opts.get("dimensions") or (target.card or {}).get("dimensions")
        if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int | float)):
            raise LlmError(f"option dimensions must be a number, got {dimensions!r}", error_type=INVALID_REQUEST)
        started = time.monotonic()
        vectors, usage = await target.provider.embed(batch, target.model, int(dimensions) if dimensions else None)
        tokens = {"prompt_tokens": int(usage.get("prompt_tokens") or 0),
                  "total_tokens": int(usage.get("total_tokens") or usage.get("prompt_tokens") or 0)}
        out: dict[str, Any] = {"result": vectors[0] if isinstance(texts, str) and vectors else vectors,
                               "tokens": tokens, "metadata": {"provider": target.provider_id, "model": target.model}}
        cost = _cost((target.card or {}).get("pricing"), tokens)
        if cost is not None:
            out["metadata"]["cost"] = cost
        await self._record(out, target, "embed", started)
        return out

    async def status(self, opts: Mapping[str, Any], *, card: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The provider's health: ``{success, status = healthy|degraded|unhealthy, message}``."""
        return await self._target(opts, card).provider.status()

    async def aclose(self) -> None:
        """Close the providers' SDK clients (shared by every caller; the node calls this at shutdown)."""
        await aclose_all()

    # -- answers ---------------------------------------------------------------------------------
    def _shape(self, resp: LlmResponse, target: _Target) -> dict[str, Any]:
        tokens = {k: int((resp.tokens or {}).get(k) or 0) for k in _TOKENS}
        tokens["cache_read_input_tokens"] = tokens["cache_read_tokens"]
        tokens["cache_creation_input_tokens"] = tokens["cache_write_tokens"]
        metadata = dict(resp.metadata or {})
        if resp.thinking:
            metadata.setdefault("thinking", resp.thinking)
        cost = _cost((target.card or {}).get("pricing"), tokens)
        if cost is not None:
            metadata["cost"] = cost
        return {"tokens": tokens, "finish_reason": resp.finish_reason, "metadata": metadata}

    async def _record(self, out: dict[str, Any], target: _Target, operation: str, started: float) -> None:
        if self._recorder is None:
            return
        usage_id = uuid.uuid4().hex
        record = {"usage_id": usage_id, "operation": operation, "model": target.name,
                  "provider_id": target.provider_id, "provider_model": target.model, "tokens": out["tokens"],
                  "cost": out["metadata"].get("cost"), "finish_reason": out.get("finish_reason"),
                  "latency_ms": round((time.monotonic() - started) * 1000, 3)}
        try:
            await self._recorder(record)
        except WippyError as exc:  # as in Wippy: a call whose usage cannot be tracked still succeeds
            log.warning("recording LLM usage failed: %s", exc)
            return
        out["usage_record"] = {"usage_id": usage_id}


# -- helpers --------------------------------------------------------------------------------------

def _resolved_card(card: Any, model: str) -> dict[str, Any]:
    """A resolver's model card, checked the way the registry's cards are shaped: ``name``,
    ``providers`` [{id, provider_model, options, context}], and optionally ``pricing``, ``dimensions``."""
    if not isinstance(card, Mapping):
        raise LlmError(f"model_resolver: resolving {model!r} gave a {type(card).__name__}, not a model card",
                       error_type=INVALID_REQUEST)
    providers = card.get("providers")
    if not isinstance(providers, list) or not providers:
        raise LlmError(f"Model has no configured providers: {model}", error_type=INVALID_REQUEST)
    if not all(isinstance(p, Mapping) and p.get("id") for p in providers):
        raise LlmError("Failed to open provider: Provider ID is required", error_type=INVALID_REQUEST)
    return {**card, "name": str(card.get("name") or model), "providers": [dict(p) for p in providers]}


def _messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise LlmError("Invalid prompt input format", error_type=INVALID_REQUEST)
    return messages


def _message(msg: Any) -> dict[str, Any]:
    """A wire message as providers expect it; empty tables that came from Lua as ``[]`` put right."""
    if not isinstance(msg, Mapping):
        raise LlmError(f"each message must be a table, got {msg!r}", error_type=INVALID_REQUEST)
    out = dict(msg)
    if out.get("metadata") == []:
        del out["metadata"]
    call = out.get("function_call")
    if isinstance(call, Mapping) and call.get("arguments") == []:
        out["function_call"] = {**call, "arguments": {}}
    if out.get("content") == {}:
        out["content"] = []
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise LlmError("option tools must be a list of {name, description, schema}", error_type=INVALID_REQUEST)
    out = []
    for index, tool in enumerate(tools, 1):
        if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str) or not tool["name"]:
            raise LlmError(f"tools[{index}] needs a name", error_type=INVALID_REQUEST)
        schema = tool.get("schema")
        if not isinstance(schema, Mapping):
            schema = {"type": "object", "properties": {}}
        out.append({"name": tool["name"], "description": str(tool.get("description") or ""), "schema": dict(schema)})
    return out


def _schema_name(schema: Mapping[str, Any]) -> str:
    """``schema_`` and 16 hex digits of the schema's hash, as Wippy names structured outputs."""
    digest = hashlib.sha256(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"schema_{digest[:16]}"


def _rate(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _cost(pricing: Any, tokens: Mapping[str, int]) -> dict[str, float] | None:
    """The call's price in the pricing's currency. Rates are per million tokens: ``input`` for
    prompt tokens not read from the cache (providers count cached ones in ``prompt_tokens`` too),
    ``cached_input`` for cache reads (defaulting to ``input``), ``output`` for completion tokens
    (which include thinking tokens)."""
    if not isinstance(pricing, Mapping):
        return None
    rate_in, rate_out = _rate(pricing.get("input")), _rate(pricing.get("output"))
    if rate_in is None and rate_out is None:
        return None
    rate_cached = _rate(pricing.get("cached_input"))
    if rate_cached is None:
        rate_cached = rate_in
    read = tokens.get("cache_read_tokens", 0)
    prompt = max(0, tokens.get("prompt_tokens", 0) - read) * (rate_in or 0.0) / 1e6
    cached = read * (rate_cached or 0.0) / 1e6
    output = tokens.get("completion_tokens", 0) * (rate_out or 0.0) / 1e6
    return {"input": prompt, "cached_input": cached, "output": output, "total": prompt + cached + output}
