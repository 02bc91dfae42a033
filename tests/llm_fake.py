"""A fake LLM vendor on loopback that the real SDKs talk to: OpenAI, Anthropic and Gemini in one aiohttp app.

It speaks enough of each API to drive the official SDKs end to end: OpenAI Chat Completions
(with ``stream=true`` SSE, tool-call deltas and usage), OpenAI Responses (and its event stream),
OpenAI embeddings, Anthropic Messages (streaming events, ``tool_use`` and ``thinking`` blocks),
Gemini ``generateContent``/``streamGenerateContent``/``batchEmbedContents``/``embedContent`` and
Vertex ``predict``, the model lists the providers' ``status`` reads, and ``POST /token`` for a
Google service account's OAuth exchange.

Tests script it: ``fake.queue(reply(...), tool_call(...), error(429, retry_after=2))`` lines up
vendor-neutral replies that each API renders in its own format, one per request in arrival order;
with nothing queued a generation echoes the last user text. Every request is recorded
(``fake.requests``, ``fake.last(api)``) so tests assert on what the SDK actually sent.
Embeddings are deterministic unit vectors derived from a hash of the text.

Use the ``llm_fake`` fixture (import ``llm_fake_fixture`` into a test module or conftest; the
fixture's name differs from the function's so the import does not shadow test arguments);
``fake.env`` is an env lookup that points every built-in provider at the fake with test keys.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import math
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.llm_fake_render import render_json, render_stream


@dataclass
class Reply:
    """One canned answer, rendered by whichever API receives the next request."""

    text: str = ""
    #: (id, name, arguments)
    tool_calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    thinking: str | None = None
    #: neutral finish: "stop" | "length" | "tool_call" | "filtered"; None = tool_call when calls, else stop
    finish: str | None = None
    prompt_tokens: int = 11
    completion_tokens: int = 7
    reasoning_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    #: an HTTP error instead of an answer when not 200
    status: int = 200
    error: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    #: seconds to wait before answering (cut short when the server stops)
    delay: float = 0.0

    @property
    def finish_reason(self) -> str:
        return self.finish or ("tool_call" if self.tool_calls else "stop")


def reply(text: str = "", **kw: Any) -> Reply:
    """A text answer (keywords: any :class:`Reply` field)."""
    return Reply(text=text, **kw)


def tool_call(name: str, arguments: dict[str, Any], *, call_id: str = "call_1", text: str = "", **kw: Any) -> Reply:
    """An answer that calls one tool."""
    return Reply(text=text, tool_calls=[(call_id, name, arguments)], **kw)


def error(status: int, message: str = "", *, retry_after: float | None = None,
          headers: dict[str, str] | None = None, **kw: Any) -> Reply:
    """An HTTP error answer (``retry_after`` sets the retry-after header)."""
    headers = dict(headers or {})
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    return Reply(status=status, error=message or f"fake error {status}", headers=headers, **kw)


@dataclass
class Recorded:
    """A request the fake received: ``api`` is e.g. "openai.chat", "anthropic.messages", "gemini.generate"."""

    api: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


def embedding(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for ``text`` (same text, same vector)."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend(v / 2**31 - 1.0 for v in struct.unpack("<8I", digest))
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class FakeLlm:
    """The fake vendor server; ``url`` is its root (OpenAI clients use ``openai_url``)."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._replies: list[Reply] = []
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""
        self._ids = 0

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    def queue(self, *replies: Reply) -> None:
        self._replies.extend(replies)

    def last(self, api: str | None = None) -> Recorded:
        """The latest request (of ``api``, when given)."""
        matching = [r for r in self.requests if api is None or r.api == api]
        assert matching, f"the fake received no {api or ''} request"
        return matching[-1]

    def env(self, **extra: str) -> Callable[[str], str | None]:
        """An env lookup pointing every built-in provider at this fake (``extra`` adds or overrides)."""
        values = {
            "OPENAI_API_KEY": "sk-fake-openai", "OPENAI_BASE_URL": self.openai_url,
            "OPENAI_COMPAT_BASE_URL": self.openai_url,
            "ANTHROPIC_API_KEY": "sk-fake-anthropic", "ANTHROPIC_BASE_URL": self.url,
            "GEMINI_API_KEY": "fake-gemini", "GEMINI_BASE_URL": self.url,
            "GOOGLE_API_KEY": "fake-vertex", "VERTEX_AI_BASE_URL": self.url,
            **extra,
        }
        return lambda name: values.get(name) or None

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---------------------------------------------------------------------------------- routing

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
        api = self._api_of(request.method, path, request.headers)
        self.requests.append(Recorded(api, request.method, path, dict(request.query),
                                      {k.lower(): v for k, v in request.headers.items()}, body))
        if api == "unknown":
            return web.json_response({"error": {"message": f"fake: no route {request.method} {path}"}}, status=404)
        if api == "google.token":  # a service account's OAuth token exchange (its token_uri points here)
            return web.json_response({"access_token": "ya29.fake-token", "expires_in": 3600, "token_type": "Bearer"})
        canned = self._replies.pop(0) if self._replies else None
        if canned is not None and canned.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), canned.delay)
        if canned is not None and canned.status != 200:
            return web.json_response(_error_body(api, canned), status=canned.status, headers=canned.headers)
        if api in ("openai.embeddings", "gemini.embed", "vertex.predict"):
            return web.json_response(self._embeddings(api, body or {}))
        if api.endswith(".models"):
            return web.json_response(_models(api))
        self._ids += 1
        answer = canned or Reply(text=_last_user_text(api, body or {}))
        model = _model_of(api, path, body or {})
        stream = (isinstance(body, dict) and body.get("stream") is True) or api == "gemini.stream"
        if not stream:
            return web.json_response(render_json(api, answer, model, self._ids))
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        include_usage = bool(((body or {}).get("stream_options") or {}).get("include_usage"))
        for chunk in render_stream(api, answer, model, self._ids, include_usage=include_usage):
            await response.write(chunk.encode())
        await response.write_eof()
        return response

    @staticmethod
    def _api_of(method: str, path: str, headers: Any) -> str:
        if method == "GET" and path.rstrip("/").endswith("/models"):
            if "anthropic-version" in headers:
                return "anthropic.models"
            google = any(name.lower().startswith("x-goog") for name in headers)
            return "gemini.models" if google or not path.startswith("/v1/") else "openai.models"
        routes = {"/token": "google.token", "/v1/chat/completions": "openai.chat", "/v1/responses": "openai.responses",
                  "/v1/embeddings": "openai.embeddings", "/v1/messages": "anthropic.messages"}
        if path in routes:
            return routes[path]
        suffixes = {":generateContent": "gemini.generate", ":streamGenerateContent": "gemini.stream",
                    ":batchEmbedContents": "gemini.embed", ":embedContent": "gemini.embed",
                    ":predict": "vertex.predict"}
        return next((api for suffix, api in suffixes.items() if path.endswith(suffix)), "unknown")

    def _embeddings(self, api: str, body: dict[str, Any]) -> dict[str, Any]:
        if api == "openai.embeddings":
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            dims = int(body.get("dimensions") or 8)
            vectors = [embedding(str(t), dims) for t in texts]
            if body.get("encoding_format") == "base64":
                data = [base64.b64encode(struct.pack(f"<{dims}f", *v)).decode() for v in vectors]
            else:
                data = vectors  # type: ignore[assignment]
            tokens = sum(len(str(t).split()) for t in texts)
            return {"object": "list", "model": body.get("model"), "usage": {"prompt_tokens": tokens,
                                                                             "total_tokens": tokens},
                    "data": [{"object": "embedding", "index": i, "embedding": d} for i, d in enumerate(data)]}
        if api == "vertex.predict":
            dims = int((body.get("parameters") or {}).get("outputDimensionality") or 8)
            return {"predictions": [{"embeddings": {
                "values": embedding(str(i.get("content")), dims),
                "statistics": {"token_count": len(str(i.get("content")).split()), "truncated": False}}}
                for i in body.get("instances", [])]}
        requests = body.get("requests") or [body]
        out = []
        for req in requests:
            content = req.get("content") or {}
            text = "".join(str(p.get("text", "")) for p in content.get("parts", []))
            dims = int(req.get("outputDimensionality") or (req.get("embedContentConfig") or {}).get(
                "outputDimensionality") or 8)
            out.append({"values": embedding(text, dims)})
        return {"embeddings": out} if "requests" in body else {"embedding": out[0]}


def _error_body(api: str, canned: Reply) -> dict[str, Any]:
    if api.startswith("anthropic"):
        kinds = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error",
                 529: "overloaded_error"}
        return {"type": "error", "error": {"type": kinds.get(canned.status, "api_error"), "message": canned.error}}
    if api.startswith(("gemini", "vertex")):
        states = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                  429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
        return {"error": {"code": canned.status, "message": canned.error,
                          "status": states.get(canned.status, "UNKNOWN")}}
    return {"error": {"message": canned.error, "type": "fake_error", "code": str(canned.status)}}


def _models(api: str) -> dict[str, Any]:
    if api == "anthropic.models":
        return {"data": [{"id": "claude-fake", "type": "model", "display_name": "Claude Fake",
                          "created_at": "2025-01-01T00:00:00Z"}], "has_more": False,
                "first_id": "claude-fake", "last_id": "claude-fake"}
    if api == "gemini.models":
        return {"models": [{"name": "models/gemini-fake", "displayName": "Gemini Fake"}]}
    return {"object": "list", "data": [{"id": "gpt-fake", "object": "model", "created": int(time.time()),
                                        "owned_by": "fake"}]}


def _model_of(api: str, path: str, body: dict[str, Any]) -> str:
    if api.startswith("gemini"):
        return path.rsplit("/", 1)[-1].split(":", 1)[0]
    return str(body.get("model") or "fake-model")


def _text(content: Any, kinds: tuple[str, ...] = ("text", "input_text")) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") in kinds)
    return ""


def _last_user_text(api: str, body: dict[str, Any]) -> str:
    """What the default echo reply says: the last user text of the request."""
    if api.startswith("gemini"):
        users = [c for c in body.get("contents", []) if c.get("role", "user") == "user"]
        parts = users[-1].get("parts", []) if users else []
        return "".join(str(p.get("text", "")) for p in parts if "text" in p)
    if api == "openai.responses":
        items = body.get("input")
        if isinstance(items, str):
            return items
        users = [i for i in items or [] if i.get("role") == "user"]
        return _text(users[-1].get("content")) if users else ""
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    return _text(users[-1].get("content")) if users else ""


@pytest.fixture(name="llm_fake")
async def llm_fake_fixture() -> AsyncIterator[FakeLlm]:
    """A fresh fake vendor server for one test."""
    fake = FakeLlm()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


#: the fixture under its own name too, for modules that import it as ``llm_fake``
llm_fake = llm_fake_fixture


async def _serve() -> None:
    fake = FakeLlm()
    await fake.start()
    print(f"fake LLM vendor at {fake.url} (OpenAI: {fake.url}/v1); Ctrl-C to stop", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


if __name__ == "__main__":  # `python -m tests.llm_fake` from the project root: one to try apps without a key
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve())
