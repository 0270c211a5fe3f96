"""Link passages to the vocabulary: concepts and places by their labels, dimensions by meaning.

Label matching works on word tokens with plurals and possessives folded, so it is case- and
plural-insensitive, respects word boundaries (no "Kent" inside "Kentucky") and lets the
longest label win ("North West London" over "London").
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from kb.records import Concept
from kb.vocab.ontology import Ontology

_TOKEN = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)?|[0-9]+")  # "Budgets4": a word, then its footnote
# Web and mail addresses name no places or concepts ("gov.uk" is not the UK).
_ADDRESS = re.compile(r"(?:https?://|www\.)\S+|\S+@\S+|\b[\w.-]+\.(?:co\.uk|org\.uk|gov\.uk|ac\.uk|nhs\.uk|com|org|net)\b\S*",
                      re.IGNORECASE)

# Bump when the linking rules change, so that `kb ingest` re-links stored passages.
RULES_VERSION = 3

# A speaker's tag after a quotation ("… children.” (DCS)") says who spoke, not what about; an
# acronym in brackets tags a speaker or repeats the name before it, so it adds no mention.
_ATTRIBUTION = re.compile(r"(?<=[”\"’])\s*\([^()\n]{1,40}\)|\([A-Z]{2,6}s?\)")
# "North West London" names a part of London: the city inside it is not linked on its own
# (a search for London still finds the passage, through the narrower place).
_QUALIFIERS = {"north", "south", "east", "west", "northwest", "northeast", "southwest", "southeast",
               "nw", "ne", "sw", "se", "central", "inner", "outer", "greater"}

# Similarity above which a passage evidences a dimension it does not name
# (calibrated on evals/linking.jsonl; see evals/LINKING.md).
DIMENSION_THRESHOLD = 0.60


def fold(word: str) -> str:
    """Lower-case, drop a possessive, and fold a plural to its singular (roughly, but both sides alike)."""
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    elif w.endswith("'"):
        w = w[:-1]
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def blank(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each span replaced by spaces, so that offsets still hold."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def tokens(text: str) -> list[tuple[str, int, int]]:
    """Folded word tokens with their character offsets."""
    return [(fold(m.group(0)), m.start(), m.end()) for m in _TOKEN.finditer(text)]


@dataclass
class Match:
    concept_id: str
    start: int
    end: int
    label: str


class LabelMatcher:
    """A token trie of every preferred and alternative label."""

    def __init__(self, concepts: list[Concept]) -> None:
        self.trie: dict = {}
        for c in concepts:
            for label in [c.label, *c.alt_labels]:
                words = [t for t, _, _ in tokens(label)]
                if not words:
                    continue
                node = self.trie
                for w in words:
                    node = node.setdefault(w, {})
                node.setdefault("$", c.id)

    def _longest(self, toks: list[tuple[str, int, int]], i: int, stop: int) -> tuple[str, int] | None:
        """The longest label starting at token ``i`` and ending by token ``stop``: (id, end token)."""
        node, best, j = self.trie, None, i
        while j < stop and toks[j][0] in node:
            node = node[toks[j][0]]
            j += 1
            if "$" in node:
                best = (node["$"], j)
        return best

    def find(self, text: str) -> list[Match]:
        toks = tokens(blank(text, [m.span() for m in _ADDRESS.finditer(text)]))
        out: list[Match] = []
        i = 0
        while i < len(toks):
            best = self._longest(toks, i, len(toks))
            if best:
                cid, j_end = best
                out.append(Match(cid, toks[i][1], toks[j_end - 1][2], text[toks[i][1]:toks[j_end - 1][2]]))
                i = j_end
            else:
                i += 1
        return out

    def nested(self, label: str) -> list[str]:
        """Ids of shorter labels inside a matched label ("Dorset" in "Dorset, Bournemouth and Poole")."""
        toks = tokens(label)
        found = []
        for i in range(len(toks)):
            for stop in range(len(toks), i, -1):
                best = self._longest(toks, i, stop)
                if best and not (i == 0 and best[1] == len(toks)):
                    found.append(best[0])
                    break
        return list(dict.fromkeys(found))

    def ids(self, text: str) -> list[str]:
        return list(dict.fromkeys(m.concept_id for m in self.find(text)))


def dimension_scores(vectors: np.ndarray, facet_vectors: np.ndarray, facet_dims: list[str]) -> list[dict[str, float]]:
    """Per passage, each dimension's best similarity over its own text and its facets' texts."""
    if len(vectors) == 0:
        return []
    sims = vectors @ facet_vectors.T
    dims = sorted(set(facet_dims))
    cols = {d: [i for i, fd in enumerate(facet_dims) if fd == d] for d in dims}
    return [{d: float(row[cols[d]].max()) for d in dims} for row in sims]


def choose_dimensions(scores: dict[str, float], named: list[str], threshold: float = DIMENSION_THRESHOLD) -> list[str]:
    """The dimensions the text names; failing that, the one closest in meaning if it is close enough.

    Precision matters more than recall here (a wrong link puts false evidence on the map), which
    is why only one dimension is linked by meaning and the threshold is set high.
    """
    if named:
        return list(dict.fromkeys(named))
    if scores:
        best = max(scores, key=scores.get)
        if scores[best] >= threshold:
            return [best]
    return []


class Linker:
    """Everything linking needs, built once from the ontology and the embedding model."""

    def __init__(self, ontology: Ontology, embedder) -> None:
        self.ontology = ontology
        self.embedder = embedder
        self.concepts = LabelMatcher(ontology.in_scheme("concepts"))
        # Organisations are matched with places so that "NHS England" is not England.
        self.places = LabelMatcher(ontology.in_scheme("places") + ontology.in_scheme("organisations"))
        self.dimension_labels = LabelMatcher(ontology.in_scheme("dimensions"))
        self.top_dimension = {}
        self.facet_texts, owners = [], []
        for c in ontology.in_scheme("dimensions"):
            root = self._dimension_of(c.id)
            self.top_dimension[c.id] = root
            self.facet_texts.append(f"{c.label}. {c.definition}".strip())
            owners.append(root)
        self.facet_dims = owners

    @cached_property
    def facet_vectors(self) -> np.ndarray:
        """The dimensions' and facets' own vectors, encoded when first needed (a run that links nothing
        never loads the model for them)."""
        if not self.facet_texts:
            return np.zeros((0, self.embedder.dim), np.float32)
        return self.embedder.encode(self.facet_texts)

    def _dimension_of(self, cid: str) -> str:
        chain = [cid, *self.ontology.broader_closure(cid)]
        roots = [c for c in chain if not any(b in self.ontology.concepts for b in self.ontology.concepts[c].broader)]
        return roots[0] if roots else cid

    def link(self, passages, vectors: np.ndarray, threshold: float = DIMENSION_THRESHOLD) -> None:
        """Set ``concepts``, ``places`` and ``dimensions`` (ids) on each passage, in place.

        ``dimensions`` holds the six dimensions the passage evidences, then the facets it names
        ("humility" under ways of being), so that a facet can be browsed and filtered on."""
        scores = dimension_scores(vectors, self.facet_vectors, self.facet_dims) if len(self.facet_dims) else [{}] * len(passages)
        for p, s in zip(passages, scores):
            p.concepts = self.concept_ids(p.text)
            p.places = self.place_ids(p.text)
            named = self.dimension_labels.ids(p.text)
            roots = self.roots(named)
            facets = [d for d in named if d not in roots]
            p.dimensions = choose_dimensions(s, roots, threshold) + facets

    def roots(self, dimension_ids: list[str]) -> list[str]:
        """The six dimensions that these dimensions and facets belong to, once each, in order."""
        return list(dict.fromkeys(self.top_dimension.get(d, d) for d in dimension_ids))

    def concept_ids(self, text: str) -> list[str]:
        """Concepts named, except inside an organisation's name ("Social Care Institute for
        Excellence" is not social care) or a speaker's tag ("… children.” (DCS)")."""
        spans = [(m.start, m.end) for m in self.places.find(text)
                 if self.ontology.concepts[m.concept_id].scheme == "organisations"]
        spans += [m.span() for m in _ATTRIBUTION.finditer(text)]
        return self.concepts.ids(blank(text, spans))

    def place_ids(self, text: str) -> list[str]:
        """Places named, including the parts a joint name spells out ("Lambeth & Southwark")
        and a containing place it names ("London Borough of Merton"); never an unrelated one
        ("Wales" is not in "New South Wales")."""
        out: list[str] = []
        for m in self.places.find(text):
            if self.ontology.concepts[m.concept_id].scheme != "places":
                continue
            out.append(m.concept_id)
            family = self.ontology.narrower_closure(m.concept_id) | set(self.ontology.broader_closure(m.concept_id))
            out += [c for c in self.places.nested(m.label) if c in family and not self._qualified(m.label, c)]
        return list(dict.fromkeys(out))

    def _qualified(self, label: str, cid: str) -> bool:
        """Whether ``label`` is compass words before a label of ``cid`` ("North West London")."""
        words = [t for t, _, _ in tokens(label)]
        rest = words
        while rest and rest[0] in _QUALIFIERS:
            rest = rest[1:]
        c = self.ontology.concepts[cid]
        return rest != words and any(rest == [t for t, _, _ in tokens(x)] for x in [c.label, *c.alt_labels])


def vocabulary_hash(folder: Path) -> str:
    """A hash of the vocabulary files and the linking rules: passages linked with older ones are re-linked."""
    h = hashlib.sha256(f"linking rules {RULES_VERSION}\0".encode())
    for path in sorted(folder.glob("*.ttl")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]
