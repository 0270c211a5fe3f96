"""The embedding model: loaded once per process, from the packaged folder by default, never from a hub."""

from __future__ import annotations

import json
import os
import shutil
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from tqdm import tqdm

_lock = threading.Lock()


def offline() -> None:
    """Tell the Hugging Face libraries, before they are first imported, that nothing may reach a model hub
    (and that loading a local model, a second's work, needs no progress bar of its own)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Texts per forward pass: on 2 CPU cores 16 beats 32 and 64, since texts sorted by length pad less
# in small batches.
BATCH = 16


class Embedder:
    """Sentence-transformers encoder with normalised vectors, and a word-piece counter.

    With a compiled encoder (see :func:`compile_encoder`) it runs that instead: the same model
    and the same vectors, without importing sentence-transformers, which saves seconds at start.
    Small batches of short texts (questions) are remembered in a bounded LRU; large batches
    (ingestion) pass straight through.
    """

    CACHE_ITEMS = 20_000
    CACHE_BATCH = 256
    CACHE_CHARS = 2_000

    def __init__(self, model_path: str, compiled: Path | None = None, device: str = "cpu") -> None:
        offline()
        self.model_path, self.device = model_path, device
        self._model = None
        self._fast = load_compiled(compiled) if compiled else None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.hits = self.misses = 0

    @property
    def compiled(self) -> bool:
        return self._fast is not None

    @property
    def max_seq_length(self) -> int:
        return self._fast.max_seq_length if self._fast is not None else int(self.model.max_seq_length)

    @property
    def dim(self) -> int:
        """The vectors' length (asking it of a model not yet loaded loads it: a run that reads no file never does)."""
        if self._fast is not None:
            return self._fast.dim
        return int((getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension)())

    @property
    def model(self):
        """The sentence-transformers model (loaded on first use when a compiled encoder runs)."""
        if self._model is None:
            # Imported here: it takes seconds, and the compiled encoder runs without it.
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(self.model_path, device=self.device, local_files_only=True)
        return self._model

    @property
    def tokenizer(self):
        return self.model.tokenizer

    def _encode(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with _lock:  # torch on 2 cores: one encode at a time is faster than contending
            if self._fast is not None:
                return self._fast.encode(texts, batch_size, progress)
            vecs = self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=progress)
        return vecs.astype(np.float32)

    def encode(self, texts: list[str], batch_size: int = BATCH, progress: bool = False) -> np.ndarray:
        """Normalised vectors of ``texts``."""
        if len(texts) > self.CACHE_BATCH or progress:
            return self._encode(texts, batch_size, progress)
        with self._cache_lock:
            known = {t: self._cache[t] for t in texts if t in self._cache}
            for t in known:
                self._cache.move_to_end(t)
        todo = list(dict.fromkeys(t for t in texts if t not in known))
        fresh = dict(zip(todo, self._encode(todo, batch_size, False)))
        with self._cache_lock:
            self.misses += len(todo)
            self.hits += len(texts) - len(todo)
            self._cache.update((t, v) for t, v in fresh.items() if len(t) <= self.CACHE_CHARS)
            while len(self._cache) > self.CACHE_ITEMS:
                self._cache.popitem(last=False)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([known[t] if t in known else fresh[t] for t in texts])

    def clear_cache(self) -> None:
        """Forget the remembered vectors, so that a timed call pays for encoding as a new question would."""
        with self._cache_lock:
            self._cache.clear()

    def remembers(self, text: str) -> bool:
        with self._cache_lock:
            return text in self._cache

    @property
    def words(self) -> frozenset[str]:
        return model_words(self.model_path)

    def count_tokens(self, text: str) -> int:
        """Word pieces the model would read, without the special tokens."""
        if self._fast is not None:
            return len(self._fast.counter.encode(text, add_special_tokens=False).ids)
        return len(self.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])


@lru_cache(maxsize=4)
def model_words(model_path: str) -> frozenset[str]:
    """The whole words of a model's word-piece vocabulary, lower case (from its vocab.txt; none if it has none)."""
    vocab = Path(model_path) / "vocab.txt"
    if not vocab.exists():
        return frozenset()
    return frozenset(w.lower() for w in vocab.read_text(encoding="utf-8").split() if w.isalpha())


def get_embedder(model_path: str, compiled: Path | None = None, device: str = "cpu") -> Embedder:
    """One model per process, path and device (tests and the app share it); on the CPU, the compiled
    encoder when one exists at ``compiled``."""
    usable = compiled is not None and compiled.exists() and device == "cpu"
    return _embedder(model_path, compiled if usable else None, device)


@lru_cache(maxsize=4)
def _embedder(model_path: str, compiled: Path | None, device: str) -> Embedder:
    return Embedder(model_path, compiled, device)


# -- the compiled encoder -------------------------------------------------------------------------
@dataclass
class CompiledEncoder:
    """A TorchScript trace of transformer + mean pooling + normalisation, and the model's tokenizer."""

    module: object
    tokenizer: object  # tokenizers.Tokenizer, truncating and padding as sentence-transformers does
    counter: object    # the same tokenizer without truncation, to count word pieces
    dim: int
    max_seq_length: int

    def encode(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        import torch  # seconds to import: only when encoding

        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # little padding per batch
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for b in tqdm(range(0, len(order), batch_size), disable=not progress, desc="Batches"):
                part = order[b:b + batch_size]
                enc = self.tokenizer.encode_batch([texts[i] for i in part])
                vecs = self.module(torch.tensor([e.ids for e in enc]), torch.tensor([e.attention_mask for e in enc]),
                                   torch.tensor([e.type_ids for e in enc]))
                out[part] = vecs.numpy()
        return out


def _mean_pooled(transformer):
    """The transformer followed by mean pooling and normalisation, as one torch module to trace."""
    import torch  # seconds to import: only when compiling

    class MeanPooled(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids, return_dict=False)[0]
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    return MeanPooled(transformer)


CHECK_TEXTS = ["How did others handle pooled budgets?", "Trust",
               "Leaders agreed a shared purpose over two long years of talks. " * 40]


def compile_encoder(embedder: Embedder, path: Path) -> bool:
    """Trace the embedder's model into ``path`` (TorchScript, with its tokenizer beside it) so that
    a server can start without importing sentence-transformers. Only models made of a transformer,
    mean pooling and normalisation qualify; the trace must reproduce the model's vectors, else
    nothing is written. Returns whether a compiled encoder is at ``path``."""
    import torch  # seconds to import: only when compiling

    model = embedder.model
    kinds = [type(m).__name__ for m in model]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]) \
            or getattr(model[1], "pooling_mode", "") != "mean" or not hasattr(model.tokenizer, "backend_tokenizer"):
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        model.tokenizer.backend_tokenizer.save(str(tmp / "tokenizer.json"))
        (tmp / "encoder.json").write_text(json.dumps({
            "model": embedder.model_path, "dim": embedder.dim, "max_seq_length": embedder.max_seq_length,
            "pad_id": model.tokenizer.pad_token_id, "pad_token": model.tokenizer.pad_token}))
        enc = model.tokenizer(CHECK_TEXTS[:2], padding=True, truncation=True, max_length=embedder.max_seq_length,
                              return_tensors="pt")
        from transformers.utils import logging as hf_logging  # loaded with the model already

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # its notes about the config are not the user's business
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on shape-dependent branches; checked below
            traced = torch.jit.trace(_mean_pooled(model[0].auto_model.eval()),
                                     (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]), strict=False)
        hf_logging.set_verbosity(verbosity)
        traced.save(str(tmp / "encoder.pt"))
        fast = load_compiled(tmp)
        expected = model.encode(CHECK_TEXTS, normalize_embeddings=True, convert_to_numpy=True)
        if fast is None or abs(fast.encode(CHECK_TEXTS, 8, False) - expected).max() > 1e-4:
            return False
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
        return True
    except Exception:  # noqa: BLE001 - an architecture the trace cannot follow: keep sentence-transformers
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_compiled(path: Path) -> CompiledEncoder | None:
    """The compiled encoder in ``path``, or None when there is none or it cannot be loaded."""
    try:
        meta = json.loads((path / "encoder.json").read_text())
        import torch  # seconds to import: only when a compiled encoder is loaded
        from tokenizers import Tokenizer

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, still supported
            module = torch.jit.load(str(path / "encoder.pt"), map_location="cpu").eval()
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        counter = Tokenizer.from_file(str(path / "tokenizer.json"))
        counter.no_truncation()
        counter.no_padding()
        tokenizer.enable_truncation(int(meta["max_seq_length"]))
        tokenizer.enable_padding(pad_id=int(meta["pad_id"]), pad_token=str(meta["pad_token"]))
    except (OSError, ValueError, KeyError, RuntimeError, ImportError):
        return None
    return CompiledEncoder(module, tokenizer, counter, int(meta["dim"]), int(meta["max_seq_length"]))


@lru_cache(maxsize=2)
def get_cross_encoder(model_path: str):
    """An optional reranker (``KB_RERANKER``): a local cross-encoder folder or cached model name."""
    offline()
    from sentence_transformers import CrossEncoder  # optional and slow to import

    return CrossEncoder(model_path, device="cpu", local_files_only=True)
