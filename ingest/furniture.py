"""Running headers, footers and page numbers: the furniture a reader skips, found across pages.

A line at the top or bottom of a page is furniture when a line like it (the same words, whatever the
page number in it, allowing for OCR slips) stands at the same edge of at least ``MIN_PAGES`` pages
in a row (or on every other page), or when it is nothing but a page number. It is left out of the canonical text, so it never
opens a passage, glues itself to a sentence or decides which page a quote is cited on.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher

from ingest.normalise import RawPage, clean_line

# Lines examined at each edge of a page.
EDGE = 3
# A repeated line is furniture once it stands at an edge of this many pages.
MIN_PAGES = 3
# How alike two edge lines must be (after numbers are masked) to count as the same furniture.
SIMILAR = 0.85
# Pages on either side compared with a page: running headers repeat near each other, and a long
# document costs in proportion to its length.
WINDOW = 10

_ROMAN = r"(?=[ivxlc]+\b)(?=.)c{0,3}(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3})(?<=[ivxlc])"
_NUMBER = re.compile(rf"\b(?:\d+|{_ROMAN})\b", re.IGNORECASE)
_PAGE_NUMBER = re.compile(
    rf"^[\s\-–—|•.]*(?:page\s+|p\.\s*)?(?:\d{{1,4}}|{_ROMAN})(?:\s*(?:/|of)\s*\d{{1,4}})?[\s\-–—|•.]*$",
    re.IGNORECASE)


def line_key(line: str) -> str:
    """The line with its numbers masked and only letters, digits and the mask kept, lowercased."""
    masked = _NUMBER.sub("#", line.lower())
    return re.sub(r"[^\w#]+", " ", masked).strip()


def is_page_number(line: str) -> bool:
    """'12', '- 12 -', 'Page 3 of 10', 'iv', '—4'."""
    return bool(line.strip()) and bool(_PAGE_NUMBER.match(line.strip()))


def _edges(lines: list[str]) -> dict[int, str]:
    """The first and last ``EDGE`` non-blank lines of a page, each with its edge ('top' or 'bottom')."""
    filled = [i for i, s in enumerate(lines) if s.strip()]
    out = {i: "bottom" for i in filled[-EDGE:]}
    out.update({i: "top" for i in filled[:EDGE]})
    return out


def _alike(a: str, b: str) -> bool:
    if a == b:
        return True
    if min(len(a), len(b)) < 8 or min(len(a), len(b)) < SIMILAR * max(len(a), len(b)):
        return False
    m = SequenceMatcher(None, a, b, autojunk=False)
    return m.quick_ratio() >= SIMILAR and m.ratio() >= SIMILAR


def _run(pages_with: list[int], n: int) -> int:
    """How many pages the run through page ``n`` holds; a run allows one page between two (the
    headers of left and right pages differ)."""
    runs: list[list[int]] = []
    for m in sorted(pages_with):
        if runs and m - runs[-1][-1] <= 2:
            runs[-1].append(m)
        else:
            runs.append([m])
    return next(len(r) for r in runs if n in r)


def _numbers(line: str) -> list[int]:
    return [int(t) if t.isdigit() else _roman_value(t) for t in _NUMBER.findall(line)]


def _roman_value(token: str) -> int:
    values = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100}
    digits = [values[c] for c in token.lower()]
    return sum(-d if i + 1 < len(digits) and d < digits[i + 1] else d for i, d in enumerate(digits))


def _paged_alike(a: list[int], b: list[int], pages_apart: int) -> bool:
    """The numbers of two furniture lines: the same, or one of them running on with the pages (a page
    number; scanned books skip the pages of plates)."""
    if a == b:
        return True
    if len(a) != len(b):
        return False
    return any(x != y and 0 < (y - x) * (1 if pages_apart > 0 else -1) <= 2 * abs(pages_apart) + 2
               for x, y in zip(a, b))


def _repeated_on(keys: list[dict], n: int, i: int, within: int) -> list[int]:
    """The other pages, at most ``within`` pages from page ``n``, with a line like line ``i`` of page
    ``n`` at the same edge."""
    side, key, numbers = keys[n][i]
    near = range(max(0, n - within), min(len(keys), n + within + 1))
    return [m for m in near if m != n and any(
        s == side and _alike(key, k) and _paged_alike(numbers, ns, m - n) for s, k, ns in keys[m].values())]


def find_furniture(pages: list[RawPage]) -> dict[int, set[int]]:
    """For each page (by position in ``pages``), the indexes of its lines that are furniture."""
    lines = [p.text.splitlines() for p in pages]
    edges = [_edges(ls) for ls in lines]
    keys = [{i: (side, line_key(clean_line(ls[i])), _numbers(clean_line(ls[i]))) for i, side in e.items()}
            for ls, e in zip(lines, edges)]
    found: dict[int, set[int]] = {}
    for n, page_keys in enumerate(keys):
        for i, (_, key, _) in page_keys.items():
            if not key:
                continue
            if key == "#" or is_page_number(clean_line(lines[n][i])):
                found.setdefault(n, set()).add(i)
                continue
            pages_with = [n] + _repeated_on(keys, n, i, WINDOW)
            if len(pages_with) >= MIN_PAGES and _run(pages_with, n) >= MIN_PAGES:
                found.setdefault(n, set()).add(i)
    for n, i in _numbered_headers(lines, keys):
        found.setdefault(n, set()).add(i)
    return {n: _from_edges(lines[n], idx) for n, idx in found.items()}


def _edge_number(line: str, side: str) -> int | None:
    """The number a short edge line carries as a page number: at its start or end at the top of a page
    ('12 Chapter title', 'Chapter title 12'), at its end at the bottom (a footnote starts with one)."""
    text = clean_line(line)
    if len(text.split()) > 12:
        return None
    m = re.search(rf"\s({_NUMBER.pattern})$", text, re.IGNORECASE)
    if side == "top":
        m = re.match(rf"^({_NUMBER.pattern})\s", text, re.IGNORECASE) or m
    return _numbers(m.group(1))[0] if m else None


def _numbered_headers(lines: list[list[str]], keys: list[dict]) -> list[tuple[int, int]]:
    """Edge lines that carry the printed page number and repeat on a page beside them: the number runs
    with the page (printed minus physical page the same on at least ``MIN_PAGES`` pages), whatever the
    section title beside it."""
    candidates = [(n, i, number - n) for n, page_keys in enumerate(keys) for i, (side, _, _) in page_keys.items()
                  if (number := _edge_number(lines[n][i], side)) is not None]
    offsets: dict[int, set[int]] = {}
    for n, _, offset in candidates:
        offsets.setdefault(offset, set()).add(n)
    return [(n, i) for n, i, offset in candidates if len(offsets[offset]) >= MIN_PAGES and _repeated_on(keys, n, i, 2)]


def _from_edges(lines: list[str], found: set[int]) -> set[int]:
    """Only the furniture that runs in from the top or the bottom of the page: a line like a header
    in the middle of the text, below a line of body text, is body text."""
    filled = [i for i, s in enumerate(lines) if s.strip()]
    keep: set[int] = set()
    for order in (filled, filled[::-1]):
        for i in order:
            if i not in found:
                break
            keep.add(i)
    return keep


def strip_furniture(pages: list[RawPage]) -> list[RawPage]:
    """Pages without their running headers, footers and page numbers."""
    if all(p.page is None for p in pages):
        return pages
    furniture = find_furniture(pages)
    out = []
    for n, page in enumerate(pages):
        drop = furniture.get(n, set())
        text = "\n".join(s for i, s in enumerate(page.text.splitlines()) if i not in drop) if drop else page.text
        out.append(RawPage(page.page, text))
    return out
