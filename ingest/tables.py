"""Tables in PDFs kept as rows: found in pypdf's layout text (two or more lines in a row whose cells start
at the same columns, one column of short entries), written into the page's plain text as
``cell | cell | cell``, each row a paragraph of its own."""

from __future__ import annotations

import re

_CELL = re.compile(r"\S+(?: {1,2}\S+)*")  # cells are parted by three spaces or more
# Cells of one column start within this many characters of each other.
SLACK = 2
# A table has a column whose entries average at most this many characters (dates, names, figures);
# two columns of prose side by side have none.
SHORT = 24


def _cells(line: str) -> list[tuple[int, str]]:
    return [(m.start(), m.group(0)) for m in _CELL.finditer(line)]


def _aligned(a: list[tuple[int, str]], b: list[tuple[int, str]]) -> bool:
    """Do two rows share at least two column starts?"""
    starts = [s for s, _ in a]
    return sum(any(abs(s - t) <= SLACK for t in starts) for s, _ in b) >= 2


def find_rows(layout: str) -> list[list[str]]:
    """The rows of the tables on a page, each a list of its cells."""
    runs: list[list[list[tuple[int, str]]]] = []
    current: list[list[tuple[int, str]]] = []
    for line in layout.splitlines():
        cells = _cells(line)
        if len(cells) >= 2 and (not current or _aligned(current[0], cells)):
            current.append(cells)
        elif len(cells) >= 2:
            runs.append(current)
            current = [cells]
        elif cells and current and cells[0][0] > current[-1][0][0] + SLACK:
            continue  # a cell running on onto the next line, under its column
        elif line.strip() == "":
            continue
        else:
            runs.append(current)
            current = []
    runs.append(current)
    rows = []
    for run in runs:
        if len(run) < 2:
            continue
        first_column = [r[0][1] for r in run]
        if sum(len(c) for c in first_column) / len(first_column) <= SHORT:
            rows += [[text for _, text in r] for r in run]
    return rows


def with_rows(plain: str, layout: str) -> str:
    """``plain`` with each table row found in ``layout`` written as its cells, a paragraph of its own."""
    rows = {" ".join(" ".join(r).split()): r for r in find_rows(layout)}
    if not rows:
        return plain
    out = []
    for line in plain.splitlines():
        row = rows.pop(" ".join(line.split()), None)
        out += ["", " | ".join(row)] if row else [line]
    return "\n".join(out)
