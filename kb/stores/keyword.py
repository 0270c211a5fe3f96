"""The keyword index (bm25s) and the snapshot of every passage it was built from, under ``KB_HOME/bm25``.

Rebuilt whole after an ingestion and swapped in by renaming a folder, so a reader sees the old
index or the new one, never half of each. ``stamp`` names the set of passages it holds.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np

from kb.files import read_json, write_json
from kb.records import Passage

_GLUED_NUMBER = re.compile(r"(?<=[A-Za-z])(?=[0-9])")
# bm25s (with scipy) is imported where it is used: a tenth of a second that `kb docs` and the like skip.


def bm25_tokens(texts: list[str]) -> list[list[str]]:
    """Stemmed English terms without stop words; "Budgets4" (a footnote mark) is "Budgets 4"."""
    import bm25s
    import Stemmer

    texts = [_GLUED_NUMBER.sub(" ", t) for t in texts]
    return bm25s.tokenize(texts, stopwords="en", stemmer=Stemmer.Stemmer("english"),
                          return_ids=False, show_progress=False)


class KeywordIndex:
    """BM25 over passages (with their titles), and the passages with their documents' title, year and type."""

    def __init__(self, folder: Path) -> None:
        self.dir = folder
        self._bm25 = None
        self.passages: list[Passage] = []
        self.meta: list[dict] = []
        self.stamp = ""

    def stamp_on_disk(self) -> str:
        state = read_json(self.dir / "state.json", default={}) or {}
        return state.get("stamp", "")

    def rebuild(self, passages: list[Passage], meta: list[dict], stamp: str) -> None:
        """Build a new index of ``passages`` (``meta`` gives each one's title, year and type) and swap it in whole."""
        import bm25s

        tmp = self.dir.with_name(self.dir.name + ".new")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if passages:
            index = bm25s.BM25()
            index.index(bm25_tokens([p.embed_text(m["title"]) for p, m in zip(passages, meta)]), show_progress=False)
            index.save(str(tmp / "index"), show_progress=False)
        rows = [{**p.__dict__, **m} for p, m in zip(passages, meta)]
        (tmp / "passages.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
        write_json(tmp / "state.json", {"stamp": stamp, "passages": len(passages)})
        old = self.dir.with_name(self.dir.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if self.dir.exists():
            self.dir.rename(old)
        tmp.rename(self.dir)
        shutil.rmtree(old, ignore_errors=True)
        self._bm25 = None
        self.stamp = ""

    def load(self) -> None:
        """Read the index and the snapshot again if another process has rebuilt them."""
        import bm25s

        stamp = self.stamp_on_disk()
        if self.stamp == stamp and (self._bm25 is not None or not self.passages and stamp):
            return
        rows = read_json(self.dir / "passages.json", default=[]) or []
        fields = set(Passage.__dataclass_fields__)
        self.passages = [Passage(**{k: v for k, v in r.items() if k in fields}) for r in rows]
        self.meta = [{"title": r.get("title", ""), "year": r.get("year"), "type": r.get("type", "")} for r in rows]
        self._bm25 = bm25s.BM25.load(str(self.dir / "index"), show_progress=False) if rows else None
        self.stamp = stamp

    def top(self, query: str, n: int, mask: np.ndarray | None) -> list[tuple[str, float]]:
        """The ``n`` best passages for ``query`` by BM25, only those ``mask`` allows."""
        if self._bm25 is None:
            return []
        vocab = self._bm25.vocab_dict
        terms = [t for t in bm25_tokens([query])[0] if t in vocab]
        if not terms:
            return []
        scores = self._bm25.get_scores(terms)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        top = np.argsort(-scores)[:n]
        return [(self.passages[i].chunk_id, float(scores[i])) for i in top if scores[i] > 0]

    def idf(self, terms: list[str]) -> dict[str, float]:
        """BM25's inverse document frequency of stemmed terms (unknown terms are as rare as a term can be)."""
        if self._bm25 is None:
            return {t: 0.0 for t in terms}
        indptr = self._bm25.scores["indptr"]
        n = len(self.passages)
        vocab = self._bm25.vocab_dict
        out = {}
        for t in terms:
            i = vocab.get(t)
            df = int(indptr[i + 1] - indptr[i]) if i is not None and i + 1 < len(indptr) else 0
            out[t] = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return out
