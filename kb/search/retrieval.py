"""Retrieval: dense (Chroma, matched sentence by sentence) and BM25 (bm25s), fused by normalised
scores, with the ontology in the loop.

The ontology recognises concepts and places named in a query; their preferred, alternative
and narrower labels expand the BM25 query, and passages linked to them form a third ranked
list in the fusion. Filters by place, concept and dimension include narrower entries.
"""

from __future__ import annotations

import re

import numpy as np

from kb.embed import Embedder, get_cross_encoder
from kb.records import Filters, Hit, Passage, SearchResult
from kb.search.tuning import TUNING
from kb.stores.documents import DocStore
from kb.stores.keyword import KeywordIndex
from kb.stores.vectors import PassageStore
from kb.vocab.linking import Linker
from kb.vocab.ontology import Ontology

MODES = ("hybrid", "dense", "bm25")


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


class Retriever:
    """Ranks passages for a query; reads the vector store, the keyword index and the documents."""

    def __init__(self, *, vectors: PassageStore, keyword: KeywordIndex, documents: DocStore,
                 ontology: Ontology, linker: Linker, embedder: Embedder, reranker: str = "") -> None:
        self.vectors, self.keyword, self.documents = vectors, keyword, documents
        self.ontology, self.linker, self.embedder = ontology, linker, embedder
        self.reranker = reranker
        self._vocab_stamp: str | None = None
        self._share_stamp: str | None = None

    def _load(self) -> None:
        self.keyword.load()

    @property
    def passages(self) -> list[Passage]:
        """Every passage, as the keyword index last saw them (in document order)."""
        self._load()
        return self.keyword.passages

    def title(self, doc_id: str) -> str:
        doc = self.documents.get(doc_id)
        return doc.meta.title if doc else doc_id

    # -- filters --------------------------------------------------------------------------
    def _closure(self, name: str, scheme: str) -> set[str]:
        onto = self.ontology
        found = onto.resolve(name, scheme)
        if found is None:
            known = ", ".join(c.label for c in onto.in_scheme(scheme)[:8])
            raise FilterError(f"unknown {scheme[:-1]} {name!r} (try `kb concepts --scheme {scheme}`; e.g. {known}, ...)")
        return onto.narrower_closure(found.id)

    def allowed(self, filters: Filters) -> np.ndarray | None:
        """A boolean mask over the passage snapshot, or None when nothing is filtered."""
        if not filters.active():
            return None
        self._load()
        sets = {
            "places": self._closure(filters.place, "places") if filters.place else None,
            "concepts": self._closure(filters.concept, "concepts") if filters.concept else None,
            "dimensions": self._closure(filters.dimension, "dimensions") if filters.dimension else None,
        }
        docs = {d.strip() for d in filters.doc.split(",")} if filters.doc else None
        mask = np.ones(len(self.keyword.passages), dtype=bool)
        for i, (p, m) in enumerate(zip(self.keyword.passages, self.keyword.meta)):
            if docs is not None and p.doc_id not in docs:
                mask[i] = False
            elif filters.year is not None and m.get("year") != filters.year:
                mask[i] = False
            elif filters.doc_type and m.get("type") != filters.doc_type:
                mask[i] = False
            else:
                for name, wanted in sets.items():
                    if wanted is not None and not wanted.intersection(getattr(p, name)):
                        mask[i] = False
                        break
        return mask

    # -- the rankings ---------------------------------------------------------------------
    def dense(self, vector: np.ndarray, n: int, mask: np.ndarray | None) -> list[tuple[str, float]]:
        """Passages ranked by their sentence most similar to the query, or by their own vector
        when that is closer (a passage of fragments has no sentence of its own), plus a share of
        their second most similar sentence."""
        ids = None
        if mask is not None:
            ids = [p.chunk_id for p, ok in zip(self.keyword.passages, mask) if ok]
            if not ids:
                return []
        sentences = [(r.chunk_id, sim) for r, sim in self.vectors.query_sentences(vector, n * TUNING.sentences_per_passage, chunk_ids=ids)]
        passages = [(p.chunk_id, sim) for p, sim in self.vectors.query(vector, n, ids=ids)]
        return dense_scores(sentences, passages)[:n]

    def bm25(self, query: str, n: int, mask: np.ndarray | None) -> list[tuple[str, float]]:
        self._load()
        return self.keyword.top(query, n, mask)

    def idf(self, terms: list[str]) -> dict[str, float]:
        """BM25's inverse document frequency of stemmed terms."""
        self._load()
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

    def vocabulary(self) -> set[str]:
        """Every lower-cased word and number of every passage, title and vocabulary label (cached per snapshot)."""
        self._load()
        if self._vocab_stamp != self.keyword.stamp:
            words = {w for c in self.ontology.concepts.values()
                     for label in (c.label, *c.alt_labels, *c.hidden_labels) for w in re.findall(r"[a-z0-9]+", label.lower())}
            for p, m in zip(self.keyword.passages, self.keyword.meta):
                words.update(re.findall(r"[a-z0-9]+", f"{m.get('title', '')} {p.text}".lower()))
            self._vocabulary, self._vocab_stamp = words, self.keyword.stamp
        return self._vocabulary

    def _link_share(self) -> dict[str, float]:
        """The share of passages linked to each concept and place (cached per snapshot)."""
        self._load()
        if self._share_stamp != self.keyword.stamp:
            counts: dict[str, int] = {}
            for p in self.keyword.passages:
                for cid in {*p.concepts, *p.places}:
                    counts[cid] = counts.get(cid, 0) + 1
            total = max(1, len(self.keyword.passages))
            self._share = {c: n / total for c, n in counts.items()}
            self._share_stamp = self.keyword.stamp
        return self._share

    def linked(self, named: list[str], mask: np.ndarray | None) -> list[str]:
        """Ids of passages linked to what the query names (with narrower entries)."""
        if not named:
            return []
        onto = self.ontology
        wanted = set().union(*(onto.narrower_closure(c) for c in named))
        return [
            p.chunk_id for i, p in enumerate(self.keyword.passages)
            if (mask is None or mask[i]) and wanted.intersection(p.concepts + p.places)
        ]

    def search(self, query: str, k: int = 5, mode: str = "hybrid", filters: Filters | None = None,
               expand: bool = True, vector: np.ndarray | None = None) -> SearchResult:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        query = " ".join(query.split())[:2000]
        self._load()
        filters = filters or Filters()
        mask = self.allowed(filters)
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
            dense = self.dense(vector, n, mask)
        sparse = self.bm25(query, n, mask) if mode in ("bm25", "hybrid") else []
        lists = [(dense, 1.0), (sparse, 1.0)]
        if expansion and mode in ("bm25", "hybrid"):
            # The alternative labels get a list of their own: pasted into the question they
            # would swamp its own words.
            lists.append((self.bm25(" ".join(expansion), n, mask), TUNING.expansion_weight))
        linked = self.linked(steering, mask) if mode == "hybrid" else []
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
        by_id = {p.chunk_id: p for p in self.keyword.passages}
        missing = [c for c, _ in ranked if c not in by_id]
        if missing:  # store newer than the snapshot: read those passages directly
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
        texts = {p.chunk_id: p.text for p in self.keyword.passages}
        pairs = [(cid, texts.get(cid) or self.vectors.passages([cid])[0].text) for cid, _ in ranked]
        scores = get_cross_encoder(self.reranker).predict([(query, t) for _, t in pairs])
        return sorted(((cid, float(s)) for (cid, _), s in zip(pairs, scores)), key=lambda kv: -kv[1])
