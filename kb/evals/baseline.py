"""The baseline ``kb eval`` compares against: llama-index's default dense retriever over the same texts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core import Document as LlamaDocument
from llama_index.core import Settings as LlamaSettings
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.vector_stores import SimpleVectorStore
from pydantic import PrivateAttr

from kb.embed import Embedder
from kb.evals.metrics import Span, collapsed_index, locate
from kb.evals.report import DEPTH
from kb.records import Document


class KBEmbedding(BaseEmbedding):
    """Our embedding model as a llama-index embedding (the same vectors as ``kb.embedder``)."""

    _embedder: Any = PrivateAttr()

    def __init__(self, inner, **kwargs) -> None:
        super().__init__(model_name=str(getattr(inner, "model_path", "kb-embedder")), embed_batch_size=64, **kwargs)
        self._embedder = inner

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embedder.encode([query])[0].tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embedder.encode([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.encode(list(texts)).tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embedding(text)


class LlamaBaseline:
    """llama-index's default dense retriever: ``SentenceSplitter()`` nodes in an in-memory ``VectorStoreIndex``."""

    def __init__(self, documents: Sequence[Document], embedder: Embedder, top_k: int = DEPTH) -> None:
        # Nothing here may call an LLM (or reach for OpenAI's default): a mock, restored afterwards.
        previous = getattr(LlamaSettings, "_llm", None)
        LlamaSettings.llm = MockLLM()
        try:
            splitter = SentenceSplitter()
            self.chunk_size, self.chunk_overlap = splitter.chunk_size, splitter.chunk_overlap
            docs = [LlamaDocument(text=d.text, metadata={"doc_id": d.meta.doc_id}, id_=d.meta.doc_id) for d in documents]
            self.nodes = splitter.get_nodes_from_documents(docs)
            self.relocated = self._fill_offsets({d.meta.doc_id: d.text for d in documents})
            storage = StorageContext.from_defaults(vector_store=SimpleVectorStore())
            self.index = VectorStoreIndex(self.nodes, storage_context=storage, embed_model=KBEmbedding(embedder),
                                          show_progress=False)
            self.retriever = self.index.as_retriever(similarity_top_k=top_k)
        finally:
            LlamaSettings._llm = previous

    def _fill_offsets(self, texts: dict[str, str]) -> int:
        """Give any node without character offsets the ones its text has in the document; count them."""
        fixed = 0
        for node in self.nodes:
            if node.start_char_idx is None:
                text = texts[node.metadata["doc_id"]]
                found = locate(node.get_content(), *collapsed_index(text))
                if found:
                    node.start_char_idx, node.end_char_idx = found
                    fixed += 1
        return fixed

    def search(self, question: str) -> list[tuple[Span, int]]:
        """The top nodes as spans of canonical text, with their lengths in characters."""
        out = []
        for hit in self.retriever.retrieve(question):
            node = hit.node
            if node.start_char_idx is None or node.end_char_idx is None:
                continue
            out.append((Span(node.metadata["doc_id"], node.start_char_idx, node.end_char_idx), len(node.get_content())))
        return out
