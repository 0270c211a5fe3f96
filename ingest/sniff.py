"""What a file is, from its content: magic bytes first, then a look at its text; the name only
chooses among kinds of plain text (Markdown, BibTeX, CSL-JSON)."""

from __future__ import annotations

import zipfile
from pathlib import Path

from ingest.base import IngestError, display_name

HEAD = 8192
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# The stream an Office file saved with a password keeps its content in (names are UTF-16).
ENCRYPTED = "EncryptedPackage".encode("utf-16-le")
# What each kind is called when a file's name says otherwise.
NAMES = {"pdf": "a PDF", "docx": "a Word document", "html": "an HTML page", "text": "plain text",
         "markdown": "Markdown", "bibtex": "a BibTeX library", "csl-json": "a CSL-JSON library"}
BY_SUFFIX = {".pdf": "pdf", ".docx": "docx", ".html": "html", ".htm": "html", ".txt": "text",
             ".text": "text", ".md": "markdown", ".markdown": "markdown", ".bib": "bibtex", ".json": "csl-json"}
_IMAGES = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
           b"II*\x00": "a TIFF image", b"MM\x00*": "a TIFF image"}


def sniff(path: Path) -> str:
    """The kind of ``path`` (a key of ``NAMES``), or IngestError saying what it is when it is no document."""
    with path.open("rb") as f:
        head = f.read(HEAD)
    if not head.strip():
        raise IngestError("empty file: no text to ingest")
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
    if head.startswith(OLE):
        if ENCRYPTED in _container_head(path):
            raise IngestError("password-protected Word (or other Office) file: save an unencrypted copy and ingest that")
        raise IngestError("an old-style Word .doc (or other Office) file: save it as .docx or PDF and ingest that")
    if head.startswith(b"{\\rtf"):
        raise IngestError("an RTF file: save it as .docx or PDF and ingest that")
    for magic, what in _IMAGES.items():
        if head.startswith(magic):
            raise IngestError(f"{what}, not a document: save it as a PDF with a text layer (run OCR) and ingest that")
    lowered = head[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if lowered.startswith((b"<!doctype html", b"<html")) or b"<html" in lowered[:512]:
        return "html"
    named = BY_SUFFIX.get(path.suffix.lower(), "text")
    if named in ("pdf", "docx"):
        if b"\x00" in head:
            what = "PDF" if named == "pdf" else "Word document"
            raise IngestError(f"not a readable {what}: it does not begin as one (corrupt, truncated, or another kind of file)")
        return "text"
    return named


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise IngestError(f"a damaged ZIP container (corrupt or truncated Word file?): {exc}") from exc
    if "word/document.xml" in names:
        return "docx"
    if "content.xml" in names:
        raise IngestError("an OpenDocument file: save it as .docx or PDF and ingest that")
    raise IngestError("a ZIP archive, not a document: unpack it and ingest the files in it")


def _container_head(path: Path) -> bytes:
    """Enough of an OLE container to find its stream names."""
    with path.open("rb") as f:
        return f.read(1 << 20)


def mismatch(path: Path, kind: str) -> str | None:
    """A warning when the name says another kind than the content, None when they agree."""
    named = BY_SUFFIX.get(path.suffix.lower())
    if named is None or named == kind or {named, kind} <= {"text", "markdown", "bibtex", "csl-json"}:
        return None
    return f"{display_name(path.name)}: named {path.suffix.lower()} but it is {NAMES[kind]}; read as {NAMES[kind]}"
