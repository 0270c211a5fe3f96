"""Sentence vectors from the passage's own forward pass ("late chunking"), against sentences encoded on
their own: ``python benchmarks/late_chunking.py``.

The shipped corpus is ingested as it is today. For each passage the model's token vectors (before
pooling) are taken from the one forward pass the passage needs anyway, and each of its sentences gets
the mean of the token vectors inside the sentence, normalised. A copy of the knowledge base holds these
sentence vectors instead; both are evaluated on the question sets (retrieval, and the answers' quotes
and declines). The time is that of the passages' forward passes with and without the sentences' own.
Results: ``benchmarks/late-chunking-results.json`` and ``evals/EXPERIMENTS.md`` (section "Late chunking").
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import machine  # noqa: E402
from stores import say  # noqa: E402

RESULTS = ROOT / "benchmarks" / "late-chunking-results.json"
SETS = ("gold", "heldout", "fresh", "fourth", "fifth")


def late_vectors(model, doc, passages, sentences) -> tuple[np.ndarray, float]:
    """Each sentence's vector pooled from its passage's token vectors, and the seconds the passes took."""
    texts = [p.embed_text(doc.meta.title) for p in passages]
    t0 = time.perf_counter()
    tokens = model.encode(texts, output_value="token_embeddings", batch_size=16, convert_to_numpy=False)
    seconds = time.perf_counter() - t0
    enc = model.tokenizer(texts, return_offsets_mapping=True, truncation=True, max_length=model.max_seq_length)
    by_chunk = {p.chunk_id: i for i, p in enumerate(passages)}
    out = np.zeros((len(sentences), tokens[0].shape[1]), dtype=np.float32)
    for n, r in enumerate(sentences):
        i = by_chunk[r.chunk_id]
        p = passages[i]
        shift = len(texts[i]) - len(p.text)  # the heading line before the passage's text
        start, end = r.start - p.start + shift, r.end - p.start + shift
        inside = [t for t, (a, b) in enumerate(enc["offset_mapping"][i]) if b > a and a >= start and b <= end]
        vec = tokens[i][inside].mean(dim=0).numpy() if inside else tokens[i][1:-1].mean(dim=0).numpy()
        out[n] = vec / np.linalg.norm(vec)
    return out, seconds


def figures(kb, name: str, out: Path) -> dict:
    from kb.evals.run import run_evaluation

    report = run_evaluation(kb, ROOT / "evals" / f"{name}.jsonl", out / name, baseline=False)
    best = report.modes["hybrid+ontology"]
    a = report.answers
    return {"recall@5": round(best.recall[5], 3), "mrr": round(best.mrr, 3),
            "judged recall@5": round(best.pooled_recall[5], 3) if best.pooled_recall else None,
            "dense recall@5": round(report.modes["dense"].recall[5], 3) if "dense" in report.modes else None,
            "answered": round(a.answered_rate, 3), "declined no-answer": round(a.honest_no_answer_rate, 3),
            "citation precision": round(a.citation_precision, 3), "gold coverage": round(a.gold_coverage, 3)}


def main() -> int:
    from kb.config import Settings
    from kb.index import sentence_records
    from kb.knowledge import KnowledgeBase

    work = Path(tempfile.mkdtemp(prefix="kb-late-"))
    try:
        say("ingesting the shipped corpus")
        today = KnowledgeBase(Settings(home=work / "today"))
        today.ingest(progress=False)
        model = today.embedder.model
        late_home = work / "late"
        shutil.copytree(work / "today", late_home)
        late = KnowledgeBase(Settings(home=late_home))
        passage_s = sentence_s = 0.0
        for doc in late.docs.all():
            passages = sorted((p for p in late.all_passages() if p.doc_id == doc.meta.doc_id), key=lambda p: p.index)
            records = sentence_records(doc, passages)
            vectors, seconds = late_vectors(model, doc, passages, records)
            passage_s += seconds
            texts = list(dict.fromkeys(doc.text[r.start:r.end] for r in records))
            t0 = time.perf_counter()
            model.encode(texts, batch_size=16)
            sentence_s += time.perf_counter() - t0
            late.store.upsert_sentences(records, vectors)
        say(f"passages' forward passes {passage_s:.1f} s; the sentences' own {sentence_s:.1f} s more")
        results = {"machine": machine(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "seconds": {"passages": round(passage_s, 1), "sentences on their own": round(sentence_s, 1)},
                   "sets": {}}
        for name in SETS:
            results["sets"][name] = {"today": figures(today, name, work / "eval-today"),
                                     "late chunking": figures(late, name, work / "eval-late")}
            say(f"{name}: {json.dumps(results['sets'][name])}")
        RESULTS.write_text(json.dumps(results, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
