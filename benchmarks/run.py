"""Speed and scale benchmarks, one command: ``python benchmarks/run.py``.

1. Ingestion of the shipped corpus against pure embedding of the same passages and sentences (the ratio; goal <= 1.3).
2. ``kb search`` and ``kb ask`` latency in-process after loading (p50/p95 over the gold questions), and
   the cold start to a first answer (a fresh ``kb ask`` process).
3. Scale: a ChromaDB ``PersistentClient`` collection of synthetic passages (random unit 384-d vectors
   with text and metadata, inserted in batches) at 10k and 100k passages: insert time, disk size,
   search latency p50/p95 and resident memory (RSS). Each size is built in one fresh process and
   searched in another, so the memory figures belong to that size alone.

Figures are printed, written to ``benchmarks/results.json`` and rendered to ``evals/BENCHMARKS.md``.
Everything runs offline on the packaged model. Options: ``--only ingest,latency,scale``,
``--sizes 10000,100000``, ``--quick`` (fewer repeats, 10k only), ``--workdir DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
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
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS = ROOT / "benchmarks" / "results.json"
REPORT = ROOT / "evals" / "BENCHMARKS.md"
DIM = 384
GOAL_RATIO = 1.3


# -- helpers ------------------------------------------------------------------------------------
def percentile(values, q):
    from kb.evals.metrics import percentile as p

    return p(list(values), q)


def _status_mb(field: str) -> float | None:
    """A memory figure of this process from /proc/self/status (Linux), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """Current resident set size of this process, in MB (Linux /proc; ru_maxrss elsewhere)."""
    current = _status_mb("VmRSS")
    return peak_rss_mb() if current is None else current


def peak_rss_mb() -> float:
    """Peak resident memory of this process. VmHWM on Linux: ru_maxrss survives exec, so a child started
    from a big parent would report the parent's peak."""
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def kb_command() -> list[str]:
    exe = Path(sys.executable).parent / "kb"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "kb.ui.cli"]


def settings_for(home: Path):
    from kb.config import Settings

    passed = {k: v for k, v in os.environ.items() if k == "KB_ONTOLOGY"}
    return Settings.from_env(env=passed, home=home)


def say(msg: str) -> None:
    print(msg, flush=True)


def gold_questions() -> list[str]:
    rows = [json.loads(line) for line in (ROOT / "evals" / "gold.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["question"] for r in rows]


# -- 1. ingestion against pure embedding ----------------------------------------------------------
def bench_ingest(work: Path, repeats: int) -> dict:
    """Ingestion against pure embedding, interleaved so both see the same machine load.

    Wall time and process CPU time (all threads) are both recorded: on a shared machine the
    CPU-time ratio is the steadier of the two.
    """
    from kb.embed import BATCH
    from kb.knowledge import KnowledgeBase

    say("\n[1] ingestion of the shipped corpus vs pure embedding of the same passages and sentences")
    ingest_s, ingest_cpu, embed_s, embed_cpu, homes = [], [], [], [], []
    texts: list[str] = []
    n_passages = 0
    kb = None
    for i in range(repeats):
        home = work / f"ingest-{i}"
        shutil.rmtree(home, ignore_errors=True)
        kb = KnowledgeBase(settings_for(home))
        kb.embedder.encode(["warm up"])  # the model load is common to both sides and not timed
        kb.embedder.clear_cache()  # no vectors remembered from an earlier run
        c0, t0 = time.process_time(), time.perf_counter()
        report = kb.ingest(progress=False)
        ingest_s.append(time.perf_counter() - t0)
        ingest_cpu.append(time.process_time() - c0)
        assert report.ok, report.to_json()
        homes.append(home)
        if not texts:
            from kb.index import sentence_records

            docs = {d.meta.doc_id: d for d in kb.docs.all()}
            passages = kb.store.all_passages()
            texts = [p.embed_text(docs[p.doc_id].meta.title) for p in passages]
            n_passages = len(texts)
            for doc in docs.values():  # and every distinct sentence, as ingestion encodes them
                mine = [p for p in passages if p.doc_id == doc.meta.doc_id]
                texts += list(dict.fromkeys(doc.text[r.start:r.end] for r in sentence_records(doc, mine)))
        kb.embedder.clear_cache()
        c0, t0 = time.process_time(), time.perf_counter()
        kb.embedder._encode(texts, BATCH, False)  # in batches of the size ingestion uses
        embed_s.append(time.perf_counter() - t0)
        embed_cpu.append(time.process_time() - c0)
        say(f"    run {i + 1}: ingestion {ingest_s[-1]:.1f} s wall / {ingest_cpu[-1]:.1f} s CPU; pure embedding of "
            f"{n_passages} passages and {len(texts) - n_passages} sentences {embed_s[-1]:.1f} s wall / {embed_cpu[-1]:.1f} s CPU")
    kb = KnowledgeBase(settings_for(homes[0]))
    # Parts of ingestion besides the passage embeddings, measured on their own for context.
    from kb.vocab.linking import Linker

    t0 = time.perf_counter()
    Linker(kb.ontology, kb.embedder)
    linker_s = time.perf_counter() - t0
    every = kb.all_passages()
    t0 = time.perf_counter()
    for doc in kb.docs.all():
        kb.indexer.index_passages(doc, [p for p in every if p.doc_id == doc.meta.doc_id])
    kb.keyword.close()
    index_s = time.perf_counter() - t0
    # The command a user runs, cold: a new process, model load included.
    cold_home = work / "ingest-cold"
    shutil.rmtree(cold_home, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run([*kb_command(), "--home", str(cold_home), "ingest", "--quiet"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cold_s = time.perf_counter() - t0
    ingest, embed = statistics.median(ingest_s), statistics.median(embed_s)
    pair = [a / b for a, b in zip(ingest_s, embed_s)]
    cpu_ratio = statistics.median(ingest_cpu) / statistics.median(embed_cpu)
    out = {
        "documents": len(kb.docs.all()), "passages": n_passages, "sentences": len(texts) - n_passages,
        "characters": sum(len(d.text) for d in kb.docs.all()),
        "ingest_s": ingest_s, "embed_s": embed_s, "ingest_cpu_s": ingest_cpu, "embed_cpu_s": embed_cpu,
        "ingest_median_s": ingest, "embed_median_s": embed,
        "ratio": ingest / embed, "ratio_per_run": pair, "ratio_min_wall": min(ingest_s) / min(embed_s),
        "ratio_cpu": cpu_ratio, "goal": GOAL_RATIO, "meets_goal": ingest / embed <= GOAL_RATIO,
        "linker_build_s": linker_s, "index_s": index_s, "cold_cli_ingest_s": cold_s,
        "home": str(homes[0]),
    }
    say(f"    ratio ingestion / pure embedding: {out['ratio']:.2f} (median wall), {out['ratio_min_wall']:.2f} (best wall), "
        f"{cpu_ratio:.2f} (CPU time); goal <= {GOAL_RATIO}; cold `kb ingest` {cold_s:.1f} s")
    return out


# -- 2. search and ask latency ------------------------------------------------------------------
def bench_latency(home: Path, cold_repeats: int) -> dict:
    from kb.knowledge import KnowledgeBase

    say("\n[2] kb search / kb ask latency in-process after loading, and the cold start")
    kb = KnowledgeBase(settings_for(home))
    questions = gold_questions()
    t0 = time.perf_counter()
    kb.ask("warm up: what is systems leadership?")
    load_s = time.perf_counter() - t0
    out: dict = {"questions": len(questions), "first_call_in_process_s": load_s}
    for name, call in (
        ("search hybrid+ontology k=5", lambda q: kb.search(q, k=5)),
        ("search hybrid k=5 (--no-expand)", lambda q: kb.search(q, k=5, expand=False)),
        ("search bm25 k=5", lambda q: kb.search(q, k=5, mode="bm25")),
        ("search dense k=5", lambda q: kb.search(q, k=5, mode="dense")),
        ("ask k=5", lambda q: kb.ask(q, k=5)),
    ):
        times = []
        for q in questions:
            kb.embedder.clear_cache()  # every question is new to the model, as a user's would be
            t = time.perf_counter()
            call(q)
            times.append((time.perf_counter() - t) * 1000)
        out[name] = {"p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95),
                     "mean_ms": statistics.fmean(times), "max_ms": max(times)}
        say(f"    {name:<34} p50 {out[name]['p50_ms']:7.1f} ms   p95 {out[name]['p95_ms']:7.1f} ms")
    cold = {}
    # Without, then with, the compiled encoder that `kb ingest` and `kb app` leave under KB_HOME.
    shutil.rmtree(kb.settings.encoder_dir, ignore_errors=True)
    for cmd in ("ask-uncompiled", "ask", "search"):
        if cmd == "ask":
            assert kb.compile_encoder()
        runs = []
        for _ in range(cold_repeats):
            t = time.perf_counter()
            subprocess.run([*kb_command(), "--home", str(home), cmd.split("-")[0], "How did others handle pooled budgets?",
                            "--json"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            runs.append(time.perf_counter() - t)
        cold[cmd] = {"runs_s": runs, "median_s": statistics.median(runs)}
        say(f"    cold `kb {cmd}` (new process to first result): median {cold[cmd]['median_s']:.1f} s "
            f"over {cold_repeats} runs ({', '.join(f'{r:.1f}' for r in runs)} s)")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import kb.ui.cli"], check=True)
    cold["import_only_s"] = time.perf_counter() - t
    out["cold"] = cold
    return out


# -- 3. scale -------------------------------------------------------------------------------------
WORDS = ("leadership system partners place budget health care council pooled trust outcomes shared purpose "
         "relationships community services integration commissioning evidence families children police "
         "housing prevention risk authority vision collaboration change culture data value learning").split()


def scale_build(path: Path, n: int, batch: int, seed: int = 7) -> dict:
    """(In a child process.) Insert ``n`` synthetic passages in batches; report time, memory and disk."""
    import chromadb
    import numpy as np
    from chromadb.config import Settings as ChromaSettings

    rng = np.random.default_rng(seed)
    client = chromadb.PersistentClient(path=str(path), settings=ChromaSettings(anonymized_telemetry=False))
    col = client.get_or_create_collection("passages", embedding_function=None,
                                          configuration={"hnsw": {"space": "cosine"}})
    words = np.array(WORDS)
    rss_before = rss_mb()
    t0 = time.perf_counter()
    batch_s = []
    for start in range(0, n, batch):
        m = min(batch, n - start)
        vecs = rng.standard_normal((m, DIM)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        picks = rng.integers(0, len(words), size=(m, 120))  # ~120 words, about a passage's length
        docs = [" ".join(words[row]) for row in picks]
        ids = [f"syn-{start + i}" for i in range(m)]
        metas = [{"doc_id": f"doc-{(start + i) // 100}", "start": (i % 100) * 900, "end": (i % 100) * 900 + 850,
                  "page": (i % 100) // 4 + 1, "title": "synthetic", "year": 2015, "type": "synthetic"}
                 for i in range(m)]
        tb = time.perf_counter()
        col.add(ids=ids, embeddings=vecs, documents=docs, metadatas=metas)
        batch_s.append(time.perf_counter() - tb)
    insert_s = time.perf_counter() - t0
    return {"n": n, "batch": batch, "insert_s": insert_s, "insert_per_s": n / insert_s,
            "batch_p50_s": percentile(batch_s, 50), "batch_max_s": max(batch_s),
            "rss_before_mb": rss_before, "rss_after_insert_mb": rss_mb(), "peak_rss_build_mb": peak_rss_mb(),
            "count": col.count()}


def scale_search(path: Path, queries: int, n_results: int, seed: int = 11) -> dict:
    """(In a child process.) Reopen the collection and time ``queries`` nearest-neighbour searches."""
    import chromadb
    import numpy as np
    from chromadb.config import Settings as ChromaSettings

    rng = np.random.default_rng(seed)
    rss_start = rss_mb()
    t0 = time.perf_counter()
    client = chromadb.PersistentClient(path=str(path), settings=ChromaSettings(anonymized_telemetry=False))
    col = client.get_collection("passages")
    count = col.count()
    q = rng.standard_normal((queries + 1, DIM)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    col.query(query_embeddings=[q[0]], n_results=n_results, include=["documents", "metadatas", "distances"])
    first_s = time.perf_counter() - t0  # open + load the index + first query
    times = []
    for v in q[1:]:
        t = time.perf_counter()
        got = col.query(query_embeddings=[v], n_results=n_results, include=["documents", "metadatas", "distances"])
        times.append((time.perf_counter() - t) * 1000)
        assert len(got["ids"][0]) == n_results
    # Exactness check of the approximate index on a few queries: recall of the true top 10.
    exact = _exact_recall(col, q[1:21], count) if count <= 20000 else None
    return {"count": count, "queries": queries, "n_results": n_results, "open_and_first_query_s": first_s,
            "search_p50_ms": percentile(times, 50), "search_p95_ms": percentile(times, 95),
            "rss_start_mb": rss_start, "rss_after_search_mb": rss_mb(), "peak_rss_search_mb": peak_rss_mb(),
            "hnsw_recall_at_10": exact}


def _exact_recall(col, queries, count) -> float:
    import numpy as np

    got = col.get(include=["embeddings"], limit=count)
    ids = np.array(got["ids"])
    mat = np.asarray(got["embeddings"], dtype=np.float32)
    hits = 0
    for v in queries:
        true = set(ids[np.argsort(-(mat @ v))[:10]])
        approx = set(col.query(query_embeddings=[v], n_results=10, include=[])["ids"][0])
        hits += len(true & approx)
    return hits / (10 * len(queries))


def bench_scale(work: Path, sizes: list[int], batch: int, queries: int, n_results: int) -> dict:
    say(f"\n[3] scale: ChromaDB PersistentClient, synthetic unit {DIM}-d vectors with text, batches of {batch}")
    out = {"batch": batch, "queries": queries, "n_results": n_results, "sizes": []}
    for n in sizes:
        path = work / f"scale-{n}"
        shutil.rmtree(path, ignore_errors=True)
        say(f"    {n:,} passages: inserting ...")
        build = _child("build", path, n, batch)
        say(f"      inserted in {build['insert_s']:.1f} s ({build['insert_per_s']:.0f}/s), "
            f"RSS {build['rss_after_insert_mb']:.0f} MB (peak {build['peak_rss_build_mb']:.0f} MB)")
        search = _child("search", path, queries, n_results)
        row = {"n": n, **build, **search, "disk_mb": dir_mb(path)}
        out["sizes"].append(row)
        say(f"      search n={n_results}: p50 {search['search_p50_ms']:.1f} ms, p95 {search['search_p95_ms']:.1f} ms; "
            f"open + first query {search['open_and_first_query_s']:.1f} s; RSS {search['rss_after_search_mb']:.0f} MB; "
            f"disk {row['disk_mb']:.0f} MB")
        shutil.rmtree(path, ignore_errors=True)
    return out


def _child(kind: str, path: Path, a: int, b: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", kind, str(path), str(a), str(b)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"scale {kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the report ------------------------------------------------------------------------------------
def machine() -> dict:
    from importlib import metadata

    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "?"

    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GB"
    except OSError:
        pass
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory": mem, "python": platform.python_version(), "load_average": load,
            "platform": platform.platform(),
            "versions": {n: version(n) for n in ("chromadb", "sentence-transformers", "torch", "llama-index-core", "bm25s")}}


def write_section(head: str, section: str) -> None:
    """Put ``section`` (which starts with ``head``) into evals/BENCHMARKS.md in place of the section of that
    heading, or at its end: each benchmark script keeps its own section there."""
    report = ROOT / "evals" / "BENCHMARKS.md"
    text = report.read_text(encoding="utf-8") if report.exists() else ""
    if head in text:
        start = text.index(head)
        nxt = text.find("\n## ", start + len(head))
        text = text[:start] + section.rstrip("\n") + "\n" + (text[nxt:] if nxt != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    report.write_text(text, encoding="utf-8")


def kept_sections(own: str) -> str:
    """Every section of the report that ``own`` (this script's part) does not hold: the other scripts
    write theirs with :func:`write_section`, and they are kept when this report is rewritten."""
    text = REPORT.read_text(encoding="utf-8") if REPORT.exists() else ""
    mine = set(re.findall(r"^## .*$", own, re.M))
    starts = [m.start() for m in re.finditer(r"^## ", text, re.M)] + [len(text)]
    return "".join("\n" + text[a:b].rstrip("\n") + "\n" for a, b in zip(starts, starts[1:])
                   if text[a:text.find("\n", a)] not in mine)


def render(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Run {results['created']} with `python benchmarks/run.py` on {m['cpus']} CPUs ({m['cpu'] or 'unknown CPU'}), "
        f"{m['memory']} RAM, Python {m['python']}, ChromaDB {m['versions']['chromadb']}, "
        f"sentence-transformers {m['versions']['sentence-transformers']}, torch {m['versions']['torch']}; "
        "embedding model: the packaged all-MiniLM-L6-v2 on the CPU. Raw figures: `benchmarks/results.json`. "
        "Retrieval quality is in `evals/RESULTS.md`.",
        "",
    ]
    if m.get("load_average"):
        lines += [f"Load average (1, 5, 15 min) when the run started: {', '.join(str(x) for x in m['load_average'])}; "
                  f"the end: {', '.join(str(x) for x in results.get('load_average_end') or [])}. A load above the "
                  "number of CPUs means other work shared the machine and the times are pessimistic.", ""]
    ing = results.get("ingest")
    if ing:
        lines += [
            "## 1. Ingestion against pure embedding", "",
            f"The shipped corpus ({ing['documents']} documents, {ing['characters']:,} characters, {ing['passages']} passages), "
            "ingested in-process into an empty `KB_HOME` with the model already loaded, against encoding the same "
            "passage texts (heading + text) and the distinct sentences searched and quoted on their own (exactly what ingestion embeds) with the same model in one call, in batches of the size ingestion uses. The embedder's memo of recent short texts (`kb/embed.py`) is emptied before every timed run and call, so nothing is served from it. "
            f"{len(ing['ingest_s'])} runs, each an ingestion followed at once by the pure embedding, so that both "
            "see the same load on the machine; wall time and the process's CPU time (all threads) are both given.",
            "",
            "| measure | seconds (median wall) | seconds (median CPU) |", "|---|---:|---:|",
            f"| ingestion (parse, normalise, chunk, embed, link, store, graph, keyword index, catalogue) | {ing['ingest_median_s']:.1f} | "
            f"{statistics.median(ing.get('ingest_cpu_s') or [0]):.1f} |",
            f"| pure embedding of the same {ing['passages']} passages and {ing.get('sentences', 0)} sentences | {ing['embed_median_s']:.1f} | "
            f"{statistics.median(ing.get('embed_cpu_s') or [0]):.1f} |",
            f"| **ratio** (goal ≤ {ing['goal']}) | **{ing['ratio']:.2f}** {'(met)' if ing['meets_goal'] else '(not met)'} | "
            f"**{ing.get('ratio_cpu', float('nan')):.2f}** |",
            f"| ratio of the best runs (wall) | {ing.get('ratio_min_wall', float('nan')):.2f} | |",
            f"| of which, for context: building the ontology linker (encodes concept labels) | {ing['linker_build_s']:.1f} |",
            f"| of which, for context: writing every document to the keyword index and the catalogue | {ing['index_s']:.2f} |",
            f"| cold `kb ingest` in a new process (Python start, imports, model load included) | {ing['cold_cli_ingest_s']:.1f} |",
            "",
            "Runs (wall): ingestion " + ", ".join(f"{s:.1f}" for s in ing["ingest_s"]) + " s; pure embedding "
            + ", ".join(f"{s:.1f}" for s in ing["embed_s"]) + " s; ratio per run "
            + ", ".join(f"{r:.2f}" for r in ing.get("ratio_per_run", [])) + ".",
            "",
        ]
    lat = results.get("latency")
    if lat:
        lines += [
            "## 2. Search and answer latency", "",
            f"In-process after loading (the model, the store, the BM25 index and the ontology loaded by a first call), "
            f"over the {lat['questions']} gold questions, one at a time, on the shipped corpus. The embedder's memo "
            "of recent texts is emptied before every call, so each question is encoded afresh.",
            "",
            "| call | p50 ms | p95 ms | mean ms | max ms |", "|---|---:|---:|---:|---:|",
        ]
        for name, v in lat.items():
            if isinstance(v, dict) and "p50_ms" in v:
                lines.append(f"| `{name}` | {v['p50_ms']:.1f} | {v['p95_ms']:.1f} | {v['mean_ms']:.1f} | {v['max_ms']:.0f} |")
        c = lat["cold"]
        lines += [
            "",
            "Cold start to the first result: a new process per run, "
            "`kb --home H ask \"How did others handle pooled budgets?\" --json` (Python start, imports, model and index "
            "load, the answer). The operating system's file cache is warm, as it is on a laptop in use. "
            "`kb ingest` leaves a compiled (TorchScript) copy of the model under `KB_HOME/encoder`, which loads without "
            "importing sentence-transformers; the first row is without it.",
            "",
            "| command | median s | runs (s) |", "|---|---:|---|",
            *([f"| `kb ask` without the compiled encoder | {c['ask-uncompiled']['median_s']:.1f} | "
               f"{', '.join(f'{r:.1f}' for r in c['ask-uncompiled']['runs_s'])} |"] if "ask-uncompiled" in c else []),
            f"| `kb ask` | {c['ask']['median_s']:.1f} | {', '.join(f'{r:.1f}' for r in c['ask']['runs_s'])} |",
            f"| `kb search` | {c['search']['median_s']:.1f} | {', '.join(f'{r:.1f}' for r in c['search']['runs_s'])} |",
            f"| `python -c 'import kb.ui.cli'` (for reference) | {c['import_only_s']:.1f} | |",
            f"| first `ask` in an already-started process (loading) | {lat['first_call_in_process_s']:.1f} | |",
            "",
        ]
    sc = results.get("scale")
    if sc:
        lines += [
            "## 3. Scale: the store at 10k and 100k passages", "",
            f"A ChromaDB `PersistentClient` collection (cosine HNSW, as `kb` creates it) filled with synthetic passages: "
            f"random unit {DIM}-d vectors, ~120 words of text and `kb`-like metadata each, added in batches of "
            f"{sc['batch']:,}. Each size is built in one fresh process and searched in another (open, then "
            f"{sc['queries']} random unit-vector queries for the nearest {sc['n_results']} with documents and "
            "metadata, as `kb search` asks for its dense candidates). RSS is the process's resident memory.",
            "",
            "| passages | insert s | inserts/s | RSS after insert MB | disk MB | open + first query s | search p50 ms | search p95 ms | RSS after searches MB | HNSW recall@10 |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in sc["sizes"]:
            rec = "–" if r.get("hnsw_recall_at_10") is None else f"{r['hnsw_recall_at_10']:.3f}"
            lines.append(f"| {r['n']:,} | {r['insert_s']:.1f} | {r['insert_per_s']:.0f} | {r['rss_after_insert_mb']:.0f} | "
                         f"{r['disk_mb']:.0f} | {r['open_and_first_query_s']:.1f} | {r['search_p50_ms']:.1f} | "
                         f"{r['search_p95_ms']:.1f} | {r['rss_after_search_mb']:.0f} | {rec} |")
        if len(sc["sizes"]) >= 2:
            a, b = sc["sizes"][0], sc["sizes"][-1]
            f = b["n"] / a["n"]
            lines += ["",
                      f"Growth from {a['n']:,} to {b['n']:,} passages (×{f:.0f}): search p50 ×"
                      f"{b['search_p50_ms'] / a['search_p50_ms']:.1f}, resident memory while searching ×"
                      f"{b['rss_after_search_mb'] / a['rss_after_search_mb']:.1f} "
                      f"(+{b['rss_after_search_mb'] - a['rss_after_search_mb']:.0f} MB), disk ×{b['disk_mb'] / a['disk_mb']:.1f}."]
        lines += ["",
                  "HNSW recall@10 compares the index's answers for the nearest 10 with exact cosine search, 20 "
                  "queries (measured at 10k only). It is low because Chroma's default `ef_search` is 10 and random "
                  "vectors are the hard case for an approximate index (real embeddings cluster); `kb` asks for 50 "
                  "dense candidates, and hnswlib searches with max(ef, k), so `kb`'s own dense lists are searched "
                  "more widely than this figure suggests. "
                  "`kb` itself adds, per query, the BM25 scoring over all passages and the fusion; those grow "
                  "linearly with the number of passages and are not in these figures."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="ingest,latency,scale", help="comma-separated: ingest, latency, scale")
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="one ingestion run, one cold start, 10k only")
    ap.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one, removed afterwards)")
    ap.add_argument("--no-report", action="store_true", help="do not write benchmarks/results.json and evals/BENCHMARKS.md")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        kind, path, a, b = args.child
        fn = scale_build if kind == "build" else scale_search
        print(json.dumps(fn(Path(path), int(a), int(b))))
        return 0
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    sizes = [10000] if args.quick else [int(s) for s in args.sizes.split(",")]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kb-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine()}
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    try:
        home = None
        if "ingest" in only:
            results["ingest"] = bench_ingest(work, 1 if args.quick else 2)
            home = Path(results["ingest"]["home"])
        if "latency" in only:
            if home is None:
                home = work / "latency-home"
                from kb.knowledge import KnowledgeBase

                KnowledgeBase(settings_for(home)).ingest(progress=False)
            results["latency"] = bench_latency(home, 1 if args.quick else 3)
        if "scale" in only:
            results["scale"] = bench_scale(work, sizes, args.batch, args.queries, 50)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    # Keep sections that were not re-run from the previous results.
    for key in ("ingest", "latency", "scale"):
        if key not in results and key in previous:
            results[key] = previous[key]
    if not args.no_report:
        RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        own = render(results)
        REPORT.write_text(own + kept_sections(own), encoding="utf-8")
        say(f"\nwrote {RESULTS.relative_to(ROOT)} and {REPORT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
