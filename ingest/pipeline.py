"""Ingestion: files → documents → passages → embeddings → store, graph and manifest.

Incremental by content hash. Per document the order is: canonical text, then passages in
Chroma, then the graph, then the manifest entry, so a run killed at any point leaves a state
that the next run completes without duplicates (passage ids are stable, writes are upserts).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from ingest.base import Extracted, IngestError
from ingest.chunk import CHUNKER_VERSION, chunk, heading_breaks, quotable_sentences
from ingest.html import load_html
from ingest.metadata import build_meta, entry_for, slugify, sources_for, SOURCES_FILE
from ingest.normalise import normalise
from ingest.pdf import load_pdf
from ingest.text import load_markdown, load_text
from kb.manifest import Entry
from kb.models import Document, Passage
from kb.store import SentenceRecord

if TYPE_CHECKING:
    from kb.knowledge import KnowledgeBase

LOADERS: dict[str, Callable[[Path, str], Extracted]] = {
    ".pdf": load_pdf, ".txt": load_text, ".text": load_text, ".md": load_markdown,
    ".markdown": load_markdown, ".html": load_html, ".htm": load_html,
}


@dataclass
class FileResult:
    path: str
    status: str  # "ingested" | "unchanged" | "failed" | "duplicate"
    doc_id: str = ""
    passages: int = 0
    reason: str = ""


@dataclass
class IngestReport:
    results: list[FileResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)

    def having(self, status: str) -> list[FileResult]:
        return [r for r in self.results if r.status == status]

    @property
    def failed(self) -> list[FileResult]:
        return self.having("failed")

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> dict:
        return {
            "ingested": [r.__dict__ for r in self.having("ingested")],
            "unchanged": [r.path for r in self.having("unchanged")],
            "duplicates": [r.__dict__ for r in self.having("duplicate")],
            "failed": [{"path": r.path, "reason": r.reason} for r in self.failed],
            "warnings": self.warnings,
            "pruned": self.pruned,
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


def read_document(path: Path, doc_id: str | None = None) -> tuple[Document, list[str]]:
    """Load, describe and normalise one file. Raises IngestError with the reason it cannot."""
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
    norm = normalise(extracted.pages, marked_headings=extracted.marked_headings)
    if not norm.text.strip():
        raise IngestError("no text found after extraction")
    doc = Document(meta=meta, text=norm.text, pages=norm.pages, blocks=norm.blocks)
    return doc, extracted.warnings


def ingest(kb: "KnowledgeBase", paths: list[Path], *, prune: bool = False, progress: bool = True,
           on_progress: Callable[[str, int, int], None] | None = None) -> IngestReport:
    """Ingest files and folders into ``kb``: unchanged files skipped, changed ones replaced."""
    from tqdm import tqdm

    report = IngestReport()
    files, problems = discover(paths)
    report.results.extend(problems)
    for folder in {f.parent for f in files}:
        report.warnings.extend(sources_for(folder / SOURCES_FILE).problems)
    manifest = kb.manifest
    bar = tqdm(total=len(files), unit="file", desc="Ingesting", disable=not progress, leave=True)
    passages_bar = tqdm(unit="passage", desc="Embedding", disable=not progress, leave=True, position=1)
    changed = False
    for n, path in enumerate(files):
        key = str(path)
        bar.set_postfix_str(path.name[:40])
        if on_progress:
            on_progress(path.name, n, len(files))
        try:
            result = _ingest_file(kb, path, key, report, passages_bar)
        except IngestError as exc:
            result = FileResult(key, "failed", reason=str(exc))
        report.results.append(result)
        changed |= result.status == "ingested"
        bar.update(1)
    if prune:
        report.pruned = _prune(kb)
        changed |= bool(report.pruned)
    bar.close()
    passages_bar.close()
    if on_progress:
        on_progress("", len(files), len(files))
    if changed or not kb.search_index_current():
        kb.refresh_indexes()
    del manifest
    return report


def _ingest_file(kb: "KnowledgeBase", path: Path, key: str, report: IngestReport, passages_bar) -> FileResult:
    manifest = kb.manifest
    try:
        size_mb = path.stat().st_size / 1e6
        if size_mb > kb.settings.max_file_mb:
            raise IngestError(f"too large: {size_mb:.1f} MB, above the {kb.settings.max_file_mb} MB limit "
                              "(split it, or raise KB_MAX_FILE_MB)")
        digest = sha256_file(path)
    except OSError as exc:
        raise IngestError(f"cannot read the file: {exc.strerror or exc}") from exc
    known = manifest.entries.get(key)
    if (known and known.sha256 == digest and known.vocabulary == kb.vocabulary_hash and known.sentences is not None
            and known.chunker == CHUNKER_VERSION
            and kb.docs.get(known.doc_id) is not None):
        return FileResult(key, "unchanged", known.doc_id, len(known.chunk_ids))
    twin = manifest.by_hash(digest)
    if twin and twin.path != key and Path(twin.path).exists():
        return FileResult(key, "duplicate", twin.doc_id, reason=f"same content as {twin.path} (already ingested as '{twin.doc_id}')")

    doc_id = known.doc_id if known else None
    doc, warnings = read_document(path, doc_id)
    report.warnings.extend(warnings)
    if not known:
        doc.meta.doc_id = _unique_doc_id(kb, doc.meta.doc_id, key)
    doc.sha256 = digest
    passages = chunk(doc, kb.embedder.count_tokens, max_tokens=kb.settings.max_tokens,
                     target_tokens=kb.settings.target_tokens, overlap=kb.settings.overlap_sentences)
    if not passages:
        raise IngestError("no passages could be made from its text")
    sentences = sentence_records(doc, passages)
    vectors, sentence_vectors = embed(kb, doc, passages, sentences)
    passages_bar.update(len(passages))
    kb.link(doc, passages, vectors)
    kb.write_document(doc, passages, vectors, sentences, sentence_vectors)
    manifest.entries[key] = Entry(key, doc.meta.doc_id, digest, [p.chunk_id for p in passages], kb.vocabulary_hash,
                                  len(sentences), CHUNKER_VERSION)
    manifest.save()
    return FileResult(key, "ingested", doc.meta.doc_id, len(passages))


def sentence_records(doc: Document, passages: list[Passage]) -> list[SentenceRecord]:
    """Every quotable sentence of every passage (a sentence two passages share is in both)."""
    breaks = heading_breaks(doc)
    return [SentenceRecord(p.chunk_id, doc.meta.doc_id, s.start, s.end)
            for p in passages for s in quotable_sentences(doc.text, p.start, p.end, breaks)]


def embed(kb: "KnowledgeBase", doc: Document, passages: list[Passage],
          sentences: list[SentenceRecord]) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of the passages (with their headings) and of the sentences, in one call so that the
    model batches texts of like length; a sentence two passages share is encoded once."""
    passage_texts = [p.embed_text(doc.meta.title) for p in passages]
    sentence_texts = [doc.text[r.start:r.end] for r in sentences]
    unique = list(dict.fromkeys(sentence_texts))
    vectors = kb.embedder.encode(passage_texts + unique)
    by_text = dict(zip(unique, vectors[len(passages):]))
    sentence_vectors = (np.stack([by_text[t] for t in sentence_texts]) if sentence_texts
                        else np.zeros((0, kb.embedder.dim), dtype=np.float32))
    return vectors[:len(passages)], sentence_vectors


def _unique_doc_id(kb: "KnowledgeBase", doc_id: str, key: str) -> str:
    """The id from the name, unless another file already has it."""
    owner = kb.manifest.by_doc(doc_id)
    if owner is None or owner.path == key:
        return doc_id
    return f"{doc_id}-{hashlib.sha1(key.encode()).hexdigest()[:6]}"


def _prune(kb: "KnowledgeBase") -> list[str]:
    """Remove the documents whose files are gone."""
    gone = [e for e in kb.manifest.entries.values() if not Path(e.path).exists()]
    for entry in gone:
        kb.remove_document(entry.doc_id)
        del kb.manifest.entries[entry.path]
        kb.manifest.save()
    return [e.path for e in gone]


__all__ = ["ingest", "read_document", "discover", "IngestReport", "FileResult", "slugify", "Passage"]
