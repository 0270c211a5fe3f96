"""The numbers that tune search and answers, in one frozen object that ``kb eval`` prints with its report.

How each was chosen, and what else was tried, is in ``evals/EXPERIMENTS.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Tuning:
    # Passages each ranked list contributes to the fusion (at least twice the k asked for).
    candidates: int = 50
    # Dense search matches the question against single sentences and ranks each passage by its
    # best sentence plus this share of its second best: two close sentences make a passage likelier
    # to answer than one. This many sentences are fetched per passage wanted.
    sentences_per_passage: int = 8
    second_sentence_weight: float = 0.3
    # Weights in the fused score of the BM25 list for the ontology's expansion labels and of the list
    # of passages linked to what the query names (the query's own lists weigh 1).
    expansion_weight: float = 0.2
    linked_weight: float = 0.2
    # A concept or place linked to more than this share of passages is too common to steer a search.
    common_share: float = 0.05
    # Below this cosine similarity between the question and its best passage, no answer is given:
    # the highest that declines no answerable question of the fitted sets (`python -m kb.evals.calibrate`).
    answer_threshold: float = 0.252
    # Answer quotes: at most this many, from this many top passages (6, 8, 10 and 15 measured: evals/EXPERIMENTS.md).
    max_sentences: int = 4
    source_passages: int = 8
    mmr_lambda: float = 0.75
    # In MMR two sentences of one passage count as at least this alike, so that an answer draws on
    # a second passage when one is nearly as relevant.
    same_passage: float = 0.8
    # A sentence less likely to answer than this share of the best one's chance is not picked.
    sentence_floor: float = 0.1
    # The weight of a question's names (capitalised words) among its words when sentences are matched to it.
    name_weight: float = 0.3
    # For each part of a two-part question, a sentence is scored by this share of its fit to the part
    # and the rest of its fit to the whole question.
    part_weight: float = 0.7
    # In a "did anyone…" question, a sentence about barriers counts this share of its relevance.
    barrier_weight: float = 0.5
    # Two sentences this alike (cosine) say the same thing: only one is quoted.
    duplicate: float = 0.9
    # An LLM's sentence is kept only when a sentence of the passage it cites is this close to it.
    llm_support: float = 0.6

    def to_json(self) -> dict:
        return asdict(self)


TUNING = Tuning()
