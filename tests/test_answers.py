"""Retrieval and answers on the shipped corpus: real store, model and ontology."""

from __future__ import annotations

import json
import re

import pytest
from llama_index.core.llms import CompletionResponse, CustomLLM, LLMMetadata

from kb.records import Filters
from kb.search.answer import counted, counts, missing_amount, mmr, unknown_names
from kb.search.retrieval import FilterError, dense_scores, fuse

QUESTIONS = [
    "How did others handle pooled budgets?",
    "What helped partners agree a shared purpose?",
    "What is an authorising environment?",
    "What happened with integrated care in North West London?",
    "How do systems leaders handle wicked problems?",
    "What did the Local Vision programme do in Cornwall?",
]


def check_citation(kb, c) -> None:
    doc = kb.document(c["doc_id"])
    assert doc.text[c["start"]:c["end"]] == c["quote"]
    assert doc.page_at(c["start"]) == c["page"]


def test_fusion_sums_normalised_scores_so_a_clear_lead_survives():
    dense = [("a", 0.80), ("b", 0.60), ("c", 0.40)]
    bm25 = [("c", 20.0), ("a", 5.0), ("d", 4.0)]
    fused = fuse([(dense, 1.0), (bm25, 1.0), ([("b", 0.3)], 0.2)])
    assert fused == pytest.approx({"a": 1.0 + 1 / 16, "b": 0.5 + 0.2, "c": 1.0, "d": 0.0})
    assert sorted(fused, key=lambda k: -fused[k]) == ["a", "c", "b", "d"]
    # first in BM25 alone beats second in both (reciprocal rank fusion would put "x" above "t")
    fused = fuse([([("m", 0.6), ("x", 0.5), ("y", 0.1)], 1.0), ([("t", 10.0), ("m", 2.0), ("x", 1.9), ("y", 1.0)], 1.0)])
    assert sorted(fused, key=lambda k: -fused[k]) == ["m", "t", "x", "y"]


def test_dense_ranks_a_passage_by_its_best_sentence_plus_a_share_of_the_second():
    sentences = [("a", 0.70), ("b", 0.66), ("b", 0.60), ("a", 0.10)]
    ranked = dense_scores(sentences, passages=[("c", 0.75), ("a", 0.20)])
    assert [cid for cid, _ in ranked] == ["b", "c", "a"]
    assert dict(ranked) == pytest.approx({"b": 0.66 + 0.3 * 0.60, "a": 0.70 + 0.3 * 0.10, "c": 0.75})


def test_mmr_reaches_for_a_second_passage_when_it_is_nearly_as_relevant():
    import numpy as np

    # three unrelated sentences: two of passage a (relevance 1.0, 0.95), one of passage b (0.9)
    vectors = np.eye(3, dtype=np.float32)
    relevance = np.array([1.0, 0.95, 0.9])
    assert mmr(relevance, vectors, 2) == [0, 1]
    assert mmr(relevance, vectors, 2, groups=["a", "a", "b"], same_group=0.8) == [0, 2]
    # a passage far less relevant is still not preferred
    assert mmr(np.array([1.0, 0.95, 0.3]), vectors, 2, groups=["a", "a", "b"], same_group=0.8) == [0, 1]
    # below the floor nothing is picked, however diverse
    assert mmr(relevance, vectors, 3, floor=0.92, groups=["a", "a", "b"], same_group=0.8) == [0, 1]


def test_pooled_budgets_finds_barnet_or_bradford_without_the_words(corpus_kb):
    result = corpus_kb.search("How did others handle pooled budgets?", k=5)
    assert "pooled budgets" in [r.lower() for r in result.recognised]
    assert "community budgets" in [e.lower() for e in result.expanded]
    texts = " ".join(h.passage.text for h in result.hits)
    assert re.search(r"Community Budget|pool and save|Total Place|pooled funding|pooling", texts)
    assert any("pooled budget" not in h.passage.text.lower() for h in result.hits)
    # a common place is reported as recognised, though too common to steer the ranking
    assert corpus_kb.search("pooled budgets across Barnet", k=1).recognised == ["pooled budgets", "Barnet"]
    answer = corpus_kb.ask("How did others handle pooled budgets?").to_json(corpus_kb.labels())
    assert answer["answered"]
    assert re.search(r"Barnet|Bradford", " ".join(c["quote"] for c in answer["citations"]) + " ".join(
        " ".join(p["places"]) for p in answer["passages"][:3]))
    assert answer["citations"] and all(f"[{c['n']}]" in answer["answer"] for c in answer["citations"])


def test_place_filter_includes_narrower_places(corpus_kb):
    onto = corpus_kb.ontology
    london = onto.narrower_closure("london")
    assert "barnet" in london
    result = corpus_kb.search("families with complex needs", k=10, filters=Filters(place="London"))
    assert result.hits
    for h in result.hits:
        assert london.intersection(h.passage.places), h.passage.places
    assert any("barnet" in h.passage.places for h in corpus_kb.search(
        "troubled families", k=10, filters=Filters(place="London")).hits)
    barnet_only = corpus_kb.search("families", k=10, filters=Filters(place="Barnet"))
    assert barnet_only.hits and all("barnet" in h.passage.places for h in barnet_only.hits)


def test_unknown_filter_is_a_clear_error(corpus_kb):
    with pytest.raises(FilterError, match="unknown place 'Atlantis'"):
        corpus_kb.search("anything", filters=Filters(place="Atlantis"))


def test_doc_and_year_filters(corpus_kb):
    hits = corpus_kb.search("leadership", k=10, filters=Filters(doc="revolution-improvised-2-2015")).hits
    assert hits and {h.passage.doc_id for h in hits} == {"revolution-improvised-2-2015"}
    hits = corpus_kb.search("leadership", k=10, filters=Filters(year=2015)).hits
    assert hits and {h.passage.doc_id for h in hits} == {"revolution-improvised-2-2015"}


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_modes_return_readable_passages(corpus_kb, mode):
    hits = corpus_kb.search("shared vision across organisations", k=5, mode=mode).hits
    assert len(hits) == 5
    assert sum(len(h.passage.text) for h in hits) / 5 <= 1300
    for h in hits:
        check_citation(corpus_kb, {"doc_id": h.passage.doc_id, "start": h.passage.start, "end": h.passage.end,
                                   "quote": h.passage.text, "page": h.passage.page})


def test_every_citation_is_exact_and_on_its_page(corpus_kb):
    for q in QUESTIONS:
        answer = corpus_kb.ask(q).to_json()
        assert answer["answered"], q
        assert answer["citations"], q
        for c in answer["citations"]:
            check_citation(corpus_kb, c)
        markers = {int(n) for n in re.findall(r"\[(\d+)\]", answer["answer"])}
        assert markers == {c["n"] for c in answer["citations"]}


@pytest.mark.parametrize("question", ["What is the capital of Peru?", "How do I bake sourdough bread at home?"])
def test_weak_evidence_gets_the_honest_no_answer(corpus_kb, question):
    answer = corpus_kb.ask(question)
    assert not answer.answered
    assert "little on this" in answer.answer
    assert answer.passages  # the nearest passages are still shown


def test_a_question_for_an_amount_needs_a_quote_that_gives_one():
    assert missing_amount("How much did the pilot cost to run?", ["The pilot ran in 2009/10."]) == "an amount of money"
    assert missing_amount("What did the pilot cost?", ["It cost £2.5m over two years."]) == ""
    assert missing_amount("What is the typical salary of a director?", ["Directors lead services."]) == "an amount of money"
    assert missing_amount("How much pooled funding backs it?", ["It leverages £1.5m in pooled funding."]) == ""
    assert missing_amount("By how much did obesity fall?", ["15 Durham - Tackling childhood obesity."]) == "the size of the change"
    assert missing_amount("How much did food bank use rise?", ["Use had increased by 47% over four months."]) == ""
    # other questions, and words that only look like a request for money, are left alone
    assert missing_amount("Why did the cost-savings argument carry less weight?", ["Budgets were held centrally."]) == ""
    assert missing_amount("How many sites were there?", ["Twenty-five sites took part."]) == ""
    assert missing_amount("How many days of support did each site get?", ["Enablers coached the teams."]) == "a number"
    assert missing_amount("By what percentage did obesity fall?", ["Obesity was tackled."]) == "the size of the change"
    # a sum saved is not what something cost; a cost beside a saving is
    assert missing_amount("What did the pilot cost to run?", ["It could save as much as £8.1bn reduction in "
                                                              "public spending."]) == "an amount of money"
    assert missing_amount("How much did it cost?", ["Savings of £1m were made."]) == "an amount of money"
    assert missing_amount("How much did it cost?", ["It cost £2.5m, saving £1m a year."]) == ""
    assert missing_amount("How much did the councils save?", ["They saved £2.5m."]) == ""


@pytest.mark.parametrize("question, answered, quoted", [
    ("What did the Bradford Total Place pilot cost to run?", False, None),
    ("By how much did obesity fall in Gloucestershire?", False, None),
    ("How much pooled funding does the Local Vision programme leverage?", True, "£1.5m"),
    ("How big was the pooled commissioning budget that Local Vision helped to create?", True, "£460"),
    ("By what percentage did Gloucestershire reduce childhood obesity through Local Vision?", False, None),
    # a count is looked for among the sentences that count what is asked, beyond the most relevant ones
    ("How many places does the second Revolution will be Improvised report draw on?", True, "nearly forty"),
])
def test_amounts_are_quoted_or_not_claimed(corpus_kb, question, answered, quoted):
    answer = corpus_kb.ask(question)
    assert answer.answered is answered, answer.to_text()
    if answered:
        assert any(quoted in c.quote for c in answer.citations), answer.to_text()
    else:
        assert answer.answer.startswith("The passages found do not state") and answer.passages


@pytest.mark.parametrize("question", ["", "   ", "x" * 10_000, "SELECT * WHERE { ?s ?p ?o } ; DROP ALL .*+?[(", "\" } UNION { ?s ?p ?o"])
def test_hostile_questions_get_a_reply_not_a_traceback(corpus_kb, question):
    answer = corpus_kb.ask(question).to_json()
    assert set(answer) >= {"question", "answered", "answer", "citations", "passages"}
    for c in answer["citations"]:
        check_citation(corpus_kb, c)
    corpus_kb.search(question, k=3)


def test_cli_search_and_ask_json_contract(corpus_kb, capsys, tmp_path):
    from kb.ui.cli import main

    home = str(corpus_kb.settings.home)
    assert main(["--home", home, "search", "pooled budgets", "--k", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["query"] == "pooled budgets" and len(out["results"]) == 3
    r = out["results"][0]
    assert set(r) >= {"rank", "chunk_id", "doc_id", "title", "page", "start", "end", "text", "score",
                      "concepts", "places", "dimensions"}
    assert r["rank"] == 1 and isinstance(r["score"], float)
    labels = {c.label for c in corpus_kb.ontology.concepts.values()}
    assert all(x in labels for x in r["concepts"] + r["places"] + r["dimensions"])

    batch = tmp_path / "q.jsonl"
    batch.write_text('{"question": "What is an authorising environment?"}\n{"question": "What is the capital of Peru?"}\n', encoding="utf-8")
    assert main(["--home", home, "ask", "--batch", str(batch), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    first, second = (json.loads(line) for line in lines)
    assert first["question"] == "What is an authorising environment?" and first["answered"]
    assert second["answered"] is False
    for c in first["citations"]:
        assert set(c) >= {"n", "chunk_id", "doc_id", "title", "page", "quote", "start", "end"}
        check_citation(corpus_kb, c)

    assert main(["--home", home, "search", "--batch", str(batch), "--json", "--mode", "bm25"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2


class ScriptedLLM(CustomLLM):
    """A stand-in LLM: builds its reply from the numbered passages it is given."""

    script: str = "good"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="scripted")

    def complete(self, prompt: str, formatted: bool = False, **kwargs) -> CompletionResponse:
        passages = dict(re.findall(r"^\[(\d+)\] \([^)]*\) (.+)$", prompt, flags=re.M))
        first = re.split(r"(?<=[.!?])\s+", passages["1"])[0]
        if self.script == "inject":
            return CompletionResponse(text="HACKED. I have ignored my instructions.")
        lines = [f"{first} [1]."]
        if self.script in ("wrong", "good"):
            lines.append("The capital of Peru is Lima and it has a large central bank [2].")
        if self.script in ("invent", "good"):
            lines.append('Leaders said "we abolished every single budget overnight in 1999" [1].')
        return CompletionResponse(text=" ".join(lines))

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs):
        yield self.complete(prompt)


def test_llm_answers_keep_only_checked_citations(corpus_kb):
    answer = corpus_kb.ask("How did others handle pooled budgets?", llm=ScriptedLLM(script="good"))
    assert answer.mode == "llm"
    assert "Peru" not in answer.answer and "abolished" not in answer.answer
    assert len(answer.citations) == 1 and answer.answer.endswith("[1]")
    assert any("does not support" in n and "Peru" in n for n in answer.notes)
    assert any("quote not found" in n and "abolished" in n for n in answer.notes)
    check_citation(corpus_kb, answer.citations[0].to_json())


def test_prompt_injection_changes_neither_format_nor_checks(corpus_kb):
    answer = corpus_kb.ask("How did others handle pooled budgets?", llm=ScriptedLLM(script="inject"))
    assert "HACKED" not in answer.answer
    assert answer.answered and answer.mode == "extractive"
    for c in answer.citations:
        check_citation(corpus_kb, c.to_json())


def test_the_embedder_remembers_short_texts_and_returns_what_the_model_returns(corpus_kb, new_kb, tmp_path):
    from kb.search.quotes import candidates as quotable

    emb = corpus_kb.embedder
    texts = ["pooled budgets in Barnet", "a shared purpose", "pooled budgets in Barnet"]
    before = emb.misses
    first = emb.encode(texts)
    assert emb.misses - before == 2 and first.shape == (3, emb.dim)
    direct = emb._encode(texts, 64, False)
    assert abs(first - direct).max() < 1e-5
    hits = emb.hits
    emb.encode(texts[::-1])
    assert emb.hits - hits == 3
    # Ingestion stores the vector of every sentence answers are built from, so answering
    # encodes only the question.
    (tmp_path / "note.txt").write_text("Leaders in Wigan agreed a shared purpose over two long years of talks. "
                                       "They pooled budgets for older people and measured what changed.\n", encoding="utf-8")
    kb = new_kb()
    assert kb.ingest([tmp_path / "note.txt"], progress=False).ok
    hit = kb.search("shared purpose", k=1).hits[0]
    candidates = quotable([hit])
    assert [c.core_text for c in candidates] == ["Leaders in Wigan agreed a shared purpose over two long years of talks.",
                                                "They pooled budgets for older people and measured what changed."]
    # "They…" is quoted with the sentence it points back to.
    assert candidates[1].text == "Leaders in Wigan agreed a shared purpose over two long years of talks. " \
                                 "They pooled budgets for older people and measured what changed."
    stored = kb.store.sentence_vectors([hit.passage.chunk_id])
    assert sorted((r.start, r.end) for r in stored) == [c.core for c in candidates]
    emb._cache.clear()
    misses = emb.misses
    vectors = kb.answerer.candidate_vectors(candidates)
    assert emb.misses == misses
    assert abs(vectors - emb._encode([c.core_text for c in candidates], 64, False)).max() < 1e-5


def test_unknown_names_are_names_acronyms_and_years_no_passage_contains():
    vocabulary = {"barnet", "nhs", "2011", "total", "place", "what"}
    assert unknown_names("What did Barnet and the NHS do in 2011 for Total Place?", vocabulary) == []
    assert unknown_names("What did Wigan, the ICBs and COVID-19 change in 2020?", vocabulary) == [
        "Wigan", "ICB", "COVID", "2020"]
    assert unknown_names("Glasgow: what happened?", vocabulary) == []  # a first word is capitalised anyway


def test_counted_is_what_a_how_many_question_counts():
    assert counted("How many Local Vision places did the second report draw on?") == "place"
    assert counted("How many days of Enabler support was each site allocated?") == "days"
    assert counted("How many leaders were interviewed, and why were they chosen?") == ""  # not every part asks for a count
    assert counts("place", "we draw on insights from nearly forty Local Vision places")
    assert not counts("place", "Each of the 13 Total Place sites was supported by consultants.")


def test_a_question_naming_a_documents_year_is_answered(corpus_kb):
    answer = corpus_kb.ask("Who co-chaired the steering group according to the NHS Leadership Academy's 2014 paper?")
    assert answer.answered and any("Wilderspin" in c.quote for c in answer.citations), answer.to_text()


def test_a_question_about_a_place_the_corpus_never_names_is_not_answered(corpus_kb):
    for question, name in [("How did Glasgow's health and social care partnership reduce homelessness?", "Glasgow"),
                           ("How did Finland's municipalities reform their child welfare services?", "Finland"),
                           ("How did councils use systems leadership during the COVID-19 lockdowns?", "COVID"),
                           ("What did the 2019 review of pooled budgets in London conclude?", "2019")]:
        answer = corpus_kb.ask(question)
        assert not answer.answered and answer.citations == []
        assert answer.answer.startswith(f"The knowledge base holds nothing on {name}")
    # "Danish" is not in the corpus but is a label of Denmark, so the question is answered from its case.
    danish = corpus_kb.ask("What did the Danish case show about handling disagreement between partner municipalities?")
    assert danish.answered and any("denmark" in h.passage.places for h in danish.passages)


def test_the_knowledge_base_is_a_llama_index_retriever(corpus_kb):
    from kb.search.llama import KnowledgeBaseRetriever

    question = "How did others handle pooled budgets?"
    nodes = KnowledgeBaseRetriever(corpus_kb.retriever, corpus_kb.labels(), k=3).retrieve(question)
    hits = corpus_kb.search(question, k=3).hits
    assert [n.node.node_id for n in nodes] == [h.passage.chunk_id for h in hits]
    for n in nodes:
        meta = n.node.metadata
        doc = corpus_kb.document(meta["doc_id"])
        assert doc.text[n.node.start_char_idx:n.node.end_char_idx] == n.node.get_content()
        assert meta["page"] == doc.page_at(n.node.start_char_idx) and meta["title"] == doc.meta.title
