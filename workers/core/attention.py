"""Attention rebuilt from q and k, the reference every view and test relies on."""

from __future__ import annotations

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
