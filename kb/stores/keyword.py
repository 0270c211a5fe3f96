"""The keyword index: BM25 over passages (with their headings or titles) in tantivy, under ``KB_HOME/keyword``.

A document is added, replaced or removed by its own passages and committed on its own, so a change costs
in proportion to the document, not the collection. Tantivy keeps its segments and merges them in the
background; a commit is atomic, and a reader sees the last one (``reload`` before each search).
Terms are stemmed here (English Snowball, no stop words) and indexed as given.
"""

from __future__ import annotations

import math
import re
import threading
from pathlib import Path

from kb.records import Passage

_GLUED_NUMBER = re.compile(r"(?<=[A-Za-z])(?=[0-9])")
# The index's layout; a folder of another layout is built anew (`kb ingest` fills it).
LAYOUT = "v1"
WRITER_HEAP = 64_000_000


def bm25_tokens(texts: list[str]) -> list[list[str]]:
    """Stemmed English terms without stop words; "Budgets4" (a footnote mark) is "Budgets 4"."""
    import bm25s
    import Stemmer

    texts = [_GLUED_NUMBER.sub(" ", t) for t in texts]
    return bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"),
                          return_ids=False, show_progress=False)


def _schema():
    import tantivy

    builder = tantivy.SchemaBuilder()
    builder.add_text_field("chunk_id", stored=True, tokenizer_name="raw")
    builder.add_text_field("doc_id", stored=True, tokenizer_name="raw", fast=True)
    builder.add_text_field("body", stored=False, tokenizer_name="whitespace", index_option="freq")
    return builder.build()


class KeywordIndex:
    """BM25 (tantivy's: k1 1.2, b 0.75) over the passages of every document."""

    def __init__(self, folder: Path) -> None:
        self.dir = folder / LAYOUT
        self._index = None
        self._writer = None
        self._lock = threading.Lock()

    @property
    def index(self):
        if self._index is None:
            import tantivy

            self.dir.mkdir(parents=True, exist_ok=True)
            self._index = tantivy.Index(_schema(), path=str(self.dir), reuse=True)
        return self._index

    # -- writing (one writer: the ingestion holding the lock of KB_HOME) ---------------------------
    def _writing(self):
        if self._writer is None:
            self._writer = self.index.writer(heap_size=WRITER_HEAP, num_threads=1)
        return self._writer

    def replace_document(self, doc_id: str, passages: list[Passage], title: str) -> None:
        """Index a document's passages in place of what it had, and commit."""
        import tantivy

        writer = self._writing()
        writer.delete_documents_by_term("doc_id", doc_id)
        bodies = bm25_tokens([p.embed_text(title) for p in passages]) if passages else []
        for p, terms in zip(passages, bodies):
            writer.add_document(tantivy.Document(chunk_id=p.chunk_id, doc_id=doc_id, body=" ".join(terms)))
        writer.commit()

    def remove_document(self, doc_id: str) -> None:
        writer = self._writing()
        writer.delete_documents_by_term("doc_id", doc_id)
        writer.commit()

    def close(self) -> None:
        """Let background merges finish and release the writer."""
        if self._writer is not None:
            self._writer.wait_merging_threads()
            self._writer = None

    # -- reading -------------------------------------------------------------------------------
    def _searcher(self):
        with self._lock:
            self.index.reload()
            return self.index.searcher()

    def top(self, query: str, n: int, allowed: list[str] | None = None, widen: int = 0) -> list[tuple[str, float]]:
        """The ``n`` best passages for ``query`` by BM25; only those of ``allowed`` (chunk ids) when given,
        found among the ``n * widen`` best of all when ``widen`` (cheaper than a set of thousands of ids)."""
        import tantivy

        terms = bm25_tokens([query])[0]
        if not terms or allowed == []:
            return []
        schema = self.index.schema
        query_ = tantivy.Query.boolean_query([(tantivy.Occur.Should, tantivy.Query.term_query(schema, "body", t))
                                              for t in terms])
        searcher = self._searcher()
        if allowed is not None and widen:
            admitted = set(allowed)
            found = self._hits(searcher, query_, n * widen)
            return [(cid, score) for cid, score in found if cid in admitted][:n]
        if allowed is not None:
            query_ = tantivy.Query.boolean_query([
                (tantivy.Occur.Must, query_),
                (tantivy.Occur.Must, tantivy.Query.const_score_query(
                    tantivy.Query.term_set_query(schema, "chunk_id", allowed), 0.0))])
        return self._hits(searcher, query_, n)

    @staticmethod
    def _hits(searcher, query, n: int) -> list[tuple[str, float]]:
        return [(searcher.doc(address)["chunk_id"][0], float(score))
                for score, address in searcher.search(query, n).hits if score > 0]

    def idf(self, terms: list[str]) -> dict[str, float]:
        """BM25's inverse document frequency of stemmed terms (unknown terms are as rare as a term can be)."""
        searcher = self._searcher()
        n = searcher.num_docs
        return {t: math.log(1 + (n - (df := searcher.doc_freq("body", t)) + 0.5) / (df + 0.5)) if n else 0.0
                for t in terms}

    def document_counts(self) -> dict[str, int]:
        """Passages indexed per document: what ``kb check`` compares with the manifest."""
        import tantivy

        searcher = self._searcher()
        if not searcher.num_docs:
            return {}
        got = searcher.aggregate(tantivy.Query.all_query(),
                                 {"docs": {"terms": {"field": "doc_id", "size": 10_000_000}}})
        return {b["key"]: int(b["doc_count"]) for b in got["docs"]["buckets"]}
