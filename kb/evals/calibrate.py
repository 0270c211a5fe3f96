"""Calibrate the similarity below which ``kb ask`` declines, on the question sets the models are fitted on.

    python -m kb.evals.calibrate [--home KB_HOME] [SET.jsonl ...]

Every question's best passage similarity is measured as ``kb ask`` measures it. The threshold is the
highest that declines no answerable question: halfway between the least similar answerable question
and the most similar no-answer question below it. It prints the threshold to set as
``Tuning.answer_threshold`` and what it declines. No-answer questions above it (about the right
subject, but asking what the corpus does not say) are left to the other checks of an answer.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from kb.config import Settings
from kb.evals.gold import FITTED_ON, load_gold
from kb.knowledge import KnowledgeBase
from kb.search.tuning import TUNING

ASK_K = 5


def threshold(answerable: Sequence[float], no_answer: Sequence[float]) -> float:
    """The highest similarity cut-off that keeps every answerable question, halfway to the no-answer
    question just below them (or 0.02 below the lowest answerable one when none lies below)."""
    if not answerable:
        raise ValueError("no answerable questions to calibrate on")
    lowest = min(answerable)
    below = [s for s in no_answer if s < lowest]
    return round((max(below) + lowest) / 2 if below else lowest - 0.02, 3)


def best_similarities(kb: KnowledgeBase, path: Path) -> list[tuple[str, bool, float]]:
    """(question id, answerable, best passage similarity) for every question of a set."""
    out = []
    for q in load_gold(path):
        hits = kb.retriever.search(q.question, k=max(ASK_K, TUNING.source_passages)).hits
        out.append((q.id, q.answerable, max((h.similarity or 0.0 for h in hits), default=0.0)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kb.evals.calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", type=Path, nargs="*", default=list(FITTED_ON))
    parser.add_argument("--home", type=Path, help="an ingested knowledge base (default: KB_HOME)")
    args = parser.parse_args(argv)
    kb = KnowledgeBase(Settings.from_env(home=args.home))
    rows = [row for path in args.sets for row in best_similarities(kb, path)]
    cut = threshold([s for _, a, s in rows if a], [s for _, a, s in rows if not a])
    declined = sorted((s, qid) for qid, a, s in rows if not a and s < cut)
    print(f"answer_threshold = {cut}  (now {TUNING.answer_threshold})")
    print(f"declines {len(declined)} of {sum(not a for _, a, _ in rows)} no-answer questions by similarity: "
          + ", ".join(f"{qid} ({s:.3f})" for s, qid in declined))
    print(f"least similar answerable question: {min(s for _, a, s in rows if a):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
