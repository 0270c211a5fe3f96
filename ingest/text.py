"""Plain-text and Markdown files: decoding, pages (form feeds or leading-space markers)."""

from __future__ import annotations

import re
from pathlib import Path

from ingest.base import Extracted, IngestError
from ingest.normalise import RawPage

_PAGE_MARK = re.compile(r"^ \S")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|`)(?=\S)(.+?)(?<=\S)\1")
_MD_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


def decode(data: bytes, name: str) -> tuple[str, list[str]]:
    """Bytes to text: UTF-8 if it is, else Latin-1 with a warning; binary data is refused."""
    if not data.strip():
        raise IngestError("empty file: no text to ingest")
    sample = data[:65536]
    if b"\x00" in sample:
        raise IngestError("binary data, not text (the file contains NUL bytes)")
    controls = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13))
    if controls > 0.01 * len(sample):
        raise IngestError("binary data, not text (too many control characters)")
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), [f"{name}: not UTF-8, read as Windows-1252/Latin-1"]


def split_pages(text: str, page_marker: str) -> list[RawPage]:
    """Pages from form feeds, or from lines that begin with exactly one space (the seed convention)."""
    if page_marker == "leading-space":
        pages: list[list[str]] = []
        for line in text.splitlines():
            if _PAGE_MARK.match(line) or not pages:
                pages.append([])
            pages[-1].append(line)
        return [RawPage(i + 1, "\n".join(lines)) for i, lines in enumerate(pages)]
    if "\f" in text:
        return [RawPage(i + 1, part) for i, part in enumerate(text.split("\f"))]
    return [RawPage(None, text)]


def load_text(path: Path, page_marker: str = "none") -> Extracted:
    text, warnings = decode(path.read_bytes(), path.name)
    pages = split_pages(text, page_marker)
    title = next((s.strip() for s in text.splitlines() if s.strip()), "")
    return Extracted(pages=pages, title=title[:200], warnings=warnings)


def markdown_to_lines(text: str) -> str:
    """Markdown to lines the normaliser understands: ``#`` headings kept, inline markup removed."""
    out: list[str] = []
    lines = text.splitlines()
    in_front_matter = bool(lines) and lines[0].strip() == "---"
    for i, line in enumerate(lines):
        if in_front_matter:
            if i > 0 and line.strip() in ("---", "..."):
                in_front_matter = False
            continue
        if line.strip().startswith("```"):
            out.append("")
            continue
        if re.match(r"^\s*(=+|-+)\s*$", line) and out and out[-1].strip() and len(line.strip()) >= 3:
            out[-1] = "# " + out[-1].strip()  # setext heading
            out.append("")
            continue
        line = _MD_LINK.sub(r"\1", line)
        line = _MD_EMPHASIS.sub(r"\2", line)
        if m := _MD_HEADING.match(line.strip()):
            out.extend(["", "# " + m.group(1), ""])
        else:
            out.append(re.sub(r"^\s*>\s?", "", line))
    return "\n".join(out)


def load_markdown(path: Path, page_marker: str = "none") -> Extracted:
    text, warnings = decode(path.read_bytes(), path.name)
    lines = markdown_to_lines(text)
    title = next((m.group(1) for s in text.splitlines() if (m := _MD_HEADING.match(s.strip()))), "")
    if not title:
        title = next((s.strip() for s in lines.splitlines() if s.strip()), "")
    return Extracted(pages=split_pages(lines, page_marker), marked_headings=True, title=title, warnings=warnings)
