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
from ingest.library import read_library
from ingest.pdf import load_pdf
from ingest.sniff import BY_SUFFIX, NAMES, mismatch, sniff
from ingest.text import load_markdown, load_text
from kb.records import Document, FileResult

# Loaders by the kind of file its content shows (ingest.sniff).
LOADERS: dict[str, Callable[[Path, str], Extracted]] = {
    "pdf": load_pdf, "docx": load_docx, "text": load_text, "markdown": load_markdown, "html": load_html,
}
# The names of readable documents, and of reference libraries (whose entries' attachments are ingested
# with the entries' facts). What a file holds then decides how it is read.
SUFFIXES = {s for s, kind in BY_SUFFIX.items() if kind in LOADERS}
LIBRARIES = {s for s, kind in BY_SUFFIX.items() if kind in ("bibtex", "csl-json")}


def discover(paths: list[Path]) -> tuple[list[Path], list[FileResult], dict[Path, dict]]:
    """Supported files under ``paths`` (sorted, de-duplicated), the paths that are unusable, and the
    facts reference libraries (``.bib``; ``.json`` when named) give about the attachments they list."""
    found: dict[Path, None] = {}
    problems: list[FileResult] = []
    facts: dict[Path, dict] = {}
    for root in paths:
        if root.is_dir():
            if root.suffix.lower() in SUFFIXES | LIBRARIES:
                problems.append(FileResult(display_name(root), "listed",
                                           reason="a folder, though named like a file: the files in it are ingested"))
            for p in sorted(root.rglob("*")):
                if p.is_file() and p.suffix.lower() in SUFFIXES | {".bib"} and not any(
                    part.startswith(".") for part in p.relative_to(root).parts
                ):
                    _add(p, found, problems, facts)
        elif root.is_file():
            if root.suffix.lower() in SUFFIXES | LIBRARIES:
                _add(root, found, problems, facts)
            elif root.name != SOURCES_FILE:
                problems.append(FileResult(display_name(root), "failed", reason=f"unsupported file type '{root.suffix or '(none)'}': use PDF, Word (.docx), text, Markdown, HTML, BibTeX or CSL-JSON"))
        elif root.is_symlink():
            problems.append(FileResult(display_name(root), "failed",
                                       reason="a symbolic link that leads nowhere (or round in a loop): point it at a file"))
        else:
            problems.append(FileResult(display_name(root), "failed", reason="no such file or folder"))
    return list(found), problems, facts


def _add(path: Path, found: dict[Path, None], problems: list[FileResult], facts: dict[Path, dict]) -> None:
    """A document, or the attachments of a library with the library's facts about each."""
    if path.suffix.lower() not in LIBRARIES:
        found[path.resolve()] = None
        return
    name = display_name(path)
    try:
        library = read_library(path, BY_SUFFIX[path.suffix.lower()])
    except IngestError as exc:
        problems.append(FileResult(name, "failed", reason=str(exc)))
        return
    except OSError as exc:
        problems.append(FileResult(name, "failed", reason=f"cannot read the file: {exc.strerror or exc}"))
        return
    except Exception as exc:  # noqa: BLE001 - one library never stops the batch
        problems.append(FileResult(name, "failed", reason=f"could not be read ({type(exc).__name__}: {exc})"))
        return
    problems.extend(FileResult(f"{name} {where}", "failed", reason=why) for where, why in library.problems)
    for entry in library.entries:
        label = f"{name} {entry.where} ({entry.key})"
        problems.extend(FileResult(label, "failed", reason=f"attachment '{raw}' not found: correct its path in the "
                                   "library, or put the file there") for raw in entry.missing)
        if not entry.attachments and not entry.missing:
            problems.append(FileResult(label, "listed", reason="no attachment: listed in the library, no text to ingest"))
        for n, attachment in enumerate(entry.attachments):
            found[attachment] = None
            facts[attachment] = {**entry.facts, "id": entry.facts["id"] + (f"-{n + 1}" if n else "")}


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


def read_document(path: Path, doc_id: str | None = None, known_words: frozenset[str] = frozenset(),
                  facts: dict | None = None) -> tuple[Document, list[str]]:
    """Load, describe and normalise one file (running headers and footers left out). Raises IngestError
    with the reason it cannot. ``known_words`` help rejoin words broken at line ends; ``facts`` (from a
    reference library) describe the document instead of a sources.yaml entry."""
    extracted = extract(path)
    meta = build_meta(path, facts or entry_for(path), title=extracted.title, authors=extracted.authors,
                      year=extracted.year)
    meta.reader = extracted.reader
    if doc_id:
        meta.doc_id = doc_id
    pages = strip_furniture(extracted.pages)
    if not any(p.text.strip() for p in pages):  # every line is on every page: that is the document, not its furniture
        pages = extracted.pages
    norm = normalise(pages, marked_headings=extracted.marked_headings, known_words=known_words,
                     run_on=extracted.laid_out)
    if not norm.text.strip():
        raise IngestError("no text found after extraction")
    doc = Document(meta=meta, text=norm.text, pages=norm.pages, blocks=norm.blocks)
    return doc, extracted.warnings
