"""The catalogue: every passage's text, place in its document and links, every document's summary and
the words the collection holds, in SQLite under ``KB_HOME/catalogue.sqlite``. The passages linked to each
concept, the passages in all and the evidence map's cells (passages per pair of keys: document, concept,
place, region, dimension) are counted as documents come and go, so reading them costs the same however
large the collection.

Passages are read by id, selected by filters and counted by queries, so that no process holds the whole
collection and no page walks it. A document is written or removed in one transaction; ``generation``
changes with every write, for readers that cache what they computed from the catalogue.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from kb.records import Axis, DocumentSummary, Passage
from kb.stores.sqlite import Database

LINKS = ("concepts", "places", "dimensions")
# What the evidence map's axes count by: a passage's document, its links, and its places' regions.
FIELDS = ("doc_id", *LINKS, "regions")

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, authors TEXT NOT NULL, year INTEGER, type TEXT NOT NULL,
    path TEXT NOT NULL, pages INTEGER NOT NULL, passages INTEGER NOT NULL, publisher TEXT NOT NULL,
    url TEXT NOT NULL, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS passages (
    row INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE, doc_id TEXT NOT NULL, idx INTEGER NOT NULL,
    start INTEGER NOT NULL, stop INTEGER NOT NULL, page INTEGER, heading TEXT NOT NULL, text TEXT NOT NULL,
    concepts TEXT NOT NULL, places TEXT NOT NULL, dimensions TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS passages_by_doc ON passages(doc_id, start);
CREATE TABLE IF NOT EXISTS links (concept TEXT NOT NULL, row INTEGER NOT NULL, scheme TEXT NOT NULL,
    PRIMARY KEY (concept, row)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS links_by_row ON links(row, scheme);
CREATE TABLE IF NOT EXISTS words (word TEXT PRIMARY KEY, documents INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS link_counts (concept TEXT PRIMARY KEY, passages INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cells (a_field TEXT NOT NULL, b_field TEXT NOT NULL, a TEXT NOT NULL, b TEXT NOT NULL,
    passages INTEGER NOT NULL, PRIMARY KEY (a_field, b_field, a, b)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS texts (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_PASSAGE = "p.chunk_id, p.doc_id, p.text, p.start, p.stop, p.page, p.heading, p.idx, p.concepts, p.places, p.dimensions"
_WORD = re.compile(r"[a-z0-9]+")

# What the words table holds, so that a catalogue counted otherwise is counted again.
WORDS_FROM = "title, authors, year, publisher, passages and their headings; a word glued to a footnote mark also without it"
# A document's bibliographic facts as one text, in SQL: a question may name its year or author.
_ABOUT = "title || ' ' || authors || ' ' || COALESCE(year, '') || ' ' || publisher"


def words_of(about: str, passages: Iterable[Passage]) -> set[str]:
    """Every lower-cased word and number of a document's bibliographic facts (``about``), passages and their
    headings (a name may stand alone on a line read as a heading: "Mark Rogers" under a foreword), and each
    word glued to a footnote mark without it."""
    words = set(_WORD.findall(" ".join([about, *(f"{p.heading} {p.text}" for p in passages)]).lower()))
    return words | {w.rstrip("0123456789") for w in words if w[0].isalpha() and w[-1].isdigit()}  # "DCLG9": DCLG


def _passage(row: tuple) -> Passage:
    chunk_id, doc_id, text, start, end, page, heading, index, *links = row
    return Passage(chunk_id=chunk_id, doc_id=doc_id, text=text, start=start, end=end, page=page, heading=heading,
                   index=index, **{name: json.loads(v) for name, v in zip(LINKS, links)})


def _json(values: Iterable) -> str:
    return json.dumps(sorted(values))


def cell_keys(p: Passage, regions: dict[str, str]) -> list[tuple[str, str]]:
    """Every (field, key) a passage counts under on the evidence map."""
    keys = [("doc_id", p.doc_id)] + [(name, k) for name in LINKS for k in sorted(set(getattr(p, name)))]
    return keys + [("regions", r) for r in sorted({regions[k] for k in p.places if k in regions})]


def cell_pairs(passages: Iterable[Passage], regions: dict[str, str]) -> Counter:
    """Passages per (field, field, key, key): each passage once in every cell it falls in."""
    counted: Counter = Counter()
    for p in passages:
        keys = cell_keys(p, regions)
        counted.update((fa, fb, a, b) for fa, a in keys for fb, b in keys)
    return counted


def _field(axis: Axis, name: str, kept: bool) -> tuple[str, list]:
    """A query of (row, key) pairs for one field of the evidence map (of the ``kept`` rows only), and its
    parameters."""
    only = " AND l.row IN (SELECT row FROM kept)" if kept else ""
    if axis == "doc_id":
        return f"{name} AS (SELECT row, doc_id AS key FROM passages l WHERE 1{only})", []
    if axis == "regions":
        return (f"{name} AS (SELECT DISTINCT l.row, m.value AS key FROM links l JOIN json_each("
                f"(SELECT value FROM texts WHERE key = 'regions')) m ON m.key = l.concept WHERE l.scheme = 'places'{only})",
                [])
    if axis not in LINKS:
        raise ValueError(f"unknown axis {axis!r}")
    return f"{name} AS (SELECT row, concept AS key FROM links l WHERE scheme = ?{only})", [axis]


class Catalogue:
    """``regions`` gives the places' regions (place id → region id) when the evidence map's cells are counted;
    it is asked for only then, so that a process that only reads passages never loads the ontology."""

    def __init__(self, path: Path, regions: Callable[[], dict[str, str]]) -> None:
        self.db = Database(path, SCHEMA)
        self._regions = regions
        self._counted = self._words = False
        self._cells: dict[str, str] | None = None

    def _ensure_counted(self) -> None:
        """Counts for a catalogue written before they were kept: made once from its passages."""
        if self._counted:
            return
        self._counted = True
        if self.db.conn.execute("SELECT 1 FROM state WHERE key = 'passages'").fetchone():
            return
        with self.db.write() as c:
            if not c.execute("SELECT 1 FROM state WHERE key = 'passages'").fetchone():
                c.execute("INSERT INTO link_counts SELECT concept, COUNT(*) FROM links GROUP BY concept")
                c.execute("INSERT INTO state SELECT 'passages', COUNT(*) FROM passages")

    def _ensure_cells(self) -> dict[str, str]:
        """The regions the cells are counted with; the cells counted again from every passage when they were
        counted with other regions (the vocabulary changed) or never (a catalogue of an earlier version)."""
        if self._cells is None:
            regions = dict(self._regions())
            wanted = json.dumps(regions, sort_keys=True)

            def recount(c) -> None:
                c.execute("DELETE FROM cells")
                for doc_id, _ in self._documents(c):
                    self._count_cells(c, self._document_passages(c, doc_id), +1, regions)
                c.execute("INSERT OR REPLACE INTO texts VALUES ('regions', ?)", (wanted,))

            self._kept_as("cells", hashlib.sha256(wanted.encode()).hexdigest(), recount)
            self._cells = regions
        return self._cells

    def _ensure_words(self) -> None:
        """The words of every document, counted again when they were counted from other parts of it."""
        def recount(c) -> None:
            c.execute("DELETE FROM words")
            for doc_id, about in self._documents(c):
                c.executemany("INSERT INTO words VALUES (?, 1) ON CONFLICT(word) DO UPDATE SET documents = documents + 1",
                              [(w,) for w in words_of(about, self._document_passages(c, doc_id))])

        if not self._words:
            self._kept_as("words", WORDS_FROM, recount)
            self._words = True

    def _kept_as(self, key: str, value: str, recount: Callable) -> None:
        """Run ``recount`` (in one transaction, once whichever process comes first) unless what ``key`` was
        last counted as is ``value``."""
        held = "SELECT 1 FROM texts WHERE key = ? AND value = ?"
        if self.db.conn.execute(held, (key, value)).fetchone() is None:
            with self.db.write() as c:
                if c.execute(held, (key, value)).fetchone() is None:
                    recount(c)
                    c.execute("INSERT OR REPLACE INTO texts VALUES (?, ?)", (key, value))
                    self._bump(c)

    # -- writing ----------------------------------------------------------------------------
    def put_document(self, summary: DocumentSummary, sha256: str, passages: list[Passage]) -> None:
        """Store a document's summary and passages, replacing what an earlier version left, in one transaction."""
        self._ensure_counted()
        self._ensure_words()
        regions = self._ensure_cells()
        with self.db.write() as c:
            self._delete(c, summary.doc_id, regions)
            c.execute("INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                      (summary.doc_id, summary.title, json.dumps(summary.authors), summary.year, summary.type,
                       summary.path, summary.pages, len(passages), summary.publisher, summary.url, sha256))
            for p in passages:
                row = c.execute("INSERT INTO passages (chunk_id, doc_id, idx, start, stop, page, heading, text, "
                                "concepts, places, dimensions) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                                (p.chunk_id, p.doc_id, p.index, p.start, p.end, p.page, p.heading, p.text,
                                 *(json.dumps(getattr(p, name)) for name in LINKS))).lastrowid
                c.executemany("INSERT OR IGNORE INTO links VALUES (?,?,?)",
                              [(cid, row, name) for name in LINKS for cid in getattr(p, name)])
            c.executemany("INSERT INTO words VALUES (?, 1) ON CONFLICT(word) DO UPDATE SET documents = documents + 1",
                          [(w,) for w in words_of(self._about(c, summary.doc_id), passages)])
            self._count(c, passages, +1)
            self._count_cells(c, passages, +1, regions)
            self._bump(c)

    def remove_document(self, doc_id: str) -> None:
        self._ensure_counted()
        self._ensure_words()
        regions = self._ensure_cells()
        with self.db.write() as c:
            self._delete(c, doc_id, regions)
            self._bump(c)

    def _delete(self, c, doc_id: str, regions: dict[str, str]) -> None:
        about = self._about(c, doc_id)
        old = self._document_passages(c, doc_id)
        if about is None and not old:
            return
        c.executemany("UPDATE words SET documents = documents - 1 WHERE word = ?",
                      [(w,) for w in words_of(about or "", old)])
        c.execute("DELETE FROM words WHERE documents <= 0")
        self._count(c, old, -1)
        self._count_cells(c, old, -1, regions)
        c.execute("DELETE FROM links WHERE row IN (SELECT row FROM passages WHERE doc_id = ?)", (doc_id,))
        c.execute("DELETE FROM passages WHERE doc_id = ?", (doc_id,))
        c.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))

    @staticmethod
    def _count(c, passages: list[Passage], sign: int) -> None:
        """Add (or take away) passages to the count of all and to the counts of what each links to."""
        linked = Counter(cid for p in passages for cid in {*p.concepts, *p.places, *p.dimensions})
        c.executemany("INSERT INTO link_counts VALUES (?, ?) ON CONFLICT(concept) DO UPDATE SET passages = passages + ?",
                      [(cid, sign * n, sign * n) for cid, n in linked.items()])
        c.execute("DELETE FROM link_counts WHERE passages <= 0")
        c.execute("INSERT INTO state VALUES ('passages', ?) ON CONFLICT(key) DO UPDATE SET value = value + ?",
                  (sign * len(passages), sign * len(passages)))

    @staticmethod
    def _count_cells(c, passages: list[Passage], sign: int, regions: dict[str, str]) -> None:
        """Add (or take away) a document's passages to the evidence map's cells."""
        c.executemany("INSERT INTO cells VALUES (?, ?, ?, ?, ?) ON CONFLICT(a_field, b_field, a, b) "
                      "DO UPDATE SET passages = passages + ?",
                      [(*key, sign * n, sign * n) for key, n in cell_pairs(passages, regions).items()])
        if sign < 0:
            c.execute("DELETE FROM cells WHERE passages <= 0")

    @staticmethod
    def _about(c, doc_id: str) -> str | None:
        """A stored document's bibliographic facts as one text (``_ABOUT``), or None when it is not stored."""
        row = c.execute(f"SELECT {_ABOUT} FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        return row[0] if row else None

    @staticmethod
    def _documents(c) -> list[tuple[str, str]]:
        """Each document's id and bibliographic facts (``_ABOUT``)."""
        return list(c.execute(f"SELECT doc_id, {_ABOUT} FROM documents"))

    @staticmethod
    def _document_passages(c, doc_id: str) -> list[Passage]:
        return [_passage(r) for r in c.execute(f"SELECT {_PASSAGE} FROM passages p WHERE doc_id = ?", (doc_id,))]

    @staticmethod
    def _bump(c) -> None:
        c.execute("INSERT INTO state VALUES ('generation', 1) ON CONFLICT(key) DO UPDATE SET value = value + 1")

    # -- reading: documents -------------------------------------------------------------------
    def generation(self) -> int:
        """A number that changes whenever a document is written or removed."""
        got = self.db.conn.execute("SELECT value FROM state WHERE key = 'generation'").fetchone()
        return got[0] if got else 0

    def count(self) -> int:
        self._ensure_counted()
        got = self.db.conn.execute("SELECT value FROM state WHERE key = 'passages'").fetchone()
        return got[0] if got else 0

    def counts(self) -> tuple[int, int]:
        """Documents and passages."""
        return self.db.conn.execute("SELECT COUNT(*), COALESCE(SUM(passages), 0) FROM documents").fetchone()

    def title(self, doc_id: str) -> str | None:
        got = self.db.conn.execute("SELECT title FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        return got[0] if got else None

    def documents(self) -> list[DocumentSummary]:
        rows = self.db.conn.execute("SELECT doc_id, title, authors, year, type, path, pages, passages, publisher, url "
                                    "FROM documents ORDER BY doc_id")
        return [DocumentSummary(d, t, json.loads(a), y, ty, pa, pg, n, pu, u) for d, t, a, y, ty, pa, pg, n, pu, u in rows]

    def document_states(self) -> dict[str, tuple[str, int]]:
        """Each stored document's content hash and passage count: what tells a stale entry."""
        return {d: (h, n) for d, h, n in self.db.conn.execute("SELECT doc_id, sha256, passages FROM documents")}

    def chunk_ids(self) -> set[str]:
        return {r[0] for r in self.db.conn.execute("SELECT chunk_id FROM passages")}

    # -- reading: passages ------------------------------------------------------------------
    def passages(self, ids: list[str]) -> list[Passage]:
        """Passages by id, in the order asked (ids not stored are left out)."""
        found = {p.chunk_id: p for p in map(_passage, self.db.conn.execute(
            f"SELECT {_PASSAGE} FROM passages p WHERE chunk_id IN (SELECT value FROM json_each(?))", (json.dumps(ids),)))}
        return [found[i] for i in ids if i in found]

    def all_passages(self) -> list[Passage]:
        """Every passage in document order: for evaluations and tools that read the whole collection."""
        return [_passage(r) for r in self.db.conn.execute(f"SELECT {_PASSAGE} FROM passages p ORDER BY doc_id, start")]

    def select(self, *, doc_ids: Iterable[str] | None = None, year: int | None = None, doc_type: str | None = None,
               linked: Iterable[set[str]] = ()) -> list[str]:
        """Ids of the passages of the given documents, year and type that link to one of each set in ``linked``
        (in no particular order)."""
        where, params = ["1"], []
        if doc_ids is not None:
            where.append("p.doc_id IN (SELECT value FROM json_each(?))")
            params.append(_json(doc_ids))
        if year is not None or doc_type:
            where.append("p.doc_id IN (SELECT doc_id FROM documents WHERE (? IS NULL OR year = ?) AND (? = '' OR type = ?))")
            params += [year, year, doc_type or "", doc_type or ""]
        for wanted in linked:
            where.append("p.row IN (SELECT row FROM links WHERE concept IN (SELECT value FROM json_each(?)))")
            params.append(_json(wanted))
        return [r[0] for r in self.db.conn.execute(f"SELECT p.chunk_id FROM passages p WHERE {' AND '.join(where)}", params)]

    def linked(self, wanted: set[str], limit: int | None = None) -> list[Passage]:
        """Passages linked to any of ``wanted`` (concept, place or dimension ids), in document order."""
        query = (f"SELECT {_PASSAGE} FROM passages p WHERE p.row IN (SELECT row FROM links WHERE concept IN "
                 "(SELECT value FROM json_each(?))) ORDER BY p.doc_id, p.start")
        params: list = [_json(wanted)]
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        return [_passage(r) for r in self.db.conn.execute(query, params)]

    def linked_count(self, wanted: set[str], by: str | None = None) -> Counter:
        """How many passages link to any of ``wanted``: in all (key None), or per document (``by="doc_id"``)
        or per place, concept or dimension they link to (``by="places"``...)."""
        rows = "SELECT DISTINCT row FROM links WHERE concept IN (SELECT value FROM json_each(?))"
        if by is None:
            query = f"SELECT NULL, COUNT(*) FROM ({rows})"
        elif by == "doc_id":
            query = f"SELECT doc_id, COUNT(*) FROM passages WHERE row IN ({rows}) GROUP BY doc_id"
        elif by in LINKS:
            query = f"SELECT concept, COUNT(*) FROM links WHERE scheme = ? AND row IN ({rows}) GROUP BY concept"
        else:
            raise ValueError(f"cannot count by {by!r}")
        params = ([by] if by in LINKS else []) + [_json(wanted)]
        return Counter({k: n for k, n in self.db.conn.execute(query, params)})

    def link_counts(self) -> dict[str, int]:
        """Passages linked to each concept, place and dimension (directly, not through narrower ones)."""
        self._ensure_counted()
        return dict(self.db.conn.execute("SELECT concept, passages FROM link_counts"))

    def links_per_document(self) -> dict[str, int]:
        """How many links (passage to concept, place or dimension) each document holds."""
        return dict(self.db.conn.execute(
            "SELECT p.doc_id, COUNT(*) FROM links l JOIN passages p ON p.row = l.row GROUP BY p.doc_id"))

    def known(self, words: Iterable[str]) -> set[str]:
        """Those of ``words`` (lower case) that some document's bibliographic facts, passage or heading holds."""
        self._ensure_words()
        return {r[0] for r in self.db.conn.execute(
            "SELECT word FROM words WHERE word IN (SELECT value FROM json_each(?))", (_json(words),))}

    # -- the evidence map -------------------------------------------------------------------
    def cell_counts(self, rows: Axis, cols: Axis, doc_ids: Iterable[str] | None = None) -> Counter:
        """Passages per (row key, column key) of two axes: as counted (the whole collection), or by a query
        over the passages of ``doc_ids`` when given."""
        self._ensure_cells()
        if doc_ids is None:
            return Counter({(a, b): n for a, b, n in self.db.conn.execute(
                "SELECT a, b, passages FROM cells WHERE a_field = ? AND b_field = ?", (rows, cols))})
        query, params = self._cells_query(rows, cols, doc_ids)
        counted = f"{query} SELECT a.key, b.key, COUNT(DISTINCT a.row) FROM a JOIN b ON a.row = b.row GROUP BY a.key, b.key"
        return Counter({(r, c): n for r, c, n in self.db.conn.execute(counted, params)})

    def cell_passages(self, rows: Axis, row_key: str, cols: Axis, col_key: str,
                      doc_ids: Iterable[str] | None = None) -> list[Passage]:
        """The passages behind one cell, in document order."""
        self._ensure_cells()
        query, params = self._cells_query(rows, cols, doc_ids)
        found = f"{query} SELECT DISTINCT a.row FROM a JOIN b ON a.row = b.row WHERE a.key = ? AND b.key = ?"
        return [_passage(r) for r in self.db.conn.execute(
            f"SELECT {_PASSAGE} FROM passages p WHERE p.row IN ({found}) ORDER BY p.doc_id, p.start",
            params + [row_key, col_key])]

    @staticmethod
    def _cells_query(rows: Axis, cols: Axis, doc_ids: Iterable[str] | None) -> tuple[str, list]:
        parts, params = [], []
        if doc_ids is not None:
            parts.append("kept AS (SELECT row FROM passages WHERE doc_id IN (SELECT value FROM json_each(?)))")
            params.append(_json(doc_ids))
        for axis, name in ((rows, "a"), (cols, "b")):
            query, more = _field(axis, name, doc_ids is not None)
            parts.append(query)
            params += more
        return "WITH " + ", ".join(parts), params
