"""LLM providers: the built-in provider ids, their configuration from env, and the shared SDK clients.

``make_provider(provider_id, options, env)`` returns a :class:`Provider` for one of Wippy's built-in
provider ids. Each talks to its vendor through the official SDK (imported lazily, the first time a
provider of that vendor makes a client):

=========================================== ==================================================
``wippy.llm.openai:provider``               OpenAI Chat Completions; ``options.api = "responses"``
                                            selects the Responses API
``wippy.llm.openai_compat:provider``        any OpenAI-compatible server (Chat Completions)
``wippy.llm.claude:provider``               Anthropic Messages
``wippy.llm.google.generative_ai:provider`` Gemini API (google-genai)
``wippy.llm.google.vertex:provider``        Vertex AI (google-genai)
``wippy.llm.local:provider``                the offline embedder, model ``all-MiniLM-L6-v2``
                                            (``_embed_local``; needs the ``wippy[embed]`` extra)
=========================================== ==================================================

Keys and base URLs are read through ``env`` (the node's env lookup), never ``os.environ``:

- OpenAI: ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``.
- OpenAI-compatible: ``OPENAI_COMPAT_API_KEY`` (optional), ``OPENAI_COMPAT_BASE_URL`` (required,
  unless ``options.base_url`` is given).
- Anthropic: ``ANTHROPIC_API_KEY``, ``ANTHROPIC_BASE_URL``.
- Gemini: ``GEMINI_API_KEY`` or else ``GOOGLE_API_KEY``; base URL ``GEMINI_BASE_URL`` or else
  Wippy's ``GEN_AI_API_BASE_URL``.
- Vertex AI: ``GOOGLE_API_KEY`` (express mode) or ``GOOGLE_CREDENTIALS`` (a service-account JSON,
  ``options.credentials_env`` to rename); project ``VERTEX_AI_PROJECT`` or
  ``GOOGLE_CLOUD_PROJECT``; location ``VERTEX_AI_LOCATION`` or ``GOOGLE_CLOUD_LOCATION``
  (default ``us-central1``); base URL ``VERTEX_AI_BASE_URL``.

Options ``api_key_env`` / ``base_url_env`` name other variables (``api_key_env: none``: a server that wants no
key), ``api_key`` / ``base_url`` give values directly;
``max_retries`` (default 2, the SDKs' own default) sets the SDK's retries of 429/5xx/timeouts.
SDK clients are cached per (provider id, key, base URL, retries) and closed by :func:`aclose_all`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ._llm_types import AUTHENTICATION, INVALID_REQUEST, EventSink, LlmError, LlmRequest, LlmResponse

log = logging.getLogger("wippy.llm")

OPENAI = "wippy.llm.openai:provider"
OPENAI_COMPAT = "wippy.llm.openai_compat:provider"
CLAUDE = "wippy.llm.claude:provider"
GEMINI = "wippy.llm.google.generative_ai:provider"
VERTEX = "wippy.llm.google.vertex:provider"
LOCAL = "wippy.llm.local:provider"
PROVIDER_IDS = (OPENAI, OPENAI_COMPAT, CLAUDE, GEMINI, VERTEX, LOCAL)

#: SDK retries of rate limits, 5xx and timeouts unless ``options.max_retries`` says otherwise
DEFAULT_MAX_RETRIES = 2


class Provider(Protocol):
    """One vendor endpoint: what the Lua ``llm`` library calls after it has resolved a model."""

    id: str

    async def generate(self, req: LlmRequest, on_event: EventSink | None = None) -> LlmResponse:
        """Generate a reply; with ``on_event``, stream chunk/thinking/tool_call events as they arrive."""
        ...

    async def structured(self, req: LlmRequest, schema: dict[str, Any],
                         name: str = "output") -> tuple[Any, LlmResponse]:
        """Generate with the vendor's native JSON-schema mode; the decoded value and the response."""
        ...

    async def embed(self, texts: list[str], model: str,
                    dimensions: int | None = None) -> tuple[list[list[float]], dict[str, int]]:
        """One vector per text, plus the token usage."""
        ...

    async def status(self) -> dict[str, Any]:
        """``{success, status = healthy|degraded|unhealthy, message}`` from a cheap vendor call."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderConfig:
    """What a provider needs, resolved from its options and env once."""

    provider_id: str
    #: the vendor's name in messages ("OpenAI", "Anthropic", ...)
    label: str
    api_key: str | None
    #: the variable(s) the key was looked up in, for the missing-key message
    key_env: str
    base_url: str
    max_retries: int
    options: Mapping[str, Any]
    #: a client of this provider's SDK (built once per cache key, closed by aclose_all)
    client: Callable[[], Any]

    def require_key(self) -> str:
        if not self.api_key:
            raise LlmError(f"{self.label} API key is missing: set the environment variable {self.key_env}",
                           error_type=AUTHENTICATION, provider=self.label)
        return self.api_key


# ------------------------------------------------------------------------------------ client cache

_clients: dict[tuple[Any, ...], tuple[Any, Callable[[Any], Awaitable[None]]]] = {}


async def aclose_all() -> None:
    """Close every cached SDK client (the node calls this at shutdown); safe to call twice."""
    entries = list(_clients.values())
    _clients.clear()
    for client, close in entries:
        try:
            await close(client)
        except Exception as exc:  # closing is best effort: one broken pool must not keep others open
            log.warning("closing an LLM client failed: %s", exc)


# ----------------------------------------------------------------------------------------- factory


def make_provider(provider_id: str, options: Mapping[str, Any], env: Callable[[str], str | None]) -> Provider:
    """The provider for ``provider_id`` configured from ``options`` (driver options) and ``env``."""
    options = dict(options or {})

    def first(*names: str) -> str | None:
        for name in names:
            value = env(name)
            if value:
                return value
        return None

    def key_and_url(default_keys: tuple[str, ...], default_urls: tuple[str, ...]) -> tuple[str | None, str, str | None]:
        urls = (str(options["base_url_env"]),) if options.get("base_url_env") else default_urls
        if str(options.get("api_key_env", "")).lower() == "none":  # Wippy's spelling for a keyless server
            base = str(options["base_url"]) if options.get("base_url") else first(*urls)
            return "not-needed", "none", base
        keys = (str(options["api_key_env"]),) if options.get("api_key_env") else default_keys
        api_key = str(options["api_key"]) if options.get("api_key") else first(*keys)
        base_url = str(options["base_url"]) if options.get("base_url") else first(*urls)
        return api_key, " or ".join(keys), base_url

    retries = _retries(provider_id, options)
    if provider_id in (OPENAI, OPENAI_COMPAT):
        from . import _llm_openai, _llm_openai_responses

        compat = provider_id == OPENAI_COMPAT
        defaults = (("OPENAI_COMPAT_API_KEY",), ("OPENAI_COMPAT_BASE_URL",)) if compat else (
            ("OPENAI_API_KEY",), ("OPENAI_BASE_URL",))
        api_key, key_env, base_url = key_and_url(*defaults)
        if compat and not base_url:
            raise LlmError(f"{provider_id} needs a base URL: set options.base_url or the environment variable "
                           f"{options.get('base_url_env') or 'OPENAI_COMPAT_BASE_URL'}",
                           error_type=INVALID_REQUEST, provider="OpenAI-compatible")
        config = _config(provider_id, "OpenAI-compatible server" if compat else "OpenAI", api_key, key_env,
                         base_url or "https://api.openai.com/v1", retries=retries, options=options,
                         factory=_llm_openai.new_client)
        if options.get("api") == "responses":
            return _llm_openai_responses.ResponsesProvider(config)
        return _llm_openai.ChatProvider(config, compat=compat)
    if provider_id == CLAUDE:
        from . import _llm_anthropic

        api_key, key_env, base_url = key_and_url(("ANTHROPIC_API_KEY",), ("ANTHROPIC_BASE_URL",))
        return _llm_anthropic.AnthropicProvider(_config(
            provider_id, "Anthropic", api_key, key_env, base_url or "https://api.anthropic.com", retries=retries,
            options=options, factory=_llm_anthropic.new_client))
    if provider_id in (GEMINI, VERTEX):
        from . import _llm_google

        if provider_id == GEMINI:
            api_key, key_env, base_url = key_and_url(("GEMINI_API_KEY", "GOOGLE_API_KEY"),
                                                     ("GEMINI_BASE_URL", "GEN_AI_API_BASE_URL"))
            label, default_url = "Gemini", "https://generativelanguage.googleapis.com/"
        else:
            api_key, key_env, base_url = key_and_url(("GOOGLE_API_KEY",), ("VERTEX_AI_BASE_URL",))
            options.setdefault("project", first("VERTEX_AI_PROJECT", "GOOGLE_CLOUD_PROJECT"))
            options.setdefault("location", first("VERTEX_AI_LOCATION", "GOOGLE_CLOUD_LOCATION") or "us-central1")
            options.setdefault("credentials_json", first(str(options.get("credentials_env") or "GOOGLE_CREDENTIALS")))
            label, default_url = "Vertex AI", f"https://{options['location']}-aiplatform.googleapis.com/"
        return _llm_google.GoogleProvider(_config(
            provider_id, label, api_key, key_env, base_url or default_url, retries=retries, options=options,
            factory=_llm_google.new_client))
    if provider_id == LOCAL:
        from ._embed_local import LocalProvider  # onnxruntime and the model load on the first embed

        return LocalProvider()
    known = ", ".join(PROVIDER_IDS)
    raise LlmError(f"unknown LLM provider {provider_id!r}: the built-in providers are {known}",
                   error_type=INVALID_REQUEST)


def _retries(provider_id: str, options: Mapping[str, Any]) -> int:
    raw = options.get("max_retries", DEFAULT_MAX_RETRIES)
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
        raise LlmError(f"{provider_id}: options.max_retries must be a non-negative integer, not {raw!r}",
                       error_type=INVALID_REQUEST)
    return int(raw)


ClientFactory = Callable[[ProviderConfig], tuple[Any, Callable[[Any], Awaitable[None]]]]


def _config(provider_id: str, label: str, api_key: str | None, key_env: str, base_url: str, *, retries: int,
            options: dict[str, Any], factory: ClientFactory) -> ProviderConfig:
    """A config whose ``client()`` builds (once per cache key) the SDK client with ``factory``."""
    scope = tuple(options.get(k) for k in ("project", "location", "credentials_json"))
    key = (provider_id, api_key, base_url, retries, *scope)

    def client() -> Any:
        hit = _clients.get(key)
        if hit is None:  # built on first use: SDK clients pool connections, so calls share them
            hit = _clients[key] = factory(config)
        return hit[0]

    config = ProviderConfig(provider_id=provider_id, label=label, api_key=api_key, key_env=key_env,
                            base_url=base_url, max_retries=retries, options=options, client=client)
    return config
