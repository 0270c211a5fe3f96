"""The manifest: which file became which document, with its content hash and passage ids.

An entry is written only after a document's passages are stored, so a killed run leaves
at worst a file that the next run ingests again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from kb.files import read_json, write_json


@dataclass
class Entry:
    path: str
    doc_id: str
    sha256: str
    chunk_ids: list[str] = field(default_factory=list)
    vocabulary: str = ""  # hash of the ontology it was linked with; a new vocabulary re-links it
    sentences: int | None = None  # sentence vectors stored; None: ingested before they were
    chunker: int = 1  # the chunking rules it was split by (ingest.chunk.CHUNKER_VERSION)


class Manifest:
    def __init__(self, path: Path) -> None:
        self.path = path
        raw = read_json(path, default={}) or {}
        self.entries: dict[str, Entry] = {k: Entry(**v) for k, v in raw.get("files", {}).items()}

    def save(self) -> None:
        write_json(self.path, {"version": 1, "files": {k: asdict(v) for k, v in sorted(self.entries.items())}})

    def by_doc(self, doc_id: str) -> Entry | None:
        return next((e for e in self.entries.values() if e.doc_id == doc_id), None)

    def by_hash(self, sha256: str) -> Entry | None:
        return next((e for e in self.entries.values() if e.sha256 == sha256), None)

    def chunk_ids(self) -> set[str]:
        return {c for e in self.entries.values() for c in e.chunk_ids}
