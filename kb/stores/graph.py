"""The knowledge graph: the vocabulary plus documents and passages with their links (rdflib).

Each document's triples live in their own N-Triples file under ``KB_HOME/graph/``, written
atomically, so re-ingesting a document replaces exactly its triples and a killed run never
leaves a half-written graph. SPARQL runs over the union, SELECT and ASK only.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from urllib.parse import quote

from rdflib import RDF, XSD, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, SKOS

from kb.files import write_atomic
from kb.records import Document, Passage
from kb.vocab.ontology import BASE, SLO, Ontology

DOC = Namespace(BASE + "doc/")
PASSAGE = Namespace(BASE + "passage/")
LINKS = {"concepts": SLO.mentionsConcept, "places": SLO.aboutPlace, "dimensions": SLO.evidencesDimension}
PREFIXES = {
    "skos": SKOS, "dcterms": DCTERMS, "slo": SLO, "xsd": XSD, "rdf": RDF,
    "geo": Namespace("http://www.w3.org/2003/01/geo/wgs84_pos#"),
    "concept": Namespace(BASE + "concept/"), "dim": Namespace(BASE + "dimension/"),
    "place": Namespace(BASE + "place/"), "ini": Namespace(BASE + "initiative/"),
    "doc": DOC, "passage": PASSAGE,
}


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


class QueryRefused(ValueError):
    """A SPARQL request that is not a SELECT or ASK query, or does not parse."""


def doc_uri(doc_id: str) -> URIRef:
    return DOC[quote(doc_id, safe="-_.")]


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


class KnowledgeGraph:
    def __init__(self, folder: Path, ontology: Ontology) -> None:
        self.folder = folder
        self.ontology = ontology
        self._docs: dict[str, Graph] | None = None

    def path(self, doc_id: str) -> Path:
        return self.folder / f"{quote(doc_id, safe='-_.')}.nt"

    @property
    def docs(self) -> dict[str, Graph]:
        if self._docs is None:
            self._docs = {}
            for path in sorted(self.folder.glob("*.nt")) if self.folder.exists() else []:
                g = Graph()
                g.parse(path, format="nt")
                ident = g.value(None, RDF.type, SLO.Document)
                doc_id = str(g.value(ident, DCTERMS.identifier)) if ident is not None else path.stem
                self._docs[doc_id] = g
        return self._docs

    def replace_document(self, doc: Document, passages: list[Passage]) -> None:
        g = document_triples(doc, passages, self.ontology)
        write_atomic(self.path(doc.meta.doc_id), g.serialize(format="nt"))
        self.docs[doc.meta.doc_id] = g

    def remove_document(self, doc_id: str) -> None:
        self.path(doc_id).unlink(missing_ok=True)
        self.docs.pop(doc_id, None)

    def union(self) -> Graph:
        g = Graph()
        for prefix, ns in PREFIXES.items():
            g.bind(prefix, ns)
        g += self.ontology.graph
        for part in self.docs.values():
            g += part
        return g

    def passage_ids(self) -> set[str]:
        return {
            str(g.value(node, DCTERMS.identifier))
            for g in self.docs.values() for node in g.subjects(RDF.type, SLO.Passage)
        }

    def link_counts(self) -> Counter:
        """Passages linked to each concept, place and dimension id."""
        counts: Counter = Counter()
        uri_to_id = {c.uri: c.id for c in self.ontology.concepts.values()}
        for g in self.docs.values():
            for prop in LINKS.values():
                for _, o in g.subject_objects(prop):
                    counts[uri_to_id.get(str(o), str(o))] += 1
        return counts

    def query(self, text: str, bindings: dict | None = None) -> dict:
        """Run a SELECT or ASK query; anything else is refused. Values are bound, never pasted."""
        from rdflib.plugins.sparql import prepareQuery  # a fifth of a second that commands without SPARQL skip

        try:
            prepared = prepareQuery(text, initNs=PREFIXES)
        except Exception as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if any(word in text.upper() for word in ("INSERT", "DELETE", "LOAD", "CLEAR", "DROP", "CREATE")):
                raise QueryRefused("only SELECT and ASK queries are allowed; updates are refused") from exc
            raise QueryRefused(f"not a valid SPARQL query: {message}") from exc
        kind = prepared.algebra.name
        if kind not in ("SelectQuery", "AskQuery"):
            raise QueryRefused(f"only SELECT and ASK queries are allowed (this is a {kind.replace('Query', '').upper()} query)")
        result = self.union().query(prepared, initBindings=bindings or {})
        if kind == "AskQuery":
            return {"boolean": bool(result.askAnswer)}
        names = [str(v) for v in result.vars]
        rows = [{n: (None if row[i] is None else str(row[i])) for i, n in enumerate(names)} for row in result]
        return {"vars": names, "rows": rows}

    def passages_for(self, concept_uri: str) -> list[str]:
        """Ids of passages linked to a concept, place or dimension or to anything narrower."""
        rows = self.query(PASSAGES_FOR, {"target": URIRef(concept_uri)})["rows"]
        return sorted(r["id"] for r in rows)

    def lookup(self, label: str) -> list[str]:
        """URIs of the concepts whose preferred or alternative label is ``label`` (any case)."""
        return sorted(r["concept"] for r in self.query(LOOKUP, {"label": Literal(label)})["rows"])

    def export(self, fmt: str) -> str:
        formats = {"ttl": "turtle", "turtle": "turtle", "jsonld": "json-ld", "json-ld": "json-ld", "nt": "nt"}
        if fmt not in formats:
            raise ValueError(f"unknown format {fmt!r}: use ttl or jsonld")
        return self.union().serialize(format=formats[fmt])
