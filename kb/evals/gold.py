"""Question sets: gold questions with their evidence, and the passages assessors judged to answer them.

The format is in ``evals/GOLD.md``; every problem is reported with the file, the line and what is wrong.
"""

from __future__ import annotations

import hashlib

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kb.config import PROJECT_ROOT
from kb.evals.metrics import Span, collapsed_index, locate
from kb.files import read_jsonl
from kb.records import Document

# The question sets the fitted models (sentence model, reader, decline threshold) learn from; the fifth is
# kept from them, for measuring.
FITTED_ON = tuple(PROJECT_ROOT / "evals" / f"{name}.jsonl" for name in ("gold", "heldout", "fresh", "fourth"))

class GoldError(ValueError):
    """A gold file that cannot be used; the message names the file, the line and the problem."""


@dataclass
class GoldEvidence:
    """One gold evidence item, resolved to exact offsets in its document's canonical text."""

    doc_id: str
    start: int | None = None
    end: int | None = None
    quote: str | None = None

    def span(self) -> Span:
        return Span(self.doc_id, int(self.start or 0), int(self.end or 0))


@dataclass
class GoldQuestion:
    """A gold question: no evidence means the corpus cannot answer it."""

    id: str
    question: str
    evidence: list[GoldEvidence]
    tags: list[str] = field(default_factory=list)
    line: int = 0
    # Passages besides the gold evidence that assessors judged to answer it (see load_judgements).
    judged: list[GoldEvidence] = field(default_factory=list)

    @property
    def answerable(self) -> bool:
        return bool(self.evidence)

    def spans(self) -> list[Span]:
        return [e.span() for e in self.evidence]

    def pooled_spans(self) -> list[Span]:
        return self.spans() + [e.span() for e in self.judged]


Documents = Mapping[str, "str | Document"]


def _texts(documents: Documents | None) -> dict[str, str] | None:
    """Doc id → canonical text, from a mapping of texts or of Documents."""
    if documents is None:
        return None
    return {k: (v if isinstance(v, str) else v.text) for k, v in documents.items()}


def load_gold(path: Path, documents: Documents | None = None) -> list[GoldQuestion]:
    """Read a JSONL gold file; with ``documents`` (doc id → canonical text or Document) check
    every doc id and resolve every quote to exact offsets.

    Raises GoldError naming the file, the line number and the problem.
    """
    path = Path(path)
    texts = _texts(documents)
    collapsed: dict[str, tuple[str, list[int]]] = {}
    questions: list[GoldQuestion] = []
    seen: dict[str, int] = {}
    for number, row in read_jsonl(path, GoldError):

        def fail(problem: str) -> GoldError:
            return GoldError(f"{path}, line {number}: {problem}")

        if not isinstance(row, dict):
            raise fail(f"expected a JSON object, got {type(row).__name__}")
        question = row.get("question")
        if not isinstance(question, str) or not question.strip():
            raise fail("missing question (a non-empty string 'question' is required)")
        qid = row.get("id", f"line-{number}")
        if not isinstance(qid, (str, int)) or isinstance(qid, bool):
            raise fail("'id' must be a string")
        qid = str(qid)
        if qid in seen:
            raise fail(f"duplicate id {qid!r} (first used on line {seen[qid]})")
        seen[qid] = number
        tags = row.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise fail("'tags' must be a list of strings")
        if "evidence" not in row:
            raise fail("missing evidence (use an empty list for a question the corpus cannot answer)")
        evidence = row["evidence"]
        if not isinstance(evidence, list):
            raise fail(f"evidence is not a list (got {type(evidence).__name__})")
        items: list[GoldEvidence] = []
        for i, item in enumerate(evidence, 1):
            where = f"evidence item {i}"
            if not isinstance(item, dict):
                raise fail(f"{where} is not an object")
            doc_id = item.get("doc_id")
            if not isinstance(doc_id, str) or not doc_id:
                raise fail(f"{where} has no doc_id")
            text = None
            if texts is not None:
                if doc_id not in texts:
                    known = ", ".join(sorted(texts)[:6]) or "none: ingest documents first"
                    raise fail(f"{where}: unknown doc_id {doc_id!r} (known: {known})")
                text = texts[doc_id]
            if "quote" in item:
                quote = item["quote"]
                if not isinstance(quote, str) or not quote.strip():
                    raise fail(f"{where}: quote must be a non-empty string")
                ev = GoldEvidence(doc_id, quote=quote)
                if text is not None:
                    if doc_id not in collapsed:
                        collapsed[doc_id] = collapsed_index(text)
                    found = locate(quote, *collapsed[doc_id])
                    if found is None:
                        short = quote if len(quote) <= 80 else quote[:77] + "..."
                        raise fail(f"{where}: quote not found in the canonical text of {doc_id!r}: {short!r}")
                    ev.start, ev.end = found
            elif "start" in item or "end" in item:
                start, end = item.get("start"), item.get("end")
                if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
                    raise fail(f"{where}: start and end must both be integers")
                if not 0 <= start < end or (text is not None and end > len(text)):
                    limit = f" (the text has {len(text)} characters)" if text is not None else ""
                    raise fail(f"{where}: offsets {start}..{end} are not a non-empty range of {doc_id!r}{limit}")
                ev = GoldEvidence(doc_id, start, end, text[start:end] if text is not None else None)
            else:
                raise fail(f"{where} needs a 'quote', or 'start' and 'end' offsets")
            items.append(ev)
        questions.append(GoldQuestion(qid, " ".join(question.split()), items, list(tags), number))
    if not questions:
        raise GoldError(f"{path}: no questions in the file")
    return questions


def judgements_for(gold_path: Path) -> Path:
    """Where the judged passages of a gold file live by default: ``gold.jsonl`` → ``gold.judged.jsonl``."""
    gold_path = Path(gold_path)
    return gold_path.with_name(gold_path.stem + ".judged.jsonl")


def load_judgements(path: Path, questions: list[GoldQuestion], documents: Documents) -> int:
    """Attach judged passages to their questions; return how many there are.

    Each line is ``{"id": question id, "doc_id", "start", "end", "quote"}``: a passage found by some
    mode that an assessor judged to answer the question, besides the gold evidence (pooled relevance
    judgements, as in TREC). ``quote`` must equal ``text[start:end]`` up to whitespace, so that a
    change to the canonical text is caught rather than silently shifting the span.
    """
    path = Path(path)
    texts = _texts(documents) or {}
    by_id = {q.id: q for q in questions}
    count = 0
    for number, row in read_jsonl(path, GoldError):
        try:
            qid, doc_id, start, end = str(row["id"]), row["doc_id"], row["start"], row["end"]
        except (KeyError, TypeError) as exc:
            raise GoldError(f"{path}, line {number}: needs id, doc_id, start and end ({exc})") from None
        if qid not in by_id:
            raise GoldError(f"{path}, line {number}: no question {qid!r} in the gold file")
        text = texts.get(doc_id)
        if text is None:
            raise GoldError(f"{path}, line {number}: unknown doc_id {doc_id!r}")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            raise GoldError(f"{path}, line {number}: offsets {start!r}..{end!r} are not a range of {doc_id!r}")
        quote = row.get("quote")
        if quote is not None and " ".join(quote.split()) != " ".join(text[start:end].split()):
            raise GoldError(f"{path}, line {number}: the text at {start}..{end} of {doc_id!r} is no longer the quote "
                            f"{quote[:60]!r} (the canonical text changed: locate the quote again)")
        by_id[qid].judged.append(GoldEvidence(doc_id, start, end, quote))
        count += 1
    return count


def answer_grades_for(gold_path: Path) -> Path:
    """Where the judged answers of a question set live: ``gold.jsonl`` → ``gold.answers.jsonl``."""
    gold_path = Path(gold_path)
    return gold_path.with_name(gold_path.stem + ".answers.jsonl")


def answer_key(answer: str) -> str:
    """What identifies an answer a reader judged: its text, whitespace aside."""
    return hashlib.sha1(" ".join(answer.split()).encode()).hexdigest()[:16]


def load_answer_grades(path: Path) -> dict[str, dict]:
    """Judged answers by question id: ``{"id", "answer_key", "grade": full|partial|no, "reason", "defects"}``
    (evals/ANSWER-JUDGING.md). A grade holds only while the answer it judged is unchanged."""
    grades = {}
    for number, row in read_jsonl(path, GoldError):
        if not isinstance(row, dict) or row.get("grade") not in ("full", "partial", "no") or not row.get("answer_key"):
            raise GoldError(f"{path}, line {number}: needs 'id', 'answer_key' and 'grade' (full, partial or no)")
        grades[str(row["id"])] = row
    return grades
