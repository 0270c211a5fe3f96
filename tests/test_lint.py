"""The answer lint on answers written here: each defect found, and a clean answer left clean."""

from __future__ import annotations

from dataclasses import dataclass

from kb.evals.lint import lint_answer, lint_counts, unexplained_acronyms


@dataclass
class Quote:
    quote: str
    start: int
    end: int
    doc_id: str = "d"


def answer_of(*quotes: Quote) -> tuple[str, list[Quote]]:
    return " ".join(f"{q.quote} [{n}]" for n, q in enumerate(quotes, 1)), list(quotes)


def test_a_clean_answer_has_no_defects():
    text, cites = answer_of(Quote("Partners in Barnet pooled £2m of their budgets for troubled families.", 0, 70),
                            Quote("This let the Clinical Commissioning Groups (CCGs) share the savings.", 71, 140))
    assert lint_answer(text, cites) == set()


def test_each_defect_is_found():
    cases = {
        "unbalanced": Quote("“The Enabler kept us to task, and we learnt a great deal.", 0, 60),
        "opener": Quote("This meant that partners could agree a shared purpose across the county.", 500, 570),
        "heading": Quote("Negotiating around differential costs and benefits", 0, 50),
        "list-fragment": Quote("20 Kent -", 0, 9),
        "glued": Quote("Systems leadership12 is practised across boundaries in every place we visited.", 0, 80),
        "cut": Quote("and the lack of horizontal integration of departments, each with competing agendas, means that", 0, 95),
        "acronym": Quote("The FIP pilot in Barnet showed better outcomes for the families involved.", 0, 72),
    }
    for defect, quote in cases.items():
        text, cites = answer_of(quote)
        assert defect in lint_answer(text, cites), defect
    text, cites = answer_of(cases["opener"], cases["opener"])
    assert "repeated" in lint_answer(text, cites)


def test_an_opener_that_follows_its_own_sentence_is_no_defect():
    first = Quote("Barnet pooled budgets across six services in 2012.", 100, 151)
    then = Quote("This meant that partners could agree a shared purpose.", 152, 206)
    text, cites = answer_of(first, then)
    assert "opener" not in lint_answer(text, cites)


def test_acronyms_spelt_out_known_or_roman_are_no_defect():
    assert unexplained_acronyms("Multi-disciplinary groups (MDGs) met in the NHS. Part II of the UK report.") == set()
    assert unexplained_acronyms("The MASH shared data with CCGs.") == {"MASH", "CCGs"}
    assert lint_counts([{"opener"}, {"opener", "glued"}, set()])["opener"] == 2
