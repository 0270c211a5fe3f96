"""What an answer may quote and how it reads: whole thoughts, question parts, clean display."""

from __future__ import annotations

import pytest

from kb.evals.lint import lint_answer
from kb.records import Citation, Document, DocumentMeta, Hit, Passage
from kb.search.question import parts
from kb.search.quotes import (candidates, defined_acronyms, merged, readable, spell_out, stands_alone,
                              unbalanced)


def hit_on(text: str, doc_id: str = "d") -> Hit:
    doc = Document(meta=DocumentMeta(doc_id=doc_id, title="T"), text=text)
    passage = Passage(chunk_id=f"{doc_id}:1", doc_id=doc_id, text=text, start=0, end=len(text), page=None)
    return Hit(passage=passage, rank=1, score=1.0, document=doc)


def quotes_of(text: str) -> dict[str, str]:
    """Each candidate's core sentence → the quote built around it."""
    return {c.core_text: c.text for c in candidates([hit_on(text)])}


def test_a_pointer_brings_the_sentence_it_points_back_to():
    text = ("Leaders in Wigan agreed to pool their budgets for older people. This meant giving up some control. "
            "So, for example, the council ran the pooled fund on behalf of all partners.")
    quotes = quotes_of(text)
    assert quotes["This meant giving up some control."] == (
        "Leaders in Wigan agreed to pool their budgets for older people. This meant giving up some control.")
    # A connective brings the sentence before too, and that one its own antecedent.
    assert quotes["So, for example, the council ran the pooled fund on behalf of all partners."] == text


def test_a_pointer_after_a_heading_is_not_quoted_but_a_connective_is():
    text = "Pooled budgets\n\nThis meant giving up some control over the money."
    assert "This meant giving up some control over the money." not in quotes_of(text)
    text = "Pooled budgets\n\nSo, for example, the council ran the pooled fund for all partners."
    assert quotes_of(text) == {"So, for example, the council ran the pooled fund for all partners.":
                               "So, for example, the council ran the pooled fund for all partners."}


def test_a_chain_of_pointers_brings_every_sentence_it_leans_on():
    text = ("Barnet’s council and police met monthly for a year. From this group a new sub-group was formed and new "
            "champions of the work were created. At one of these meetings the director arranged for families to "
            "attend the group.")
    assert quotes_of(text)["At one of these meetings the director arranged for families to attend the group."] == text


def test_a_chain_too_long_to_quote_leaves_a_connective_on_its_own():
    reason = "In systems leadership, this is a sign of the quality of the relationship " + "and its fitness " * 40 + "for change."
    danish = "And in the case study from Denmark, strong prior relationships allowed leaders to face up to conflict."
    quotes = quotes_of("Relationships mattered most. " + reason + " " + danish)
    assert quotes[danish] == danish


def test_existential_there_and_it_are_not_pointers():
    text = ("Relationships are reviewed in the synthesis paper. Pooling was discussed by all partners. "
            "There has been no willingness to pool budgets and in some cases distinct opposition to attempting this.")
    last = "There has been no willingness to pool budgets and in some cases distinct opposition to attempting this."
    assert quotes_of(text)[last] == last
    assert quotes_of("Heading\n\nIt is clear that the leaders in every place valued the time to reflect.")


def test_a_line_leading_into_a_quotation_brings_it():
    lead = ("Ronald Heifetz uses the metaphor of ‘getting on the balcony’ to observe the ‘people on the dance floor’, "
            "arguing that a leader must get some distance:")
    quotation = "“The only way you can gain a clearer view of reality is by distancing yourself from the fray.4”"
    text = f"{lead}\n\n{quotation}\n\nOther writers agree with him on the point."
    assert quotes_of(text)[lead] == f"{lead}\n\n{quotation}"
    assert lead not in quotes_of(f"{lead}\n\nBalcony and dance floor")  # a colon with nothing quotable after it


def test_entries_run_into_a_sentence_are_not_unbalanced_brackets():
    text = ("Systems leadership can be characterised by two distinct attributes. It is i) collaborative and "
            "ii) crosses boundaries – organisational, professional and virtual.")
    assert not unbalanced(text)
    assert unbalanced("the impetus was an urgent need (Source Paper 3.")
    assert not unbalanced("the impetus was an urgent need (Source Paper 3).")
    assert quotes_of(text)["It is i) collaborative and ii) crosses boundaries – organisational, professional and virtual."] == text


def test_a_numbered_list_is_quoted_whole_with_the_sentences_its_lead_points_to():
    text = ("First, the director addressed a meeting of the scrutiny panel to gain corporate support. "
            "He painted a stark picture of the coming years. He described a ‘perfect storm’ of:\n\n"
            "1. increasing population demand for services:\n\n"
            "2. a reduction in public spending of 25% over the next 3 years\n\n"
            "3. a lack of confidence in current social care approaches")
    (quote,) = {c.text for c in candidates([hit_on(text)]) if "\n" in c.text}  # the list, and its lead bringing it
    assert quote == text
    assert readable(quote).endswith("of: increasing population demand for services; a reduction in public spending "
                                    "of 25% over the next 3 years; a lack of confidence in current social care approaches")


def test_a_quotation_is_quoted_from_its_opening_mark_to_its_closing_one():
    text = ("One leader said: “I’ve never met a good leader who wasn’t charismatic! (but) … I’ve seen very quiet, "
            "humble charisma.” Others agreed with the point made here.")
    quotes = quotes_of(text)
    whole = "One leader said: “I’ve never met a good leader who wasn’t charismatic! (but) … I’ve seen very quiet, humble charisma.”"
    assert quotes["One leader said: “I’ve never met a good leader who wasn’t charismatic!"] == whole
    assert all(not unbalanced(q) for q in quotes.values())


def test_the_end_of_one_quotation_and_the_start_of_the_next_are_not_a_quotation():
    assert unbalanced("might look like.” Similarly, the Enabler noted: “The project took time to start.")
    assert not unbalanced("He said: “It worked.” She said: “It did.”")
    text = ("“No-one had thought about ceding leadership.” Similarly, in Calderdale, the Enabler in the place noted:"
            "\n\n“The project took time to start. Partners met for a year before anything changed.”")
    assert all(not unbalanced(q) for q in quotes_of(text).values())


def test_a_contrast_stays_with_its_sentence():
    text = ("The partners agreed a shared outcomes framework early on. However, the police never pooled any money "
            "because their budgets were set in London.")
    quotes = quotes_of(text)
    assert quotes["The partners agreed a shared outcomes framework early on."].endswith("set in London.")


@pytest.mark.parametrize("text", [
    "Chief Executive, Solihull Metropolitan Borough Council &",   # a label
    "Children’s Services, Bradford Metropolitan District Council.",  # a label with a full stop
    "What is systems leadership: what lies at its heart, conceptually and in practice?",  # the document's question
    "Total Place | £8.1bn | three themes | 2009",                 # a table row
    "together to develop a shared narrative and agreed purpose.",  # begun mid-sentence
    "Distilling ‘systems leadership’: executive summary",          # a heading
])
def test_what_does_not_stand_alone_is_never_quoted(text):
    assert not stands_alone(text)


def test_a_sentence_stands_alone():
    assert stands_alone("Experiential learning was the most powerful form of individual development.")
    assert stands_alone("- Leaders in Kent worked with the clinical commissioning groups on dementia.")


def test_a_list_is_quoted_whole_with_the_line_that_leads_into_it():
    text = ("The group oversees the national programme.\n\nChaired by:\n\n- Martin Reeves, Chief Executive, Coventry "
            "City Council\n- John Wilderspin, Managing Director, NHS Central Southern Commissioning Support Unit\n\n"
            "Related pages")
    (unit,) = [c for c in candidates([hit_on(text)]) if c.text.startswith("Chaired by:")]
    assert text[unit.start:unit.end] == unit.text and unit.text.endswith("Support Unit")
    shown = readable(unit.text)
    assert shown == ("Chaired by: Martin Reeves, Chief Executive, Coventry City Council; John Wilderspin, Managing "
                     "Director, NHS Central Southern Commissioning Support Unit")
    citation = Citation.of(1, "d:1", unit.hit.document, unit.start, unit.end)
    assert lint_answer(f"{shown} [1]", [citation]) == set()


def test_a_list_of_lists_or_one_led_into_before_its_passage_is_not_quoted_whole():
    nested = "The case study drew on:\n- key documents\n- interviews with leaders in Bradford:\n- the council"
    assert not [c for c in candidates([hit_on(nested)]) if "\n" in c.text]
    text = "Members include:\n- the council\n- the police\n- the NHS trust"
    hit = hit_on(text)
    hit.passage.end = text.index("\n- the NHS")  # the passage ends inside the list: it is quoted to its end
    assert {c.text for c in candidates([hit]) if "\n" in c.text} == {text}
    hit.passage.start = text.index("- the police")  # the line leading into it lies before the passage
    assert not [c for c in candidates([hit]) if "\n" in c.text]


def test_a_sentence_of_a_quotation_too_long_to_quote_whole_is_quoted_without_its_marks():
    opening = "“(We) tried to tackle it financially at first – and that gives you a way in – but it got us nowhere. "
    middle = "It is a simple proposition that " + "if we share budgets and work together " * 15 + "we gain. "
    last = "Police budgeting is managed by the Met at London-wide level, so borough commanders stay out of it.”"
    quotes = quotes_of(opening + middle + last)
    assert quotes[last] == last[:-1]  # without the closing mark, so its marks pair up


def test_the_reader_sees_no_footnote_marks_links_or_cross_references():
    quote = ("The Virtual Staff College (VSC)1 commissioned it, as Moore29 argued (Source Paper 3), see "
             "https://www.gov.uk/pool-and-save. In 2012 the COVID-19 plan had 25 steps.”19")
    assert readable(quote) == ("The Virtual Staff College (VSC) commissioned it, as Moore argued, see. "
                               "In 2012 the COVID-19 plan had 25 steps.”")


def test_acronyms_are_spelt_out_once_from_the_documents_own_definitions():
    glossary = defined_acronyms("They met in regular multi-disciplinary group (MDG) meetings with the "
                                "Clinical Commissioning Groups (CCGs) and the Multi-Agency Safeguarding Hub (MASH).")
    assert glossary == {"MDG": "multi-disciplinary group", "CCG": "Clinical Commissioning Groups",
                        "MASH": "Multi-Agency Safeguarding Hub"}
    assert spell_out("The MDG met the CCGs and the NHS; the MDG agreed. [1]", glossary) == (
        "The MDG [multi-disciplinary group] met the CCGs [Clinical Commissioning Groups] and the NHS; the MDG agreed. [1]")


def test_quotes_that_touch_are_joined_into_one_exact_quote():
    text = "First sentence is about pooled budgets. Second sentence says who paid for them in the end."
    first, second = candidates([hit_on(text)])
    (joined,) = merged([second, first])
    assert (joined.start, joined.end) == (0, len(text)) and joined.text == text


@pytest.mark.parametrize("question, expected", [
    ("What helped Bradford's Total Place work, and what slowed it down?",
     [("what", "What helped Bradford's Total Place work?"), ("what", "what slowed it down?")]),
    ("How were the costs and savings of the North West London pilot shared, and who paid for set-up?",
     [("how", "How were the costs and savings of the North West London pilot shared?"),
      ("funding", "who paid for set-up?")]),
    ("In North Carolina's early childhood initiative, how did leaders persuade community members to get involved?",
     [("how", "In North Carolina's early childhood initiative, how did leaders persuade community members to get "
              "involved?")]),
    ("What does VUCA stand for, and why is it used?", [("definition", "What does VUCA stand for?"),
                                                        ("why", "why is it used?")]),
    ("Did any place create a pooled budget?", [("whether", "Did any place create a pooled budget?")]),
])
def test_a_question_is_read_as_its_parts(question, expected):
    assert [(p.kind, p.text) for p in parts(question)] == expected


def test_the_lint_reads_the_answer_as_the_reader_does():
    text = "Leaders in Wigan pooled budgets. This meant giving up control. Moore29 said so."
    doc = hit_on(text).document
    alone = Citation.of(1, "d:1", doc, 33, 62)  # "This meant giving up control." without its antecedent
    assert "opener" in lint_answer("This meant giving up control. [1]", [alone])
    both = Citation.of(1, "d:1", doc, 0, 62)
    assert lint_answer("Leaders in Wigan pooled budgets. This meant giving up control. [1]", [both]) == set()
    assert "glued" in lint_answer("Moore29 said so. [1]", [Citation.of(1, "d:1", doc, 63, len(text))])
    assert "acronym" not in lint_answer("The MDG [multi-disciplinary group] met. [1]", [both])
