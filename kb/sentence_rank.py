"""Which sentences of the top passages answer a question.

Closeness in meaning alone puts a sentence that answers the question among the three picked for
only about half of the gold questions. A small logistic model adds what else points to the answer
(the question's rarer words in the sentence, the rank of its passage, a figure when the question
asks how many; a place or concept the question names counts as its words wherever a sentence names
it, by any label) and is fitted on the gold sets: ``python -m kb.sentence_rank`` refits it and
reports, for each set, how often an answering sentence is among the three best.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from kb.answer import Candidate
    from kb.knowledge import KnowledgeBase

FEATURES = ("similarity", "below_best", "inverse_rank", "passage_similarity", "word_overlap",
            "figure_for_quantity")
# Fitted by `python -m kb.sentence_rank` on evals/gold.jsonl and evals/heldout.jsonl.
WEIGHTS = (1.68, 2.57, 2.5, -0.68, 3.73, 1.22)
BIAS = -5.49

QUANTITY = re.compile(r"\b(how (much|many)|what (percentage|proportion|number|amount|size)|by how much)\b", re.I)
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


def features(question: str, texts: Sequence[str], sims: np.ndarray, ranks: Sequence[int],
             passage_sims: Sequence[float], overlaps: Sequence[float]) -> np.ndarray:
    """One row per candidate sentence, in the order of ``FEATURES``."""
    sims = np.asarray(sims, dtype=float)
    quantity = 1.0 if QUANTITY.search(question) else 0.0
    return np.column_stack([
        sims,
        sims - (sims.max() if len(sims) else 0.0),
        [1.0 / max(1, r) for r in ranks],
        np.asarray(passage_sims, dtype=float),
        np.asarray(overlaps, dtype=float),
        [quantity * bool(FIGURE.search(t)) for t in texts],
    ])


def probabilities(rows: np.ndarray, weights: Sequence[float] = WEIGHTS, bias: float = BIAS) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(rows @ np.asarray(weights) + bias)))


def fit(rows: np.ndarray, labels: np.ndarray, l2: float = 1.0, steps: int = 25) -> tuple[tuple[float, ...], float]:
    """L2-regularised logistic regression by Newton's method (the bias is not penalised)."""
    X = np.column_stack([rows, np.ones(len(rows))])
    w = np.zeros(X.shape[1])
    penalty = np.full(X.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(X @ w)))
        grad = X.T @ (p - labels) + penalty * w
        hess = (X * (p * (1 - p))[:, None]).T @ X + np.diag(penalty)
        w -= np.linalg.solve(hess, grad)
    return tuple(round(float(v), 2) for v in w[:-1]), round(float(w[-1]), 2)


def candidate_rows(kb: "KnowledgeBase", question: str, candidates: list["Candidate"], sims: np.ndarray) -> np.ndarray:
    """The feature rows of a question's candidate sentences (term weights from the BM25 index)."""
    from kb.retrieval import bm25_tokens

    tokens = bm25_tokens([question] + [c.text for c in candidates])
    idf = kb.retriever.idf(sorted(set(tokens[0])))
    linker, onto = kb.linker, kb.ontology
    # What the question names, each with the question's words that named it and everything narrower.
    named = [(m.concept_id, bm25_tokens([m.label])[0], onto.narrower_closure(m.concept_id))
             for m in linker.concepts.find(question) + linker.places.find(question)]
    overlaps = []
    for c, terms in zip(candidates, tokens[1:]):
        ids = set(linker.concepts.ids(c.text) + linker.places.ids(c.text))
        covered = [t for _, label_terms, family in named if ids & family for t in label_terms]
        overlaps.append(word_overlap(tokens[0], terms, idf, covered))
    return features(question, [c.text for c in candidates], sims, [c.hit.rank for c in candidates],
                    [c.hit.similarity or 0.0 for c in candidates], overlaps)


# -- refitting ------------------------------------------------------------------------------------
@dataclass
class Example:
    rows: np.ndarray
    labels: np.ndarray  # 1 where the sentence overlaps the question's gold evidence


def examples(kb: "KnowledgeBase", gold_path: Path) -> list[Example]:
    """Every answerable question's candidate sentences, labelled by the gold evidence."""
    from kb.answer import SOURCE_PASSAGES, candidate_sentences, candidate_vectors
    from kb.evaluation import load_gold
    from kb.metrics import Span, judge

    out = []
    for q in load_gold(gold_path, kb):
        if not q.answerable:
            continue
        vector = kb.embedder.encode([q.question])[0]
        hits = kb.retriever.search(q.question, k=SOURCE_PASSAGES, vector=vector).hits
        candidates = candidate_sentences(kb, hits)
        if not candidates:
            continue
        sims = candidate_vectors(kb, candidates) @ vector
        labels = np.array([bool(judge([Span(c.hit.passage.doc_id, c.start, c.end)], q.spans())[0]) for c in candidates], float)
        out.append(Example(candidate_rows(kb, q.question, candidates, sims), labels))
    return out


def top3(examples: list[Example], score) -> float:
    """The share of questions with an answering sentence among the three best scored."""
    return float(np.mean([ex.labels[np.argsort(-score(ex.rows))[:3]].max() > 0 for ex in examples])) if examples else 0.0


def main(argv: list[str] | None = None) -> int:
    from kb.config import PROJECT_ROOT, Settings
    from kb.knowledge import KnowledgeBase

    evals = PROJECT_ROOT / "evals"
    parser = argparse.ArgumentParser(prog="python -m kb.sentence_rank", description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="an ingested knowledge base (default: KB_HOME)")
    parser.add_argument("--train", type=Path, nargs="+", default=[evals / "gold.jsonl", evals / "heldout.jsonl"])
    parser.add_argument("--test", type=Path, nargs="*", default=[evals / "fresh.jsonl", evals / "fourth.jsonl"])
    args = parser.parse_args(argv)
    kb = KnowledgeBase(Settings.from_env(home=args.home))
    sets = {p: examples(kb, p) for p in [*args.train, *args.test]}
    train = [ex for p in args.train for ex in sets[p]]
    weights, bias = fit(np.concatenate([ex.rows for ex in train]), np.concatenate([ex.labels for ex in train]))
    print(f"WEIGHTS = {weights}\nBIAS = {bias}")
    print("answering sentence among the three best: by similarity alone / by the fitted model")
    for path, exs in sets.items():
        role = "train" if path in args.train else "test"
        print(f"  {path.name} ({role}, {len(exs)} questions): {top3(exs, lambda r: r[:, 0]):.3f} / "
              f"{top3(exs, lambda r: probabilities(r, weights, bias)):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
