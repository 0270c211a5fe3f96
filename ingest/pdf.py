"""PDF files with pypdf, and pdfminer.six for those pypdf cannot parse: text per real page, document
info, clear errors for what cannot be read."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ingest.base import Extracted, IngestError
from ingest.columns import in_reading_order
from ingest.normalise import RawPage
from ingest.tables import with_rows

logging.getLogger("pypdf").setLevel(logging.ERROR)


def _year(info) -> int | None:
    for key in ("/CreationDate", "/ModDate"):
        raw = str(info.get(key, "") or "")
        if m := re.search(r"(19|20)\d\d", raw):
            return int(m.group(0))
    return None


def load_pdf(path: Path, page_marker: str = "none") -> Extracted:
    # Here, not at the top: a sixth of a second that commands reading no PDF skip.
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    if path.stat().st_size == 0:
        raise IngestError("empty file: no text to ingest")
    reader_name = "pypdf"
    try:
        with path.open("rb") as stream:  # read from the file as pages need it: a path would be read whole into memory
            pages, info = _first_reader(PdfReader(stream, strict=False))
    except IngestError:
        raise
    except FileNotDecryptedError as exc:
        raise IngestError("encrypted PDF: it needs a password; save an unencrypted copy and ingest that") from exc
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError) as exc:
        pages, info = _second_reader(path, exc), {}
        reader_name = SECOND_READER
    if not pages:
        raise IngestError("PDF has no pages")
    if not any(p.text.strip() for p in pages):
        raise IngestError(
            f"no text layer on any of its {len(pages)} page(s): probably a scanned PDF; run OCR on it first"
        )
    warnings = [f"{path.name}: read with {SECOND_READER}, as pypdf could not parse it"] if reader_name != "pypdf" else []
    empty = [p.page for p in pages if not p.text.strip()]
    if empty:
        warnings.append(f"{path.name}: no text on page(s) {', '.join(map(str, empty))} (images only?)")
    title = str(info.get("/Title", "") or "").strip()
    author = str(info.get("/Author", "") or "").strip()
    authors = [a.strip() for a in re.split(r";|,| and ", author) if a.strip()] if author else []
    return Extracted(pages=pages, title=title, authors=authors, year=_year(info), warnings=warnings, reader=reader_name,
                     laid_out=True)


SECOND_READER = "pdfminer.six"


def _first_reader(reader) -> tuple[list[RawPage], dict]:
    """The pages and document info as pypdf reads them (an encrypted file opened if it has no password)."""
    from pypdf.errors import DependencyError

    if reader.is_encrypted:
        try:
            ok = reader.decrypt("")
        except (DependencyError, NotImplementedError) as exc:
            raise IngestError(f"encrypted PDF that cannot be opened here ({exc})") from exc
        if not ok:
            raise IngestError("encrypted PDF: it needs a password; save an unencrypted copy and ingest that")
    info, pages = _info(reader), []
    for i, page in enumerate(reader.pages):
        layout = _layout(page)
        pages.append(RawPage(i + 1, with_rows(in_reading_order(page.extract_text() or "", layout), layout)))
        # pypdf keeps every object it has read, pictures included: forgotten after each page, memory stays
        # that of one page however large the file (they are read again from the file if needed).
        reader.resolved_objects.clear()
    return pages, info


def _info(reader) -> dict[str, str]:
    """The document info the knowledge base uses, as plain text (read now, while the file is open)."""
    info: dict[str, str] = {}
    try:
        meta = reader.metadata or {}
        for key in ("/Title", "/Author", "/CreationDate", "/ModDate"):
            if key in meta:
                info[key] = str(meta[key] or "")
    except Exception:  # noqa: BLE001 - unreadable document info leaves the document undescribed, not unread
        pass
    return info


def _layout(page) -> str:
    """The page as pypdf lays it out in columns of characters (where tables and columns show), or '' if it cannot."""
    try:
        return page.extract_text(extraction_mode="layout") or ""
    except Exception:  # noqa: BLE001 - the layout only finds tables and columns; the plain text is the page's text
        return ""


def _second_reader(path: Path, first: Exception) -> list[RawPage]:
    """The pages as pdfminer.six reads them; IngestError naming pypdf's reason when it cannot either."""
    from pdfminer.high_level import extract_pages  # only for the rare PDF pypdf cannot parse
    from pdfminer.layout import LTTextContainer

    try:
        return [RawPage(n, "".join(el.get_text() for el in layout if isinstance(el, LTTextContainer)))
                for n, layout in enumerate(extract_pages(path), 1)]
    except Exception as exc:  # noqa: BLE001 - however the second reader fails, the file is unreadable
        raise IngestError(f"not a readable PDF (corrupt or truncated): {first}") from exc
