"""Numpy helpers that draw stored results: a text's rows, a stored attention block reweighted for display (value
norms, special tokens hidden), token traits, search. No attention is computed here: workers.core.attention does
that, in the workers."""

from __future__ import annotations

import string

import numpy as np

from workers.core.tokens import MARKS

PUNCTUATION = set(string.punctuation) | {"…", "“", "”", "‘", "’", "—", "–"}


def text_rows(text_id: np.ndarray, text: int) -> np.ndarray:
    """Row indices [n] of one text's tokens (in position order)."""
    return np.flatnonzero(text_id == text)


def value_weighted(attention: np.ndarray, value_norms: np.ndarray) -> np.ndarray:
    """Attention [q, k] weighted by the norm of each key's value vector [k], rows renormalised to 1.

    How much each token actually contributes to a query's output (Kobayashi et al., 2020): a token attended to
    but carrying a short value vector adds little.
    """
    weighted = attention * value_norms[None, :]
    total = weighted.sum(axis=1, keepdims=True)
    return np.divide(weighted, total, out=np.zeros_like(weighted), where=total > 0)


def renormalise_without(attention: np.ndarray, drop: np.ndarray) -> np.ndarray:
    """Attention [n, n] with the key columns in `drop` (bool [n]) removed from view and rows renormalised."""
    kept = attention * ~drop[None, :]
    total = kept.sum(axis=1, keepdims=True)
    return np.divide(kept, total, out=np.zeros_like(kept), where=total > 0)


def vector_norms(vectors: np.ndarray) -> np.ndarray:
    """Euclidean norm of each row, float32 [token]."""
    return np.linalg.norm(vectors, axis=1).astype(np.float32)


def token_kind(labels: np.ndarray, is_special: np.ndarray) -> np.ndarray:
    """0 ordinary, 1 special (CLS, SEP, BOS ...), 2 punctuation: uint8 [token]; labels as workers.core.tokens
    reads them (no word-piece marks)."""
    punct = np.array([len(t) > 0 and all(c in PUNCTUATION for c in t) for t in labels.astype(str)], dtype=bool)
    return np.where(is_special, 1, np.where(punct, 2, 0)).astype(np.uint8)


def token_lengths(labels: np.ndarray) -> np.ndarray:
    """Characters per token as people read it (workers.core.tokens labels): int32 [token]."""
    return np.char.str_len(labels.astype(str)).astype(np.int32)


def search_matches(labels: np.ndarray, query: str) -> np.ndarray:
    """Bool [token]: tokens that read as the query (workers.core.tokens labels), case-insensitive; a word-piece
    mark typed in the query is ignored."""
    wanted = query.strip().lower()
    for mark in MARKS:
        wanted = wanted.removeprefix(mark)
    if not wanted:
        return np.zeros(len(labels), dtype=bool)
    return np.char.lower(labels.astype(str)) == wanted
