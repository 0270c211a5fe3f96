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
    # Below this cosine similarity between the question and its best passage, no answer is given
    # (calibrated on the gold set's answerable and no-answer questions).
    answer_threshold: float = 0.30
    # Answer sentences: at most this many, from the top passages, picked by MMR.
    max_sentences: int = 3
    source_passages: int = 6
    mmr_lambda: float = 0.75
    # In MMR two sentences of one passage count as at least this alike, so that an answer draws on
    # a second passage when one is nearly as relevant.
    same_passage: float = 0.8
    # A sentence less likely to answer than this share of the best one's chance is not picked.
    sentence_floor: float = 0.1
    # An LLM's sentence is kept only when a sentence of the passage it cites is this close to it.
    llm_support: float = 0.6

    def to_json(self) -> dict:
        return asdict(self)


TUNING = Tuning()
