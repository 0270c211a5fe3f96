"""Ingestion end to end with the real model, Chroma and PDFs made here."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from ingest.chunk import sentences
from kb.config import PROJECT_ROOT
from tests.conftest import CORPUS, write_pdf

PDF_PAGES = [
    "\n".join(f"Page P{page}X sentence {i} says that partners in Barnet pooled budgets for families." for i in range(25))
    for page in range(1, 5)
]


def test_pdf_pages_and_offsets_are_exact(new_kb, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    write_pdf(folder / "Four Pages.pdf", PDF_PAGES, title="A four page test", author="Ann Author; Bo Writer")
    kb = new_kb()
    report = kb.ingest([folder], progress=False)
    assert report.ok, report.to_json()
    doc = kb.document("four-pages")
    assert doc.meta.title == "A four page test"
    assert doc.meta.authors == ["Ann Author", "Bo Writer"]
    assert [p.page for p in doc.pages] == [1, 2, 3, 4]
    for span in doc.pages:
        assert f"P{span.page}X" in doc.text[span.start:span.end]
        assert f"P{span.page + 1}X" not in doc.text[span.start:span.end]
    passages = kb.store.passages(where={"doc_id": "four-pages"})
    assert len(passages) >= 4
    for p in passages:
        assert doc.text[p.start:p.end] == p.text
        first = doc.text[sentences(doc.text, p.start, p.end)[0].start:]
        assert first.startswith(f"Page P{p.page}X"), (p.page, p.text[:60])
    assert {p.page for p in passages} == {1, 2, 3, 4}


def test_no_passage_is_cut_by_the_model(corpus_kb):
    tok = corpus_kb.embedder.tokenizer
    limit = corpus_kb.embedder.max_seq_length
    titles = {d.doc_id: d.title for d in corpus_kb.documents()}
    for p in corpus_kb.all_passages():
        n = len(tok(p.embed_text(titles[p.doc_id]))["input_ids"])
        assert n <= limit, (p.chunk_id, n)


def test_every_passage_is_its_documents_text(corpus_kb):
    docs = {d.meta.doc_id: d for d in corpus_kb.docs.all()}
    passages = corpus_kb.store.all_passages()
    assert len(passages) > 400
    for p in passages:
        assert docs[p.doc_id].text[p.start:p.end] == p.text
        assert docs[p.doc_id].page_at(p.start) == p.page


@pytest.mark.parametrize("name,doc_id", [
    ("000_85f1eb98beeee9b7.txt", "vsc-synthesis-2013"),
    ("002_5713823b5a9f34a7.txt", "vsc-leadership-scenarios-2013"),
    ("003_5baac20d41169007.txt", "revolution-improvised-2-2015"),
])
def test_seed_pages_match_their_markers(corpus_kb, name, doc_id):
    raw = (CORPUS / name).read_text(encoding="utf-8")
    markers = [line for line in raw.splitlines() if re.match(r"^ \S", line)]
    doc = corpus_kb.document(doc_id)
    assert len(doc.pages) == len(markers)
    for page, line in enumerate(markers, 1):
        words = " ".join(line.split()[:4])
        span = doc.pages[page - 1]
        found = doc.text.find(words.lstrip("•−- "), span.start)
        assert found == span.start or doc.text[span.start:found].strip() in ("", "-"), (page, words)
        assert doc.page_at(found) == page


def test_known_page_openings(corpus_kb):
    doc = corpus_kb.document("vsc-synthesis-2013")
    at = doc.text.index("What is systems leadership?\n\nConcepts and definitions")
    assert doc.page_at(at) == 3
    scen = corpus_kb.document("vsc-leadership-scenarios-2013")
    assert scen.page_at(scen.text.index("1. Introduction")) == 1
    rev = corpus_kb.document("revolution-improvised-2-2015")
    assert rev.text.startswith("But transforming services is hard.")
    assert rev.pages[0].page == 1


def test_web_pages_have_no_pages(corpus_kb):
    info = corpus_kb.document_info("nhsla-systems-leadership-2014").to_json()
    assert info["pages"] == []
    hits = corpus_kb.search("Better Care Fund Care Bill Health and Wellbeing Boards", k=3, mode="bm25").hits
    assert hits[0].passage.doc_id == "nhsla-systems-leadership-2014" and hits[0].passage.page is None


def test_reingest_is_incremental_replaces_and_prunes(new_kb, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(CORPUS / "004_1305595735da07bd.txt", folder / "local-vision.txt")
    (folder / "notes.md").write_text("# Pooled budgets in Barnet\n\nBarnet pooled budgets with the police and health partners.\n", encoding="utf-8")
    kb = new_kb()
    first = kb.ingest([folder], progress=False)
    ids_before = set(kb.store.ids())
    assert len(first.having("ingested")) == 2 and kb.document("notes").meta.title == "Pooled budgets in Barnet"

    again = kb.ingest([folder], progress=False)
    assert len(again.having("unchanged")) == 2 and not again.having("ingested")
    assert set(kb.store.ids()) == ids_before and len(kb.store.ids()) == len(ids_before)

    (folder / "notes.md").write_text("# Pooled budgets in Bradford\n\nBradford's Total Place pilot mapped public spending across agencies.\n", encoding="utf-8")
    changed = kb.ingest([folder], progress=False)
    assert [r.doc_id for r in changed.having("ingested")] == ["notes"]
    notes = kb.store.passages(where={"doc_id": "notes"})
    assert len(notes) == 1 and "Total Place" in notes[0].text
    assert not any("police" in p.text for p in kb.store.all_passages())
    assert kb.search("Total Place spending map", k=1).hits[0].passage.doc_id == "notes"

    (folder / "notes.md").unlink()
    pruned = kb.ingest([folder], prune=True, progress=False)
    assert pruned.pruned == [str((folder / "notes.md").resolve())]
    assert kb.store.passages(where={"doc_id": "notes"}) == []
    assert kb.document("notes") is None
    assert "notes" not in kb.graph.document_ids()
    assert all(p.doc_id != "notes" for p in kb.all_passages())


def test_bad_files_are_reported_by_name_and_the_rest_ingests(new_kb, tmp_path, capsys):
    from kb.ui.cli import main

    folder = tmp_path / "mixed"
    folder.mkdir()
    write_pdf(folder / "good.pdf", ["Good PDF text about the authorising environment in Cornwall."])
    (folder / "good.txt").write_text("Plain text about wicked issues in Plymouth and shared narrative.\n", encoding="utf-8")
    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage\n%%EOF")
    write_pdf(folder / "locked.pdf", ["Secret text"], encrypt_password="s3cret")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 8)
    write_pdf(folder / "scanned.pdf", [""])
    home = tmp_path / "home"
    code = main(["--home", str(home), "ingest", str(folder), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    expected = {
        "corrupt.pdf": "not a readable PDF",
        "locked.pdf": "encrypted PDF: it needs a password",
        "empty.txt": "empty file",
        "binary.txt": "binary data, not text",
        "scanned.pdf": "probably a scanned PDF",
    }
    for name, reason in expected.items():
        line = next((l for l in err.splitlines() if l.startswith("FAILED") and name in l), "")
        assert reason in line, (name, err)
    assert "5 file(s) could not be ingested" in err
    from kb.knowledge import KnowledgeBase
    from tests.conftest import make_settings

    kb = KnowledgeBase(make_settings(home))
    ids = kb.docs.ids()
    assert len(ids) == 2 and all(i.startswith("good") for i in ids)
    assert kb.search("authorising environment Cornwall", k=1).hits[0].passage.doc_id.startswith("good")


def test_duplicate_content_under_two_names_is_noticed(new_kb, tmp_path):
    folder = tmp_path / "twins"
    folder.mkdir()
    text = "Community Budgets in Barnet let partners pool and save across the public sector.\n"
    (folder / "a.txt").write_text(text, encoding="utf-8")
    (folder / "b copy.txt").write_text(text, encoding="utf-8")
    report = new_kb().ingest([folder], progress=False)
    assert len(report.having("ingested")) == 1
    dup = report.having("duplicate")[0]
    assert dup.path.endswith("b copy.txt") and "same content as" in dup.reason and "a.txt" in dup.reason


def test_user_file_metadata_from_the_file_itself(new_kb, tmp_path):
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "Café Notes – Årsrapport.html").write_text(
        "<html><head><title>Place leadership notes</title><script>var x = 'never indexed';</script></head>"
        "<body><nav>Home | About</nav><h1>Leading in Denmark</h1><p>Municipalities in Denmark integrate services.</p>"
        "<ul><li>First point about trust</li><li>Second point about power</li></ul></body></html>",
        encoding="utf-8")
    kb = new_kb()
    assert kb.ingest([folder], progress=False).ok
    doc = kb.document("cafe-notes-arsrapport")
    assert doc.meta.title == "Place leadership notes" and doc.meta.type == "web-page"
    assert "never indexed" not in doc.text and "Home | About" not in doc.text
    assert "Leading in Denmark\n\nMunicipalities in Denmark integrate services." in doc.text
    assert "- First point about trust\n- Second point about power" in doc.text


def test_shipped_corpus_carries_its_sources_metadata(corpus_kb):
    docs = {d.doc_id: d.to_json() for d in corpus_kb.documents()}
    assert set(docs) == {"vsc-synthesis-2013", "nhsla-systems-leadership-2014", "vsc-leadership-scenarios-2013",
                         "revolution-improvised-2-2015", "leadership-centre-local-vision"}
    assert docs["vsc-synthesis-2013"]["authors"] == ["Deborah Ghate", "Jane Lewis", "David Welbourn"]
    assert docs["vsc-synthesis-2013"]["pages"] == 54 and docs["vsc-synthesis-2013"]["type"] == "research-report"
    assert (PROJECT_ROOT / "corpus" / "sources.yaml").exists()


def test_more_bad_inputs_and_odd_names(new_kb, tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    write_pdf(folder / "whole.pdf", ["First page on pooled budgets in Bradford.", "Second page on Total Place."])
    data = (folder / "whole.pdf").read_bytes()
    (folder / "truncated.pdf").write_bytes(data[: len(data) // 2])
    (folder / "latin1.txt").write_bytes("Leaders in Calderdale met at the café to agree a shared narrative.\n".encode("latin-1"))
    (folder / "report .. v2 ü ß.txt").write_text("Partners in Wirral tackled food poverty together.\n", encoding="utf-8")
    with (folder / "huge.txt").open("wb") as f:  # 21 MB: above the 20 MB default limit
        line = b"A very long report about systems leadership and wicked issues.\n"
        for _ in range(21_000_000 // len(line) + 1):
            f.write(line)
    (folder / "sources.yaml").write_text(
        "- file: latin1.txt\n  id: calderdale-note\n  year: twenty-twelve\n"
        "- file: whole.pdf\n  id: bradford-pdf\n  title: Bradford notes\n  year: 2010\n", encoding="utf-8")
    kb = new_kb()
    report = kb.ingest([folder], progress=False)
    failed = {Path(r.path).name: r.reason for r in report.failed}
    assert set(failed) == {"truncated.pdf", "huge.txt"}
    assert "not a readable PDF" in failed["truncated.pdf"]
    assert failed["huge.txt"].startswith("too large: 21.0 MB, above the 20 MB limit")
    assert any("sources.yaml: entry 1 ignored: year 'twenty-twelve' is not a four-digit year" in w for w in report.warnings)
    assert len(kb.docs.ids()) == 3 and "bradford-pdf" in kb.docs.ids()
    latin = kb.document("latin1")
    assert "the café to agree" in latin.text
    assert kb.document("bradford-pdf").meta.title == "Bradford notes"
    odd = next(d for d in kb.docs.all() if d.meta.doc_id not in ("bradford-pdf", "latin1"))
    assert "food poverty" in odd.text and ".." not in odd.meta.doc_id and "/" not in odd.meta.doc_id


def test_corrected_facts_are_taken_up_although_the_file_is_unchanged(new_kb, tmp_path):
    """A user fixes a title or a year in sources.yaml (or in the reference library): the next ingest
    describes the document anew, everywhere it is shown, and the one after leaves it alone."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "note.txt").write_text("Partners in Wigan agreed a shared narrative about wicked issues.\n", encoding="utf-8")
    facts = "- file: note.txt\n  id: wigan-note\n  title: {title}\n  year: {year}\n"
    (folder / "sources.yaml").write_text(facts.format(title="Wigan nots", year=2011), encoding="utf-8")
    kb = new_kb()
    assert kb.ingest([folder], progress=False).ok
    (folder / "sources.yaml").write_text(facts.format(title="Wigan notes", year=2012), encoding="utf-8")
    report = kb.ingest([folder], progress=False)
    assert [(r.status, r.doc_id) for r in report.results] == [("ingested", "wigan-note")]
    (summary,) = kb.documents()
    assert (summary.title, summary.year) == ("Wigan notes", 2012)
    assert kb.graph.query("SELECT ?t WHERE { ?d dcterms:identifier 'wigan-note' ; dcterms:title ?t }")["rows"] == [
        {"t": "Wigan notes"}]
    assert kb.ask("What did partners in Wigan agree?").citations[0].title == "Wigan notes"
    assert [r.status for r in kb.ingest([folder], progress=False).results] == ["unchanged"]
