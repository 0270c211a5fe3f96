"""HTML pages: the text and headings, without scripts, styles or navigation."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from ingest.base import Extracted
from ingest.normalise import RawPage
from ingest.text import decode

SKIP = {"script", "style", "nav", "header", "footer", "aside", "noscript", "form", "svg", "iframe", "template", "button", "select"}
BLOCK = {"p", "div", "section", "article", "main", "br", "tr", "table", "ul", "ol", "dl", "dd", "dt", "blockquote", "pre", "figure", "figcaption", "hr", "body"}
HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "track", "wbr"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = [""]
        self.skip_depth = 0
        self.stack: list[str] = []
        self.title = ""
        self.in_title = False
        self.first_h1 = ""
        self.in_h1 = False

    def _break(self, prefix: str = "") -> None:
        if self.lines[-1].strip():
            self.lines.append("")
        self.lines.append(prefix)

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in VOID:
            if tag in BLOCK and not self.skip_depth:
                self._break()
            return
        self.stack.append(tag)
        if tag in SKIP or self.skip_depth:
            self.skip_depth += tag in SKIP or bool(self.skip_depth)
            return
        if tag == "title":
            self.in_title = True
        elif tag in HEADINGS:
            self._break("# ")
            self.in_h1 = tag == "h1" and not self.first_h1
        elif tag == "li":
            self._break("- ")
        elif tag in BLOCK:
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID or tag not in self.stack:
            return
        while self.stack:
            open_tag = self.stack.pop()
            if self.skip_depth:
                self.skip_depth -= 1
            if open_tag == tag:
                break
        if tag == "title":
            self.in_title = False
        if self.skip_depth:
            return
        if tag in HEADINGS:
            self.in_h1 = False
            self._break()
        elif tag in BLOCK or tag == "li":
            self._break()

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title += data
            return
        if self.skip_depth:
            return
        if self.in_h1:
            self.first_h1 += data
        self.lines[-1] += " ".join(data.split()) if data.strip() else (" " if data else "")
        if data[-1:].isspace() and not self.lines[-1].endswith(" "):
            self.lines[-1] += " "


def load_html(path: Path, page_marker: str = "none") -> Extracted:
    text, warnings = decode(path.read_bytes(), path.name)
    parser = _TextExtractor()
    parser.feed(text)
    parser.close()
    body = "\n".join(line.strip() for line in parser.lines)
    title = " ".join(parser.title.split()) or " ".join(parser.first_h1.split())
    return Extracted(pages=[RawPage(None, body)], marked_headings=True, title=title, warnings=warnings)
