"""The graph store as the collection grows: ``python benchmarks/graph.py [--sizes 10000,100000]``.

The shipped corpus's own passages and links, copied under distinct document ids until a size is reached,
are written with the library's calls into a fresh Oxigraph store (:class:`kb.stores.graph.KnowledgeGraph`).
At each size it times the queries the CLI and the app run (a SPARQL count, the evidence map's
``GROUP BY``, passages under a place, link counts, a label lookup), adding, replacing and removing one
document, and records the store's disk size and this process's resident memory. The baseline, run in
the same process at 448 passages and 10k, is the store this replaced: rdflib over one graph per document,
joined into one graph for every query. Results: ``benchmarks/graph-results.json`` and ``evals/BENCHMARKS.md``
(section "The graph store").
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "benchmarks"))
from run import _status_mb, dir_mb, write_section  # noqa: E402

RESULTS = ROOT / "benchmarks" / "graph-results.json"
QUERIES = {
    "SPARQL count": "SELECT (COUNT(?p) AS ?n) WHERE { ?p a slo:Passage }",
    "GROUP BY dimension × place": """SELECT ?d ?pl (COUNT(DISTINCT ?p) AS ?n) WHERE {
        ?p slo:evidencesDimension ?d ; slo:aboutPlace ?pl . } GROUP BY ?d ?pl""",
}


def timed(fn, repeats: int) -> tuple[float, float]:
    """p50 and p95 of ``fn`` in milliseconds."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))]


def copies(kb, n_passages: int):
    """(document, passages) pairs: the corpus's documents again and again, each copy its own document."""
    by_doc: dict[str, list] = {}
    for p in kb.all_passages():
        by_doc.setdefault(p.doc_id, []).append(p)
    docs = [kb.document(d) for d in sorted(by_doc)]
    made, i = 0, 0
    while made < n_passages:
        for doc in docs:
            if made >= n_passages:
                return
            new_id = doc.meta.doc_id if i == 0 else f"{doc.meta.doc_id}-copy{i}"
            passages = [replace(p, chunk_id=f"{new_id}:{p.index}", doc_id=new_id) for p in by_doc[doc.meta.doc_id]]
            yield replace(doc, meta=replace(doc.meta, doc_id=new_id)), passages
            made += len(passages)
        i += 1


def measure(graph, kb, repeats: int) -> dict:
    from kb.stores.graph import LINK_COUNTS

    london = kb.ontology.concepts["london"].uri
    out = {}
    for name, query in QUERIES.items():
        out[name] = timed(lambda q=query: graph.query(q), repeats)
    out["passages under London"] = timed(lambda: graph.passages_for(london), repeats)
    out["link counts (GROUP BY)"] = timed(lambda: graph.select(LINK_COUNTS), repeats)
    out["label lookup"] = timed(lambda: graph.lookup("pooled funding"), repeats)
    return out


def changes(graph, kb) -> dict:
    """Add, replace and remove one document of the corpus (its largest), in milliseconds."""
    doc_id = max(kb.docs.ids(), key=lambda d: sum(p.doc_id == d for p in kb.all_passages()))
    doc = kb.document(doc_id)
    new = replace(doc, meta=replace(doc.meta, doc_id="bench-added"))
    passages = [replace(p, chunk_id=f"bench-added:{p.index}", doc_id="bench-added")
                for p in kb.all_passages() if p.doc_id == doc_id]
    out = {}
    for name, fn in (("add one document", lambda: graph.replace_document(new, passages)),
                     ("replace one document", lambda: graph.replace_document(new, passages[: len(passages) // 2])),
                     ("remove one document", lambda: graph.remove_document("bench-added"))):
        t0 = time.perf_counter()
        fn()
        out[name] = (time.perf_counter() - t0) * 1000
    out["passages in that document"] = len(passages)
    return out


class RdflibBaseline:
    """The store this replaced: one rdflib graph per document, all joined into one for every query."""

    def __init__(self, ontology) -> None:
        self.ontology, self.docs = ontology, {}

    def replace_document(self, doc, passages) -> None:
        from kb.stores.graph import document_triples

        self.docs[doc.meta.doc_id] = document_triples(doc, passages, self.ontology)

    def query(self, text: str) -> list:
        from rdflib import Graph

        from kb.stores.graph import PREFIXES

        g = Graph()
        g += self.ontology.graph
        for part in self.docs.values():
            g += part
        return list(g.query(text, initNs=PREFIXES))


def run_size(kb, n: int, folder: Path, repeats: int, baseline: bool) -> dict:
    from kb.stores.graph import KnowledgeGraph
    from kb.stores.triplestore import EmbeddedStore

    store = folder / f"oxigraph-{n}"
    graph = KnowledgeGraph(EmbeddedStore(store), kb.ontology, "bench")
    t0 = time.perf_counter()
    count = 0
    for doc, passages in copies(kb, n):
        graph.replace_document(doc, passages)
        count += len(passages)
    build = time.perf_counter() - t0
    row = {"passages": count, "build_s": round(build, 1), "disk_mb": round(dir_mb(store), 1)}
    row["queries_ms"] = {k: [round(v, 1) for v in pair] for k, pair in measure(graph, kb, repeats).items()}
    row["changes_ms"] = {k: round(v, 1) for k, v in changes(graph, kb).items()}
    row["rss_mb"] = round(_status_mb("VmRSS") or 0, 0)
    if baseline:
        old = RdflibBaseline(kb.ontology)
        for doc, passages in copies(kb, n):
            old.replace_document(doc, passages)
        row["rdflib_ms"] = {name: round(timed(lambda q=q: old.query(q), max(2, repeats // 5))[0], 1)
                            for name, q in QUERIES.items()}
    shutil.rmtree(store, ignore_errors=True)
    return row


def render(results: dict) -> str:
    rows = results["sizes"]
    base = rows[0]
    names = list(base["queries_ms"])
    lines = ["## The graph store (Oxigraph) as the collection grows", "",
             f"`python benchmarks/graph.py` on {results['machine']}, {results['date']}: the corpus's passages and "
             "links copied under new document ids, written with the library's calls into a fresh embedded "
             "Oxigraph store; p50 / p95 in ms, each call opening the store as a reader in another process "
             "would. The ratio is to the 448-passage store of the same run.", "",
             "| passages | " + " | ".join(names) + " | add one doc | replace | remove | build s | disk MB | RSS MB |",
             "|---:|" + "---:|" * (len(names) + 6)]
    for r in rows:
        q = " | ".join(f"{r['queries_ms'][n][0]:.1f} / {r['queries_ms'][n][1]:.1f} "
                       f"({r['queries_ms'][n][0] / max(base['queries_ms'][n][0], 0.01):.1f}×)" for n in names)
        c = r["changes_ms"]
        lines.append(f"| {r['passages']:,} | {q} | {c['add one document']:.0f} | {c['replace one document']:.0f} | "
                     f"{c['remove one document']:.0f} | {r['build_s']} | {r['disk_mb']} | {r['rss_mb']:.0f} |")
    lines += ["", "The store it replaced (rdflib, every document's graph joined for each query), same run, p50 ms:", "",
              "| passages | " + " | ".join(QUERIES) + " |", "|---:|" + "---:|" * len(QUERIES)]
    for r in rows:
        if "rdflib_ms" in r:
            lines.append(f"| {r['passages']:,} | " + " | ".join(
                f"{r['rdflib_ms'][n]:.0f} (Oxigraph {r['queries_ms'][n][0]:.1f})" for n in QUERIES) + " |")
    top = rows[-1]
    lines += ["", f"At {top['passages']:,} passages a SPARQL count takes {top['queries_ms']['SPARQL count'][0]:.0f} ms "
              f"(goal ≤ 200) and adding one document {top['changes_ms']['add one document']:.0f} ms besides its "
              "embedding (goal ≤ 10 s). Queries that read every link (a GROUP BY of dimensions by places, link counts as a GROUP BY) "
              "grow with the collection; the catalogue now counts link counts and the evidence map's cells as "
              "documents come and go."]
    return "\n".join(lines) + "\n"


def write_report(section: str) -> None:
    write_section("## The graph store (Oxigraph) as the collection grows", section)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--home", help="an ingested KB_HOME of the shipped corpus (default: ingest one)")
    args = ap.parse_args()
    import platform

    from kb.config import Settings
    from kb.knowledge import KnowledgeBase

    work = Path(tempfile.mkdtemp(prefix="kb-graph-bench-"))
    try:
        kb = KnowledgeBase(Settings.from_env(home=Path(args.home) if args.home else work / "home"))
        if kb.is_empty():
            kb.ingest(progress=True)
        sizes = [len(kb.all_passages())] + [int(s) for s in args.sizes.split(",") if s]
        rows = []
        for n in sizes:
            row = run_size(kb, n, work, args.repeats, baseline=n <= 10_000)
            print(json.dumps(row), flush=True)
            rows.append(row)
        results = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
                   "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores", "sizes": rows}
        RESULTS.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        write_report(render(results))
        print(render(results))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
