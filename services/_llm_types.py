"""The vendor-neutral shapes of an LLM call: request, response, error, and the helpers every provider shares.

A request carries messages in Wippy's wire format (``{role, content = [{type = "text", text} |
{type = "image", source}], function_call?, function_call_id?, name?, metadata?}``, plus the
``cache_marker`` pseudo-role); each provider module maps it to its vendor's API and maps the answer
back into an :class:`LlmResponse`. Failures are :class:`LlmError` with one of Wippy's
``llm.ERROR_TYPE`` values, so the Lua layer can hand ``err.error_type`` to the app unchanged and a
supervisor can read ``retryable`` without knowing the vendor.

::

    WippyError
    └── LlmError        a provider call failed (error_type says why, retryable says whether to retry)
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import math
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wippy.core import WippyError

log = logging.getLogger("wippy.llm")

#: ``llm.ERROR_TYPE`` values (Wippy's public constants, plus ``network_error`` from its output module)
INVALID_REQUEST = "invalid_request"
AUTHENTICATION = "authentication_error"
RATE_LIMIT = "rate_limit_exceeded"
SERVER_ERROR = "server_error"
CONTEXT_LENGTH = "context_length_exceeded"
CONTENT_FILTER = "content_filter"
TIMEOUT = "timeout_error"
MODEL_ERROR = "model_error"
NETWORK_ERROR = "network_error"
#: ``output.ERROR_TYPE.CONTENT_FILTER``: Wippy's output module spells it apart from ``llm.ERROR_TYPE``'s
CONTENT_FILTERED = "content_filtered"

#: ``llm.FINISH_REASON`` values
STOP, LENGTH, TOOL_CALL, FILTERED, ERROR = "stop", "length", "tool_call", "filtered", "error"

#: error type -> (Wippy ``errors`` kind, retryable), as Wippy's llm output module maps them
_KINDS: dict[str, tuple[str, bool]] = {
    RATE_LIMIT: ("RATE_LIMITED", True),
    SERVER_ERROR: ("UNAVAILABLE", True),
    TIMEOUT: ("TIMEOUT", True),
    NETWORK_ERROR: ("UNAVAILABLE", True),
    INVALID_REQUEST: ("INVALID", False),
    AUTHENTICATION: ("PERMISSION_DENIED", False),
    MODEL_ERROR: ("NOT_FOUND", False),
    CONTEXT_LENGTH: ("INVALID", False),
    CONTENT_FILTER: ("INVALID", False),
    CONTENT_FILTERED: ("INVALID", False),
}

#: the constant tables Lua sees, by their Lua names: ``llm.ERROR_TYPE``, ``llm.FINISH_REASON`` (also
#: ``output.FINISH_REASON``) and ``output.ERROR_TYPE`` of Wippy's ``wippy/llm`` libraries
LUA_ERROR_TYPE: dict[str, str] = {
    "INVALID_REQUEST": INVALID_REQUEST, "AUTHENTICATION": AUTHENTICATION, "RATE_LIMIT": RATE_LIMIT,
    "SERVER_ERROR": SERVER_ERROR, "CONTEXT_LENGTH": CONTEXT_LENGTH, "CONTENT_FILTER": CONTENT_FILTER,
    "TIMEOUT": TIMEOUT, "MODEL_ERROR": MODEL_ERROR,
}
LUA_FINISH_REASON: dict[str, str] = {
    "STOP": STOP, "LENGTH": LENGTH, "CONTENT_FILTER": FILTERED, "TOOL_CALL": TOOL_CALL, "ERROR": ERROR,
}
LUA_OUTPUT_ERROR_TYPE: dict[str, str] = {
    **LUA_ERROR_TYPE, "CONTENT_FILTER": CONTENT_FILTERED, "NETWORK_ERROR": NETWORK_ERROR,
}


def error_kind(error_type: str) -> tuple[str, bool]:
    """The Wippy ``errors`` kind and retryability of an ``ERROR_TYPE`` value (UNKNOWN, not retryable, if none)."""
    return _KINDS.get(error_type, ("UNKNOWN", False))

#: what a streaming caller receives: ``{"type": "chunk"|"thinking"|"tool_call", ...}``
EventSink = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class LlmRequest:
    """One model call in Wippy's vendor-neutral terms (``model`` is the provider's own model name)."""

    model: str
    messages: list[dict[str, Any]]
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    top_k: int | None = None
    #: 0-100, mapped to each vendor's reasoning/thinking control; None = the model's default
    thinking_effort: int | None = None
    #: ``[{name, description, schema}]``
    tools: list[dict[str, Any]] = field(default_factory=list)
    #: "auto" | "none" | "any" | a tool name
    tool_choice: str | None = None
    #: seconds for the whole call, streaming included
    timeout: float = 600.0
    #: extra provider options (see each provider module for the names it honours)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class LlmResponse:
    """A model's answer in Wippy's ``llm.generate`` response shape."""

    result: str
    #: ``[{id, name, arguments: dict}]`` (plus ``provider_metadata`` where the vendor needs it echoed back)
    tool_calls: list[dict[str, Any]]
    #: "stop" | "length" | "tool_call" | "filtered" | "error"
    finish_reason: str
    #: prompt_tokens, completion_tokens, thinking_tokens, total_tokens, cache_read_tokens, cache_write_tokens;
    #: the same meaning for every vendor: prompt_tokens counts all input (cached included), completion_tokens
    #: all output (thinking included, thinking_tokens being the part of it), total = prompt + completion
    tokens: dict[str, int]
    thinking: str | None = None
    #: provider, model, id, latency_ms, and vendor extras (e.g. Anthropic ``thinking_blocks``)
    metadata: dict[str, Any] = field(default_factory=dict)


class LlmError(WippyError):
    """A provider call failed; ``error_type`` is one of Wippy's ``llm.ERROR_TYPE`` values."""

    def __init__(self, message: str, *, error_type: str = SERVER_ERROR, status: int | None = None,
                 retry_after: float | None = None, provider: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.kind, self.retryable = error_kind(error_type)
        self.status = status
        self.retry_after = retry_after
        self.provider = provider

    def to_dict(self) -> dict[str, Any]:
        """The ``{message, type, ...}`` table a streaming ``error`` event and the Lua layer carry."""
        out: dict[str, Any] = {"message": self.message, "type": self.error_type, "retryable": self.retryable}
        if self.status is not None:
            out["status"] = self.status
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        return out


_CONTEXT = re.compile(r"context.{0,20}(length|window)|maximum.{0,40}tokens|too many tokens|prompt is too long", re.I)
_FILTER = re.compile(r"content.{0,10}(policy|filter|management)|safety system", re.I)


def vendor_message(body: object, fallback: str) -> str:
    """The human message inside a vendor's JSON error body (``{"error": {"message"}}`` and its kin)."""
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
        if isinstance(body.get("message"), str):
            return str(body["message"])
    if isinstance(body, str) and body:
        return body
    return fallback


def retry_after_of(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a ``retry-after`` (or ``retry-after-ms``) response header, if it holds a number."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            seconds = float(raw) * scale
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


def status_error(provider: str, status: int, message: str, *, retry_after: float | None = None) -> LlmError:
    """Map an HTTP status plus the vendor's message to an :class:`LlmError` a user can act on."""
    if status in {400, 422}:
        error_type = INVALID_REQUEST
    elif status in (401, 403):
        error_type = AUTHENTICATION
    elif status == 404:
        error_type = MODEL_ERROR
    elif status == 408:
        error_type = TIMEOUT
    elif status == 413:
        error_type = CONTEXT_LENGTH
    elif status == 429:
        error_type = RATE_LIMIT
    else:
        error_type = SERVER_ERROR if status >= 500 else INVALID_REQUEST
    if error_type in (INVALID_REQUEST, SERVER_ERROR) and _CONTEXT.search(message):
        error_type = CONTEXT_LENGTH
    elif error_type == INVALID_REQUEST and _FILTER.search(message):
        error_type = CONTENT_FILTER
    text = f"{provider} returned HTTP {status} ({error_type}): {message}"
    if retry_after is not None:
        text += f" (retry after {retry_after:g}s)"
    return LlmError(text, error_type=error_type, status=status, retry_after=retry_after, provider=provider)


def timeout_error(provider: str, seconds: float) -> LlmError:
    return LlmError(f"{provider} did not answer within {seconds:g}s", error_type=TIMEOUT, provider=provider)


def network_error(provider: str, detail: str) -> LlmError:
    return LlmError(f"cannot reach {provider}: {detail}", error_type=NETWORK_ERROR, provider=provider)


#: turns one SDK's exceptions into LlmError; None for exceptions that are not the SDK's
Translate = Callable[[Exception], LlmError | None]


async def load_sdk(provider: str, modules: tuple[str, ...]) -> None:
    """Import a vendor SDK in a worker thread the first time it is needed.

    Importing an SDK takes up to seconds (anthropic: over one); done on the event loop it would
    stall every other task of the node.
    """
    missing = [m for m in modules if m not in sys.modules]
    if not missing:
        return
    try:
        await asyncio.to_thread(lambda: [importlib.import_module(m) for m in missing])
    except ImportError as exc:
        raise LlmError(f"the {provider} SDK is not installed ({exc}); install the runtime's dependencies",
                       error_type=INVALID_REQUEST, provider=provider) from exc


@contextlib.asynccontextmanager
async def guarded(provider: str, seconds: float, translator: Callable[[], Translate],
                  sdk: tuple[str, ...]) -> AsyncIterator[None]:
    """Run a vendor call under a deadline, turning the SDK's exceptions into LlmError (chained with ``from``).

    The SDK modules ``sdk`` are loaded first (off the loop); ``translator()`` then gives the
    function that knows that SDK's exception classes and returns None for anything else, which
    propagates unchanged (a failing ``on_event`` callback is the caller's error, not the vendor's).
    """
    await load_sdk(provider, sdk)
    translate = translator()
    try:
        async with asyncio.timeout(seconds):
            yield
    except LlmError:
        raise
    except TimeoutError as exc:
        raise timeout_error(provider, seconds) from exc
    except Exception as exc:
        error = translate(exc)
        if error is None:
            raise
        raise error from exc


async def probe(provider: str, translator: Callable[[], Translate], sdk: tuple[str, ...],
                call: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    """A provider's ``status``: ``call`` (a cheap vendor request, e.g. listing models) under
    ``guarded`` with a 30 s deadline, its outcome as ``status_result``."""
    try:
        async with guarded(provider, 30.0, translator, sdk):
            await call()
    except LlmError as exc:
        return status_result(provider, exc)
    return status_result(provider, None)


def status_result(provider: str, error: LlmError | None) -> dict[str, Any]:
    """Wippy's provider ``status`` answer: rate limits and 5xx are "degraded", other failures "unhealthy"."""
    if error is None:
        return {"success": True, "status": "healthy", "message": f"{provider} API is responding normally"}
    degraded = error.error_type in (RATE_LIMIT, SERVER_ERROR)
    return {"success": False, "status": "degraded" if degraded else "unhealthy", "message": error.message,
            "error_type": error.error_type}


_warned: set[tuple[str, ...]] = set()


def warn_once(key: tuple[str, ...], message: str, *args: object) -> None:
    """Log a warning the first time ``key`` is seen (a per-step warning would flood agent loops)."""
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)


# ------------------------------------------------------------------------------------ parameters


def effort_level(effort: int) -> str:
    """A 0-100 thinking effort as OpenAI's reasoning effort: below 25 low, below 75 medium, else high."""
    return "low" if effort < 25 else "medium" if effort < 75 else "high"


def thinking_budget(effort: int, *, floor: int = 1024, ceiling: int = 24000) -> int:
    """A 0-100 thinking effort as a thinking-token budget between ``floor`` and ``ceiling``."""
    effort = max(0, min(100, effort))
    return round(floor + (ceiling - floor) * effort / 100)


def usage(*, prompt: int = 0, completion: int = 0, thinking: int = 0, total: int | None = None,
          cache_read: int = 0, cache_write: int = 0) -> dict[str, int]:
    """Wippy's token table; ``total`` defaults to prompt + completion."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "thinking_tokens": thinking,
        "total_tokens": prompt + completion if total is None else total,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
    }


def decode_json(provider: str, text: str) -> Any:
    """The model's structured-output text decoded, or an LlmError quoting the start of what came back."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise LlmError(f"{provider} returned text that is not valid JSON for the schema: {text[:200]!r}",
                       error_type=MODEL_ERROR, provider=provider) from exc


def sdk_translator(label: str, sdk: Any, base: type[Exception]) -> Callable[[Exception], LlmError | None]:
    """The exception mapping of the openai and anthropic SDKs (both generated alike): their
    timeout, connection and HTTP status errors, and ``base`` (the SDK's root error) for the rest."""
    def translate(exc: Exception) -> LlmError | None:
        if isinstance(exc, sdk.APITimeoutError):
            return LlmError(f"{label} timed out: {exc}", error_type=TIMEOUT, provider=label)
        if isinstance(exc, sdk.APIConnectionError):
            return network_error(label, str(exc.__cause__ or exc))
        if isinstance(exc, sdk.APIStatusError):
            return status_error(label, exc.status_code, vendor_message(exc.body, exc.message),
                                retry_after=retry_after_of(exc.response.headers))
        if isinstance(exc, base):
            return LlmError(f"{label}: {exc}", error_type=MODEL_ERROR, provider=label)
        return None

    return translate

