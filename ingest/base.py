"""What every loader returns, and the error that names why a file was refused."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ingest.normalise import RawPage


class IngestError(Exception):
    """A file that cannot be ingested; the message is the reason a user sees."""


@dataclass
class Extracted:
    """Raw pages of one file, with what the file says about itself."""

    pages: list[RawPage]
    marked_headings: bool = False
    title: str = ""
    authors: list[str] = field(default_factory=list)
    year: int | None = None
    warnings: list[str] = field(default_factory=list)
    reader: str = ""  # the library that produced the text
    laid_out: bool = False  # lines as a page lays them out (PDF), not as a writer broke them


def display_name(path: Path | str) -> str:
    """A file name safe to print and store: bytes of a name that are not UTF-8 shown as '�'."""
    return os.fsencode(str(path)).decode("utf-8", "replace")
