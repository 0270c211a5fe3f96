"""The knowledge graph: the shipped vocabulary, SHACL validation, passage links, SPARQL, export."""

from __future__ import annotations

import json
import shutil

import pytest
from rdflib import Graph

from kb.ui.cli import main
from kb.config import PROJECT_ROOT
from kb.check import validate
from kb.vocab.ontology import Ontology, OntologyError
from kb.vocab.validate import validate_vocabulary

ONTOLOGY = PROJECT_ROOT / "ontology"


@pytest.fixture(scope="module")
def vocabulary() -> Ontology:
    return Ontology.load(ONTOLOGY)


def test_the_shipped_vocabulary_is_complete(vocabulary):
    dims = [c.id for c in vocabulary.roots("dimensions")]
    assert sorted(dims) == sorted(f"ways-of-{d}" for d in ("feeling", "perceiving", "thinking", "relating", "doing", "being"))
    assert all(vocabulary.concepts[d].narrower for d in dims), "every dimension has facets"
    assert len(vocabulary.in_scheme("concepts")) >= 60
    pooled = vocabulary.resolve("pooled funding")
    assert pooled is not None and pooled.id == "pooled-budgets"
    assert {"community-budgets", "total-place", "better-care-fund"} <= vocabulary.narrower_closure("pooled-budgets")
    assert vocabulary.broader_closure("barnet")[:3] == ["london", "england", "united-kingdom"]
    assert "north-carolina" in vocabulary.narrower_closure("united-states")
    places = vocabulary.in_scheme("places")
    assert all(p.lat is not None and p.lon is not None for p in places)
    barnet = vocabulary.concepts["barnet"]
    assert 51.5 < barnet.lat < 51.7 and -0.3 < barnet.lon < -0.1
    for name in ("Kent", "Wakefield", "Merton", "Cornwall", "Wirral", "Plymouth", "Bradford", "Blackpool",
                 "Calderdale", "Bristol", "Solihull", "Telford and Wrekin", "Denmark", "Canada", "Australia"):
        assert vocabulary.resolve(name, "places") is not None, name
    smart_start = [i for i in vocabulary.initiatives.values() if "Smart Start" in i.label]
    assert smart_start and "north-carolina" in smart_start[0].places


def test_the_shipped_vocabulary_validates():
    assert validate_vocabulary(ONTOLOGY) == []


def _copy(tmp_path):
    folder = tmp_path / "ontology"
    shutil.copytree(ONTOLOGY, folder)
    return folder


def test_broken_turtle_is_named_with_its_problem(tmp_path, monkeypatch, capsys):
    folder = _copy(tmp_path)
    with (folder / "concepts.ttl").open("a", encoding="utf-8") as f:
        f.write('\nconcept:oops a skos:Concept ; skos:prefLabel "unterminated .\n')
    with pytest.raises(OntologyError) as err:
        Ontology.load(folder)
    assert "concepts.ttl" in str(err.value) and "not valid Turtle" in str(err.value)
    # The command line says the same, without a traceback.
    monkeypatch.setenv("KB_ONTOLOGY", str(folder))
    assert main(["--home", str(tmp_path / "home"), "concepts"]) == 2
    message = capsys.readouterr().err
    assert message.startswith("kb: ") and "concepts.ttl: not valid Turtle" in message


def test_shape_violations_and_clashing_labels_are_named(tmp_path):
    folder = _copy(tmp_path)
    (folder / "extra.ttl").write_text("""
@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix slo: <https://w3id.org/syslead/ontology#> .
@prefix place: <https://w3id.org/syslead/place/> .
@prefix concept: <https://w3id.org/syslead/concept/> .
place:atlantis a skos:Concept, slo:Place ; skos:inScheme slo:places ;
    skos:prefLabel "Atlantis"@en ; skos:definition "A place that is not in the corpus."@en ;
    skos:broader concept:nowhere .
concept:budget-pools a skos:Concept ; skos:inScheme slo:concepts ;
    skos:prefLabel "budget pools"@en ; skos:altLabel "Pooled budgets"@en ;
    skos:definition "A clash with the label of another concept."@en .
""", encoding="utf-8")
    problems = validate_vocabulary(folder)
    text = "\n".join(problems)
    assert f"{folder / 'extra.ttl'}: atlantis: needs one geo:lat" in text
    assert "atlantis: the broader place of a place must itself be a place" in text
    assert "the label 'pooled budget' belongs to 2 concepts (budget-pools, pooled-budgets)" in text


def test_ingested_graph_validates_and_agrees_with_chroma(corpus_kb):
    assert validate(corpus_kb.settings.ontology, corpus_kb.ontology, corpus_kb.graph) == []
    assert corpus_kb.graph.passage_ids() == set(corpus_kb.store.ids())


def test_a_broken_passage_is_named_by_its_graph_file(corpus_kb, tmp_path):
    from kb.vocab.validate import validate_graph

    doc_id = sorted(corpus_kb.graph.document_ids())[0]
    part = corpus_kb.graph.document_graph(doc_id)
    broken = Graph()
    broken += part
    from kb.vocab.ontology import SLO
    node = next(broken.subjects(predicate=SLO.start))
    broken.remove((node, SLO.start, None))
    problems = validate_graph(corpus_kb.ontology.graph, {tmp_path / "x.nt": broken}, ONTOLOGY)
    assert problems and all(p.startswith(str(tmp_path / "x.nt")) for p in problems)
    assert any("needs one integer slo:start" in p for p in problems)


def _passage(kb, *phrases):
    for p in kb.all_passages():
        if all(ph.lower() in p.text.lower() for ph in phrases):
            return p
    raise AssertionError(f"no passage contains {phrases}")


def test_barnet_community_budgets_passage_is_linked_to_barnet_and_pooled_budgets(corpus_kb):
    p = _passage(corpus_kb, "Barnet", "Community Budget")
    assert "barnet" in p.places
    assert "community-budgets" in p.concepts
    pooled = corpus_kb.ontology.concepts["pooled-budgets"].uri
    assert p.chunk_id in corpus_kb.graph.passages_for(pooled)  # through skos:broader


def test_nw_london_pilot_passage_is_about_the_tri_borough_places(corpus_kb):
    p = _passage(corpus_kb, "collectively known as the", "triborough")
    assert {"hammersmith-and-fulham", "kensington-and-chelsea", "westminster"} <= set(p.places)


def test_places_narrower_than_london_include_barnets_passages(corpus_kb):
    london = corpus_kb.graph.passages_for(corpus_kb.ontology.concepts["london"].uri)
    barnet = corpus_kb.graph.passages_for(corpus_kb.ontology.concepts["barnet"].uri)
    assert barnet and set(barnet) <= set(london)
    assert not any(p.text.count("Kentucky") and "kent" in p.places for p in corpus_kb.all_passages())


@pytest.mark.parametrize("label", ['pooled budgets" } ; DROP ALL ; #', "x' || true || '", "} UNION { ?s ?p ?o }",
                                   'SELECT * WHERE { ?s ?p ?o }', "\\\" . }"])
def test_hostile_labels_cannot_change_a_query(corpus_kb, label):
    assert corpus_kb.graph.lookup(label) == []
    assert corpus_kb.graph.lookup("Pooled Funding") == [corpus_kb.ontology.concepts["pooled-budgets"].uri]


def test_sparql_select_ask_and_refused_updates(corpus_kb, capsys):
    home = str(corpus_kb.settings.home)
    query = ("SELECT ?id WHERE { ?p slo:aboutPlace place:barnet ; dcterms:isPartOf ?d . "
             "?d dcterms:identifier ?id } ORDER BY ?id LIMIT 1")
    assert main(["--home", home, "sparql", query, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["vars"] == ["id"] and out["rows"][0]["id"] in {d.doc_id for d in corpus_kb.documents()}
    assert main(["--home", home, "sparql", "ASK { place:barnet skos:broader place:london }", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"boolean": True}
    assert main(["--home", home, "sparql", "DELETE WHERE { ?s ?p ?o }"]) == 2
    assert "only SELECT and ASK" in capsys.readouterr().err
    assert main(["--home", home, "sparql", "INSERT DATA { place:x skos:prefLabel 'x' }"]) == 2
    assert "updates are refused" in capsys.readouterr().err


def test_concepts_command_counts_linked_passages(corpus_kb, capsys):
    assert main(["--home", str(corpus_kb.settings.home), "concepts", "--scheme", "places", "--json"]) == 0
    places = {c["id"]: c for c in json.loads(capsys.readouterr().out)}
    barnet = places["barnet"]
    assert barnet["label"] == "Barnet" and barnet["broader"] == ["london"] and barnet["lat"] is not None
    assert barnet["passages"] == sum("barnet" in p.places for p in corpus_kb.all_passages()) > 0


def test_export_turtle_and_jsonld_round_trip(corpus_kb, tmp_path):
    home = str(corpus_kb.settings.home)
    for fmt, rdf_format in (("ttl", "turtle"), ("jsonld", "json-ld")):
        out = tmp_path / f"graph.{fmt}"
        assert main(["--home", home, "export", "--format", fmt, "--out", str(out)]) == 0
        g = Graph().parse(out, format=rdf_format)
        assert len(g) == len(corpus_kb.graph.union())


def test_a_changed_vocabulary_relinks_on_the_next_ingest(tmp_path, new_kb):
    folder = _copy(tmp_path)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.txt").write_text("Leaders in Wigan used a kitty fund to pay for shared work.\n", encoding="utf-8")
    kb = new_kb(ontology=folder)
    assert kb.ingest([docs], progress=False).ok
    assert kb.all_passages()[0].concepts == []
    concepts = folder / "concepts.ttl"
    concepts.write_text(concepts.read_text(encoding="utf-8").replace(
        'skos:altLabel "pooled budget"@en', 'skos:altLabel "kitty fund"@en, "pooled budget"@en', 1), encoding="utf-8")
    kb = new_kb(ontology=folder)
    assert "1 document(s) linked with an older vocabulary" in " ".join(kb.check())
    report = kb.ingest([docs], progress=False)
    assert [r.status for r in report.results] == ["ingested"]
    assert kb.all_passages()[0].concepts == ["pooled-budgets"]
