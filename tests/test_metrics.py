"""The evaluation metrics on small hand-made rankings and answers whose right values are known."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

from kb.evals.metrics import (
    Span,
    collapsed_index,
    covers,
    evidence_recall_at_k,
    first_relevant_rank,
    hit_at_k,
    judge,
    locate,
    mean,
    ndcg_at_k,
    page_of,
    percentile,
    quote_is_exact,
    rate,
    recall_curve,
    reciprocal_rank,
    score_answer,
    split_claims,
)

E = frozenset()


def j(*sets) -> list[frozenset[int]]:
    return [frozenset(s) for s in sets]


# -- relevance by overlap ------------------------------------------------------------------------
def test_a_passage_covers_gold_by_half_its_length_or_fifty_characters():
    short = Span("d", 100, 140)   # 40 characters: half is 20
    long = Span("d", 1000, 1200)  # 200 characters: 50 is less than half
    assert covers(Span("d", 120, 300), short)        # 20 shared
    assert not covers(Span("d", 121, 300), short)    # 19 shared
    assert covers(Span("d", 0, 1050), long)          # 50 shared
    assert not covers(Span("d", 0, 1049), long)      # 49 shared
    assert not covers(Span("other", 100, 140), short)  # another document
    assert not covers(Span("d", 140, 200), short)    # touching is not overlapping (half-open)


def test_judge_marks_each_rank_with_the_gold_items_it_covers():
    gold = [Span("a", 100, 160), Span("b", 0, 60)]
    ranking = [Span("a", 0, 90), Span("b", 10, 300), Span("a", 90, 400), Span("c", 0, 999)]
    assert judge(ranking, gold) == [E, frozenset({1}), frozenset({0}), E]


# -- ranking metrics -------------------------------------------------------------------------------
def test_recall_mrr_and_ndcg_of_a_hand_made_ranking():
    # Two gold items; the first is found at rank 2, the second at rank 4.
    judged = j(set(), {0}, set(), {1}, set())
    assert first_relevant_rank(judged) == 2
    assert hit_at_k(judged, 1) == 0.0
    assert hit_at_k(judged, 2) == 1.0
    assert hit_at_k(judged, 5) == 1.0
    assert reciprocal_rank(judged, 10) == 0.5
    assert reciprocal_rank(judged, 1) == 0.0
    assert evidence_recall_at_k(judged, 2, 1) == 0.0
    assert evidence_recall_at_k(judged, 2, 3) == 0.5
    assert evidence_recall_at_k(judged, 2, 5) == 1.0
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3)
    assert ndcg_at_k(judged, 2, 10) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(judged, 2, 10) == pytest.approx(0.650921, abs=1e-6)


def test_perfect_and_empty_rankings():
    assert ndcg_at_k(j({0}, {1}), 2, 10) == pytest.approx(1.0)
    assert reciprocal_rank(j({0}), 10) == 1.0
    nothing = j(set(), set(), set())
    assert reciprocal_rank(nothing, 10) == 0.0
    assert ndcg_at_k(nothing, 1, 10) == 0.0
    assert first_relevant_rank(nothing) is None
    assert ndcg_at_k(j({0}), 0, 10) == 0.0  # no gold: nothing to find


def test_a_passage_covering_already_found_gold_gains_nothing_in_ndcg():
    # Rank 1 and rank 2 both cover item 0; item 1 is never found.
    judged = j({0}, {0}, set())
    assert ndcg_at_k(judged, 2, 10) == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_the_relevant_passage_just_past_k_does_not_count():
    judged = j(*([set()] * 10), {0})
    assert hit_at_k(judged, 10) == 0.0
    assert reciprocal_rank(judged, 10) == 0.0
    assert ndcg_at_k(judged, 1, 10) == 0.0
    assert first_relevant_rank(judged) == 11


def test_recall_curve_and_mrr_over_several_questions():
    firsts = [1, 3, None, 2]
    assert recall_curve(firsts, 4) == [0.25, 0.5, 0.75, 0.75]
    assert mean([1 / r if r else 0.0 for r in firsts]) == pytest.approx((1 + 1 / 3 + 0 + 0.5) / 4)
    assert recall_curve([], 3) == [0.0, 0.0, 0.0]


def test_aggregates():
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert percentile([], 95) == 0.0
    assert rate([True, False, True, True]) == 0.75
    assert mean([]) == 0.0


# -- locating quotes ---------------------------------------------------------------------------------
def test_a_quote_is_located_with_whitespace_collapsed_and_mapped_back_to_exact_offsets():
    text = "Intro.\nThe  pooled\nbudget was   agreed in 2010. End."
    start, end = locate("pooled budget was agreed", *collapsed_index(text))
    assert text[start:end] == "pooled\nbudget was   agreed"
    assert locate("not there", *collapsed_index(text)) is None


# -- citations ---------------------------------------------------------------------------------------
@dataclass
class Page:
    page: int
    start: int
    end: int


@dataclass
class Doc:
    text: str
    pages: list = field(default_factory=list)


@dataclass
class Cite:
    n: int
    chunk_id: str
    doc_id: str
    page: int | None
    quote: str
    start: int
    end: int


TEXT = "Page one says partners pooled their budgets. " + "Page two says the pilot cut admissions by a tenth."
SPLIT = TEXT.index("Page two")


def test_quote_exactness_is_text_start_end_and_nothing_else():
    assert quote_is_exact("partners pooled", TEXT, 14, 29)
    assert not quote_is_exact("partners  pooled", TEXT, 14, 29)  # one space too many
    assert not quote_is_exact("partners pooled", TEXT, 13, 28)   # off by one
    assert not quote_is_exact("", TEXT, 5, 5)                    # empty range
    assert not quote_is_exact("x", TEXT, len(TEXT), len(TEXT) + 1)  # out of range


def test_page_of_uses_the_page_map():
    pages = [Page(1, 0, SPLIT), Page(2, SPLIT, len(TEXT))]
    assert page_of(pages, 0) == 1
    assert page_of(pages, SPLIT - 1) == 1
    assert page_of(pages, SPLIT) == 2
    assert page_of(pages, len(TEXT) + 10) == 2
    assert page_of([], 3) is None


def test_score_answer_counts_an_inexact_quote_a_wrong_page_and_unsupported_claims():
    doc = Doc(TEXT, [Page(1, 0, SPLIT), Page(2, SPLIT, len(TEXT))])
    s1 = TEXT.index("partners")
    s2 = TEXT.index("the pilot")
    good = Cite(1, "c1", "d", 1, TEXT[s1:s1 + 30], s1, s1 + 30)
    inexact = Cite(2, "c2", "d", 2, "the pilot cut admissions by a fifth", s2, s2 + 35)
    wrong_page = Cite(3, "c2", "d", 1, TEXT[s2:s2 + 20], s2, s2 + 20)
    answer = ("partners pooled their budgets. [1] the pilot cut admissions by a tenth. [2] "
              "Everyone was happy. [3] An uncited claim.")
    passages = {"c1": TEXT[:SPLIT], "c2": TEXT[SPLIT:]}
    gold = [Span("d", s2, s2 + 30)]
    score = score_answer(answer, [good, inexact, wrong_page], {"d": doc}, passages, gold)
    assert score.citations == 3
    assert score.exact_quotes == 2          # the second quote is not text[start:end]
    assert score.right_pages == 2           # the third names page 1 for a quote on page 2
    assert score.claims == 4                # three cited sentences and an uncited tail
    assert score.pairs == 3
    assert score.supported_pairs == 2       # "Everyone was happy." is not in the passage it cites
    assert score.supported_claims == 2
    assert score.covers_gold


def test_a_paraphrase_is_supported_when_its_cosine_with_the_quote_is_high():
    doc = Doc(TEXT, [Page(1, 0, len(TEXT))])
    c = Cite(1, "c1", "d", 1, TEXT[:20], 0, 20)
    low = score_answer("A paraphrase. [1]", [c], {"d": doc}, {"c1": TEXT}, cosine=lambda a, b: 0.5)
    high = score_answer("A paraphrase. [1]", [c], {"d": doc}, {"c1": TEXT}, cosine=lambda a, b: 0.9)
    assert (low.supported_pairs, high.supported_pairs) == (0, 1)


def test_split_claims_reads_marker_groups():
    claims = split_claims("First point. [1] Second point [2][3]. Tail without a marker")
    assert [(c.text, c.cited) for c in claims] == [
        ("First point.", (1,)), ("Second point", (2, 3)), ("Tail without a marker", ()),
    ]
    assert split_claims("") == []
