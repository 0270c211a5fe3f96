"""Every record that passes between the stages (ingestion, the stores, search, evaluation, the
front ends), each with its JSON form. Plain data: nothing here reads a file or a store."""

from __future__ import annotations

import textwrap
from dataclasses import asdict, dataclass, field


# -- documents and passages ---------------------------------------------------------------------
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
    doi: str = ""
    path: str = ""
    page_marker: str = "none"
    reader: str = ""  # what produced its text: pypdf, pdfminer.six, python-docx, text, markdown, html


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


@dataclass(frozen=True)
class SentenceRecord:
    """One quotable sentence of a passage, at its offsets in the document's canonical text."""

    chunk_id: str
    doc_id: str
    start: int
    end: int

    @property
    def id(self) -> str:
        return f"{self.chunk_id}@{self.start}"

    @staticmethod
    def chunk_of(sentence_id: str) -> str:
        """The passage a stored sentence's id belongs to."""
        return sentence_id.rsplit("@", 1)[0]


@dataclass
class ManifestEntry:
    """Which file became which document, with its content hash and passage ids."""

    path: str
    doc_id: str
    sha256: str
    chunk_ids: list[str] = field(default_factory=list)
    vocabulary: str = ""  # hash of the ontology it was linked with; a new vocabulary re-links it
    sentences: int | None = None  # sentence vectors stored; None: ingested before they were
    chunker: int = 1  # the chunking rules it was split by (ingest.chunk.CHUNKER_VERSION)


@dataclass
class DocumentSummary:
    """One row of ``kb docs``."""

    doc_id: str
    title: str
    authors: list[str]
    year: int | None
    type: str
    path: str
    pages: int
    passages: int
    publisher: str = ""
    url: str = ""

    @classmethod
    def of(cls, doc: Document, passages: int) -> DocumentSummary:
        m = doc.meta
        return cls(doc_id=m.doc_id, title=m.title, authors=m.authors, year=m.year, type=m.type, path=m.path,
                   pages=len(doc.pages), passages=passages, publisher=m.publisher, url=m.url)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class DocumentInfo:
    """``kb doc ID``: a document's metadata and its pages as character ranges."""

    doc_id: str
    title: str
    authors: list[str]
    year: int | None
    type: str
    publisher: str
    url: str
    path: str
    sha256: str
    characters: int
    passages: int
    pages: list[PageSpan]
    doi: str = ""
    reader: str = ""  # the library that produced its text

    def to_json(self) -> dict:
        return asdict(self)


# -- the vocabulary -----------------------------------------------------------------------------
@dataclass
class Concept:
    """A SKOS concept of one scheme: a concept, a dimension (or facet) or a place."""

    id: str
    uri: str
    label: str
    scheme: str
    alt_labels: list[str] = field(default_factory=list)
    hidden_labels: list[str] = field(default_factory=list)  # words that name it in questions, never linked in text
    definition: str = ""
    broader: list[str] = field(default_factory=list)
    narrower: list[str] = field(default_factory=list)
    related: list[str] = field(default_factory=list)
    lat: float | None = None
    lon: float | None = None

    def to_json(self, passages: int = 0) -> dict:
        out = {
            "id": self.id, "label": self.label, "alt_labels": self.alt_labels, "scheme": self.scheme,
            "broader": self.broader, "narrower": self.narrower, "related": self.related,
            "definition": self.definition, "passages": passages,
        }
        if self.scheme == "places":
            out["lat"], out["lon"] = self.lat, self.lon
        return out


@dataclass
class Initiative:
    id: str
    uri: str
    label: str
    description: str = ""
    places: list[str] = field(default_factory=list)
    concepts: list[str] = field(default_factory=list)
    issue: str = ""
    programme: str = ""
    date: str = ""


@dataclass
class ConceptSummary:
    """One row of ``kb concepts``: a concept and how many passages are linked to it."""

    concept: Concept
    passages: int

    def to_json(self) -> dict:
        return self.concept.to_json(self.passages)


@dataclass
class ConceptPage:
    """A concept's page: the concept, its first passages (with narrower entries) and how many there are,
    and where they come from."""

    concept: Concept
    passages: list[Passage]
    total: int
    documents: list[tuple[str, str, int]]  # (doc id, title, passages)
    places: list[tuple[str, str, int]]  # (place id, label, passages)


# An axis of the evidence map: the passages' document ("doc_id"), their links of one scheme ("concepts",
# "places", "dimensions") or their places' regions ("regions"); a passage counts once under each key it has.
Axis = str


# -- search and answers -------------------------------------------------------------------------
@dataclass
class Filters:
    """What a search may be narrowed to. Place, concept and dimension accept an id or a label."""

    place: str | None = None
    concept: str | None = None
    dimension: str | None = None
    doc: str | None = None
    year: int | None = None
    doc_type: str | None = None

    def active(self) -> bool:
        return any(v is not None and v != "" for v in self.__dict__.values())


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
    document: Document | None = field(default=None, repr=False, compare=False)

    def to_json(self, labels: dict[str, str] | None = None) -> dict:
        """The brief's search result; ``labels`` turns concept, place and dimension ids into labels."""
        p = self.passage
        name = (lambda i: labels.get(i, i)) if labels else (lambda i: i)
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
            "concepts": [name(i) for i in p.concepts],
            "places": [name(i) for i in p.places],
            "dimensions": [name(i) for i in p.dimensions],
        }


@dataclass
class SearchResult:
    query: str
    hits: list[Hit]
    mode: str = "hybrid"
    expanded: list[str] = field(default_factory=list)
    recognised: list[str] = field(default_factory=list)
    best_similarity: float = 0.0

    def to_json(self, labels: dict[str, str] | None = None) -> dict:
        return {
            "query": self.query, "mode": self.mode,
            "recognised": self.recognised, "expanded": self.expanded,
            "results": [h.to_json(labels) for h in self.hits],
        }


@dataclass
class Citation:
    n: int
    chunk_id: str
    doc_id: str
    title: str
    page: int | None
    quote: str
    start: int
    end: int
    authors: list[str] = field(default_factory=list)
    year: int | None = None

    @classmethod
    def of(cls, n: int, chunk_id: str, doc: Document, start: int, end: int) -> "Citation":
        """Cite ``doc.text[start:end]``, on the page where it starts."""
        return cls(n=n, chunk_id=chunk_id, doc_id=doc.meta.doc_id, title=doc.meta.title,
                   page=doc.page_at(start), quote=doc.text[start:end], start=start, end=end,
                   authors=doc.meta.authors, year=doc.meta.year)

    def to_json(self) -> dict:
        return dict(self.__dict__)

    def reference(self) -> str:
        """Author (year) Title, p. N — for copying into a report."""
        who = ", ".join(self.authors) if self.authors else "n.a."
        page = f", p. {self.page}" if self.page is not None else ""
        return f"{who} ({self.year or 'n.d.'}) {self.title}{page}"


@dataclass
class Answer:
    question: str
    answered: bool
    answer: str
    citations: list[Citation] = field(default_factory=list)
    passages: list[Hit] = field(default_factory=list)
    mode: str = "extractive"
    notes: list[str] = field(default_factory=list)

    def to_json(self, labels: dict[str, str] | None = None) -> dict:
        return {
            "question": self.question, "answered": self.answered, "answer": self.answer,
            "citations": [c.to_json() for c in self.citations],
            "passages": [h.to_json(labels) for h in self.passages],
            "mode": self.mode, "notes": self.notes,
        }

    def to_text(self) -> str:
        lines = [textwrap.fill(self.answer, 100), ""]
        if self.citations:
            lines.append("References")
            for c in self.citations:
                lines.append(f"[{c.n}] {c.reference()}  ({c.doc_id}, characters {c.start}–{c.end})")
                lines.append(textwrap.indent(textwrap.fill(f"“{c.quote}”", 96), "    "))
        elif self.passages:
            lines.append("Nearest passages")
            for h in self.passages[:3]:
                page = f", p. {h.passage.page}" if h.passage.page is not None else ""
                text = " ".join(h.passage.text.split())
                lines.append(f"- {h.title}{page}: {textwrap.shorten(text, 200, placeholder='…')}")
        for note in self.notes:
            lines.append(f"note: {note}")
        return "\n".join(lines)


# -- ingestion ----------------------------------------------------------------------------------
@dataclass
class FileResult:
    path: str
    status: str  # "ingested" | "unchanged" | "failed" | "duplicate" | "listed" (named, nothing to read: a library entry without a file, a folder named like a file)
    doc_id: str = ""
    passages: int = 0
    reason: str = ""


@dataclass
class IngestReport:
    results: list[FileResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passages_written(self) -> int:
        return sum(r.passages for r in self.having("ingested"))

    @property
    def passages_per_second(self) -> float:
        """Passages written per second of the whole run (0 when nothing was ingested)."""
        return self.passages_written / self.seconds if self.seconds else 0.0

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
            "listed": [{"path": r.path, "reason": r.reason} for r in self.having("listed")],
            "warnings": self.warnings,
            "pruned": self.pruned,
            "seconds": round(self.seconds, 2),
            "passages_per_second": round(self.passages_per_second, 1),
        }
