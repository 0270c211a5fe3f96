"""Word documents (.docx) with python-docx: headings, list items, table rows and footnotes in reading
order, and the title, authors and year from the document's properties. Word has no fixed pages."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree

from ingest.base import Extracted, IngestError
from ingest.normalise import RawPage

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _style(paragraph) -> str:
    try:
        return (paragraph.style.name or "") if paragraph.style is not None else ""
    except (KeyError, ValueError):
        return ""


def _line(paragraph) -> str:
    """One paragraph as a line the normaliser understands: '# ' for a heading, '- ' for a list item."""
    text = " ".join(paragraph.text.split())
    if not text:
        return ""
    style = _style(paragraph)
    if style == "Title" or style.startswith("Heading"):
        return f"# {text}"
    numbered = paragraph._p.pPr is not None and paragraph._p.pPr.numPr is not None
    if numbered or style.startswith("List"):
        return f"- {text}"
    return text


def _blocks(document) -> list[str]:
    """The body's paragraphs and tables in the order they stand, each table row a line of its cells."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    out: list[str] = []
    for child in document.element.body.iterchildren():
        if child.tag == f"{W}p":
            out.append(_line(Paragraph(child, document)))
        elif child.tag == f"{W}tbl":
            for row in Table(child, document).rows:
                cells = list(dict.fromkeys(" ".join(c.text.split()) for c in row.cells))  # merged cells repeat
                if any(cells):
                    out.append(" | ".join(c for c in cells if c))
    return [b for b in out if b]


def _footnotes(path: Path) -> list[str]:
    """The footnotes' text, numbered as Word numbers them."""
    with zipfile.ZipFile(path) as z:
        if "word/footnotes.xml" not in z.namelist():
            return []
        root = ElementTree.fromstring(z.read("word/footnotes.xml"))
    notes = []
    for note in root.iter(f"{W}footnote"):
        if int(note.get(f"{W}id", "0")) <= 0:  # the separators Word keeps as footnotes
            continue
        text = " ".join("".join(t.text or "" for t in note.iter(f"{W}t")).split())
        if text:
            notes.append(f"{len(notes) + 1}. {text}")
    return notes


def load_docx(path: Path, page_marker: str = "none") -> Extracted:
    from docx import Document as open_docx  # a third of a second: only when a Word file is read
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = open_docx(str(path))
        blocks = _blocks(document)
        notes = _footnotes(path)
        props = document.core_properties
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, ElementTree.ParseError) as exc:
        raise IngestError(f"not a readable Word document (corrupt or truncated): {exc}") from exc
    if notes:
        blocks += ["# Notes", *notes]
    if not blocks:
        raise IngestError("the Word document holds no text")
    title = (props.title or "").strip() or next((b[2:] for b in blocks if b.startswith("# ")), "")
    authors = [a.strip() for a in re.split(r";|,| and ", props.author or "") if a.strip()]
    year = props.created.year if props.created else None
    return Extracted(pages=[RawPage(None, "\n\n".join(blocks))], marked_headings=True, title=title,
                     authors=authors, year=year, reader="python-docx")
