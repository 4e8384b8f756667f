"""Extraction: q and k of every head for every token of a corpus, via forward hooks on the projections.

Shapes (TransformerLens words): per layer `q[head, token, d_head]`, `k[kv_head, token, d_head]`;
tokens are concatenated over texts in corpus order, padding removed.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from workers.corpus import Corpus
from workers.models import LoadedModel

Progress = Callable[[float, str], None]


def _no_progress(fraction: float, message: str) -> None:
    """Default progress sink."""


@dataclass
class TokenBatches:
    """The corpus tokenised once: ids per text, and batches of text ids sorted by length."""

    ids: list[list[int]]
    batches: list[list[int]]

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per text, int32 [texts]."""
        return np.array([len(x) for x in self.ids], dtype=np.int32)

    @property
    def offsets(self) -> np.ndarray:
        """Index of each text's first token in the concatenated table, int64 [texts]."""
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)


@dataclass
class QKBundle:
    """Tokens table plus q, k per layer (float32)."""

    tokens: dict[str, np.ndarray]
    q: list[np.ndarray] = field(default_factory=list)  # per layer [head, token, d_head]
    k: list[np.ndarray] = field(default_factory=list)  # per layer [kv_head, token, d_head]
    seconds: float = 0.0


def tokenize_corpus(loaded: LoadedModel, corpus: Corpus, batch_size: int, max_tokens: int) -> TokenBatches:
    """Token ids per text (truncated to max_tokens) and length-sorted batches of text ids."""
    encoded = loaded.tokenizer(list(corpus.texts), truncation=True, max_length=max_tokens)
    ids = [list(x) for x in encoded["input_ids"]]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return TokenBatches(ids=ids, batches=batches)


def _collate(batch_ids: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids and attention_mask tensors [batch, pos]."""
    width = max(len(x) for x in batch_ids)
    input_ids = torch.full((len(batch_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch_ids), width), dtype=torch.long)
    for row, ids in enumerate(batch_ids):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


def iter_batches(loaded: LoadedModel, tokens: TokenBatches) -> Iterator[tuple[list[int], dict[str, torch.Tensor]]]:
    """(text ids, model inputs) per batch."""
    pad_id = loaded.tokenizer.pad_token_id or 0
    for text_ids in tokens.batches:
        yield text_ids, _collate([tokens.ids[i] for i in text_ids], pad_id)


def _module(root: torch.nn.Module, path: str) -> torch.nn.Module:
    """Attribute path lookup, e.g. 'encoder.layer'."""
    for part in path.split("."):
        root = getattr(root, part)
    return root


@contextlib.contextmanager
def projection_hooks(loaded: LoadedModel, sink: Callable[[str, int, torch.Tensor], None]) -> Iterator[None]:
    """Call sink(role, layer, output[batch, pos, heads*d_head]) for every q/k projection; hooks removed in finally."""
    family = loaded.family
    handles = []
    try:
        for layer, block in enumerate(_module(loaded.model, family.layers)):
            for role, path in (("q", family.query), ("k", family.key)):
                hook = (lambda r, i: lambda _m, _inp, out: sink(r, i, out))(role, layer)
                handles.append(_module(block, path).register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


def tokens_table(loaded: LoadedModel, tokens: TokenBatches) -> dict[str, np.ndarray]:
    """One row per token: text_id, position, token, length, position_norm, is_special, frequency."""
    lengths = tokens.lengths
    text_id = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)
    position = np.concatenate([np.arange(n, dtype=np.int32) for n in lengths])
    length = lengths[text_id]
    flat_ids = [i for ids in tokens.ids for i in ids]
    words = loaded.tokenizer.convert_ids_to_tokens(flat_ids)
    counts = Counter(words)
    special = set(loaded.tokenizer.all_special_ids)
    return {
        "text_id": text_id,
        "position": position,
        "token": np.array(words, dtype=str),
        "length": length.astype(np.int32),
        "position_norm": (position / np.maximum(length - 1, 1)).astype(np.float32),
        "is_special": np.array([i in special for i in flat_ids], dtype=bool),
        "frequency": np.array([counts[w] for w in words], dtype=np.int32),
    }


def corpus_order(tokens: TokenBatches) -> torch.Tensor:
    """Index that takes tokens from batch (length-sorted) order back to corpus order, int64 [token]."""
    lengths = tokens.lengths
    batch_offset = np.zeros(len(lengths), np.int64)
    cursor = 0
    for text in (t for batch in tokens.batches for t in batch):
        batch_offset[text] = cursor
        cursor += lengths[text]
    return torch.from_numpy(np.concatenate([np.arange(o, o + n) for o, n in zip(batch_offset, lengths, strict=True)]))


def extract(loaded: LoadedModel, corpus: Corpus, batch_size: int = 64, max_tokens: int = 128,
            progress: Progress = _no_progress) -> QKBundle:
    """Run the corpus through the model and keep q, k of every layer and head, padding removed."""
    spec = loaded.spec
    tokens = tokenize_corpus(loaded, corpus, batch_size, max_tokens)
    chunks: dict[tuple[str, int], list[torch.Tensor]] = {}
    valid: list[torch.Tensor] = []

    def sink(role: str, layer: int, out: torch.Tensor) -> None:
        chunks.setdefault((role, layer), []).append(out[valid[0]])  # [valid tokens, heads*d_head]

    start = time.perf_counter()
    with torch.inference_mode(), projection_hooks(loaded, sink):
        for done, (_text_ids, inputs) in enumerate(iter_batches(loaded, tokens), start=1):
            valid[:] = [inputs["attention_mask"].bool()]
            loaded.model(**inputs)
            progress(done / len(tokens.batches), f"forward pass {done}/{len(tokens.batches)}")
        order = corpus_order(tokens)
        bundle = QKBundle(tokens=tokens_table(loaded, tokens))
        for layer in range(spec.n_layers):
            bundle.q.append(_heads_first(chunks.pop(("q", layer)), order, spec.d_head))
            bundle.k.append(_heads_first(chunks.pop(("k", layer)), order, spec.d_head))
    bundle.seconds = time.perf_counter() - start
    return bundle


def _heads_first(chunks: list[torch.Tensor], order: torch.Tensor, d_head: int) -> np.ndarray:
    """Batch-order chunks [tokens, heads*d_head] -> corpus-order contiguous float32 [head, token, d_head]."""
    flat = torch.cat(chunks).index_select(0, order)
    return flat.view(flat.shape[0], -1, d_head).permute(1, 0, 2).contiguous().float().numpy()


def plain_forward_seconds(loaded: LoadedModel, corpus: Corpus, batch_size: int = 64, max_tokens: int = 128) -> float:
    """Seconds for the same batches through the same model with no hooks (the extraction baseline)."""
    tokens = tokenize_corpus(loaded, corpus, batch_size, max_tokens)
    start = time.perf_counter()
    with torch.inference_mode():
        for _ids, inputs in iter_batches(loaded, tokens):
            loaded.model(**inputs)
    return time.perf_counter() - start
