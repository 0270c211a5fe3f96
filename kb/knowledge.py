"""The knowledge base as one object: what the CLI and the app both call.

It assembles the parts (embedding model, stores, vocabulary, indexer, retriever, answerer),
each on first use and once, and hands each part the others it needs. Nothing below this
module sees it.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import Counter
from functools import cached_property
from pathlib import Path
from typing import Callable

from kb.check import check
from kb.config import Settings
from kb.embed import Embedder, compile_encoder, get_embedder
from kb.index import Indexer
from kb.records import (
    Answer,
    Axis,
    ConceptPage,
    ConceptSummary,
    Document,
    DocumentInfo,
    DocumentSummary,
    IngestReport,
    Passage,
    SearchResult,
)
from kb.search.answer import Answerer
from kb.search.cross_encoder import get_reader
from kb.search.llm import make_llm
from kb.search.retrieval import Retriever
from kb.stores.catalogue import Catalogue
from kb.stores.documents import DocStore
from kb.stores.graph import KnowledgeGraph
from kb.stores.keyword import KeywordIndex
from kb.stores.manifest import Manifest
from kb.stores.triplestore import open_store
from kb.stores.vectors import PassageStore
from kb.vocab.linking import Linker, vocabulary_hash
from kb.vocab.ontology import Ontology

SCHEMES = ("dimensions", "concepts", "places")


class KnowledgeBase:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.docs = DocStore(self.settings.docs_dir)
        self.manifest = Manifest(self.settings.catalogue_path, legacy=self.settings.legacy_manifest_path)
        self.catalogue = Catalogue(self.settings.catalogue_path, regions=lambda: self.ontology.regions())
        self.keyword = KeywordIndex(self.settings.keyword_dir)
        self._warm_lock = threading.Lock()
        self._aggregates: tuple[int, dict] = (-1, {})
        self._warm_seconds: float | None = None
        self._warm_thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # -- parts, made on first use -----------------------------------------------------------
    @cached_property
    def embedder(self) -> Embedder:
        return get_embedder(self.settings.model_path, self.settings.encoder_dir, self.settings.device)

    @cached_property
    def store(self) -> PassageStore:
        return PassageStore(self.settings)

    @cached_property
    def ontology(self) -> Ontology:
        return Ontology.load(self.settings.ontology)

    @cached_property
    def vocabulary_hash(self) -> str:
        """What a stored document was linked and embedded with: the vocabulary and linking rules, and the
        model unless it is the packaged one. A document stored with another is ingested again."""
        vocab = vocabulary_hash(self.settings.ontology)
        if not self.settings.packaged_model:
            return hashlib.sha256(f"{vocab}\0{self.settings.model_path}".encode()).hexdigest()[:16]
        return vocab

    @cached_property
    def graph(self) -> KnowledgeGraph:
        s = self.settings
        return KnowledgeGraph(open_store(s.graph_path, s.graph_url), self.ontology,
                              vocabulary_version=vocabulary_hash(s.ontology), legacy=s.legacy_graph_path)

    @cached_property
    def linker(self) -> Linker:
        return Linker(self.ontology, self.embedder)

    @cached_property
    def indexer(self) -> Indexer:
        return Indexer(self.settings, documents=self.docs, vectors=self.store, graph=self.graph,
                       keyword=self.keyword, catalogue=self.catalogue, manifest=self.manifest, embedder=self.embedder,
                       linker=self.linker, vocabulary_hash=self.vocabulary_hash)

    @cached_property
    def retriever(self) -> Retriever:
        return Retriever(vectors=self.store, keyword=self.keyword, catalogue=self.catalogue, documents=self.docs,
                         ontology=self.ontology, linker=self.linker, embedder=self.embedder,
                         reranker=self.settings.reranker)

    @cached_property
    def answerer(self) -> Answerer:
        s = self.settings
        writer = (lambda: make_llm(s.llm, ollama_url=s.ollama_url, api_key=s.llm_api_key)) if s.llm else None
        return Answerer(retriever=self.retriever, embedder=self.embedder, vectors=self.store, reader=get_reader(),
                        linker=self.linker, ontology=self.ontology, make_llm=writer)

    # -- start-up -----------------------------------------------------------------------------
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

    def warm_up_in_background(self) -> None:
        """Start :meth:`warm_up` in a thread, once; pages that need no model render meanwhile."""
        with self._start_lock:
            if self._warm_seconds is not None or self._warm_thread is not None:
                return
            self._warm_thread = threading.Thread(target=self.warm_up, name="kb-warm-up", daemon=True)
            self._warm_thread.start()

    def compile_encoder(self) -> bool:
        """Compile the embedding model under ``KB_HOME/encoder`` once (see ``kb.embed.compile_encoder``):
        later processes then start seconds faster. Returns whether it compiled one just now."""
        if self.settings.encoder_dir.exists() or self.embedder.compiled:
            return False
        return compile_encoder(self.embedder, self.settings.encoder_dir)

    def prepare_app(self) -> None:
        """What a long-running app wants before it starts: the shipped corpus ingested when the
        knowledge base is empty (or the indexes of an earlier version's knowledge base filled), and
        the compiled encoder."""
        if self.is_empty():
            self.ingest()
        elif any(self.indexer.unindexed()):
            self.ingest([])  # fills the keyword index and the catalogue of an earlier version's knowledge base
        self.compile_encoder()

    # -- writing ------------------------------------------------------------------------------
    def ingest(self, paths: list[Path] | None = None, *, prune: bool = False, progress: bool = True,
               on_progress: Callable[[str, int, int], None] | None = None) -> IngestReport:
        """Ingest files and folders (by default the shipped corpus); see :class:`kb.index.Indexer`."""
        return self.indexer.ingest([self.settings.corpus] if paths is None else paths, prune=prune,
                                   progress=progress, on_progress=on_progress)

    def check(self, repair: bool = False) -> list[str]:
        """Where the stores disagree, in plain words; with ``repair``, mended."""
        return check(self.indexer, self.ontology, repair=repair)

    def is_empty(self) -> bool:
        return not self.manifest.entries

    # -- reading ------------------------------------------------------------------------------
    def search(self, query: str, **options) -> SearchResult:
        return self.retriever.search(query, **options)

    def ask(self, question: str, **options) -> Answer:
        return self.answerer.ask(question, **options)

    def document(self, doc_id: str) -> Document | None:
        return self.docs.get(doc_id)

    def _aggregate(self, key: tuple, compute: Callable[[], object]):
        """A whole-collection figure the pages ask for on every render, computed again only after a
        document is written or removed (in any process)."""
        generation = self.catalogue.generation()
        held, cache = self._aggregates
        if held != generation:
            cache = {}
            self._aggregates = (generation, cache)
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def documents(self) -> list[DocumentSummary]:
        return self._aggregate(("documents",), self.catalogue.documents)

    def counts(self) -> tuple[int, int]:
        """How many documents and passages the knowledge base holds."""
        return self._aggregate(("counts",), self.catalogue.counts)

    def generation(self) -> int:
        """A number that changes whenever a document is written or removed (for caches)."""
        return self.catalogue.generation()

    def title(self, doc_id: str) -> str:
        return self.catalogue.title(doc_id) or doc_id

    def passages(self, ids: list[str]) -> list[Passage]:
        """Passages by id, in the order asked."""
        return self.catalogue.passages(ids)

    def all_passages(self) -> list[Passage]:
        """Every passage in document order: for evaluations and tools that read the whole collection."""
        return self.catalogue.all_passages()

    def document_info(self, doc_id: str) -> DocumentInfo | None:
        doc = self.docs.get(doc_id)
        if doc is None:
            return None
        m = doc.meta
        entry = self.manifest.by_doc(doc_id)
        return DocumentInfo(doc_id=m.doc_id, title=m.title, authors=m.authors, year=m.year, type=m.type,
                            publisher=m.publisher, url=m.url, path=m.path, sha256=doc.sha256,
                            characters=len(doc.text), passages=len(entry.chunk_ids) if entry else 0,
                            pages=list(doc.pages), doi=m.doi, reader=m.reader)

    def labels(self) -> dict[str, str]:
        """Concept, place and dimension ids to their preferred labels."""
        return {c.id: c.label for c in self.ontology.concepts.values()}

    def link_counts(self) -> dict[str, int]:
        """Passages linked to each concept, place and dimension (directly, not through narrower ones)."""
        return self._aggregate(("link counts",), self.catalogue.link_counts)

    def concepts(self, scheme: str | None = None) -> list[ConceptSummary]:
        counts = self.link_counts()
        return [ConceptSummary(c, counts.get(c.id, 0))
                for s in ([scheme] if scheme else SCHEMES) for c in self.ontology.in_scheme(s)]

    def concept_page(self, concept_id: str, narrower: bool = True, shown: int = 25) -> ConceptPage:
        """A concept, the first ``shown`` of its passages (with narrower entries by default) and how many
        there are, and the documents and places they come from."""
        onto = self.ontology
        wanted = onto.narrower_closure(concept_id) if narrower else {concept_id}
        titles = {d.doc_id: d.title for d in self.documents()}
        docs = self.catalogue.linked_count(wanted, by="doc_id")
        places = self.catalogue.linked_count(wanted, by="places")
        return ConceptPage(
            concept=onto.concepts[concept_id], passages=self.catalogue.linked(wanted, limit=shown),
            total=sum(docs.values()),
            documents=[(d, titles.get(d, d), n) for d, n in docs.most_common()],
            places=[(pl, onto.label(pl), n) for pl, n in places.most_common()],
        )

    def linked_passages(self, wanted: set[str], limit: int | None = None) -> tuple[list[Passage], int]:
        """The first ``limit`` passages linked to any of ``wanted``, and how many there are."""
        return self.catalogue.linked(wanted, limit=limit), self.catalogue.linked_count(wanted)[None]

    def evidence_cells(self, rows: Axis, cols: Axis, doc_ids: set[str] | None = None) -> Counter:
        """The evidence map: passages per (row key, column key), of ``doc_ids`` only when given."""
        key = ("cells", rows, cols, tuple(sorted(doc_ids)) if doc_ids is not None else None)
        return self._aggregate(key, lambda: self.catalogue.cell_counts(rows, cols, doc_ids))

    def cell_passages(self, rows: Axis, row_key: str, cols: Axis, col_key: str,
                      doc_ids: set[str] | None = None) -> list[Passage]:
        """The passages behind one cell of the evidence map, in document order."""
        return self.catalogue.cell_passages(rows, row_key, cols, col_key, doc_ids)


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
