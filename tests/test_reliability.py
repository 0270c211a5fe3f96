"""Killed runs, locks, many readers, a real Chroma server: nothing is lost or half-seen."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import traceback
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kb.knowledge import KnowledgeBase
from kb.records import SentenceRecord
from kb.stores.lock import ingest_lock
from tests.conftest import CORPUS, make_settings

KB = [sys.executable, "-m", "kb.ui.cli"]


def small_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(CORPUS / "001_a15a30531a4a38b1.txt", folder / "nhsla.txt")
    shutil.copy(CORPUS / "004_1305595735da07bd.txt", folder / "local-vision.txt")
    for i in range(3):
        body = "\n\n".join(
            f"Story {i}.{j}: partners in Plymouth pooled budgets and built trust across the system, "
            f"sharing a narrative about wicked issues and the authorising environment number {j}." for j in range(40))
        (folder / f"story-{i}.md").write_text(f"# Story {i}\n\n{body}\n", encoding="utf-8")
    return folder


def run_kb(home: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "KB_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env.pop("KB_CHROMA_URL", None)
    return subprocess.run([*KB, *args], env=env, capture_output=True, text=True, timeout=600, **kw)


def assert_consistent(home: Path) -> KnowledgeBase:
    kb = KnowledgeBase(make_settings(home))
    problems = kb.check()
    assert problems == [], problems
    ids = kb.store.ids()
    assert len(ids) == len(set(ids)) == len(kb.manifest.chunk_ids())
    assert set(ids) == kb.graph.passage_ids() == kb.manifest.chunk_ids() == kb.catalogue.chunk_ids()
    assert kb.keyword.document_counts() == {e.doc_id: len(e.chunk_ids) for e in kb.manifest.entries.values()}
    assert kb.catalogue.count() == len(ids) and kb.catalogue.link_counts() == kb.graph.link_counts()
    every = {d.doc_id for d in kb.documents()}
    for rows, cols in (("dimensions", "regions"), ("doc_id", "concepts")):  # the cells counted, as a query counts them
        assert kb.catalogue.cell_counts(rows, cols) == kb.catalogue.cell_counts(rows, cols, every)
    return kb


@pytest.mark.slow
def test_sigkill_at_random_points_loses_nothing(tmp_path):
    folder = small_corpus(tmp_path / "docs")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("KB_CHROMA_URL", None)
    # How long a whole run takes, so kills land all over it (model load, embedding, writes).
    t0 = time.monotonic()
    assert run_kb(tmp_path / "timing", "ingest", str(folder), "--quiet").returncode == 0
    full = time.monotonic() - t0
    rng = random.Random(7)
    trials = 6  # three from empty, three from a finished run with a file changed
    for trial in range(trials):
        home = tmp_path / f"home{trial}"
        if trial % 2:  # half the trials start from a finished run with one file changed
            assert run_kb(home, "ingest", str(folder), "--quiet").returncode == 0
            (folder / "story-0.md").write_text(f"# Story 0 changed {trial}\n\nPlymouth pooled budgets again, version {trial}.\n", encoding="utf-8")
        proc = subprocess.Popen([*KB, "ingest", str(folder), "--quiet"], env={**env, "KB_HOME": str(home)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.35, 1.0) * full)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        rerun = run_kb(home, "ingest", str(folder), "--quiet")
        assert rerun.returncode == 0, rerun.stderr
        kb = assert_consistent(home)
        assert sorted(kb.docs.ids()) == ["local-vision", "nhsla", "story-0", "story-1", "story-2"]


def test_check_reports_and_repairs_an_orphan(new_kb, tmp_path):
    kb = new_kb()
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Partners in Wigan built trust across organisations over many years.\n", encoding="utf-8")
    kb.ingest([folder], progress=False)
    # An interrupted run: passages in Chroma and the graph that the manifest never recorded.
    entry = next(iter(kb.manifest.entries.values()))
    del kb.manifest.entries[entry.path]
    kb.manifest.save()
    problems = kb.check()
    assert any("no finished ingestion recorded" in p for p in problems)
    kb.check(repair=True)
    assert kb.check() == []


def test_check_finds_missing_and_orphan_sentence_vectors_and_older_knowledge_bases(new_kb, tmp_path):

    kb = new_kb()
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Partners in Wigan built trust across organisations over many years. "
                                  "They pooled budgets for older people and measured what changed.\n", encoding="utf-8")
    assert kb.ingest([folder], progress=False).ok
    entry = next(iter(kb.manifest.entries.values()))
    assert entry.sentences == 2 and len(kb.store.sentence_ids()) == 2
    # Interrupted between the passages and their sentences: one sentence vector is missing,
    # and one belongs to no recorded passage.
    kb.store.delete_sentences(kb.store.sentence_ids()[:1])
    kb.store.upsert_sentences([SentenceRecord("gone:123", "gone", 0, 40)], kb.embedder.encode(["stray"]))
    problems = kb.check()
    assert f"{entry.path}: its passages or sentences are missing from Chroma or the graph (an interrupted run?)" in problems
    assert "1 sentence vector(s) in Chroma of passages that no finished ingestion recorded" in problems
    kb.check(repair=True)
    assert kb.check() == [] and len(kb.store.sentence_ids()) == 2
    # A knowledge base written before sentences were stored is upgraded by the next ingest.
    kb.manifest.entries[entry.path].sentences = None
    kb.manifest.save()
    kb.store.delete_sentences(kb.store.sentence_ids())
    assert any("without sentence vectors" in p for p in kb.check())
    report = kb.ingest([folder], progress=False)
    assert [r.status for r in report.results] == ["ingested"]
    assert kb.check() == [] and len(kb.store.sentence_ids()) == 2
    # One split by older chunking rules is split anew by the next ingest, and only that one.
    kb.manifest.entries[entry.path].chunker = 1
    kb.manifest.save()
    assert "1 document(s) split into passages by older chunking rules (`kb ingest` or --repair splits them anew)" in kb.check()
    assert [r.status for r in kb.ingest([folder], progress=False).results] == ["ingested"]
    assert [r.status for r in kb.ingest([folder], progress=False).results] == ["unchanged"]
    assert kb.check() == []


def test_a_document_is_added_replaced_and_removed_in_the_keyword_index_and_the_catalogue(new_kb, tmp_path):
    kb = new_kb()
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Partners in Wigan built trust across organisations over many years.\n", encoding="utf-8")
    (folder / "b.txt").write_text("The Quillfeather partnership pooled its budgets for older people.\n", encoding="utf-8")
    assert kb.ingest([folder], progress=False).ok
    before = kb.generation()
    assert [h.passage.doc_id for h in kb.search("Quillfeather", mode="bm25").hits] == ["b"]
    assert "quillfeather" in kb.retriever.vocabulary()
    (folder / "b.txt").write_text("The Marrowdale partnership pooled its budgets for older people.\n", encoding="utf-8")
    assert [r.status for r in kb.ingest([folder], progress=False).results] == ["unchanged", "ingested"]
    assert kb.generation() > before
    assert kb.search("Quillfeather", mode="bm25").hits == []
    assert [h.passage.doc_id for h in kb.search("Marrowdale", mode="bm25").hits] == ["b"]
    assert "quillfeather" not in kb.retriever.vocabulary() and "marrowdale" in kb.retriever.vocabulary()
    assert not kb.ask("What did Quillfeather pool?").answered  # a name no passage holds any more
    (folder / "b.txt").unlink()
    assert kb.ingest([folder], prune=True, progress=False).pruned
    assert kb.search("Marrowdale", mode="bm25").hits == [] and [d.doc_id for d in kb.documents()] == ["a"]
    assert kb.keyword.document_counts() == {"a": 1} and kb.counts() == (1, 1)
    # the counts kept as documents come and go are those of the passages left
    assert kb.catalogue.count() == 1 and kb.catalogue.link_counts() == kb.graph.link_counts() == Counter(
        c for p in kb.all_passages() for c in {*p.concepts, *p.places, *p.dimensions})


def test_check_finds_and_mends_a_document_missing_from_the_keyword_index_or_the_catalogue(new_kb, tmp_path):
    kb = new_kb()
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Partners in Wigan built trust across organisations over many years.\n", encoding="utf-8")
    (folder / "b.txt").write_text("The Quillfeather partnership pooled its budgets for older people.\n", encoding="utf-8")
    assert kb.ingest([folder], progress=False).ok
    kb.keyword.remove_document("b")  # a run killed between the graph and the keyword index
    kb.keyword.close()
    kb.catalogue.remove_document("a")  # ... and one killed between the keyword index and the catalogue
    assert kb.search("Quillfeather", mode="bm25").hits == []
    problems = kb.check()
    assert "2 document(s) missing from the keyword index or the catalogue, or held there in an older version: a, b" in problems
    kb.check(repair=True)
    assert kb.check() == []
    assert [h.passage.doc_id for h in kb.search("Quillfeather", mode="bm25").hits] == ["b"]
    assert sorted(d.doc_id for d in kb.documents()) == ["a", "b"]


def test_check_finds_and_mends_a_graph_that_links_a_document_otherwise_than_the_catalogue(new_kb, tmp_path):
    from dataclasses import replace

    kb = new_kb()
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "b.txt").write_text("Partners in Plymouth pooled their budgets and built trust across the system.\n",
                                  encoding="utf-8")
    assert kb.ingest([folder], progress=False).ok
    passages = kb.all_passages()
    assert any(p.places for p in passages)
    kb.graph.replace_document(kb.document("b"), [replace(p, concepts=[], places=[], dimensions=[]) for p in passages])
    assert "1 document(s) linked differently in the graph and the catalogue (`kb check --repair` ingests them again)" \
        in kb.check()
    kb.check(repair=True)
    assert kb.check() == [] and kb.graph.link_counts() == kb.catalogue.link_counts()


def test_a_knowledge_base_of_the_earlier_layout_moves_in(new_kb, tmp_path):
    """manifest.json and a whole-collection bm25/ folder, as earlier versions wrote them: the manifest moves
    into the catalogue on open, and the next ingestion fills the catalogue and keyword index from Chroma."""
    import json

    from kb.records import DocumentSummary

    kb = new_kb()
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "b.txt").write_text("The Quillfeather partnership pooled its budgets for older people.\n", encoding="utf-8")
    assert kb.ingest([folder], progress=False).ok
    home = kb.settings.home
    files = {path: e.__dict__ for path, e in kb.manifest.entries.items()}
    kb.keyword.close()
    shutil.rmtree(kb.settings.keyword_dir)
    for f in home.glob("catalogue.sqlite*"):
        f.unlink()
    (home / "manifest.json").write_text(json.dumps({"version": 1, "files": files}), encoding="utf-8")
    (home / "bm25").mkdir()
    old = KnowledgeBase(make_settings(home))
    assert list(old.manifest.entries) == list(files) and not (home / "manifest.json").exists()
    assert old.documents() == [] and any("missing from the keyword index" in p for p in old.check())
    assert [r.status for r in old.ingest([folder], progress=False).results] == ["unchanged"]
    assert old.check() == [] and not (home / "bm25").exists()
    assert [h.passage.doc_id for h in old.search("Quillfeather", mode="bm25").hits] == ["b"]
    assert isinstance(old.documents()[0], DocumentSummary) and old.documents()[0].passages == 1


def test_second_ingestion_is_refused_while_one_runs(tmp_path):
    home = tmp_path / "home"
    settings = make_settings(home)
    with ingest_lock(settings.lock_path):
        out = run_kb(home, "ingest", str(CORPUS / "004_1305595735da07bd.txt"), "--quiet")
    assert out.returncode == 2
    assert "another ingestion is writing to" in out.stderr and f"pid {os.getpid()}" in out.stderr


def test_eight_concurrent_searches(corpus_kb):
    questions = ["pooled budgets", "shared purpose", "Barnet troubled families", "integrated care pilot",
                 "authorising environment", "wicked issues", "Denmark", "Local Vision Cornwall"]
    expected = {q: [h.passage.chunk_id for h in corpus_kb.search(q, k=5).hits] for q in questions}
    reader = KnowledgeBase(corpus_kb.settings)  # a second reader on the same KB_HOME
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = dict(zip(questions, pool.map(lambda q: [h.passage.chunk_id for h in reader.search(q, k=5).hits], questions)))
    assert got == expected


def test_readers_during_an_ingestion_see_old_or_new_never_half(new_kb, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    old = "\n\n".join(f"Version one, part {i}: partners in Plymouth pooled budgets and built trust." for i in range(30))
    (folder / "story.md").write_text(f"# Story\n\n{old}\n", encoding="utf-8")
    writer = new_kb()
    assert writer.ingest([folder], progress=False).ok
    reader = KnowledgeBase(writer.settings)
    versions = {reader.docs.all()[0].text}
    stop, seen, errors = threading.Event(), [], []

    def read() -> None:
        while not stop.is_set():
            try:
                for h in reader.search("pooled budgets in Plymouth", k=5).hits:
                    seen.append((h.passage.start, h.passage.end, h.passage.text))
                for c in reader.ask("How did Plymouth pool budgets?").to_json()["citations"]:
                    seen.append((c["start"], c["end"], c["quote"]))
            except Exception:  # noqa: BLE001 - collected and reported below
                errors.append(traceback.format_exc())

    thread = threading.Thread(target=read)
    thread.start()
    while not seen and thread.is_alive():
        time.sleep(0.05)
    (folder / "story.md").write_text("# Story\n\n" + old.replace("Version one", "Version two") + "\n", encoding="utf-8")
    assert writer.ingest([folder], progress=False).ok
    versions.add(writer.docs.all()[0].text)
    deadline = time.monotonic() + 30
    while not any("Version two" in t for *_, t in seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    thread.join()
    assert errors == []
    # Every passage and every quote a reader got is exactly the old document's text or the new one's.
    assert all(any(v[start:end] == text for v in versions) for start, end, text in seen)
    assert any("Version one" in t for *_, t in seen) and any("Version two" in t for *_, t in seen)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    """A real `chroma run` server on loopback, from the project's own chromadb install."""
    exe = Path(sys.executable).parent / "chroma"
    if not exe.exists():
        pytest.skip("the chroma CLI is not installed")
    port = free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    proc = subprocess.Popen([str(exe), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("chroma server did not start")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.mark.server
def test_server_store_behaves_like_the_embedded_one(chroma_server, corpus_kb, tmp_path):
    kb = KnowledgeBase(make_settings(tmp_path / "server-home", chroma_url=chroma_server))
    assert kb.ingest(progress=False).ok
    assert kb.store.count() == corpus_kb.store.count()
    assert "fastapi" in kb.store.client.get_settings().chroma_api_impl.lower()  # really over HTTP
    assert corpus_kb.store.client.get_settings().is_persistent
    for q in ["How did others handle pooled budgets?", "What is an authorising environment?"]:
        a, b = kb.search(q, k=5).hits, corpus_kb.search(q, k=5).hits
        assert [h.passage.chunk_id for h in a] == [h.passage.chunk_id for h in b]
        # Fused scores are normalised over each list's candidates, whose tail two separately
        # built HNSW indexes may order differently: equal to within a hair, not to the bit.
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=0.01)
        assert kb.ask(q).to_json()["citations"] == corpus_kb.ask(q).to_json()["citations"]
    assert kb.check() == []


def test_a_small_admitted_set_is_scored_exactly_as_the_vector_index_would(corpus_kb):
    """Within one document the passages and sentences are scored from their stored vectors; the order
    and similarities are those of Chroma's own search over the same set."""
    store = corpus_kb.store
    ids = store.ids("vsc-synthesis-2013")
    question = corpus_kb.embedder.encode(["How did leaders build trust between partners?"])[0]
    exact = store.query(question, 10, ids=ids)
    graph = store.collection.query(query_embeddings=[question], n_results=10, ids=ids, include=["distances"])
    assert [p.chunk_id for p, _ in exact] == graph["ids"][0]
    assert [round(s, 4) for _, s in exact] == [round(1 - d, 4) for d in graph["distances"][0]]
    assert all(p.doc_id == "vsc-synthesis-2013" and p.text for p, _ in exact)
    sentences = store.query_sentences(question, 20, chunk_ids=ids)
    by_graph = store.sentences.query(query_embeddings=[question], n_results=20, where={"chunk_id": {"$in": ids}},
                                     include=["metadatas", "distances"])
    assert [(r.chunk_id, r.start) for r, _ in sentences] == [(m["chunk_id"], m["start"]) for m in by_graph["metadatas"][0]]
    assert sentences[0][1] == pytest.approx(1 - by_graph["distances"][0][0], abs=1e-4)
