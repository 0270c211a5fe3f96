"""``kb adapt``: teach the embedding model the collection's own language, from its documents and vocabulary alone.

Training pairs come from the knowledge base itself, never from a question set:
- ``ict`` (inverse cloze): a sentence of a passage as the query, the rest of that passage as the answer;
- ``neighbours``: a passage as the query, the passage that follows it in its document as the answer;
- ``ontology``: a concept's label (and definition) as the query, a passage linked to it as the answer;
- ``tsdae``: a sentence with most of its words deleted, from which the model must restore the sentence
  (a denoising auto-encoder, TSDAE).
The first three train a copy of the model with in-batch negatives (the multiple-negatives ranking loss). The
adapted model is saved under ``KB_HOME/models`` with a record of how it was made; a trial copy of
the knowledge base is embedded with it and evaluated on a question set beside the current one, and
the knowledge base switches to it only when asked (``--use``) or when the evaluation says it is
better. ``kb adapt --undo`` returns to the packaged model.
"""

from __future__ import annotations

import hashlib
import random
import re
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from ingest.chunk import heading_breaks, quotable_sentences
from kb.config import Settings, adopt_model
from kb.evals.run import run_evaluation
from kb.files import write_json
from kb.knowledge import KnowledgeBase
from kb.records import Document, Passage
from kb.vocab.ontology import Ontology

METHODS = ("ict", "neighbours", "ontology", "tsdae")
DEFAULT_METHODS = ("ict",)  # the best of them, alone or combined, on evals/gold.jsonl (evals/ADAPT.md)
# TSDAE deletes this share of a sentence's words.
DELETION = 0.6
# Pairs with fewer words than this on either side teach the model little.
MIN_WORDS = 6


@dataclass(frozen=True)
class Pair:
    query: str
    answer: str
    method: str


def _words(text: str) -> int:
    return len(re.findall(r"\w+", text))


def _flat(text: str) -> str:
    return " ".join(text.split())


def ict_pairs(documents: dict[str, Document], passages: Sequence[Passage], rng: random.Random,
              per_passage: int = 2) -> list[Pair]:
    """Inverse cloze: up to ``per_passage`` sentences of each passage, each against the passage without it."""
    out = []
    for p in passages:
        doc = documents.get(p.doc_id)
        if doc is None:
            continue
        spans = [s for s in quotable_sentences(doc.text, p.start, p.end, heading_breaks(doc))
                 if _words(doc.text[s.start:s.end]) >= MIN_WORDS]
        for s in rng.sample(spans, min(per_passage, len(spans))):
            rest = _flat(doc.text[p.start:s.start] + " " + doc.text[s.end:p.end])
            if _words(rest) >= MIN_WORDS:
                out.append(Pair(_flat(doc.text[s.start:s.end]), rest, "ict"))
    return out


def neighbour_pairs(passages: Sequence[Passage]) -> list[Pair]:
    """Each passage against the next one of its document (passages in document order)."""
    out = []
    for a, b in zip(passages, passages[1:]):
        if a.doc_id == b.doc_id and _words(a.text) >= MIN_WORDS and _words(b.text) >= MIN_WORDS:
            out.append(Pair(_flat(a.text), _flat(b.text), "neighbours"))
    return out


def ontology_pairs(ontology: Ontology, passages: Sequence[Passage], rng: random.Random,
                   per_concept: int = 8) -> list[Pair]:
    """A concept's labels and definition against passages linked to it: the vocabulary as weak labels."""
    linked: dict[str, list[Passage]] = {}
    for p in passages:
        for cid in {*p.concepts, *p.places, *p.dimensions}:
            linked.setdefault(cid, []).append(p)
    out = []
    for cid in sorted(linked):
        c = ontology.concepts.get(cid)
        if c is None:
            continue
        names = [c.label, *c.alt_labels]
        for p in rng.sample(linked[cid], min(per_concept, len(linked[cid]))):
            name = rng.choice(names)
            query = f"{name}: {c.definition}" if c.definition and rng.random() < 0.5 else name
            out.append(Pair(_flat(query), _flat(p.text), "ontology"))
    return out


def tsdae_pairs(documents: dict[str, Document], passages: Sequence[Passage], rng: random.Random) -> list[Pair]:
    """Every distinct sentence, damaged (``DELETION`` of its words gone) as the query and whole as the answer."""
    seen: set[str] = set()
    out = []
    for p in passages:
        doc = documents.get(p.doc_id)
        if doc is None:
            continue
        for span in quotable_sentences(doc.text, p.start, p.end, heading_breaks(doc)):
            sentence = _flat(doc.text[span.start:span.end])
            if sentence in seen or _words(sentence) < MIN_WORDS:
                continue
            seen.add(sentence)
            words = sentence.split()
            kept = [w for w in words if rng.random() >= DELETION] or [rng.choice(words)]
            out.append(Pair(" ".join(kept), sentence, "tsdae"))
    return out


def training_pairs(documents: dict[str, Document], passages: Sequence[Passage], ontology: Ontology,
                   methods: Iterable[str], seed: int = 0) -> list[Pair]:
    """The pairs of the chosen methods, from the knowledge base's documents and vocabulary only."""
    rng = random.Random(seed)
    passages = sorted(passages, key=lambda p: (p.doc_id, p.start))
    makers: dict[str, Callable[[], list[Pair]]] = {
        "ict": lambda: ict_pairs(documents, passages, rng),
        "neighbours": lambda: neighbour_pairs(passages),
        "ontology": lambda: ontology_pairs(ontology, passages, rng),
        "tsdae": lambda: tsdae_pairs(documents, passages, rng),
    }
    unknown = sorted(set(methods) - set(makers))
    if unknown:
        raise ValueError(f"unknown method {', '.join(unknown)}: use {', '.join(METHODS)}")
    return [pair for m in methods for pair in makers[m]()]


def batches(pairs: Sequence[Pair], size: int, rng: random.Random) -> list[list[Pair]]:
    """Shuffled batches, each of one loss (denoising, or in-batch negatives), in which no two pairs share
    an answer (a shared answer would be a false negative)."""
    denoising = [p for p in pairs if p.method == "tsdae"]
    out = [denoising[i:i + size] for i in range(0, len(denoising), size)]
    order = [p for p in pairs if p.method != "tsdae"]
    rng.shuffle(order)
    open_batches: list[tuple[list[Pair], set[str]]] = []
    for pair in order:
        for batch, answers in open_batches:
            if pair.answer not in answers and pair.query not in answers:
                batch.append(pair)
                answers.update((pair.answer, pair.query))
                if len(batch) == size:
                    out.append(batch)
                    open_batches.remove((batch, answers))
                break
        else:
            open_batches.append(([pair], {pair.answer, pair.query}))
    out += [b for b, _ in open_batches if len(b) > 1]
    rng.shuffle(out)
    return out


@dataclass
class AdaptRecord:
    """How an adapted model was made, saved beside it as ``adapt.json``."""

    name: str
    base_model: str
    methods: list[str]
    pairs: dict[str, int]
    epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    steps: int
    seconds: float
    device: str
    created: str
    training_data_sha256: str
    documents: int
    passages: int
    evaluation: dict = field(default_factory=dict)


def fit(base_model: str, pairs: Sequence[Pair], out_dir: Path, *, epochs: int = 1, batch_size: int = 32,
        learning_rate: float = 2e-5, seed: int = 0, device: str = "cpu", progress: bool = True) -> tuple[int, float]:
    """Train a copy of ``base_model`` on ``pairs`` with in-batch negatives and save it to ``out_dir``.
    Returns the steps taken and the seconds it took."""
    import torch  # seconds to import: only when training
    from sentence_transformers import SentenceTransformer  # the same
    try:
        from sentence_transformers.sentence_transformer.losses import DenoisingAutoEncoderLoss
    except ImportError:  # sentence-transformers before 5
        from sentence_transformers.losses import DenoisingAutoEncoderLoss

    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = SentenceTransformer(base_model, device=device, local_files_only=True)
    model.train()
    # Recomputes activations in the backward pass: half the memory, a few per cent slower, the same weights.
    encoder = getattr(model[0], "auto_model", None)
    if getattr(encoder, "supports_gradient_checkpointing", False):
        (getattr(encoder, "activation_checkpointing_enable", None) or encoder.gradient_checkpointing_enable)()
    plan = [b for _ in range(epochs) for b in batches(pairs, batch_size, rng)]
    # The decoder shares the encoder's weights; only its cross-attention and head are new.
    denoise = (DenoisingAutoEncoderLoss(model, decoder_name_or_path=base_model, tie_encoder_decoder=True)
               if any(p.method == "tsdae" for p in pairs) else None)
    optimiser = torch.optim.AdamW((denoise or model).parameters(), lr=learning_rate)
    warmup = max(1, len(plan) // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min(1.0, (step + 1) / warmup) * max(0.0, (len(plan) - step) / max(1, len(plan) - warmup)))
    started = time.perf_counter()
    for batch in tqdm(plan, desc="Adapting", unit="batch", disable=not progress):
        if batch[0].method == "tsdae":
            loss = denoise([_features(model, [p.query for p in batch], device),
                            _features(model, [p.answer for p in batch], device)], None)
        else:
            queries = model(_features(model, [p.query for p in batch], device))["sentence_embedding"]
            answers = model(_features(model, [p.answer for p in batch], device))["sentence_embedding"]
            scores = torch.nn.functional.normalize(queries, dim=1) @ torch.nn.functional.normalize(answers, dim=1).T
            loss = torch.nn.functional.cross_entropy(scores * 20.0, torch.arange(len(batch), device=scores.device))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    model.eval()
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(str(tmp))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return len(plan), time.perf_counter() - started


def _features(model, texts: list[str], device: str) -> dict:
    prepare = getattr(model, "preprocess", None) or model.tokenize  # tokenize in older sentence-transformers
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in prepare(texts).items()}


# -- the command ------------------------------------------------------------------------------
@dataclass
class AdaptOutcome:
    """What ``kb adapt`` did: the model, its record, the evaluation before and after, and whether it is in use."""

    model_dir: str
    record: AdaptRecord
    before: dict
    after: dict
    switched: bool
    reason: str

    def to_json(self) -> dict:
        return {"model": self.model_dir, "record": asdict(self.record), "before": self.before, "after": self.after,
                "switched": self.switched, "reason": self.reason}


def _summary(report) -> dict:
    r = report.modes["hybrid+ontology"]
    out = {"recall@5": r.recall[5], "mrr@10": r.mrr}
    if r.pooled_recall is not None:
        out.update({"judged recall@5": r.pooled_recall[5], "judged mrr@10": r.pooled_mrr})
    if report.answers:
        out.update({"quote exactness": report.answers.quote_exactness, "page accuracy": report.answers.page_accuracy,
                    "citation precision": report.answers.citation_precision})
    return out


def better(before: dict, after: dict) -> bool:
    """Adapted wins when it finds more answers in the top 5 without ranking them worse."""
    return after["recall@5"] > before["recall@5"] and after["mrr@10"] >= before["mrr@10"]


def trial_settings(settings: Settings, model_dir: Path, name: str) -> Settings:
    """A scratch knowledge base under ``KB_HOME/adapt`` embedded with the adapted model (its own collection)."""
    return settings.with_(home=settings.home / "adapt" / name / "kb", model=str(model_dir),
                          collection=f"{settings.collection}-{name}")


def adapt(kb: KnowledgeBase, gold: Path, *, methods: Sequence[str] = DEFAULT_METHODS, epochs: int = 1, batch_size: int = 32,
          learning_rate: float = 2e-5, seed: int = 0, use: bool = False, progress: bool = True) -> AdaptOutcome:
    """Fit an adapted model, embed a trial copy of the knowledge base with it, evaluate both on ``gold``,
    and switch the knowledge base to it when asked or when it is better."""
    if kb.is_empty():
        raise ValueError("the knowledge base is empty: run `kb ingest` first")
    settings = kb.settings
    documents = {d.meta.doc_id: d for d in kb.docs.all()}
    passages = kb.all_passages()
    pairs = training_pairs(documents, passages, kb.ontology, methods, seed)
    if len(pairs) < 2:
        raise ValueError("the knowledge base holds too little text to adapt the model on")
    digest = hashlib.sha256("\n".join(f"{p.method}\t{p.query}\t{p.answer}" for p in pairs).encode()).hexdigest()
    name = f"adapted-{'-'.join(methods)}-{digest[:8]}-e{epochs}"
    model_dir = (settings.home / "models" / name).resolve()
    base = settings.model_path
    steps, seconds = fit(base, pairs, model_dir, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                         seed=seed, device=settings.device, progress=progress)
    counts = {m: sum(p.method == m for p in pairs) for m in methods}
    record = AdaptRecord(name=name, base_model=base, methods=list(methods), pairs=counts, epochs=epochs,
                         batch_size=batch_size, learning_rate=learning_rate, seed=seed, steps=steps,
                         seconds=round(seconds, 1), device=settings.device,
                         created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                         training_data_sha256=digest, documents=len(documents), passages=len(passages))
    trial = KnowledgeBase(trial_settings(settings, model_dir, name))
    files = [Path(e.path) for e in kb.manifest.entries.values() if Path(e.path).exists()]
    trial.ingest(files, progress=progress)
    out = settings.home / "adapt" / name / "eval"
    before = _summary(run_evaluation(kb, gold, out / "before", baseline=False))
    after = _summary(run_evaluation(trial, gold, out / "after", baseline=False))
    discard(trial)
    record.evaluation = {"gold": str(gold), "before": before, "after": after}
    write_json(model_dir / "adapt.json", asdict(record))
    switched = use or better(before, after)
    reason = ("asked to (--use)" if use else "it is better on the question set" if switched
              else "it is not better on the question set; `kb adapt --use` switches anyway")
    if switched:
        switch(kb, model_dir, progress=progress)
    return AdaptOutcome(str(model_dir), record, before, after, switched, reason)


def discard(trial: KnowledgeBase) -> None:
    """Remove a trial knowledge base once measured: its Chroma collections (on a server too) and its files."""
    for collection in (trial.store.collection, trial.store.sentences):
        trial.store.client.delete_collection(collection.name)
    shutil.rmtree(trial.settings.home, ignore_errors=True)


def switch(kb: KnowledgeBase, model_dir: Path | None, *, progress: bool = True) -> None:
    """Use ``model_dir`` (None: the packaged model) for this knowledge base and embed every document again with it."""
    adopt_model(kb.settings.home, model_dir)
    fresh = KnowledgeBase(kb.settings)
    fresh.ingest([Path(e.path) for e in fresh.manifest.entries.values() if Path(e.path).exists()], progress=progress)
    fresh.compile_encoder()


def describe(outcome: AdaptOutcome) -> str:
    """The lines ``kb adapt`` prints."""
    r = outcome.record
    lines = [f"adapted model: {outcome.model_dir}",
             f"  from {r.documents} documents, {r.passages} passages: "
             + ", ".join(f"{n} {m} pairs" for m, n in r.pairs.items())
             + f"; {r.steps} steps in {r.seconds:.0f} s on {r.device}",
             f"  evaluated on {r.evaluation.get('gold')} (hybrid + ontology):",
             f"  {'':<22}{'before':>8}{'after':>8}"]
    for key in outcome.before:
        lines.append(f"  {key:<22}{outcome.before[key]:>8.3f}{outcome.after.get(key, float('nan')):>8.3f}")
    lines.append(("switched to it: " if outcome.switched else "kept the current model: ") + outcome.reason)
    return "\n".join(lines)
