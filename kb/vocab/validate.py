"""Validation of the vocabulary and the knowledge graph: SHACL shapes plus label checks.

Every problem is one line that names the file it lives in and what is wrong, so a person
editing ``ontology/*.ttl`` (or a broken ``KB_HOME/graph``) can go straight to it.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from rdflib import RDF, Graph, Literal, URIRef
from rdflib.namespace import SH, SKOS

from kb.vocab.linking import tokens
from kb.vocab.ontology import SHAPES_FILE, OntologyError, parse_files, slug


def _file_of(folder: Path) -> dict[URIRef, str]:
    """Which file defines each subject (the first file that says anything about it)."""
    owner: dict[URIRef, str] = {}
    for path in sorted(folder.glob("*.ttl")):
        if path.name == SHAPES_FILE:
            continue
        g = Graph().parse(path, format="turtle")
        for s in set(g.subjects()):
            owner.setdefault(s, str(path))
    return owner


def _shacl_problems(data: Graph, shapes: Graph, where: dict[URIRef, str], default: str | None) -> list[str]:
    """SHACL results as lines; with no ``default``, only results about nodes in ``where``."""
    from pyshacl import validate as shacl_validate  # with scipy, a tenth of a second that reading commands skip

    conforms, report, _ = shacl_validate(data, shacl_graph=shapes, inference="none", allow_warnings=True)
    if conforms:
        return []
    problems = []
    for result in report.subjects(RDF.type, SH.ValidationResult):
        focus = report.value(result, SH.focusNode)
        if default is None and focus not in where:
            continue
        message = report.value(result, SH.resultMessage)
        value = report.value(result, SH.value)
        detail = f" (value: {value})" if value is not None else ""
        problems.append(f"{where.get(focus, default)}: {slug(focus)}: {message}{detail}")
    return sorted(set(problems))


def label_problems(graph: Graph, where: dict[URIRef, str], default: str = "ontology") -> list[str]:
    """Labels that would make linking ambiguous: one label, folded, on two concepts; and slug clashes."""
    by_label: dict[tuple[str, ...], set[URIRef]] = defaultdict(set)
    for prop in (SKOS.prefLabel, SKOS.altLabel):
        for s, o in graph.subject_objects(prop):
            if isinstance(o, Literal) and (s, RDF.type, SKOS.Concept) in graph:
                by_label[tuple(t for t, _, _ in tokens(str(o)))].add(s)
    problems = []
    for words, owners in sorted(by_label.items()):
        if words and len(owners) > 1:
            names = sorted(slug(o) for o in owners)
            problems.append(f"{where.get(sorted(owners)[0], default)}: the label '{' '.join(words)}' "
                            f"belongs to {len(owners)} concepts ({', '.join(names)}): passages could not be linked unambiguously")
    by_slug: dict[str, set[URIRef]] = defaultdict(set)
    for s in set(graph.subjects(RDF.type, SKOS.Concept)):
        by_slug[slug(s)].add(s)
    for key, owners in sorted(by_slug.items()):
        if len(owners) > 1:
            problems.append(f"{where.get(sorted(owners)[0], default)}: the id '{key}' is used by "
                            f"{', '.join(sorted(map(str, owners)))}")
    return problems


def shapes_graph(folder: Path) -> Graph:
    path = folder / SHAPES_FILE
    if not path.exists():
        raise OntologyError(f"{path}: the SHACL shapes are missing")
    try:
        return Graph().parse(path, format="turtle")
    except Exception as exc:
        raise OntologyError(f"{path}: not valid Turtle: {str(exc).strip().splitlines()[0]}") from exc


def validate_vocabulary(folder: Path) -> list[str]:
    """Problems with ``ontology/``: Turtle syntax (raised as OntologyError), shapes, labels."""
    vocabulary = parse_files(folder)
    where = _file_of(folder)
    return _shacl_problems(vocabulary, shapes_graph(folder), where, str(folder)) + label_problems(vocabulary, where, str(folder))


def validate_graph(vocabulary: Graph, documents: dict[str, Graph], folder: Path) -> list[str]:
    """Problems with the ingested documents and passages (each named by where its graph is), against the vocabulary."""
    data = Graph()
    data += vocabulary
    where: dict[URIRef, str] = {}
    for path, part in documents.items():
        data += part
        where.update((s, str(path)) for s in set(part.subjects()))
    return _shacl_problems(data, shapes_graph(folder), where, None)
