"""The knowledge graph: the vocabulary plus documents and passages with their links, in a triple store.

Each document's triples are one named graph, replaced in one transaction, so re-ingesting a document
replaces exactly its triples and a killed run never leaves half of them. The vocabulary is a named graph
of its own, reloaded when it changes. SPARQL runs on the store (the union of its graphs), SELECT and ASK
only; the store is Oxigraph under ``KB_HOME`` or a SPARQL 1.1 server (:mod:`kb.stores.triplestore`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pyoxigraph as ox
from rdflib import RDF, XSD, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, SKOS

from kb.records import Document, Passage
from kb.stores.triplestore import TripleStore, check_query
from kb.vocab.ontology import BASE, SLO, Ontology

DOC = Namespace(BASE + "doc/")
PASSAGE = Namespace(BASE + "passage/")
GRAPH = BASE + "graph/"
DOC_GRAPH = GRAPH + "doc/"
VOCABULARY = GRAPH + "vocabulary"
VERSION = GRAPH + "version"  # the vocabulary's version
LINKS = {"concepts": SLO.mentionsConcept, "places": SLO.aboutPlace, "dimensions": SLO.evidencesDimension}
PREFIXES = {
    "skos": SKOS, "dcterms": DCTERMS, "slo": SLO, "xsd": XSD, "rdf": RDF,
    "geo": Namespace("http://www.w3.org/2003/01/geo/wgs84_pos#"),
    "concept": Namespace(BASE + "concept/"), "dim": Namespace(BASE + "dimension/"),
    "place": Namespace(BASE + "place/"), "ini": Namespace(BASE + "initiative/"),
    "doc": DOC, "passage": PASSAGE,
}
PREFIX_IRIS = {p: str(ns) for p, ns in PREFIXES.items()}


# Queries the library runs itself; user text only ever reaches them as bound variables.
PASSAGES_FOR = """
SELECT DISTINCT ?id WHERE {
  ?concept skos:broader* ?target .
  ?passage slo:mentionsConcept|slo:aboutPlace|slo:evidencesDimension ?concept ;
           dcterms:identifier ?id .
}"""
LOOKUP = """
SELECT DISTINCT ?concept WHERE {
  ?concept skos:prefLabel|skos:altLabel ?name .
  FILTER(LCASE(STR(?name)) = LCASE(STR(?label)))
}"""
LINK_COUNTS = """
SELECT ?concept (COUNT(DISTINCT ?passage) AS ?n) WHERE {
  ?passage slo:mentionsConcept|slo:aboutPlace|slo:evidencesDimension ?concept .
} GROUP BY ?concept"""
LINKS_PER_GRAPH = """
SELECT ?g (COUNT(*) AS ?n) WHERE {
  GRAPH ?g { ?passage slo:mentionsConcept|slo:aboutPlace|slo:evidencesDimension ?concept }
} GROUP BY ?g"""
PASSAGE_IDS = "SELECT ?id WHERE { ?passage a slo:Passage ; dcterms:identifier ?id }"
DOCUMENT_IDS = """SELECT ?g ?id WHERE { GRAPH ?g { ?doc a slo:Document ; dcterms:identifier ?id } }"""


class QueryRefused(ValueError):
    """A SPARQL request that is not a SELECT or ASK query, or does not parse."""


def doc_uri(doc_id: str) -> URIRef:
    return DOC[quote(doc_id, safe="-_.")]


def doc_graph(doc_id: str) -> str:
    """The named graph that holds one document's triples."""
    return DOC_GRAPH + quote(doc_id, safe="-_.")


def passage_uri(chunk_id: str) -> URIRef:
    return PASSAGE[quote(chunk_id, safe="-_.:")]


def document_triples(doc: Document, passages: list[Passage], ontology: Ontology) -> Graph:
    """The triples one document contributes: the document, its passages and their links."""
    g = Graph()
    d = doc_uri(doc.meta.doc_id)
    m = doc.meta
    g.add((d, RDF.type, SLO.Document))
    g.add((d, DCTERMS.identifier, Literal(m.doc_id)))
    g.add((d, DCTERMS.title, Literal(m.title)))
    for author in m.authors:
        g.add((d, DCTERMS.creator, Literal(author)))
    if m.year:
        g.add((d, DCTERMS.date, Literal(str(m.year), datatype=XSD.gYear)))
    if m.publisher:
        g.add((d, DCTERMS.publisher, Literal(m.publisher)))
    g.add((d, DCTERMS.type, Literal(m.type)))
    if m.url:
        g.add((d, DCTERMS.source, URIRef(m.url) if m.url.startswith("http") else Literal(m.url)))
    for p in passages:
        node = passage_uri(p.chunk_id)
        g.add((node, RDF.type, SLO.Passage))
        g.add((node, DCTERMS.identifier, Literal(p.chunk_id)))
        g.add((node, DCTERMS.isPartOf, d))
        g.add((node, SLO.start, Literal(p.start, datatype=XSD.integer)))
        g.add((node, SLO.end, Literal(p.end, datatype=XSD.integer)))
        if p.page is not None:
            g.add((node, SLO.page, Literal(p.page, datatype=XSD.integer)))
        for field, prop in LINKS.items():
            for cid in getattr(p, field):
                if cid in ontology.concepts:
                    g.add((node, prop, URIRef(ontology.concepts[cid].uri)))
    return g


def replace_graph(graph: str, g: Graph) -> str:
    """One update that replaces a named graph's triples (N-Triples is SPARQL's own term syntax)."""
    name = str(ox.NamedNode(graph))
    return f"DROP SILENT GRAPH {name} ;\nINSERT DATA {{ GRAPH {name} {{\n{g.serialize(format='nt')}}} }}"


class KnowledgeGraph:
    """The vocabulary and every document's graph in one store; SPARQL with bound values only."""

    def __init__(self, store: TripleStore, ontology: Ontology, vocabulary_version: str = "",
                 legacy: Path | None = None) -> None:
        self.store = store
        self.ontology = ontology
        self.vocabulary_version = vocabulary_version
        self.legacy = legacy  # a folder of per-document N-Triples files, from before the store
        self._ready = False

    def _prepare(self) -> None:
        """Once per process: the vocabulary graph brought up to date, N-Triples files of old moved in."""
        if self._ready:
            return
        self._ready = True
        known = self.store.select("SELECT ?v WHERE { GRAPH ?version { ?vocab dcterms:hasVersion ?v } }",
                                  PREFIX_IRIS, {"version": ox.NamedNode(VERSION), "vocab": ox.NamedNode(VOCABULARY)})
        if [r["v"] for r in known["rows"]] != [self.vocabulary_version]:
            version = Graph()
            version.add((URIRef(VOCABULARY), DCTERMS.hasVersion, Literal(self.vocabulary_version)))
            self.store.update(replace_graph(VOCABULARY, self.ontology.graph) + " ;\n" + replace_graph(VERSION, version))
        if self.legacy is not None and self.legacy.is_dir():
            self._migrate(self.legacy)

    def _migrate(self, folder: Path) -> None:
        for path in sorted(folder.glob("*.nt")):
            g = Graph()
            g.parse(path, format="nt")
            ident = g.value(None, RDF.type, SLO.Document)
            doc_id = str(g.value(ident, DCTERMS.identifier)) if ident is not None else path.stem
            self.store.update(replace_graph(doc_graph(doc_id), g))
            path.unlink()
        if not any(folder.iterdir()):
            folder.rmdir()

    # -- writing ---------------------------------------------------------------------------------------
    def replace_document(self, doc: Document, passages: list[Passage]) -> None:
        self._prepare()
        triples = document_triples(doc, passages, self.ontology)
        self.store.update(replace_graph(doc_graph(doc.meta.doc_id), triples))

    def remove_document(self, doc_id: str) -> None:
        self._prepare()
        self.store.update(f"DROP SILENT GRAPH {ox.NamedNode(doc_graph(doc_id))}")

    # -- reading ---------------------------------------------------------------------------------------
    def document_ids(self) -> set[str]:
        """The documents the graph holds, each in its own graph."""
        return {r["id"] for r in self.select(DOCUMENT_IDS)["rows"] if r["g"].startswith(DOC_GRAPH)}

    def document_graph(self, doc_id: str) -> Graph:
        """One document's triples, as rdflib reads them (for SHACL validation)."""
        self._prepare()
        g = Graph()
        g.parse(data=self.store.ntriples(doc_graph(doc_id)), format="nt")
        return g

    def passage_ids(self) -> set[str]:
        return {r["id"] for r in self.select(PASSAGE_IDS)["rows"]}

    def link_counts(self) -> Counter:
        """Passages linked to each concept, place and dimension id (a GROUP BY over every link: `kb check`
        compares it with the catalogue's; the pages read the catalogue's)."""
        uri_to_id = {c.uri: c.id for c in self.ontology.concepts.values()}
        return Counter({uri_to_id.get(r["concept"], r["concept"]): int(r["n"]) for r in self.select(LINK_COUNTS)["rows"]})

    def links_per_document(self) -> dict[str, int]:
        """How many links (passage to concept, place or dimension) each document's graph holds."""
        ids = {r["g"]: r["id"] for r in self.select(DOCUMENT_IDS)["rows"]}
        return {ids[r["g"]]: int(r["n"]) for r in self.select(LINKS_PER_GRAPH)["rows"] if r["g"] in ids}

    def select(self, text: str, bindings: dict[str, ox.NamedNode | ox.Literal] | None = None) -> dict:
        """A query the library wrote itself, values bound."""
        self._prepare()
        return self.store.select(text, PREFIX_IRIS, bindings)

    def query(self, text: str) -> dict:
        """Run a user's SELECT or ASK query; anything else is refused."""
        try:
            kind = check_query(text, PREFIX_IRIS)
        except SyntaxError as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if any(word in text.upper() for word in ("INSERT", "DELETE", "LOAD", "CLEAR", "DROP", "CREATE")):
                raise QueryRefused("only SELECT and ASK queries are allowed; updates are refused") from exc
            raise QueryRefused(f"not a valid SPARQL query: {message}") from exc
        if kind == "graph":
            raise QueryRefused("only SELECT and ASK queries are allowed (this is a CONSTRUCT or DESCRIBE query)")
        return self.select(text)

    def passages_for(self, concept_uri: str) -> list[str]:
        """Ids of passages linked to a concept, place or dimension or to anything narrower."""
        rows = self.select(PASSAGES_FOR, {"target": ox.NamedNode(concept_uri)})["rows"]
        return sorted(r["id"] for r in rows)

    def lookup(self, label: str) -> list[str]:
        """URIs of the concepts whose preferred or alternative label is ``label`` (any case)."""
        return sorted(r["concept"] for r in self.select(LOOKUP, {"label": ox.Literal(label)})["rows"])

    def union(self) -> Graph:
        """Every triple (vocabulary and documents) as one rdflib graph: for export, not for queries."""
        self._prepare()
        g = Graph()
        for prefix, ns in PREFIXES.items():
            g.bind(prefix, ns)
        for name in sorted(self.store.graphs() - {VERSION}):
            g.parse(data=self.store.ntriples(name), format="nt")
        return g

    def export(self, fmt: str) -> str:
        formats = {"ttl": "turtle", "turtle": "turtle", "jsonld": "json-ld", "json-ld": "json-ld", "nt": "nt"}
        if fmt not in formats:
            raise ValueError(f"unknown format {fmt!r}: use ttl or jsonld")
        return self.union().serialize(format=formats[fmt])
