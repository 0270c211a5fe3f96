"""The Streamlit app, driven page by page with ``streamlit.testing.v1.AppTest``.

Read-only tests use the session's ingested corpus (``corpus_kb``); the upload tests use a small
knowledge base of their own so that nothing they add leaks into other tests. Expected figures
are computed independently of the app: from ``kb.ask``, the documents' page maps and SPARQL
over the knowledge graph.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from kb.ui import uploads, views
from kb.config import PROJECT_ROOT
from kb.knowledge import KnowledgeBase
from tests.conftest import make_settings, write_pdf

APP = str(PROJECT_ROOT / "app.py")
POOLED = "How did others handle pooled budgets?"


def unescape(md: str) -> str:
    return re.sub(r"\\(.)", r"\1", md)


def texts(at) -> str:
    """Everything the page shows as text, Markdown escapes removed."""
    parts = [e.value for kind in ("title", "header", "subheader", "markdown", "caption", "code", "text",
                                 "success", "error", "warning", "info") for e in getattr(at, kind)]
    return unescape("\n".join(str(p) for p in parts))


def start(monkeypatch, home: Path):
    from streamlit.testing.v1 import AppTest

    for name in ("KB_LLM", "KB_RERANKER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KB_HOME", str(home))
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    return at


def goto(at, page: str, **state):
    for k, v in state.items():
        at.session_state[k] = v
    at.session_state["goto"] = page
    at.run()
    assert not at.exception, at.exception
    return at


def ask(at, question: str):
    at.text_input(key="question").set_value(question).run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def app(corpus_kb, monkeypatch):
    return start(monkeypatch, corpus_kb.settings.home)


# -- Ask --------------------------------------------------------------------------------------------
def test_ask_cites_the_right_title_and_page(app, corpus_kb):
    expected = corpus_kb.ask(POOLED)
    assert expected.answered and expected.citations
    ask(app, POOLED)
    refs = [c.value for c in app.code]
    shown = texts(app)
    assert "[1]" in shown
    for c in expected.citations:
        doc = corpus_kb.document(c.doc_id)
        page = doc.page_at(c.start)          # the page the quote starts on, from the page map
        assert c.page == page
        ref = views.citation_reference(c, doc.meta.publisher)
        assert doc.meta.title in ref and (page is None or ref.endswith(f", p. {page}"))
        assert any(ref in r.splitlines() for r in refs), (ref, refs)
    # one card per passage cited, headed by its citation numbers; the passage shows once, each quote in bold
    for src in views.sources(expected.citations):
        assert f"{src.numbers} {src.citations[0].title}" in shown
        bold = [all(f"**{views.md_escape(c.quote)}**" in m.value for c in src.citations) for m in app.markdown]
        assert sum(bold) == 1, src.numbers
    # the answer downloads as Markdown with the references
    download = app.get("download_button")
    assert download and "Download answer with references" in download[0].proto.label
    md = views.answer_markdown(expected)
    assert "## References" in md and expected.citations[0].title in md


def test_a_place_filter_changes_the_sources(app, corpus_kb):
    ask(app, POOLED)
    before = app.session_state["_answer"][1]
    place = corpus_kb.ontology.resolve("Bradford", "places")
    assert place is not None
    app.selectbox(key="f_place").set_value(place.label).run()
    assert not app.exception
    after = app.session_state["_answer"][1]
    assert after.passages
    within = corpus_kb.ontology.narrower_closure(place.id)
    assert all(within.intersection(h.passage.places) for h in after.passages)
    assert [h.passage.chunk_id for h in after.passages] != [h.passage.chunk_id for h in before.passages]
    assert f"place {place.label}" in texts(app)


def test_a_tag_opens_its_concept_in_browse(app, corpus_kb):
    ask(app, POOLED)
    answer = app.session_state["_answer"][1]
    cited = {c.chunk_id for c in answer.citations}
    passage = next(h.passage for h in answer.passages if h.passage.chunk_id in cited and h.passage.concepts)
    cid = passage.concepts[0]
    n = next(c.n for c in answer.citations if c.chunk_id == passage.chunk_id)
    app.button(key=f"tag-c{n}-concept-{cid}-b").click().run()
    assert not app.exception
    assert [h.value for h in app.title] == ["Browse concepts, dimensions and places"]
    assert corpus_kb.ontology.label(cid) in [h.value for h in app.header]


# -- Browse ------------------------------------------------------------------------------------------
def test_a_concept_page_shows_its_passages(app, corpus_kb):
    concept = corpus_kb.ontology.resolve("pooled budgets", "concepts")
    assert concept is not None
    expected = corpus_kb.graph.passages_for(concept.uri)   # SPARQL, skos:broader* for narrower ones
    assert expected
    goto(app, "browse", browse_scheme="Concepts", browse_concept=concept.id)
    shown = texts(app)
    assert concept.label in [h.value for h in app.header]
    assert f"{len(expected)} passages evidence {concept.label}" in shown
    if concept.definition:
        assert " ".join(concept.definition.split()) in shown
    titles = {corpus_kb.title(cid.split(":")[0]) for cid in expected}
    assert any(t in shown for t in titles)
    # the tree lists the scheme with passage counts
    tree = app.dataframe[0].value
    assert concept.label in " ".join(tree["entry"])


# -- Evidence map -----------------------------------------------------------------------------------
CELLS = """
SELECT ?d ?pl (COUNT(DISTINCT ?p) AS ?n) WHERE {
  ?p slo:evidencesDimension ?d ; slo:aboutPlace ?pl .
} GROUP BY ?d ?pl ORDER BY DESC(?n) ?d ?pl"""


def test_the_evidence_map_counts_match_the_graph(app, corpus_kb):
    onto = corpus_kb.ontology
    by_uri = {c.uri: c.id for c in onto.concepts.values()}
    roots = {c.id for c in onto.roots("dimensions")}
    rows = [r for r in corpus_kb.graph.query(CELLS)["rows"] if by_uri[r["d"]] in roots]  # not the facets
    assert rows
    dim, place, n = by_uri[rows[0]["d"]], by_uri[rows[0]["pl"]], int(rows[0]["n"])
    goto(app, "evidence")  # bubbles by region, first
    charts = app.get("vega_lite_chart")
    assert charts and '"circle"' in charts[0].proto.spec and "South West" in charts[0].proto.spec
    goto(app, "evidence", em_cols="place", em_shape="Table")
    table = app.dataframe[0].value
    assert table.loc[onto.label(dim), onto.label(place)] == n
    # a place without any evidence is an empty column, not zeros
    linked = {by_uri[r["pl"]] for r in rows}
    gap = next((c for c in onto.in_scheme("places") if c.id not in linked and c.label in table.columns), None)
    if gap is not None:
        assert table[gap.label].isna().all()
    assert table.isna().any().any(), "gaps should show as empty cells"
    # choosing the cell lists its passages
    app.selectbox(key="em_row").set_value(dim)
    app.selectbox(key="em_col").set_value(place).run()
    assert not app.exception
    assert f"{n} passages: {onto.label(dim)} × {onto.label(place)}" in texts(app)


def test_the_evidence_map_has_a_row_for_every_facet(corpus_kb):
    """Facet × place: which places have evidence of humility, of ceding power, ... and where the gaps are."""
    onto, passages = corpus_kb.ontology, corpus_kb.all_passages()
    cells = corpus_kb.evidence_cells(views.axis_source("facet"), views.axis_source("place"))
    table = views.evidence_table(cells, "facet", "place", onto, corpus_kb.documents())
    facets = [c for c in onto.in_scheme("dimensions") if c.broader]
    assert sorted(table.index) == sorted(c.label for c in facets)
    expected = Counter((d, pl) for p in passages for d in p.dimensions for pl in p.places)
    (facet, place), n = next(((d, pl), n) for (d, pl), n in expected.most_common() if d in {c.id for c in facets})
    assert table.loc[onto.label(facet), onto.label(place)] == n
    assert table.isna().any().any(), "gaps should show as empty cells"


def test_the_evidence_map_groups_places_by_region_and_draws_bubbles_for_evidence_only(corpus_kb):
    onto, passages = corpus_kb.ontology, corpus_kb.all_passages()
    region = onto.regions()
    assert (region["barnet"], region["bradford"], region["plymouth"], region["kent"]) == (
        "london", "yorkshire-and-the-humber", "south-west", "south-east")
    by_region = views.axis_source("dimension"), views.axis_source("region")
    table = views.evidence_table(corpus_kb.evidence_cells(*by_region), "dimension", "region", onto, corpus_kb.documents())
    assert {"London", "South West", "Yorkshire and the Humber"} <= set(table.columns)
    assert "Barnet" not in table.columns and len(table.columns) < 30
    # a Barnet passage counts in London's column
    barnet = [p for p in passages if "barnet" in p.places]
    dim = next(d for p in barnet for d in p.dimensions)
    london = [p for p in passages if dim in p.dimensions and {region.get(x, x) for x in p.places} & {"london"}]
    assert table.loc[onto.label(dim), "London"] == len(london)
    points = views.bubbles(table)
    assert len(points) == int(table.notna().sum().sum()) and (points["passages"] > 0).all()
    assert set(points["col_key"]) <= set(table.attrs["col_keys"])
    # a cell's passages: what was found before how the study was done
    cell = views.findings_first(corpus_kb.cell_passages(by_region[0], dim, by_region[1], "london"))
    methods = [bool(views.METHOD.search(p.text[:300])) for p in cell]
    assert methods == sorted(methods) and len(cell) == len(london)


def test_the_evidence_map_filters_by_document_year_and_type(app, corpus_kb):
    docs = corpus_kb.documents()
    pages = {d.doc_id for d in docs if d.type == "web-page"}
    assert 0 < len(pages) < len(docs)
    goto(app, "evidence", em_cols="document", em_shape="Table")
    app.multiselect(key="em_types").select("web-page").run()
    assert not app.exception
    table = app.dataframe[0].value
    assert sorted(table.columns) == sorted(d.title for d in docs if d.doc_id in pages)
    kept = [p for p in corpus_kb.all_passages() if p.doc_id in pages]
    assert f"Counting {len(pages)} of {len(docs)} documents ({len(kept)} passages)." in texts(app)
    roots = {c.id for c in corpus_kb.ontology.roots("dimensions")}
    (top, n), = Counter(d for p in kept for d in p.dimensions if d in roots).most_common(1)
    assert table.loc[corpus_kb.ontology.label(top)].sum() == n  # each passage in its document's column
    # a range of years holding one document's year only
    app.multiselect(key="em_types").unselect("web-page").run()
    first = min(d.year for d in docs if d.year is not None)
    app.slider(key="em_years").set_range(first, first).run()
    assert not app.exception
    same = [d for d in docs if d.year == first]
    assert sorted(app.dataframe[0].value.columns) == sorted(d.title for d in same)
    app.slider(key="em_years").set_range(first, max(d.year for d in docs if d.year)).run()
    # documents chosen by name
    chosen = docs[0]
    app.multiselect(key="em_docs").select(chosen.doc_id).run()
    assert list(app.dataframe[0].value.columns) == [chosen.title]
    app.multiselect(key="em_docs").unselect(chosen.doc_id).run()


def test_a_graph_server_that_is_down_stops_no_reader_and_is_said_on_upload(small_home, monkeypatch, tmp_path):
    monkeypatch.setenv("KB_GRAPH_URL", "http://127.0.0.1:9")  # nothing listens there
    at = start(monkeypatch, small_home.settings.home)
    goto(at, "browse")  # reading needs the catalogue, not the graph
    assert not at.exception and "1 documents · " in texts(at)
    goto(at, "library")
    at.file_uploader(key="upload").set_value(("note.md", b"# Pooled budgets\n\nBarnet pooled its budgets.\n",
                                              "text/markdown")).run()
    shown = texts(at)
    assert not at.exception
    assert "the SPARQL server at http://127.0.0.1:9 cannot be reached" in shown
    assert "note.md is saved: upload it again to add it." in shown


def test_every_page_renders(app, corpus_kb):
    onto = corpus_kb.ontology
    goto(app, "places")
    assert not app.get("deck_gl_json_chart") and not app.get("map"), "a tiled map fetches tiles off the machine"
    (chart,) = app.get("vega_lite_chart")
    spec = json.loads(chart.proto.spec)
    layers = {layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in spec["layer"]}
    assert layers == {"geoshape", "circle"}  # the basemap drawn from shipped borders, and the places on it
    assert '"url"' not in chart.proto.spec  # no data (tiles, borders) fetched from anywhere
    assert any("passages about" in s.value for s in app.subheader)
    with_initiatives = sorted({p for i in onto.initiatives.values() for p in i.places if p in onto.concepts})
    if with_initiatives:
        place = with_initiatives[0]
        app.selectbox(key="place").set_value(place).run()
        assert not app.exception
        expected = views.initiatives_for(onto, place)
        assert f"Initiatives ({len(expected)})" in [s.value for s in app.subheader]
        assert expected[0].label in texts(app)
        within = onto.narrower_closure(place)
        n = sum(1 for p in corpus_kb.store.all_passages() if within.intersection(p.places))
        assert any(s.value.startswith(f"{n} passages about {onto.label(place)}") for s in app.subheader)
    goto(app, "browse", browse_scheme="Places", browse_concept=onto.resolve("Bradford", "places").id)
    assert "Bradford" in [h.value for h in app.header]
    goto(app, "library")
    titles = set(app.dataframe[0].value["title"])
    assert {d.title for d in corpus_kb.documents()} <= titles
    goto(app, "evaluation")
    assert any(b.label == "Run evaluation" for b in app.button)
    assert {f"Committed results (evals/{n})" for n in ("RESULTS.md", "HELDOUT.md", "FRESH.md")} <= {e.label for e in app.expander}
    assert {"Held-out (evals/heldout.jsonl)", "Fresh (evals/fresh.jsonl)", "Fourth (evals/fourth.jsonl)"} <= set(app.radio(key="eval_source").options)


# -- Library: uploads ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_home(tmp_path_factory):
    """A knowledge base with one short document, for tests that add to it."""
    root = tmp_path_factory.mktemp("app-upload")
    seed = root / "seed"
    seed.mkdir()
    (seed / "harbour-notes.txt").write_text(
        "Notes from the harbour board\n\nThe harbour board met in spring to agree the dredging timetable. "
        "Members reviewed tide tables, the condition of the north quay and the fishing fleet's needs.\n\n"
        "The board agreed to repaint the lighthouse and to publish the minutes online.\n", encoding="utf-8")
    kb = KnowledgeBase(make_settings(root / "home"))
    assert kb.ingest([seed], progress=False).ok
    return kb


def test_an_uploaded_pdf_is_searchable_at_once(small_home, monkeypatch, tmp_path):
    pdf = write_pdf(tmp_path / "q.pdf", [
        "Quillfeather Valley Partnership Review\nIntroduction to the review of the partnership.",
        "The Quillfeather Valley partnership pooled its health and housing budgets\n"
        "into one shared fund, so that the river towns could commission services together.\n"
        "Pooling the budgets took two years of negotiation between the councils.",
    ], title="Quillfeather Valley Partnership Review", author="Ada Lovelace")
    at = start(monkeypatch, small_home.settings.home)
    goto(at, "library")
    at.file_uploader(key="upload").set_value(("../../Quillfeather review ü.pdf", pdf.read_bytes(), "application/pdf")).run()
    assert not at.exception, at.exception
    shown = texts(at)
    assert "searchable now" in shown, shown
    uploads = small_home.settings.uploads_dir
    assert (uploads / "Quillfeather review ü.pdf").exists()
    assert not list(small_home.settings.home.parent.glob("*.pdf"))
    assert "Quillfeather Valley Partnership Review" in set(at.dataframe[0].value["title"]) or \
        "Quillfeather Valley Partnership Review" in {d.title for d in small_home.documents()}
    goto(at, "ask")
    ask(at, "How did the Quillfeather Valley partnership pool its budgets?")
    refs = [line for c in at.code for line in c.value.splitlines()]  # a card's quotes may start on two pages
    assert any(r == "Ada Lovelace (n.d.) Quillfeather Valley Partnership Review, p. 2" or
               re.fullmatch(r"Ada Lovelace \((\d{4}|n\.d\.)\) Quillfeather Valley Partnership Review, p\. 2", r)
               for r in refs), refs


def test_a_corrupt_upload_gets_the_cli_error_and_nothing_breaks(small_home, monkeypatch, tmp_path, capsys):
    from kb.ui.cli import main as cli

    bad = b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\nthis is not really a PDF\n%%EOF"
    probe = tmp_path / "broken.pdf"
    probe.write_bytes(bad)
    assert cli(["--home", str(tmp_path / "cli-home"), "ingest", "--quiet", str(probe)]) == 1
    err = capsys.readouterr().err
    cli_reason = re.search(r"FAILED\s+\S+: (.+)", err).group(1).strip()

    at = start(monkeypatch, small_home.settings.home)
    goto(at, "library")
    before = set(at.dataframe[0].value["title"])
    at.file_uploader(key="upload").set_value(("broken.pdf", bad, "application/pdf")).run()
    assert not at.exception, at.exception
    assert at.error, "no error shown"
    assert cli_reason in unescape(at.error[0].value)
    assert "kb: 1 file(s) could not be ingested." in "\n".join(c.value for c in at.code)
    assert not (small_home.settings.uploads_dir / "broken.pdf").exists()
    # the rest still works: the library is unchanged and questions are answered
    at.file_uploader(key="upload").set_value(None).run()
    assert set(at.dataframe[0].value["title"]) == before
    goto(at, "ask")
    ask(at, "When did the harbour board agree the dredging timetable?")
    assert any("Notes from the harbour board" in c.value or "harbour" in c.value for c in at.code), [c.value for c in at.code]


# -- the pure helpers ----------------------------------------------------------------------------------
def test_upload_names_are_sanitised_and_kept_inside_uploads(tmp_path):
    assert uploads.safe_filename("../../etc/passwd.txt") == "passwd.txt"
    assert uploads.safe_filename("..\\..\\evil.pdf") == "evil.pdf"
    assert uploads.safe_filename("a\x00b\x1f..c.md") == "ab.c.md"
    assert uploads.safe_filename("Ünïcødé résumé 東京.pdf") == "Ünïcødé résumé 東京.pdf"
    assert uploads.safe_filename("..") == "upload"
    long = uploads.safe_filename("x" * 500 + ".html")
    assert long.endswith(".html") and len(long) <= uploads.MAX_NAME_CHARS
    root = tmp_path / "uploads"
    p = uploads.save_upload("../../../../tmp/owned.txt", b"hello", root, 1)
    assert p.parent == root.resolve() and p.name == "owned.txt"
    assert uploads.save_upload("owned.txt", b"hello", root, 1) == p          # same content: same file
    assert uploads.save_upload("owned.txt", b"other", root, 1).name == "owned-1.txt"
    with pytest.raises(uploads.UploadError, match="upload limit"):
        uploads.save_upload("big.txt", b"x" * (1024 * 1024 + 1), root, 1)
    with pytest.raises(uploads.UploadError, match="unsupported file type"):
        uploads.save_upload("tool.exe", b"MZ", root, 1)


def test_corpus_text_is_inert_markdown():
    hostile = "<script>alert(1)</script> **bold** [link](javascript:x) $x$ :red[red]"
    md = views.md_escape(hostile)
    assert "<" not in md.replace("\\<", "") and ">" not in md.replace("\\>", "")
    assert unescape(md) == hostile
    assert views.quoted_runs("0123456789", 2, 8, [(4, 6)]) == [("23", False), ("45", True), ("67", False)]
    assert views.emphasised_markdown([("a <b>", False), ("quote", True), ("c", False)]) == "a \\<b\\> **quote** c"
    assert views.reference(["A. One", "B. Two", "C. Three"], 2013, "Title", 4) == "A. One, B. Two and C. Three (2013) Title, p. 4"
    assert views.reference([], None, "Web page", None, "The Leadership Centre") == "The Leadership Centre (n.d.) Web page"


def test_citations_of_one_passage_are_one_source():
    from kb.records import Citation

    def cite(n, chunk, page, start, end):
        return Citation(n, chunk, "doc", "Title", page, "quote", start, end)

    cs = [cite(1, "doc:3", 12, 40, 50), cite(2, "doc:3", 13, 70, 80), cite(3, "doc:5", 14, 200, 230), cite(4, "doc:3", 13, 90, 95)]
    groups = views.sources(cs)
    assert [(g.chunk_id, g.numbers, g.pages) for g in groups] == [
        ("doc:3", "[1] [2] [4]", "pp. 12, 13"), ("doc:5", "[3]", "p. 14")]
    text = "".join(chr(ord("a") + i % 26) for i in range(120))
    runs = views.quoted_runs(text, 30, 100, [(g.start, g.end) for g in groups[0].citations] + [(75, 85)])
    assert [(r, q) for r, q in runs if q] == [(text[40:50], True), (text[70:85], True), (text[90:95], True)]
    assert "".join(r for r, _ in runs) == text[30:100]
    # a quote running past its passage widens the window; long context is trimmed at the ends only
    assert "".join(r for r, _ in views.quoted_runs(text, 30, 100, [(95, 110)])) == text[30:110]
    md = views.emphasised_markdown([("x " * 400, False), ("one", True), (" y " * 10, False), ("two", True), ("z " * 400, False)])
    assert md.startswith("…x") and md.endswith("z…") and "**one** y y y y y y y y y y **two**" in md


# -- first start and evaluation ------------------------------------------------------------------------
def test_an_empty_knowledge_base_ingests_its_corpus_first(monkeypatch, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "river-notes.txt").write_text(
        "River trust notes\n\nThe river trust and the council agreed to share one budget for flood defences, "
        "so that the towns along the river could plan their work together.\n", encoding="utf-8")
    monkeypatch.setenv("KB_CORPUS", str(corpus))
    at = start(monkeypatch, tmp_path / "home")
    status = at.get("status")
    assert [s.label for s in status] == ["Ingested 1 documents"]
    assert "ingested" in "\n".join(c.value for c in at.code)
    assert any("1 documents" in c.value for c in at.sidebar.caption)
    ask(at, "Who agreed to share one budget for flood defences?")
    assert any(c.value.startswith("n.a. (n.d.) River trust notes") for c in at.code), [c.value for c in at.code]


def test_evaluation_runs_on_an_uploaded_gold_set_and_bad_gold_is_reported(small_home, monkeypatch):
    gold = {"id": "h1", "question": "When did the harbour board agree the dredging timetable?",
            "evidence": [{"doc_id": "harbour-notes", "quote": "The harbour board met in spring to agree the dredging timetable."}]}
    import json as _json

    at = start(monkeypatch, small_home.settings.home)
    goto(at, "evaluation")
    at.radio(key="eval_source").set_value("Upload a JSONL file").run()
    at.checkbox(key="eval_baseline").uncheck().run()
    at.file_uploader(key="eval_gold").set_value(("gold ../x.jsonl", b'{"question": 3}\n', "application/json")).run()
    next(b for b in at.button if b.label == "Run evaluation").click().run()
    assert not at.exception, at.exception
    assert at.error and "The evaluation failed" in unescape(at.error[0].value) and "line 1" in unescape(at.error[0].value)
    at.file_uploader(key="eval_gold").set_value(("gold.jsonl", _json.dumps(gold).encode(), "application/json")).run()
    next(b for b in at.button if b.label == "Run evaluation").click().run()
    assert not at.exception, at.exception
    assert (small_home.settings.home / "eval" / "report.json").exists()
    assert any("Latest report" in s.value for s in at.subheader)
    modes = set(at.dataframe[0].value["mode"])
    assert len(modes) >= 2
    # The report as a page: the answers' measures by their plain names, explained, run controls first.
    measures = dict(zip(at.dataframe[1].value["measure"], at.dataframe[1].value["value"]))
    assert measures["quote exactness"] == 1.0 and measures["page accuracy"] == 1.0
    assert "What the measures mean" in {e.label for e in at.expander}
    assert [s.value for s in at.subheader][:2] == ["Run the evaluation", f"Latest report ({small_home.settings.home / 'eval'})"]
