"""Refit the model that picks an answer's sentences (:mod:`kb.search.sentence_rank`) on gold sets.

    python -m kb.evals.fit_sentences [--home KB_HOME] [--train FILE ...] [--test FILE ...]

It prints the new ``WEIGHTS`` and ``BIAS`` to paste into ``kb/search/sentence_rank.py`` and, for each
set, how often an answering sentence is the best and among the three best, by similarity alone and by the
model. Fit the cross-encoder first (``python -m kb.evals.fit_cross_encoder``): its score is a feature.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kb.config import PROJECT_ROOT, Settings
from kb.evals.gold import FITTED_ON, load_gold
from kb.evals.metrics import Span, judge
from kb.knowledge import KnowledgeBase
from kb.search.cross_encoder import CrossEncoder
from kb.search.quotes import candidates as quotable
from kb.search.sentence_rank import probabilities
from kb.search.tuning import TUNING


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


@dataclass
class Example:
    rows: np.ndarray
    labels: np.ndarray  # 1 where the sentence overlaps the question's gold evidence


def examples(kb: KnowledgeBase, gold_path: Path) -> list[Example]:
    """Every answerable question's candidate sentences, labelled by the gold evidence."""
    out = []
    documents = {d.meta.doc_id: d for d in kb.docs.all()}
    answerer = kb.answerer
    for q in load_gold(gold_path, documents):
        if not q.answerable:
            continue
        vector = kb.embedder.encode([q.question])[0]
        hits = kb.retriever.search(q.question, k=TUNING.source_passages, vector=vector).hits
        candidates = quotable(hits)
        if not candidates:
            continue
        sims = answerer.candidate_vectors(candidates) @ vector
        labels = np.array([bool(judge([Span(c.hit.passage.doc_id, *c.core)], q.spans())[0]) for c in candidates], float)
        rows = answerer.feature_rows(q.question, candidates, sims)
        out.append(Example(rows, labels))
    return out


def top(examples: list[Example], score, n: int = 3) -> float:
    """The share of questions with an answering sentence among the ``n`` best scored."""
    return float(np.mean([ex.labels[np.argsort(-score(ex.rows))[:n]].max() > 0 for ex in examples])) if examples else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kb.evals.fit_sentences", description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="an ingested knowledge base (default: KB_HOME)")
    parser.add_argument("--train", type=Path, nargs="+", default=list(FITTED_ON))
    parser.add_argument("--test", type=Path, nargs="*", default=[PROJECT_ROOT / "evals" / "fifth.jsonl"])
    parser.add_argument("--reader", type=Path, help="cross-encoder weights to score with (default: the shipped ones)")
    args = parser.parse_args(argv)
    kb = KnowledgeBase(Settings.from_env(home=args.home))
    if args.reader:
        kb.answerer.reader = CrossEncoder(args.reader)
    sets = {p: examples(kb, p) for p in [*args.train, *args.test]}
    train = [ex for p in args.train for ex in sets[p]]
    weights, bias = fit(np.concatenate([ex.rows for ex in train]), np.concatenate([ex.labels for ex in train]))
    print(f"WEIGHTS = {weights}\nBIAS = {bias}")
    print("answering sentence the best, and among the three best: by similarity alone / by the fitted model")
    for path, exs in sets.items():
        role = "train" if path in args.train else "test"
        model = lambda r: probabilities(r, weights, bias)  # noqa: E731
        print(f"  {path.name} ({role}, {len(exs)} questions): best {top(exs, lambda r: r[:, 0], 1):.3f} / "
              f"{top(exs, model, 1):.3f}; three best {top(exs, lambda r: r[:, 0]):.3f} / {top(exs, model):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
