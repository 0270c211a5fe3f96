"""Reading a question: its parts, and what each part asks for.

"What helped Bradford, and what slowed it down?" has two parts, and an answer needs a sentence for
each. What a part asks for (how, why, who, when, how many, what a term means, whether anyone did it)
tells which sentences answer it: a "why" wants a reason, a "how many" a figure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("funding", "how", "why", "who", "when", "quantity", "definition", "whether", "what")

# Where a question's second part begins: ", and what…", "; how…", "? And why…", "… and, if so, how…".
_SPLIT = re.compile(
    r"(?:[,;]\s*(?:and\s+|but\s+)?|\?\s+(?:and\s+|but\s+)?|\s+and\s+(?:if so,?\s+)?|\s+or\s+)"
    r"(?=(?:what|how|why|who|whom|which|when|where|did|does|do|was|were|is|are|has|have|had|can|could|would)\b)",
    re.I)
_KIND = (
    ("funding", re.compile(r"\b(?:paid for|pay for|funded|financed|funding|fund|who paid|how (?:much )?money)\b", re.I)),
    ("quantity", re.compile(r"^\W*(?:how (?:much|many|long|big|large|often)|what (?:percentage|proportion|share|"
                            r"number|amount|size|figure|sum)|by how much)\b", re.I)),
    ("why", re.compile(r"^\W*(?:why|what (?:\w+ ){0,2}(?:reasons?|drove|motivated|prompted|caused|led))\b", re.I)),
    ("how", re.compile(r"^\W*(?:how|in what way|by what means|what (?:\w+ ){0,2}(?:did|do|does) \w+(?: \w+)* do)\b", re.I)),
    ("who", re.compile(r"^\W*(?:who|whom|which (?:organisations?|bod(?:y|ies)|partners?|people|agenc(?:y|ies)))\b", re.I)),
    ("when", re.compile(r"^\W*(?:when|in what year|what year|since when)\b", re.I)),
    ("definition", re.compile(r"^\W*(?:what (?:is|are|was|were) (?:meant by |the meaning of )?(?:an? |the )?"
                              r"[\w‘’'\"-]+(?: [\w‘’'\"-]+){0,3}\W*$|what does \S+(?: \S+){0,3} (?:mean|stand for)\b|"
                              r"define\b)", re.I)),
    ("whether", re.compile(r"^\W*(?:did|does|do|has|have|had|is|are|was|were|can|could) (?:any|anyone|anybody|"
                           r"some|other|a |an |the )", re.I)),
)
_ASKS = re.compile(r"^\W*(?:what|how|why|who|whom|which|when|where|whose|did|does|do|was|were|is|are|has|have|had|"
                   r"can|could|would|should|will|in what|to what)\b", re.I)
# A reason, a way, a person or body, a date: what the words of an answering sentence show.
CUES = {
    "why": re.compile(r"\b(?:because|due to|owing to|as a result|so that|in order to|reasons?|driven|drive[rs]?|"
                      r"prompted|led to|motivat\w+|since|aim\w*|to (?:reduce|improve|address|tackle))\b", re.I),
    "how": re.compile(r"\b(?:by|through|using|via|with|setting up|set up|created?|established?|worked|brought|"
                      r"agreed|developed|introduced|used|held|ran|took)\b", re.I),
    "who": re.compile(r"\b(?:[A-Z][a-z]+ (?:[A-Z][a-z]+|of|for|and)\b|[A-Z]{2,}|council|trust|board|academy|"
                      r"government|department|partners?|leaders?|chief executive|director)", re.I),
    "when": re.compile(r"\b(?:(?:19|20)\d{2}|January|February|March|April|May|June|July|August|September|October|"
                       r"November|December|spring|summer|autumn|winter)\b", re.I),
    "funding": re.compile(r"[£$€]\s?\d|\b(?:fund\w*|paid|pay\w*|budgets?|grants?|invest\w*|money|costs?|"
                          r"savings?|resources|financ\w*|pooled|contribut\w*)\b", re.I),
    "quantity": re.compile(r"[£$%€]|\b\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                           r"twenty|thirty|forty|fifty|hundred|thousand|million|billion|half|third|quarter|dozens?|"
                           r"per ?cent)\b", re.I),
    "definition": re.compile(r"\b(?:is|are|means?|refers? to|defined|describes?|stands? for|known as|"
                             r"characteri[sz]ed)\b", re.I),
}
# A "did anyone…" question wants the case that did; these mark a sentence about why none did.
BARRIER = re.compile(r"\b(?:no willingness|not|never|unable|failed|difficult\w*|barriers?|obstacles?|"
                     r"opposition|impossible|prevent\w*|inhibit\w*)\b", re.I)


@dataclass(frozen=True)
class Part:
    """One thing a question asks: its words, and the kind of answer it wants (one of ``KINDS``)."""

    text: str
    kind: str

    def cue(self, sentence: str) -> bool:
        """Whether the sentence shows the kind of thing this part asks for."""
        pattern = CUES.get(self.kind)
        return bool(pattern and pattern.search(sentence))


def kind_of(text: str) -> str:
    """What a part asks for, read after an opening phrase ("In Barnet, how…" asks how)."""
    opening = re.match(r"^[^,?]*,\s*", text)
    if opening and _ASKS.match(text[opening.end():]):
        text = text[opening.end():]
    for kind, pattern in _KIND:
        if pattern.search(text) if kind == "funding" else pattern.match(text):
            return kind
    return "what"


def parts(question: str) -> list[Part]:
    """The question's parts, in order; a part's words are read with the first part's subject when it
    has none of its own ("and what slowed it down?")."""
    pieces: list[str] = []
    for piece in (p.strip(" ,;?") for p in _SPLIT.split(question)):
        if not piece:
            continue
        if pieces and not _ASKS.match(pieces[-1]):
            pieces[-1] = f"{pieces[-1]}, {piece}"  # an opening phrase ("In Barnet, how…") is not a part
        else:
            pieces.append(piece)
    pieces = [p for p in pieces if len(p.split()) >= 2] or [question.strip()]
    if len(pieces) == 1:
        return [Part(question.strip(), kind_of(question))]
    return [Part(p + "?", kind_of(p)) for p in pieces]
