"""Pure helpers for the Streamlit front end (``app.py``): no Streamlit and no I/O in here, so they are testable.

They turn the records that :class:`kb.knowledge.KnowledgeBase` returns into what a page shows: escaped
Markdown, a passage with its quotes in bold, an answer's sources, references, the Markdown download
of an answer, the lines of an ingestion report, evidence-map tables, scheme trees and place points.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from kb.records import Answer, Axis, Citation, Document, DocumentSummary, Initiative, IngestReport, Passage
from kb.vocab.ontology import Ontology

AXES = {"dimension": "dimensions", "facet": "dimensions", "region": "regions", "place": "places", "concept": "concepts",
        "document": "doc_id"}
AXIS_LABELS = {"dimension": "Dimension", "facet": "Facet of a dimension", "region": "Region (places grouped)",
               "place": "Place", "concept": "Concept", "document": "Document"}


# -- text that is safe to show ------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:&])")


def md_escape(text: str) -> str:
    """Text from the corpus as inert Markdown: every Markdown, HTML, LaTeX ($) and Streamlit
    directive (``:red[...]``, ``:material/...:``) character is backslash-escaped and whitespace
    runs collapse to one space, so ``<script>`` shows as the literal text ``<script>``."""
    flat = " ".join((text or "").split())
    return _MD_SPECIAL.sub(r"\\\1", flat)


def quoted_runs(text: str, passage_start: int, passage_end: int,
                quotes: Iterable[tuple[int, int]]) -> list[tuple[str, bool]]:
    """A passage as ``(text, is_quote)`` runs around its quotes, all by offsets into ``text`` (the
    document's canonical text). The window widens to hold a quote that runs past the passage;
    overlapping quotes merge."""
    spans = sorted((max(0, a), min(len(text), b)) for a, b in quotes if b > a)
    lo = max(0, min([passage_start, *(a for a, _ in spans)]))
    hi = min(len(text), max([passage_end, *(b for _, b in spans)]))
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    runs, at = [], lo
    for a, b in merged:
        if a > at:
            runs.append((text[at:a], False))
        runs.append((text[a:b], True))
        at = b
    if hi > at:
        runs.append((text[at:hi], False))
    return runs


def emphasised_markdown(runs: list[tuple[str, bool]], limit: int = 700) -> str:
    """Escaped Markdown of a passage with its quotes in bold; long context before the first quote
    and after the last is trimmed with an ellipsis."""
    flat = [(" ".join(t.split()), q) for t, q in runs]
    flat = [(t, q) for t, q in flat if t]
    if flat and not flat[0][1] and len(flat[0][0]) > limit:
        flat[0] = ("…" + flat[0][0][-limit:].split(" ", 1)[-1], False)
    if flat and not flat[-1][1] and len(flat[-1][0]) > limit:
        flat[-1] = (flat[-1][0][:limit].rsplit(" ", 1)[0] + "…", False)
    # Spaces around a bold run keep it a valid CommonMark emphasis even mid-word.
    return " ".join(f"**{md_escape(t)}**" if q else md_escape(t) for t, q in flat)


@dataclass
class Source:
    """The citations an answer takes from one passage, shown together: the passage once, each quote in bold."""

    chunk_id: str
    citations: list[Citation]

    @property
    def numbers(self) -> str:
        return " ".join(f"[{c.n}]" for c in self.citations)

    @property
    def pages(self) -> str:
        pages = list(dict.fromkeys(c.page for c in self.citations if c.page is not None))
        if not pages:
            return "no page numbers"
        return f"p. {pages[0]}" if len(pages) == 1 else "pp. " + ", ".join(map(str, pages))


def sources(citations: Iterable[Citation]) -> list[Source]:
    """Citations grouped by the passage they quote, in the order of their first number."""
    groups: dict[str, list] = {}
    for c in citations:
        groups.setdefault(c.chunk_id, []).append(c)
    return [Source(chunk_id, cs) for chunk_id, cs in groups.items()]


# -- references -----------------------------------------------------------------------------------
def authors_text(authors: Iterable[str]) -> str:
    names = [a for a in authors if a]
    if not names:
        return ""
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def reference(authors: Iterable[str], year: int | None, title: str, page: int | None = None,
              publisher: str = "") -> str:
    """``Author (Year) Title, p. N`` — authors, else the publisher, else ``n.a.``."""
    who = authors_text(authors) or publisher or "n.a."
    where = f", p. {page}" if page is not None else ""
    return f"{who} ({year or 'n.d.'}) {title}{where}"


def citation_reference(c: Citation, publisher: str = "") -> str:
    return reference(c.authors, c.year, c.title, c.page, publisher)


def answer_markdown(answer: Answer, publishers: dict[str, str] | None = None,
                    filters: dict | None = None, works_cited: list[str] | None = None) -> str:
    """The answer with its ``[n]`` markers, a numbered reference list with the quotes, and the works
    cited in a citation style, as Markdown."""
    publishers = publishers or {}
    lines = [f"# {answer.question or 'Question'}", ""]
    active = {k: v for k, v in (filters or {}).items() if v not in (None, "")}
    if active:
        lines += ["Filters: " + ", ".join(f"{k} = {v}" for k, v in active.items()), ""]
    lines += [answer.answer, ""]
    if answer.citations:
        lines += ["## References", ""]
        for c in answer.citations:
            lines.append(f"[{c.n}] {citation_reference(c, publishers.get(c.doc_id, ''))}. "
                         f"Document `{c.doc_id}`, characters {c.start}–{c.end}.")
            lines.append("")
            lines.append("> " + " ".join(c.quote.split()))
            lines.append("")
        if works_cited:
            lines += ["## Works cited (Harvard)", ""] + [f"- {w}" for w in works_cited] + [""]
    elif answer.passages:
        lines += ["## Nearest passages", ""]
        for h in answer.passages:
            page = f", p. {h.passage.page}" if h.passage.page is not None else ""
            lines.append(f"- {h.title}{page}: " + " ".join(h.passage.text.split())[:300] + "…")
        lines.append("")
    return "\n".join(lines)


def report_lines(report: IngestReport) -> tuple[list[str], list[str]]:
    """The lines ``kb ingest`` prints for a report: (information, errors), in the CLI's words."""
    info, errors = [], []
    for r in report.having("ingested"):
        info.append(f"ingested  {r.path}  → {r.doc_id} ({r.passages} passages)")
    unchanged = report.having("unchanged")
    if unchanged:
        info.append(f"unchanged {len(unchanged)} file(s)")
    for r in report.having("duplicate"):
        info.append(f"skipped   {r.path}: {r.reason}")
    for r in report.having("listed"):
        info.append(f"listed    {r.path}: {r.reason}")
    for w in report.warnings:
        info.append(f"warning   {w}")
    for r in report.failed:
        errors.append(f"FAILED    {r.path}: {r.reason}")
    if report.failed:
        errors.append(failed_summary(report))
    return info, errors


def failed_summary(report: IngestReport) -> str:
    """The last line ``kb ingest`` prints when some files could not be ingested."""
    rest = "; the rest were" if len(report.results) > len(report.failed) else ""
    return f"kb: {len(report.failed)} file(s) could not be ingested{rest}."


def page_text(doc: Document, page: int | None, around: tuple[int, int] | None = None, window: int = 1500) -> str:
    """The text of one page of a document; for unpaged documents, the text around a passage."""
    if page is not None:
        for span in doc.pages:
            if span.page == page:
                return doc.text[span.start:span.end]
    if around is not None:
        lo = max(0, around[0] - window)
        hi = min(len(doc.text), around[1] + window)
        return ("…" if lo else "") + doc.text[lo:hi] + ("…" if hi < len(doc.text) else "")
    return doc.text[:2 * window]


# -- the ontology as trees, tags and points -------------------------------------------------------
def scheme_tree(ontology: Ontology, scheme: str, counts: dict[str, int] | None = None) -> list[dict]:
    """Depth-first rows of a scheme: depth, id, label, direct passages and passages with narrower."""
    counts = counts or {}
    rows: list[dict] = []

    def total(cid: str) -> int:
        return sum(counts.get(c, 0) for c in ontology.narrower_closure(cid))

    def walk(cid: str, depth: int, path: tuple[str, ...]) -> None:
        c = ontology.concepts[cid]
        rows.append({"depth": depth, "id": cid, "label": c.label, "tree": "\u2003" * depth + ("└ " if depth else "") + c.label,
                     "passages": counts.get(cid, 0), "with narrower": total(cid)})
        children = sorted((n for n in c.narrower if n in ontology.concepts and ontology.concepts[n].scheme == scheme),
                          key=lambda n: ontology.concepts[n].label.lower())
        for child in children:
            if child not in path:
                walk(child, depth + 1, path + (child,))

    for root in ontology.roots(scheme):
        walk(root.id, 0, (root.id,))
    return rows


def dimension_options(ontology: Ontology, counts: dict[str, int]) -> list[str]:
    """The six dimensions, each followed by those of its facets that some passage names."""
    return [r["label"] for r in scheme_tree(ontology, "dimensions", counts) if r["depth"] == 0 or r["passages"]]


def tags(passage: Passage, labels: dict[str, str]) -> list[tuple[str, str, str]]:
    """(kind, id, label) for a passage's places, concepts and dimensions."""
    out = []
    for kind, ids in (("place", passage.places), ("concept", passage.concepts), ("dimension", passage.dimensions)):
        out += [(kind, i, labels.get(i, i)) for i in ids]
    return out


def place_points(ontology: Ontology, counts: dict[str, int]) -> list[dict]:
    """Places with coordinates, each with its passage count (itself and narrower places) and a
    marker radius in metres that grows with the evidence."""
    rows = []
    for c in ontology.in_scheme("places"):
        if c.lat is None or c.lon is None:
            continue
        n = sum(counts.get(x, 0) for x in ontology.narrower_closure(c.id))
        rows.append({"id": c.id, "place": c.label, "lat": c.lat, "lon": c.lon, "passages": n,
                     "size": 4000 + 2500 * n ** 0.5})
    return rows


def initiatives_for(ontology: Ontology, place_id: str) -> list[Initiative]:
    """Initiatives recorded for a place or any place within it."""
    within = ontology.narrower_closure(place_id)
    return sorted((i for i in ontology.initiatives.values() if within.intersection(i.places)),
                  key=lambda i: i.label.lower())


# -- the evidence map ------------------------------------------------------------------------------
def axis_source(axis: str) -> Axis:
    """What an axis counts by in the catalogue: the passage's document, its links of one scheme, or its
    places' regions."""
    if axis not in AXES:
        raise ValueError(f"axes are {', '.join(AXES)}")
    return AXES[axis]


def axis_entries(axis: str, ontology: Ontology, documents: list[DocumentSummary]) -> list[tuple[str, str]]:
    """(key, label) of every entry an axis can show, in display order."""
    if axis == "document":
        return [(d.doc_id, d.title) for d in documents]
    if axis == "dimension":
        return [(c.id, c.label) for c in ontology.roots("dimensions")]
    if axis == "facet":  # grouped under their dimensions, in the order of the Browse tree
        return [(r["id"], r["label"]) for r in scheme_tree(ontology, "dimensions") if r["depth"] > 0]
    if axis == "region":  # by country, then region
        used = set(ontology.regions().values())
        return [(r["id"], r["label"]) for r in scheme_tree(ontology, "places") if r["id"] in used]
    return [(c.id, c.label) for c in ontology.in_scheme(AXES[axis])]


@dataclass(frozen=True)
class MapFilter:
    """Which documents the evidence map counts: chosen documents, a range of years, kinds of document.
    Empty means no restriction; a document without a year is left out only when a range is set."""

    documents: frozenset[str] = frozenset()
    years: tuple[int, int] | None = None
    types: frozenset[str] = frozenset()

    def admits(self, doc: DocumentSummary) -> bool:
        if self.documents and doc.doc_id not in self.documents:
            return False
        if self.types and doc.type not in self.types:
            return False
        if self.years is not None and (doc.year is None or not self.years[0] <= doc.year <= self.years[1]):
            return False
        return True

    def active(self) -> bool:
        return bool(self.documents or self.types or self.years is not None)


def filtered(documents: list[DocumentSummary], only: MapFilter) -> tuple[list[DocumentSummary], set[str] | None]:
    """The documents the filter admits (the document axis then lists only those), and their ids to count
    within (None: every document)."""
    kept = [d for d in documents if only.admits(d)]
    return kept, ({d.doc_id for d in kept} if only.active() else None)


def type_label(kind: str) -> str:
    """A document type as a reader says it: "web-page" is "web page"."""
    return kind.replace("-", " ").replace("_", " ")


def evidence_table(cells: Counter, rows: str, cols: str, ontology: Ontology,
                   documents: list[DocumentSummary], include_empty: bool | None = None) -> pd.DataFrame:
    """An evidence-and-gap map from the passages per (row key, column key): rows × columns of passage
    counts, ``None`` where there is none.

    Entries with no evidence at all are kept for dimensions, places and documents (they are the
    gaps the map exists to show) and dropped for concepts (there are hundreds) unless asked."""
    if rows not in AXES or cols not in AXES:
        raise ValueError(f"axes are {', '.join(AXES)}")
    used_r = {r for r, _ in cells}
    used_c = {c for _, c in cells}

    def pick(axis: str, used: set[str]) -> list[tuple[str, str]]:
        keep = include_empty if include_empty is not None else axis != "concept"
        entries = axis_entries(axis, ontology, documents)
        return [(k, lab) for k, lab in entries if keep or k in used]

    r_entries, c_entries = pick(rows, used_r), pick(cols, used_c)
    data = [[cells.get((rk, ck)) or None for ck, _ in c_entries] for rk, _ in r_entries]
    frame = pd.DataFrame(data, index=_unique([lab for _, lab in r_entries]),
                         columns=_unique([lab for _, lab in c_entries]), dtype="Int64")
    frame.attrs["row_keys"] = [k for k, _ in r_entries]
    frame.attrs["col_keys"] = [k for k, _ in c_entries]
    return frame


def _unique(labels: list[str]) -> list[str]:
    seen: Counter = Counter()
    out = []
    for lab in labels:
        seen[lab] += 1
        out.append(lab if seen[lab] == 1 else f"{lab} ({seen[lab]})")
    return out


def findings_first(passages: Iterable[Passage]) -> list[Passage]:
    """Evidence before method: a passage about how the study was done ranks below one that reports
    what was found."""
    return sorted(passages, key=lambda p: bool(METHOD.search(p.text[:300])))


# A passage that describes how the study was done, not what it found.
METHOD = re.compile(r"\b(?:we (?:interviewed|carried out|conducted|reviewed|selected)|interviews were (?:carried out|"
                    r"conducted)|the (?:study|research|review) (?:was|were) (?:carried out|commissioned|designed)|"
                    r"(?:sample|sampling|methodology|data were collected|participants were (?:selected|nominated)))\b", re.I)


def bubbles(frame: pd.DataFrame) -> pd.DataFrame:
    """The evidence map in long form for a bubble chart: one row per cell with evidence (empty cells are
    the gaps, left blank), with each cell's row and column keys and their order."""
    out = []
    for i, (label, row) in enumerate(frame.iterrows()):
        for j, (col, value) in enumerate(row.items()):
            if pd.notna(value) and value:
                out.append({"row": label, "column": col, "passages": int(value), "row_key": frame.attrs["row_keys"][i],
                            "col_key": frame.attrs["col_keys"][j]})
    return pd.DataFrame(out, columns=["row", "column", "passages", "row_key", "col_key"])


def nested(items: list) -> list[tuple[int, object]]:
    """Concept summaries with their depth, each narrower one under its broader one (dimensions with their
    facets, places under their region), in the given order otherwise."""
    ids = {i.concept.id for i in items}
    children: dict[str, list] = {}
    roots = []
    for item in items:
        parent = next((b for b in item.concept.broader if b in ids), None)
        (children.setdefault(parent, []) if parent else roots).append(item)
    out: list[tuple[int, object]] = []

    def walk(item, depth: int) -> None:
        out.append((depth, item))
        for child in children.get(item.concept.id, []):
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    return out


def shorten(text: str, width: int) -> str:
    """``text`` cut at a word boundary to fit ``width`` characters, with '…' when cut."""
    if len(text) <= width:
        return text
    cut = text[:width - 1].rsplit(" ", 1)[0].rstrip(" ,;:.–-")
    return cut + "…"
