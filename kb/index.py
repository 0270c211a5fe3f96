"""Ingestion: files → documents → passages → embeddings → links → the stores.

Incremental by content hash. Per document the order is: canonical text, then passages in
Chroma, then the graph, the keyword index and the catalogue, then the manifest entry, so a run killed
at any point leaves a state that the next run completes without duplicates (passage ids are stable,
writes replace). Each store is written per document: a change costs in proportion to the document.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from ingest.base import IngestError, display_name
from ingest.chunk import CHUNKER_VERSION, chunk, heading_breaks, quotable_sentences
from ingest.metadata import SOURCES_FILE, build_meta, entry_for, sources_for
from ingest.read import discover, read_document, sha256_file
from kb.config import Settings
from kb.embed import Embedder
from kb.records import Document, DocumentSummary, FileResult, IngestReport, ManifestEntry, Passage, SentenceRecord
from kb.stores.catalogue import Catalogue
from kb.stores.documents import DocStore
from kb.stores.graph import KnowledgeGraph
from kb.stores.keyword import KeywordIndex
from kb.stores.lock import ingest_lock
from kb.stores.manifest import Manifest
from kb.stores.triplestore import GraphServerError, StoreBusy
from kb.stores.vectors import PassageStore, to_metadata
from kb.vocab.linking import Linker
from kb.vocab.ontology import OntologyError
from kb.vocab.validate import validate_vocabulary

Progress = Callable[[str, int, int], None]


def sentence_records(doc: Document, passages: list[Passage]) -> list[SentenceRecord]:
    """Every quotable sentence of every passage (a sentence two passages share is in both)."""
    breaks = heading_breaks(doc)
    return [SentenceRecord(p.chunk_id, doc.meta.doc_id, s.start, s.end)
            for p in passages for s in quotable_sentences(doc.text, p.start, p.end, breaks)]


def embed(embedder: Embedder, doc: Document, passages: list[Passage],
          sentences: list[SentenceRecord]) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of the passages (with their headings) and of the sentences, in one call so that the
    model batches texts of like length; a sentence two passages share is encoded once."""
    passage_texts = [p.embed_text(doc.meta.title) for p in passages]
    sentence_texts = [doc.text[r.start:r.end] for r in sentences]
    unique = list(dict.fromkeys(sentence_texts))
    vectors = embedder.encode(passage_texts + unique)
    by_text = dict(zip(unique, vectors[len(passages):]))
    sentence_vectors = (np.stack([by_text[t] for t in sentence_texts]) if sentence_texts
                        else np.zeros((0, embedder.dim), dtype=np.float32))
    return vectors[:len(passages)], sentence_vectors


def _stamp(path: Path) -> tuple[int, int]:
    """What tells that a file was written to: its size and modification time."""
    st = path.stat()
    return st.st_size, st.st_mtime_ns


# What a sources.yaml entry or a library entry says of a document; a change to any is ingested again.
DESCRIBED = ("title", "authors", "year", "type", "publisher", "url", "doi", "page_marker")


def described_as_stored(path: Path, stored: Document, facts: dict | None) -> bool:
    """Whether the file's entry (in a reference library or sources.yaml) still describes the stored
    document as it was stored: a corrected title or year is taken up although the file is unchanged."""
    entry = facts or entry_for(path)
    if not entry:
        return True
    m = stored.meta
    want = build_meta(path, entry, title=m.title, authors=m.authors, year=m.year)
    return all(getattr(want, f) == getattr(m, f) for f in DESCRIBED)


class Indexer:
    """Writes documents into every store, keeping them in step; one writer at a time per ``KB_HOME``."""

    def __init__(self, settings: Settings, *, documents: DocStore, vectors: PassageStore, graph: KnowledgeGraph,
                 keyword: KeywordIndex, catalogue: Catalogue, manifest: Manifest, embedder: Embedder, linker: Linker,
                 vocabulary_hash: str) -> None:
        self.settings = settings
        self.documents, self.vectors, self.graph = documents, vectors, graph
        self.keyword, self.catalogue, self.manifest = keyword, catalogue, manifest
        self.embedder, self.linker = embedder, linker
        self.vocabulary_hash = vocabulary_hash

    # -- a run -----------------------------------------------------------------------------
    def ingest(self, paths: list[Path], *, prune: bool = False, progress: bool = True,
               on_progress: Progress | None = None) -> IngestReport:
        """Ingest files and folders: unchanged files skipped, changed ones replaced."""
        # Links are only as good as the vocabulary: refuse to write with a broken one.
        problems = validate_vocabulary(self.settings.ontology)
        if problems:
            raise OntologyError("the vocabulary does not validate:\n  " + "\n  ".join(problems))
        with ingest_lock(self.settings.lock_path):
            self.manifest.reload()
            try:
                return self._run(paths, prune=prune, progress=progress, on_progress=on_progress)
            finally:
                self.keyword.close()

    def _run(self, paths: list[Path], *, prune: bool, progress: bool, on_progress: Progress | None) -> IngestReport:
        report = IngestReport()
        started = time.perf_counter()
        files, problems, facts = discover(paths)
        report.results.extend(problems)
        for folder in {f.parent for f in files}:
            report.warnings.extend(sources_for(folder / SOURCES_FILE).problems)
        bar = tqdm(total=len(files), unit="file", desc="Ingesting", disable=not progress, leave=True)
        passages_bar = tqdm(unit="passage", desc="Embedding", disable=not progress, leave=True, position=1)
        changed = False
        for n, path in enumerate(files):
            bar.set_postfix_str(path.name[:40])
            if on_progress:
                on_progress(path.name, n, len(files))
            try:
                result = self._ingest_file(path, str(path), report, passages_bar, facts.get(path))
            except IngestError as exc:
                result = FileResult(display_name(path), "failed", reason=str(exc))
            except (GraphServerError, StoreBusy):
                raise  # a store that cannot be reached fails every file: say so once
            except Exception as exc:  # noqa: BLE001 - one file never stops the batch; the stores stay consistent
                result = FileResult(display_name(path), "failed",
                                    reason=f"could not be read ({type(exc).__name__}: {exc}); the other files "
                                           "went on. Please report this file.")
            report.results.append(result)
            changed |= result.status == "ingested"
            bar.update(1)
        if prune:
            report.pruned = self._prune()
            changed |= bool(report.pruned)
        bar.close()
        passages_bar.close()
        if on_progress:
            on_progress("", len(files), len(files))
        self.sync()
        report.seconds = time.perf_counter() - started
        return report

    def _ingest_file(self, path: Path, key: str, report: IngestReport, passages_bar,
                     facts: dict | None = None) -> FileResult:
        manifest, settings = self.manifest, self.settings
        try:
            size_mb = path.stat().st_size / 1e6
            if size_mb > settings.max_file_mb:
                raise IngestError(f"too large: {size_mb:.1f} MB, above the {settings.max_file_mb} MB limit "
                                  "(split it, or raise KB_MAX_FILE_MB)")
            digest, stamp = sha256_file(path), _stamp(path)
        except OSError as exc:
            raise IngestError(f"cannot read the file: {exc.strerror or exc}") from exc
        known = manifest.entries.get(key)
        stored = self.documents.get(known.doc_id) if known else None
        if (known and known.sha256 == digest and known.vocabulary == self.vocabulary_hash
                and known.sentences is not None and known.chunker == CHUNKER_VERSION
                and stored is not None and described_as_stored(path, stored, facts)):
            return FileResult(display_name(key), "unchanged", known.doc_id, len(known.chunk_ids))
        doc, warnings = read_document(path, known.doc_id if known else None, self.embedder.words, facts)
        if _stamp(path) != stamp:
            raise IngestError("the file changed while it was being read: ingest it again once it is saved")
        twin = manifest.by_hash(digest)
        if twin and twin.path != key and Path(twin.path).exists():
            return FileResult(display_name(key), "duplicate", twin.doc_id,
                              reason=f"same content as {display_name(twin.path)} (already ingested as '{twin.doc_id}')")
        report.warnings.extend(warnings)
        if not known:
            doc.meta.doc_id = self._unique_doc_id(doc.meta.doc_id, key)
        doc.sha256 = digest
        passages = chunk(doc, self.embedder.count_tokens, max_tokens=settings.max_tokens,
                         target_tokens=settings.target_tokens, overlap=settings.overlap_sentences)
        if not passages:
            shown = "; ".join(dict.fromkeys(line.strip() for line in doc.text.splitlines() if line.strip()))
            raise IngestError(f"too little text to search: only a heading or label (“{shown[:80]}”); "
                              "if its pages are pictures, run OCR on it first")
        sentences = sentence_records(doc, passages)
        vectors, sentence_vectors = embed(self.embedder, doc, passages, sentences)
        passages_bar.update(len(passages))
        self.linker.link(passages, vectors)
        self.write_document(doc, passages, vectors, sentences, sentence_vectors)
        manifest.put(ManifestEntry(key, doc.meta.doc_id, digest, [p.chunk_id for p in passages],
                                   self.vocabulary_hash, len(sentences), CHUNKER_VERSION))
        return FileResult(display_name(key), "ingested", doc.meta.doc_id, len(passages))

    def _unique_doc_id(self, doc_id: str, key: str) -> str:
        """The id from the name, unless another file already has it."""
        owner = self.manifest.by_doc(doc_id)
        if owner is None or owner.path == key:
            return doc_id
        return f"{doc_id}-{hashlib.sha1(key.encode()).hexdigest()[:6]}"

    def _prune(self) -> list[str]:
        """Remove the documents whose files are gone."""
        gone = [e for e in self.manifest.entries.values() if not Path(e.path).exists()]
        for entry in gone:
            self.remove_document(entry.doc_id)
            self.manifest.remove(entry.path)
        return [e.path for e in gone]

    # -- writing one document --------------------------------------------------------------
    def write_document(self, doc: Document, passages: list[Passage], vectors: np.ndarray,
                       sentences: list[SentenceRecord], sentence_vectors: np.ndarray) -> None:
        """Store a document's text, passages and sentences, replacing what an earlier version left."""
        self.documents.put(doc)
        doc_id = doc.meta.doc_id
        stale = set(self.vectors.ids(doc_id)) - {p.chunk_id for p in passages}
        stale_sentences = set(self.vectors.sentence_ids(doc_id)) - {r.id for r in sentences}
        meta = [to_metadata(p, doc.meta.title, doc.meta.year, doc.meta.type) for p in passages]
        self.vectors.upsert(passages, vectors, meta)
        self.vectors.upsert_sentences(sentences, sentence_vectors)
        self.vectors.delete(sorted(stale))
        self.vectors.delete_sentences(sorted(stale_sentences))
        self.graph.replace_document(doc, passages)
        self.index_passages(doc, passages)

    def index_passages(self, doc: Document, passages: list[Passage]) -> None:
        """The keyword index, then the catalogue: what finds and lists a document's passages."""
        self.keyword.replace_document(doc.meta.doc_id, passages, doc.meta.title)
        self.catalogue.put_document(DocumentSummary.of(doc, len(passages)), doc.sha256, passages)

    def remove_document(self, doc_id: str) -> None:
        self.catalogue.remove_document(doc_id)
        self.keyword.remove_document(doc_id)
        self.vectors.delete(self.vectors.ids(doc_id))
        self.vectors.delete_sentences(self.vectors.sentence_ids(doc_id))
        self.graph.remove_document(doc_id)
        self.documents.delete(doc_id)

    # -- the keyword index and the catalogue -----------------------------------------------------
    def unindexed(self) -> tuple[list[str], list[str]]:
        """Documents the manifest records that the catalogue or the keyword index lacks (or holds in
        another version), and documents those hold that the manifest does not."""
        entries = {e.doc_id: e for e in self.manifest.entries.values()}
        stored = self.catalogue.document_states()
        counted = self.keyword.document_counts()
        behind = sorted(d for d, e in entries.items()
                        if stored.get(d) != (e.sha256, len(e.chunk_ids)) or counted.get(d) != len(e.chunk_ids))
        extra = sorted((set(stored) | set(counted)) - set(entries))
        return behind, extra

    def sync(self) -> None:
        """Bring the catalogue and the keyword index in line with the manifest, document by document,
        from the passages in Chroma: after a run killed between stores, or a knowledge base of an
        earlier version (whose whole-collection index is then removed)."""
        behind, extra = self.unindexed()
        for doc_id in extra:
            self.catalogue.remove_document(doc_id)
            self.keyword.remove_document(doc_id)
        for doc_id in behind:
            doc = self.documents.get(doc_id)
            if doc is None:
                continue  # `kb check` names it; --repair ingests its file again
            passages = sorted(self.vectors.passages(where={"doc_id": doc_id}), key=lambda p: p.start)
            self.index_passages(doc, passages)
        shutil.rmtree(self.settings.legacy_keyword_dir, ignore_errors=True)
