"""Answers with citations a machine can check, extractive by default.

From the top passages we pick the sentences most likely to answer the question (by meaning, by
the question's words they contain and by their passage's rank: :mod:`kb.search.sentence_rank`; with MMR so
they do not repeat each other) and quote them verbatim: every citation is ``text[start:end]`` of its
document's canonical text, on the page where it starts. When even the best passage is far
from the question, we say the knowledge base has little on it instead of answering.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from ingest.chunk import heading_breaks, quotable_sentences
from kb.embed import Embedder
from kb.records import Answer, Citation, Filters, Hit
from kb.search.llm import llm_answer
from kb.search.retrieval import Retriever
from kb.search.sentence_rank import Candidate, candidate_rows, probabilities
from kb.search.tuning import TUNING
from kb.stores.vectors import PassageStore
from kb.vocab.linking import Linker
from kb.vocab.ontology import Ontology

NO_ANSWER = ("The knowledge base has little on this question, so there is no answer to give with "
             "confidence. The nearest passages are listed below.")


def candidate_sentences(hits: list[Hit]) -> list[Candidate]:
    """Whole sentences of the top passages, each with its exact offsets; overlaps counted once."""
    out: list[Candidate] = []
    seen: set[tuple[str, int]] = set()
    for hit in hits:
        doc = hit.document
        if doc is None:
            continue
        for span in quotable_sentences(doc.text, hit.passage.start, hit.passage.end, heading_breaks(doc)):
            if (doc.meta.doc_id, span.start) in seen:
                continue
            seen.add((doc.meta.doc_id, span.start))
            out.append(Candidate(hit, span.start, span.end, doc.text[span.start:span.end]))
    return out


def mmr(query_sims: np.ndarray, vectors: np.ndarray, k: int, lam: float = TUNING.mmr_lambda, floor: float = 0.0,
        groups: list[str] | None = None, same_group: float = 0.0) -> list[int]:
    """Maximal marginal relevance: relevant to the question, unlike what is already chosen.

    With ``groups`` (each item's passage), two items of one group count as at least ``same_group`` alike."""
    chosen: list[int] = []
    remaining = [i for i in range(len(query_sims)) if query_sims[i] >= floor]

    def alike(i: int, j: int) -> float:
        sim = float(vectors[i] @ vectors[j])
        return max(sim, same_group) if groups is not None and groups[i] == groups[j] else sim

    while remaining and len(chosen) < k:
        def gain(i: int) -> float:
            redundancy = max((alike(i, j) for j in chosen), default=0.0)
            return lam * float(query_sims[i]) - (1 - lam) * redundancy
        best = max(remaining, key=gain)
        chosen.append(best)
        remaining.remove(best)
    return chosen


def compose(picked: list[Candidate]) -> tuple[str, list[Citation]]:
    """Order the picked sentences by source and position, number them, and cite each one."""
    order = sorted(picked, key=lambda c: (c.hit.rank, c.start))
    citations, parts = [], []
    for n, c in enumerate(order, 1):
        citations.append(Citation.of(n, c.hit.passage.chunk_id, c.hit.document, c.start, c.end))
        parts.append(f"{' '.join(c.text.split())} [{n}]")
    return " ".join(parts), citations


# A question asking for an amount of money, or for how much something changed, and what gives one.
_ASKS_MONEY = re.compile(
    r"\bhow much\b[^?]*\b(cost\w*|money|sav\w*|fund\w*|pool\w*|spen[dt]\w*|pay|paid|budget\w*|invest\w*|worth)\b"
    r"|\bwhat (?:is|was|were|are) the (?:cost|price|budget|salary|fee)s?(?![-\w])|\bwhat did\b[^?]*\bcost\b"
    r"|\b(?:minimum|maximum|total) amount\b|\b(?:salary|salaries|fees?|price)\b", re.I)
_ASKS_CHANGE = re.compile(
    r"\bby how much\b|\bhow much\b[^?]*\b(?:rise|rose|risen|fall|fell|fallen|increase\w*|decrease\w*|"
    r"reduc\w*|drop\w*|grow\w*|grew|improv\w*)\b", re.I)
_MONEY = re.compile(r"[£$€]\s?\d|\b\d[\d,.]*\s?(?:million|billion|bn|m|k|pounds|euros|dollars)\b", re.I)
_CHANGE = re.compile(r"\d\s?%|\bper ?cent\b|\b\d+(?:\.\d+)?\s?(?:times|fold)\b|\b(?:doubled|halved|tripled|trebled)\b", re.I)


def missing_amount(question: str, quotes: list[str]) -> str:
    """The kind of amount the question asks for ("an amount of money", "the size of the change")
    when no quote gives one, else "". Sentences about the right topic without the figure do not answer it."""
    text = " ".join(quotes)
    if _ASKS_MONEY.search(question) and not _MONEY.search(text):
        return "an amount of money"
    if _ASKS_CHANGE.search(question) and not (_CHANGE.search(text) or _MONEY.search(text)):
        return "the size of the change"
    return ""


_NAME = re.compile(r"(?<![.?!]\s)(?<!^)\b([A-Z][a-z]{2,})(?:['’]s)?\b")
_ACRONYM = re.compile(r"\b([A-Z]{2,}[A-Z0-9]*)s?\b")
_YEAR = re.compile(r"\b((?:19|20)[0-9]{2})\b")


def unknown_names(question: str, vocabulary: set[str]) -> list[str]:
    """What the question names specifically that no passage contains: a capitalised name (not
    its first word: "Glasgow"), an acronym ("COVID-19") or a year ("2019"). Passages about
    other places, bodies or years would not answer it."""
    text = question.strip()
    found = [m.group(1) for pattern in (_NAME, _ACRONYM, _YEAR) for m in pattern.finditer(text)]
    return list(dict.fromkeys(name for name in found if name.lower() not in vocabulary))


class Answerer:
    """Answers from what a retriever finds; sentence vectors come from the store, stored at ingestion."""

    def __init__(self, *, retriever: Retriever, embedder: Embedder, vectors: PassageStore,
                 linker: Linker, ontology: Ontology, make_llm: Callable[[], object] | None = None) -> None:
        self.retriever, self.embedder, self.vectors = retriever, embedder, vectors
        self.linker, self.ontology = linker, ontology
        self.make_llm = make_llm  # the optional answer writer that KB_LLM names

    def candidate_vectors(self, candidates: list[Candidate]) -> np.ndarray:
        """The candidates' vectors: stored at ingestion, so only sentences of a passage stored by an
        older version (or read while an ingestion replaces it) are encoded now."""
        stored = {(r.doc_id, r.start, r.end): v
                  for r, v in self.vectors.sentence_vectors(list({c.hit.passage.chunk_id for c in candidates})).items()}
        keys = [(c.hit.passage.doc_id, c.start, c.end) for c in candidates]
        todo = [c.text for c, key in zip(candidates, keys) if key not in stored]
        fresh = iter(self.embedder.encode(todo)) if todo else iter(())
        return np.stack([stored[key] if key in stored else next(fresh) for key in keys])

    def feature_rows(self, question: str, candidates: list[Candidate], sims: np.ndarray) -> np.ndarray:
        """What :mod:`kb.search.sentence_rank` weighs about each candidate."""
        return candidate_rows(question, candidates, sims, idf=self.retriever.idf, linker=self.linker,
                              ontology=self.ontology)

    def ask(self, question: str, k: int = 5, mode: str = "hybrid", filters: Filters | None = None,
            expand: bool = True, llm=None) -> Answer:
        """Answer from the knowledge base; ``llm`` (a llama-index LLM) overrides ``KB_LLM``."""
        question = " ".join((question or "").split())
        if not question:
            return Answer(question="", answered=False, answer="Ask a question to get an answer with cited passages.")
        question = question[:2000]
        vector = self.embedder.encode([question])[0]
        result = self.retriever.search(question, k=max(k, TUNING.source_passages), mode=mode, filters=filters,
                                       expand=expand, vector=vector)
        hits = result.hits
        best = max((h.similarity or 0.0 for h in hits), default=0.0)
        if not hits or best < TUNING.answer_threshold:
            return Answer(question, False, NO_ANSWER, passages=hits[:k],
                          notes=[f"best passage similarity {best:.2f} is below {TUNING.answer_threshold:.2f}"])
        unknown = unknown_names(question, self.retriever.vocabulary())
        if unknown:
            names = " or ".join(unknown)
            return Answer(question, False, f"The knowledge base holds nothing on {names}, so there is no answer to "
                          "give; the closest passages are listed below.", passages=hits[:k],
                          notes=[f"no passage mentions {names}"])
        notes = []
        if self.make_llm is not None or llm is not None:
            written = llm_answer(question, hits[:TUNING.source_passages], llm or self.make_llm(), self.embedder)
            if written is not None:
                written.passages = hits[:k]
                return written
            notes = ["the LLM's answer had no supported sentence; showing the extractive answer"]
        candidates = candidate_sentences(hits[:TUNING.source_passages])
        if not candidates:
            return Answer(question, False, NO_ANSWER, passages=hits[:k])
        vectors = self.candidate_vectors(candidates)
        # One far below the best is left out. Relative to the best, so that MMR weighs relevance
        # against repetition the same way for every question.
        relevance = probabilities(self.feature_rows(question, candidates, vectors @ vector))
        relevance = relevance / relevance.max()
        passages = [c.hit.passage.chunk_id for c in candidates]
        picked = [candidates[i] for i in mmr(relevance, vectors, TUNING.max_sentences, floor=TUNING.sentence_floor,
                                             groups=passages, same_group=TUNING.same_passage)]
        amount = missing_amount(question, [c.text for c in picked])
        if amount:
            return Answer(question, False, f"The passages found do not state {amount}, which the question asks for, "
                          "so there is no answer to give; the closest passages are listed below.", passages=hits[:k],
                          notes=[f"the question asks for {amount}; no sentence picked gives one"])
        text, citations = compose(picked)
        return Answer(question, True, text, citations, passages=hits[:k], notes=notes)
