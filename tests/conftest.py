"""Shared fixtures: the real model (loaded once per session), real Chroma, real PDFs made here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from kb.config import PROJECT_ROOT, Settings  # noqa: E402
from kb.knowledge import KnowledgeBase  # noqa: E402

CORPUS = PROJECT_ROOT / "corpus"


def make_settings(home: Path, **changes) -> Settings:
    """Settings for a test: everything under ``home``, nothing from the caller's KB_* environment."""
    passed = {k: v for k, v in os.environ.items() if k in ("KB_ONTOLOGY", "KB_CHROMA_URL")}
    return Settings.from_env(env=passed, home=home, **changes)


@pytest.fixture
def new_kb(tmp_path):
    """A fresh, empty knowledge base in a temporary KB_HOME (the model is shared)."""
    def make(**changes) -> KnowledgeBase:
        return KnowledgeBase(make_settings(tmp_path / "kbhome", **changes))
    return make


@pytest.fixture(scope="session")
def corpus_kb(tmp_path_factory) -> KnowledgeBase:
    """The shipped corpus, ingested once per test session into a temporary KB_HOME."""
    home = tmp_path_factory.mktemp("corpus-kb")
    kb = KnowledgeBase(make_settings(home))
    report = kb.ingest(progress=False)
    assert report.ok, report.to_json()
    return kb


def write_pdf(path: Path, pages: list[str], *, title: str = "", author: str = "",
              encrypt_password: str | None = None) -> Path:
    """A real multi-page PDF with the given text on each page (reportlab; pypdf to encrypt)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    if title:
        c.setTitle(title)
    if author:
        c.setAuthor(author)
    for text in pages:
        y = 800
        for line in text.split("\n"):
            c.drawString(50, y, line)
            y -= 14
        c.showPage()
    c.save()
    if encrypt_password is not None:
        from pypdf import PdfReader, PdfWriter

        writer = PdfWriter(clone_from=PdfReader(path))
        writer.encrypt(user_password=encrypt_password, owner_password=encrypt_password + "-owner", algorithm="AES-128")
        with path.open("wb") as f:
            writer.write(f)
    return path
