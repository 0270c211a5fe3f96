"""Reference libraries (BibTeX as Zotero and other managers export it, and CSL-JSON): each entry's
bibliographic facts, and the attachments that hold its text.

An entry becomes a ``sources.yaml``-like entry for each attachment it has, so that the library's title,
authors, year, publisher, DOI and URL describe the document read from the attachment.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from ingest.base import IngestError
from ingest.metadata import slugify

# BibTeX and CSL types to the document types of the knowledge base.
TYPES = {"article": "article", "article-journal": "article", "book": "book", "inbook": "chapter",
         "incollection": "chapter", "chapter": "chapter", "report": "report", "techreport": "report",
         "phdthesis": "thesis", "mastersthesis": "thesis", "thesis": "thesis", "inproceedings": "paper",
         "paper-conference": "paper", "webpage": "web-page", "online": "web-page", "misc": "document"}


@dataclass
class LibraryEntry:
    """One entry of a library: where it stands, its facts (as a sources.yaml entry), its attachments."""

    key: str
    where: str  # "line 12" of a BibTeX file, "item 3" of a CSL-JSON one
    facts: dict
    attachments: list[Path] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # attachments named but not found


@dataclass
class Library:
    entries: list[LibraryEntry] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (where, what is wrong)


def _plain(value: str) -> str:
    """BibTeX markup to text: braces, escapes and dashes."""
    value = re.sub(r"\\([&%$#_{}])", r"\1", value)
    value = value.replace("---", "—").replace("--", "–").replace("~", " ")
    return " ".join(value.replace("{", "").replace("}", "").split())


def _authors(value: str) -> list[str]:
    """'Smith, Jane and Doe, John' → ['Jane Smith', 'John Doe']; an organisation in braces stays whole."""
    out = []
    for name in re.split(r"\s+and\s+", value.strip()):
        name = _plain(name)
        if "," in name:
            last, first = [p.strip() for p in name.split(",", 1)]
            name = f"{first} {last}".strip()
        if name:
            out.append(name)
    return out


def _file_paths(value: str) -> list[str]:
    """Zotero's ``file`` field ('Description:path:mime;…', colons escaped) or plain paths."""
    out = []
    for part in re.split(r"(?<!\\);", value):
        pieces = re.split(r"(?<!\\):", part.strip())
        path = pieces[1] if len(pieces) >= 3 else pieces[0]
        path = path.replace("\\:", ":").replace("\\\\", "\\").strip()
        if path:
            out.append(path)
    return out


def _year(value: str) -> int | None:
    m = re.search(r"\b(1[0-9]{3}|20[0-9]{2}|2100)\b", value or "")
    return int(m.group(1)) if m else None


def _locate(entry: LibraryEntry, paths: list[str], base: Path) -> LibraryEntry:
    """The attachments found (relative paths from the library's folder), and those named but missing."""
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = base / path
        if path.is_file():
            entry.attachments.append(path.resolve())
        else:
            entry.missing.append(raw)
    return entry


def read_bibtex(path: Path) -> Library:
    import bibtexparser  # only when a library is read

    logging.getLogger("bibtexparser").setLevel(logging.CRITICAL)  # its problems are reported as ours
    try:
        parsed = bibtexparser.parse_string(path.read_text(encoding="utf-8-sig", errors="replace"))
    except Exception as exc:  # noqa: BLE001 - a parser failure on the whole file is the file's problem
        raise IngestError(f"not a readable BibTeX file: {exc}") from exc
    library = Library(problems=[(f"line {b.start_line + 1}", _block_error(b)) for b in parsed.failed_blocks])
    for e in parsed.entries:
        fields = {k.lower(): str(f.value) for k, f in e.fields_dict.items()}
        facts = {"id": slugify(e.key), "title": _plain(fields.get("title", "")),
                 "authors": _authors(fields.get("author", "") or fields.get("editor", "")),
                 "year": _year(fields.get("year", "") or fields.get("date", "")),
                 "type": TYPES.get(e.entry_type.lower(), "document"),
                 "publisher": _plain(fields.get("publisher") or fields.get("institution") or fields.get("journal")
                                     or fields.get("organization") or ""),
                 "url": fields.get("url", "").strip(), "doi": fields.get("doi", "").strip()}
        entry = LibraryEntry(e.key, f"line {e.start_line + 1}", facts)
        library.entries.append(_locate(entry, _file_paths(fields.get("file", "")), path.parent))
    return library


def _block_error(block) -> str:
    why = " ".join(str(getattr(block, "error", "") or "").split())
    why = re.sub(r"^Parsing of .*? due to (a )?", "", why) or "not a complete entry"
    return f"malformed entry ({why[:160]}): fix it and ingest the library again"


def read_csl_json(path: Path) -> Library:
    try:
        items = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IngestError(f"not readable JSON: {exc}") from exc
    if isinstance(items, dict) and isinstance(items.get("items"), list):
        items = items["items"]
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise IngestError("not a CSL-JSON library (a list of items with 'id' and 'title')")
    library = Library()
    for n, item in enumerate(items, 1):
        if not item.get("title"):
            library.problems.append((f"item {n}", "no title: fix it and ingest the library again"))
            continue
        authors = [" ".join(filter(None, [a.get("given", ""), a.get("family", "")])) or a.get("literal", "")
                   for a in item.get("author") or [] if isinstance(a, dict)]
        parts = (item.get("issued") or {}).get("date-parts") or [[None]]
        key = str(item.get("id") or n)
        facts = {"id": slugify(key), "title": str(item["title"]), "authors": [a for a in authors if a],
                 "year": _year(str(parts[0][0] if parts and parts[0] else "")),
                 "type": TYPES.get(str(item.get("type", "")), "document"),
                 "publisher": str(item.get("publisher") or item.get("container-title") or ""),
                 "url": str(item.get("URL") or ""), "doi": str(item.get("DOI") or "")}
        files = item.get("file") or item.get("attachments") or []
        files = _file_paths(files) if isinstance(files, str) else [str(f.get("path", f)) if isinstance(f, dict) else str(f) for f in files]
        library.entries.append(_locate(LibraryEntry(key, f"item {n}", facts), files, path.parent))
    return library


def read_library(path: Path, kind: str) -> Library:
    """A BibTeX (``kind`` 'bibtex') or CSL-JSON ('csl-json') library."""
    return read_bibtex(path) if kind == "bibtex" else read_csl_json(path)
