"""Answers with citations a machine can check, extractive by default.

From the top passages we pick the sentences most likely to answer the question (by meaning, by
the question's words they contain and by their passage's rank: :mod:`kb.sentence_rank`; with MMR so
they do not repeat each other) and quote them verbatim: every citation is ``text[start:end]`` of its
document's canonical text, on the page where it starts. When even the best passage is far
from the question, we say the knowledge base has little on it instead of answering.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ingest.chunk import heading_breaks, quotable_sentences
from kb.models import Hit
from kb.retrieval import Filters, hit_json
from kb.sentence_rank import candidate_rows, probabilities

if TYPE_CHECKING:
    from kb.knowledge import KnowledgeBase

# Below this cosine similarity between the question and its best passage, we do not answer
# (calibrated on the gold set's answerable and no-answer questions; see evals/RESULTS.md).
ANSWER_THRESHOLD = 0.30
MAX_SENTENCES = 3
MMR_LAMBDA = 0.75
# In MMR, two sentences of one passage count as at least this similar, so that an answer draws on a
# second passage when one is nearly as relevant (chosen on the four question sets: gold coverage
# 0.604 -> 0.621 on average, 1.6 -> 1.8 passages per answer).
SAME_PASSAGE = 0.8
# A sentence less likely to answer than this share of the best one's chance is not picked.
SENTENCE_FLOOR = 0.1
# Answer sentences come from the top 6 passages (their vectors are stored at ingestion).
SOURCE_PASSAGES = 6
NO_ANSWER = ("The knowledge base has little on this question, so there is no answer to give with "
             "confidence. The nearest passages are listed below.")


@dataclass
class Citation:
    n: int
    chunk_id: str
    doc_id: str
    title: str
    page: int | None
    quote: str
    start: int
    end: int
    authors: list[str] = field(default_factory=list)
    year: int | None = None

    def to_json(self) -> dict:
        return dict(self.__dict__)

    def reference(self) -> str:
        """Author (year) Title, p. N — for copying into a report."""
        who = ", ".join(self.authors) if self.authors else "n.a."
        page = f", p. {self.page}" if self.page is not None else ""
        return f"{who} ({self.year or 'n.d.'}) {self.title}{page}"


@dataclass
class Answer:
    question: str
    answered: bool
    answer: str
    citations: list[Citation] = field(default_factory=list)
    passages: list[Hit] = field(default_factory=list)
    mode: str = "extractive"
    notes: list[str] = field(default_factory=list)

    def to_json(self, labels: dict[str, str] | None = None) -> dict:
        return {
            "question": self.question, "answered": self.answered, "answer": self.answer,
            "citations": [c.to_json() for c in self.citations],
            "passages": [hit_json(h, labels) for h in self.passages],
            "mode": self.mode, "notes": self.notes,
        }

    def to_text(self) -> str:
        lines = [textwrap.fill(self.answer, 100), ""]
        if self.citations:
            lines.append("References")
            for c in self.citations:
                lines.append(f"[{c.n}] {c.reference()}  ({c.doc_id}, characters {c.start}–{c.end})")
                lines.append(textwrap.indent(textwrap.fill(f"“{c.quote}”", 96), "    "))
        elif self.passages:
            lines.append("Nearest passages")
            for h in self.passages[:3]:
                page = f", p. {h.passage.page}" if h.passage.page is not None else ""
                lines.append(f"- {h.title}{page}: {h.passage.text[:200]}…")
        for note in self.notes:
            lines.append(f"note: {note}")
        return "\n".join(lines)


@dataclass
class Candidate:
    hit: Hit
    start: int
    end: int
    text: str


def candidate_sentences(kb: "KnowledgeBase", hits: list[Hit]) -> list[Candidate]:
    """Whole sentences of the top passages, each with its exact offsets; overlaps counted once."""
    out: list[Candidate] = []
    seen: set[tuple[str, int]] = set()
    for hit in hits:
        doc = hit.doc(kb)
        if doc is None:
            continue
        for span in quotable_sentences(doc.text, hit.passage.start, hit.passage.end, heading_breaks(doc)):
            if (doc.meta.doc_id, span.start) in seen:
                continue
            seen.add((doc.meta.doc_id, span.start))
            out.append(Candidate(hit, span.start, span.end, doc.text[span.start:span.end]))
    return out


def candidate_vectors(kb: "KnowledgeBase", candidates: list[Candidate]) -> np.ndarray:
    """The candidates' vectors: stored at ingestion, so only sentences of a passage stored by an
    older version (or read while an ingestion replaces it) are encoded now."""
    stored = {(r.doc_id, r.start, r.end): v
              for r, v in kb.store.sentence_vectors(list({c.hit.passage.chunk_id for c in candidates})).items()}
    keys = [(c.hit.passage.doc_id, c.start, c.end) for c in candidates]
    todo = [c.text for c, key in zip(candidates, keys) if key not in stored]
    fresh = iter(kb.embedder.encode(todo)) if todo else iter(())
    return np.stack([stored[key] if key in stored else next(fresh) for key in keys])


def mmr(query_sims: np.ndarray, vectors: np.ndarray, k: int, lam: float = MMR_LAMBDA, floor: float = 0.0,
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


def compose(kb: "KnowledgeBase", picked: list[Candidate]) -> tuple[str, list[Citation]]:
    """Order the picked sentences by source and position, number them, and cite each one."""
    order = sorted(picked, key=lambda c: (c.hit.rank, c.start))
    citations, parts = [], []
    for n, c in enumerate(order, 1):
        doc = c.hit.doc(kb)
        citations.append(Citation(
            n=n, chunk_id=c.hit.passage.chunk_id, doc_id=doc.meta.doc_id, title=doc.meta.title,
            page=doc.page_at(c.start), quote=doc.text[c.start:c.end], start=c.start, end=c.end,
            authors=doc.meta.authors, year=doc.meta.year,
        ))
        sentence = " ".join(c.text.split())
        parts.append(f"{sentence} [{n}]")
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


def answer(kb: "KnowledgeBase", question: str, k: int = 5, mode: str = "hybrid",
           filters: Filters | None = None, expand: bool = True, llm=None) -> Answer:
    """Answer from the knowledge base; ``llm`` (a llama-index LLM) overrides ``KB_LLM``."""
    question = " ".join((question or "").split())
    if not question:
        return Answer(question="", answered=False, answer="Ask a question to get an answer with cited passages.")
    question = question[:2000]
    vector = kb.embedder.encode([question])[0]
    result = kb.retriever.search(question, k=max(k, SOURCE_PASSAGES), mode=mode, filters=filters,
                                 expand=expand, vector=vector)
    hits = result.hits
    best = max((h.similarity or 0.0 for h in hits), default=0.0)
    if not hits or best < ANSWER_THRESHOLD:
        return Answer(question, False, NO_ANSWER, passages=hits[:k],
                      notes=[f"best passage similarity {best:.2f} is below {ANSWER_THRESHOLD:.2f}"])
    unknown = unknown_names(question, kb.retriever.vocabulary())
    if unknown:
        names = " or ".join(unknown)
        return Answer(question, False, f"The knowledge base holds nothing on {names}, so there is no answer to "
                      "give; the closest passages are listed below.", passages=hits[:k],
                      notes=[f"no passage mentions {names}"])
    if kb.settings.llm or llm is not None:
        from kb.llm import llm_answer

        written = llm_answer(kb, question, hits[:SOURCE_PASSAGES], llm)
        if written is not None:
            written.passages = hits[:k]
            return written
        notes = ["the LLM's answer had no supported sentence; showing the extractive answer"]
    else:
        notes = []
    candidates = candidate_sentences(kb, hits[:SOURCE_PASSAGES])
    if not candidates:
        return Answer(question, False, NO_ANSWER, passages=hits[:k])
    vectors = candidate_vectors(kb, candidates)
    # How likely each sentence is to answer (kb.sentence_rank); one far below the best is left out.
    # Relative to the best, so that MMR weighs relevance against repetition the same way for every question.
    relevance = probabilities(candidate_rows(kb, question, candidates, vectors @ vector))
    relevance = relevance / relevance.max()
    passages = [c.hit.passage.chunk_id for c in candidates]
    picked = [candidates[i] for i in mmr(relevance, vectors, MAX_SENTENCES, floor=SENTENCE_FLOOR,
                                         groups=passages, same_group=SAME_PASSAGE)]
    amount = missing_amount(question, [c.text for c in picked])
    if amount:
        return Answer(question, False, f"The passages found do not state {amount}, which the question asks for, "
                      "so there is no answer to give; the closest passages are listed below.", passages=hits[:k],
                      notes=[f"the question asks for {amount}; no sentence picked gives one"])
    text, citations = compose(kb, picked)
    return Answer(question, True, text, citations, passages=hits[:k], notes=notes)
