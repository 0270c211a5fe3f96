"""The evaluation report: its records, the Markdown and JSON it is written as, and its plot."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from kb.config import PROJECT_ROOT
from kb.evals.metrics import MIN_OVERLAP_CHARS, SUPPORT_COSINE

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
    answered: int = 0  # answers given (the answer lint's denominator)
    lint: dict[str, int] = field(default_factory=dict)  # answers showing each defect (kb.evals.lint)
    graded: dict[str, int] = field(default_factory=dict)  # readers' grades of the answers judged as they stand


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


def label_path(path: Path) -> str:
    """A path as the report names it: relative to the project when it lies inside it."""
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


def write_report(report: EvalReport, out_dir: Path) -> None:
    """report.json, report.md and recall.png in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    plot_report(report, out_dir / "recall.png")
    (out_dir / "report.md").write_text(report.to_markdown("recall.png"), encoding="utf-8")


def plot_report(report: EvalReport, path: Path) -> None:
    """Recall@k curves by mode, and per-tag recall@5 bars for the main modes (Agg, no pyplot state)."""
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
        ]
        if a.graded:
            judged = sum(v for g, v in a.graded.items() if g != "not judged")
            lines += ["## Answers as readers judged them (`evals/ANSWER-JUDGING.md`)", "",
                      f"Of the {judged} answers a reader judged that `kb ask` still gives word for word "
                      f"({a.graded['not judged']} answers have changed since, or were never judged):", "",
                      "| full | partial | no |", "|---:|---:|---:|",
                      "| " + " | ".join(f"{a.graded[g]} ({a.graded[g] / judged:.0%})" if judged else "0"
                                       for g in ("full", "partial", "no")) + " |", ""]
        if a.lint:
            lines += ["## Answer lint (answers showing each defect, found without a reader)", "",
                      f"Over the {a.answered} answers given. `unbalanced`: quotation marks or brackets; `opener`: a "
                      "sentence opening with a pointer (\"This…\") to one that is not quoted before it; `heading`, "
                      "`list-fragment`: a heading or list label quoted as a sentence; `glued`: a footnote mark or URL "
                      "glued to a word; `repeated`; `cut`: begun or ended mid-sentence; `acronym`: never spelt out.", "",
                      "| " + " | ".join(a.lint) + " |", "|" + "---:|" * len(a.lint),
                      "| " + " | ".join(str(v) for v in a.lint.values()) + " |", ""]
        lines += [
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
