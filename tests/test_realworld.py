"""Files nobody on the project made (tests/realworld, sources in its SOURCES.md), and the bad input users
bring: text as a reader sees it, the right page, the content deciding the format, and a batch that goes on."""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from ingest.pdf import load_pdf
from ingest.read import read_document
from kb.embed import model_words
from kb.evals.reading import page_of
from kb.records import Filters
from kb.ui.cli import main
from tests.conftest import make_settings, write_pdf

REAL = Path(__file__).parent / "realworld"


@pytest.fixture(scope="module")
def words() -> frozenset[str]:
    return model_words(make_settings(Path("/nonexistent")).model_path)


def test_running_headers_and_page_numbers_are_left_out(words):
    report, _ = read_document(REAL / "GeoBase_NHNC1_Data_Model_UML_EN.pdf", known_words=words)
    raw = "\n".join(p.text for p in load_pdf(REAL / "GeoBase_NHNC1_Data_Model_UML_EN.pdf").pages)
    assert raw.count("National Hydro Network, Data Model – Edition 1.0 2004-06") == 17
    assert "Data Model – Edition 1.0 2004-06" not in report.text
    assert "GeoBase® 8" not in report.text and "GeoBase® iv" not in report.text
    book, _ = read_document(REAL / "Seige_of_Vicksburg_Sample_OCR.pdf", known_words=words)
    assert "VICKSBUEG" not in book.text and "SIEGE" not in book.text  # OCR slips in the header too
    lorem, _ = read_document(REAL / "pdflatex-4-pages.pdf", known_words=words)
    for span in lorem.pages:  # the page number at each foot is gone, so no sentence ends "... no 1"
        assert not lorem.text[span.start:span.end].rstrip().endswith(str(span.page))


def test_table_rows_stay_rows_and_a_smudge_is_no_heading(words):
    report, _ = read_document(REAL / "GeoBase_NHNC1_Data_Model_UML_EN.pdf", known_words=words)
    blocks = {report.text[b.start:b.end]: b.kind for b in report.blocks}
    assert blocks["Date | Version | Description"] == "para"
    assert blocks["September 2002 | Draft 01 | First draft for discussion with Nova Scotia"] == "para"
    assert "LRM | Linear Reference Method" in blocks
    paper, _ = read_document(REAL / "multicolumn.pdf", known_words=words)
    assert "Austria | 8.9 | 83,879 | Vienna | German" in paper.text
    assert "Lorem ipsum dolor sit amet, consectetuer adipiscing elit. Ut purus elit," in paper.text  # prose is no table
    book, _ = read_document(REAL / "Seige_of_Vicksburg_Sample_OCR.pdf", known_words=words)
    assert not [b for b in book.blocks if b.kind == "heading"]  # not "SibieyTent. ble shape. A friend"


def test_ligatures_are_folded_and_broken_words_rejoined(words):
    crazy, _ = read_document(REAL / "crazyones.pdf", known_words=words)
    assert "misfits" in crazy.text and "differently" in crazy.text
    assert not any("\ufb00" <= c <= "\ufb06" for c in crazy.text)
    book, _ = read_document(REAL / "Seige_of_Vicksburg_Sample_OCR.pdf", known_words=words)
    for word in ("dangerous", "visitors"):
        assert word in book.text
    assert "dan-gerous" not in book.text and "to-day" in book.text  # the 1880s spelling keeps its hyphen
    notes, _ = read_document(REAL / "GeoTopo-komprimiert.pdf", known_words=words)
    assert "Hausdorffraum" in notes.text and "unterschiedlichem" in notes.text


def test_a_ligature_word_is_found_and_every_citation_names_the_page_its_quote_opens_on(new_kb):
    kb = new_kb()
    files = [REAL / n for n in ("crazyones.pdf", "Seige_of_Vicksburg_Sample_OCR.pdf", "GeoBase_NHNC1_Data_Model_UML_EN.pdf")]
    assert kb.ingest(files, progress=False).ok
    assert "misfits" in kb.search("misfits", mode="bm25").hits[0].passage.text  # found by the word itself
    answer = kb.ask("Who sees things differently?")
    assert answer.answered and any("differently" in c.quote for c in answer.citations)
    pages = {kb.manifest.entries[str(f.resolve())].doc_id: load_pdf(f).pages for f in files}
    questions = {"seige-of-vicksburg-sample-ocr": "How did the soldiers protect themselves from the sun?",
                 "geobase-nhnc1-data-model-uml-en": "What is the Linear Reference Method used for?"}
    checked = 0
    for doc_id, question in questions.items():
        got = kb.ask(question, filters=Filters(doc=doc_id))
        hits = kb.search(question, filters=Filters(doc=doc_id)).hits
        assert got.citations and hits
        for text, page in [(c.quote, c.page) for c in got.citations] + [(h.passage.text, h.passage.page) for h in hits]:
            assert page in page_of(text, pages[doc_id]), (doc_id, page, text[:80])
            checked += 1
    assert checked >= 8


def test_a_pdf_pypdf_cannot_parse_is_read_by_the_second_reader(words):
    doc, warnings = read_document(REAL / "unreadablemetadata.pdf", known_words=words)
    assert doc.meta.reader == "pdfminer.six" and "Rotary Potentiometer" in doc.text
    assert warnings == ["unreadablemetadata.pdf: read with pdfminer.six, as pypdf could not parse it"]
    assert doc.pages[0].page == 1


def test_the_content_decides_the_format(new_kb, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(REAL / "crazyones.pdf", folder / "crazy-notes.txt")  # a PDF named .txt
    (folder / "page.pdf").write_text("<!DOCTYPE html><html><head><title>Saved page</title></head><body>"
                                     "<p>Partners in Wigan pooled their budgets for early help.</p></body></html>",
                                     encoding="utf-8")  # a saved web page named .pdf
    report = new_kb().ingest([folder], progress=False)
    assert report.ok, report.to_json()
    assert any("crazy-notes.txt: named .txt but it is a PDF" in w for w in report.warnings)
    assert any("page.pdf: named .pdf but it is an HTML page" in w for w in report.warnings)
    kb = new_kb()
    texts = [kb.document(r.doc_id).text for r in report.having("ingested")]
    assert any("misfits" in t for t in texts) and not any("%PDF" in t or "obj" in t.split() for t in texts)
    assert any("Wigan pooled their budgets" in t and "<p>" not in t for t in texts)


def test_one_bad_file_never_stops_the_batch(tmp_path, capsys):
    folder = tmp_path / "batch"
    folder.mkdir()
    good = "# Story\n\nPartners in Plymouth pooled their budgets and built trust across the system.\n"
    (folder / "good.md").write_text(good, encoding="utf-8")
    bad_name = os.fsdecode(b"caf\xe9 notes.md")  # a name that is not UTF-8, as old archives have
    (folder / bad_name).write_text(good.replace("Plymouth", "Leeds"), encoding="utf-8")
    (folder / "empty.pdf").write_bytes(b"")
    (folder / "folder.pdf").mkdir()
    (folder / "loop.txt").symlink_to(folder / "loop.txt")
    shutil.copy(REAL / "libreoffice-writer-password.pdf", folder / "locked.pdf")
    (folder / "garbage.pdf").write_bytes(b"\x00\x01\x02 not a pdf at all " * 50)
    write_pdf(folder / "two-pages.pdf", ["Integrated care in Torbay joined health and social care.",
                                         "Trust grew through shared budgets and shared risks."])
    # One line on every page is the document itself, not a running header; a label alone is said to be so.
    write_pdf(folder / "leaflet.pdf", ["Partners in Bradford signed one plan for the whole district."] * 4)
    write_pdf(folder / "pictures.pdf", ["Background"] * 3 + [""] * 2)
    home = tmp_path / "kb"
    code = main(["--home", str(home), "ingest", str(folder), str(folder / "loop.txt"), str(folder / "folder.pdf"),
                 "--json", "--quiet"])
    out = capsys.readouterr()
    assert code == 1 and "Traceback" not in out.err + out.out
    got = json.loads(out.out)
    failed = {Path(f["path"]).name: f["reason"] for f in got["failed"]}
    assert failed["empty.pdf"].startswith("empty file")
    assert "needs a password" in failed["locked.pdf"]
    assert "not a readable PDF" in failed["garbage.pdf"]
    assert "symbolic link" in failed["loop.txt"]
    assert failed["pictures.pdf"] == ("too little text to search: only a heading or label (“Background”); "
                                     "if its pages are pictures, run OCR on it first")
    assert [Path(r["path"]).name for r in got["listed"]] == ["folder.pdf"]
    ingested = {Path(r["path"]).name for r in got["ingested"]}
    assert {"good.md", "two-pages.pdf", "caf\ufffd notes.md", "leaflet.pdf"} <= ingested
    code = main(["--home", str(home), "ask", "Which city pooled budgets, Leeds?", "--json"])
    assert code == 0 and "Leeds" in capsys.readouterr().out
    # A re-run finishes nothing twice: the good files are unchanged, the bad ones named again.
    assert main(["--home", str(home), "ingest", str(folder), "--json", "--quiet"]) == 1
    again = json.loads(capsys.readouterr().out)
    assert len(again["unchanged"]) == 4 and not again["ingested"]


FOOTNOTES = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
             '<w:footnotes xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
             '<w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote>'
             '<w:footnote w:id="1"><w:p><w:r><w:t>Wigan Council, The Deal 2030, 2019.</w:t></w:r></w:p></w:footnote>'
             '</w:footnotes>')


def test_a_word_document_keeps_its_headings_lists_tables_and_notes(new_kb, tmp_path):
    import docx

    word = docx.Document()
    word.core_properties.title = "The Wigan Deal: a review"
    word.core_properties.author = "Ann Writer; Bo Other"
    word.core_properties.created = __import__("datetime").datetime(2019, 5, 1)
    word.add_heading("How the deal began", 1)
    word.add_paragraph("The council and its residents agreed a new deal in 2011, and staff changed how they "
                       "worked with communities.")
    word.add_paragraph("Asset-based conversations with residents", style="List Bullet")
    word.add_paragraph("Permission for staff to innovate", style="List Bullet")
    table = word.add_table(rows=2, cols=2)
    for (r, c), text in {(0, 0): "Year", (0, 1): "Saving", (1, 0): "2018", (1, 1): "£160m"}.items():
        table.cell(r, c).text = text
    word.add_paragraph("After the table the story goes on: trust grew between partners.")
    word.save(tmp_path / "deal.docx")
    kb = new_kb()
    report = kb.ingest([tmp_path / "deal.docx"], progress=False)
    assert report.ok, report.to_json()
    doc = kb.document("deal")
    assert doc.meta.title == "The Wigan Deal: a review" and doc.meta.authors == ["Ann Writer", "Bo Other"]
    assert doc.meta.year == 2019 and doc.meta.reader == "python-docx" and doc.pages == []
    assert "- Asset-based conversations with residents\n- Permission for staff to innovate" in doc.text
    assert "Year | Saving\n\n2018 | £160m" in doc.text
    kinds = {doc.text[b.start:b.end]: b.kind for b in doc.blocks}
    assert kinds["How the deal began"] == "heading" and kinds["2018 | £160m"] == "para"
    with zipfile.ZipFile(tmp_path / "deal.docx", "a") as z:  # footnotes, as Word stores them
        z.writestr("word/footnotes.xml", FOOTNOTES)
    doc = read_document(tmp_path / "deal.docx")[0]
    assert doc.text.endswith("Notes\n\n1. Wigan Council, The Deal 2030, 2019.")
    answer = kb.ask("How much did Wigan save by 2018?")
    assert answer.answered and any("£160m" in c.quote for c in answer.citations)
    assert all(c.page is None for c in answer.citations)


def test_a_password_protected_word_file_is_named_as_such(tmp_path):
    from ingest.base import IngestError
    from ingest.sniff import OLE, sniff

    locked = tmp_path / "locked.docx"  # what Word writes for a password: an OLE container, not a ZIP
    locked.write_bytes(OLE + b"\x00" * 500 + "EncryptedPackage".encode("utf-16-le") + b"\x00" * 500)
    with pytest.raises(IngestError, match="password-protected Word"):
        sniff(locked)


LIBRARY = """@report{lorem2022,
  title = {Four Pages of {Lorem}},
  author = {Doe, Jane and {Blind Text Institute}},
  year = {2022},
  institution = {Blind Text Institute},
  doi = {10.1234/lorem.4},
  file = {Full Text PDF:files/1/lorem.pdf:application/pdf}
}

@book{broken,
  title = {No end
  author = {X}

@article{nofile2020, title={Only a Reference}, author={Smith, Ann}, year=2020, journal={Public Money}}

@article{gone2021, title={Missing File}, year=2021, file={Full Text:files/9/gone.pdf:application/pdf}}
"""


def test_a_reference_library_describes_its_attachments_and_names_what_is_wrong(tmp_path, capsys):
    (tmp_path / "files" / "1").mkdir(parents=True)
    shutil.copy(REAL / "pdflatex-4-pages.pdf", tmp_path / "files" / "1" / "lorem.pdf")
    (tmp_path / "library.bib").write_text(LIBRARY, encoding="utf-8")
    home = tmp_path / "kb"
    assert main(["--home", str(home), "ingest", str(tmp_path / "library.bib"), "--quiet"]) == 1
    out = capsys.readouterr()
    assert "ingested" in out.out and "→ lorem2022" in out.out
    assert re.search(r"19 passages written in \d+\.\d s \(\d+\.\d/s\)", out.out)
    assert "library.bib line 14 (nofile2020): no attachment" in out.out
    assert "library.bib line 10: malformed entry" in out.err
    assert "library.bib line 16 (gone2021): attachment 'files/9/gone.pdf' not found" in out.err
    assert main(["--home", str(home), "doc", "lorem2022", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["title"] == "Four Pages of Lorem" and doc["authors"] == ["Jane Doe", "Blind Text Institute"]
    assert (doc["year"], doc["type"], doc["doi"]) == (2022, "report", "10.1234/lorem.4")
    assert main(["--home", str(home), "cite", "lorem2022", "--format", "ris"]) == 0
    assert capsys.readouterr().out.splitlines()[:4] == ["TY  - RPRT", "ID  - lorem2022", "TI  - Four Pages of Lorem",
                                                        "AU  - Jane Doe"]
    assert main(["--home", str(home), "ask", "What does this blind text show?", "--references", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["citations"] and got["references"] == [
        "Doe, J. and Blind Text Institute (2022) Four Pages of Lorem. Blind Text Institute. "
        "Available at: https://doi.org/10.1234/lorem.4."]
    assert main(["--home", str(home), "cite", "--question", "What does this blind text show?", "--format", "bibtex"]) == 0
    bib = capsys.readouterr().out
    assert bib.startswith("@techreport{lorem2022,") and "author = {Doe, Jane and {Blind Text Institute}}" in bib


def test_a_csl_json_library_is_read_too(tmp_path):
    from ingest.library import read_library

    (tmp_path / "a.pdf").write_bytes((REAL / "crazyones.pdf").read_bytes())
    (tmp_path / "lib.json").write_text(json.dumps([
        {"id": "Crazy-1998", "type": "webpage", "title": "The Crazy Ones", "author": [{"family": "Clow", "given": "Lee"}],
         "issued": {"date-parts": [[1998, 10]]}, "URL": "https://example.org", "file": "a.pdf"},
        {"id": "x", "type": "book"}]), encoding="utf-8")
    library = read_library(tmp_path / "lib.json", "csl-json")
    (entry,) = library.entries
    assert entry.facts["authors"] == ["Lee Clow"] and entry.facts["year"] == 1998 and entry.facts["type"] == "web-page"
    assert entry.attachments == [(tmp_path / "a.pdf").resolve()] and entry.facts["id"] == "crazy-1998"
    assert library.problems == [("item 2", "no title: fix it and ingest the library again")]


def test_a_pdf_made_here_with_running_headers_footers_and_broken_words(new_kb, tmp_path):
    bodies = [
        "The council asked its resi-\ndents what mattered to them and changed how staff worked with\n"
        "communities across the borough.",
        "Shared decision-\nmaking with the voluntary sector grew through a new partner-\nship board "
        "that met every month.",
        "Budgets for early help were pooled in 2016, and the savings were used to keep libra-\nries open.",
        "Staff were given permission to innovate, and the results were published for every ward.",
    ]
    pages = [f"Wigan Deal evaluation - interim report 2019\n\n{body}\n\nPage {n} of 4"
             for n, body in enumerate(bodies, 1)]
    write_pdf(tmp_path / "deal.pdf", pages, title="Wigan Deal evaluation")
    kb = new_kb()
    assert kb.ingest([tmp_path / "deal.pdf"], progress=False).ok
    doc = kb.document("deal")
    assert "interim report" not in doc.text and "of 4" not in doc.text
    assert "residents what mattered" in doc.text and "partnership board" in doc.text and "libraries open" in doc.text
    assert "Shared decision-making" in doc.text
    answer = kb.ask("What were the pooled early help budgets used for?")
    (cited,) = {c.page for c in answer.citations if "libraries" in c.quote}
    assert cited == 3 and cited in page_of("Budgets for early help were pooled", load_pdf(tmp_path / "deal.pdf").pages)


def write_two_columns(path: Path, columns: list[tuple[str, str]]) -> Path:
    """A PDF whose pages hold two columns of prose drawn line by line across the page (left line, right
    line, …), as some writers draw them, under a title as wide as the page."""
    import textwrap

    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    for n, (left, right) in enumerate(columns, 1):
        c.drawString(50, 810, f"Working together across the borough: a case study, part {n} of {len(columns)}")
        lefts, rights = textwrap.wrap(left, 42), textwrap.wrap(right, 42)
        for i in range(max(len(lefts), len(rights))):
            if i < len(lefts):
                c.drawString(50, 780 - 14 * i, lefts[i])
            if i < len(rights):
                c.drawString(310, 780 - 14 * i, rights[i])
        c.showPage()
    c.save()
    return path


def test_two_columns_drawn_line_by_line_are_read_column_by_column(new_kb, tmp_path):
    left = ("The council asked its residents what mattered to them and changed how staff worked with families. "
            "Early help teams were brought together in each district, and social workers joined them at the front "
            "door of every children's centre in the borough.")
    right = ("Funding came from a pooled budget held by the health board and the council together. It paid for the "
             "new teams and for the training that every member of staff received in their first year.")
    path = write_two_columns(tmp_path / "columns.pdf", [(left, right), (right.replace("first", "second"), left)])
    from pypdf import PdfReader

    assert "what\nFunding came" in PdfReader(path).pages[0].extract_text()  # how the page runs, line by line
    kb = new_kb()
    assert kb.ingest([path], progress=False).ok
    text = kb.document("columns").text
    assert "changed how staff worked with families. Early help teams were brought together" in text
    assert text.index("front door of every children") < text.index("Funding came from a pooled budget")
    answer = kb.ask("What did the pooled budget pay for?")
    quotes = [c for c in answer.citations if "paid for the new teams" in c.quote]
    assert quotes, answer.text
    for c in answer.citations:
        assert c.quote == text[c.start:c.end]
        assert c.page in page_of(c.quote[:40], load_pdf(path).pages)
    # Columns that already run one after the other are left as they read (a LaTeX paper of two columns).
    paper, _ = read_document(REAL / "multicolumn.pdf")
    assert "Nam dui ligula, fringilla a, euismod sodales, sollicitudin vel, wisi." in paper.text


def test_files_that_vanish_or_change_during_the_run_are_named_and_the_rest_goes_on(new_kb, tmp_path, monkeypatch):
    import kb.index

    folder = tmp_path / "moving"
    folder.mkdir()
    for name, place in (("a.md", "Barnet"), ("b.md", "Bradford"), ("c.md", "Croydon"), ("d.md", "Dudley")):
        (folder / name).write_text(f"# {place}\n\nPartners in {place} agreed one plan for the place.\n", encoding="utf-8")
    real_read = kb.index.read_document

    def read_while_someone_saves(path, *args, **kwargs):
        """The reading of c.md overlaps a colleague saving a new version of it."""
        got = real_read(path, *args, **kwargs)
        if path.name == "c.md":
            with path.open("a", encoding="utf-8") as f:
                f.write("A later paragraph, saved while it was read.\n")
        return got

    def on_progress(name: str, n: int, total: int) -> None:
        if name == "a.md":
            (folder / "b.md").unlink()  # deleted by someone else after the batch was listed

    monkeypatch.setattr(kb.index, "read_document", read_while_someone_saves)
    base = new_kb()
    report = base.ingest([folder], progress=False, on_progress=on_progress)
    failed = {Path(r.path).name: r.reason for r in report.failed}
    assert failed == {"b.md": "cannot read the file: No such file or directory",
                      "c.md": "the file changed while it was being read: ingest it again once it is saved"}
    assert sorted(base.docs.ids()) == ["a", "d"]
    monkeypatch.setattr(kb.index, "read_document", real_read)
    again = base.ingest([folder], progress=False)
    assert again.ok and [Path(r.path).name for r in again.having("ingested")] == ["c.md"]
    assert "saved while it was read" in base.document("c").text and base.check() == []
