"""Retrieval: dense (Chroma, matched sentence by sentence) and BM25 (bm25s), fused by normalised
scores, with the ontology in the loop.

The ontology recognises concepts and places named in a query; their preferred, alternative
and narrower labels expand the BM25 query, and passages linked to them form a third ranked
list in the fusion. Filters by place, concept and dimension include narrower entries.
"""

from __future__ import annotations

import math
import re

import numpy as np

from kb.embed import Embedder, get_cross_encoder
from kb.records import Filters, Hit, SearchResult
from kb.search.tuning import TUNING
from kb.stores.catalogue import Catalogue
from kb.stores.documents import DocStore
from kb.stores.keyword import KeywordIndex
from kb.stores.vectors import PassageStore
from kb.vocab.linking import Linker
from kb.vocab.ontology import Ontology

MODES = ("hybrid", "dense", "bm25")
# A filter that admits at least 1/WIDEN of the passages is applied to a search this many times wider
# (or less), then the admitted are kept: at 100k passages that is several times quicker than asking
# Chroma or tantivy for thousands of ids. A narrower filter is passed to them as ids.
WIDEN = 16


def fuse(rankings: list[tuple[list[tuple[str, float]], float]]) -> dict[str, float]:
    """Convex combination of min-max normalised scores: each list's best candidate scores its
    weight, its last scores 0, and a passage missing from a list gets 0 from it. Unlike
    reciprocal rank fusion, a passage far ahead in one list keeps its lead."""
    fused: dict[str, float] = {}
    for ranked, weight in rankings:
        if not ranked:
            continue
        scores = [s for _, s in ranked]
        low, high = min(scores), max(scores)
        for cid, score in ranked:
            norm = (score - low) / (high - low) if high > low else 1.0
            fused[cid] = fused.get(cid, 0.0) + weight * norm
    return fused


class FilterError(ValueError):
    """A filter naming something the knowledge base does not know."""


def dense_scores(sentences: list[tuple[str, float]], passages: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Rank passages from the similarities of their sentences and of their own vectors: the best
    of those, plus ``TUNING.second_sentence_weight`` times the passage's second best sentence."""
    sims: dict[str, list[float]] = {}
    for cid, sim in sentences:
        sims.setdefault(cid, []).append(sim)
    top = {cid: sorted(s, reverse=True)[:2] + [0.0] for cid, s in sims.items()}
    best = {cid: t[0] for cid, t in top.items()}
    for cid, sim in passages:
        best[cid] = max(sim, best.get(cid, -1.0))
    scored = {cid: b + TUNING.second_sentence_weight * top.get(cid, [0.0, 0.0])[1] for cid, b in best.items()}
    return sorted(scored.items(), key=lambda kv: -kv[1])


class KnownWords:
    """What a question may name and still be answered: a word of the vocabulary's labels, or of some
    document's title or passage (asked of the catalogue word by word)."""

    def __init__(self, labels: set[str], catalogue: Catalogue) -> None:
        self.labels, self.catalogue = labels, catalogue

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and (word in self.labels or bool(self.catalogue.known([word])))


class Retriever:
    """Ranks passages for a query; reads the vector store, the keyword index, the catalogue and the documents."""

    def __init__(self, *, vectors: PassageStore, keyword: KeywordIndex, catalogue: Catalogue, documents: DocStore,
                 ontology: Ontology, linker: Linker, embedder: Embedder, reranker: str = "") -> None:
        self.vectors, self.keyword, self.catalogue, self.documents = vectors, keyword, catalogue, documents
        self.ontology, self.linker, self.embedder = ontology, linker, embedder
        self.reranker = reranker
        self._counted: tuple[int, int, dict[str, float]] | None = None
        self.labels = {w for c in ontology.concepts.values() for label in (c.label, *c.alt_labels, *c.hidden_labels)
                       for w in re.findall(r"[a-z0-9]+", label.lower())}

    # -- filters --------------------------------------------------------------------------
    def _closure(self, name: str, scheme: str) -> set[str]:
        onto = self.ontology
        found = onto.resolve(name, scheme)
        if found is None:
            known = ", ".join(c.label for c in onto.in_scheme(scheme)[:8])
            raise FilterError(f"unknown {scheme[:-1]} {name!r} (try `kb concepts --scheme {scheme}`; e.g. {known}, ...)")
        return onto.narrower_closure(found.id)

    def allowed(self, filters: Filters) -> list[str] | None:
        """The ids of the passages the filters admit, or None when nothing is filtered."""
        if not filters.active():
            return None
        linked = [self._closure(name, scheme) for name, scheme in
                  ((filters.place, "places"), (filters.concept, "concepts"), (filters.dimension, "dimensions")) if name]
        docs = {d.strip() for d in filters.doc.split(",")} if filters.doc else None
        return self.catalogue.select(doc_ids=docs, year=filters.year, doc_type=filters.doc_type, linked=linked)

    # -- the rankings ---------------------------------------------------------------------
    def widen(self, ids: list[str] | None) -> int:
        """How many times wider to search unfiltered for a filter admitting ``ids`` (0: filter by id)."""
        if not ids:
            return 0
        factor = math.ceil(self._counts()[0] / len(ids))
        return factor if factor <= WIDEN else 0

    def dense(self, vector: np.ndarray, n: int, ids: list[str] | None) -> list[tuple[str, float]]:
        """Passages ranked by their sentence most similar to the query, or by their own vector
        when that is closer (a passage of fragments has no sentence of its own), plus a share of
        their second most similar sentence; only those of ``ids`` when given."""
        if ids == []:
            return []
        want = n * TUNING.sentences_per_passage
        sentences = None
        if factor := self.widen(ids):
            admitted = set(ids)
            sentences = [(r.chunk_id, sim) for r, sim in self.vectors.query_sentences(vector, want * factor)
                         if r.chunk_id in admitted][:want]
            if len({cid for cid, _ in sentences}) < min(n, len(ids)) // 4:
                sentences = None  # too few of them among the nearest: ask for the admitted ones by id
        if sentences is None:
            sentences = [(r.chunk_id, sim) for r, sim in self.vectors.query_sentences(vector, want, chunk_ids=ids)]
        passages = [(p.chunk_id, sim) for p, sim in self.vectors.query(vector, n, ids=ids)]
        return dense_scores(sentences, passages)[:n]

    def bm25(self, query: str, n: int, ids: list[str] | None) -> list[tuple[str, float]]:
        return self.keyword.top(query, n, ids, widen=self.widen(ids))

    def idf(self, terms: list[str]) -> dict[str, float]:
        """BM25's inverse document frequency of stemmed terms."""
        return self.keyword.idf(terms)

    def recognise(self, query: str) -> tuple[list[str], list[str], list[str]]:
        """Concepts and places the query names (ids), those of them that steer the search, and
        the labels that expand it.

        A concept linked to most passages ("systems leadership", in this corpus) tells retrieval
        nothing, like a stop word: it is recognised but neither expands nor boosts."""
        linker = self.linker
        onto = self.ontology
        named = linker.concept_ids(query) + [c for c in linker.places.ids(query) if onto.concepts[c].scheme == "places"]
        share = self._link_share()
        steering = [c for c in named if share.get(c, 0.0) <= TUNING.common_share]
        expansion: list[str] = []
        for cid in steering:
            if onto.concepts[cid].scheme != "concepts":
                continue
            for sub in sorted(onto.narrower_closure(cid)):
                c = onto.concepts[sub]
                expansion += [c.label, *c.alt_labels]
        return named, steering, list(dict.fromkeys(expansion))

    def vocabulary(self) -> KnownWords:
        """Every lower-cased word and number of every passage, title and vocabulary label."""
        return KnownWords(self.labels, self.catalogue)

    def _counts(self) -> tuple[int, dict[str, float]]:
        """How many passages there are, and the share linked to each concept and place (computed again
        after a document changes)."""
        generation = self.catalogue.generation()
        if self._counted is None or self._counted[0] != generation:
            total = self.catalogue.count()
            share = {c: n / max(1, total) for c, n in self.catalogue.link_counts().items()}
            self._counted = (generation, total, share)
        return self._counted[1], self._counted[2]

    def _link_share(self) -> dict[str, float]:
        return self._counts()[1]

    def linked(self, named: list[str], ids: list[str] | None) -> list[str]:
        """Ids of passages linked to what the query names (with narrower entries), of ``ids`` when given."""
        if not named:
            return []
        onto = self.ontology
        wanted = set().union(*(onto.narrower_closure(c) for c in named))
        found = self.catalogue.select(linked=[wanted])
        if ids is None:
            return found
        admitted = set(ids)
        return [c for c in found if c in admitted]

    def search(self, query: str, k: int = 5, mode: str = "hybrid", filters: Filters | None = None,
               expand: bool = True, vector: np.ndarray | None = None) -> SearchResult:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        query = " ".join(query.split())[:2000]
        filters = filters or Filters()
        ids = self.allowed(filters)
        k = max(1, min(int(k), 100))
        n = max(TUNING.candidates, 2 * k)
        result = SearchResult(query=query, hits=[], mode=mode)
        if not query:
            return result
        named, steering, expansion = self.recognise(query) if expand and mode != "dense" else ([], [], [])
        result.recognised = [self.ontology.label(c) for c in named]
        result.expanded = expansion
        dense: list[tuple[str, float]] = []
        if mode in ("dense", "hybrid"):
            if vector is None:
                vector = self.embedder.encode([query])[0]
            dense = self.dense(vector, n, ids)
        sparse = self.bm25(query, n, ids) if mode in ("bm25", "hybrid") else []
        lists = [(dense, 1.0), (sparse, 1.0)]
        if expansion and mode in ("bm25", "hybrid"):
            # The alternative labels get a list of their own: pasted into the question they
            # would swamp its own words.
            lists.append((self.bm25(" ".join(expansion), n, ids), TUNING.expansion_weight))
        linked = self.linked(steering, ids) if mode == "hybrid" else []
        if linked and vector is not None:
            boosted = self.vectors.query(vector, min(n, len(linked)), ids=linked)
            lists.append(([(p.chunk_id, sim) for p, sim in boosted], TUNING.linked_weight))
        if mode == "dense":
            ranked = list(dense)
        elif mode == "bm25" and len(lists) == 2:
            ranked = sparse
        else:
            ranked = sorted(fuse(lists).items(), key=lambda kv: -kv[1])
        if self.reranker and ranked:
            ranked = self.rerank(query, ranked[:max(20, k)])
        ranked = ranked[:k]
        # The question's cosine with each passage's own vector: what the answer threshold is calibrated on.
        similarity: dict[str, float] = {}
        if vector is not None and ranked:
            similarity = {c: float(v @ vector) for c, v in self.vectors.embeddings([c for c, _ in ranked]).items()}
        result.best_similarity = max(similarity.values(), default=0.0)
        by_id = {p.chunk_id: p for p in self.catalogue.passages([c for c, _ in ranked])}
        missing = [c for c, _ in ranked if c not in by_id]
        if missing:  # Chroma ahead of the catalogue while a document is written: read them there
            by_id.update({p.chunk_id: p for p in self.vectors.passages(missing)})
        for cid, score in ranked:
            p = by_id.get(cid)
            doc = self.documents.get(p.doc_id) if p else None
            # While an ingestion replaces a document, a passage of the old version no longer
            # matches the stored text: leave it out rather than cite words the text lacks.
            if doc is None or doc.text[p.start:p.end] != p.text:
                continue
            result.hits.append(Hit(passage=p, score=score, title=doc.meta.title, rank=len(result.hits) + 1,
                                   similarity=similarity.get(cid), document=doc))
        return result

    def rerank(self, query: str, ranked: list[tuple[str, float]]) -> list[tuple[str, float]]:
        """Reorder candidates with the configured cross-encoder (optional; none ships)."""
        texts = {p.chunk_id: p.text for p in self.catalogue.passages([cid for cid, _ in ranked])}
        pairs = [(cid, texts.get(cid) or self.vectors.passages([cid])[0].text) for cid, _ in ranked]
        scores = get_cross_encoder(self.reranker).predict([(query, t) for _, t in pairs])
        return sorted(((cid, float(s)) for (cid, _), s in zip(pairs, scores)), key=lambda kv: -kv[1])
