"""The records that pass between ingestion, the stores, retrieval and the front ends."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class DocumentMeta:
    """Bibliographic facts about one document."""

    doc_id: str
    title: str
    authors: list[str] = field(default_factory=list)
    year: int | None = None
    type: str = "document"
    publisher: str = ""
    url: str = ""
    path: str = ""
    page_marker: str = "none"


@dataclass
class PageSpan:
    """A page of the original, as a character range of the canonical text."""

    page: int
    start: int
    end: int


@dataclass
class Block:
    """A paragraph-level unit of canonical text: a heading, a list item or a paragraph."""

    kind: str  # "heading" | "item" | "para"
    start: int
    end: int


@dataclass
class Document:
    """A document's canonical text, with its page map and paragraph blocks."""

    meta: DocumentMeta
    text: str
    pages: list[PageSpan] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    sha256: str = ""

    def page_at(self, offset: int) -> int | None:
        """The page on which the character at ``offset`` lies (None for unpaged documents)."""
        page = None
        for span in self.pages:
            if span.start <= offset:
                page = span.page
            else:
                break
        return page

    def to_dict(self) -> dict:
        return {
            "meta": asdict(self.meta),
            "text": self.text,
            "pages": [asdict(p) for p in self.pages],
            "blocks": [asdict(b) for b in self.blocks],
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Document":
        return cls(
            meta=DocumentMeta(**d["meta"]),
            text=d["text"],
            pages=[PageSpan(**p) for p in d["pages"]],
            blocks=[Block(**b) for b in d.get("blocks", [])],
            sha256=d.get("sha256", ""),
        )


@dataclass
class Passage:
    """A retrievable chunk of a document's canonical text: ``text == doc.text[start:end]``."""

    chunk_id: str
    doc_id: str
    text: str
    start: int
    end: int
    page: int | None
    heading: str = ""
    index: int = 0
    concepts: list[str] = field(default_factory=list)
    places: list[str] = field(default_factory=list)
    dimensions: list[str] = field(default_factory=list)

    def embed_text(self, title: str = "") -> str:
        """What the embedding model reads: the section heading gives the passage its context."""
        head = self.heading or title
        return f"{head}\n{self.text}" if head else self.text


@dataclass
class Hit:
    """A passage found by a search, with its score and the document's title."""

    passage: Passage
    score: float
    title: str = ""
    rank: int = 0
    similarity: float | None = None  # cosine similarity to the query, where known
    # The version of the document the passage was checked against: answers quote from it, so
    # an ingestion replacing the document meanwhile cannot shift a quote.
    document: "Document | None" = field(default=None, repr=False, compare=False)

    def doc(self, kb) -> "Document | None":
        return self.document or kb.docs.get(self.passage.doc_id)

    def to_json(self) -> dict:
        p = self.passage
        return {
            "rank": self.rank,
            "chunk_id": p.chunk_id,
            "doc_id": p.doc_id,
            "title": self.title,
            "page": p.page,
            "start": p.start,
            "end": p.end,
            "text": p.text,
            "score": round(float(self.score), 6),
            "similarity": None if self.similarity is None else round(float(self.similarity), 4),
            "heading": p.heading,
            "concepts": p.concepts,
            "places": p.places,
            "dimensions": p.dimensions,
        }
