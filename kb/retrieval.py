"""Retrieval: dense (Chroma, matched sentence by sentence) and BM25 (bm25s), fused by normalised
scores, with the ontology in the loop.

The ontology recognises concepts and places named in a query; their preferred, alternative
and narrower labels expand the BM25 query, and passages linked to them form a third ranked
list in the fusion. Filters by place, concept and dimension include narrower entries.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kb.files import read_json, write_json
from kb.models import Hit, Passage

if TYPE_CHECKING:
    from kb.knowledge import KnowledgeBase

MODES = ("hybrid", "dense", "bm25")
CANDIDATES = 50
# Dense search matches the question against single sentences, then ranks each passage by its
# best sentence, plus this share of its second best: two sentences close to the question make a
# passage likelier to answer it than one. This many sentences are fetched per passage wanted.
SENTENCES_PER_PASSAGE = 8
SECOND_SENTENCE_WEIGHT = 0.3
# Weights in the fused score of the BM25 list for the ontology's expansion labels and of the
# list of passages linked to what the query names (the query's own lists weigh 1).
EXPANSION_WEIGHT = 0.2
LINKED_WEIGHT = 0.2
# A concept or place linked to more than this share of passages is too common to steer a search.
COMMON_SHARE = 0.05


@dataclass
class Filters:
    """What a search may be narrowed to. Place, concept and dimension accept an id or a label."""

    place: str | None = None
    concept: str | None = None
    dimension: str | None = None
    doc: str | None = None
    year: int | None = None
    doc_type: str | None = None

    def active(self) -> bool:
        return any(v is not None and v != "" for v in self.__dict__.values())


@dataclass
class SearchResult:
    query: str
    hits: list[Hit]
    mode: str = "hybrid"
    expanded: list[str] = field(default_factory=list)
    recognised: list[str] = field(default_factory=list)
    best_similarity: float = 0.0

    def to_json(self, labels: dict[str, str] | None = None) -> dict:
        return {
            "query": self.query, "mode": self.mode,
            "recognised": self.recognised, "expanded": self.expanded,
            "results": [hit_json(h, labels) for h in self.hits],
        }


def hit_json(hit: Hit, labels: dict[str, str] | None = None) -> dict:
    out = hit.to_json()
    if labels:
        for name in ("concepts", "places", "dimensions"):
            out[name] = [labels.get(i, i) for i in out[name]]
    return out


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


_GLUED_NUMBER = re.compile(r"(?<=[A-Za-z])(?=[0-9])")


def dense_scores(sentences: list[tuple[str, float]], passages: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Rank passages from the similarities of their sentences and of their own vectors: the best
    of those, plus ``SECOND_SENTENCE_WEIGHT`` times the passage's second best sentence."""
    sims: dict[str, list[float]] = {}
    for cid, sim in sentences:
        sims.setdefault(cid, []).append(sim)
    top = {cid: sorted(s, reverse=True)[:2] + [0.0] for cid, s in sims.items()}
    best = {cid: t[0] for cid, t in top.items()}
    for cid, sim in passages:
        best[cid] = max(sim, best.get(cid, -1.0))
    scored = {cid: b + SECOND_SENTENCE_WEIGHT * top.get(cid, [0.0, 0.0])[1] for cid, b in best.items()}
    return sorted(scored.items(), key=lambda kv: -kv[1])


def bm25_tokens(texts: list[str]) -> list[list[str]]:
    import bm25s
    import Stemmer

    texts = [_GLUED_NUMBER.sub(" ", t) for t in texts]  # "Budgets4" (a footnote mark) is "Budgets 4"
    return bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"),
                          return_ids=False, show_progress=False)


class Retriever:
    def __init__(self, kb: "KnowledgeBase") -> None:
        self.kb = kb
        self.dir: Path = kb.settings.bm25_dir
        self._bm25 = None
        self._passages: list[Passage] = []
        self._meta: list[dict] = []
        self._stamp = ""

    # -- the BM25 index and passage snapshot ----------------------------------------------
    def _expected_stamp(self) -> str:
        ids = sorted(self.kb.manifest.chunk_ids())
        return hashlib.sha1("\n".join(ids).encode()).hexdigest()

    def bm25_current(self) -> bool:
        state = read_json(self.dir / "state.json", default={}) or {}
        return state.get("stamp") == self._expected_stamp()

    def rebuild_bm25(self) -> None:
        """Rebuild the BM25 index and the passage snapshot from the store, then swap it in whole."""
        import bm25s

        passages = self.kb.store.all_passages()
        passages.sort(key=lambda p: (p.doc_id, p.start))
        docs = {d.meta.doc_id: d for d in self.kb.docs.all()}
        meta = [{"title": docs[p.doc_id].meta.title if p.doc_id in docs else p.doc_id,
                 "year": docs[p.doc_id].meta.year if p.doc_id in docs else None,
                 "type": docs[p.doc_id].meta.type if p.doc_id in docs else ""} for p in passages]
        tmp = self.dir.with_name(self.dir.name + ".new")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if passages:
            index = bm25s.BM25()
            index.index(bm25_tokens([p.embed_text(m["title"]) for p, m in zip(passages, meta)]), show_progress=False)
            index.save(str(tmp / "index"), show_progress=False)
        rows = [{**p.__dict__, **m} for p, m in zip(passages, meta)]
        (tmp / "passages.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
        write_json(tmp / "state.json", {"stamp": self._expected_stamp(), "passages": len(passages)})
        old = self.dir.with_name(self.dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if self.dir.exists():
            self.dir.rename(old)
        tmp.rename(self.dir)
        shutil.rmtree(old, ignore_errors=True)
        self._bm25 = None
        self._stamp = ""

    def _load(self) -> None:
        import bm25s

        state = read_json(self.dir / "state.json", default={}) or {}
        stamp = state.get("stamp", "")
        if self._stamp == stamp and (self._bm25 is not None or not self._passages and stamp):
            return
        rows = read_json(self.dir / "passages.json", default=[]) or []
        fields = set(Passage.__dataclass_fields__)
        self._passages = [Passage(**{k: v for k, v in r.items() if k in fields}) for r in rows]
        self._meta = [{"title": r.get("title", ""), "year": r.get("year"), "type": r.get("type", "")} for r in rows]
        self._bm25 = bm25s.BM25.load(str(self.dir / "index"), show_progress=False) if rows else None
        self._stamp = stamp
        self._by_id = {p.chunk_id: i for i, p in enumerate(self._passages)}

    @property
    def passages(self) -> list[Passage]:
        self._load()
        return self._passages

    def title(self, doc_id: str) -> str:
        doc = self.kb.docs.get(doc_id)
        return doc.meta.title if doc else doc_id

    # -- filters --------------------------------------------------------------------------
    def _closure(self, name: str, scheme: str) -> set[str]:
        onto = self.kb.ontology
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
        mask = np.ones(len(self._passages), dtype=bool)
        for i, (p, m) in enumerate(zip(self._passages, self._meta)):
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
            ids = [p.chunk_id for p, ok in zip(self._passages, mask) if ok]
            if not ids:
                return []
        sentences = [(r.chunk_id, sim) for r, sim in self.kb.store.query_sentences(vector, n * SENTENCES_PER_PASSAGE, chunk_ids=ids)]
        passages = [(p.chunk_id, sim) for p, sim in self.kb.store.query(vector, n, ids=ids)]
        return dense_scores(sentences, passages)[:n]

    def bm25(self, query: str, n: int, mask: np.ndarray | None) -> list[tuple[str, float]]:
        self._load()
        if self._bm25 is None:
            return []
        vocab = self._bm25.vocab_dict
        terms = [t for t in bm25_tokens([query])[0] if t in vocab]
        if not terms:
            return []
        scores = self._bm25.get_scores(terms)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        top = np.argsort(-scores)[:n]
        return [(self._passages[i].chunk_id, float(scores[i])) for i in top if scores[i] > 0]

    def idf(self, terms: list[str]) -> dict[str, float]:
        """BM25's inverse document frequency of stemmed terms (from the index; unknown terms are
        as rare as a term can be)."""
        self._load()
        if self._bm25 is None:
            return {t: 0.0 for t in terms}
        indptr = self._bm25.scores["indptr"]
        n = len(self._passages)
        vocab = self._bm25.vocab_dict
        out = {}
        for t in terms:
            i = vocab.get(t)
            df = int(indptr[i + 1] - indptr[i]) if i is not None and i + 1 < len(indptr) else 0
            out[t] = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return out

    def recognise(self, query: str) -> tuple[list[str], list[str], list[str]]:
        """Concepts and places the query names (ids), those of them that steer the search, and
        the labels that expand it.

        A concept linked to most passages ("systems leadership", in this corpus) tells retrieval
        nothing, like a stop word: it is recognised but neither expands nor boosts."""
        linker = self.kb.linker
        onto = self.kb.ontology
        named = linker.concept_ids(query) + [c for c in linker.places.ids(query) if onto.concepts[c].scheme == "places"]
        share = self._link_share()
        steering = [c for c in named if share.get(c, 0.0) <= COMMON_SHARE]
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
        if getattr(self, "_vocab_stamp", None) != self._stamp:
            words = {w for c in self.kb.ontology.concepts.values()
                     for label in (c.label, *c.alt_labels) for w in re.findall(r"[a-z0-9]+", label.lower())}
            for p, m in zip(self._passages, self._meta):
                words.update(re.findall(r"[a-z0-9]+", f"{m.get('title', '')} {p.text}".lower()))
            self._vocabulary, self._vocab_stamp = words, self._stamp
        return self._vocabulary

    def _link_share(self) -> dict[str, float]:
        """The share of passages linked to each concept and place (cached per snapshot)."""
        self._load()
        if getattr(self, "_share_stamp", None) != self._stamp:
            counts: dict[str, int] = {}
            for p in self._passages:
                for cid in {*p.concepts, *p.places}:
                    counts[cid] = counts.get(cid, 0) + 1
            total = max(1, len(self._passages))
            self._share = {c: n / total for c, n in counts.items()}
            self._share_stamp = self._stamp
        return self._share

    def linked(self, named: list[str], mask: np.ndarray | None) -> list[str]:
        """Ids of passages linked to what the query names (with narrower entries)."""
        if not named:
            return []
        onto = self.kb.ontology
        wanted = set().union(*(onto.narrower_closure(c) for c in named))
        return [
            p.chunk_id for i, p in enumerate(self._passages)
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
        n = max(CANDIDATES, 2 * k)
        result = SearchResult(query=query, hits=[], mode=mode)
        if not query:
            return result
        named, steering, expansion = self.recognise(query) if expand and mode != "dense" else ([], [], [])
        result.recognised = [self.kb.ontology.label(c) for c in named]
        result.expanded = expansion
        dense: list[tuple[str, float]] = []
        if mode in ("dense", "hybrid"):
            if vector is None:
                vector = self.kb.embedder.encode([query])[0]
            dense = self.dense(vector, n, mask)
        sparse = self.bm25(query, n, mask) if mode in ("bm25", "hybrid") else []
        lists = [(dense, 1.0), (sparse, 1.0)]
        if expansion and mode in ("bm25", "hybrid"):
            # The alternative labels get a list of their own: pasted into the question they
            # would swamp its own words.
            lists.append((self.bm25(" ".join(expansion), n, mask), EXPANSION_WEIGHT))
        linked = self.linked(steering, mask) if mode == "hybrid" else []
        if linked and vector is not None:
            boosted = self.kb.store.query(vector, min(n, len(linked)), ids=linked)
            lists.append(([(p.chunk_id, sim) for p, sim in boosted], LINKED_WEIGHT))
        if mode == "dense":
            ranked = list(dense)
        elif mode == "bm25" and len(lists) == 2:
            ranked = sparse
        else:
            ranked = sorted(fuse(lists).items(), key=lambda kv: -kv[1])
        if self.kb.settings.reranker and ranked:
            ranked = self.rerank(query, ranked[:max(20, k)])
        ranked = ranked[:k]
        # The question's cosine with each passage's own vector: what the answer threshold is calibrated on.
        similarity: dict[str, float] = {}
        if vector is not None and ranked:
            similarity = {c: float(v @ vector) for c, v in self.kb.store.embeddings([c for c, _ in ranked]).items()}
        result.best_similarity = max(similarity.values(), default=0.0)
        by_id = {p.chunk_id: p for p in self._passages}
        missing = [c for c, _ in ranked if c not in by_id]
        if missing:  # store newer than the snapshot: read those passages directly
            by_id.update({p.chunk_id: p for p in self.kb.store.passages(missing)})
        for cid, score in ranked:
            p = by_id.get(cid)
            doc = self.kb.docs.get(p.doc_id) if p else None
            # While an ingestion replaces a document, a passage of the old version no longer
            # matches the stored text: leave it out rather than cite words the text lacks.
            if doc is None or doc.text[p.start:p.end] != p.text:
                continue
            result.hits.append(Hit(passage=p, score=score, title=doc.meta.title, rank=len(result.hits) + 1,
                                   similarity=similarity.get(cid), document=doc))
        return result

    def rerank(self, query: str, ranked: list[tuple[str, float]]) -> list[tuple[str, float]]:
        """Reorder candidates with the configured cross-encoder (optional; none ships)."""
        from kb.embed import get_cross_encoder

        texts = {p.chunk_id: p.text for p in self._passages}
        pairs = [(cid, texts.get(cid) or self.kb.store.passages([cid])[0].text) for cid, _ in ranked]
        scores = get_cross_encoder(self.kb.settings.reranker).predict([(query, t) for _, t in pairs])
        return sorted(((cid, float(s)) for (cid, _), s in zip(pairs, scores)), key=lambda kv: -kv[1])

    def neighbours(self, chunk_id: str) -> tuple[Passage | None, Passage | None]:
        """The passages just before and after one, for context."""
        self._load()
        i = self._by_id.get(chunk_id)
        if i is None:
            return None, None
        p = self._passages[i]
        before = self._passages[i - 1] if i > 0 and self._passages[i - 1].doc_id == p.doc_id else None
        after = self._passages[i + 1] if i + 1 < len(self._passages) and self._passages[i + 1].doc_id == p.doc_id else None
        return before, after
