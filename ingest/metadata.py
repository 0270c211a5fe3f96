"""Bibliographic facts for a file: its entry in a ``sources.yaml`` beside it, else what the file says."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from ingest.base import display_name
from kb.records import DocumentMeta

SOURCES_FILE = "sources.yaml"
TYPES_BY_SUFFIX = {".pdf": "pdf", ".docx": "word", ".txt": "text", ".md": "markdown", ".markdown": "markdown", ".html": "web-page", ".htm": "web-page"}


def slugify(name: str) -> str:
    """A stable, readable id from a file name: ASCII, lowercase, hyphenated."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:80] or "doc"


@dataclass
class Sources:
    """The entries of one ``sources.yaml``, keyed by file name, with the problems found in it."""

    entries: dict[str, dict] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@lru_cache(maxsize=64)
def _read_sources(path: Path, mtime: float) -> Sources:
    sources = Sources()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        sources.problems.append(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); its entries are ignored")
        return sources
    if not isinstance(data, list):
        sources.problems.append(f"{path}: expected a list of entries; its entries are ignored")
        return sources
    for i, entry in enumerate(data, 1):
        problem = _check_entry(entry)
        if problem:
            sources.problems.append(f"{path}: entry {i} ignored: {problem}")
            continue
        sources.entries[str(entry["file"])] = entry
    return sources


def _check_entry(entry) -> str:
    if not isinstance(entry, dict):
        return "not a mapping"
    if not entry.get("file"):
        return "no 'file'"
    if "id" in entry and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", str(entry["id"])):
        return f"id {entry['id']!r} is not a plain identifier"
    year = entry.get("year")
    if year is not None and not (isinstance(year, int) and 1000 <= year <= 2100):
        return f"year {year!r} is not a four-digit year"
    authors = entry.get("authors", [])
    if not isinstance(authors, list):
        return "'authors' is not a list"
    return ""


def sources_for(file: Path) -> Sources:
    """The ``sources.yaml`` in the file's folder (empty if there is none)."""
    path = file.parent / SOURCES_FILE
    if not path.exists():
        return Sources()
    return _read_sources(path.resolve(), path.stat().st_mtime)


def entry_for(file: Path) -> dict | None:
    return sources_for(file).entries.get(file.name)


def build_meta(file: Path, entry: dict | None, *, title: str = "", authors: list[str] | None = None,
               year: int | None = None) -> DocumentMeta:
    """The entry's facts where there is one; otherwise what the file said about itself."""
    if entry:
        return DocumentMeta(
            doc_id=str(entry.get("id") or slugify(file.stem)),
            title=str(entry.get("title") or title or display_name(file.stem)),
            authors=[str(a) for a in entry.get("authors") or []],
            year=entry.get("year"),
            type=str(entry.get("type") or TYPES_BY_SUFFIX.get(file.suffix.lower(), "document")),
            publisher=str(entry.get("publisher") or ""),
            url=str(entry.get("url") or ""),
            doi=str(entry.get("doi") or ""),
            path=display_name(file),
            page_marker=str(entry.get("page_marker") or "none"),
        )
    return DocumentMeta(
        doc_id=slugify(file.stem),
        title=title or display_name(file.stem).replace("_", " ").replace("-", " ").strip() or display_name(file.name),
        authors=authors or [],
        year=year,
        type=TYPES_BY_SUFFIX.get(file.suffix.lower(), "document"),
        path=display_name(file),
    )
