"""Files to documents: which files can be read, and one file read into a normalised Document."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

from ingest.base import Extracted, IngestError, display_name
from ingest.docx import load_docx
from ingest.furniture import strip_furniture
from ingest.html import load_html
from ingest.metadata import SOURCES_FILE, build_meta, entry_for
from ingest.normalise import normalise
from ingest.pdf import load_pdf
from ingest.sniff import NAMES, mismatch, sniff
from ingest.text import load_markdown, load_text
from kb.records import Document, FileResult

# Loaders by the kind of file its content shows (ingest.sniff).
LOADERS: dict[str, Callable[[Path, str], Extracted]] = {
    "pdf": load_pdf, "docx": load_docx, "text": load_text, "markdown": load_markdown, "html": load_html,
}
# What a folder is searched for; a file named on its own is read whatever its name.
SUFFIXES = {".pdf", ".docx", ".txt", ".text", ".md", ".markdown", ".html", ".htm"}


def discover(paths: list[Path]) -> tuple[list[Path], list[FileResult]]:
    """Supported files under ``paths`` (sorted, de-duplicated), and the paths that are unusable."""
    found: dict[Path, None] = {}
    problems: list[FileResult] = []
    for root in paths:
        if root.is_dir():
            for p in sorted(root.rglob("*")):
                if p.is_file() and p.suffix.lower() in SUFFIXES and not any(
                    part.startswith(".") for part in p.relative_to(root).parts
                ):
                    found[p.resolve()] = None
        elif root.is_file():
            if root.suffix.lower() in SUFFIXES:
                found[root.resolve()] = None
            elif root.name != SOURCES_FILE:
                problems.append(FileResult(display_name(root), "failed", reason=f"unsupported file type '{root.suffix or '(none)'}': use PDF, Word (.docx), text, Markdown or HTML"))
        elif root.is_symlink():
            problems.append(FileResult(display_name(root), "failed",
                                       reason="a symbolic link that leads nowhere (or round in a loop): point it at a file"))
        else:
            problems.append(FileResult(display_name(root), "failed", reason="no such file or folder"))
    return list(found), problems


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def extract(path: Path) -> Extracted:
    """A file's raw pages, read as its content shows it to be (a name that says otherwise is warned of)."""
    entry = entry_for(path)
    page_marker = str((entry or {}).get("page_marker") or "none")
    try:
        kind = sniff(path)
        if kind not in LOADERS:
            raise IngestError(f"{NAMES[kind]}, which cannot be read yet: save it as PDF and ingest that")
        extracted = LOADERS[kind](path, page_marker)
    except IngestError:
        raise
    except MemoryError as exc:
        raise IngestError("too large to load into memory") from exc
    except OSError as exc:
        raise IngestError(f"cannot read the file: {exc.strerror or exc}") from exc
    if note := mismatch(path, kind):
        extracted.warnings.insert(0, note)
    extracted.reader = extracted.reader or kind
    return extracted


def read_document(path: Path, doc_id: str | None = None,
                  known_words: frozenset[str] = frozenset()) -> tuple[Document, list[str]]:
    """Load, describe and normalise one file (running headers and footers left out). Raises IngestError
    with the reason it cannot. ``known_words`` help rejoin words broken at line ends."""
    extracted = extract(path)
    meta = build_meta(path, entry_for(path), title=extracted.title, authors=extracted.authors, year=extracted.year)
    meta.reader = extracted.reader
    if doc_id:
        meta.doc_id = doc_id
    pages, _ = strip_furniture(extracted.pages)
    norm = normalise(pages, marked_headings=extracted.marked_headings, known_words=known_words)
    if not norm.text.strip():
        raise IngestError("no text found after extraction")
    doc = Document(meta=meta, text=norm.text, pages=norm.pages, blocks=norm.blocks)
    return doc, extracted.warnings
