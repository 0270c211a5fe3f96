"""Files to documents: which files can be read, and one file read into a normalised Document."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

from ingest.base import Extracted, IngestError
from ingest.furniture import strip_furniture
from ingest.html import load_html
from ingest.metadata import SOURCES_FILE, build_meta, entry_for
from ingest.normalise import normalise
from ingest.pdf import load_pdf
from ingest.text import load_markdown, load_text
from kb.records import Document, FileResult

LOADERS: dict[str, Callable[[Path, str], Extracted]] = {
    ".pdf": load_pdf, ".txt": load_text, ".text": load_text, ".md": load_markdown,
    ".markdown": load_markdown, ".html": load_html, ".htm": load_html,
}


def discover(paths: list[Path]) -> tuple[list[Path], list[FileResult]]:
    """Supported files under ``paths`` (sorted, de-duplicated), and the paths that are unusable."""
    found: dict[Path, None] = {}
    problems: list[FileResult] = []
    for root in paths:
        if root.is_dir():
            for p in sorted(root.rglob("*")):
                if p.is_file() and p.suffix.lower() in LOADERS and not any(
                    part.startswith(".") for part in p.relative_to(root).parts
                ):
                    found[p.resolve()] = None
        elif root.is_file():
            if root.suffix.lower() in LOADERS:
                found[root.resolve()] = None
            elif root.name != SOURCES_FILE:
                problems.append(FileResult(str(root), "failed", reason=f"unsupported file type '{root.suffix or '(none)'}': use PDF, text, Markdown or HTML"))
        else:
            problems.append(FileResult(str(root), "failed", reason="no such file or folder"))
    return list(found), problems


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_document(path: Path, doc_id: str | None = None,
                  known_words: frozenset[str] = frozenset()) -> tuple[Document, list[str]]:
    """Load, describe and normalise one file (running headers and footers left out). Raises IngestError
    with the reason it cannot. ``known_words`` help rejoin words broken at line ends."""
    entry = entry_for(path)
    page_marker = str((entry or {}).get("page_marker") or "none")
    try:
        extracted = LOADERS[path.suffix.lower()](path, page_marker)
    except IngestError:
        raise
    except MemoryError as exc:
        raise IngestError("too large to load into memory") from exc
    except OSError as exc:
        raise IngestError(f"cannot read the file: {exc.strerror or exc}") from exc
    meta = build_meta(path, entry, title=extracted.title, authors=extracted.authors, year=extracted.year)
    if doc_id:
        meta.doc_id = doc_id
    pages, _ = strip_furniture(extracted.pages)
    norm = normalise(pages, marked_headings=extracted.marked_headings, known_words=known_words)
    if not norm.text.strip():
        raise IngestError("no text found after extraction")
    doc = Document(meta=meta, text=norm.text, pages=norm.pages, blocks=norm.blocks)
    return doc, extracted.warnings
