"""The vocabulary (``ontology/*.ttl``): concepts, dimensions and places as plain records.

The RDF stays the source of truth; this module reads it once into dataclasses that the
linker, retrieval and the front ends use without touching rdflib.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rdflib import RDF, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, SKOS

from kb.records import Concept, Initiative

SLO = Namespace("https://w3id.org/syslead/ontology#")
GEO = Namespace("http://www.w3.org/2003/01/geo/wgs84_pos#")
BASE = "https://w3id.org/syslead/"
SCHEMES = {SLO.concepts: "concepts", SLO.dimensions: "dimensions", SLO.places: "places",
           SLO.organisations: "organisations"}
SHAPES_FILE = "shapes.ttl"


class OntologyError(Exception):
    """A vocabulary file that cannot be used; the message names the file and the problem."""


def slug(uri: URIRef | str) -> str:
    return str(uri).rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1]


def parse_files(folder: Path, include_shapes: bool = False) -> Graph:
    """Parse every Turtle file of the vocabulary; a broken one raises OntologyError naming it."""
    graph = Graph()
    files = sorted(folder.glob("*.ttl"))
    if not files:
        raise OntologyError(f"{folder}: no Turtle (.ttl) files: the vocabulary is missing")
    for path in files:
        if path.name == SHAPES_FILE and not include_shapes:
            continue
        try:
            graph.parse(path, format="turtle")
        except Exception as exc:  # rdflib raises many types for bad syntax
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise OntologyError(f"{path}: not valid Turtle: {first}") from exc
    return graph


def _text(graph: Graph, node, prop) -> str:
    values = [o for o in graph.objects(node, prop) if isinstance(o, Literal)]
    english = [v for v in values if v.language in (None, "en", "en-gb", "en-GB")]
    return str((english or values or [""])[0])


@dataclass
class Ontology:
    concepts: dict[str, Concept]
    initiatives: dict[str, Initiative]
    graph: Graph

    @classmethod
    def load(cls, folder: Path) -> "Ontology":
        graph = parse_files(folder)
        concepts: dict[str, Concept] = {}
        for node in set(graph.subjects(RDF.type, SKOS.Concept)):
            scheme = next((SCHEMES[s] for s in graph.objects(node, SKOS.inScheme) if s in SCHEMES), None)
            if scheme is None:
                continue
            lat, lon = graph.value(node, GEO.lat), graph.value(node, GEO.long)
            concepts[slug(node)] = Concept(
                id=slug(node), uri=str(node), label=_text(graph, node, SKOS.prefLabel) or slug(node),
                scheme=scheme,
                alt_labels=sorted({str(o) for o in graph.objects(node, SKOS.altLabel)}),
                hidden_labels=sorted({str(o) for o in graph.objects(node, SKOS.hiddenLabel)}),
                definition=_text(graph, node, SKOS.definition),
                broader=sorted({slug(o) for o in graph.objects(node, SKOS.broader)}
                               | {slug(s) for s in graph.subjects(SKOS.narrower, node)}),
                narrower=sorted({slug(o) for o in graph.objects(node, SKOS.narrower)}
                                | {slug(s) for s in graph.subjects(SKOS.broader, node)}),
                related=sorted({slug(o) for o in graph.objects(node, SKOS.related)}
                               | {slug(s) for s in graph.subjects(SKOS.related, node)}),
                lat=float(lat) if lat is not None else None, lon=float(lon) if lon is not None else None,
            )
        initiatives: dict[str, Initiative] = {}
        for node in set(graph.subjects(RDF.type, SLO.Initiative)):
            initiatives[slug(node)] = Initiative(
                id=slug(node), uri=str(node), label=_text(graph, node, SKOS.prefLabel) or slug(node),
                description=_text(graph, node, DCTERMS.description),
                places=sorted(slug(o) for o in graph.objects(node, SLO.initiativePlace)),
                concepts=sorted(slug(o) for o in graph.objects(node, SLO.initiativeConcept)),
                issue=_text(graph, node, SLO.issue), programme=_text(graph, node, SLO.programme),
                date=_text(graph, node, DCTERMS.date) or _text(graph, node, SLO.startDate),
            )
        return cls(concepts=concepts, initiatives=initiatives, graph=graph)

    def in_scheme(self, scheme: str) -> list[Concept]:
        return sorted((c for c in self.concepts.values() if c.scheme == scheme), key=lambda c: c.label.lower())

    def label(self, concept_id: str) -> str:
        c = self.concepts.get(concept_id)
        return c.label if c else concept_id

    def resolve(self, name: str, scheme: str | None = None) -> Concept | None:
        """A concept by id, preferred or alternative label (case-insensitive)."""
        key = name.strip().lower()
        candidates = [c for c in self.concepts.values() if scheme is None or c.scheme == scheme]
        for c in candidates:
            if c.id == key or c.label.lower() == key:
                return c
        for c in candidates:
            if key in (a.lower() for a in c.alt_labels):
                return c
        return None

    def narrower_closure(self, concept_id: str) -> set[str]:
        """The concept and everything narrower than it, transitively."""
        seen: set[str] = set()
        stack = [concept_id]
        while stack:
            cid = stack.pop()
            if cid in seen or cid not in self.concepts:
                continue
            seen.add(cid)
            stack.extend(self.concepts[cid].narrower)
        return seen

    def broader_closure(self, concept_id: str) -> list[str]:
        seen: list[str] = []
        stack = list(self.concepts[concept_id].broader) if concept_id in self.concepts else []
        while stack:
            cid = stack.pop(0)
            if cid not in seen and cid in self.concepts:
                seen.append(cid)
                stack.extend(self.concepts[cid].broader)
        return seen

    def regions(self) -> dict[str, str]:
        """Each place's region on the evidence map: the place two steps below its country that holds it
        (London for Barnet, Yorkshire and the Humber for Bradford, Plymouth for itself), or the place itself
        when it lies higher (England, Denmark, New York)."""
        out = {}
        for c in self.in_scheme("places"):
            line = [c.id, *self.broader_closure(c.id)]  # the place, then what holds it, up to its country
            out[c.id] = line[-3] if len(line) >= 3 else c.id
        return out

    def roots(self, scheme: str) -> list[Concept]:
        return [c for c in self.in_scheme(scheme) if not any(b in self.concepts for b in c.broader)]
