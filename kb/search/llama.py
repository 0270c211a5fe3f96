"""The knowledge base as a llama-index retriever, for llama-index query engines and agents.

    from llama_index.core.query_engine import RetrieverQueryEngine
    engine = RetrieverQueryEngine.from_args(KnowledgeBaseRetriever(kb.retriever, kb.labels()), llm=my_llm)

Each node is one passage with the metadata a citation needs (document, title, page, offsets,
concepts, places, dimensions), ranked by the same hybrid + ontology search as ``kb search``.
"""

from __future__ import annotations

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from kb.records import Filters
from kb.search.retrieval import Retriever


class KnowledgeBaseRetriever(BaseRetriever):
    """``labels`` (concept, place and dimension ids to labels) names the tags in each node's metadata."""

    def __init__(self, retriever: Retriever, labels: dict[str, str] | None = None, k: int = 5,
                 mode: str = "hybrid", filters: Filters | None = None, expand: bool = True) -> None:
        super().__init__()
        self.retriever, self.labels = retriever, labels or {}
        self.k, self.mode, self.filters, self.expand = k, mode, filters, expand

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        result = self.retriever.search(query_bundle.query_str, k=self.k, mode=self.mode, filters=self.filters,
                                       expand=self.expand)
        nodes = []
        for hit in result.hits:
            meta = {k: v for k, v in hit.to_json(self.labels).items() if v is not None and k != "text"}
            node = TextNode(id_=hit.passage.chunk_id, text=hit.passage.text, metadata=meta,
                            start_char_idx=hit.passage.start, end_char_idx=hit.passage.end,
                            excluded_embed_metadata_keys=list(meta), excluded_llm_metadata_keys=list(meta))
            nodes.append(NodeWithScore(node=node, score=hit.score))
        return nodes
