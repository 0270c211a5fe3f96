"""Uploads from the app: saved under ``KB_HOME/uploads`` with a safe name, then ingested like any other file."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kb.files import write_atomic
from kb.knowledge import KnowledgeBase
from kb.stores.lock import LockedError
from kb.stores.triplestore import GraphServerError, StoreBusy
from kb.ui.views import report_lines

UPLOAD_TYPES = ("pdf", "docx", "txt", "md", "markdown", "html", "htm")
MAX_NAME_CHARS = 100


class UploadError(ValueError):
    """An upload refused before ingestion (type, size, empty), with the reason."""


def safe_filename(name: str, max_chars: int = MAX_NAME_CHARS) -> str:
    """A file name that cannot leave its folder: no path parts, no ``..``, no control characters;
    letters in any script are kept; the extension survives when the name is shortened."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = re.sub(r"[^\w\s.()\-]", "_", name)       # \w keeps non-ASCII letters and digits
    name = re.sub(r"\.{2,}", ".", name)
    name = re.sub(r"\s+", " ", name).strip(" .")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    ext = ext[:10]
    stem = stem.strip(" .") or "upload"
    room = max(1, max_chars - (len(ext) + 1 if ext else 0))
    stem = stem[:room].rstrip(" .") or "upload"
    return f"{stem}.{ext}" if ext else stem


def save_upload(name: str, data: bytes, uploads_dir: Path, max_mb: int | float,
                types: Iterable[str] = UPLOAD_TYPES) -> Path:
    """Write an upload under ``uploads_dir`` with a sanitised name and return its path.

    The same content uploaded again reuses its file; a different file with a taken name gets a
    numbered name. Raises UploadError for a wrong type or an over-size file."""
    clean = safe_filename(name)
    suffix = Path(clean).suffix.lower().lstrip(".")
    if suffix not in set(types):
        raise UploadError(f"{clean}: unsupported file type '.{suffix or '(none)'}': use PDF, Word (.docx), text, Markdown or HTML")
    if len(data) > max_mb * 1024 * 1024:
        raise UploadError(f"{clean}: {len(data) / 1048576:.1f} MB is over the {max_mb} MB upload limit")
    root = Path(uploads_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    stem, ext = Path(clean).stem, Path(clean).suffix
    target = root / clean
    n = 1
    while target.exists():
        if target.read_bytes() == data:
            return target
        target = root / f"{stem}-{n}{ext}"
        n += 1
    if target.resolve().parent != root:  # belt and braces: never outside the uploads folder
        raise UploadError(f"{name!r}: not a usable file name")
    write_atomic(target, data)
    return target


@dataclass
class UploadOutcome:
    """What happened to one upload: the CLI's report lines, and whether it is searchable now."""

    name: str
    path: str = ""
    ok: bool = False
    doc_id: str = ""
    passages: int = 0
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def ingest_upload(kb: KnowledgeBase, name: str, data: bytes,
                  on_progress: Callable[[str, int, int], None] | None = None) -> UploadOutcome:
    """Save an upload under ``KB_HOME/uploads`` and ingest it; a file that fails is removed again."""
    out = UploadOutcome(name=name)
    try:
        path = save_upload(name, data, kb.settings.uploads_dir, kb.settings.max_file_mb)
    except (UploadError, OSError) as exc:
        out.errors.append(f"FAILED    {name}: {exc}")
        return out
    out.path = str(path)
    try:
        report = kb.ingest([path], progress=False, on_progress=on_progress)
    except (LockedError, GraphServerError, StoreBusy) as exc:
        out.errors.append(f"kb: {exc}. {path.name} is saved: upload it again to add it.")
        return out
    out.lines, out.errors = report_lines(report)
    done = report.having("ingested") + report.having("unchanged") + report.having("duplicate")
    if done and not report.failed:
        out.ok = True
        out.doc_id = done[0].doc_id
        out.passages = done[0].passages
    if report.failed and not kb.manifest.entries.get(str(path)):
        path.unlink(missing_ok=True)
    return out
