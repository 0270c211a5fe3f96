"""What `kb adapt` costs as a collection grows: pairs per passage, training seconds per pair and
embedding seconds per passage, on the shipped corpus (the baseline) and on a synthetic collection
built from the corpus's own sentences (each document a new shuffle), in the same process. Both costs
are linear in the collection, so the figures per 10k passages are the measured rates times 10k.

    python benchmarks/adapt.py [--passages 600] [--pairs 192]

Prints the figures (and the process's peak memory) and writes benchmarks/adapt-results.json.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest.chunk import chunk  # noqa: E402
from kb.adapt import DEFAULT_METHODS, fit, training_pairs  # noqa: E402
from kb.config import Settings  # noqa: E402
from kb.index import embed, sentence_records  # noqa: E402
from kb.knowledge import KnowledgeBase  # noqa: E402
from kb.records import Document, DocumentMeta  # noqa: E402


def synthetic_documents(kb: KnowledgeBase, passages_wanted: int, rng: random.Random) -> list[Document]:
    """Documents of the corpus's sentences in a new order, until they make about ``passages_wanted`` passages."""
    sentences = [doc.text[r.start:r.end] for doc in kb.docs.all()
                 for r in sentence_records(doc, [p for p in kb.all_passages() if p.doc_id == doc.meta.doc_id])]
    per_doc = max(1, len(kb.all_passages()) // max(1, len(kb.docs.all())))
    docs, made = [], 0
    while made < passages_wanted:
        rng.shuffle(sentences)
        text = "\n\n".join(" ".join(sentences[i:i + 4]) for i in range(0, min(len(sentences), per_doc * 12), 4))
        doc = Document(DocumentMeta(doc_id=f"synthetic-{len(docs)}", title=f"Synthetic report {len(docs)}"), text)
        docs.append(doc)
        made += len(chunk(doc, kb.embedder.count_tokens))
    return docs


def cost(kb: KnowledgeBase, docs: list[Document], sample_pairs: int, work: Path, rng: random.Random) -> dict:
    """Embedding, linking and pair making for ``docs``, and training on a sample of their pairs."""
    t0 = time.perf_counter()
    passages = []
    for doc in docs:
        mine = chunk(doc, kb.embedder.count_tokens)
        vectors, _ = embed(kb.embedder, doc, mine, sentence_records(doc, mine))
        kb.linker.link(mine, vectors)
        passages += mine
    embed_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pairs = training_pairs({d.meta.doc_id: d for d in docs}, passages, kb.ontology, DEFAULT_METHODS)
    pairs_s = time.perf_counter() - t0
    sample = rng.sample(pairs, min(sample_pairs, len(pairs)))
    steps, train_s = fit(kb.settings.model_path, sample, work / "model", progress=False)
    return {"passages": len(passages), "pairs": len(pairs), "pairs_per_passage": len(pairs) / len(passages),
            "embed_and_link_s": embed_s, "embed_s_per_passage": embed_s / len(passages), "make_pairs_s": pairs_s,
            "trained_pairs": len(sample), "train_steps": steps, "train_s": train_s, "train_s_per_pair": train_s / len(sample)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=600, help="size of the synthetic collection")
    parser.add_argument("--pairs", type=int, default=192, help="pairs trained on to time training")
    args = parser.parse_args(argv)
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        kb = KnowledgeBase(Settings.from_env(env={}, home=work / "kb"))
        kb.ingest(progress=False)
        kb.embedder.encode(["warm up"])
        shipped = cost(kb, kb.docs.all(), args.pairs, work, rng)
        synthetic = cost(kb, synthetic_documents(kb, args.passages, rng), args.pairs, work, rng)
    per_10k = {"embed_and_link_min": synthetic["embed_s_per_passage"] * 10_000 / 60,
               "train_one_epoch_min": synthetic["pairs_per_passage"] * 10_000 * synthetic["train_s_per_pair"] / 60}
    shipped_adapt_min = shipped["pairs"] * shipped["train_s_per_pair"] / 60
    out = {"shipped": shipped, "synthetic": synthetic, "per_10k_passages": per_10k,
           "shipped_one_epoch_min": shipped_adapt_min,
           "ratio_train_s_per_pair_synthetic_to_shipped": synthetic["train_s_per_pair"] / shipped["train_s_per_pair"],
           "ratio_embed_s_per_passage_synthetic_to_shipped": synthetic["embed_s_per_passage"] / shipped["embed_s_per_passage"],
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    for name, r in (("shipped corpus", shipped), ("synthetic", synthetic)):
        print(f"{name:<15} {r['passages']:>5} passages, {r['pairs']:>5} pairs ({r['pairs_per_passage']:.2f} a passage); "
              f"embed+link {r['embed_s_per_passage'] * 1000:.0f} ms a passage; train {r['train_s_per_pair'] * 1000:.0f} ms a pair")
    print(f"one epoch on the shipped corpus: {shipped_adapt_min:.1f} min; per 10k passages: embed and link "
          f"{per_10k['embed_and_link_min']:.0f} min, train one epoch {per_10k['train_one_epoch_min']:.0f} min")
    print(f"ratios synthetic / shipped: train per pair {out['ratio_train_s_per_pair_synthetic_to_shipped']:.2f}, "
          f"embed per passage {out['ratio_embed_s_per_passage_synthetic_to_shipped']:.2f}; peak memory {out['peak_rss_mb']:.0f} MB")
    (ROOT / "benchmarks" / "adapt-results.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
