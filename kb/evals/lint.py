"""The answer lint: defects a reader trips over, found without a reader.

Each check looks at the quotes an answer is made of (in order, with their offsets), so an opener like
"This…" counts only when the sentence before it in the document is not the quote before it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

LINTS = ("unbalanced", "opener", "heading", "list-fragment", "glued", "repeated", "cut", "acronym")
# Acronyms a leader in UK public services reads without a gloss.
COMMON_ACRONYMS = {"NHS", "UK", "US", "USA", "EU", "GP", "GPs", "A&E", "CEO", "CEOs", "HR", "IT", "TV", "BBC", "OK"}

_OPENER = re.compile(r"^(This|These|That|Those|Such|It|Its|They|Their|He|She|Both|A further|Further|Also|However|"
                     r"But|And|So|Then|Here|There)\b")
_END = re.compile(r"[.!?…][\"'”’)\]]*$")
_GLUED = re.compile(r"\b[A-Za-z][a-z]{2,}\d{1,3}\b|[a-z,;:](?:https?://|www\.)")
_ACRONYM = re.compile(r"\b[A-Z][A-Z&]{1,5}s?\b")
_APOSTROPHE = re.compile(r"(?<=\w)[’'](?=\w)|(?<=s)[’'](?=\s|$)")


def unbalanced(text: str) -> bool:
    """Quotation marks or brackets that open and do not close, or close and did not open."""
    bare = _APOSTROPHE.sub("", text)
    pairs = (("“", "”"), ("‘", "’"), ("(", ")"), ("[", "]"))
    return bare.count('"') % 2 == 1 or any(bare.count(a) != bare.count(b) for a, b in pairs)


def heading_like(quote: str) -> bool:
    """A heading or label standing as a sentence: short, with no sentence end."""
    words = quote.split()
    return len(words) <= 12 and not _END.search(quote.strip()) and not quote.strip().endswith(":")


def list_fragment(quote: str) -> bool:
    """A stray list item, label or number: "20 Kent -", "- pooled budgets", "3."."""
    q = quote.strip()
    return (q.startswith(("- ", "• ")) or bool(re.match(r"^\(?\d+[.)]?\s*$|^\d+\s+\S+(\s+\S+)?\s*[-–]$", q))
            or len(q.split()) < 3)


def cut(quote: str) -> bool:
    """A sentence cut off (a long quote without its end) or begun mid-sentence (lower case, not a list item)."""
    q = quote.strip()
    return (len(q.split()) > 12 and not _END.search(q)) or bool(re.match(r"^[a-z]", q))


def unexplained_acronyms(answer: str, known: Iterable[str] = COMMON_ACRONYMS) -> set[str]:
    """Acronyms the answer uses and never spells out ("Clinical Commissioning Groups (CCGs)" spells one out)."""
    known = set(known)
    found = set()
    for m in _ACRONYM.finditer(answer):
        word = m.group(0)
        if word in known or word.rstrip("s") in known or len(word.rstrip("s")) < 2 or re.fullmatch(r"[IVXLC]+", word):
            continue  # known, too short, or a Roman numeral ("Part II")
        if re.search(rf"\(\s*{re.escape(word)}\s*\)", answer) or re.search(rf"{re.escape(word)}\s*\(", answer):
            continue
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
        if _OPENER.match(q) and not follows:
            defects.add("opener")
        if list_fragment(q):
            defects.add("list-fragment")
        elif heading_like(q):
            defects.add("heading")
        if cut(q) and not follows:
            defects.add("cut")
        if _GLUED.search(q):
            defects.add("glued")
        if q in seen:
            defects.add("repeated")
        seen.add(q)
    if unexplained_acronyms(answer, known_acronyms):
        defects.add("acronym")
    return defects


def lint_counts(linted: Iterable[set[str]]) -> dict[str, int]:
    """How many answers show each defect."""
    found = list(linted)
    return {name: sum(name in d for d in found) for name in LINTS}
