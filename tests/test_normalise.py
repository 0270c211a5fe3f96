"""Canonical text: wrapped lines joined, hyphens rejoined, bullets as items, page map exact."""

from ingest.chunk import chunk, heading_breaks, quotable_sentences, sentences
from ingest.normalise import RawPage, clean_line, normalise
from kb.records import Block, Document, DocumentMeta


def test_clean_line_tabs_and_spaces():
    assert clean_line("  Barnet\tCouncil’s \u00a0 Troubled\t\tFamilies  ") == "Barnet Council’s Troubled Families"


def test_wrapped_lines_join_into_one_paragraph_and_hyphenation_is_rejoined():
    page = (
        "Leaders in public services work across organisational boundaries where no one is in charge and\n"
        "where the problems are complex. They need to under-\n"
        "stand the system before acting on it, and many leaders find that hard to do in practice.\n"
        "\n"
        "A short closing line."
    )
    out = normalise([RawPage(None, page + " understand")])
    assert "They need to understand the system" in out.text
    assert "\n" not in out.text.split("\n\n")[0]
    assert out.text.endswith("A short closing line. understand")


def test_real_compound_keeps_its_hyphen():
    page = "The council worked on decision-\nmaking with partners across the whole system of care and support.\n"
    assert "decision-making" in normalise([RawPage(None, page)]).text


def test_bullets_become_list_items():
    page = "The three scenarios are:\n\n\t− Barnet Council’s Troubled Families work\n\n• The North West London Integrated Care Pilot\n"
    text = normalise([RawPage(None, page)]).text
    assert "- Barnet Council’s Troubled Families work\n- The North West London Integrated Care Pilot" in text


def test_page_map_points_at_each_page_first_line():
    pages = [RawPage(1, "First page opens here.\nMore text on page one."), RawPage(2, ""),
             RawPage(3, "Third page opens here.")]
    out = normalise(pages)
    spans = {p.page: p for p in out.pages}
    assert [p.page for p in out.pages] == [1, 2, 3]
    assert out.text[spans[1].start:].startswith("First page opens here.")
    assert out.text[spans[3].start:].startswith("Third page opens here.")
    assert spans[2].start == spans[2].end == spans[3].start  # an empty page is empty, not missing


def test_headings_are_blocks_and_kept_on_passages():
    page = "Introduction\nThis paper describes three case studies of systems leadership in England.\n"
    out = normalise([RawPage(None, page)])
    assert out.blocks[0].kind == "heading" and out.text[out.blocks[0].start:out.blocks[0].end] == "Introduction"
    doc = Document(DocumentMeta("d", "T"), out.text, out.pages, out.blocks)
    passages = chunk(doc, lambda s: len(s.split()))
    assert passages[0].heading == "Introduction"
    assert passages[0].text.startswith("This paper")


def test_sentences_respect_abbreviations():
    text = "Leaders, e.g. chief executives, met Dr. Smith. They agreed a plan. Then it worked!"
    spans = sentences(text)
    assert [text[s.start:s.end] for s in spans] == [
        "Leaders, e.g. chief executives, met Dr. Smith.", "They agreed a plan.", "Then it worked!"]


def test_chunks_fit_the_budget_overlap_and_have_stable_ids():
    body = " ".join(f"Sentence number {i} talks about pooled budgets and shared outcomes." for i in range(60))
    out = normalise([RawPage(1, body)])
    doc = Document(DocumentMeta("d", "T"), out.text, out.pages, out.blocks)
    count = lambda s: len(s.split())  # noqa: E731
    a = chunk(doc, count, max_tokens=60, target_tokens=50, overlap=1)
    b = chunk(doc, count, max_tokens=60, target_tokens=50, overlap=1)
    assert [p.chunk_id for p in a] == [p.chunk_id for p in b]
    assert len(a) > 5
    for p in a:
        assert doc.text[p.start:p.end] == p.text
        assert count(p.embed_text("T")) <= 58
    assert a[1].start < a[0].end  # one sentence of overlap


def _document(parts: list[tuple[str, str]]) -> Document:
    """A document made of (kind, text) blocks, separated by blank lines."""
    text, blocks = "", []
    for kind, piece in parts:
        if text:
            text += "\n\n"
        blocks.append(Block(kind, len(text), len(text) + len(piece)))
        text += piece
    return Document(DocumentMeta("d", "T"), text, [], blocks)


def test_figure_labels_and_lone_headings_run_on_into_the_next_section():
    story = ("In Denmark strong prior relationships let leaders face up to conflict and work through it. "
             "They held courageous conversations in a safe space. ") * 3
    doc = _document([("heading", "Figure 1"), ("para", "Public"), ("para", "Wicked issues"),
                     ("heading", "Systems Leadership in Denmark"), ("para", story.strip()),
                     ("heading", "Notes"), ("para", "See page 4.")])
    passages = chunk(doc, lambda s: len(s.split()), max_tokens=120, target_tokens=100)
    assert len(passages) == 1
    (p,) = passages
    assert p.text.startswith("Public\n\nWicked issues\n\nSystems Leadership in Denmark\n\nIn Denmark")
    assert p.text.endswith("Notes\n\nSee page 4.")  # a short last section joins the passage before
    assert p.heading == "Figure 1" and doc.text[p.start:p.end] == p.text


def test_a_long_enough_section_still_starts_a_passage_at_its_heading():
    story = " ".join(f"Sentence {i} tells how partners pooled budgets in Barnet and shared the savings." for i in range(8))
    doc = _document([("heading", "Barnet"), ("para", story), ("heading", "Bradford"), ("para", story.replace("Barnet", "Bradford"))])
    passages = chunk(doc, lambda s: len(s.split()), max_tokens=200, target_tokens=150)
    assert [p.heading for p in passages] == ["Barnet", "Bradford"]
    assert passages[1].text.startswith("Sentence 0 tells how partners pooled budgets in Bradford")


def test_a_heading_ends_a_sentence_but_a_narrow_column_line_does_not():
    doc = _document([("heading", "Supportive factors: the authorising environment"),
                     ("para", "We noted that partners had made links with key people in"),
                     ("para", "other parts of the local area, which gave them leverage.")])
    quoted = [doc.text[s.start:s.end] for s in quotable_sentences(doc.text, 0, len(doc.text), heading_breaks(doc))]
    assert quoted == ["Supportive factors: the authorising environment",
                      "We noted that partners had made links with key people in\n\n"
                      "other parts of the local area, which gave them leverage."]


def test_each_item_of_a_list_is_a_sentence_of_its_own():
    text = ("The sponsor for each bid is the Health and Wellbeing Board.\n\n"
            "- Birmingham – reducing demand on public services using data\n"
            "- in-depth interviews with five leaders from within the Council\n"
            "- York – fine.\n\n"
            "Surely, not all our discussions are quiet ones\n\n- sometimes they are challenging and loud.")
    quoted = [text[s.start:s.end] for s in quotable_sentences(text)]
    assert quoted == ["The sponsor for each bid is the Health and Wellbeing Board.",
                      "Birmingham – reducing demand on public services using data",
                      "in-depth interviews with five leaders from within the Council",  # "York – fine." is a fragment
                      # a dash that a line break left at a line's start does not begin an item
                      "Surely, not all our discussions are quiet ones\n\n- sometimes they are challenging and loud."]
