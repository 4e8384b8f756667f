"""The bundled `tiny-gpt` (a small GPT-2 trained by scripts/train_tiny_gpt.py) and the head scores that find
its previous-token and induction heads from its own attention."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

TINY_GPT_ALIAS = "tiny-gpt"
BOS = "<|endoftext|>"


_FOLDER = Path(__file__).resolve().parent.parent / "data" / "tiny_gpt"


def tiny_gpt_path() -> Path:
    """Folder of the tiny-gpt weights and tokenizer inside the installed package."""
    return _FOLDER


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


POSITION_BANDS = ((1, 16), (17, 32), (33, 64), (65, 96), (97, 127))


def previous_token_by_band(maps: list[np.ndarray],
                           bands: tuple[tuple[int, int], ...] = POSITION_BANDS) -> np.ndarray:
    """Mean attention to the previous token from queries at positions first..last of each band, over every
    sequence long enough to reach the band [bands, layers, heads]."""
    scores = []
    for first, last in bands:
        rows = []
        for m in maps:
            queries = np.arange(first, min(last, m.shape[-1] - 1) + 1)
            if len(queries):
                rows.append(m[:, :, queries, queries - 1])
        scores.append(np.concatenate(rows, axis=-1).mean(axis=-1) if rows else np.full(maps[0].shape[:2], np.nan))
    return np.stack(scores)


def words_of(texts: list[str]) -> list[str]:
    """The distinct words (letters and apostrophes) of some texts, sorted."""
    return sorted({word for text in texts for word in re.findall(r"[A-Za-z']+", text)})


def corpus_windows(stream: list[int], bos_id: int, count: int, length: int, seed: int) -> list[list[int]]:
    """`count` seeded stretches of running corpus text, each BOS + `length` - 1 tokens [count][length]."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(stream) - length, size=count)
    return [[bos_id] + list(stream[s:s + length - 1]) for s in starts]


def repeated_corpus_words(tokenizer: Any, words: list[str], count: int, n_words: int,
                          seed: int) -> tuple[list[list[int]], list[int]]:
    """`count` texts of `n_words` distinct seeded words written twice (BOS + R + R, R the spaced words' tokens),
    and each R's length [count]."""
    rng = np.random.default_rng(seed)
    sequences, spans = [], []
    for _ in range(count):
        chosen = rng.choice(len(words), size=n_words, replace=False)
        span_ids = tokenizer(" " + " ".join(words[i] for i in chosen), add_special_tokens=False)["input_ids"]
        sequences.append([tokenizer.bos_token_id] + span_ids + span_ids)
        spans.append(len(span_ids))
    return sequences, spans


def induction_scores_by_span(maps: list[np.ndarray], spans: list[int]) -> np.ndarray:
    """`induction_scores` over sequences BOS + R + R of different span lengths, every second-copy token counted
    once [layers, heads]."""
    rows = [m[:, :, 1 + span + np.arange(span - 1), 2 + np.arange(span - 1)]
            for m, span in zip(maps, spans, strict=True)]
    return np.concatenate(rows, axis=-1).mean(axis=-1)
