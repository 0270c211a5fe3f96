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

from kb.embed import Embedder
from kb.records import Answer, Citation, Filters
from kb.search.cross_encoder import CrossEncoder
from kb.search.llm import llm_answer
from kb.search.question import BARRIER, parts
from kb.search.quotes import Candidate, candidates as quotable, defined_acronyms, merged, readable, spell_out, within
from kb.search.retrieval import Retriever
from kb.search.sentence_rank import ABOUT_DOCUMENT, FIGURE, candidate_rows, probabilities
from kb.search.tuning import TUNING
from kb.stores.vectors import PassageStore
from kb.vocab.linking import Linker
from kb.vocab.ontology import Ontology

NO_ANSWER = ("The knowledge base has little on this question, so there is no answer to give with "
             "confidence. The nearest passages are listed below.")


def mmr(query_sims: np.ndarray, vectors: np.ndarray, k: int, lam: float = TUNING.mmr_lambda, floor: float = 0.0,
        groups: list[str] | None = None, same_group: float = 0.0, chosen: list[int] | None = None,
        allowed: Callable[[int, list[int]], bool] | None = None) -> list[int]:
    """Maximal marginal relevance: relevant to the question, unlike what is already ``chosen``.

    With ``groups`` (each item's passage), two items of one group count as at least ``same_group``
    alike; ``allowed(i, chosen)`` can rule an item out given what is chosen."""
    chosen = list(chosen or [])
    remaining = [i for i in range(len(query_sims)) if query_sims[i] >= floor and i not in chosen]

    def alike(i: int, j: int) -> float:
        sim = float(vectors[i] @ vectors[j])
        return max(sim, same_group) if groups is not None and groups[i] == groups[j] else sim

    while remaining and len(chosen) < k:
        def gain(i: int) -> float:
            redundancy = max((alike(i, j) for j in chosen), default=0.0)
            return lam * float(query_sims[i]) - (1 - lam) * redundancy
        best = max(remaining, key=gain)
        remaining.remove(best)
        if allowed is None or allowed(best, chosen):
            chosen.append(best)
    return chosen


def one_per_part(by_part: list[np.ndarray], floor: float, allowed: Callable[[int, list[int]], bool]) -> list[int]:
    """For each part of a question, in order, the candidate that best answers it (if any is close enough)."""
    chosen: list[int] = []
    for scores in by_part:
        for i in np.argsort(-scores):
            if scores[i] < floor:
                break
            if int(i) in chosen:
                break  # the best for this part already answers an earlier one
            if allowed(int(i), chosen):
                chosen.append(int(i))
                break
    return chosen


def reading_order(quotes: list[Candidate], ranked: list[Candidate]) -> list[Candidate]:
    """The quotes as an answer gives them: first the passage holding the quote that answers best, then the
    passage of the next best, and so on; a passage's quotes in the order its text runs. ``ranked`` are
    the quotes as they were picked, best first (``quotes`` may have joined some of them)."""
    def best_inside(q: Candidate) -> int:
        return min((i for i, c in enumerate(ranked) if c.hit.passage.doc_id == q.hit.passage.doc_id
                    and q.start <= c.core[0] < q.end), default=len(ranked))

    first: dict[str, int] = {}
    for q in quotes:
        first[q.hit.passage.chunk_id] = min(first.get(q.hit.passage.chunk_id, len(ranked)), best_inside(q))
    return sorted(quotes, key=lambda q: (first[q.hit.passage.chunk_id], q.start))


def compose(quotes: list[Candidate], glossary: dict[str, str] | None = None) -> tuple[str, list[Citation]]:
    """Number the quotes in the order given, cite each one, and show each as a reader reads it
    (:func:`kb.search.quotes.readable`)."""
    citations, parts = [], []
    for n, c in enumerate(quotes, 1):
        citations.append(Citation.of(n, c.hit.passage.chunk_id, c.hit.document, c.start, c.end))
        parts.append(f"{readable(c.text)} [{n}]")
    answer = " ".join(parts)
    return (spell_out(answer, glossary) if glossary else answer), citations


# A question asking for an amount of money, or for how much something changed, and what gives one.
_ASKS_MONEY = re.compile(
    r"\bhow much\b[^?]*\b(cost\w*|money|sav\w*|fund\w*|pool\w*|spen[dt]\w*|pay|paid|budget\w*|invest\w*|worth)\b"
    r"|\bwhat (?:is|was|were|are) the (?:cost|price|budget|salary|fee)s?(?![-\w])|\bwhat did\b[^?]*\bcost\b"
    r"|\b(?:minimum|maximum|total) amount\b|\b(?:salary|salaries|fees?|price)\b", re.I)
_CHANGED = r"(?:rise|rose|risen|fall|fell|fallen|increase\w*|decrease\w*|reduc\w*|drop\w*|grow\w*|grew|improv\w*|cut)"
_ASKS_CHANGE = re.compile(rf"\bby how much\b|\b(?:how much|what percentage)\b[^?]*\b{_CHANGED}\b", re.I)
# A change in money ("by how much did spending fall?") is answered by an amount as well as a percentage.
_ABOUT_MONEY = re.compile(r"\b(?:cost\w*|spen[dt]\w*|sav\w*|budget\w*|fund\w*|money)\b", re.I)
_MONEY = re.compile(r"[£$€]\s?\d|\b\d[\d,.]*\s?(?:million|billion|bn|m|k|pounds|euros|dollars)\b", re.I)
_CHANGE = re.compile(r"\d\s?%|\bper ?cent\b|\b\d+(?:\.\d+)?\s?(?:times|fold)\b|\b(?:doubled|halved|tripled|trebled)\b", re.I)
# What a cost is not: a sum saved or cut ("savings of £2m", "as much as £8.1bn reduction in public spending").
_ASKS_COST = re.compile(r"\bcost\w*|\bspen[dt]\w*|\bpa(?:y|id)\b|\bprice\b|\bfees?\b", re.I)
_SAVED_BEFORE = re.compile(r"\b(?:sav\w*|reduc\w*|cut\w*)\b[^,;.]{0,40}$", re.I)
_SAVED_AFTER = re.compile(r"[\d,.]*\s?(?:million|billion|bn|m|k)?\b[ \t]+(?:\w+[ \t]+)?(?:sav|reduc|cut)", re.I)


def _sums(question: str, text: str) -> list[str]:
    """The sums of money a text gives, leaving out sums saved when the question asks what something cost."""
    found = list(_MONEY.finditer(text))
    if _ASKS_COST.search(question) and not re.search(r"\bsav", question, re.I):
        found = [m for m in found if not _SAVED_BEFORE.search(text, max(0, m.start() - 60), m.start())
                 and not _SAVED_AFTER.match(text, m.end())]
    return [m.group() for m in found]


# A part asking for a count or share ("How many places…?", "What proportion of…?"), and what it counts.
_ASKS_COUNT = re.compile(r"^\W*(?:how (?:many|much)|what (?:percentage|proportion|number|share)|by how much)\b", re.I)
_HOW_MANY = re.compile(r"\bhow many ((?:[\w’'-]+ ){1,4}?)(?:did|do|does|was|were|are|is|have|has|had|will|can|could|"
                       r"would|took|take|came|went|in|of|across|from)\b", re.I)


def counted(question: str) -> str:
    """What a "how many…?" question counts, as the start of its word ("place" of "How many Local Vision
    places did…"), when every part of it asks for a count; else ""."""
    m = _HOW_MANY.search(question)
    return m.group(1).split()[-1].lower()[:5] if m and asks_count(question) else ""


def counts(noun: str, text: str) -> bool:
    """Whether a figure in the text counts the noun: "nearly forty Local Vision places" counts "place",
    "the 13 Total Place sites" does not (a name is not the thing counted)."""
    return any(re.match(rf"\W*(?:[\w’'-]+\s+){{0,3}}?{re.escape(noun)}", text[m.end():m.end() + 60])
               for m in FIGURE.finditer(text))


def asks_count(question: str) -> bool:
    """Whether every part of the question asks for a count or share."""
    return all(_ASKS_COUNT.match(p.text) for p in parts(question))


def missing_amount(question: str, quotes: list[str]) -> str:
    """The kind of amount the question asks for ("an amount of money", "the size of the change", "a number")
    when no quote gives one, else "". Sentences about the right topic without the figure do not answer it,
    nor does a sum saved when the question asks what something cost."""
    text = " ".join(quotes)
    figures = _sums(question, text)
    if _ASKS_MONEY.search(question) and not figures:
        return "an amount of money"
    about_money = bool(_ABOUT_MONEY.search(question))
    if _ASKS_CHANGE.search(question) and not (_CHANGE.search(text) or (about_money and _MONEY.search(text))):
        return "the size of the change"
    if asks_count(question) and not FIGURE.search(text):
        return "a number"
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


# A question about the research itself, which sentences about the document may answer.
_ASKS_ABOUT_STUDY = re.compile(r"\b(?:stud(?:y|ies)|research\w*|case stud\w*|methods?|interview\w*|review\w*|"
                               r"papers?|reports?|source|commission\w*|authors?|evaluat\w*|synthesis|literature)\b", re.I)


class Answerer:
    """Answers from what a retriever finds; sentence vectors come from the store, stored at ingestion."""

    def __init__(self, *, retriever: Retriever, embedder: Embedder, vectors: PassageStore, reader: CrossEncoder,
                 linker: Linker, ontology: Ontology, make_llm: Callable[[], object] | None = None) -> None:
        self.retriever, self.embedder, self.vectors, self.reader = retriever, embedder, vectors, reader
        self.linker, self.ontology = linker, ontology
        self.make_llm = make_llm  # the optional answer writer that KB_LLM names
        # The vocabulary's acronyms with their long forms ("CCG" → "clinical commissioning group").
        self.acronyms = {alt: c.label for c in ontology.concepts.values() for alt in c.alt_labels
                         if re.fullmatch(r"[A-Z][A-Z&]{1,5}", alt) and c.label != alt}

    def candidate_vectors(self, candidates: list[Candidate]) -> np.ndarray:
        """The vectors of the candidates' core sentences: stored at ingestion, so only sentences of a
        passage stored by an older version (or read while an ingestion replaces it) are encoded now."""
        stored = {(r.doc_id, r.start, r.end): v
                  for r, v in self.vectors.sentence_vectors(list({c.hit.passage.chunk_id for c in candidates})).items()}
        keys = [(c.hit.passage.doc_id, *c.core) for c in candidates]
        todo = [c.core_text for c, key in zip(candidates, keys) if key not in stored]
        fresh = iter(self.embedder.encode(todo)) if todo else iter(())
        return np.stack([stored[key] if key in stored else next(fresh) for key in keys])

    def feature_rows(self, question: str, candidates: list[Candidate], sims: np.ndarray) -> np.ndarray:
        """What :mod:`kb.search.sentence_rank` weighs about each candidate."""
        return candidate_rows(question, candidates, sims, idf=self.retriever.idf, reader=self.reader.scores,
                              linker=self.linker, ontology=self.ontology)

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
                          notes=[f"best passage similarity {best:.3f} is below {TUNING.answer_threshold:.3f}"])
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
        candidates = quotable(hits[:TUNING.source_passages])
        if not candidates:
            return Answer(question, False, NO_ANSWER, passages=hits[:k])
        ranked = [candidates[i] for i in self.choose(question, vector, candidates)]
        picked = reading_order(merged(ranked), ranked)
        if not picked:  # every candidate was ruled out (only sentences about the document itself, say)
            return Answer(question, False, NO_ANSWER, passages=hits[:k])
        amount = missing_amount(question, [c.text for c in picked])
        if amount:
            return Answer(question, False, f"The passages found do not state {amount}, which the question asks for, "
                          "so there is no answer to give; the closest passages are listed below.", passages=hits[:k],
                          notes=[f"the question asks for {amount}; no sentence picked gives one"])
        text, citations = compose(picked, self.glossary(picked))
        return Answer(question, True, text, citations, passages=hits[:k], notes=notes)

    def relevance(self, question: str, vector: np.ndarray, candidates: list[Candidate],
                  vectors: np.ndarray) -> np.ndarray:
        """Each candidate's chance of answering ``question``, relative to the best candidate's."""
        p = probabilities(self.feature_rows(question, candidates, vectors @ vector))
        return p / p.max()

    def choose(self, question: str, vector: np.ndarray, candidates: list[Candidate]) -> list[int]:
        """The candidates an answer quotes: the best for each part of the question, then the most
        relevant of the rest unlike those (MMR); never one inside another or two that say the same thing
        (quotes that overlap are joined afterwards)."""
        vectors = self.candidate_vectors(candidates)
        asked = parts(question)
        relevance = self.relevance(question, vector, candidates, vectors)
        if not _ASKS_ABOUT_STUDY.search(question):
            # "In this section we review…" answers only a question about the study itself.
            relevance = relevance * np.array([0.0 if ABOUT_DOCUMENT.search(c.core_text) else 1.0 for c in candidates])
        if any(p.kind == "whether" for p in asked):
            # "Did any place…?" wants the place that did before the reasons none did.
            relevance = relevance * np.array([TUNING.barrier_weight if BARRIER.search(c.core_text) else 1.0
                                              for c in candidates])
        if relevance.max() > 0:
            relevance = relevance / relevance.max()  # the floor is a share of the best sentence left

        def allowed(i: int, chosen: list[int]) -> bool:
            return all(not within(candidates[i], candidates[j]) and float(vectors[i] @ vectors[j]) < TUNING.duplicate
                       for j in chosen)

        chosen: list[int] = []
        if len(asked) > 1:
            part_vectors = self.embedder.encode([p.text for p in asked])
            by_part = [TUNING.part_weight * self.relevance(p.text, v, candidates, vectors)
                       + (1 - TUNING.part_weight) * relevance for p, v in zip(asked, part_vectors)]
            chosen = one_per_part(by_part, TUNING.sentence_floor, allowed)
        passages = [c.hit.passage.chunk_id for c in candidates]
        picked = mmr(relevance, vectors, max(TUNING.max_sentences, len(chosen)), floor=TUNING.sentence_floor,
                     groups=passages, same_group=TUNING.same_passage, chosen=chosen, allowed=allowed)
        noun = counted(question)
        if noun and not any(FIGURE.search(candidates[i].text) for i in picked):
            # "How many places…?" wants the figure: the most relevant sentence counting places comes first.
            figures = [int(i) for i in np.argsort(-relevance)
                       if counts(noun, candidates[i].core_text) and relevance[i] > 0 and allowed(int(i), picked)]
            picked = figures[:1] + picked[:TUNING.max_sentences - 1] if figures else picked
        return picked

    def glossary(self, picked: list[Candidate]) -> dict[str, str]:
        """Acronyms and their long forms: the ontology's, then those the quoted documents define."""
        found = dict(self.acronyms)
        for c in picked:
            if c.hit.document is not None:
                found.update(defined_acronyms(c.hit.document.text))
        return found
