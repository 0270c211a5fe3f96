"""The knowledge base's own stores at a million passages: ``python benchmarks/stores.py [--sizes 100000,1000000]``.

The keyword index (tantivy), the catalogue (SQLite) and the graph (Oxigraph), written with the library's
calls one document at a time, with the shipped corpus's passages and links copied under new document ids
until each size is reached (no embedding and no Chroma: their costs are `benchmarks/scale.py`'s). At each
size, in this process: BM25 for the gold questions, the filter by London (the catalogue's selection, then
BM25 within it), link counts, the evidence map's cells, `kb docs`'s rows and a SPARQL count; adding,
replacing and removing one document in all three; disk and resident memory. The 448-passage corpus is the
base of the same run. Results: ``benchmarks/stores-results.json`` and ``evals/BENCHMARKS.md`` (section
"The stores at a million passages").
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from graph import timed  # noqa: E402
from run import dir_mb, gold_questions, machine, peak_rss_mb, rss_mb, write_section  # noqa: E402

RESULTS = ROOT / "benchmarks" / "stores-results.json"
SECTION = "## The stores at a million passages"


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def documents(docs: dict, by_doc: dict):
    """(document, passages) pairs: the corpus's documents, then copies of them again and again, each its own document."""
    yield from ((docs[d], by_doc[d]) for d in docs)
    i = 1
    while True:
        for doc_id, doc in docs.items():
            new_id = f"{doc_id}-copy{i}"
            passages = [replace(p, chunk_id=f"{new_id}:{p.index}", doc_id=new_id) for p in by_doc[doc_id]]
            yield replace(doc, meta=replace(doc.meta, doc_id=new_id)), passages
        i += 1


def measure(kb, stores, repeats: int) -> dict:
    from kb.records import DocumentSummary
    from kb.ui import views

    keyword, catalogue, graph = stores
    onto = kb.ontology
    questions = iter(gold_questions() * 20)
    london = onto.narrower_closure("london")
    rows, cols = views.axis_source("dimension"), views.axis_source("region")
    total = catalogue.count()

    def filtered() -> None:
        ids = catalogue.select(linked=[london])
        factor = -(-total // max(1, len(ids)))
        keyword.top(next(questions), 50, ids, widen=factor if factor <= 16 else 0)

    out = {"passages": total, "ms": {
        "BM25 top 50": timed(lambda: keyword.top(next(questions), 50), repeats),
        "BM25 within London": timed(filtered, repeats),
        "catalogue: select London": timed(lambda: catalogue.select(linked=[london]), repeats),
        "link counts": timed(catalogue.link_counts, repeats),
        "evidence map cells": timed(lambda: catalogue.cell_counts(rows, cols), repeats),
        "evidence map cells, one document (query)": timed(
            lambda: catalogue.cell_counts(rows, cols, {"vsc-synthesis-2013"}), repeats),
        "kb docs rows": timed(catalogue.documents, repeats),
        "SPARQL count": timed(lambda: graph.query("SELECT (COUNT(?p) AS ?n) WHERE { ?p a slo:Passage }"), repeats),
    }}
    doc = kb.document("vsc-synthesis-2013")
    passages = [replace(p, chunk_id=f"bench-added:{p.index}", doc_id="bench-added")
                for p in kb.all_passages() if p.doc_id == doc.meta.doc_id]
    new = replace(doc, meta=replace(doc.meta, doc_id="bench-added"))

    def write(ps) -> None:
        graph.replace_document(new, ps)
        keyword.replace_document("bench-added", ps, new.meta.title)
        catalogue.put_document(DocumentSummary.of(new, len(ps)), "bench", ps)

    def remove() -> None:
        graph.remove_document("bench-added")
        keyword.remove_document("bench-added")
        catalogue.remove_document("bench-added")

    out["change_ms"] = {}
    for name, step in (("add one document", lambda: write(passages)),
                       ("replace it", lambda: write(passages[: len(passages) // 2])), ("remove it", remove)):
        t0 = time.perf_counter()
        step()
        out["change_ms"][name] = round((time.perf_counter() - t0) * 1000)
    out["change_ms"]["passages in it"] = len(passages)
    out["rss_mb"] = round(rss_mb())
    return out


def run(sizes: list[int], work: Path, repeats: int) -> dict:
    from kb.config import Settings
    from kb.knowledge import KnowledgeBase
    from kb.records import DocumentSummary
    from kb.stores.catalogue import Catalogue
    from kb.stores.graph import KnowledgeGraph
    from kb.stores.keyword import KeywordIndex
    from kb.stores.triplestore import EmbeddedStore

    kb = KnowledgeBase(Settings(home=work / "corpus"))
    say("the shipped corpus, ingested once for its passages")
    kb.ingest(progress=False)
    every = kb.all_passages()
    by_doc: dict = {}
    for p in every:
        by_doc.setdefault(p.doc_id, []).append(p)
    docs = {d: kb.document(d) for d in sorted(by_doc)}
    folder = work / "stores"
    folder.mkdir(parents=True, exist_ok=True)
    stores = (KeywordIndex(folder / "keyword"), Catalogue(folder / "catalogue.sqlite", regions=kb.ontology.regions),
              KnowledgeGraph(EmbeddedStore(folder / "oxigraph"), kb.ontology, "bench"))
    keyword, catalogue, graph = stores
    results = {"machine": machine(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "sizes": []}
    made, t0 = 0, time.perf_counter()
    source = documents(docs, by_doc)
    for target in [len(every)] + sizes:
        while made < target:
            doc, passages = next(source)
            graph.replace_document(doc, passages)
            keyword.replace_document(doc.meta.doc_id, passages, doc.meta.title)
            catalogue.put_document(DocumentSummary.of(doc, len(passages)), "bench", passages)
            made += len(passages)
        keyword.close()
        say(f"{made:,} passages written ({time.perf_counter() - t0:.0f} s so far); measuring")
        row = measure(kb, stores, repeats)
        row["build_s_so_far"] = round(time.perf_counter() - t0)
        row["disk_mb"] = {"keyword": round(dir_mb(folder / "keyword"), 1), "oxigraph": round(dir_mb(folder / "oxigraph"), 1),
                          "catalogue": round(sum(f.stat().st_size for f in folder.glob("catalogue.sqlite*")) / 1e6, 1)}
        row["peak_rss_mb"] = round(peak_rss_mb())
        results["sizes"].append(row)
        say(json.dumps(row))
        RESULTS.write_text(json.dumps(results, indent=1))
    return results


def render(results: dict) -> str:
    sizes = results["sizes"]
    base = sizes[0]
    lines = [SECTION, "",
             f"`python benchmarks/stores.py` on {results['machine'].get('cpu', '?')}, {results['started']}: the keyword "
             "index, the catalogue and the graph written one document at a time with the library's calls, the shipped "
             "corpus's passages and links copied under new document ids (no embedding, no Chroma: see the section "
             "above for the whole knowledge base). p50 / p95 ms, and the p50's ratio to the 448-passage base.", "",
             "| call | " + " | ".join(f"{s['passages']:,}" for s in sizes) + " |", "|---|" + "---:|" * len(sizes)]
    for name in base["ms"]:
        cells = []
        for s in sizes:
            p50, p95 = s["ms"][name]
            ratio = f" ({p50 / base['ms'][name][0]:.1f}×)" if s is not base and base["ms"][name][0] else ""
            cells.append(f"{p50:.1f} / {p95:.1f}{ratio}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name in ("add one document", "replace it", "remove it"):
        lines.append(f"| {name} (all three stores, ms) | " + " | ".join(str(s["change_ms"][name]) for s in sizes) + " |")
    lines.append("| disk: keyword / catalogue / graph (MB) | " + " | ".join(
        f"{s['disk_mb']['keyword']} / {s['disk_mb']['catalogue']} / {s['disk_mb']['oxigraph']}" for s in sizes) + " |")
    lines.append("| resident memory of the process (MB) | " + " | ".join(str(s["rss_mb"]) for s in sizes) + " |")
    lines.append("| writing so far (s) | " + " | ".join(str(s["build_s_so_far"]) for s in sizes) + " |")
    top = sizes[-1]
    lines += ["", f"The document added holds {base['change_ms']['passages in it']} passages. Reading it: a change to "
              f"one document costs the same at every size ({top['change_ms']['add one document']} ms to add it at "
              f"{top['passages']:,} passages), and a BM25 search grows far slower than the collection. What reads "
              "every row it matches grows with the collection: the filter by London admits a broad share of the "
              f"passages ({top['ms']['catalogue: select London'][0]:.0f} ms to select them at the largest size), a "
              "SPARQL count reads every passage. Link counts and the evidence map's cells are kept as documents come "
              "and go, so they cost the same at every size"
              + (f" (the cells as a query over every link took {top['ms']['evidence map cells (query)'][0] / 1000:.1f} s "
                 "in this run, before the catalogue counted them)" if "evidence map cells (query)" in top["ms"] else "")
              + ".", ""]
    return "\n".join(lines)


def write_report(results: dict) -> None:
    write_section(SECTION, render(results))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    if args.report_only:
        write_report(json.loads(RESULTS.read_text()))
        return 0
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kb-stores-"))
    try:
        results = run([int(s) for s in args.sizes.split(",") if s], work, args.repeats)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    write_report(results)
    print(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
