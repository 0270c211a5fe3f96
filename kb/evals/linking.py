"""How well passages are linked: precision and recall against hand labels (``evals/linking.jsonl``).

Each gold line names a passage by its document and its first characters (``anchor``) and lists
the places, concepts and/or dimensions a careful reader links it to (a kind left out of a line
is not scored for it: ``evals/linking_dimensions.jsonl`` labels dimensions only). A set may have a
second, independent labelling of the same passages beside it (``NAME.second.jsonl``): how far the two
readers agree shows what the targets ask of the linker. The passages are linked again
here by the same :class:`kb.vocab.linking.Linker` that ingestion uses, so the figures measure the
code as shipped; ``calibrate`` sweeps the dimension threshold over the same labels.

    python -m kb.evals.linking [--gold FILE ...] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import dataclass
from pathlib import Path

from kb.config import PROJECT_ROOT
from kb.files import read_jsonl
from kb.knowledge import KnowledgeBase
from kb.records import Passage
from kb.vocab.linking import DIMENSION_THRESHOLD

KINDS = ("places", "concepts", "dimensions")
# The labelled sets, in the report's order; how each came about is in evals/README.md.
SETS = [PROJECT_ROOT / "evals" / name for name in
        ("linking.jsonl", "linking_dimensions.jsonl", "linking_heldout.jsonl", "linking_third.jsonl", "linking_fourth.jsonl")]
TARGETS = {"places": (0.95, 0.9), "concepts": (0.95, 0.9), "dimensions": (0.8, 0.7)}


class LinkGoldError(ValueError):
    """A malformed line of the linking gold file; the message names the line."""


@dataclass
class LinkGold:
    doc_id: str
    anchor: str
    labels: dict[str, set[str]]


@dataclass
class PRF:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def prf(predicted: list[set[str]], gold: list[set[str]]) -> PRF:
    """Micro-averaged counts over passages."""
    tp = sum(len(p & g) for p, g in zip(predicted, gold))
    fp = sum(len(p - g) for p, g in zip(predicted, gold))
    fn = sum(len(g - p) for p, g in zip(predicted, gold))
    return PRF(tp, fp, fn)


def load_gold(path: Path, known: set[str]) -> list[LinkGold]:
    out = []
    for n, obj in read_jsonl(path, LinkGoldError):
        try:
            labels = {k: set(obj[k]) for k in KINDS if k in obj}
            item = LinkGold(obj["doc_id"], obj["anchor"], labels)
            if not labels:
                raise KeyError("places, concepts or dimensions")
        except (KeyError, TypeError) as exc:
            raise LinkGoldError(f"{path}, line {n}: needs doc_id, anchor and at least one of places, concepts, dimensions ({exc})") from exc
        unknown = sorted(set().union(*labels.values()) - known)
        if unknown:
            raise LinkGoldError(f"{path}, line {n}: unknown ids {', '.join(unknown)}")
        out.append(item)
    return out


def second_path(path: Path) -> Path:
    """Where a second annotator's labels of the same passages live, if they exist."""
    return path.with_name(path.stem + ".second.jsonl")


def align(first: list[LinkGold], second: list[LinkGold]) -> list[LinkGold]:
    """The second labelling in the order of the first; every passage must be labelled in both."""
    by_key = {(g.doc_id, g.anchor): g for g in second}
    missing = [g.anchor for g in first if (g.doc_id, g.anchor) not in by_key]
    if missing:
        raise LinkGoldError(f"the second labelling does not cover the same {len(first)} passages "
                            f"({len(missing)} missing, e.g. {missing[0]!r})")
    if len(by_key) != len(first):
        raise LinkGoldError(f"the second labelling has passages the first lacks ({len(by_key)} against {len(first)})")
    return [by_key[(g.doc_id, g.anchor)] for g in first]


def kappa(a: list[set[str]], b: list[set[str]], labels: list[str]) -> float:
    """Cohen's kappa of two labellings over every (passage, label) yes/no decision."""
    decisions = [(x in pa, x in pb) for pa, pb in zip(a, b) for x in labels]
    if not decisions:
        return 1.0
    n = len(decisions)
    observed = sum(u == v for u, v in decisions) / n
    ya, yb = sum(u for u, _ in decisions) / n, sum(v for _, v in decisions) / n
    expected = ya * yb + (1 - ya) * (1 - yb)
    return (observed - expected) / (1 - expected) if expected < 1 else 1.0


def gold_passages(kb: KnowledgeBase, gold: list[LinkGold]) -> list[Passage]:
    """The stored passage each gold line names: the one in which the anchor (the labelled
    passage's opening characters) comes earliest, so that labels survive a short heading or
    figure label being joined to the front of the passage."""
    found: dict[tuple[str, str], tuple[int, Passage]] = {}
    every = kb.all_passages()
    for g in gold:
        for p in every:
            at = p.text.find(g.anchor) if p.doc_id == g.doc_id else -1
            if at >= 0 and ((g.doc_id, g.anchor) not in found or at < found[(g.doc_id, g.anchor)][0]):
                found[(g.doc_id, g.anchor)] = (at, p)
    missing = [g.anchor for g in gold if (g.doc_id, g.anchor) not in found]
    if missing:
        raise LinkGoldError(f"{len(missing)} gold passage(s) not found, e.g. {missing[0]!r}: re-label after re-chunking")
    return [found[(g.doc_id, g.anchor)][1] for g in gold]


def relink(kb: KnowledgeBase, passages: list[Passage], thresholds: list[float]) -> dict[float, list[Passage]]:
    """Copies of ``passages`` linked afresh at each dimension threshold (embedded once)."""
    titles = {d.doc_id: d.title for d in kb.documents()}
    vectors = kb.embedder.encode([p.embed_text(titles.get(p.doc_id, "")) for p in passages])
    out = {}
    for t in thresholds:
        copies = [copy.copy(p) for p in passages]
        kb.linker.link(copies, vectors, threshold=t)
        for p in copies:  # the labels name the six dimensions, not their facets
            p.dimensions = kb.linker.roots(p.dimensions)
        out[t] = copies
    return out


def _score(linked: list[Passage], gold: list[LinkGold], kind: str) -> PRF:
    pairs = [(set(getattr(p, kind)), g.labels[kind]) for p, g in zip(linked, gold) if kind in g.labels]
    return prf([p for p, _ in pairs], [g for _, g in pairs])


def evaluate(kb: KnowledgeBase, gold: list[LinkGold], threshold: float = DIMENSION_THRESHOLD) -> dict[str, PRF]:
    """Precision and recall of each kind of link that the gold lines label."""
    linked = relink(kb, gold_passages(kb, gold), [threshold])[threshold]
    return {k: _score(linked, gold, k) for k in KINDS if any(k in g.labels for g in gold)}


@dataclass
class Agreement:
    """A second annotator against the first, and the linker against the second, per kind of link."""

    between: dict[str, PRF]
    linker: dict[str, PRF]
    dimension_kappa: float


def agreement(kb: KnowledgeBase, first: list[LinkGold], second: list[LinkGold],
              threshold: float = DIMENSION_THRESHOLD) -> Agreement:
    second = align(first, second)
    linked = relink(kb, gold_passages(kb, first), [threshold])[threshold]
    kinds = [k for k in KINDS if all(k in g.labels for g in first + second)]
    labels = {k: ([g.labels[k] for g in first], [g.labels[k] for g in second]) for k in kinds}
    a, b = labels.get("dimensions", ([], []))
    return Agreement(between={k: prf(labels[k][1], labels[k][0]) for k in kinds},
                     linker={k: _score(linked, second, k) for k in kinds},
                     dimension_kappa=kappa(a, b, sorted(set(kb.linker.facet_dims))))


def calibrate(kb: KnowledgeBase, gold: list[LinkGold], thresholds: list[float]) -> list[tuple[float, PRF]]:
    """Dimension precision and recall at each threshold."""
    runs = relink(kb, gold_passages(kb, gold), thresholds)
    return [(t, _score(runs[t], gold, "dimensions")) for t in thresholds]


def markdown(sets: list[tuple[str, int, dict[str, PRF], list[tuple[float, PRF]]]],
             agreements: dict[str, Agreement] | None = None) -> str:
    lines = ["# Linking, measured against hand-labelled passages", "",
             "`python -m kb.evals.linking --out evals/LINKING.md` reproduces this. "
             f"Dimension threshold in use: {DIMENSION_THRESHOLD}.", ""]
    for name, n, results, sweep in sets:
        lines += [f"## {name} ({n} passages)", ""]
        lines += ["| links | precision | recall | F1 | target (P / R) | true pos. | false pos. | missed |",
                  "|---|---|---|---|---|---|---|---|"]
        for k, r in results.items():
            tp, tr = TARGETS[k]
            lines.append(f"| {k} | {r.precision:.3f} | {r.recall:.3f} | {r.f1:.3f} | {tp} / {tr} | {r.tp} | {r.fp} | {r.fn} |")
        lines += ["", "Dimension threshold sweep:", "", "| threshold | precision | recall | F1 |", "|---|---|---|---|"]
        lines += [f"| {t:.3f} | {r.precision:.3f} | {r.recall:.3f} | {r.f1:.3f} |" for t, r in sweep]
        lines.append("")
        if agreements and name in agreements:
            lines += _agreement_lines(second_path(Path(name)).name, agreements[name])
    return "\n".join(lines)


def _agreement_lines(name: str, ag: Agreement) -> list[str]:
    lines = [f"Second annotator (`{name}`): a separate helper session labelled the same passages from the "
             "vocabulary and the guide in `evals/LABELLING.md`, seeing neither the first labels nor the linker's output. "
             "Its labels scored against the first labeller's show how far two careful readers agree; "
             "the linker scored against them is a second measurement of the linker.", "",
             "| links | second against first: P | R | F1 | linker against second: P | R | F1 |",
             "|---|---|---|---|---|---|---|"]
    for k, r in ag.between.items():
        m = ag.linker[k]
        lines.append(f"| {k} | {r.precision:.3f} | {r.recall:.3f} | {r.f1:.3f} | {m.precision:.3f} | {m.recall:.3f} | {m.f1:.3f} |")
    lines += ["", f"Cohen's kappa of the two annotators over every (passage, dimension) decision: {ag.dimension_kappa:.3f}.", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kb.evals.linking", description=__doc__.splitlines()[0])
    parser.add_argument("--gold", type=Path, nargs="+", default=SETS)
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    args = parser.parse_args(argv)
    kb = KnowledgeBase()
    if kb.is_empty():
        kb.ingest()
    sets, agreements = [], {}
    known = set(kb.ontology.concepts)
    for path in args.gold:
        gold = load_gold(path, known)
        sweep = calibrate(kb, gold, [round(0.40 + 0.025 * i, 3) for i in range(13)])
        sets.append((path.name, len(gold), evaluate(kb, gold), sweep))
        if second_path(path).exists():
            agreements[path.name] = agreement(kb, gold, load_gold(second_path(path), known))
    report = markdown(sets, agreements)
    print(report)
    if args.out:
        args.out.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
