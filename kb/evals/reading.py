"""How the knowledge base reads files nobody on the project made: running headers and footers, ligature
glyphs, words broken at line ends, and whether search results and citations name the right page.

``python -m kb.evals.reading --out evals/READING.md`` ingests ``tests/realworld`` into a scratch
knowledge base and writes the report; the labelled broken words are ``evals/hyphens.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ingest.furniture import EDGE, MIN_PAGES, is_page_number, line_key
from ingest.normalise import RawPage, clean_line, rejoin, words_of
from ingest.pdf import load_pdf
from ingest.read import extract, read_document
from kb.config import PROJECT_ROOT, Settings
from kb.embed import model_words
from kb.files import read_jsonl
from kb.knowledge import KnowledgeBase
from kb.records import Document, Filters

CORPUS = PROJECT_ROOT / "tests" / "realworld"
SHIPPED = PROJECT_ROOT / "corpus"
LABELS = PROJECT_ROOT / "evals" / "hyphens.jsonl"
LIGATURES = re.compile("[\ufb00-\ufb06]")
_COMPOUND = re.compile(r"(?<![\w-])([^\W\d_]{2,})-([^\W\d_]{2,})(?![\w-])")


def _alnum(text: str) -> str:
    return re.sub(r"[\W_]+", "", clean_line(text)).lower()


@dataclass
class Reading:
    """The figures of one run."""

    documents: int = 0
    headers_found: int = 0
    headers_left: list[str] = field(default_factory=list)
    ligatures_left: int = 0
    broken_join: int = 0
    broken_joined: int = 0
    broken_keep: int = 0
    broken_keep_joined: list[str] = field(default_factory=list)
    compounds: int = 0
    compounds_joined: list[str] = field(default_factory=list)
    pages_checked: int = 0
    pages_wrong: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


# -- running headers -----------------------------------------------------------------------
def running_headers(pages: list[RawPage]) -> set[str]:
    """Lines at the same edge of at least ``MIN_PAGES`` pages and of a quarter of the document's pages
    (numbers masked), page numbers alone left aside: what a reader sees as running headers and footers.
    (Stricter than ingestion's own rule, and blind to its windows and runs.)"""
    seen: dict[tuple[str, str], set[int]] = {}
    lines: dict[tuple[str, str], list[str]] = {}
    for n, page in enumerate(pages):
        filled = [clean_line(s) for s in page.text.splitlines() if s.strip()]
        for side, edge in (("top", filled[:EDGE]), ("bottom", filled[-EDGE:])):
            for line in edge:
                key = line_key(line)
                if len(key) >= 4 and not is_page_number(line):
                    seen.setdefault((side, key), set()).add(n)
                    lines.setdefault((side, key), []).append(line)
    return {line for k, pages_with in seen.items() if len(pages_with) >= max(MIN_PAGES, len(pages) / 4)
            for line in lines[k]}


def headers_left(pages: list[RawPage], doc: Document) -> tuple[int, list[str]]:
    """Running headers found, and those left in the canonical text (none when they are all the text
    there is: a leaflet of one line on every page is its own text)."""
    headers = running_headers(pages)
    if all(clean_line(line) in headers for page in pages for line in page.text.splitlines() if line.strip()):
        return 0, []
    return len(headers), sorted(h for h in headers if h in doc.text)


# -- broken words --------------------------------------------------------------------------
def broken_words(documents: dict[str, Document], labels: list[dict], reading: Reading) -> None:
    """Each labelled line-end hyphen: rejoined in the canonical text, or kept, as its reader said."""
    for row in labels:
        doc = documents.get(row["file"])
        if doc is None or row["label"] not in ("join", "keep"):
            continue
        stem = re.search(r"([^\W\d_]+)-$", row["before"]).group(1)
        head = re.match(r"[^\W\d_]+", row["after"]).group(0)
        context = clean_line(row["before"])[:-1][-25:]
        joined = f"{context}{head}" in doc.text
        if row["label"] == "join":
            reading.broken_join += 1
            reading.broken_joined += joined
        else:
            reading.broken_keep += 1
            if joined:
                reading.broken_keep_joined.append(f"{stem}-{head}")


def compounds_rejoined(pages_by_file: dict[str, list[RawPage]], known: frozenset[str], reading: Reading) -> None:
    """Real compounds broken at a line end for the test: each hyphenated word a document writes once,
    mid-line, asked as if it stood broken there (the document's one unbroken writing of it set aside)."""
    for pages in pages_by_file.values():
        words = words_of(pages, known)
        counts = Counter(m.group(0) for p in pages for line in p.text.splitlines()
                         for m in _COMPOUND.finditer(clean_line(line)))
        for compound, n in counts.items():
            a, b = compound.split("-")
            if n != 1 or not b[0].islower() or (a + b).lower() in words.whole:
                continue  # a capital after the hyphen is never rejoined; a document writing both forms is its own judge
            words.compounds.discard(compound.lower())
            reading.compounds += 1
            if rejoin(a, b, words):
                reading.compounds_joined.append(compound)
            words.compounds.add(compound.lower())


# -- pages ---------------------------------------------------------------------------------
def page_of(opening: str, pages: list[RawPage]) -> set[int]:
    """The pages of pypdf's own text on which ``opening`` begins (letters and digits compared)."""
    want = _alnum(opening)[:24]
    joined, starts = "", []
    for p in pages:
        starts.append((len(joined), p.page))
        joined += _alnum(p.text)
    found, i = set(), joined.find(want)
    while want and i >= 0:
        found.add(max(page for start, page in starts if start <= i))
        i = joined.find(want, i + 1)
    return found


def check_pages(kb: KnowledgeBase, pages_by_doc: dict[str, list[RawPage]], reading: Reading,
                per_document: int = 6, seed: int = 0) -> None:
    """Search for, and ask about, sentences of each document; every result's and citation's page must
    be a page on which its opening stands in pypdf's text."""
    rng = random.Random(seed)
    for doc_id, pages in pages_by_doc.items():
        doc = kb.document(doc_id)
        sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", doc.text) if 40 <= len(s.strip()) <= 200]
        for query in rng.sample(sentences, min(per_document, len(sentences))):
            only = Filters(doc=doc_id)
            hits = kb.search(query, k=5, filters=only).hits
            answer = kb.ask(query, filters=only)
            for label, text, page in ([("result", h.passage.text, h.passage.page) for h in hits]
                                      + [("citation", c.quote, c.page) for c in answer.citations]):
                reading.pages_checked += 1
                where = page_of(text, pages)
                if page not in where:
                    reading.pages_wrong.append(f"{doc_id}: {label} cited p. {page}, opens on {sorted(where)}: {text[:60]!r}")


# -- the run -------------------------------------------------------------------------------
def run(home: Path, corpus: Path = CORPUS, labels: Path = LABELS) -> Reading:
    kb = KnowledgeBase(Settings.from_env(home=home))
    report = kb.ingest(sorted(corpus.glob("*.pdf")), progress=True)
    reading = Reading(failed={Path(r.path).name: r.reason for r in report.failed})
    known = model_words(kb.settings.model_path)
    raw: dict[str, list[RawPage]] = {}
    documents: dict[str, Document] = {}
    for result in report.having("ingested") + report.having("unchanged"):
        doc = kb.document(result.doc_id)
        pages = load_pdf(Path(result.path)).pages  # the text each page holds, as the PDF reader gives it
        raw[doc.meta.doc_id], documents[Path(result.path).name] = pages, doc
        found, left = headers_left(pages, doc)
        reading.headers_found += found
        reading.headers_left += left
        reading.ligatures_left += len(LIGATURES.findall(doc.text))
    reading.documents = len(documents)
    labelled = [row for _, row in read_jsonl(labels)]
    for name in {row["file"] for row in labelled} - set(documents):
        if (SHIPPED / name).exists():  # the shipped corpus's own broken words, read as ingestion reads them
            documents[name] = read_document(SHIPPED / name, known_words=known)[0]
    broken_words(documents, labelled, reading)
    shipped = {f.name: extract(f).pages for f in sorted(SHIPPED.iterdir()) if f.suffix in (".txt", ".md", ".html", ".pdf")}
    compounds_rejoined({**raw, **shipped}, known, reading)
    check_pages(kb, raw, reading)
    return reading


def markdown(r: Reading, corpus: Path = CORPUS) -> str:
    def share(n: int, d: int) -> str:
        return f"{n}/{d} ({n / d:.1%})" if d else "0/0"

    lines = [
        "# Reading real-world files", "",
        (f"`python -m kb.evals.reading --out evals/READING.md`: the {r.documents} PDFs of `tests/realworld` "
         "(sources and licences in its `SOURCES.md`) ingested into a scratch knowledge base." if corpus == CORPUS else
         f"`python -m kb.evals.reading --corpus {corpus.name}`: the PDFs of `{corpus.name}` ingested into a scratch "
         f"knowledge base ({r.documents} read; those refused are listed at the end)."), "",
        "| measure | result |", "|---|---|",
        f"| running header and footer lines (on ≥ {MIN_PAGES} pages and ≥ ¼ of a document's) left in the canonical text | {share(len(r.headers_left), r.headers_found)} |",
        f"| ligature glyphs left | {r.ligatures_left} |",
        f"| line-end hyphens of broken words rejoined (`evals/hyphens.jsonl`, labelled by a helper who saw neither code nor output) | {share(r.broken_joined, r.broken_join)} |",
        f"| real compounds broken at a line end and wrongly joined (labelled) | {share(len(r.broken_keep_joined), r.broken_keep)} |",
        f"| real compounds written once in a document (these PDFs and the shipped corpus), asked as if broken at the hyphen, wrongly joined | {share(len(r.compounds_joined), r.compounds)} |",
        f"| search results and citations on the page where their opening stands | {share(r.pages_checked - len(r.pages_wrong), r.pages_checked)} |",
        "",
    ]
    for title, items in (("Headers left", r.headers_left), ("Compounds wrongly joined", r.broken_keep_joined + r.compounds_joined),
                         ("Wrong pages", r.pages_wrong)):
        if items:
            lines += [f"## {title}", ""] + [f"- {i}" for i in items] + [""]
    lines += ["## How the broken words were labelled", "",
              "A helper session that saw neither the code nor its output was given each place where a line of a "
              "PDF (or of the shipped extractions) ends with a hyphen and the next begins in lower case, and asked "
              "what the author wrote: `join` when the hyphen only comes from the line wrap (\"dan-\" + \"gerous\"), "
              "`keep` when it belongs to the word (\"decision-making\", \"to-day\" in an 1880s book), judged by the "
              "language and era of the document. The compounds \"asked as if broken\" are every hyphenated word a "
              "document writes once, mid-line, and never unhyphenated.", ""]
    if r.failed:
        lines += ["## Files refused (as a user sees them)", ""] + [f"- `{n}`: {why}" for n, why in sorted(r.failed.items())] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    parser.add_argument("--home", type=Path, help="the scratch knowledge base (default: a temporary folder)")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="a folder of PDFs (default: tests/realworld)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        reading = run(args.home or Path(tmp), args.corpus)
    text = markdown(reading, args.corpus)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        args.out.with_suffix(".json").write_text(json.dumps(reading.__dict__, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
