"""The manifest: which file became which document, with its content hash and passage ids, in the
``files`` table of ``KB_HOME/catalogue.sqlite`` (a ``manifest.json`` of earlier versions moves in on first open).

An entry is written only after a document is stored everywhere else, so a killed run leaves at worst a
file that the next run ingests again. Entries are written one at a time: adding a document costs the same
however many there are.
"""

from __future__ import annotations

import json
from pathlib import Path

from kb.files import read_json, to_json_text
from kb.records import ManifestEntry
from kb.stores.sqlite import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, doc_id TEXT NOT NULL, sha256 TEXT NOT NULL, chunk_ids TEXT NOT NULL,
    vocabulary TEXT NOT NULL, sentences INTEGER, chunker INTEGER NOT NULL);
"""


def _row(e: ManifestEntry) -> tuple:
    # File names that are not UTF-8 are held in lone surrogates: kept as JSON escapes so that they round-trip.
    return (to_json_text(e.path), e.doc_id, e.sha256, json.dumps(e.chunk_ids), e.vocabulary, e.sentences, e.chunker)


class Manifest:
    def __init__(self, path: Path, legacy: Path | None = None) -> None:
        self.db = Database(path, SCHEMA)
        self.entries: dict[str, ManifestEntry] = {}
        if legacy is not None and legacy.exists():
            self._move_in(legacy)
        self.reload()

    def _move_in(self, legacy: Path) -> None:
        raw = read_json(legacy, default={}) or {}
        with self.db.write() as c:
            if not c.execute("SELECT 1 FROM files LIMIT 1").fetchone():
                c.executemany("INSERT INTO files VALUES (?,?,?,?,?,?,?)",
                              [_row(ManifestEntry(**v)) for v in raw.get("files", {}).values()])
        legacy.unlink()

    def reload(self) -> None:
        """Read the table again: another process may have finished an ingestion since."""
        rows = self.db.conn.execute("SELECT path, doc_id, sha256, chunk_ids, vocabulary, sentences, chunker FROM files")
        self.entries = {}
        for path, doc_id, sha, ids, vocab, sentences, chunker in rows:
            path = json.loads(path)
            self.entries[path] = ManifestEntry(path, doc_id, sha, json.loads(ids), vocab, sentences, chunker)

    def put(self, entry: ManifestEntry) -> None:
        self.entries[entry.path] = entry
        with self.db.write() as c:
            c.execute("INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?)", _row(entry))

    def remove(self, path: str) -> None:
        self.entries.pop(path, None)
        with self.db.write() as c:
            c.execute("DELETE FROM files WHERE path = ?", (to_json_text(path),))

    def save(self) -> None:
        """Write every entry as it is in memory (and only those)."""
        with self.db.write() as c:
            c.execute("DELETE FROM files")
            c.executemany("INSERT INTO files VALUES (?,?,?,?,?,?,?)", [_row(e) for e in self.entries.values()])

    def by_doc(self, doc_id: str) -> ManifestEntry | None:
        return next((e for e in self.entries.values() if e.doc_id == doc_id), None)

    def by_hash(self, sha256: str) -> ManifestEntry | None:
        return next((e for e in self.entries.values() if e.sha256 == sha256), None)

    def chunk_ids(self) -> set[str]:
        return {c for e in self.entries.values() for c in e.chunk_ids}
