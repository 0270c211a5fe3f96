"""``kb eval``: gold questions in; retrieval and citation metrics, side by side with a baseline, out.

For every answerable gold question each retrieval mode (BM25, dense, hybrid, hybrid with the
ontology) and llama-index's default dense retriever (a ``VectorStoreIndex`` over the same
canonical texts cut by its default ``SentenceSplitter``, with the same embedding model) return
ten passages. A passage is relevant when it overlaps a gold evidence span of the same document
(see :mod:`kb.metrics`). Then ``kb.ask`` answers every question and its citations are checked
against the documents. The report is written as ``report.json``, ``report.md`` and
``recall.png`` in the output folder.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from kb.metrics import (
    MIN_OVERLAP_CHARS,
    SUPPORT_COSINE,
    AnswerScore,
    Span,
    collapsed_index,
    evidence_recall_at_k,
    first_relevant_rank,
    hit_at_k,
    judge,
    locate,
    mean,
    ndcg_at_k,
    percentile,
    rate,
    recall_curve,
    reciprocal_rank,
    score_answer,
)

if TYPE_CHECKING:
    from kb.knowledge import KnowledgeBase
    from kb.models import Document

__all__ = [
    "GoldError", "GoldEvidence", "GoldQuestion", "load_gold", "run_evaluation",
    "EvalReport", "ModeResult", "AnswerResult", "MODES", "MODE_LABELS",
]

# Mode keys, in the order tables and plots show them.
MODES = ("llamaindex", "bm25", "dense", "hybrid", "hybrid+ontology")
MODE_LABELS = {
    "llamaindex": "llama-index baseline",
    "bm25": "BM25",
    "dense": "dense",
    "hybrid": "hybrid",
    "hybrid+ontology": "hybrid + ontology",
}
# How each of our modes calls the retriever: (mode, expand with the ontology).
OUR_MODES = {"bm25": ("bm25", False), "dense": ("dense", False), "hybrid": ("hybrid", False),
             "hybrid+ontology": ("hybrid", True)}
PLOT_MODES = ("llamaindex", "bm25", "dense", "hybrid", "hybrid+ontology")
MODE_COLOURS = {"llamaindex": "#7f7f7f", "bm25": "#ff7f0e", "dense": "#2ca02c", "hybrid": "#1f77b4",
                "hybrid+ontology": "#d62728"}
DEPTH = 10  # passages retrieved per question; MRR and nDCG are @10
TAG_K = 5   # per-tag breakdowns are recall@5
ASK_K = 5


# -- the gold set ---------------------------------------------------------------------------
class GoldError(ValueError):
    """A gold file that cannot be used; the message names the file, the line and the problem."""


@dataclass
class GoldEvidence:
    """One gold evidence item, resolved to exact offsets in its document's canonical text."""

    doc_id: str
    start: int | None = None
    end: int | None = None
    quote: str | None = None

    def span(self) -> Span:
        return Span(self.doc_id, int(self.start or 0), int(self.end or 0))


@dataclass
class GoldQuestion:
    """A gold question: no evidence means the corpus cannot answer it."""

    id: str
    question: str
    evidence: list[GoldEvidence]
    tags: list[str] = field(default_factory=list)
    line: int = 0
    # Passages besides the gold evidence that assessors judged to answer it (see load_judgements).
    judged: list[GoldEvidence] = field(default_factory=list)

    @property
    def answerable(self) -> bool:
        return bool(self.evidence)

    def spans(self) -> list[Span]:
        return [e.span() for e in self.evidence]

    def pooled_spans(self) -> list[Span]:
        return self.spans() + [e.span() for e in self.judged]


def _texts(documents) -> dict[str, str] | None:
    """Doc id → canonical text, from a mapping of texts or Documents, or a KnowledgeBase."""
    if documents is None:
        return None
    if hasattr(documents, "docs") and hasattr(documents.docs, "all"):
        return {d.meta.doc_id: d.text for d in documents.docs.all()}
    return {k: (v if isinstance(v, str) else v.text) for k, v in documents.items()}


def load_gold(path: Path, documents: "Mapping[str, str | Document] | KnowledgeBase | None" = None) -> list[GoldQuestion]:
    """Read a JSONL gold file; with ``documents`` (doc id → canonical text, or the knowledge base)
    check every doc id and resolve every quote to exact offsets.

    Raises GoldError naming the file, the line number and the problem.
    """
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GoldError(f"{path}: no such gold file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GoldError(f"{path}: cannot read it as UTF-8 text: {exc}") from None
    texts = _texts(documents)
    collapsed: dict[str, tuple[str, list[int]]] = {}
    questions: list[GoldQuestion] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue

        def fail(problem: str) -> GoldError:
            return GoldError(f"{path}, line {number}: {problem}")

        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise fail(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(row, dict):
            raise fail(f"expected a JSON object, got {type(row).__name__}")
        question = row.get("question")
        if not isinstance(question, str) or not question.strip():
            raise fail("missing question (a non-empty string 'question' is required)")
        qid = row.get("id", f"line-{number}")
        if not isinstance(qid, (str, int)) or isinstance(qid, bool):
            raise fail("'id' must be a string")
        qid = str(qid)
        if qid in seen:
            raise fail(f"duplicate id {qid!r} (first used on line {seen[qid]})")
        seen[qid] = number
        tags = row.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise fail("'tags' must be a list of strings")
        if "evidence" not in row:
            raise fail("missing evidence (use an empty list for a question the corpus cannot answer)")
        evidence = row["evidence"]
        if not isinstance(evidence, list):
            raise fail(f"evidence is not a list (got {type(evidence).__name__})")
        items: list[GoldEvidence] = []
        for i, item in enumerate(evidence, 1):
            where = f"evidence item {i}"
            if not isinstance(item, dict):
                raise fail(f"{where} is not an object")
            doc_id = item.get("doc_id")
            if not isinstance(doc_id, str) or not doc_id:
                raise fail(f"{where} has no doc_id")
            text = None
            if texts is not None:
                if doc_id not in texts:
                    known = ", ".join(sorted(texts)[:6]) or "none: ingest documents first"
                    raise fail(f"{where}: unknown doc_id {doc_id!r} (known: {known})")
                text = texts[doc_id]
            if "quote" in item:
                quote = item["quote"]
                if not isinstance(quote, str) or not quote.strip():
                    raise fail(f"{where}: quote must be a non-empty string")
                ev = GoldEvidence(doc_id, quote=quote)
                if text is not None:
                    if doc_id not in collapsed:
                        collapsed[doc_id] = collapsed_index(text)
                    found = locate(quote, *collapsed[doc_id])
                    if found is None:
                        short = quote if len(quote) <= 80 else quote[:77] + "..."
                        raise fail(f"{where}: quote not found in the canonical text of {doc_id!r}: {short!r}")
                    ev.start, ev.end = found
            elif "start" in item or "end" in item:
                start, end = item.get("start"), item.get("end")
                if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
                    raise fail(f"{where}: start and end must both be integers")
                if not 0 <= start < end or (text is not None and end > len(text)):
                    limit = f" (the text has {len(text)} characters)" if text is not None else ""
                    raise fail(f"{where}: offsets {start}..{end} are not a non-empty range of {doc_id!r}{limit}")
                ev = GoldEvidence(doc_id, start, end, text[start:end] if text is not None else None)
            else:
                raise fail(f"{where} needs a 'quote', or 'start' and 'end' offsets")
            items.append(ev)
        questions.append(GoldQuestion(qid, " ".join(question.split()), items, list(tags), number))
    if not questions:
        raise GoldError(f"{path}: no questions in the file")
    return questions


def judgements_for(gold_path: Path) -> Path:
    """Where the judged passages of a gold file live by default: ``gold.jsonl`` → ``gold.judged.jsonl``."""
    gold_path = Path(gold_path)
    return gold_path.with_name(gold_path.stem + ".judged.jsonl")


def load_judgements(path: Path, questions: list[GoldQuestion], documents: "Mapping[str, str | Document]") -> int:
    """Attach judged passages to their questions; return how many there are.

    Each line is ``{"id": question id, "doc_id", "start", "end", "quote"}``: a passage found by some
    mode that an assessor judged to answer the question, besides the gold evidence (pooled relevance
    judgements, as in TREC). ``quote`` must equal ``text[start:end]`` up to whitespace, so that a
    change to the canonical text is caught rather than silently shifting the span.
    """
    path = Path(path)
    texts = _texts(documents) or {}
    by_id = {q.id: q for q in questions}
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GoldError(f"{path}: cannot read it as UTF-8 text: {exc}") from None
    count = 0
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            qid, doc_id, start, end = str(row["id"]), row["doc_id"], row["start"], row["end"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise GoldError(f"{path}, line {number}: needs id, doc_id, start and end ({exc})") from None
        if qid not in by_id:
            raise GoldError(f"{path}, line {number}: no question {qid!r} in the gold file")
        text = texts.get(doc_id)
        if text is None:
            raise GoldError(f"{path}, line {number}: unknown doc_id {doc_id!r}")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            raise GoldError(f"{path}, line {number}: offsets {start!r}..{end!r} are not a range of {doc_id!r}")
        quote = row.get("quote")
        if quote is not None and " ".join(quote.split()) != " ".join(text[start:end].split()):
            raise GoldError(f"{path}, line {number}: the text at {start}..{end} of {doc_id!r} is no longer the quote "
                            f"{quote[:60]!r} (the canonical text changed: locate the quote again)")
        by_id[qid].judged.append(GoldEvidence(doc_id, start, end, quote))
        count += 1
    return count


# -- results --------------------------------------------------------------------------------
@dataclass
class ModeResult:
    """Retrieval metrics of one mode over the answerable questions."""

    mode: str
    label: str
    questions: int
    recall: dict[int, float]
    evidence_recall: dict[int, float]
    mrr: float
    ndcg: float
    avg_chars: float
    curve: list[float]
    per_tag: dict[str, float]
    latency_p50_ms: float
    latency_p95_ms: float
    # The same, counting judged passages as relevant too (None without judgements).
    pooled_recall: dict[int, float] | None = None
    pooled_mrr: float | None = None


@dataclass
class AnswerResult:
    """Citation and answer metrics of ``kb.ask`` over the gold questions."""

    answerable: int
    no_answer: int
    answered_rate: float
    honest_no_answer_rate: float
    no_answer_answered_rate: float
    citations: int
    quote_exactness: float
    page_accuracy: float
    citation_precision: float
    citation_recall: float
    gold_coverage: float
    latency_p50_ms: float
    latency_p95_ms: float
    claims: int = 0


@dataclass
class EvalReport:
    """Everything one evaluation run measured, with the settings it ran under."""

    created: str
    gold: str
    questions: int
    answerable: int
    no_answer: int
    settings: dict
    modes: dict[str, ModeResult]
    answers: AnswerResult | None
    tags: dict[str, int]
    details: list[dict]
    duration_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    judgements: str | None = None  # the file of judged passages, if one was used
    judged_passages: int = 0

    def to_json(self) -> dict:
        return {
            "created": self.created, "gold": self.gold, "questions": self.questions,
            "judgements": self.judgements, "judged_passages": self.judged_passages,
            "answerable": self.answerable, "no_answer": self.no_answer,
            "duration_s": round(self.duration_s, 1), "settings": self.settings,
            "relevance": relevance_rule(),
            "retrieval": {m: _rounded(asdict(r)) for m, r in self.modes.items()},
            "answers": _rounded(asdict(self.answers)) if self.answers else None,
            "tags": self.tags, "misses": self.misses(), "notes": self.notes, "questions_detail": self.details,
        }

    def misses(self, mode: str = "hybrid+ontology", k: int = TAG_K) -> list[dict]:
        """Questions ``mode`` misses in its top ``k``, with every mode's first relevant rank."""
        out = []
        for d in self.details:
            ranks = d.get("first_rank", {})
            if mode in ranks and (ranks[mode] is None or ranks[mode] > k):
                found_by = [m for m, r in ranks.items() if r is not None and r <= k]
                out.append({"id": d["id"], "question": d["question"], "first_rank": ranks, "found_by": found_by})
        return out

    def summary(self) -> str:
        """A short text table of the headline figures."""
        ks = sorted({k for r in self.modes.values() for k in r.recall})
        head = f"{'mode':<22}" + "".join(f"{'R@' + str(k):>7}" for k in ks) + f"{'MRR@10':>8}{'nDCG@10':>9}{'chars@5':>9}"
        lines = [f"Retrieval over {self.answerable} answerable questions ({self.gold})", head]
        for m, r in self.modes.items():
            lines.append(f"{r.label:<22}" + "".join(f"{r.recall[k]:>7.3f}" for k in ks)
                         + f"{r.mrr:>8.3f}{r.ndcg:>9.3f}{r.avg_chars:>9.0f}")
        if self.judgements:
            lines += ["", f"Counting the {self.judged_passages} judged passages of {self.judgements} as relevant too",
                      f"{'mode':<22}" + "".join(f"{'R@' + str(k):>7}" for k in ks) + f"{'MRR@10':>8}"]
            for r in self.modes.values():
                if r.pooled_recall is not None:
                    lines.append(f"{r.label:<22}" + "".join(f"{r.pooled_recall[k]:>7.3f}" for k in ks) + f"{r.pooled_mrr:>8.3f}")
        a = self.answers
        if a:
            lines += [
                "",
                f"Answers: quote exactness {a.quote_exactness:.3f}, page accuracy {a.page_accuracy:.3f}, "
                f"citation precision {a.citation_precision:.3f}, citation recall {a.citation_recall:.3f}",
                f"         gold coverage {a.gold_coverage:.3f}, answered {a.answered_rate:.3f} of answerable, "
                f"answered {a.no_answer_answered_rate:.3f} of no-answer ({a.no_answer} questions)",
                f"Latency: kb ask p50 {_ms(a.latency_p50_ms)} ms, p95 {_ms(a.latency_p95_ms)} ms (in-process, after loading)",
            ]
        return "\n".join(lines)

    def to_markdown(self, plot: str | None = "recall.png") -> str:
        """The report as Markdown: a table per section, the settings and the date."""
        return render_markdown(self, plot)


def relevance_rule() -> str:
    return (f"a passage is relevant when its [start, end) overlaps a gold evidence span of the same "
            f"document by at least half the span or {MIN_OVERLAP_CHARS} characters, whichever is smaller")


def _label(path: Path) -> str:
    """A path as the report names it: relative to the project when it lies inside it."""
    from kb.config import PROJECT_ROOT

    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _rounded(obj: Any, digits: int = 4) -> Any:
    if isinstance(obj, float):
        return round(obj, digits)
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v, digits) for v in obj]
    return obj


# -- the llama-index baseline -----------------------------------------------------------------
def _llama_embedding(embedder):
    """Our embedding model wrapped as a llama-index embedding (the same vectors as ``kb.embedder``)."""
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from pydantic import PrivateAttr

    class KBEmbedding(BaseEmbedding):
        _embedder: Any = PrivateAttr()

        def __init__(self, inner, **kwargs) -> None:
            super().__init__(model_name=str(getattr(inner, "model_path", "kb-embedder")), embed_batch_size=64, **kwargs)
            self._embedder = inner

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._embedder.encode([query])[0].tolist()

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._embedder.encode([text])[0].tolist()

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return self._embedder.encode(list(texts)).tolist()

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        async def _aget_text_embedding(self, text: str) -> list[float]:
            return self._get_text_embedding(text)

    return KBEmbedding(embedder)


class LlamaBaseline:
    """llama-index's default dense retriever: ``SentenceSplitter()`` nodes in an in-memory ``VectorStoreIndex``."""

    def __init__(self, documents: Sequence["Document"], embedder, top_k: int = DEPTH) -> None:
        from llama_index.core import Document as LlamaDocument
        from llama_index.core import Settings as LlamaSettings
        from llama_index.core import StorageContext, VectorStoreIndex
        from llama_index.core.llms import MockLLM
        from llama_index.core.node_parser import SentenceSplitter
        from llama_index.core.vector_stores import SimpleVectorStore

        # Nothing here may call an LLM (or reach for OpenAI's default): a mock, restored afterwards.
        previous = getattr(LlamaSettings, "_llm", None)
        LlamaSettings.llm = MockLLM()
        try:
            splitter = SentenceSplitter()
            self.chunk_size, self.chunk_overlap = splitter.chunk_size, splitter.chunk_overlap
            docs = [LlamaDocument(text=d.text, metadata={"doc_id": d.meta.doc_id}, id_=d.meta.doc_id) for d in documents]
            self.nodes = splitter.get_nodes_from_documents(docs)
            self.relocated = self._fill_offsets({d.meta.doc_id: d.text for d in documents})
            storage = StorageContext.from_defaults(vector_store=SimpleVectorStore())
            self.index = VectorStoreIndex(self.nodes, storage_context=storage, embed_model=_llama_embedding(embedder),
                                          show_progress=False)
            self.retriever = self.index.as_retriever(similarity_top_k=top_k)
        finally:
            LlamaSettings._llm = previous

    def _fill_offsets(self, texts: dict[str, str]) -> int:
        """Give any node without character offsets the ones its text has in the document; count them."""
        fixed = 0
        for node in self.nodes:
            if node.start_char_idx is None:
                text = texts[node.metadata["doc_id"]]
                found = locate(node.get_content(), *collapsed_index(text))
                if found:
                    node.start_char_idx, node.end_char_idx = found
                    fixed += 1
        return fixed

    def search(self, question: str) -> list[tuple[Span, int]]:
        """The top nodes as spans of canonical text, with their lengths in characters."""
        out = []
        for hit in self.retriever.retrieve(question):
            node = hit.node
            if node.start_char_idx is None or node.end_char_idx is None:
                continue
            out.append((Span(node.metadata["doc_id"], node.start_char_idx, node.end_char_idx), len(node.get_content())))
        return out


# -- running --------------------------------------------------------------------------------
def forget_embeddings(embedder) -> None:
    """Empty the embedder's memo of recent texts (if it keeps one), so that a timed call pays for
    encoding its question as a new user's question would; retrieval results do not change."""
    cache = getattr(embedder, "_cache", None)
    if cache is not None and hasattr(cache, "clear"):
        lock = getattr(embedder, "_cache_lock", None)
        if lock is not None:
            with lock:
                cache.clear()
        else:
            cache.clear()


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
        from tqdm import tqdm

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


def _settings(kb: "KnowledgeBase", docs: list["Document"], baseline: LlamaBaseline | None) -> dict:
    from importlib import metadata

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "?"

    s = kb.settings
    out: dict[str, Any] = {
        "model": s.model or "all-MiniLM-L6-v2 (packaged)",
        "store": s.chroma_url or "embedded ChromaDB",
        "documents": len(docs),
        "passages": len(kb.retriever.passages),
        "passage_tokens": {"max": s.max_tokens, "target": s.target_tokens, "overlap_sentences": s.overlap_sentences},
        "ask_k": ASK_K,
        "retrieval_depth": DEPTH,
        "support_cosine": SUPPORT_COSINE,
        "llm": s.llm or "none (extractive)",
        "reranker": s.reranker or "none",
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "versions": {n: version(n) for n in ("llama-index-core", "chromadb", "sentence-transformers", "bm25s", "torch")},
    }
    try:
        import kb.retrieval as retrieval

        out["fusion"] = "min-max normalised scores, summed with weights"
        out["candidates"] = getattr(retrieval, "CANDIDATES", None)
        out["weights"] = {"expansion": retrieval.EXPANSION_WEIGHT, "linked": retrieval.LINKED_WEIGHT}
        import kb.answer as answer

        out["answer_threshold"] = getattr(answer, "ANSWER_THRESHOLD", None)
    except Exception:  # noqa: BLE001 - settings are informative only
        pass
    try:
        onto = kb.ontology
        out["ontology"] = {scheme: len(onto.in_scheme(scheme)) for scheme in ("concepts", "dimensions", "places")}
        out["ontology_path"] = str(s.ontology)
    except Exception as exc:  # noqa: BLE001
        out["ontology"] = f"unavailable: {exc}"
    if baseline is not None:
        out["baseline"] = {
            "splitter": f"SentenceSplitter(chunk_size={baseline.chunk_size}, chunk_overlap={baseline.chunk_overlap})",
            "nodes": len(baseline.nodes), "vector_store": "SimpleVectorStore (in memory)",
            "offsets_relocated": baseline.relocated,
        }
    return out


def run_evaluation(kb: "KnowledgeBase", gold_path: Path, out_dir: Path, *, baseline: bool = True,
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
                forget_embeddings(kb.embedder)
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
        answers, answer_rows = _evaluate_answers(kb, gold, documents, bar)
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
    gold_label = _label(gold_path)
    report = EvalReport(
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), gold=gold_label,
        questions=len(gold), answerable=len(answerable), no_answer=len(unanswerable),
        settings=_settings(kb, docs, llama), modes=results, answers=answers,
        tags={t: sum(1 for q in answerable if t in q.tags) for t in tags}, details=details,
        duration_s=time.perf_counter() - started, notes=notes,
        judgements=_label(judgements) if judgements else None, judged_passages=judged_passages,
    )
    write_report(report, Path(out_dir))
    return report


def _evaluate_answers(kb: "KnowledgeBase", gold: list[GoldQuestion], documents: dict[str, "Document"],
                      bar: _Progress) -> tuple[AnswerResult, dict[str, dict]]:
    """Ask every gold question once; check its citations and claims; time each call."""
    passages = {p.chunk_id: p.text for p in kb.retriever.passages}

    def cosine(a: str, b: str) -> float:
        va, vb = kb.embedder.encode([a, b])
        return float(np.dot(va, vb))

    kb.ask(gold[0].question, k=ASK_K)  # warm-up: the sentence encoder's first call is slow
    scores: list[tuple[GoldQuestion, bool, AnswerScore]] = []
    times: list[float] = []
    rows: dict[str, dict] = {}
    for q in gold:
        forget_embeddings(kb.embedder)
        t0 = time.perf_counter()
        ans = kb.ask(q.question, k=ASK_K)
        times.append((time.perf_counter() - t0) * 1000)
        missing = [c.chunk_id for c in ans.citations if c.chunk_id not in passages]
        if missing:
            passages.update({p.chunk_id: p.text for p in kb.store.passages(missing)})
        score = score_answer(ans.answer if ans.answered else "", ans.citations, documents, passages,
                             q.spans(), cosine)
        scores.append((q, ans.answered, score))
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
        claims=claims,
    )
    return result, rows


# -- writing --------------------------------------------------------------------------------
def write_report(report: EvalReport, out_dir: Path) -> None:
    """report.json, report.md and recall.png in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    plot_report(report, out_dir / "recall.png")
    (out_dir / "report.md").write_text(report.to_markdown("recall.png"), encoding="utf-8")


def plot_report(report: EvalReport, path: Path) -> None:
    """Recall@k curves by mode, and per-tag recall@5 bars for the main modes (Agg, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 6.5), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, width_ratios=[1, 1.3])
    for mode, r in report.modes.items():
        ks = list(range(1, len(r.curve) + 1))
        style = "--" if mode in ("llamaindex", "hybrid") else "-"
        left.plot(ks, r.curve, style, marker="o", markersize=3.5, label=r.label, color=MODE_COLOURS.get(mode),
                  linewidth=2.4 if mode == "hybrid+ontology" else 1.5)
    left.set(xlabel="k (passages returned)", ylabel="recall@k (questions with a relevant passage in the top k)",
             title=f"Recall@k by mode ({report.answerable} questions)", ylim=(0, 1.02), xticks=range(1, DEPTH + 1))
    left.grid(alpha=0.3)
    left.legend(loc="lower right")

    shown = [m for m in PLOT_MODES if m in report.modes]
    tags = sorted(report.tags, key=lambda t: -report.tags[t])
    y = np.arange(len(tags))
    height = 0.8 / max(1, len(shown))
    for i, mode in enumerate(shown):
        r = report.modes[mode]
        right.barh(y + (i - (len(shown) - 1) / 2) * height, [r.per_tag.get(t, 0.0) for t in tags], height,
                   label=r.label, color=MODE_COLOURS.get(mode))
    right.set_yticks(y, [f"{t} ({report.tags[t]})" for t in tags])
    right.invert_yaxis()
    right.set(xlim=(0, 1.02), xlabel=f"recall@{TAG_K}", title=f"Recall@{TAG_K} by tag (questions per tag)")
    right.grid(axis="x", alpha=0.3)
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=len(shown), fontsize="small", frameon=False)
    fig.savefig(path)


def _f(x: float) -> str:
    return f"{x:.3f}"


def _ms(x: float) -> str:
    """Milliseconds: whole numbers, with a decimal below 10 ms so that fast operations do not read 0."""
    return f"{x:.1f}" if x < 10 else f"{x:.0f}"


def render_markdown(report: EvalReport, plot: str | None = "recall.png") -> str:
    s = report.settings
    ks = sorted({k for r in report.modes.values() for k in r.recall})
    lines = [
        "# Evaluation report",
        "",
        f"Run {report.created} on `{report.gold}`: {report.questions} questions "
        f"({report.answerable} answerable, {report.no_answer} with no answer in the corpus), "
        f"{s.get('documents')} documents, {s.get('passages')} passages; took {report.duration_s:.0f} s.",
        "Produced by `kb eval`; the figures are lower bounds where the gold set is incomplete (see `evals/GOLD.md`).",
        "",
        "## Retrieval by mode",
        "",
        "| mode | " + " | ".join(f"recall@{k}" for k in ks) + " | " + " | ".join(f"evidence recall@{k}" for k in ks)
        + " | MRR@10 | nDCG@10 | avg chars in top 5 | search p50 ms | search p95 ms |",
        "|---|" + "---:|" * (2 * len(ks) + 5),
    ]
    for r in report.modes.values():
        lines.append(f"| {r.label} | " + " | ".join(_f(r.recall[k]) for k in ks) + " | "
                     + " | ".join(_f(r.evidence_recall[k]) for k in ks)
                     + f" | {_f(r.mrr)} | {_f(r.ndcg)} | {r.avg_chars:.0f} | {_ms(r.latency_p50_ms)} | {_ms(r.latency_p95_ms)} |")
    if plot:
        lines += ["", f"![Recall@k by mode and recall@{TAG_K} by tag]({plot})"]
    depth = max((len(r.curve) for r in report.modes.values()), default=DEPTH)
    lines += ["", "Recall@k for k = 1..10:", "",
              "| mode | " + " | ".join(str(k) for k in range(1, depth + 1)) + " |",
              "|---|" + "---:|" * depth]
    for r in report.modes.values():
        lines.append(f"| {r.label} | " + " | ".join(f"{v:.2f}" for v in r.curve) + " |")
    if report.judgements:
        lines += ["", "## Retrieval counting judged passages", "",
                  f"The gold set names 1–3 evidence passages per question, and other passages can answer too. "
                  f"`{report.judgements}` lists {report.judged_passages} more passages that an assessor, reading the "
                  "question, its gold evidence and the passage but not which mode found it or at what rank, judged to "
                  "answer the question (pooled judgements of the top 5 of BM25, dense, hybrid and hybrid + ontology). "
                  "Counting them as relevant as well:", "",
                  "| mode | " + " | ".join(f"recall@{k}" for k in ks) + " | MRR@10 |",
                  "|---|" + "---:|" * (len(ks) + 1)]
        for r in report.modes.values():
            if r.pooled_recall is not None:
                lines.append(f"| {r.label} | " + " | ".join(_f(r.pooled_recall[k]) for k in ks) + f" | {_f(r.pooled_mrr)} |")
        lines += ["", "Passages ranked below 5, and the llama-index baseline's own nodes, were not in the pool, so these "
                  "figures are still lower bounds, the baseline's most of all."]

    lines += ["", f"## Recall@{TAG_K} by tag", "",
              "| tag | questions | " + " | ".join(r.label for r in report.modes.values()) + " |",
              "|---|---:|" + "---:|" * len(report.modes)]
    for tag in sorted(report.tags, key=lambda t: -report.tags[t]):
        lines.append(f"| {tag} | {report.tags[tag]} | "
                     + " | ".join(_f(r.per_tag.get(tag, 0.0)) for r in report.modes.values()) + " |")

    a = report.answers
    if a:
        lines += [
            "", f"## Answers (`kb ask`, k = {s.get('ask_k', ASK_K)}, {s.get('llm', 'extractive')})", "",
            "| metric | value | over |", "|---|---:|---|",
            f"| quote exactness (`quote == text[start:end]`) | {_f(a.quote_exactness)} | {a.citations} citations |",
            f"| page accuracy (`page` is the page map's page holding `start`) | {_f(a.page_accuracy)} | {a.citations} citations |",
            f"| citation precision (cited passage supports the sentence) | {_f(a.citation_precision)} | (sentence, citation) pairs |",
            f"| citation recall (sentences with a supporting citation) | {_f(a.citation_recall)} | {a.claims} answer sentences |",
            f"| gold-evidence coverage (a citation overlaps gold evidence) | {_f(a.gold_coverage)} | {a.answerable} answerable questions |",
            f"| answered rate | {_f(a.answered_rate)} | {a.answerable} answerable questions |",
            f"| answered rate on no-answer questions (lower is better) | {_f(a.no_answer_answered_rate)} | {a.no_answer} no-answer questions |",
            "",
            "## Latency (in-process, after loading)", "",
            "| operation | p50 ms | p95 ms | calls |", "|---|---:|---:|---:|",
            f"| `kb ask` | {_ms(a.latency_p50_ms)} | {_ms(a.latency_p95_ms)} | {a.answerable + a.no_answer} |",
        ]
        for r in report.modes.values():
            lines.append(f"| search: {r.label} | {_ms(r.latency_p50_ms)} | {_ms(r.latency_p95_ms)} | {r.questions} |")
        wrong = [d for d in report.details if not d.get("evidence") and d.get("answered")]
        if wrong:
            lines += ["", "No-answer questions that were answered anyway:", ""]
            lines += [f"- {d['id']}: {d['question']}" for d in wrong]

    misses = report.misses()
    if misses:
        order = list(report.modes)
        lines += ["", f"## Questions hybrid + ontology misses in the top {TAG_K}", "",
                  "First relevant rank in each mode (– when none in the top 10).", "",
                  "| id | question | " + " | ".join(report.modes[m].label for m in order) + " |",
                  "|---|---|" + "---:|" * len(order)]
        for m in misses:
            q = m["question"] if len(m["question"]) <= 90 else m["question"][:87] + "..."
            lines.append(f"| {m['id']} | {q} | " + " | ".join(
                str(m["first_rank"].get(mode)) if m["first_rank"].get(mode) else "–" for mode in order) + " |")

    lines += [
        "", "## How it is measured", "",
        f"- Relevance: {relevance_rule()}. Gold quotes are found in the canonical text with whitespace collapsed "
        "and mapped back to exact offsets.",
        "- recall@k: share of answerable questions with at least one relevant passage in the top k; evidence recall@k: "
        "share of a question's gold evidence items covered by the top k, averaged over questions.",
        "- MRR@10: mean of 1/rank of the first relevant passage (0 when none in the top 10). nDCG@10: binary gains; a "
        "passage gains 1 when it covers gold evidence not covered higher up; the ideal is one gain per gold item, at most 10.",
        "- Citation precision: share of (sentence, citation) pairs where the sentence, with its [n] marker removed, occurs "
        f"in the cited passage, or its embedding cosine with the cited quote is at least {SUPPORT_COSINE}. "
        "Citation recall: share of answer sentences with at least one such citation.",
        "- Answer metrics count answered questions' citations; the answered rate counts answerable questions, "
        "the answered rate on no-answer questions counts the questions with no gold evidence (the system should decline them). "
        "An extractive answer quotes sentences of the passages it cites, so its citation precision and recall are 1.0 unless "
        "something is broken; they discriminate when an LLM writes the answer (`KB_LLM`).",
        "- The llama-index baseline: each document's canonical text as a llama-index `Document`, cut by the default "
        "`SentenceSplitter`, embedded with the same model in an in-memory `VectorStoreIndex`; its nodes' "
        "`start_char_idx`/`end_char_idx` are judged the same way. The model reads at most 256 word pieces, so long "
        "nodes are embedded by their opening only.",
        "",
        "## Settings", "",
        "| setting | value |", "|---|---|",
    ]
    for key, value in s.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        lines.append(f"| {key} | {value} |")
    for note in report.notes:
        lines.append(f"\nNote: {note}")
    return "\n".join(lines) + "\n"
