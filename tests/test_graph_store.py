"""The graph in a real triple store: Oxigraph under KB_HOME, and `oxigraph serve` on loopback for
``KB_GRAPH_URL``. Both hold the shipped corpus's graphs and must answer every query alike."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest

from kb.knowledge import KnowledgeBase
from kb.stores.graph import KnowledgeGraph
from kb.stores.triplestore import EmbeddedStore, SparqlServer, StoreBusy
from tests.conftest import make_settings

QUERIES = [
    "SELECT (COUNT(?p) AS ?n) WHERE { ?p a slo:Passage }",
    """SELECT ?d ?pl (COUNT(DISTINCT ?p) AS ?n) WHERE { ?p slo:evidencesDimension ?d ; slo:aboutPlace ?pl . }
       GROUP BY ?d ?pl ORDER BY DESC(?n) ?d ?pl""",
    "SELECT ?id WHERE { ?p slo:aboutPlace place:barnet ; dcterms:isPartOf ?d . ?d dcterms:identifier ?id } ORDER BY ?id",
    "ASK { place:barnet skos:broader place:london }",
    "SELECT ?label WHERE { concept:pooled-budgets skos:altLabel ?label } ORDER BY ?label",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def oxigraph_server(data: Path):
    """`oxigraph serve` (the oxigraph package's server) on loopback, the union of its graphs as default."""
    exe = Path(sys.executable).parent / "oxigraph"
    if not exe.exists():
        pytest.fail("the oxigraph server is not installed: pip install -e '.[test]'")
    port = free_port()
    proc = subprocess.Popen([str(exe), "serve", "--location", str(data), "--bind", f"127.0.0.1:{port}",
                             "--union-default-graph"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/query?query=ASK%7B%7D", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("the oxigraph server did not start")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def graph_server(tmp_path_factory):
    with oxigraph_server(tmp_path_factory.mktemp("oxigraph-server")) as url:
        yield url


def fill(graph: KnowledgeGraph, kb: KnowledgeBase) -> None:
    passages: dict[str, list] = {}
    for p in kb.all_passages():
        passages.setdefault(p.doc_id, []).append(p)
    for doc_id in kb.docs.ids():
        graph.replace_document(kb.document(doc_id), passages.get(doc_id, []))


@pytest.fixture(scope="module")
def both(corpus_kb, graph_server, tmp_path_factory):
    """The corpus's graph in a fresh embedded store and on the server, built by the same calls."""
    version = "test-vocabulary"
    embedded = KnowledgeGraph(EmbeddedStore(tmp_path_factory.mktemp("embedded") / "oxigraph"), corpus_kb.ontology, version)
    server = KnowledgeGraph(SparqlServer(graph_server), corpus_kb.ontology, version)
    for g in (embedded, server):
        fill(g, corpus_kb)
    return embedded, server


def test_the_server_answers_every_query_as_the_embedded_store_does(both, corpus_kb):
    embedded, server = both
    for query in QUERIES:
        assert server.query(query) == embedded.query(query) == corpus_kb.graph.query(query), query
    assert embedded.query(QUERIES[0])["rows"] == [{"n": str(len(corpus_kb.all_passages()))}]
    barnet = corpus_kb.ontology.concepts["london"].uri
    assert server.passages_for(barnet) == embedded.passages_for(barnet) != []
    assert server.link_counts() == embedded.link_counts() == corpus_kb.graph.link_counts()
    assert server.document_ids() == embedded.document_ids() == set(corpus_kb.docs.ids())
    assert server.passage_ids() == embedded.passage_ids() == {p.chunk_id for p in corpus_kb.all_passages()}
    assert len(server.union()) == len(embedded.union()) == len(corpus_kb.graph.union())


@pytest.mark.parametrize("label", ['pooled budgets" } ; DROP ALL ; #', "x' || true || '", "} UNION { ?s ?p ?o }",
                                   "\\\" . }", "pooled budgets\"@en } } ; CLEAR ALL ; SELECT * { {"])
def test_a_hostile_label_is_a_value_on_either_store(both, label):
    for graph in both:
        assert graph.lookup(label) == []
        assert graph.lookup("Pooled Funding") == [graph.ontology.concepts["pooled-budgets"].uri]
        assert graph.query(QUERIES[0])["rows"][0]["n"] != "0"  # nothing was dropped


def test_replacing_a_document_changes_only_its_graph(both, corpus_kb):
    doc_id = sorted(corpus_kb.docs.ids())[0]
    kept = [p for p in corpus_kb.all_passages() if p.doc_id == doc_id][:2]
    for graph in both:
        before = graph.passage_ids()
        graph.replace_document(corpus_kb.document(doc_id), kept)
        others = {i for i in before if not i.startswith(doc_id + ":")}
        assert graph.passage_ids() == others | {p.chunk_id for p in kept}
        counts = graph.link_counts()
        graph.remove_document(doc_id)
        assert graph.passage_ids() == others and doc_id not in graph.document_ids()
        assert graph.link_counts() == counts - Counter(c for p in kept for c in {*p.concepts, *p.places, *p.dimensions})
    for graph in both:  # as it was, for the other tests
        fill(graph, corpus_kb)


def test_updates_and_graph_queries_are_refused_on_either_store(both):
    from kb.stores.graph import QueryRefused

    for graph in both:
        with pytest.raises(QueryRefused, match="updates are refused"):
            graph.query("DELETE WHERE { ?s ?p ?o }")
        with pytest.raises(QueryRefused, match="CONSTRUCT"):
            graph.query("CONSTRUCT WHERE { ?s ?p ?o }")
        with pytest.raises(QueryRefused, match="not a valid SPARQL query"):
            graph.query("SELEC ?x")


def test_a_knowledge_base_on_the_graph_server(tmp_path, capsys):
    """The whole path with KB_GRAPH_URL (a server of its own: one dataset, one knowledge base): ingest,
    check, SPARQL from the command line; and a clear error (not a traceback) when the server is gone."""
    from kb.ui.cli import main

    with oxigraph_server(tmp_path / "server") as url:
        run_on_server(url, tmp_path, capsys, main)


def run_on_server(graph_server: str, tmp_path: Path, capsys, main) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "harbour.txt").write_text("Harbour notes\n\nThe harbour board in Plymouth pooled budgets with the "
                                      "county council to pay for the dredging.\n", encoding="utf-8")
    settings = make_settings(tmp_path / "home", graph_url=graph_server)
    kb = KnowledgeBase(settings)
    assert kb.ingest([docs], progress=False).ok
    assert kb.check() == []
    assert not settings.graph_path.exists()  # nothing embedded: the graph is on the server
    os.environ["KB_GRAPH_URL"] = graph_server
    try:
        assert main(["--home", str(settings.home), "sparql", "SELECT ?t WHERE { ?d dcterms:title ?t ; "
                     "dcterms:identifier 'harbour' }"]) == 0
        assert "Harbour notes" in capsys.readouterr().out
        os.environ["KB_GRAPH_URL"] = "http://127.0.0.1:9"  # nothing listens there
        assert main(["--home", str(settings.home), "sparql", "ASK { ?s ?p ?o }"]) == 2
        assert "cannot be reached" in capsys.readouterr().err
    finally:
        os.environ.pop("KB_GRAPH_URL", None)


def test_graph_files_of_an_earlier_version_move_into_the_store(corpus_kb, tmp_path):
    legacy = tmp_path / "graph"
    legacy.mkdir()
    for doc_id in corpus_kb.docs.ids():
        (legacy / f"{doc_id}.nt").write_text(corpus_kb.graph.document_graph(doc_id).serialize(format="nt"))
    graph = KnowledgeGraph(EmbeddedStore(tmp_path / "oxigraph"), corpus_kb.ontology, "v1", legacy=legacy)
    assert graph.passage_ids() == corpus_kb.graph.passage_ids()
    assert not legacy.exists()
    assert graph.query(QUERIES[1]) == corpus_kb.graph.query(QUERIES[1])


def test_another_process_holding_the_store_makes_a_reader_wait_then_succeed(corpus_kb, tmp_path):
    """RocksDB lets one process open a store at a time: a reader waits for the holder, and names it
    when it waits too long."""
    folder = tmp_path / "oxigraph"
    shutil.copytree(corpus_kb.settings.graph_path, folder)
    hold = ("import sys, time, pyoxigraph; s = pyoxigraph.Store(sys.argv[1]); print('held', flush=True); "
            "time.sleep(float(sys.argv[2]))")
    proc = subprocess.Popen([sys.executable, "-c", hold, str(folder), "1.5"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    t0 = time.monotonic()
    graph = KnowledgeGraph(EmbeddedStore(folder), corpus_kb.ontology, "")
    assert graph.passage_ids() == corpus_kb.graph.passage_ids()
    assert time.monotonic() - t0 > 0.5  # it waited for the other process
    proc.wait()
    proc = subprocess.Popen([sys.executable, "-c", hold, str(folder), "5"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    try:
        with pytest.raises(StoreBusy, match="stayed in use by another process"):
            KnowledgeGraph(EmbeddedStore(folder, wait=0.5), corpus_kb.ontology, "").passage_ids()
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_a_reader_keeps_answering_while_another_process_ingests(tmp_path):
    """`kb ingest` in one process, SPARQL, the catalogue and the keyword index read in another on the same
    KB_HOME: every query answers, and each sees whole documents only (a document's passages all there or none)."""
    from tests.test_reliability import run_kb, small_corpus

    home = tmp_path / "home"
    corpus = small_corpus(tmp_path / "docs")
    env = {**os.environ, "KB_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env.pop("KB_CHROMA_URL", None)
    writer = subprocess.Popen([sys.executable, "-m", "kb.ui.cli", "ingest", str(corpus)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    reader = KnowledgeBase(make_settings(home))
    per_doc = "SELECT ?id (COUNT(?p) AS ?n) WHERE { ?p dcterms:isPartOf ?d . ?d dcterms:identifier ?id } GROUP BY ?id"
    seen: list[dict[str, int]] = []
    listed: list[dict[str, int]] = []
    indexed: list[dict[str, int]] = []
    while writer.poll() is None:
        if home.exists():
            seen.append({r["id"]: int(r["n"]) for r in reader.graph.query(per_doc)["rows"]})
            listed.append({d.doc_id: d.passages for d in reader.documents()})
            indexed.append(reader.keyword.document_counts())
            for hit in reader.search("pooled budgets in Plymouth", k=3, mode="bm25").hits:
                assert hit.document.text[hit.passage.start:hit.passage.end] == hit.passage.text
        time.sleep(0.05)
    assert writer.returncode == 0, writer.stderr.read()
    final = {r["id"]: int(r["n"]) for r in reader.graph.query(per_doc)["rows"]}
    assert len(final) == 5 and len(seen) > 10
    assert any(0 < len(s) < 5 for s in seen), "the reader should have seen the ingestion part-way"
    for views in (seen, listed, indexed):  # whole documents only
        assert all(all(final[d] == n for d, n in s.items()) for s in views)
    assert {d.doc_id: d.passages for d in reader.documents()} == reader.keyword.document_counts() == final
    assert run_kb(home, "check").returncode == 0
