"""`kb adapt`: training pairs from the knowledge base alone, and a model the knowledge base can switch to and back."""

from __future__ import annotations

import json
import random
import shutil

from kb.adapt import Pair, batches, better, training_pairs
from kb.config import PROJECT_ROOT, adopted_model
from kb.knowledge import KnowledgeBase
from kb.ui.cli import main

from .conftest import make_settings

QUESTION_SETS = ("gold", "heldout", "fresh", "fourth")


def norm(text: str) -> str:
    return " ".join(text.lower().split())


def test_training_pairs_come_from_the_documents_and_vocabulary_and_no_question_set(corpus_kb):
    documents = {d.meta.doc_id: d for d in corpus_kb.docs.all()}
    pairs = training_pairs(documents, corpus_kb.all_passages(), corpus_kb.ontology, ["ict", "neighbours", "ontology"])
    by_method = {m: [p for p in pairs if p.method == m] for m in ("ict", "neighbours", "ontology")}
    assert all(len(v) > 100 for v in by_method.values()), {m: len(v) for m, v in by_method.items()}
    corpus = {doc_id: norm(d.text) for doc_id, d in documents.items()}
    # An inverse-cloze query is a sentence of a document, and its answer is the rest of that passage without it.
    for p in by_method["ict"][:50]:
        assert any(norm(p.query) in text for text in corpus.values())
        assert norm(p.query) not in norm(p.answer)
    # The vocabulary's queries are its labels (with a definition, sometimes).
    labels = {norm(x) for c in corpus_kb.ontology.concepts.values() for x in (c.label, *c.alt_labels)}
    assert all(norm(p.query).split(":")[0] in labels for p in by_method["ontology"])
    # Nothing of any question set: no question enters a pair unless the documents themselves say it
    # (a short question such as "management enabled leadership" is also a phrase of the corpus).
    questions = [norm(json.loads(line)["question"]) for name in QUESTION_SETS
                 for line in (PROJECT_ROOT / "evals" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = [norm(p.query) + " \0 " + norm(p.answer) for p in pairs]
    leaked = [q for q in questions if any(q in t for t in texts) and not any(q in text for text in corpus.values())]
    assert len(questions) > 300 and leaked == []


def test_a_batch_never_holds_two_pairs_with_one_answer():
    pairs = [Pair(f"q{i}", f"a{i % 3}", "ict") for i in range(12)]
    for batch in batches(pairs, 4, random.Random(1)):
        assert len({p.answer for p in batch}) == len(batch) <= 4
    assert sum(len(b) for b in batches(pairs, 4, random.Random(1))) <= 12


def test_adapted_wins_only_when_it_finds_more_without_ranking_worse():
    assert better({"recall@5": 0.8, "mrr@10": 0.6}, {"recall@5": 0.82, "mrr@10": 0.6})
    assert not better({"recall@5": 0.8, "mrr@10": 0.6}, {"recall@5": 0.82, "mrr@10": 0.59})
    assert not better({"recall@5": 0.8, "mrr@10": 0.6}, {"recall@5": 0.8, "mrr@10": 0.7})


def test_kb_adapt_fits_a_model_switches_to_it_and_back(tmp_path, capsys):
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(PROJECT_ROOT / "corpus" / "004_1305595735da07bd.txt", folder / "local-vision.txt")
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"id": "a1", "question": "How many sites were chosen for the programme?",
                                "evidence": [{"doc_id": "local-vision", "quote": "25 sites were chosen to take part."}]}) + "\n",
                    encoding="utf-8")
    home = tmp_path / "home"
    settings = make_settings(home)
    assert KnowledgeBase(settings).ingest([folder], progress=False).ok

    assert main(["--home", str(home), "adapt", "--method", "ict", "neighbours", "ontology", "--use", "--gold", str(gold), "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["switched"] and out["reason"] == "asked to (--use)"
    record = json.loads((tmp_path / out["model"] / "adapt.json").read_text(encoding="utf-8"))
    assert all(record["pairs"][m] > 0 for m in ("ict", "neighbours", "ontology")) and record["steps"] >= 1
    assert out["before"]["recall@5"] == 1.0 and set(out["after"]) == set(out["before"]) >= {"recall@5", "mrr@10", "quote exactness"}
    assert adopted_model(home) == out["model"]
    assert not (home / "adapt" / record["name"] / "kb").exists()  # the trial copy is gone once measured
    assert (home / "adapt" / record["name"] / "eval" / "after" / "report.json").exists()

    adapted = KnowledgeBase(settings)
    assert adapted.settings.model_path == out["model"] and adapted.embedder.model_path == out["model"]
    assert adapted.check() == []  # every document embedded with the adapted model
    hits = adapted.search("How many sites were chosen to take part?", k=3).hits
    text = adapted.document("local-vision").text
    assert hits and all(text[h.passage.start:h.passage.end] == h.passage.text for h in hits)
    for c in adapted.ask("How many sites were chosen to take part?").citations:
        assert text[c.start:c.end] == c.quote

    assert main(["--home", str(home), "adapt", "--undo", "--quiet"]) == 0
    assert "back to all-MiniLM-L6-v2 (packaged)" in capsys.readouterr().out
    assert adopted_model(home) == ""
    packaged = KnowledgeBase(settings)
    assert packaged.settings.model_label == "all-MiniLM-L6-v2 (packaged)" and packaged.check() == []
    assert packaged.search("sites chosen to take part", k=1).hits
