"""The manifest: which file became which document, with its content hash and passage ids.

An entry is written only after a document's passages are stored, so a killed run leaves
at worst a file that the next run ingests again.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from kb.files import read_json, write_json
from kb.records import ManifestEntry


class Manifest:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, ManifestEntry] = {}
        self.reload()

    def reload(self) -> None:
        """Read the file again: another process may have finished an ingestion since."""
        raw = read_json(self.path, default={}) or {}
        self.entries = {k: ManifestEntry(**v) for k, v in raw.get("files", {}).items()}

    def save(self) -> None:
        write_json(self.path, {"version": 1, "files": {k: asdict(v) for k, v in sorted(self.entries.items())}})

    def by_doc(self, doc_id: str) -> ManifestEntry | None:
        return next((e for e in self.entries.values() if e.doc_id == doc_id), None)

    def by_hash(self, sha256: str) -> ManifestEntry | None:
        return next((e for e in self.entries.values() if e.sha256 == sha256), None)

    def chunk_ids(self) -> set[str]:
        return {c for e in self.entries.values() for c in e.chunk_ids}
