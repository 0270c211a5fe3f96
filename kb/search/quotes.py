"""What an answer can quote: whole thoughts, not headings, labels or half a quotation.

A quote is always ``text[start:end]`` of a document's canonical text. It is built around one sentence
(its *core*, which is what is scored against the question): a sentence opening with a pointer to the
one before ("This…", "Such…") brings that sentence, a quotation runs from its opening mark to its
closing one (a sentence of a quotation too long for that is quoted without its marks), and a "But…" that
follows stays with its sentence. A short list is quoted whole with the line leading into it. Headings,
labels, list fragments, table rows and the document's own questions are never quoted alone. What the
reader sees leaves out footnote marks, links and cross-references glued into the quote, and spells out
its acronyms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ingest.chunk import heading_breaks, quotable_sentences
from kb.records import Hit

# A sentence opening like this leans on the one before it.
POINTER = re.compile(r"^(?:This|These|That|Those|Such|It(?!\s+(?:is|was|has been|seems|appears|became)\s+(?:\w+\s+)?"
                     r"(?:clear|evident|apparent|important|essential|vital|crucial|likely|unlikely|possible|"
                     r"impossible|difficult|hard|easy|necessary|worth|striking|notable|interesting)\b)|Its|They|"
                     r"Their|Them|He|She|His|Her|Both|A further|Further|Also|However|But|And|Yet|So|Then|Here|"
                     r"There(?!\s+(?:is|are|was|were|has|have|had|will|would|may|might|can|could|must|should|"
                     r"seems?|appears?|remains?)\b)|Thus|Hence|Therefore|Similarly|Likewise|Moreover|Indeed|"
                     r"In addition|As a result|In turn|Instead|Again|Meanwhile)\b")
# Of those, the ones that stand for something in the sentence before, and say nothing without it: a
# bare pronoun ("This meant…", "They agreed…", "Such was…"), not a determiner ("This study shows…").
REFERS = re.compile(r"^(?:(?:This|These|That|Those)(?=\s+(?:is|was|are|were|has|have|had|may|might|can|could|will|"
                    r"would|should|must|means?|meant|led|required|included?|involved|made|gave|helped|allowed|"
                    r"enabled|in|of|also|all|alone|approach|way)\b|[,.;:])|Such\b(?!\s+as\b)|They|Them|He|She|"
                    r"Both\s+(?:were|are|have|had)|A further|Here)\b")
# Within a sentence's first words, what points back to the sentence before ("The chosen focus for this
# work…", "Encouraged by this early evidence…", "As a consequence…"); the document itself is no pointer.
_BACK = re.compile(r"^(?:\S+\s+){0,7}?(?:(?:this|these|those|such)\b(?!\s+(?:study|paper|report|research|section|"
                   r"summary|chapter|document|review)\b)|as a (?:consequence|result)\b|in turn\b|the above\b)")


def leans_back(sentence: str) -> bool:
    """Whether a sentence reads on from the one before it (a pointer or a connective opens it)."""
    return bool(POINTER.match(sentence) or _BACK.match(sentence))


def points_back(sentence: str) -> bool:
    """Whether a sentence says nothing clear without the one before: "This meant…", "The chosen focus
    for this work…". A connective alone ("So, for example…", "However…") still reads on its own."""
    return bool(REFERS.match(sentence) or _BACK.match(sentence))


# A sentence ending like this announces what follows ("…characterised by two key attributes."), so the
# next sentences come with it.
ANNOUNCES = re.compile(r"(?::|\b(?:two|three|four|five|six|seven|several|a number of)\s+(?:[\w-]+\s+){0,3}"
                       r"(?:attributes|features|ways|reasons|factors|aims|themes|dimensions|elements|things|lessons|"
                       r"areas|stages|steps|principles|qualities|characteristics|components|types|kinds)\.)$")
# A sentence opening like this turns the one before it round, so the two are quoted together.
CONTRAST = re.compile(r"^[(\[]?(?:but|however|yet|although|though|that said|even so|nevertheless)\b", re.I)
SENTENCE_END = re.compile(r"[.!?…](?:\d{1,2}(?=[\"'”’]))?[\"'”’)\]]*(?:\d{1,2})?$")
_APOSTROPHE = re.compile(r"(?<=[^\W\d_])[’'](?=[^\W\d_])")
# Where the sentences read at ingestion are cut again: at blank lines, and after a sentence's end
# that a footnote mark hid ("…change.”19 Analogies…").
_CUT = re.compile(r"\n[ \t]*\n\s*|(?<=[.!?][”’\"')])\d{1,3}\s+(?=[A-Z“‘])|(?<=[a-z][.!?])\d{1,3}\s+(?=[A-Z“‘])")
_ITEM_MARK = re.compile(r"- |\d{1,3} (?=[A-Z])")
_CLOSING = "\"'”’)]"
MAX_QUOTE_WORDS = 130
# At most this many sentences before one are brought as what it points back to.
MAX_BACK = 3


# The label of an entry run into a sentence: "It is i) collaborative and ii) crosses boundaries".
_ENUMERATOR = re.compile(r"(?:^|(?<=\s))(?:[ivx]{1,4}|[a-h])\)(?=\s)")


def unbalanced(text: str) -> bool:
    """Quotation marks or brackets that open and do not close, or close and did not open. An
    apostrophe inside a word is not a mark, and one after an "s" closes a quote only when one is open."""
    bare = _ENUMERATOR.sub("", _APOSTROPHE.sub("", text))
    if bare.count('"') % 2 == 1:
        return True
    for opening, closing in (("“", "”"), ("(", ")"), ("[", "]")):
        depth = 0
        for ch in bare:  # in order: "like.” … noted: “The project" closes one quotation and opens another
            depth += (ch == opening) - (ch == closing)
            if depth < 0:
                return True
        if depth:
            return True
    open_single = 0
    for i, ch in enumerate(bare):
        if ch in "‘":
            open_single += 1
        elif ch in "’":
            if open_single:
                open_single -= 1
            elif bare[i - 1:i] != "s":
                return True
    return open_single > 0


def is_table(text: str) -> bool:
    """Rows of a table as ingestion keeps them: every line "cell | cell"."""
    lines = [line for line in text.splitlines() if line.strip()]
    return bool(lines) and all(" | " in line for line in lines)


# A line that leads into a list, and the list's entries ("Chaired by:" then "- Martin Reeves, …").
# Entries are marked "- " or numbered ("1. "); numbered ones may stand a blank line apart.
_ENTRY_MARK = r"[ \t]*(?:- |\d{1,2}[.)] )"
_LIST = re.compile(rf"^[^\n]*:[ \t]*\n(?:[ \t]*\n)?((?:{_ENTRY_MARK}[^\n]+(?:\n(?:[ \t]*\n(?=[ \t]*\d{{1,2}}[.)] ))?|$))+)",
                   re.M)
MAX_LIST_ENTRIES = 12
MAX_LIST_WORDS = 160


def is_list(text: str) -> bool:
    """A line leading into a list, then the list's entries: quoted whole, it reads as one statement."""
    m = _LIST.match(text.strip())
    return bool(m) and m.end() >= len(text.strip())


def stands_alone(text: str, min_words: int = 6) -> bool:
    """A sentence a reader takes as a statement: it ends as a sentence does, has at least six words and
    is mostly words; not a heading, label, list fragment, table row or a question the document asks."""
    if is_table(text):
        rows = [line for line in text.splitlines() if line.strip()]
        return len(rows) >= 2 and any(ch.isdigit() for ch in text)  # a header and a row of figures
    t = " ".join(text.split())
    t = t[m.end():] if (m := _ITEM_MARK.match(t)) else t
    words = t.split()
    if len(words) < min_words or not SENTENCE_END.search(t) or " | " in t:
        return False
    if t.rstrip("\"'”’)]").endswith("?") and not t.startswith(("“", '"', "‘", "'")):
        return False
    letters = sum(ch.isalpha() for ch in t)
    lower = sum(w[0].islower() for w in words)  # a label is all capitals: "Children’s Services, Bradford Council."
    return letters >= 0.6 * len(t.replace(" ", "")) and not t[0].islower() and lower >= 3


@dataclass
class Candidate:
    """A quote an answer may use: ``text == document.text[start:end]``, built around the sentence
    ``core`` (offsets too), which is what is scored against the question."""

    hit: Hit
    start: int
    end: int
    text: str
    core: tuple[int, int] = (0, 0)

    @property
    def core_text(self) -> str:
        doc = self.hit.document
        return doc.text[self.core[0]:self.core[1]] if doc is not None else self.text


def _pieces(text: str, start: int, end: int, breaks: list[int]) -> list[tuple[int, int, int]]:
    """The document's sentences over ``[start, end)`` as (start, end, end of the stored sentence),
    cut again where ``_CUT`` says (a heading the reader did not mark runs into the sentence under it
    otherwise), and each with the closing marks that follow its end ("…see us.”)."""
    out = []
    for span in quotable_sentences(text, start, end, breaks):
        cursor = span.start
        for m in _CUT.finditer(text, span.start, span.end):
            line_end = text.find("\n", m.end(), span.end)
            if is_table(text[cursor:m.start()]) and is_table(text[m.end():line_end if line_end >= 0 else span.end]):
                continue  # the rows of one table stay together
            out.append((cursor, m.start(), m.start()))
            cursor = m.end()
        stop = span.end
        while stop < len(text) and text[stop] in _CLOSING and text[stop - 1] in ".!?…" + _CLOSING:
            stop += 1
        out.append((_after_heading(text, cursor, stop), stop, span.end))
    return out


# Words that open a sentence: after a word with no stop, within a sentence's first words, they show
# a heading run into it on one line ("Improvements in systems working The staff running…").
_OPENS = frozenset("The This These It In At As A An For Given When While Where Many Most Some Each Our We There "
                   "Such One Both Although If By With From All Several But However".split())


def _after_heading(text: str, start: int, end: int) -> int:
    """Where the sentence at ``[start, end)`` begins once a heading run into it is left out."""
    words = list(re.finditer(r"\S+", text[start:end]))[:12]
    for prev, word in zip(words, words[1:]):
        if word.group(0) in _OPENS and re.search(r"[a-z)]$", prev.group(0)):
            return start + word.start()
    return start


def leads_in(sentence: str) -> bool:
    """A statement that ends in a colon, leading into what follows ("…, the team noted:"): quoted with it."""
    t = sentence.rstrip()
    return t.endswith(":") and stands_alone(t[:-1] + ".", min_words=3)


def follows_lead(sentence: str) -> bool:
    """What a line leading into it may bring: a statement, or the first sentence of a quotation."""
    t = sentence.strip()
    return stands_alone(t) or (len(t.split()) >= 6 and t[0] in "“\"‘")


def _whole(text: str, spans: list[tuple[int, int, int]], i: int) -> tuple[int, int] | None:
    """The quote around sentence ``i`` of ``spans`` (see the module's docstring), or None when the
    sentence cannot be quoted whole: it points back to a heading, or its quotation marks never pair up."""
    def sentence(j: int) -> str:
        return text[spans[j][0]:spans[j][1]]

    def joined(x: int, y: int) -> bool:  # sentences x..y follow each other with only space between
        return all(not text[spans[j][1]:spans[j + 1][0]].strip() for j in range(x, y))

    a = i
    while leans_back(sentence(a)):
        if a > 0 and a > i - MAX_BACK and joined(a - 1, a) and (stands_alone(sentence(a - 1)) or leads_in(sentence(a - 1))):
            a -= 1  # only across space: not across a heading left out between them
        elif points_back(sentence(i)):
            return None  # "This…" with nothing quotable before it
        else:
            a = i  # a connective ("So, for example…") reads on its own when what it follows cannot come
            break
    b = i
    while (ANNOUNCES.search(sentence(b)) or leads_in(sentence(b))) and b + 1 < len(spans) and b < i + 2 \
            and joined(b, b + 1) and follows_lead(sentence(b + 1)):
        b += 1
    if unbalanced(text[spans[a][0]:spans[b][1]]):
        for a2, b2 in [(a, b + n) for n in (1, 2, 3)] + [(a - n, b) for n in (1, 2, 3)]:
            if 0 <= a2 and b2 < len(spans) and joined(a2, b2) and not unbalanced(text[spans[a2][0]:spans[b2][1]]):
                a, b = a2, b2
                break
        else:
            return None
    whole = b
    if b + 1 < len(spans) and CONTRAST.match(sentence(b + 1)) and stands_alone(sentence(b + 1)) \
            and not unbalanced(sentence(b + 1)) and joined(b, b + 1):
        b += 1
    options = [(spans[a][0], spans[b][1]), (spans[a][0], spans[whole][1])]
    if not points_back(sentence(i)):
        options.append((spans[i][0], spans[i][1]))  # too long with its neighbours, and clear without them
        start, end = spans[i][0], spans[i][1]  # a sentence of a quotation too long to quote whole, without its marks
        while start < end and text[start] in "“\"‘'":
            start += 1
        while end > start and text[end - 1] in "”\"’'":
            end -= 1
        if (start, end) != spans[i][:2] and SENTENCE_END.search(text[start:end]):
            options.append((start, end))
    for start, end in options:
        quote = text[start:end]
        if len(quote.split()) <= MAX_QUOTE_WORDS and not unbalanced(quote) and not quote.rstrip().endswith(":"):
            return start, end
    return None


def candidates(hits: list[Hit]) -> list[Candidate]:
    """Every quotable whole thought of the given passages, each once."""
    out: list[Candidate] = []
    seen: set[tuple] = set()
    for hit in hits:
        doc = hit.document
        if doc is None:
            continue
        text, p = doc.text, hit.passage
        # The neighbours of the passage's first and last sentences lie outside it.
        spans = _pieces(text, max(0, p.start - 1500), min(len(text), p.end + 1500), heading_breaks(doc))
        lists = list_units(text, p.start, p.end, min(len(text), p.end + 1500), spans)
        for i, (s, e, stored_end) in enumerate(spans):
            if s < p.start or stored_end > p.end or (doc.meta.doc_id, s) in seen:
                continue
            if not (stands_alone(text[s:e]) or leads_in(text[s:e])):
                continue
            whole = _whole(text, spans, i)
            if whole is None:
                continue
            seen.add((doc.meta.doc_id, s))
            label = _ITEM_MARK.match(text, whole[0])  # "- " or the number of a list entry or footnote
            if label:
                whole = (label.end(), whole[1])
            # A sentence of the line leading into a list brings the list.
            whole = next(((a, b) for a, b in lists if a <= whole[0] and whole[1] <= text.index("\n", a)), whole)
            out.append(Candidate(hit, whole[0], whole[1], text[whole[0]:whole[1]], (s, stored_end)))
        for start, end in lists:
            if (doc.meta.doc_id, start, end) not in seen:  # a list may begin where a sentence does
                seen.add((doc.meta.doc_id, start, end))
                out.append(Candidate(hit, start, end, text[start:end], (start, end)))
    return out


def list_units(text: str, start: int, end: int, stop: int,
               spans: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """The lists led into within ``[start, end)`` and ending by ``stop``, quotable whole: the sentence leading
    into the list and its entries ("Chaired by: - Martin Reeves, … - John Wilderspin, …"), short enough to read
    as one statement. A lead that points back ("He described a ‘perfect storm’ of:") brings the sentences of its
    line it points to."""
    out = []
    for m in _LIST.finditer(text, start, stop):
        if m.start() >= end:
            break
        entries = [line for line in m.group(1).splitlines() if line.strip()]
        colon = text.rfind(":", m.start(), m.start(1))
        starts = [s for s, _, _ in spans if m.start() <= s <= colon][-(MAX_BACK + 1):] or [m.start()]
        lead = next((s for s in reversed(starts) if not points_back(text[s:colon])), starts[-1])
        last = m.end(1) - (1 if m.group(1).endswith("\n") else 0)
        if re.match(rf"\n(?:[ \t]*\n)?{_ENTRY_MARK}", text[last:last + 12]):
            continue  # the list runs on further than the passage's neighbours
        quote = text[lead:last]
        if any(e.startswith("- ") and e.rstrip().endswith(":") for e in entries):
            continue  # a list of lists
        if 2 <= len(entries) <= MAX_LIST_ENTRIES and len(quote.split()) <= MAX_LIST_WORDS and not unbalanced(quote) \
                and len(text[lead:colon].split()) >= 2 and not text[lead].islower() and not points_back(text[lead:colon]):
            out.append((lead, last))
    return out


def overlaps(a: Candidate, b: Candidate, touching: bool = False) -> bool:
    """Whether two quotes share text (or, ``touching``, one follows the other with only space between)."""
    gap = 3 if touching else 0
    return a.hit.passage.doc_id == b.hit.passage.doc_id and a.start < b.end + gap and b.start < a.end + gap


def within(a: Candidate, b: Candidate) -> bool:
    """Whether quote ``a`` adds nothing to ``b``: it lies inside it."""
    return a.hit.passage.doc_id == b.hit.passage.doc_id and b.start <= a.start and a.end <= b.end


def merged(picked: list[Candidate]) -> list[Candidate]:
    """The picked quotes with those that share text or touch joined into one (as the document reads),
    unless the second begins on another page: each quote is cited by the page it begins on."""
    out: list[Candidate] = []
    for c in sorted(picked, key=lambda c: (c.hit.passage.doc_id, c.start)):
        last = out[-1] if out else None
        if last is not None and overlaps(last, c, touching=True) and (
                c.start < last.end or last.hit.document.page_at(c.start) == last.hit.document.page_at(last.start)):
            doc = last.hit.document
            start, end = min(last.start, c.start), max(last.end, c.end)
            first = last if last.hit.rank <= c.hit.rank else c
            out[-1] = Candidate(first.hit, start, end, doc.text[start:end], first.core)
        else:
            out.append(c)
    return out


# What a reader skips in a quote: footnote marks glued to a word ("Moore29", "(VSC)13,"), links, and
# the document's cross-references ("(Source Paper 3)", "(see Figure 2)", "(HM_Treasury, 2010)").
_FOOTNOTE = re.compile(r"(?:(?<=[a-z]{2})|(?<=[A-Za-z][.,;:!?)’”])|(?<=[A-Za-z][.,;:!?)’”][’”)]))\d{1,3}(?=[\s,.;:!?)’”]|$)")
_LINK = re.compile(r"\s*(?:<)?(?:https?://|www\.)\S+?(?=[.,;:)]?(?:\s|$))>?")
_CROSS_REFERENCE = re.compile(r"\s*\((?:see\s+)?(?:(?:source|synthesis)\s+paper|section|chapter|figure|fig\.|"
                              r"table|page|p\.|appendix|annex|box)\b[^()]{0,40}\)|\s*\([A-Z]{1,4},? pp?\.? ?\d+\)"
                              r"|\s*\((?:[A-Z][\w&’'. -]{1,40}(?:,| et al\.?,?) (?:19|20)\d{2}[a-z]?(?:; )?)+\)", re.I)


def readable(quote: str) -> str:
    """The quote as the answer shows it: one line (a table's rows split by "; "), without footnote
    marks, links or cross-references."""
    if is_table(quote):
        return "; ".join(" ".join(line.split()) for line in quote.splitlines() if line.strip())
    if is_list(quote):
        lead, *entries = [line.strip() for line in quote.splitlines() if line.strip()]
        return readable(lead) + " " + "; ".join(readable(re.sub(_ENTRY_MARK, "", e, count=1)).rstrip(":;")
                                               for e in entries)
    text = " ".join(quote.split())
    if text.startswith("- "):
        text = text[2:]
    text = _CROSS_REFERENCE.sub("", text)
    text = _LINK.sub("", text)
    text = _FOOTNOTE.sub("", text)
    return re.sub(r"\s+([,.;:!?])", r"\1", text).strip()


ACRONYM = re.compile(r"\b[A-Z][A-Z&]{1,5}s?\b")
# Acronyms a leader in UK public services reads without a gloss.
COMMON_ACRONYMS = frozenset({"NHS", "UK", "US", "USA", "EU", "GP", "GPs", "A&E", "CEO", "CEOs", "HR", "IT", "TV",
                             "BBC", "OK", "NW", "NE", "SW", "SE", "HM", "NSPCC", "COVID"})


def _initials_match(long: str, acronym: str) -> bool:
    words = [w for w in re.findall(r"[A-Za-z][\w’']*", long) if w.lower() not in {"and", "of", "for", "the", "in"}]
    initials = "".join(w[0] for w in words).upper()
    return initials == acronym.replace("&", "")


@lru_cache(maxsize=64)
def defined_acronyms(text: str) -> dict[str, str]:
    """Acronyms a text spells out itself, "Clinical Commissioning Groups (CCGs)", as acronym → long form."""
    found: dict[str, str] = {}
    for m in re.finditer(r"((?:[A-Za-z][\w’'-]*[ \t]+){1,7}?)\(([A-Z][A-Z&]{1,5})s?\)", text):
        acronym, words = m.group(2), m.group(1).split()
        for n in range(1, min(len(words), 8) + 1):
            long = " ".join(words[-n:])
            if _initials_match(long, acronym):
                found.setdefault(acronym, long)
                break
    return found


def spell_out(answer: str, glossary: dict[str, str]) -> str:
    """Each acronym of the answer that it does not explain, glossed once in square brackets on first use."""
    done: set[str] = set()

    def gloss(m: re.Match) -> str:
        word = m.group(0)
        key = word[:-1] if word.endswith("s") and word[:-1] in glossary else word
        if key in done or key in COMMON_ACRONYMS or key not in glossary:
            return word
        done.add(key)
        following, before = answer[m.end():m.end() + 3], answer[max(0, m.start() - 1):m.start()]
        if following.lstrip().startswith(("(", "[")) or before == "(" or \
                re.search(rf"{re.escape(glossary[key])}\w{{0,2}}\s*\(\s*{key}", answer, re.I):
            return word
        return f"{word} [{glossary[key]}]"

    return ACRONYM.sub(gloss, answer)
