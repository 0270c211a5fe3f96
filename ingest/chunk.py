"""Split a document's canonical text into passages: whole sentences, sized for the embedding model."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from kb.records import Document, Passage

# A sentence ends at . ! ? (plus closing quotes/brackets) followed by space and a capital,
# digit, quote or bracket, unless the full stop belongs to a common abbreviation.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[A-Z0-9“\"‘'(\[£])")
_ABBREV = re.compile(r"(?:\b(?:e\.g|i\.e|cf|vs|etc|Mr|Mrs|Ms|Dr|Prof|St|No|Nos|Fig|para|pp|p|vol|al|approx|Cllr|Rt|Hon)\.|\b[A-Z]\.)$")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    heading: bool = False


def heading_breaks(doc: Document) -> list[int]:
    """Where the document's headings begin and end: no sentence runs across them."""
    return sorted({offset for b in doc.blocks if b.kind == "heading" for offset in (b.start, b.end)})


def sentences(text: str, start: int = 0, end: int | None = None, breaks: Sequence[int] = ()) -> list[Span]:
    """Sentence spans of ``text[start:end]``, offsets into ``text``, trimmed of whitespace.
    A sentence also ends at each offset in ``breaks`` (see ``heading_breaks``), so that a heading
    never runs into the text under it."""
    end = len(text) if end is None else end
    spans: list[Span] = []
    cursor = start
    for stop in [b for b in breaks if start < b < end] + [end]:
        for m in _BOUNDARY.finditer(text, cursor, stop):
            if _ABBREV.search(text[max(cursor, m.start() - 8):m.start()]):
                continue
            spans.append(Span(cursor, m.start()))
            cursor = m.end()
        spans.append(Span(cursor, stop))
        cursor = stop
    return [s for s in (_trim(text, s) for s in spans) if s.end > s.start]


MIN_SENTENCE_CHARS = 30


_LIST_ITEM = re.compile(r"\n+(?=- )")


def _list_item_starts(text: str, start: int, end: int) -> list[int]:
    """Where list items begin in ``text[start:end]``: a line starting "- " after a line that ends a
    sentence or a clause (. : ; ! ?) or is an item itself; otherwise the dash is one that a line
    break left at a line's start ("quiet ones\n\n- sometimes they are loud")."""
    out = []
    for m in _LIST_ITEM.finditer(text, start, end):
        before = text.rfind("\n", start, m.start())
        line = text[before + 1 if before >= 0 else start:m.start()].rstrip()
        if line.endswith((".", ":", ";", "!", "?")) or line.lstrip().startswith("- "):
            out.append(m.end())
    return out


def quotable_sentences(text: str, start: int = 0, end: int | None = None, breaks: Sequence[int] = ()) -> list[Span]:
    """The sentences of ``text[start:end]`` that can stand alone: each item of a list is one (its
    "- " left out), and fragments (under 30 characters or 20 letters, such as headings and
    figures) are skipped. These are what search matches one by one and what answers quote."""
    out: list[Span] = []
    for span in sentences(text, start, end, breaks):
        cuts = [span.start, *_list_item_starts(text, span.start, span.end), span.end]
        for a, b in zip(cuts, cuts[1:]):
            item = _trim(text, Span(a, b))
            s = item.start + 2 if text.startswith("- ", item.start) else item.start
            piece = text[s:item.end]
            if len(piece) >= MIN_SENTENCE_CHARS and sum(ch.isalpha() for ch in piece) >= 20:
                out.append(Span(s, item.end))
    return out


def _trim(text: str, span: Span) -> Span:
    s, e = span.start, span.end
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return Span(s, e, span.heading)


def _split_long(text: str, span: Span, fits: Callable[[int, int], bool]) -> list[Span]:
    """Cut a sentence too long for the model into word-aligned pieces that fit."""
    words = [m.span() for m in re.finditer(r"\S+", text[span.start:span.end])]
    pieces: list[Span] = []
    i = 0
    while i < len(words):
        j = i + 1
        while j < len(words) and fits(span.start + words[i][0], span.start + words[j][1]):
            j += 1
        pieces.append(Span(span.start + words[i][0], span.start + words[j - 1][1]))
        i = j
    return pieces


def chunk_id(doc_id: str, text: str, seen: dict[str, int]) -> str:
    """Stable id from the document and the passage's content (numbered if the text repeats)."""
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
    n = seen.get(digest, 0)
    seen[digest] = n + 1
    return f"{doc_id}:{digest}" + (f"-{n}" if n else "")


# Bumped when the reading or chunking rules change, so that the next ingestion reads old documents anew.
CHUNKER_VERSION = 4
# A section shorter than this many word pieces (a figure label, a heading over a pull quote)
# does not make a passage of its own: it runs on into what follows, its heading included.
MIN_PASSAGE_TOKENS = 40


def chunk(doc: Document, count_tokens: Callable[[str], int], *, max_tokens: int = 256,
          target_tokens: int = 200, overlap: int = 1, min_tokens: int = MIN_PASSAGE_TOKENS) -> list[Passage]:
    """Pack whole sentences into passages of about ``target_tokens`` word pieces.

    A passage starts afresh at a heading, which is kept as metadata and counted in the budget
    because it is embedded with the passage; a section under ``min_tokens`` runs on past the
    next heading, and a short last passage joins the one before, so that no passage is a bare
    label. The last ``overlap`` sentences of a passage open the next one.
    """
    text = doc.text
    units: list[Span] = []
    for block in doc.blocks:
        if block.kind == "heading":
            units.append(Span(block.start, block.end, heading=True))
        else:
            units.extend(sentences(text, block.start, block.end))
    if not doc.blocks and text.strip():
        units = sentences(text)

    passages: list[Passage] = []
    seen: dict[str, int] = {}
    budget = max_tokens - 2  # [CLS] and [SEP]
    # WordPiece splits on whitespace first, so a passage's count is the sum of its sentences'.
    cost: dict[tuple[int, int], int] = {}

    def span_tokens(start: int, end: int) -> int:
        if (start, end) not in cost:
            cost[(start, end)] = count_tokens(text[start:end])
        return cost[(start, end)]

    def body_tokens(spans: list[Span]) -> int:
        return sum(span_tokens(s.start, s.end) for s in spans)

    def heading_cost(name: str) -> int:
        """What the heading embedded with a passage costs (the title when it has none)."""
        return count_tokens(name or doc.meta.title) + 1

    section = ""  # the heading over the text being read
    heading = ""  # the heading of the passage being packed (where it starts)
    head_cost = heading_cost(heading)

    def fits(start: int, end: int) -> bool:
        return head_cost + span_tokens(start, end) <= budget

    def make(spans: list[Span], name: str) -> Passage:
        start, end = spans[0].start, spans[-1].end
        return Passage(chunk_id="", doc_id=doc.meta.doc_id, text=text[start:end], start=start, end=end,
                       page=doc.page_at(start), heading=name, index=len(passages))

    current: list[Span] = []
    for unit in units:
        if unit.heading:
            section = text[unit.start:unit.end]
            if current and body_tokens(current) < min_tokens and fits(current[0].start, unit.end):
                current.append(Span(unit.start, unit.end))
                continue
            if current:
                passages.append(make(current, heading))
            current = []
            heading, head_cost = section, heading_cost(section)
            continue
        pieces = [unit] if fits(unit.start, unit.end) else _split_long(text, unit, fits)
        for piece in pieces:
            if current and head_cost + body_tokens(current + [piece]) > min(target_tokens, budget):
                passages.append(make(current, heading))
                kept = current[-overlap:] if overlap and len(current) > overlap else []
                current = kept if kept and head_cost + body_tokens(kept + [piece]) <= budget else []
                if heading != section:
                    heading, head_cost = section, heading_cost(section)
            current.append(piece)
    if current:
        last = passages[-1] if passages else None
        if (last is not None and body_tokens(current) < min_tokens
                and heading_cost(last.heading) + span_tokens(last.start, current[-1].end) <= budget):
            passages[-1] = make([Span(last.start, last.end), current[-1]], last.heading)
            passages[-1].index = last.index
        else:
            passages.append(make(current, heading))
    for p in passages:
        p.chunk_id = chunk_id(doc.meta.doc_id, p.text, seen)
    return passages
