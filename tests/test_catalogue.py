"""The catalogue's evidence-map cells, counted as documents come and go, agree with a query over the passages."""

from __future__ import annotations

from collections import Counter
from itertools import product

from kb.records import DocumentSummary, Passage
from kb.stores.catalogue import FIELDS, Catalogue

REGIONS = {"barnet": "london", "camden": "london", "london": "london", "bradford": "yorkshire"}


def passage(doc_id: str, i: int, places: list[str], concepts: list[str] = (), dimensions: list[str] = ()) -> Passage:
    return Passage(chunk_id=f"{doc_id}:{i}", doc_id=doc_id, text=f"Passage {i} of {doc_id}.", start=100 * i,
                   end=100 * i + 20, page=None, index=i, places=list(places), concepts=list(concepts),
                   dimensions=list(dimensions))


def put(catalogue: Catalogue, doc_id: str, passages: list[Passage]) -> None:
    catalogue.put_document(DocumentSummary(doc_id=doc_id, title=doc_id.title(), authors=[], year=2013, type="text",
                                           path=f"{doc_id}.txt", pages=0, passages=len(passages)), "sha", passages)


def queried(catalogue: Catalogue, rows: str, cols: str) -> Counter:
    """The cells as the query over every document's passages counts them (the filtered map's path)."""
    return catalogue.cell_counts(rows, cols, {d.doc_id for d in catalogue.documents()})


def test_cells_are_counted_as_documents_come_and_go(tmp_path):
    catalogue = Catalogue(tmp_path / "catalogue.sqlite", regions=lambda: REGIONS)
    put(catalogue, "a", [passage("a", 0, ["barnet", "camden"], ["pooled-budgets"], ["relating"]),
                         passage("a", 1, ["bradford"], ["pooled-budgets", "trust"], ["relating", "doing"])])
    put(catalogue, "b", [passage("b", 0, ["london"], ["trust"], ["doing"])])
    # A passage naming two London boroughs counts once for London.
    assert catalogue.cell_counts("dimensions", "regions") == Counter(
        {("relating", "london"): 1, ("relating", "yorkshire"): 1, ("doing", "yorkshire"): 1, ("doing", "london"): 1})
    assert catalogue.cell_counts("doc_id", "concepts") == Counter(
        {("a", "pooled-budgets"): 2, ("a", "trust"): 1, ("b", "trust"): 1})
    put(catalogue, "a", [passage("a", 0, ["camden"], ["trust"], ["being"])])  # a new version of a
    catalogue.remove_document("b")
    assert catalogue.cell_counts("dimensions", "regions") == Counter({("being", "london"): 1})
    for rows, cols in product(FIELDS, repeat=2):
        assert catalogue.cell_counts(rows, cols) == queried(catalogue, rows, cols), (rows, cols)
    assert [p.chunk_id for p in catalogue.cell_passages("dimensions", "being", "regions", "london")] == ["a:0"]


def test_cells_are_counted_again_when_the_regions_change(tmp_path):
    path = tmp_path / "catalogue.sqlite"
    put(Catalogue(path, regions=lambda: REGIONS), "a", [passage("a", 0, ["bradford"], dimensions=["relating"])])
    moved = {**REGIONS, "bradford": "west-yorkshire"}
    reopened = Catalogue(path, regions=lambda: moved)
    assert reopened.cell_counts("dimensions", "regions") == Counter({("relating", "west-yorkshire"): 1})
    assert queried(reopened, "dimensions", "regions") == Counter({("relating", "west-yorkshire"): 1})
    reopened.remove_document("a")
    assert reopened.cell_counts("dimensions", "regions") == Counter()


def test_the_words_held_include_headings_and_are_counted_again_in_an_older_catalogue(tmp_path):
    path = tmp_path / "catalogue.sqlite"
    catalogue = Catalogue(path, regions=lambda: REGIONS)
    signed = passage("a", 0, [])
    signed.heading = "Mark Rogers"  # a name on a line of its own, read as the heading of what follows
    put(catalogue, "a", [signed])
    assert catalogue.known({"rogers", "passage", "quillfeather"}) == {"rogers", "passage"}
    with catalogue.db.write() as c:  # as a catalogue that counted only titles and passages left it
        c.execute("DELETE FROM texts WHERE key = 'words'")
        c.execute("DELETE FROM words WHERE word = 'rogers'")
    assert Catalogue(path, regions=lambda: REGIONS).known({"rogers"}) == {"rogers"}


def test_the_words_held_include_a_documents_year_authors_and_words_glued_to_footnote_marks(tmp_path):
    catalogue = Catalogue(tmp_path / "catalogue.sqlite", regions=lambda: REGIONS)
    glued = passage("a", 0, [])
    glued.text = "The latest figures reported by DCLG9 show 66,000 families."
    catalogue.put_document(DocumentSummary(doc_id="a", title="Systems leadership", authors=["Debbie Sorkin"],
                                           year=2014, type="text", path="a.txt", pages=0, passages=1,
                                           publisher="NHS Leadership Academy"), "sha", [glued])
    assert catalogue.known({"2014", "sorkin", "academy", "dclg", "dclg9", "2015"}) == {
        "2014", "sorkin", "academy", "dclg", "dclg9"}
    catalogue.remove_document("a")  # taken away as they were added
    assert catalogue.known({"2014", "sorkin", "dclg"}) == set()
