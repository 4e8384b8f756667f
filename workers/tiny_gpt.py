"""The bundled `tiny-gpt` (a small GPT-2 trained by scripts/train_tiny_gpt.py) and the head scores that find
its previous-token and induction heads from its own attention."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

TINY_GPT_ALIAS = "tiny-gpt"
BOS = "<|endoftext|>"


def tiny_gpt_path() -> Path:
    """Folder of the tiny-gpt weights and tokenizer inside the installed package."""
    return Path(__file__).resolve().parent / "data" / "tiny_gpt"


def attention_maps(model: Any, sequences: list[list[int]]) -> list[np.ndarray]:
    """The model's own attention per sequence, [layers, heads, n, n] each (one forward pass per sequence)."""
    import torch

    maps = []
    with torch.inference_mode():
        for ids in sequences:
            output = model(input_ids=torch.tensor([ids]), output_attentions=True)
            maps.append(torch.stack(output.attentions)[:, 0].float().numpy())
    return maps


def previous_token_scores(maps: list[np.ndarray]) -> np.ndarray:
    """Mean attention from each token to the token just before it, over all tokens after the first [layers, heads]."""
    rows = [m[:, :, np.arange(1, m.shape[-1]), np.arange(m.shape[-1] - 1)] for m in maps if m.shape[-1] > 1]
    return np.concatenate(rows, axis=-1).mean(axis=-1)


def repeated_random_tokens(vocab_size: int, bos_id: int, count: int, span: int, seed: int) -> list[list[int]]:
    """`count` sequences BOS + R + R, R a seeded random string of `span` non-BOS token ids [count][1 + 2 span]."""
    rng = np.random.default_rng(seed)
    choices = np.array([i for i in range(vocab_size) if i != bos_id])
    sequences = []
    for _ in range(count):
        span_ids = rng.choice(choices, size=span, replace=False).tolist()
        sequences.append([bos_id] + span_ids + span_ids)
    return sequences


def induction_scores(maps: list[np.ndarray], span: int) -> np.ndarray:
    """Mean attention from each token of the second copy to the token after its first occurrence [layers, heads].

    For BOS + R + R, the query at 1 + span + i (token R[i]) should attend to 2 + i (token R[i+1]), i < span - 1.
    """
    i = np.arange(span - 1)
    return np.stack([m[:, :, 1 + span + i, 2 + i].mean(axis=-1) for m in maps]).mean(axis=0)
