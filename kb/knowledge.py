"""The knowledge base as one object: what the CLI and the app both call.

It owns the parts (embedding model, Chroma store, documents, manifest, graph, BM25 index)
and loads each lazily, once.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kb.config import Settings
from kb.docstore import DocStore
from kb.manifest import Manifest
from kb.models import Document, Passage
from kb.ontology import OntologyError

if TYPE_CHECKING:
    from kb.store import SentenceRecord


class KnowledgeBase:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.docs = DocStore(self.settings.docs_dir)
        self._warm_lock = threading.Lock()
        self._warm_seconds: float | None = None
        self._warm_thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def warm_up(self) -> float:
        """Load the model and every index and answer once, so that the first real question is
        quick. Safe to call from several threads: the first does the work, the others wait for it.
        Returns the seconds the warm-up took."""
        with self._warm_lock:
            if self._warm_seconds is None:
                t0 = time.perf_counter()
                self.ask("How do leaders work across organisations?")
                self._warm_seconds = time.perf_counter() - t0
            return self._warm_seconds

    def compile_encoder(self) -> bool:
        """Compile the embedding model under ``KB_HOME/encoder`` once (see ``kb.embed.compile_encoder``):
        later processes then start seconds faster. Returns whether it compiled one just now."""
        from kb.embed import compile_encoder

        if self.settings.encoder_dir.exists() or self.embedder.compiled:
            return False
        return compile_encoder(self.embedder, self.settings.encoder_dir)

    def prepare_app(self) -> None:
        """What a long-running app wants before it starts: the shipped corpus ingested when the
        knowledge base is empty, and the compiled encoder."""
        if self.is_empty():
            self.ingest()
        self.compile_encoder()

    def warm_up_in_background(self) -> None:
        """Start :meth:`warm_up` in a thread, once; pages that need no model render meanwhile."""
        with self._start_lock:
            if self._warm_seconds is not None or self._warm_thread is not None:
                return
            self._warm_thread = threading.Thread(target=self.warm_up, name="kb-warm-up", daemon=True)
            self._warm_thread.start()

    # -- parts, loaded on first use -------------------------------------------------
    @cached_property
    def embedder(self):
        from kb.embed import get_embedder

        return get_embedder(self.settings.model_path, self.settings.encoder_dir)

    @cached_property
    def store(self):
        from kb.store import PassageStore

        return PassageStore(self.settings)

    @property
    def manifest(self) -> Manifest:
        if not hasattr(self, "_manifest"):
            self._manifest = Manifest(self.settings.manifest_path)
        return self._manifest

    @cached_property
    def vocabulary_hash(self) -> str:
        """A hash of the vocabulary files and the linking rules, so passages linked with older ones are re-linked."""
        from kb.linking import RULES_VERSION

        h = hashlib.sha256(f"linking rules {RULES_VERSION}\0".encode())
        for path in sorted(self.settings.ontology.glob("*.ttl")):
            h.update(path.name.encode() + b"\0" + path.read_bytes())
        return h.hexdigest()[:16]

    @cached_property
    def ontology(self):
        from kb.ontology import Ontology

        return Ontology.load(self.settings.ontology)

    @cached_property
    def graph(self):
        from kb.graph import KnowledgeGraph

        return KnowledgeGraph(self.settings.graph_path, self.ontology)

    @cached_property
    def linker(self):
        from kb.linking import Linker

        return Linker(self.ontology, self.embedder)

    @cached_property
    def retriever(self):
        from kb.retrieval import Retriever

        return Retriever(self)

    # -- ingestion ----------------------------------------------------------------------
    def ingest(self, paths: list[Path] | None = None, *, prune: bool = False, progress: bool = True,
               on_progress=None):
        from ingest.pipeline import ingest
        from kb.lock import ingest_lock
        from kb.validate import validate_vocabulary

        # Links are only as good as the vocabulary: refuse to write with a broken one.
        problems = validate_vocabulary(self.settings.ontology)
        if problems:
            raise OntologyError("the vocabulary does not validate:\n  " + "\n  ".join(problems))
        with ingest_lock(self.settings.lock_path):
            self._manifest = Manifest(self.settings.manifest_path)
            return ingest(self, paths or [self.settings.corpus], prune=prune, progress=progress,
                          on_progress=on_progress)

    def link(self, doc: Document, passages: list[Passage], vectors: np.ndarray) -> None:
        """Attach concepts, places and dimensions to each passage."""
        self.linker.link(passages, vectors)

    def write_document(self, doc: Document, passages: list[Passage], vectors: np.ndarray,
                       sentences: list["SentenceRecord"], sentence_vectors: np.ndarray) -> None:
        """Store a document's text, passages and sentences, replacing what an earlier version left."""
        from kb.store import to_metadata

        self.docs.put(doc)
        doc_id = doc.meta.doc_id
        stale = set(self.store.ids(doc_id)) - {p.chunk_id for p in passages}
        stale_sentences = set(self.store.sentence_ids(doc_id)) - {r.id for r in sentences}
        meta = [to_metadata(p, doc.meta.title, doc.meta.year, doc.meta.type) for p in passages]
        self.store.upsert(passages, vectors, meta)
        self.store.upsert_sentences(sentences, sentence_vectors)
        self.store.delete(sorted(stale))
        self.store.delete_sentences(sorted(stale_sentences))
        self.graph.replace_document(doc, passages)

    def remove_document(self, doc_id: str) -> None:
        self.store.delete(self.store.ids(doc_id))
        self.store.delete_sentences(self.store.sentence_ids(doc_id))
        self.graph.remove_document(doc_id)
        self.docs.delete(doc_id)

    def search_index_current(self) -> bool:
        return self.retriever.bm25_current()

    def refresh_indexes(self) -> None:
        """Rebuild what is derived from all passages (the BM25 index) after ingestion."""
        self.retriever.rebuild_bm25()

    def is_empty(self) -> bool:
        return not self.manifest.entries

    # -- reading ------------------------------------------------------------------------
    def document(self, doc_id: str) -> Document | None:
        return self.docs.get(doc_id)

    def documents(self) -> list[dict]:
        counts = {e.doc_id: len(e.chunk_ids) for e in self.manifest.entries.values()}
        out = []
        for doc in self.docs.all():
            m = doc.meta
            out.append({
                "doc_id": m.doc_id, "title": m.title, "authors": m.authors, "year": m.year,
                "type": m.type, "path": m.path, "pages": len(doc.pages),
                "passages": counts.get(m.doc_id, 0), "publisher": m.publisher, "url": m.url,
            })
        return out

    def document_json(self, doc_id: str) -> dict | None:
        doc = self.docs.get(doc_id)
        if doc is None:
            return None
        m = doc.meta
        entry = self.manifest.by_doc(doc_id)
        return {
            "doc_id": m.doc_id, "title": m.title, "authors": m.authors, "year": m.year,
            "type": m.type, "publisher": m.publisher, "url": m.url, "path": m.path,
            "sha256": doc.sha256, "characters": len(doc.text),
            "passages": len(entry.chunk_ids) if entry else 0,
            "pages": [{"page": p.page, "start": p.start, "end": p.end} for p in doc.pages],
        }

    def labels(self) -> dict[str, str]:
        """Concept, place and dimension ids to their preferred labels."""
        return {c.id: c.label for c in self.ontology.concepts.values()}

    def link_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in self.retriever.passages:
            for cid in {*p.concepts, *p.places, *p.dimensions}:
                counts[cid] = counts.get(cid, 0) + 1
        return counts

    def concepts(self, scheme: str | None = None) -> list[dict]:
        counts = self.link_counts()
        schemes = [scheme] if scheme else ["dimensions", "concepts", "places"]
        return [c.to_json(counts.get(c.id, 0)) for s in schemes for c in self.ontology.in_scheme(s)]

    def search(self, query: str, **options):
        return self.retriever.search(query, **options)

    def ask(self, question: str, **options):
        from kb.answer import answer

        return answer(self, question, **options)


_shared: dict[tuple, KnowledgeBase] = {}
_shared_lock = threading.Lock()


def shared(env: dict[str, str] | None = None) -> KnowledgeBase:
    """One knowledge base per process and set of ``KB_*`` settings: the app's sessions share it
    with the warm-up that ``kb app`` starts while the server boots."""
    key = tuple(sorted((k, v) for k, v in (os.environ if env is None else env).items() if k.startswith("KB_")))
    with _shared_lock:
        if key not in _shared:
            _shared[key] = KnowledgeBase(Settings.from_env(dict(key)))
        return _shared[key]
