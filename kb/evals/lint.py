"""The answer lint: defects a reader trips over, found without a reader.

The checks of sentences look at the quotes an answer is made of (in order, with their offsets), so an
opener like "This…" counts only when the sentence before it in the document is not the quote before
it; glued marks and acronyms are looked for in what the reader reads, the answer's text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from kb.search.quotes import COMMON_ACRONYMS, SENTENCE_END, is_list, is_table, points_back, unbalanced

LINTS = ("unbalanced", "opener", "heading", "list-fragment", "glued", "repeated", "cut", "acronym")

_GLUED = re.compile(r"\b[A-Za-z][a-z]{2,}\d{1,3}\b|[a-z,;:](?:https?://|www\.)")
_ACRONYM = re.compile(r"\b[A-Z][A-Z&]{1,5}s?\b")


def heading_like(quote: str) -> bool:
    """A heading or label standing as a sentence: short, with no sentence end."""
    words = quote.split()
    return not is_table(quote) and len(words) <= 12 and not SENTENCE_END.search(quote.strip()) and not quote.strip().endswith(":")


def list_fragment(quote: str) -> bool:
    """A stray list item, label or number: "20 Kent -", "- pooled budgets", "3."."""
    q = quote.strip()
    return (q.startswith(("- ", "• ")) or bool(re.match(r"^\(?\d+[.)]?\s*$|^\d+\s+\S+(\s+\S+)?\s*[-–]$", q))
            or len(q.split()) < 3)


def cut(quote: str) -> bool:
    """A sentence cut off (a long quote without its end) or begun mid-sentence (lower case, not a list item)."""
    q = quote.strip()
    return (len(q.split()) > 12 and not SENTENCE_END.search(q)) or bool(re.match(r"^[a-z]", q))


def unexplained_acronyms(answer: str, known: Iterable[str] = COMMON_ACRONYMS) -> set[str]:
    """Acronyms the answer uses and never spells out (a plural counts as its singular)."""
    known = set(known)
    found = set()
    for m in _ACRONYM.finditer(answer):
        word = m.group(0)
        if word in known or word.rstrip("s") in known or len(word.rstrip("s")) < 2 or re.fullmatch(r"[IVXLC]+", word):
            continue  # known, too short, or a Roman numeral ("Part II")
        base = re.escape(word.rstrip("s"))
        if re.search(rf"\(\s*{base}s?\s*\)|\b{base}s?\s*(?:\(|\[[^\d\]])|\bacronym {base}\b", answer):
            continue  # spelt out: "Groups (CCGs)", "CCGs (Clinical…)", "CCGs [clinical…]", "the acronym VUCA"
        found.add(word)
    return found


def lint_answer(answer: str, citations: Sequence, known_acronyms: Iterable[str] = COMMON_ACRONYMS) -> set[str]:
    """The defects one answer shows. ``citations`` carry ``doc_id``, ``start``, ``end`` and ``quote``, in
    the order the answer quotes them."""
    defects: set[str] = set()
    quotes = [c.quote for c in citations]
    if unbalanced(answer) or any(unbalanced(q) for q in quotes):
        defects.add("unbalanced")
    seen: set[str] = set()
    for i, c in enumerate(citations):
        q = " ".join(c.quote.split())
        before = citations[i - 1] if i else None
        follows = before is not None and before.doc_id == c.doc_id and 0 <= c.start - before.end <= 3
        if points_back(q) and not follows:
            defects.add("opener")
        whole = is_list(c.quote)  # a list quoted whole with the line leading into it ends as its last entry does
        if list_fragment(q):
            defects.add("list-fragment")
        elif heading_like(q) and not whole:
            defects.add("heading")
        if cut(q) and not follows and not whole:
            defects.add("cut")
        if q in seen:
            defects.add("repeated")
        seen.add(q)
    if _GLUED.search(answer):
        defects.add("glued")
    if unexplained_acronyms(answer, known_acronyms):
        defects.add("acronym")
    return defects


def lint_counts(linted: Iterable[set[str]]) -> dict[str, int]:
    """How many answers show each defect."""
    found = list(linted)
    return {name: sum(name in d for d in found) for name in LINTS}
