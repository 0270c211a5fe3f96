"""References to the documents an answer cites: in a citation style (citeproc-py and a CSL style, Harvard
by default, or any .csl file), and as BibTeX or RIS for a reference manager."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from kb.records import Answer, Document, DocumentMeta

STYLES = ("harvard",)
FORMATS = ("harvard", "bibtex", "ris", "csl-json")
# Document types to CSL, BibTeX and RIS types.
_CSL = {"article": "article-journal", "book": "book", "chapter": "chapter", "report": "report", "thesis": "thesis",
        "paper": "paper-conference", "web-page": "webpage"}
_BIBTEX = {"article": "article", "book": "book", "chapter": "incollection", "report": "techreport",
           "thesis": "phdthesis", "paper": "inproceedings", "web-page": "online"}
_RIS = {"article": "JOUR", "book": "BOOK", "chapter": "CHAP", "report": "RPRT", "thesis": "THES",
        "paper": "CONF", "web-page": "ELEC"}


_ORGANISATION = {"fund", "council", "trust", "institute", "centre", "center", "nhs", "government", "computer",
                 "company", "ltd", "inc", "group", "college", "university", "office", "department", "agency",
                 "association", "board", "commission", "foundation", "network", "partnership", "authority",
                 "service", "services", "society", "alliance", "team", "unit", "committee", "organisation"}


def _name(author: str) -> dict:
    """'Jane Smith' → family Smith, given Jane; an organisation ('The King's Fund') stays literal."""
    parts = author.split()
    if len(parts) < 2 or any(w.lower().strip(".,") in _ORGANISATION for w in parts):
        return {"literal": author}
    return {"family": parts[-1], "given": " ".join(parts[:-1])}


def cited(answer: Answer, document: Callable[[str], Document | None]) -> list[DocumentMeta]:
    """The documents an answer cites, in the order first cited (``document``: doc id → Document)."""
    return [doc.meta for d in dict.fromkeys(c.doc_id for c in answer.citations) if (doc := document(d))]


def csl_item(meta: DocumentMeta) -> dict:
    item = {"id": meta.doc_id, "type": _CSL.get(meta.type, "report"), "title": meta.title,
            "author": [_name(a) for a in meta.authors]}
    if meta.year:
        item["issued"] = {"date-parts": [[meta.year]]}
    for key, value in (("publisher", meta.publisher), ("URL", meta.url), ("DOI", meta.doi)):
        if value:
            item[key] = value
    return item


def styled(metas: list[DocumentMeta], style: str | Path = "harvard") -> list[str]:
    """Each document as a plain-text reference in the style (a name of ``STYLES`` or a .csl file)."""
    import citeproc  # a fifth of a second: only when references are asked for
    from citeproc import Citation, CitationItem, CitationStylesBibliography, CitationStylesStyle, formatter
    from citeproc.source.json import CiteProcJSON

    if not metas:
        return []
    path = Path(style)
    if path.suffix != ".csl":
        path = Path(citeproc.__file__).parent / "data" / "styles" / "harvard-cite-them-right.csl"
    items = [_for_citeproc(csl_item(m)) for m in metas]
    bibliography = CitationStylesBibliography(CitationStylesStyle(str(path), validate=False), CiteProcJSON(items),
                                              formatter.plain)
    for m in metas:
        bibliography.register(Citation([CitationItem(m.doc_id.lower())]))
    by_id = {str(key): " ".join(str(entry).split()) for key, entry in zip(bibliography.keys, bibliography.bibliography())}
    return [by_id.get(m.doc_id.lower(), m.title) for m in metas]


def _for_citeproc(item: dict) -> dict:
    """citeproc-py lowercases ids and wants literal names as family names."""
    return {**item, "id": item["id"].lower(),
            "author": [{"family": a["literal"]} if "literal" in a else a for a in item["author"]]}


def _bib_value(value: str) -> str:
    return "{" + re.sub(r"([&%$#_])", r"\\\1", value) + "}"


def bibtex(metas: list[DocumentMeta]) -> str:
    entries = []
    for m in metas:
        fields = [("title", m.title), ("author", " and ".join(
                      f"{{{a}}}" if "literal" in _name(a) else f"{_name(a)['family']}, {_name(a)['given']}" for a in m.authors)),
                  ("year", str(m.year or "")), ("publisher", m.publisher), ("url", m.url), ("doi", m.doi)]
        body = ",\n".join(f"  {k} = {_bib_value(v) if k != 'author' else '{' + v + '}'}" for k, v in fields if v)
        entries.append(f"@{_BIBTEX.get(m.type, 'misc')}{{{m.doc_id},\n{body}\n}}")
    return "\n\n".join(entries) + ("\n" if entries else "")


def ris(metas: list[DocumentMeta]) -> str:
    records = []
    for m in metas:
        lines = [f"TY  - {_RIS.get(m.type, 'GEN')}", f"ID  - {m.doc_id}", f"TI  - {m.title}"]
        lines += [f"AU  - {a}" for a in m.authors]
        lines += [f"{tag}  - {value}" for tag, value in (("PY", str(m.year or "")), ("PB", m.publisher),
                                                        ("UR", m.url), ("DO", m.doi)) if value]
        records.append("\n".join(lines + ["ER  - "]))
    return "\n\n".join(records) + ("\n" if records else "")


def export(metas: list[DocumentMeta], fmt: str) -> str:
    """The documents in one of ``FORMATS`` (a style's references one per line)."""
    if fmt == "bibtex":
        return bibtex(metas)
    if fmt == "ris":
        return ris(metas)
    if fmt == "csl-json":
        return json.dumps([csl_item(m) for m in metas], ensure_ascii=False, indent=1) + "\n"
    return "\n".join(styled(metas, fmt)) + ("\n" if metas else "")
