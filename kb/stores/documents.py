"""Documents' canonical text, metadata and page maps, one JSON file each under ``KB_HOME/docs``.

These stay local even when passages live on a Chroma server: they are what citations are
checked against.
"""

from __future__ import annotations

from pathlib import Path

from kb.files import read_json, write_json
from kb.records import Document


class DocStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, tuple[float, Document]] = {}

    def path(self, doc_id: str) -> Path:
        return self.root / f"{doc_id}.json"

    def put(self, doc: Document) -> None:
        write_json(self.path(doc.meta.doc_id), doc.to_dict())

    def get(self, doc_id: str) -> Document | None:
        path = self.path(doc_id)
        try:
            mtime = path.stat().st_mtime
        except (FileNotFoundError, OSError):
            return None
        cached = self._cache.get(doc_id)
        if cached and cached[0] == mtime:
            return cached[1]
        data = read_json(path)
        if data is None:
            return None
        doc = Document.from_dict(data)
        self._cache[doc_id] = (mtime, doc)
        return doc

    def delete(self, doc_id: str) -> None:
        self.path(doc_id).unlink(missing_ok=True)
        self._cache.pop(doc_id, None)

    def ids(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.stem for p in self.root.glob("*.json") if not p.name.startswith("."))

    def all(self) -> list[Document]:
        return [d for i in self.ids() if (d := self.get(i))]
