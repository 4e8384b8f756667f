"""The head map: every head of a model placed by how alike their attention patterns are.

Distance between two heads: the mean, over the queries of a seeded sample of texts, of the total variation
distance between their attention rows (half the L1 distance: 0 for identical rows, 1 for disjoint ones). It reads
as "the share of attention that goes elsewhere". Heads are placed in 2D by classical multidimensional scaling of
that distance matrix, so nearby points are heads that attend alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from workers.contracts.choices import HEAD_MAP_SAMPLE_TEXTS
from workers.contracts.results import Cell, HeadMap
from workers.core.fidelity import attention_groups, sampled_text_rows


def attention_rows(q: np.ndarray, k: np.ndarray, text_id: np.ndarray, causal: bool, rows: np.ndarray,
                   width: int) -> np.ndarray:
    """Attention rows of the sampled tokens [len(rows), width], zero-padded; q, k [N, d]; rows sorted by text."""
    out = np.zeros((len(rows), width))
    for group, attention in attention_groups(q[rows], k[rows], text_id[rows], causal):
        m = attention.shape[-1]
        out[group.ravel(), :m] = attention.reshape(-1, m)  # group rows index the sample
    return out


def pattern_distances(patterns: np.ndarray) -> np.ndarray:
    """Mean total variation distance between heads' attention rows: patterns [H, Q, m] -> [H, H], 0 on the diagonal."""
    heads = len(patterns)
    out = np.zeros((heads, heads))
    for h in range(heads - 1):  # each pair once: the distance is symmetric
        out[h, h + 1:] = 0.5 * np.abs(patterns[h][None] - patterns[h + 1:]).sum(axis=-1).mean(axis=-1)
    return out + out.T


def classical_mds(distances: np.ndarray, dims: int = 2) -> np.ndarray:
    """Points [H, dims] whose Euclidean distances best match distances [H, H] (Torgerson; sign fixed)."""
    n = len(distances)
    centring = np.eye(n) - np.ones((n, n)) / n
    gram = -0.5 * centring @ (distances ** 2) @ centring
    values, vectors = np.linalg.eigh(gram)
    top = np.argsort(values)[::-1][:dims]
    coords = vectors[:, top] * np.sqrt(np.maximum(values[top], 0.0))
    signs = np.sign(coords[np.argmax(np.abs(coords), axis=0), np.arange(coords.shape[1])])
    coords = coords * np.where(signs == 0, 1.0, signs)
    if coords.shape[1] < dims:
        coords = np.hstack([coords, np.zeros((n, dims - coords.shape[1]))])
    return coords


def head_map(heads: Iterable[tuple[Cell, np.ndarray, np.ndarray]], text_id: np.ndarray, causal: bool,
             sample_texts: int = HEAD_MAP_SAMPLE_TEXTS,
             progress: Callable[[int], None] = lambda _done: None) -> HeadMap:
    """The head map from (cell, q [N, d], k [N, d]) of every head (read one at a time) over one tokens table
    (text_id [N], sorted by text); progress gets the number of heads read so far."""
    rows = sampled_text_rows(text_id, sample_texts)
    width = int(np.bincount(text_id[rows] - text_id[rows].min()).max())
    cells, patterns = [], []
    for cell, q, k in heads:
        cells.append(cell)
        patterns.append(attention_rows(q, k, text_id, causal, rows, width).astype(np.float32))
        progress(len(cells))
    distances = pattern_distances(np.stack(patterns))
    return HeadMap(cells, distances, classical_mds(distances))
