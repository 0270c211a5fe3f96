"""Columns in PDFs read in order: when a page's text runs across two columns line by line ("left 1,
right 1, left 2, …", as some PDF writers draw it), the page is read again from pypdf's layout text,
the left column first and then the right. Pages whose text already runs column by column keep it."""

from __future__ import annotations

import re

# A gutter is at least this many spaces wide, in the middle half of the page's width.
GAP = 3
# Columns hold prose: each side's lines average at least this many characters.
PROSE = 15
# Lines that must stand in two columns before the page is read as such.
MIN_LINES = 5
_INNER_GAP = re.compile(r"\S {6,}\S")  # wider than a justified line's spaces


def _side_by_side(line: str, g: int) -> bool | None:
    """True if ``line`` has text on both sides of a gutter at ``g``, False if it crosses it, None if it
    keeps to one side (a column that ends before the other does)."""
    if line[max(0, g - 1):g + GAP - 1].strip():
        return False
    left, right = line[:g].strip(), line[g:].strip()
    return bool(left and right) or None


def _gutter(lines: list[str]) -> int | None:
    """The position of the gutter that most lines stand either side of, if they hold prose."""
    width = max((len(line) for line in lines), default=0)
    scores: dict[int, tuple[int, int]] = {}
    for g in range(width // 4, 3 * width // 4):
        sides = [_side_by_side(line, g) for line in lines if line.strip()]
        count, crossing = sum(s is True for s in sides), sides.count(False)
        # Two columns run side by side down the page: most lines have text on both sides, few cross.
        if count >= max(MIN_LINES, len(sides) // 2) and crossing <= len(sides) // 4:
            scores[g] = (count, -crossing)
    if not scores:
        return None
    top = max(scores.values())
    widest = [g for g, score in scores.items() if score == top]
    best = widest[len(widest) // 2]  # the middle of the gutter, clear of a column's longest lines
    parts = [(line[:best].strip(), line[best:].strip()) for line in lines if _side_by_side(line, best)]
    lefts, rights = [p[0] for p in parts], [p[1] for p in parts]
    prose = all(sum(map(len, side)) / len(side) >= PROSE and sum(bool(_INNER_GAP.search(s)) for s in side) <= len(side) // 5
                for side in (lefts, rights))
    return best if prose else None


def _blocks(lines: list[str], g: int) -> list[str | tuple[list[str], list[str]]]:
    """The page as full-width lines and two-column stretches (the left column's lines, the right's)."""
    blocks: list[str | tuple[list[str], list[str]]] = []
    for line in lines:
        if not line.strip():
            continue
        if _side_by_side(line, g) is False:
            blocks.append(line.strip())
            continue
        if not blocks or isinstance(blocks[-1], str):
            blocks.append(([], []))
        for column, text in zip(blocks[-1], (line[:g].strip(), line[g:].strip())):
            if text:
                column.append(text)
    return blocks


def in_reading_order(plain: str, layout: str) -> str:
    """The page's text with its columns one after the other: ``plain`` when it already reads so (or the
    page has no columns), else the page cut into its columns from ``layout``."""
    lines = layout.splitlines()
    g = _gutter(lines)
    if g is None:
        return plain
    blocks = _blocks(lines, g)
    flat = "".join(plain.split())  # spacing differs between pypdf's two readings: compare without it
    stretches = [b for b in blocks if not isinstance(b, str)]
    if all("".join("".join(column).split()) in flat for b in stretches for column in b):
        return plain
    out: list[str] = []
    for b in blocks:
        out += [b] if isinstance(b, str) else [*b[0], "", *b[1], ""]
    return "\n".join(out)
