"""What every loader returns, and the error that names why a file was refused."""

from __future__ import annotations

from dataclasses import dataclass, field

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
