"""The knowledge base as a llama-index retriever, for llama-index query engines and agents.

    from llama_index.core.query_engine import RetrieverQueryEngine
    engine = RetrieverQueryEngine.from_args(KnowledgeBaseRetriever(kb), llm=my_llm)

Each node is one passage with the metadata a citation needs (document, title, page, offsets,
concepts, places, dimensions), ranked by the same hybrid + ontology search as ``kb search``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from kb.retrieval import Filters, hit_json

if TYPE_CHECKING:
    from kb.knowledge import KnowledgeBase


class KnowledgeBaseRetriever(BaseRetriever):
    def __init__(self, kb: "KnowledgeBase", k: int = 5, mode: str = "hybrid",
                 filters: Filters | None = None, expand: bool = True) -> None:
        super().__init__()
        self.kb, self.k, self.mode, self.filters, self.expand = kb, k, mode, filters, expand

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        result = self.kb.search(query_bundle.query_str, k=self.k, mode=self.mode, filters=self.filters,
                                expand=self.expand)
        labels = self.kb.labels()
        nodes = []
        for hit in result.hits:
            meta = {k: v for k, v in hit_json(hit, labels).items() if v is not None and k != "text"}
            node = TextNode(id_=hit.passage.chunk_id, text=hit.passage.text, metadata=meta,
                            start_char_idx=hit.passage.start, end_char_idx=hit.passage.end,
                            excluded_embed_metadata_keys=list(meta), excluded_llm_metadata_keys=list(meta))
            nodes.append(NodeWithScore(node=node, score=hit.score))
        return nodes
