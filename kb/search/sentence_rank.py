"""Which sentences of the top passages answer a question.

Closeness in meaning alone puts a sentence that answers the question among the three picked for
only about half of the gold questions. A small logistic model adds what else points to the answer:
the reader's score (a cross-encoder that reads question and sentence together,
:mod:`kb.search.cross_encoder`), the question's rarer words in the sentence (its names weighing less),
the rank of its passage, a figure when the question asks how many, the kind of thing a part of the
question asks for, whether the sentence leans on the one before or speaks of the document itself; a place
or concept the question names counts as its words wherever a sentence names it, by any label.
``python -m kb.evals.fit_sentences`` refits it and reports, for each set, how often an answering
sentence is the best and among the three best.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
import numpy as np

from kb.search.question import parts
from kb.search.quotes import POINTER, Candidate
from kb.search.tuning import TUNING
from kb.stores.keyword import bm25_tokens
from kb.vocab.linking import Linker
from kb.vocab.ontology import Ontology

FEATURES = ("similarity", "below_best", "inverse_rank", "passage_similarity", "word_overlap",
            "figure_for_quantity", "answer_cue", "pointer", "about_document", "length", "reader")
# Fitted by `python -m kb.evals.fit_sentences` on the four question sets (gold, heldout, fresh, fourth).
WEIGHTS = (0.46, 0.38, 2.02, 0.34, 0.57, 0.65, 0.04, -0.18, 0.29, 1.06, 0.9)
BIAS = -5.96

QUANTITY = re.compile(r"\b(how (much|many|big|large|long|often)|what (percentage|proportion|number|amount|size)|by how much)\b", re.I)
FIGURE = re.compile(r"[£$%]|\b\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
                    r"forty|fifty|sixty|hundred|thousand|million|billion|half|third|quarter|dozens?|per ?cent)\b", re.I)


def word_overlap(question_terms: Sequence[str], sentence_terms: Sequence[str], idf: dict[str, float],
                 also_present: Sequence[str] = ()) -> float:
    """The share of the question's term weight (IDF) that the sentence contains; ``also_present``
    are question terms the sentence covers in other words ("Danish" where it names Denmark)."""
    wanted = set(question_terms)
    total = sum(idf.get(t, 0.0) for t in wanted)
    if total <= 0:
        return 0.0
    present = set(sentence_terms) | set(also_present)
    return sum(idf.get(t, 0.0) for t in wanted if t in present) / total


# The capitalised words of a question after its first: the names in it.
NAME = re.compile(r"(?<!^)(?<![.?!]\s)\b[A-Z][\w’'-]*")
# A sentence about the document itself rather than its subject: "In this section we review…".
ABOUT_DOCUMENT = re.compile(r"^(?:In )?(?:this|the present|the following) (?:section|paper|chapter|report|summary|"
                            r"source paper|synthesis|study|review|document)\b|\bwe (?:describe|review|report|present|"
                            r"discuss|outline|consider|summarise|set out)\b|\b(?:study|studies|research|review|paper) drew on\b|"
                            r"\b(?:the following|the next|this|these) (?:sections?|chapters?|pages?)\b|\b(?:shown|set out|described) (?:below|above|opposite)\b",
                            re.I)


def features(question: str, texts: Sequence[str], sims: np.ndarray, ranks: Sequence[int],
             passage_sims: Sequence[float], overlaps: Sequence[float], read: Sequence[float]) -> np.ndarray:
    """One row per candidate sentence, in the order of ``FEATURES``."""
    sims = np.asarray(sims, dtype=float)
    quantity = 1.0 if QUANTITY.search(question) else 0.0
    asked = parts(question)
    return np.column_stack([
        sims,
        sims - (sims.max() if len(sims) else 0.0),
        [1.0 / max(1, r) for r in ranks],
        np.asarray(passage_sims, dtype=float),
        np.asarray(overlaps, dtype=float),
        [quantity * bool(FIGURE.search(t)) for t in texts],
        [float(any(p.cue(t) for p in asked)) for t in texts],
        [float(bool(POINTER.match(t))) for t in texts],
        [float(bool(ABOUT_DOCUMENT.search(t))) for t in texts],
        [min(1.0, len(t.split()) / 30) for t in texts],
        np.asarray(read, dtype=float),
    ])


def probabilities(rows: np.ndarray, weights: Sequence[float] = WEIGHTS, bias: float = BIAS) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(rows @ np.asarray(weights) + bias)))


def candidate_rows(question: str, candidates: list[Candidate], sims: np.ndarray, *,
                   idf: Callable[[list[str]], dict[str, float]], reader: Callable[[str, list[str]], np.ndarray],
                   linker: Linker, ontology: Ontology) -> np.ndarray:
    """The feature rows of a question's candidate sentences (``idf`` gives the keyword index's term weights,
    ``reader`` the cross-encoder's scores)."""
    texts = [c.core_text for c in candidates]
    tokens = bm25_tokens([question] + texts)
    weights = idf(sorted(set(tokens[0])))
    # Place and programme names narrow the evidence (search has done that); they do not say which
    # sentence answers, so they weigh less than the words of what is asked.
    names = set(bm25_tokens([" ".join(NAME.findall(question))])[0])
    weights = {t: w * (TUNING.name_weight if t in names else 1.0) for t, w in weights.items()}
    # What the question names, each with the question's words that named it and everything narrower.
    named = [(m.concept_id, bm25_tokens([m.label])[0], ontology.narrower_closure(m.concept_id))
             for m in linker.concepts.find(question) + linker.places.find(question)]
    overlaps = []
    for c, terms in zip(candidates, tokens[1:]):
        ids = set(linker.concepts.ids(c.core_text) + linker.places.ids(c.core_text))
        covered = [t for _, label_terms, family in named if ids & family for t in label_terms]
        overlaps.append(word_overlap(tokens[0], terms, weights, covered))
    return features(question, texts, sims, [c.hit.rank for c in candidates],
                    [c.hit.similarity or 0.0 for c in candidates], overlaps, reader(question, texts))
