"""The compiled encoder: the same vectors and word-piece counts as sentence-transformers, faster to load."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from kb.embed import Embedder, compile_encoder, load_compiled

TEXTS = [
    "How did others handle pooled budgets?",
    "Trust",
    "Barnet’s Community Budgets pilot pooled funding across health, police and the council; "
    "the Troubled Families work — ‘100 Families’ — began in 2010. " * 12,  # longer than the model reads
    "",
]


@pytest.fixture(scope="module")
def compiled(corpus_kb, tmp_path_factory):
    path = tmp_path_factory.mktemp("encoder") / "minilm"
    assert compile_encoder(corpus_kb.embedder, path)
    return path


def test_the_compiled_encoder_gives_the_models_vectors_and_counts(corpus_kb, compiled):
    reference = corpus_kb.embedder
    assert not reference.compiled
    fast = Embedder(reference.model_path, compiled)
    assert fast.compiled and fast._model is None  # sentence-transformers was not needed
    assert (fast.dim, fast.max_seq_length) == (reference.dim, reference.max_seq_length)
    expected = reference._encode(TEXTS, 64, False)
    got = fast._encode(TEXTS, 2, False)  # batches of mixed lengths: padding must not change a vector
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-5
    for text in TEXTS:
        assert fast.count_tokens(text) == reference.count_tokens(text)
    assert fast.count_tokens(TEXTS[2]) > fast.max_seq_length  # counted whole, not truncated


def test_search_with_the_compiled_encoder_finds_the_same_passages(corpus_kb, compiled):
    from kb.knowledge import KnowledgeBase

    kb = KnowledgeBase(corpus_kb.settings)
    kb.__dict__["embedder"] = Embedder(corpus_kb.embedder.model_path, compiled)
    for question in ("How did others handle pooled budgets?", "What is an authorising environment?"):
        ours = [h.passage.chunk_id for h in kb.search(question, k=5).hits]
        assert ours == [h.passage.chunk_id for h in corpus_kb.search(question, k=5).hits]
        ours, theirs = kb.ask(question).to_json(), corpus_kb.ask(question).to_json()
        # Scores agree to float noise (1e-6 in the sixth decimal); everything else exactly.
        for a, b in zip(ours["passages"], theirs["passages"]):
            assert a.pop("score") == pytest.approx(b.pop("score"), abs=1e-4)
        assert ours == theirs


def test_a_broken_compiled_encoder_is_not_used(corpus_kb, compiled, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("encoder.json", "tokenizer.json"):
        (broken / name).write_bytes((compiled / name).read_bytes())
    (broken / "encoder.pt").write_bytes(b"not a TorchScript archive")
    assert load_compiled(broken) is None
    assert load_compiled(tmp_path / "missing") is None
    fallback = Embedder(corpus_kb.embedder.model_path, broken)
    assert not fallback.compiled
    assert np.abs(fallback.encode(["Trust"]) - corpus_kb.embedder.encode(["Trust"])).max() < 1e-6


def test_a_server_process_with_the_compiled_encoder_never_imports_sentence_transformers(corpus_kb, compiled, tmp_path):
    """What makes `kb app` start quickly: answering loads torch and the trace, not sentence-transformers."""
    code = (
        "import sys; from pathlib import Path; from kb.embed import Embedder; "
        f"e = Embedder({corpus_kb.embedder.model_path!r}, Path({str(compiled)!r})); "
        "v = e.encode(['How did others handle pooled budgets?']); "
        "print(e.compiled, v.shape, 'sentence_transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2] == "True (1, 384) False"
