"""ChromaDB: the passages and their embeddings, embedded (``PersistentClient``) or on a server."""

from __future__ import annotations

from urllib.parse import urlparse

import numpy as np

from kb.config import Settings
from kb.records import Passage, SentenceRecord

LIST_FIELDS = ("concepts", "places", "dimensions")
# Up to this many admitted passages are scored exactly from their stored vectors: Chroma's graph search
# with a small allowed set walks much of the graph (1.1 s for one document's 232 passages among a million,
# against 3 ms to fetch and score them; benchmarks/servers.py), while for 4,640 admitted passages its
# search (48 ms) beats fetching them (0.44 s).
EXACT_MAX = 1000


def connect(settings: Settings):
    """A Chroma client: a server when ``KB_CHROMA_URL`` is set, else files under ``KB_HOME``."""
    # Here, not at the top: Chroma takes most of a second to import, and `kb docs` or `kb doc` never open it.
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        return chromadb.HttpClient(
            host=url.hostname or "localhost", port=url.port or (443 if url.scheme == "https" else 8000),
            ssl=url.scheme == "https", settings=chroma_settings,
        )
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings)


def to_metadata(p: Passage, title: str, year: int | None, doc_type: str) -> dict:
    meta = {
        "doc_id": p.doc_id, "title": title, "page": -1 if p.page is None else p.page,
        "start": p.start, "end": p.end, "heading": p.heading, "index": p.index,
        "year": -1 if year is None else int(year), "type": doc_type,
    }
    for name in LIST_FIELDS:  # Chroma refuses empty lists: absent means none
        values = getattr(p, name)
        if values:
            meta[name] = list(values)
    return meta


def _complete(ids, documents, metadatas):
    """Records with their text and metadata: one being replaced by a writer can come back without them."""
    return ((i, d, m) for i, d, m in zip(ids, documents, metadatas) if d is not None and m)


def from_record(chunk_id: str, text: str, meta: dict) -> Passage:
    page = meta.get("page", -1)
    return Passage(
        chunk_id=chunk_id, doc_id=meta["doc_id"], text=text, start=int(meta["start"]),
        end=int(meta["end"]), page=None if page is None or page < 0 else int(page),
        heading=meta.get("heading", ""), index=int(meta.get("index", 0)),
        **{name: list(meta.get(name) or []) for name in LIST_FIELDS},
    )


class PassageStore:
    """Two Chroma collections: passages, and the sentences of each passage (searched one by one,
    then quoted in answers without encoding them again). Embeddings are always ours; Chroma's
    default embedding function is never used."""

    def __init__(self, settings: Settings, client=None) -> None:
        self.client = client or connect(settings)
        options = dict(
            embedding_function=None,
            # ef_search 100 (default 10): at 10k passages the default found half the true top 10.
            configuration={"hnsw": {"space": "cosine", "ef_search": 100}},
            metadata={"embedding_model": settings.model_label},
        )
        self.collection = self.client.get_or_create_collection(settings.collection, **options)
        self.sentences = self.client.get_or_create_collection(f"{settings.collection}-sentences", **options)

    def count(self) -> int:
        return self.collection.count()

    def upsert(self, passages: list[Passage], embeddings: np.ndarray, metadatas: list[dict], batch: int = 2000) -> None:
        for i in range(0, len(passages), batch):
            part = passages[i:i + batch]
            self.collection.upsert(
                ids=[p.chunk_id for p in part], embeddings=embeddings[i:i + batch],
                documents=[p.text for p in part], metadatas=metadatas[i:i + batch],
            )

    def ids(self, doc_id: str | None = None) -> list[str]:
        return _ids(self.collection, doc_id)

    def delete(self, ids: list[str]) -> None:
        _delete(self.collection, ids)

    # -- sentences ------------------------------------------------------------------------
    def upsert_sentences(self, records: list[SentenceRecord], embeddings: np.ndarray, batch: int = 2000) -> None:
        for i in range(0, len(records), batch):
            part = records[i:i + batch]
            self.sentences.upsert(
                ids=[r.id for r in part], embeddings=embeddings[i:i + batch],
                metadatas=[{"chunk_id": r.chunk_id, "doc_id": r.doc_id, "start": r.start, "end": r.end} for r in part],
            )

    def sentence_ids(self, doc_id: str | None = None) -> list[str]:
        return _ids(self.sentences, doc_id)

    def delete_sentences(self, ids: list[str]) -> None:
        _delete(self.sentences, ids)

    def query_sentences(self, embedding: np.ndarray, n: int,
                        chunk_ids: list[str] | None = None) -> list[tuple[SentenceRecord, float]]:
        """Nearest sentences with cosine similarity, optionally only those of some passages."""
        if n <= 0 or chunk_ids == []:
            return []
        where = {"chunk_id": {"$in": chunk_ids}} if chunk_ids is not None else None
        if chunk_ids is not None and len(chunk_ids) <= EXACT_MAX:
            got = self.sentences.get(where=where, include=["metadatas", "embeddings"])
            return [(_sentence(got["metadatas"][i]), sim) for i, sim in _nearest(embedding, got["embeddings"], n)
                    if got["metadatas"][i]]
        # No count() first: it costs tens of ms at 100k, and Chroma returns what there is.
        got = self.sentences.query(query_embeddings=[embedding], n_results=n, where=where,
                                   include=["metadatas", "distances"])
        return [(_sentence(m), 1.0 - float(d)) for m, d in zip(got["metadatas"][0], got["distances"][0]) if m]

    def sentence_vectors(self, chunk_ids: list[str]) -> dict[SentenceRecord, np.ndarray]:
        """The stored sentences of some passages, with their vectors."""
        if not chunk_ids:
            return {}
        got = self.sentences.get(where={"chunk_id": {"$in": list(chunk_ids)}}, include=["metadatas", "embeddings"])
        return {_sentence(m): np.asarray(e, dtype=np.float32) for m, e in zip(got["metadatas"], got["embeddings"]) if m}

    def passages(self, ids: list[str] | None = None, where: dict | None = None) -> list[Passage]:
        """Passages by id (in the order asked) or by a metadata filter."""
        got = self.collection.get(ids=ids, where=where, include=["documents", "metadatas"])
        found = {i: from_record(i, d, m) for i, d, m in _complete(got["ids"], got["documents"], got["metadatas"])}
        return [found[i] for i in ids if i in found] if ids is not None else list(found.values())

    def all_passages(self, page: int = 5000) -> list[Passage]:
        out: list[Passage] = []
        offset = 0
        while True:
            got = self.collection.get(include=["documents", "metadatas"], limit=page, offset=offset)
            out.extend(from_record(i, d, m) for i, d, m in _complete(got["ids"], got["documents"], got["metadatas"]))
            if len(got["ids"]) < page:
                return out
            offset += page

    def query(self, embedding: np.ndarray, n: int, where: dict | None = None,
              ids: list[str] | None = None) -> list[tuple[Passage, float]]:
        """Nearest passages with cosine similarity (1 - distance)."""
        if n <= 0 or ids == []:
            return []
        if ids is not None and len(ids) <= EXACT_MAX and not where:
            got = self.collection.get(ids=ids, include=["documents", "metadatas", "embeddings"])
            return [(from_record(got["ids"][i], got["documents"][i], got["metadatas"][i]), sim)
                    for i, sim in _nearest(embedding, got["embeddings"], n)
                    if got["documents"][i] is not None and got["metadatas"][i]]
        got = self.collection.query(
            query_embeddings=[embedding], n_results=n, where=where or None, ids=ids,
            include=["documents", "metadatas", "distances"],
        )
        return [
            (from_record(i, d, m), 1.0 - float(dist))
            for i, d, m, dist in zip(got["ids"][0], got["documents"][0], got["metadatas"][0], got["distances"][0])
            if d is not None and m
        ]

    def embeddings(self, ids: list[str]) -> dict[str, np.ndarray]:
        got = self.collection.get(ids=ids, include=["embeddings"])
        return {i: np.asarray(e, dtype=np.float32) for i, e in zip(got["ids"], got["embeddings"])}


def _nearest(embedding: np.ndarray, vectors, n: int) -> list[tuple[int, float]]:
    """Indices of the ``n`` stored vectors most similar to ``embedding`` (cosine: both are normalised),
    with their similarity, best first."""
    if vectors is None or len(vectors) == 0:
        return []
    sims = np.asarray(vectors, dtype=np.float32) @ np.asarray(embedding, dtype=np.float32)
    order = np.argsort(-sims, kind="stable")[:n]
    return [(int(i), float(sims[i])) for i in order]


def _sentence(meta: dict) -> SentenceRecord:
    return SentenceRecord(meta["chunk_id"], meta["doc_id"], int(meta["start"]), int(meta["end"]))


def _ids(collection, doc_id: str | None = None, page: int = 5000) -> list[str]:
    where = {"doc_id": doc_id} if doc_id else None
    out: list[str] = []
    offset = 0
    while True:
        got = collection.get(where=where, include=[], limit=page, offset=offset)
        out.extend(got["ids"])
        if len(got["ids"]) < page:
            return out
        offset += page


def _delete(collection, ids: list[str], batch: int = 2000) -> None:
    for i in range(0, len(ids), batch):
        collection.delete(ids=ids[i:i + batch])
