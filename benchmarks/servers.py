"""A million passages on the servers: ``python benchmarks/servers.py --workdir DIR [--passages 1000000]``.

Run after ``python benchmarks/stores.py --workdir DIR``, which leaves in DIR the shipped corpus ingested
(``corpus``) and the graph it grew to a million passages (``stores/oxigraph``). Here:
- the graph is served by ``oxigraph serve`` on loopback and queried over SPARQL 1.1 HTTP, as
  ``KB_GRAPH_URL`` makes the knowledge base do: a count, the evidence map's ``GROUP BY``, one passage's links;
- a ``chroma run`` server on loopback is filled, through the knowledge base's own vector store
  (``KB_CHROMA_URL``), with N passage vectors: the shipped corpus's own vectors, each copy moved by a
  little noise so that no two are alike, with the metadata the knowledge base writes. It is searched as
  search does: the nearest 50, the nearest 800 (what a broad filter over-fetches), and within one document
  (scored from the document's stored vectors, and, for comparison, by Chroma's filtered search).
Per-call p50 / p95 in ms, filling time, each server's resident memory and disk. Results:
``benchmarks/servers-results.json`` and ``evals/BENCHMARKS.md`` (section "A million passages on the servers").
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from graph import timed  # noqa: E402
from run import dir_mb, machine, write_section  # noqa: E402
from stores import say  # noqa: E402

RESULTS = ROOT / "benchmarks" / "servers-results.json"
SECTION = "## A million passages on the servers"
BIN = Path(sys.executable).parent
QUERIES = {
    "SPARQL count": "SELECT (COUNT(?p) AS ?n) WHERE { ?p a slo:Passage }",
    "SPARQL GROUP BY (dimensions by places)": "SELECT ?d ?pl (COUNT(DISTINCT ?p) AS ?n) WHERE { ?p slo:evidencesDimension ?d ; "
                                      "slo:aboutPlace ?pl . } GROUP BY ?d ?pl",
}
ONE_PASSAGE = "SELECT ?c WHERE { ?p dcterms:identifier ?id ; slo:mentionsConcept ?c }"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(command: list[str], port: int, probe: str):
    """A server process on loopback, ready once ``probe`` answers; stopped afterwards. Yields its pid."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{probe}", timeout=5).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{command[0]} did not start")
                time.sleep(0.5)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def rss_of(pid: int) -> int:
    """Resident memory of a process and its children, in MB."""
    total = 0
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return round(total / 1024)


def graph_on_server(work: Path, repeats: int) -> dict:
    from kb.config import Settings
    from kb.knowledge import KnowledgeBase
    from kb.stores.graph import KnowledgeGraph
    from kb.stores.triplestore import SparqlServer

    import pyoxigraph as ox

    corpus = KnowledgeBase(Settings(home=work / "corpus"))
    chunk_id = corpus.all_passages()[0].chunk_id
    data, port = work / "stores" / "oxigraph", free_port()
    say(f"oxigraph serve on {dir_mb(data):.0f} MB of graph")
    t0 = time.perf_counter()
    command = [str(BIN / "oxigraph"), "serve", "--location", str(data), "--bind", f"127.0.0.1:{port}",
               "--union-default-graph"]
    with server(command, port, "/query?query=ASK%7B%7D") as pid:
        started = time.perf_counter() - t0
        graph = KnowledgeGraph(SparqlServer(f"http://127.0.0.1:{port}"), corpus.ontology, "bench")
        passages = int(graph.query(QUERIES["SPARQL count"])["rows"][0]["n"])
        ms = {name: timed(lambda q=q: graph.query(q), repeats if "GROUP" not in name else max(3, repeats // 8))
              for name, q in QUERIES.items()}
        ms["SPARQL one passage's links (bound)"] = timed(
            lambda: graph.select(ONE_PASSAGE, {"id": ox.Literal(chunk_id)}), repeats)
        return {"passages": passages, "ms": ms, "start_s": round(started, 1), "rss_mb": rss_of(pid),
                "disk_mb": round(dir_mb(data))}


def vectors_on_server(work: Path, n: int, repeats: int) -> dict:
    from kb.config import Settings
    from kb.knowledge import KnowledgeBase
    from kb.stores.vectors import PassageStore, to_metadata

    corpus = KnowledgeBase(Settings(home=work / "corpus"))
    base = corpus.all_passages()
    vectors = corpus.store.embeddings([p.chunk_id for p in base])
    titles = {d: corpus.document(d).meta for d in {p.doc_id for p in base}}
    data, port = work / "chroma-server", free_port()
    command = [str(BIN / "chroma"), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)]
    rng = np.random.default_rng(0)
    with server(command, port, "/api/v2/heartbeat") as pid:
        store = PassageStore(Settings(home=work / "client", chroma_url=f"http://127.0.0.1:{port}",
                                      collection="bench"))
        # A server already filled by an earlier run (its data stay in DIR) is searched again as it is.
        made = store.count()
        copy = made // len(base) if made >= n else 0
        made = made if made >= n else 0
        earlier = json.loads(RESULTS.read_text())["vectors"] if made and RESULTS.exists() else {}
        say(f"filling the Chroma server with {n:,} passage vectors" if not made else f"{made:,} vectors there already")
        t0 = time.perf_counter()
        while made < n:
            batch = [replace(p, chunk_id=f"{p.doc_id}-copy{copy}:{p.index}", doc_id=f"{p.doc_id}-copy{copy}")
                     for p in base][: n - made]
            moved = np.stack([vectors[p.chunk_id] for p in base[: len(batch)]])
            moved = moved + rng.normal(0, 0.02, moved.shape).astype(np.float32)
            moved /= np.linalg.norm(moved, axis=1, keepdims=True)
            metas = [to_metadata(p, titles[q.doc_id].title, titles[q.doc_id].year, titles[q.doc_id].type)
                     for p, q in zip(batch, base)]
            store.upsert(batch, moved, metas)
            made, copy = made + len(batch), copy + 1
            if copy % 100 == 0:
                say(f"{made:,} passages ({made / (time.perf_counter() - t0):.0f}/s)")
        fill_s = earlier.get("fill_s") or time.perf_counter() - t0
        say(f"filled in {fill_s:.0f} s; searching")
        questions = iter(np.stack([vectors[p.chunk_id] for p in base]))
        one_doc = [f"{base[0].doc_id}-copy{copy // 2}:{p.index}" for p in base if p.doc_id == base[0].doc_id]
        ms = {
            "nearest 50": timed(lambda: store.query(next(questions), 50), repeats),
            "nearest 800 (a broad filter's over-fetch)": timed(lambda: store.query(next(questions), 800), repeats // 2),
            "nearest 50 within one document": timed(lambda: store.query(next(questions), 50, ids=one_doc), repeats),
            "the same by Chroma's filtered search": timed(lambda: store.collection.query(
                query_embeddings=[next(questions)], n_results=50, ids=one_doc), max(3, repeats // 4)),
        }
        return {"passages": store.count(), "ms": ms, "fill_s": round(fill_s), "fill_per_s": round(n / fill_s),
                "rss_mb": rss_of(pid), "disk_mb": round(dir_mb(data))}


def render(results: dict) -> str:
    g, v = results["graph"], results["vectors"]
    lines = [SECTION, "",
             f"`python benchmarks/servers.py` on {results['machine'].get('cpu', '?')}, {results['started']}, after "
             "`benchmarks/stores.py` grew the graph: the graph served by `oxigraph serve` and a `chroma run` server "
             "filled with passage vectors, both on loopback and reached as `KB_GRAPH_URL` and `KB_CHROMA_URL` make "
             "the knowledge base reach them. p50 / p95 ms.", "",
             "| call | p50 / p95 ms |", "|---|---:|"]
    for part in (g, v):
        lines += [f"| {name} | {p50:.1f} / {p95:.1f} |" for name, (p50, p95) in part["ms"].items()]
    lines += ["",
              f"The graph server held {g['passages']:,} passages ({g['disk_mb']:,} MB on disk), was ready "
              f"{g['start_s']} s after it was started and held {g['rss_mb']:,} MB of memory after the queries. The "
              f"Chroma server took {v['passages']:,} passage vectors in {v['fill_s']:,} s ({v['fill_per_s']:,} a "
              f"second, 2,000 a request) and held {v['rss_mb']:,} MB of memory and {v['disk_mb']:,} MB of disk. "
              "The knowledge base also keeps a vector for each sentence (4–5 a passage), which this run leaves out: "
              "at a million passages that collection is the larger by that factor.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, help="the folder benchmarks/stores.py worked in")
    ap.add_argument("--passages", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    if not args.report_only and args.workdir is None:
        ap.error("--workdir is required (the folder benchmarks/stores.py worked in)")
    if not args.report_only:
        results = {"machine": machine(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        results["graph"] = graph_on_server(args.workdir, args.repeats)
        say(json.dumps(results["graph"]))
        results["vectors"] = vectors_on_server(args.workdir, args.passages, args.repeats)
        say(json.dumps(results["vectors"]))
        RESULTS.write_text(json.dumps(results, indent=1))
    results = json.loads(RESULTS.read_text())
    write_section(SECTION, render(results))
    print(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
