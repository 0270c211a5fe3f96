"""The embedding model: loaded once per process, from the packaged folder by default, never from a hub."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from functools import lru_cache

import numpy as np

# Nothing may reach a model hub at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_lock = threading.Lock()


class Embedder:
    """Sentence-transformers encoder with normalised vectors, and a word-piece counter.

    Small batches of short texts (questions, and the sentences answers are built from) are
    remembered in a bounded LRU, so asking again or about a neighbouring topic does not encode
    the same sentences twice; large batches (ingestion) pass straight through.
    """

    CACHE_ITEMS = 20_000
    CACHE_BATCH = 256
    CACHE_CHARS = 2_000

    def __init__(self, model_path: str) -> None:
        from sentence_transformers import SentenceTransformer

        self.model_path = model_path
        self.model = SentenceTransformer(model_path, device="cpu", local_files_only=True)
        self.tokenizer = self.model.tokenizer
        self.max_seq_length = int(self.model.max_seq_length)
        self.dim = int((getattr(self.model, 'get_embedding_dimension', None) or self.model.get_sentence_embedding_dimension)())
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.hits = self.misses = 0
        self._waiting = 0  # encodes that someone is waiting for; background work yields to them

    def _encode(self, texts: list[str], batch_size: int, progress: bool, background: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if background:
            while self._waiting:
                time.sleep(0.01)
        else:
            with self._cache_lock:
                self._waiting += 1
        try:
            with _lock:  # torch on 2 cores: one encode at a time is faster than contending
                vecs = self.model.encode(
                    texts, batch_size=batch_size, normalize_embeddings=True,
                    convert_to_numpy=True, show_progress_bar=progress,
                )
        finally:
            if not background:
                with self._cache_lock:
                    self._waiting -= 1
        return vecs.astype(np.float32)

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False,
               background: bool = False) -> np.ndarray:
        """Vectors of ``texts``; ``background`` work waits while any other encode is waiting."""
        if len(texts) > self.CACHE_BATCH or progress:
            return self._encode(texts, batch_size, progress, background)
        with self._cache_lock:
            known = {t: self._cache[t] for t in texts if t in self._cache}
            for t in known:
                self._cache.move_to_end(t)
        todo = list(dict.fromkeys(t for t in texts if t not in known))
        fresh = dict(zip(todo, self._encode(todo, batch_size, False, background)))
        with self._cache_lock:
            self.misses += len(todo)
            self.hits += len(texts) - len(todo)
            self._cache.update((t, v) for t, v in fresh.items() if len(t) <= self.CACHE_CHARS)
            while len(self._cache) > self.CACHE_ITEMS:
                self._cache.popitem(last=False)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([known[t] if t in known else fresh[t] for t in texts])

    def remembers(self, text: str) -> bool:
        with self._cache_lock:
            return text in self._cache

    def count_tokens(self, text: str) -> int:
        """Word pieces the model would read, without the special tokens."""
        return len(self.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])


@lru_cache(maxsize=4)
def get_embedder(model_path: str) -> Embedder:
    """One model per process and path (tests and the app share it)."""
    return Embedder(model_path)


@lru_cache(maxsize=2)
def get_cross_encoder(model_path: str):
    """An optional reranker (``KB_RERANKER``): a local cross-encoder folder or cached model name."""
    from sentence_transformers import CrossEncoder

    return CrossEncoder(model_path, device="cpu", local_files_only=True)
