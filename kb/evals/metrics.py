"""Pure evaluation metrics: relevance by character overlap, ranking metrics, citation checks.

Nothing here loads a model or touches the knowledge base, so every function can be checked
on small hand-made inputs. ``kb.evals.run`` feeds them real rankings and answers.

Conventions:
- A *span* is ``(doc_id, start, end)``, a half-open character range of a document's canonical text.
- A retrieved span is *relevant* to a gold span of the same document when they overlap by at
  least half the gold span or 50 characters, whichever is smaller.
- A *judged ranking* is, for each rank (best first), the set of gold evidence indices that the
  passage at that rank covers (empty when it covers none).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

MIN_OVERLAP_CHARS = 50
SUPPORT_COSINE = 0.8

Judged = Sequence[frozenset[int]]


@dataclass(frozen=True)
class Span:
    """A half-open character range ``[start, end)`` of one document's canonical text."""

    doc_id: str
    start: int
    end: int

    def __len__(self) -> int:
        return max(0, self.end - self.start)


# -- relevance -------------------------------------------------------------------------------
def overlap(a: Span, b: Span) -> int:
    """Characters two spans share (0 for different documents)."""
    if a.doc_id != b.doc_id:
        return 0
    return max(0, min(a.end, b.end) - max(a.start, b.start))


def covers(retrieved: Span, gold: Span, min_chars: int = MIN_OVERLAP_CHARS) -> bool:
    """Whether a retrieved span overlaps a gold span by half its length or ``min_chars``, whichever is smaller."""
    shared = overlap(retrieved, gold)
    return shared > 0 and shared >= min(len(gold) / 2, min_chars)


def judge(ranking: Sequence[Span], gold: Sequence[Span]) -> list[frozenset[int]]:
    """For each retrieved span (best first), the indices of the gold spans it covers."""
    return [frozenset(i for i, g in enumerate(gold) if covers(r, g)) for r in ranking]


# -- ranking metrics (one question) ---------------------------------------------------------
def first_relevant_rank(judged: Judged, k: int | None = None) -> int | None:
    """The 1-based rank of the first relevant passage within the top ``k``, or None."""
    for rank, hit in enumerate(judged[:k] if k else judged, 1):
        if hit:
            return rank
    return None


def hit_at_k(judged: Judged, k: int) -> float:
    """1.0 when at least one of the top ``k`` passages is relevant, else 0.0 (recall@k of one question)."""
    return 1.0 if first_relevant_rank(judged, k) is not None else 0.0


def evidence_recall_at_k(judged: Judged, n_gold: int, k: int) -> float:
    """Share of the question's gold evidence items covered by the top ``k`` passages."""
    if n_gold <= 0:
        return 0.0
    covered = frozenset().union(*judged[:k]) if judged[:k] else frozenset()
    return len(covered) / n_gold


def reciprocal_rank(judged: Judged, k: int = 10) -> float:
    """1 / rank of the first relevant passage within the top ``k`` (0.0 when there is none)."""
    rank = first_relevant_rank(judged, k)
    return 1.0 / rank if rank else 0.0


def ndcg_at_k(judged: Judged, n_gold: int, k: int = 10) -> float:
    """Binary nDCG@k: a passage gains 1 when it covers gold evidence not covered higher up; ideal = min(n_gold, k) gains."""
    if n_gold <= 0:
        return 0.0
    seen: set[int] = set()
    dcg = 0.0
    for rank, hit in enumerate(judged[:k], 1):
        new = hit - seen
        if new:
            dcg += 1.0 / math.log2(rank + 1)
            seen |= new
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(n_gold, k) + 1))
    return dcg / ideal


def recall_curve(first_ranks: Sequence[int | None], max_k: int = 10) -> list[float]:
    """Recall@k for k = 1..max_k over many questions, from each question's first relevant rank."""
    n = len(first_ranks)
    if n == 0:
        return [0.0] * max_k
    return [sum(1 for r in first_ranks if r is not None and r <= k) / n for k in range(1, max_k + 1)]


# -- aggregation ---------------------------------------------------------------------------
def mean(values: Iterable[float]) -> float:
    """Arithmetic mean (0.0 for no values)."""
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation, as numpy's default (0.0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def rate(flags: Iterable[bool]) -> float:
    """Share of true flags (0.0 for none)."""
    flags = list(flags)
    return sum(1 for f in flags if f) / len(flags) if flags else 0.0


# -- whitespace-collapsed matching ---------------------------------------------------------------
def collapse_whitespace(text: str) -> str:
    """Runs of whitespace become one space; ends are stripped."""
    return " ".join(text.split())


def collapsed_index(text: str) -> tuple[str, list[int]]:
    """``text`` with whitespace runs collapsed to one space, and each kept character's offset in ``text``."""
    chars: list[str] = []
    where: list[int] = []
    in_space = False
    for i, ch in enumerate(text):
        if ch.isspace():
            if in_space:
                continue
            chars.append(" ")
            in_space = True
        else:
            chars.append(ch)
            in_space = False
        where.append(i)
    return "".join(chars), where


def locate(quote: str, collapsed: str, where: Sequence[int]) -> tuple[int, int] | None:
    """Exact ``[start, end)`` in the original text of the first whitespace-collapsed match of ``quote``."""
    needle = collapse_whitespace(quote)
    if not needle:
        return None
    pos = collapsed.find(needle)
    if pos < 0:
        return None
    return where[pos], where[pos + len(needle) - 1] + 1


# -- citations -----------------------------------------------------------------------------
_MARKERS = re.compile(r"((?:\s*\[\d+\])+)")
_NUMBER = re.compile(r"\[(\d+)\]")
_LEADING = re.compile(r"^[\s.,;:!?)\]]+")


@dataclass(frozen=True)
class Claim:
    """A stretch of answer text and the citation numbers that follow it (empty when uncited)."""

    text: str
    cited: tuple[int, ...]


def split_claims(answer: str) -> list[Claim]:
    """Cut an answer into claims: the text before each group of ``[n]`` markers, and any uncited tail."""
    parts = _MARKERS.split(answer or "")
    claims: list[Claim] = []
    for i in range(0, len(parts), 2):
        text = collapse_whitespace(_LEADING.sub("", parts[i]))
        markers = parts[i + 1] if i + 1 < len(parts) else ""
        cited = tuple(int(n) for n in _NUMBER.findall(markers))
        if any(ch.isalnum() for ch in text):
            claims.append(Claim(text, cited))
    return claims


def claim_in_text(claim: str, passage: str) -> bool:
    """Whether the claim occurs verbatim in the passage, whitespace collapsed (a final full stop may differ)."""
    needle, hay = collapse_whitespace(claim), collapse_whitespace(passage)
    if not needle:
        return False
    return needle in hay or needle.rstrip(".") in hay


def supports(claim: str, passage: str, cosine: float | None, threshold: float = SUPPORT_COSINE) -> bool:
    """A cited passage supports a claim when the claim is in it, or means the same (cosine with the quote >= threshold)."""
    return claim_in_text(claim, passage) or (cosine is not None and cosine >= threshold)


def quote_is_exact(quote: str, text: str, start: int, end: int) -> bool:
    """Whether ``quote`` is exactly ``text[start:end]`` with a valid, non-empty range."""
    return (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)
            and text[start:end] == quote)


def page_of(pages: Sequence, offset: int) -> int | None:
    """The page whose ``[start, end)`` holds ``offset``, from a page map of objects with ``page, start, end``.

    Worked out here, not by the document's own ``page_at``, so that the check is independent of
    the code under test. None for an unpaged document (an empty page map); an offset past the last
    page's end, or in a gap between pages, belongs to the last page that starts at or before it.
    """
    found = None
    for span in sorted(pages, key=lambda s: s.start):
        if span.start <= offset < span.end:
            return span.page
        if span.start <= offset:
            found = span.page
    return found


def expected_page(document, offset: int) -> int | None:
    """The page a citation starting at ``offset`` should name: from the page map when there is one."""
    pages = getattr(document, "pages", None)
    if pages is not None:
        return page_of(pages, offset)
    return document.page_at(offset)


@dataclass
class AnswerScore:
    """The checks of one answer's citations and claims."""

    claims: int = 0
    supported_claims: int = 0
    pairs: int = 0  # (claim, citation) pairs
    supported_pairs: int = 0
    citations: int = 0
    exact_quotes: int = 0
    right_pages: int = 0
    covers_gold: bool = False


def score_answer(
    answer: str,
    citations: Sequence,
    documents: Mapping[str, object],
    passage_texts: Mapping[str, str],
    gold: Sequence[Span] = (),
    cosine: Callable[[str, str], float] | None = None,
) -> AnswerScore:
    """Check an answer: exact quotes, right pages, claims supported by the passages they cite, gold covered.

    ``citations`` carry ``n, chunk_id, doc_id, page, quote, start, end``; ``documents`` maps doc ids
    to objects with ``.text`` and a page map ``.pages`` (or ``.page_at(offset)``); ``cosine(claim, quote)`` is consulted only
    when a claim is not found verbatim in its cited passage.
    """
    score = AnswerScore(citations=len(citations))
    by_n = {c.n: c for c in citations}
    for c in citations:
        doc = documents.get(c.doc_id)
        if doc is not None and quote_is_exact(c.quote, doc.text, c.start, c.end):
            score.exact_quotes += 1
        if doc is not None and c.page == expected_page(doc, c.start):
            score.right_pages += 1
        if any(covers(Span(c.doc_id, c.start, c.end), g) for g in gold):
            score.covers_gold = True
    for claim in split_claims(answer):
        score.claims += 1
        supported_any = False
        for n in claim.cited:
            score.pairs += 1
            c = by_n.get(n)
            if c is None:
                continue
            passage = passage_texts.get(c.chunk_id, "")
            ok = claim_in_text(claim.text, passage)
            if not ok and cosine is not None:
                ok = supports(claim.text, passage, cosine(claim.text, c.quote))
            if ok:
                score.supported_pairs += 1
                supported_any = True
        score.supported_claims += supported_any
    return score
