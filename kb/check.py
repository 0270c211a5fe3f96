"""``kb check``: do Chroma, the graph, the keyword index, the catalogue, the documents and the manifest
describe the same passages?

The manifest is the record of what finished; anything else is either completed by
re-ingesting its file or removed as an orphan of a run that was killed.
"""

from __future__ import annotations

from pathlib import Path

from ingest.chunk import CHUNKER_VERSION
from kb.index import Indexer
from kb.records import SentenceRecord
from kb.stores.graph import KnowledgeGraph, doc_graph
from kb.vocab.ontology import Ontology
from kb.vocab.validate import validate_graph, validate_vocabulary


def _id_doc(chunk_id: str) -> str:
    return chunk_id.rsplit(":", 1)[0]


def validate(folder: Path, ontology: Ontology, graph: KnowledgeGraph) -> list[str]:
    """SHACL and label problems of the vocabulary and of the ingested graph, each naming its file."""
    documents = {f"graph <{doc_graph(doc_id)}>": graph.document_graph(doc_id) for doc_id in sorted(graph.document_ids())}
    return validate_vocabulary(folder) + validate_graph(ontology.graph, documents, folder)


def check(indexer: Indexer, ontology: Ontology, repair: bool = False) -> list[str]:
    """Problems in plain words; with ``repair``, fix each and say what was done."""
    store, graph, docs, manifest = indexer.vectors, indexer.graph, indexer.documents, indexer.manifest
    problems: list[str] = validate(indexer.settings.ontology, ontology, graph)
    expected = manifest.chunk_ids()
    in_store = set(store.ids())
    in_graph = graph.passage_ids()
    docs_on_disk = set(docs.ids())
    docs_expected = {e.doc_id for e in manifest.entries.values()}

    store_orphans = sorted(in_store - expected)
    graph_orphans = sorted(in_graph - expected)
    incomplete = sorted({e.path for e in manifest.entries.values()
                         if not set(e.chunk_ids) <= in_store or not set(e.chunk_ids) <= in_graph
                         or e.doc_id not in docs_on_disk})
    doc_orphans = sorted(docs_on_disk - docs_expected)
    sentences: dict[str, list[str]] = {}
    for sid in store.sentence_ids():
        sentences.setdefault(SentenceRecord.chunk_of(sid), []).append(sid)
    sentence_orphans = sorted(s for chunk, ids in sentences.items() if chunk not in expected for s in ids)
    incomplete = sorted(set(incomplete) | {
        e.path for e in manifest.entries.values()
        if e.sentences is not None and sum(len(sentences.get(c, ())) for c in e.chunk_ids) != e.sentences})
    graph_doc_orphans = sorted(graph.document_ids() - docs_expected)

    if store_orphans:
        problems.append(f"{len(store_orphans)} passage(s) in Chroma that no finished ingestion recorded "
                        f"(from documents {', '.join(sorted({_id_doc(i) for i in store_orphans}))})")
    if sentence_orphans:
        problems.append(f"{len(sentence_orphans)} sentence vector(s) in Chroma of passages that no finished ingestion recorded")
    if graph_orphans:
        problems.append(f"{len(graph_orphans)} passage(s) in the graph that no finished ingestion recorded")
    if doc_orphans or graph_doc_orphans:
        problems.append(f"document(s) stored but not in the manifest: {', '.join(sorted(set(doc_orphans) | set(graph_doc_orphans)))}")
    for path in incomplete:
        problems.append(f"{path}: its passages or sentences are missing from Chroma or the graph (an interrupted run?)")
    stale = sorted(e.path for e in manifest.entries.values() if e.vocabulary != indexer.vocabulary_hash)
    if stale:
        problems.append(f"{len(stale)} document(s) linked with an older vocabulary or older linking rules, or embedded with another model (`kb ingest` or --repair re-links them)")
    unsplit = sorted(e.path for e in manifest.entries.values() if e.sentences is None)
    if unsplit:
        problems.append(f"{len(unsplit)} document(s) ingested without sentence vectors by an older version "
                        "(`kb ingest` or --repair adds them)")
    rechunk = sorted(e.path for e in manifest.entries.values() if e.sentences is not None and e.chunker != CHUNKER_VERSION)
    if rechunk:
        problems.append(f"{len(rechunk)} document(s) split into passages by older chunking rules "
                        "(`kb ingest` or --repair splits them anew)")
    behind, extra = indexer.unindexed()
    if behind:
        problems.append(f"{len(behind)} document(s) missing from the keyword index or the catalogue, or held there in "
                        f"an older version: {', '.join(behind[:5])}{' …' if len(behind) > 5 else ''}")
    if extra:
        problems.append(f"document(s) in the keyword index or the catalogue but not in the manifest: {', '.join(extra)}")
    in_graph_links, in_catalogue_links = graph.links_per_document(), indexer.catalogue.links_per_document()
    mislinked = sorted(e.path for e in manifest.entries.values() if e.doc_id not in behind and e.path not in incomplete
                       and in_graph_links.get(e.doc_id, 0) != in_catalogue_links.get(e.doc_id, 0))
    if mislinked:
        problems.append(f"{len(mislinked)} document(s) linked differently in the graph and the catalogue "
                        "(`kb check --repair` ingests them again)")

    if repair and problems:
        store.delete(store_orphans)
        store.delete_sentences(sentence_orphans)
        for doc_id in set(doc_orphans) | set(graph_doc_orphans):
            graph.remove_document(doc_id)
            docs.delete(doc_id)
        if graph_orphans:
            for doc_id in {_id_doc(i) for i in graph_orphans} & docs_expected:
                entry = manifest.by_doc(doc_id)
                if entry:
                    incomplete = sorted(set(incomplete) | {entry.path})
        incomplete = sorted(set(incomplete) | set(stale) | set(unsplit) | set(rechunk) | set(mislinked))
        if incomplete:
            for path in incomplete:
                manifest.entries[path].sha256 = ""  # forces the file to be ingested again
                manifest.put(manifest.entries[path])
            existing = [Path(p) for p in incomplete if Path(p).exists()]
            gone = [p for p in incomplete if not Path(p).exists()]
            for p in gone:
                indexer.remove_document(manifest.entries[p].doc_id)
                manifest.remove(p)
            if existing:
                indexer.ingest(existing, progress=False)
        indexer.ingest([], progress=False)  # brings the keyword index and the catalogue in line
    return problems
