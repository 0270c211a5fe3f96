"""``kb eval``: gold questions in; retrieval and citation metrics, side by side with a baseline, out.

For every answerable gold question each retrieval mode (BM25, dense, hybrid, hybrid with the
ontology) and llama-index's default dense retriever (a ``VectorStoreIndex`` over the same
canonical texts cut by its default ``SentenceSplitter``, with the same embedding model) return
ten passages. A passage is relevant when it overlaps a gold evidence span of the same document
(see :mod:`kb.evals.metrics`). Then ``kb ask`` answers every question and its citations are checked
against the documents. The report is written as ``report.json``, ``report.md`` and
``recall.png`` in the output folder. The whole knowledge base is what is measured, so this
stage takes it as it is assembled.
"""

from __future__ import annotations

import os
import platform
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from kb.evals.baseline import LlamaBaseline
from kb.evals.gold import (GoldQuestion, answer_grades_for, answer_key, judgements_for, load_answer_grades,
                           load_gold, load_judgements)
from kb.evals.lint import lint_answer, lint_counts
from kb.evals.metrics import (
    SUPPORT_COSINE,
    AnswerScore,
    Span,
    evidence_recall_at_k,
    first_relevant_rank,
    hit_at_k,
    judge,
    mean,
    ndcg_at_k,
    percentile,
    rate,
    recall_curve,
    reciprocal_rank,
    score_answer,
)
from kb.evals.report import (
    ASK_K,
    DEPTH,
    MODE_LABELS,
    OUR_MODES,
    TAG_K,
    AnswerResult,
    EvalReport,
    ModeResult,
    label_path,
    write_report,
)
from kb.knowledge import KnowledgeBase
from kb.records import Document
from kb.search.tuning import TUNING
from kb.vocab.linking import DIMENSION_THRESHOLD

@dataclass
class _Ranked:
    first: int | None
    judged: list[frozenset[int]]
    chars: list[int]
    seconds: float
    pooled: list[frozenset[int]] | None = None  # judged against the gold and the judged passages


def _score_mode(mode: str, ranked: dict[str, _Ranked], gold: list[GoldQuestion], k_values: Sequence[int],
                tags: list[str]) -> ModeResult:
    by_id = {q.id: q for q in gold}
    rows = [(by_id[qid], r) for qid, r in ranked.items()]
    per_tag = {}
    for tag in tags:
        tagged = [r for q, r in rows if tag in q.tags]
        per_tag[tag] = mean(hit_at_k(r.judged, TAG_K) for r in tagged)
    times = [r.seconds * 1000 for _, r in rows]
    pooled = bool(rows) and all(r.pooled is not None for _, r in rows)
    return ModeResult(
        mode=mode, label=MODE_LABELS.get(mode, mode), questions=len(rows),
        recall={k: mean(hit_at_k(r.judged, k) for _, r in rows) for k in k_values},
        evidence_recall={k: mean(evidence_recall_at_k(r.judged, len(q.evidence), k) for q, r in rows) for k in k_values},
        mrr=mean(reciprocal_rank(r.judged, 10) for _, r in rows),
        ndcg=mean(ndcg_at_k(r.judged, len(q.evidence), 10) for q, r in rows),
        avg_chars=mean(mean(r.chars[:5]) for _, r in rows if r.chars),
        curve=recall_curve([r.first for _, r in rows], max(DEPTH, max(k_values))),
        per_tag=per_tag,
        latency_p50_ms=percentile(times, 50), latency_p95_ms=percentile(times, 95),
        pooled_recall={k: mean(hit_at_k(r.pooled, k) for _, r in rows) for k in k_values} if pooled else None,
        pooled_mrr=mean(reciprocal_rank(r.pooled, 10) for _, r in rows) if pooled else None,
    )


class _Progress:
    """A tqdm bar plus the app's optional ``progress(done, total, label)`` callback."""

    def __init__(self, total: int, callback: Callable[[int, int, str], None] | None) -> None:
        self.total, self.done, self.callback = total, 0, callback
        self.bar = tqdm(total=total, desc="Evaluating", unit="step", disable=None, leave=False)

    def step(self, label: str, n: int = 1) -> None:
        self.done += n
        self.bar.set_postfix_str(label, refresh=False)
        self.bar.update(n)
        if self.callback:
            self.callback(self.done, self.total, label)

    def close(self) -> None:
        self.bar.close()


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def _settings(kb: KnowledgeBase, docs: list[Document], baseline: LlamaBaseline | None) -> dict:
    s = kb.settings
    out: dict[str, Any] = {
        "model": s.model_label,
        "store": s.chroma_url or "embedded ChromaDB",
        "documents": len(docs),
        "passages": kb.counts()[1],
        "passage_tokens": {"max": s.max_tokens, "target": s.target_tokens, "overlap_sentences": s.overlap_sentences},
        "ask_k": ASK_K,
        "retrieval_depth": DEPTH,
        "support_cosine": SUPPORT_COSINE,
        "llm": s.llm or "none (extractive)",
        "reranker": s.reranker or "none",
        "fusion": "min-max normalised scores, summed with weights",
        "tuning": TUNING.to_json(),
        "dimension_threshold": DIMENSION_THRESHOLD,
        "ontology": {scheme: len(kb.ontology.in_scheme(scheme)) for scheme in ("concepts", "dimensions", "places")},
        "ontology_path": str(s.ontology),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "versions": {n: _version(n) for n in ("llama-index-core", "chromadb", "sentence-transformers", "bm25s", "torch")},
    }
    if baseline is not None:
        out["baseline"] = {
            "splitter": f"SentenceSplitter(chunk_size={baseline.chunk_size}, chunk_overlap={baseline.chunk_overlap})",
            "nodes": len(baseline.nodes), "vector_store": "SimpleVectorStore (in memory)",
            "offsets_relocated": baseline.relocated,
        }
    return out


def run_evaluation(kb: KnowledgeBase, gold_path: Path, out_dir: Path, *, baseline: bool = True,
                   k_values: Sequence[int] = (1, 5, 10), judgements: Path | None = None,
                   progress: Callable[[int, int, str], None] | None = None) -> EvalReport:
    """Evaluate retrieval (every mode, and the llama-index baseline) and answers; write the report to ``out_dir``.

    ``judgements`` (by default the gold file's ``*.judged.jsonl``, if there is one) adds retrieval
    figures that count judged passages as relevant too."""
    started = time.perf_counter()
    k_values = tuple(sorted({int(k) for k in k_values}))
    if not k_values or k_values[0] < 1 or k_values[-1] > DEPTH:
        raise ValueError(f"k values must lie between 1 and {DEPTH}")
    docs = kb.docs.all()
    if not docs:
        raise ValueError("the knowledge base is empty: run `kb ingest` first")
    documents = {d.meta.doc_id: d for d in docs}
    gold = load_gold(Path(gold_path), documents)
    if judgements is None and judgements_for(gold_path).exists():
        judgements = judgements_for(gold_path)
    judged_passages = load_judgements(judgements, gold, documents) if judgements else 0
    answerable = [q for q in gold if q.answerable]
    unanswerable = [q for q in gold if not q.answerable]
    tags = sorted({t for q in answerable for t in q.tags if t != "no-answer"})

    modes = (["llamaindex"] if baseline else []) + list(OUR_MODES)
    bar = _Progress(len(answerable) * len(modes) + len(gold) + (1 if baseline else 0) + 1, progress)
    try:
        kb.embedder.encode(["warm up"])  # loading is not what we time
        kb.retriever.search("warm up", k=1)
        bar.step("loading")
        ranked: dict[str, dict[str, _Ranked]] = {m: {} for m in modes}
        llama = None
        if baseline:
            llama = LlamaBaseline(docs, kb.embedder)
            bar.step("baseline index")
        for mode in modes:
            for q in answerable:
                kb.embedder.clear_cache()
                t0 = time.perf_counter()
                if mode == "llamaindex":
                    found = llama.search(q.question)
                    spans, chars = [s for s, _ in found], [n for _, n in found]
                else:
                    name, expand = OUR_MODES[mode]
                    hits = kb.retriever.search(q.question, k=DEPTH, mode=name, expand=expand).hits
                    spans = [Span(h.passage.doc_id, h.passage.start, h.passage.end) for h in hits]
                    chars = [len(h.passage.text) for h in hits]
                seconds = time.perf_counter() - t0
                judged = judge(spans, q.spans())
                pooled = judge(spans, q.pooled_spans()) if judgements else None
                ranked[mode][q.id] = _Ranked(first_relevant_rank(judged), judged, chars, seconds, pooled)
                bar.step(MODE_LABELS[mode])
        grades = load_answer_grades(answer_grades_for(gold_path)) if answer_grades_for(gold_path).exists() else {}
        answers, answer_rows = _evaluate_answers(kb, gold, documents, bar, grades)
    finally:
        bar.close()

    results = {m: _score_mode(m, ranked[m], gold, k_values, tags) for m in modes}
    details = []
    for q in gold:
        row = {"id": q.id, "question": q.question, "tags": q.tags, "evidence": len(q.evidence)}
        if q.answerable:
            row["first_rank"] = {m: ranked[m][q.id].first for m in modes}
        row.update(answer_rows.get(q.id, {}))
        details.append(row)
    notes = []
    if llama is not None and llama.relocated:
        notes.append(f"{llama.relocated} baseline nodes had no offsets from llama-index and were located by their text")
    gold_label = label_path(gold_path)
    report = EvalReport(
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), gold=gold_label,
        questions=len(gold), answerable=len(answerable), no_answer=len(unanswerable),
        settings=_settings(kb, docs, llama), modes=results, answers=answers,
        tags={t: sum(1 for q in answerable if t in q.tags) for t in tags}, details=details,
        duration_s=time.perf_counter() - started, notes=notes,
        judgements=label_path(judgements) if judgements else None, judged_passages=judged_passages,
    )
    write_report(report, Path(out_dir))
    return report


def _evaluate_answers(kb: KnowledgeBase, gold: list[GoldQuestion], documents: dict[str, Document],
                      bar: _Progress, grades: dict[str, dict]) -> tuple[AnswerResult, dict[str, dict]]:
    """Ask every gold question once; check its citations and claims, lint it, and take a reader's grade
    of it where the same answer was judged; time each call."""
    passages: dict[str, str] = {}

    def cosine(a: str, b: str) -> float:
        va, vb = kb.embedder.encode([a, b])
        return float(np.dot(va, vb))

    kb.ask(gold[0].question, k=ASK_K)  # warm-up: the sentence encoder's first call is slow
    scores: list[tuple[GoldQuestion, bool, AnswerScore]] = []
    times: list[float] = []
    rows: dict[str, dict] = {}
    linted: list[set[str]] = []
    graded: Counter[str] = Counter()
    for q in gold:
        kb.embedder.clear_cache()
        t0 = time.perf_counter()
        ans = kb.ask(q.question, k=ASK_K)
        times.append((time.perf_counter() - t0) * 1000)
        missing = [c.chunk_id for c in ans.citations if c.chunk_id not in passages]
        if missing:
            passages.update({p.chunk_id: p.text for p in kb.passages(missing)})
        score = score_answer(ans.answer if ans.answered else "", ans.citations, documents, passages,
                             q.spans(), cosine)
        scores.append((q, ans.answered, score))
        if ans.answered:
            linted.append(lint_answer(ans.answer, ans.citations))
        judged = grades.get(q.id)
        graded[judged["grade"] if judged and judged["answer_key"] == answer_key(ans.answer) else "not judged"] += 1
        rows[q.id] = {"answered": ans.answered, "citations": score.citations,
                      "claims_supported": f"{score.supported_claims}/{score.claims}",
                      "cites_gold": score.covers_gold if q.answerable else None}
        bar.step("answers")
    ok = [(q, a, s) for q, a, s in scores if q.answerable]
    no = [(q, a, s) for q, a, s in scores if not q.answerable]
    all_scores = [s for _, a, s in scores if a]
    n_cit = sum(s.citations for s in all_scores)
    pairs = sum(s.pairs for s in all_scores)
    claims = sum(s.claims for s in all_scores)
    result = AnswerResult(
        answerable=len(ok), no_answer=len(no),
        answered_rate=rate(a for _, a, _ in ok),
        honest_no_answer_rate=rate(not a for _, a, _ in no),
        no_answer_answered_rate=rate(a for _, a, _ in no),
        citations=n_cit,
        quote_exactness=sum(s.exact_quotes for s in all_scores) / n_cit if n_cit else 0.0,
        page_accuracy=sum(s.right_pages for s in all_scores) / n_cit if n_cit else 0.0,
        citation_precision=sum(s.supported_pairs for s in all_scores) / pairs if pairs else 0.0,
        citation_recall=sum(s.supported_claims for s in all_scores) / claims if claims else 0.0,
        gold_coverage=rate(a and s.covers_gold for _, a, s in ok),
        latency_p50_ms=percentile(times, 50), latency_p95_ms=percentile(times, 95),
        claims=claims, lint=lint_counts(linted), answered=len(linted),
        graded={g: graded[g] for g in ("full", "partial", "no", "not judged")} if grades else {},
    )
    return result, rows
