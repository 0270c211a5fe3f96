"""Turn extracted pages into a document's canonical text, keeping the page map.

Extracted text is hard-wrapped, tab-separated, hyphenated across lines and full of bullet
glyphs. We join wrapped lines into paragraphs, rejoin hyphenated words, turn bullets into
``- `` list items and collapse whitespace. Every offset anywhere in the knowledge base
refers to the text this module produces.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass, field

from kb.records import Block, PageSpan

# Glyphs that only ever mark a list item at the start of a line.
BULLETS = "•●▪■◦∙‣⁃○➢➤►▶✓✔\u2212\uf0b7\uf0a7\uf076\uf0d8\uf0fc"
# Dashes that mark a list item only where a paragraph may start.
SOFT_BULLETS = "-–—*"
_BULLET_ONLY = re.compile(rf"^[{re.escape(BULLETS + SOFT_BULLETS)}\s]+$")
_BULLET_START = re.compile(rf"^[{re.escape(BULLETS)}]+\s*")
_SOFT_BULLET_START = re.compile(rf"^[{re.escape(SOFT_BULLETS)}]\s+(?=\S)")
_NUMBERED_START = re.compile(r"^(\(?\d{1,2}[.)]|\(?[a-z][.)])\s+")
_SENTENCE_END = re.compile(r"[.!?:;][\"'”’)\]]*$")
_HEADING_MD = re.compile(r"^(#{1,6})\s+(.*)$")
# A line ending so ends neither a heading nor a sentence.
_RUNS_ON = re.compile(r"(,|\b(a|an|the|of|to|in|on|at|by|for|with|and|or|but|that|which|who|as|from|into|than|is|are|was|were))$")
# Halves that are words yet make one word with their other half, not a compound.
_SUFFIXES = {"ship", "ships", "ment", "ments", "ness", "less", "ful", "able", "ible", "hood", "ward", "wards",
             "wise", "ion", "ions", "ing", "ings", "ant", "ants", "ate", "ates", "ive", "ous", "ism", "ist", "ists"}
_PREFIXES = {"over", "under", "with", "some", "every", "any", "out", "down", "through", "after", "fore"}
_SENTENCE_INSIDE = re.compile(r"[^\W\d_]{2}[.!?] +[a-z]")
_VOWEL = re.compile(r"[aeiouyäöüéèàáíóú]", re.IGNORECASE)
_COMPOUND = re.compile(r"([^\W\d_]+)-([^\W\d_]+)")
_WORD = re.compile(r"[^\W\d_]+")
_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10))
# Compatibility characters a reader does not see as such: ligatures to their letters, invisible
# characters removed. (Not NFKC as a whole: it would also turn "²" into "2" and "½" into "1/2".)
_FOLD = str.maketrans({"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
                       "\ufb05": "st", "\ufb06": "st", "\u017f": "s", "\u00ad": None, "\ufeff": None,
                       "\u200b": None, "\u200c": None, "\u200d": None, "\u2060": None})


@dataclass
class RawPage:
    """One page of extracted text as a loader found it (``page`` is None when unpaged)."""

    page: int | None
    text: str


@dataclass
class Normalised:
    text: str
    pages: list[PageSpan] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)


def clean_line(line: str) -> str:
    """Tabs, odd spaces and control characters to plain spaces, ligatures to letters; runs of space collapsed."""
    line = unicodedata.normalize("NFC", line).translate(_CONTROL).translate(_FOLD)
    line = re.sub(r"[\t\u00a0\u2000-\u200a\u202f\u205f\u3000]", " ", line)
    return re.sub(r" {2,}", " ", line).strip()


@dataclass
class _Line:
    text: str
    page: int | None
    bullet: bool = False
    heading: bool = False


def _typical_width(lines: list[str]) -> int:
    lengths = sorted(len(s) for s in lines if s)
    if not lengths:
        return 80
    return max(30, lengths[int(0.9 * (len(lengths) - 1))])


def _lines(pages: list[RawPage], marked_headings: bool) -> list[_Line | None]:
    """Cleaned lines, with None standing for a paragraph break (blank or bullet-only line)."""
    out: list[_Line | None] = []
    for raw in pages:
        for line in raw.text.splitlines():
            text = clean_line(line)
            if not text or _BULLET_ONLY.match(text):
                out.append(None)
                continue
            bullet = heading = False
            if marked_headings and (m := _HEADING_MD.match(text)):
                text, heading = m.group(2).strip(), True
            elif m := _BULLET_START.match(text):
                text, bullet = text[m.end():], True
            elif m := _SOFT_BULLET_START.match(text):
                text, bullet = text[m.end():], True
            if text:
                out.append(_Line(text, raw.page, bullet, heading))
    return out


@dataclass
class Words:
    """What decides whether a word broken at a line end is rejoined: the document's own words (those
    never broken), its hyphenated compounds, and words known from elsewhere (the model's vocabulary)."""

    whole: set[str] = field(default_factory=set)
    compounds: set[str] = field(default_factory=set)
    known: frozenset[str] = frozenset()
    _sorted: list[str] = field(default_factory=list, repr=False)

    def word(self, w: str) -> bool:
        return len(w) >= 2 and (w in self.whole or w in self.known)

    def written_whole(self, prefix: str) -> bool:
        """Does the document write, unbroken, a longer word that begins so (an inflected form)?"""
        if not self._sorted:
            self._sorted = sorted(self.whole)
        i = bisect.bisect_left(self._sorted, prefix)
        return i < len(self._sorted) and self._sorted[i].startswith(prefix) and len(self._sorted[i]) > len(prefix)


def words_of(pages: list[RawPage], known: frozenset[str] = frozenset()) -> Words:
    """The words of a document that decide how its broken words are rejoined."""
    out = Words(known=known)
    broken = False
    for raw in pages:
        for line in raw.text.splitlines():
            text = clean_line(line)
            words = _WORD.findall(text)
            ends = text.endswith("-")
            out.whole.update(w.lower() for w in words[int(broken):len(words) - int(ends)])
            out.compounds.update(f"{a}-{b}".lower() for a, b in _COMPOUND.findall(text))
            broken = ends
    return out


def rejoin(stem: str, head: str, words: Words) -> bool:
    """Whether ``stem-`` at a line end and ``head`` on the next line are one word broken by the wrap.

    A compound the document writes with a hyphen elsewhere keeps it; a word the document writes whole
    (in any inflection) is rejoined. A word the vocabulary knows whole is rejoined unless its halves are
    two words that make a compound ("head-quarters", "stand-alone"; but "partner-ship", "over-looked").
    Otherwise the hyphen stays when the first half is a word and the second is one too or the first is
    long enough to stand alone ("short-termist").
    """
    a, b = stem.lower(), head.lower()
    if f"{a}-{b}" in words.compounds:
        return False
    if a + b in words.whole or (len(b) > 5 and words.written_whole(a + b[:5])):
        return True
    if a + b in words.known:
        two_words = words.word(a) and words.word(b) and len(a) >= 3 and len(b) >= 3
        return not two_words or b in _SUFFIXES or a in _PREFIXES
    return bool(words.known) and not (words.word(a) and (words.word(b) or len(a) >= 4))


def _join(left: str, right: str, words: Words) -> str:
    """What goes between two wrapped lines: a space, nothing (hyphen kept) or a dropped hyphen.

    Returns the text to append after ``left``; a leading ``\b`` means "drop left's last char".
    """
    if left.endswith("-") and right[:1].islower():
        stem = re.search(r"([^\W\d_]+)-$", left)
        head = re.match(r"[^\W\d_]+", right)
        return "\b" if stem and head and rejoin(stem.group(1), head.group(0), words) else ""
    return " "


def _continues(prev: _Line, line: _Line, width: int, run_on: bool = False) -> bool:
    """Does ``line`` continue the paragraph that ``prev`` belongs to (a hard wrap)? With ``run_on``
    (a PDF's lines, laid out on the page), a short line that cannot end a sentence runs on, as lines
    of a narrow column beside a picture do."""
    if line.bullet or line.heading or prev.heading:
        return False
    if prev.text.endswith("-") and line.text[:1].islower():
        return True
    if run_on and not prev.bullet and not _SENTENCE_END.search(prev.text) and (
            line.text[:1].islower() or _RUNS_ON.search(prev.text)):
        return True
    if len(prev.text) < 0.6 * width:
        return False
    if _SENTENCE_END.search(prev.text) and len(prev.text) < 0.85 * width:
        return False
    if _NUMBERED_START.match(line.text) and _SENTENCE_END.search(prev.text):
        return False
    return True


def _is_heading(text: str, width: int) -> bool:
    words = text.split()
    letters = sum(c.isalpha() for c in text)
    return (
        " | " not in text  # a table row
        and not _SENTENCE_INSIDE.search(text)  # a caption or an OCR'd smudge running into a sentence
        and letters >= 0.5 * len(text.replace(" ", ""))  # not an OCR'd smudge or a row of figures
        and any((len(w) >= 3 and _VOWEL.search(w)) or (len(w) >= 2 and w.isupper()) for w in _WORD.findall(text))
        and (len(words) >= 2 or len(text) >= 8)
        and len(words) <= 12
        and len(text) <= min(90, 0.75 * width)
        and not _SENTENCE_END.search(text)
        and not text.endswith((",", "&", "-", "–"))
        and (text[0].isupper() or text[0].isdigit())
        and sum(1 for w in words if w[0].islower()) <= len(words) // 2 + 1
    )


def _group(lines: list[_Line | None], widths: dict, run_on: bool = False) -> list[list[_Line]]:
    """Group lines into blocks: a block is one paragraph, heading or list item."""
    groups: list[list[_Line]] = []
    current: list[_Line] = []
    for line in lines:
        if line is None:
            if current:
                groups.append(current)
            current = []
        elif current and _continues(current[-1], line, widths.get(current[-1].page, 80), run_on):
            current.append(line)
        else:
            if current:
                groups.append(current)
            current = [line]
    if current:
        groups.append(current)
    return groups


def _kind(group: list[_Line], widths: dict) -> str:
    first = group[0]
    if first.heading:
        return "heading"
    if first.bullet:
        return "item"
    if len(group) == 1 and _is_heading(first.text, widths.get(first.page, 80)):
        return "heading"
    return "para"


def normalise(pages: list[RawPage], *, marked_headings: bool = False,
              known_words: frozenset[str] = frozenset(), run_on: bool = False) -> Normalised:
    """Build canonical text, paragraph blocks and the page map from raw pages.

    ``marked_headings``: lines starting with ``#`` are headings (Markdown, and HTML after
    conversion); otherwise headings are recognised by their shape. ``known_words`` (lower case)
    help rejoin words broken at line ends. ``run_on``: the lines are a PDF's, where a short line
    may be a narrow column's.
    """
    words = words_of(pages, known_words)
    widths = {raw.page: _typical_width([clean_line(s) for s in raw.text.splitlines()]) for raw in pages}
    groups = _group(_lines(pages, marked_headings), widths, run_on)

    out: list[str] = []
    offset = 0
    blocks: list[Block] = []
    first_offset: dict[int, int] = {}

    def emit(piece: str) -> None:
        nonlocal offset
        out.append(piece)
        offset += len(piece)

    for group in groups:
        kind = _kind(group, widths)
        if blocks:
            emit("\n" if kind == "item" and blocks[-1].kind == "item" else "\n\n")
        start = offset
        if kind == "item":
            emit("- ")
        prev: _Line | None = None
        for line in group:
            if prev is not None:
                glue = _join(prev.text, line.text, words)
                if glue == "\b":
                    out[-1] = out[-1][:-1]
                    offset -= 1
                else:
                    emit(glue)
            if line.page is not None and line.page not in first_offset:
                first_offset[line.page] = offset if prev is not None or kind != "item" else start
            emit(line.text)
            prev = line
        blocks.append(Block(kind, start, offset))

    text = "".join(out)
    return Normalised(text=text, pages=_page_spans(pages, first_offset, len(text)), blocks=blocks)


def _page_spans(pages: list[RawPage], first: dict[int, int], length: int) -> list[PageSpan]:
    """Each page runs from its first character to the next page's first; empty pages are empty."""
    numbers = [p.page for p in pages if p.page is not None]
    starts: list[int] = []
    following = length
    for page in reversed(numbers):
        following = first.get(page, following)
        starts.append(following)
    starts.reverse()
    spans = []
    for i, page in enumerate(numbers):
        end = starts[i + 1] if i + 1 < len(numbers) else length
        spans.append(PageSpan(page=page, start=starts[i], end=end))
    return spans
