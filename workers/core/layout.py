"""Attention-driven layout: UMAP's embedding step over a graph built from the head's own attention.

Points are the head's queries and keys ([2N, d], normalised). Edges:
- attention: each query to its TOP_KEYS most-attended keys in its text, weighted by (attention / the query's
  largest) ** SHARPNESS, so the most-attended key pulls hardest (keys below MIN_RELATIVE_ATTENTION add no edge);
- structure: each query to its NEIGHBOURS nearest queries and each key to its nearest keys (Euclidean, UMAP's
  fuzzy memberships), scaled by STRUCTURE_WEIGHT, so that position, token and cluster structure stays visible.
The graph is embedded by umap-learn's `simplicial_set_embedding` from a PCA start, seeded (single-threaded).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from workers.contracts.choices import LAYOUT_EPOCHS as EPOCHS
from workers.contracts.choices import LAYOUT_NEIGHBOURS as NEIGHBOURS
from workers.contracts.choices import LAYOUT_SHARPNESS as SHARPNESS
from workers.contracts.choices import LAYOUT_STRUCTURE_WEIGHT as STRUCTURE_WEIGHT
from workers.contracts.choices import LAYOUT_TOP_KEYS as TOP_KEYS
from workers.core.fidelity import grouped_attention

MIN_RELATIVE_ATTENTION = 0.05
MIN_DIST = 0.1


def attention_edges(q: np.ndarray, k: np.ndarray, text_id: np.ndarray, causal: bool,
                    top_keys: int = TOP_KEYS, sharpness: float = 1.0) -> sp.coo_matrix:
    """[2N, 2N] edges query i -> key N + j for each query's top keys in its text, weight (attention / its max)
    ** sharpness."""
    n = len(q)
    sources, targets, weights = [], [], []
    for rows, attention in grouped_attention(q, k, text_id, causal):  # rows [T, m], attention [T, m, m]
        t = min(top_keys, attention.shape[-1])
        top = np.argsort(-attention, axis=-1)[..., :t]  # [T, m, t]
        relative = np.take_along_axis(attention, top, axis=-1) / attention.max(axis=-1, keepdims=True)
        query_rows = np.broadcast_to(rows[:, :, None], top.shape)
        key_rows = np.take_along_axis(np.broadcast_to(rows[:, None, :], attention.shape), top, axis=-1)
        keep = relative >= MIN_RELATIVE_ATTENTION
        sources.append(query_rows[keep])
        targets.append(key_rows[keep] + n)
        weights.append(relative[keep] ** sharpness)
    return sp.coo_matrix((np.concatenate(weights), (np.concatenate(sources), np.concatenate(targets))),
                         shape=(2 * n, 2 * n))


def neighbour_graph(points: np.ndarray, n_neighbors: int, seed: int) -> sp.coo_matrix:
    """UMAP's fuzzy k-nearest-neighbour graph [n, n] of points [n, d] (exact neighbours, Euclidean)."""
    from sklearn.neighbors import NearestNeighbors
    from umap.umap_ import fuzzy_simplicial_set

    n_neighbors = min(n_neighbors, len(points) - 1)
    distances, indices = NearestNeighbors(n_neighbors=n_neighbors).fit(points).kneighbors(points)
    graph, _sigmas, _rhos = fuzzy_simplicial_set(points, n_neighbors, np.random.RandomState(seed), "euclidean",
                                                 knn_indices=indices, knn_dists=distances.astype(np.float32))
    return graph.tocoo()


def layout_graph(q: np.ndarray, k: np.ndarray, text_id: np.ndarray, causal: bool, seed: int = 0,
                 top_keys: int = TOP_KEYS, n_neighbors: int = NEIGHBOURS,
                 structure_weight: float = STRUCTURE_WEIGHT, sharpness: float = SHARPNESS) -> sp.csr_matrix:
    """The symmetric [2N, 2N] graph the layout embeds: attention edges plus weighted structure edges."""
    attention = attention_edges(q, k, text_id, causal, top_keys, sharpness).tocsr()
    attention = attention.maximum(attention.T)
    structure = sp.block_diag([neighbour_graph(q, n_neighbors, seed), neighbour_graph(k, n_neighbors, seed)])
    return (attention + structure_weight * structure.tocsr()).tocsr()


def pca_start(points: np.ndarray, dims: int) -> np.ndarray:
    """Initial positions [n, dims]: the points' top principal components."""
    centred = points - points.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T.astype(np.float64) @ centred)
    start = centred @ vectors[:, ::-1][:, :dims]
    if start.shape[1] < dims:
        start = np.hstack([start, np.zeros((len(start), dims - start.shape[1]))])
    return start.astype(np.float32)


def attention_layout(q: np.ndarray, k: np.ndarray, text_id: np.ndarray, causal: bool, dims: int = 2,
                     seed: int = 0, n_epochs: int = EPOCHS, top_keys: int = TOP_KEYS, n_neighbors: int = NEIGHBOURS,
                     structure_weight: float = STRUCTURE_WEIGHT, sharpness: float = SHARPNESS) -> np.ndarray:
    """Queries then keys placed so that a query lies near the keys it attends to: q, k [N, d] -> [2N, dims]."""
    from umap.umap_ import find_ab_params, simplicial_set_embedding

    points = np.vstack([q, k]).astype(np.float32)
    graph = layout_graph(q, k, text_id, causal, seed, top_keys, n_neighbors, structure_weight, sharpness)
    a, b = find_ab_params(1.0, MIN_DIST)
    rng = np.random.default_rng(seed)
    start = pca_start(points, dims)
    start += rng.normal(scale=1e-4 * (np.abs(start).max() + 1e-12), size=start.shape).astype(np.float32)
    embedding, _aux = simplicial_set_embedding(
        points, graph.tocoo(), dims, 1.0, a, b, 1.0, 5, n_epochs, start, np.random.RandomState(seed),
        "euclidean", {}, False, {}, False, parallel=False)
    return np.asarray(embedding, dtype=np.float32)
