"""Attention rebuilt from q and k, the reference every view and test relies on."""

from __future__ import annotations

import math

import numpy as np


def kv_head_for(head: int, n_heads: int, n_kv_heads: int) -> int:
    """Key head read by query head `head` under grouped-query attention."""
    return head // (n_heads // n_kv_heads)


def text_attention(q: np.ndarray, k: np.ndarray, causal: bool = False) -> np.ndarray:
    """softmax(q kᵀ/√d + mask) for one text: q [head, pos, d], k [kv_head, pos, d] -> [head, pos, pos] float64."""
    n_heads, n_kv = q.shape[0], k.shape[0]
    k_full = k[[kv_head_for(h, n_heads, n_kv) for h in range(n_heads)]].astype(np.float64)
    logits = np.einsum("hqd,hkd->hqk", q.astype(np.float64), k_full) / np.sqrt(q.shape[-1])
    if causal:
        n = q.shape[1]
        logits = np.where(np.tril(np.ones((n, n), dtype=bool)), logits, -np.inf)
    logits -= logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=-1, keepdims=True)


def attention_within_texts(q: np.ndarray, k: np.ndarray, text_id: np.ndarray, causal: bool
                           ) -> tuple[np.ndarray, np.ndarray]:
    """One head's attention within every text, the blocks one after another: flat float32 [Σ n_t²] and offsets
    int64 [texts + 1] (text t: flat[offsets[t]:offsets[t + 1]] reshaped [n_t, n_t], rows and columns its tokens in
    table order); q, k [token, d_head], text_id [token] (texts 0 .. max, any order)."""
    texts = int(text_id.max()) + 1 if len(text_id) else 0
    sizes = np.bincount(text_id, minlength=texts).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes**2)]).astype(np.int64)
    order = np.argsort(text_id, kind="stable")  # each text's tokens in table order, texts in id order
    starts = np.concatenate([[0], np.cumsum(sizes)])
    flat = np.empty(int(offsets[-1]), dtype=np.float32)
    for text in np.flatnonzero(sizes):
        rows = order[starts[text]: starts[text + 1]]
        flat[offsets[text]: offsets[text + 1]] = text_attention(q[None, rows], k[None, rows], causal)[0].ravel()
    return flat, offsets


def position_mean(attention: np.ndarray, offsets: np.ndarray, max_positions: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Mean attention by (query position, key position) over every text's block (attention_within_texts' flat
    [Σ n_t²] and offsets [texts + 1]), and the count of texts per cell: [P, P] each, P = max_positions (NaN where
    no text reaches)."""
    total = np.zeros((max_positions, max_positions))
    count = np.zeros((max_positions, max_positions))
    for start, end in zip(offsets[:-1], offsets[1:], strict=True):
        n = math.isqrt(int(end - start))
        block = attention[start:end].reshape(n, n)[:max_positions, :max_positions]
        m = block.shape[0]
        total[:m, :m] += block
        count[:m, :m] += 1
    return np.divide(total, count, out=np.full_like(total, np.nan), where=count > 0), count
