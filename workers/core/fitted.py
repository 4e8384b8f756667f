"""The picture fitted to attention: queries and keys placed so that, for every query, a softmax over the negative
squared distances to the keys of its text reproduces the query's attention.

Start: keys at their own principal components (scaled to unit RMS radius); each query at START_ON_TOP x its
most-attended key + (1 - START_ON_TOP) x the attention-weighted mean of its text's keys. Then L-BFGS minimises
    mean over queries of KL(attention_i || softmax_j(-|y_i - z_j|^2 / tau))        (distance shows attention)
  + anchor x mean over non-sink keys of |(z_j - mean z) - z0_j|^2                   (keys keep their PCA shape)
  + gap_weight x |mean y - mean z|^2                                                (one cloud, not two)
Sink keys (special tokens; the first token of each text in causal models) are free of the anchor, so the fit can
move them to the middle, where the many queries that look at them are. Attention is computed from the q, k given;
a normalisation leaves it unchanged, and so this picture. Numpy and scipy only.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from workers.contracts.choices import FITTED_ANCHOR, FITTED_GAP_WEIGHT, FITTED_ITERATIONS, FITTED_TAU
from workers.core.fidelity import AttentionGroups, attention_groups
from workers.core.layout import pca_start

START_ON_TOP = 0.7


def key_start(k: np.ndarray, dims: int) -> np.ndarray:
    """Keys' top principal components (layout.pca_start) scaled to unit RMS radius, k [N, d] -> [N, dims] float64."""
    start = pca_start(k, dims).astype(np.float64)
    radius = float(np.sqrt((start ** 2).sum(axis=1).mean()))
    return start / radius if radius > 0 else start


def query_start(groups: AttentionGroups, keys: np.ndarray) -> np.ndarray:
    """Each query between its most-attended key and its attention-weighted mean key, keys [N, dims] -> [N, dims]."""
    start = np.zeros_like(keys)
    for rows, attention in groups:  # rows [T, m], attention [T, m, m]
        z = keys[rows]
        top = np.take_along_axis(z, np.argmax(attention, axis=-1)[..., None], axis=-2)
        start[rows] = START_ON_TOP * top + (1 - START_ON_TOP) * (attention @ z)
    return start


def _kl_and_gradients(groups: AttentionGroups, y: np.ndarray, z: np.ndarray, tau: float,
                      causal: bool) -> tuple[float, np.ndarray, np.ndarray]:
    """Sum over queries of KL(attention || softmax(-d^2 / tau)) (up to the attention's entropy) and its gradients
    with respect to the query and key positions y, z [N, dims]."""
    total, grad_y, grad_z = 0.0, np.zeros_like(y), np.zeros_like(z)
    for rows, attention in groups:
        queries, keys = y[rows], z[rows]  # [T, m, dims]
        m = attention.shape[-1]
        allowed = np.tril(np.ones((m, m), dtype=bool)) if causal else np.ones((m, m), dtype=bool)
        squared = ((queries ** 2).sum(-1)[..., :, None] + (keys ** 2).sum(-1)[..., None, :]
                   - 2.0 * queries @ np.swapaxes(keys, -1, -2)) / tau  # [T, m, m]
        logits = np.where(allowed, -squared, -np.inf)
        peak = logits.max(axis=-1, keepdims=True)
        weights = np.exp(logits - peak)
        norm = weights.sum(axis=-1, keepdims=True)
        shown = weights / norm  # the picture's softmax over the query's keys
        total += float(np.where(allowed, attention * squared, 0.0).sum() + (np.log(norm) + peak).sum())
        residual = attention - shown  # d loss / d squared distance, times tau
        grad_y[rows] = (2 / tau) * (shown @ keys - attention @ keys)
        grad_z[rows] = (2 / tau) * (keys * residual.sum(axis=-2)[..., None] - np.swapaxes(residual, -1, -2) @ queries)
    return total, grad_y, grad_z


def fit_positions(groups: AttentionGroups, y0: np.ndarray, z0: np.ndarray, sinks: np.ndarray, causal: bool,
                  iterations: int, tau: float, anchor: float, gap_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Query and key positions [N, dims] each that minimise the module's objective, from y0, z0 [N, dims]."""
    n, dims = z0.shape
    anchor_weight = np.where(sinks, 0.0, anchor)[:, None]
    z0_centred = z0 - z0.mean(axis=0)

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        y, z = x[:n * dims].reshape(n, dims), x[n * dims:].reshape(n, dims)
        total, grad_y, grad_z = _kl_and_gradients(groups, y, z, tau, causal)
        drift = (z - z.mean(axis=0)) - z0_centred
        total += float((anchor_weight * drift ** 2).sum())
        pull = 2 * anchor_weight * drift
        grad_z += pull - pull.sum(axis=0) / n
        gap = y.mean(axis=0) - z.mean(axis=0)
        total += gap_weight * n * float(gap @ gap)
        grad_y += 2 * gap_weight * gap
        grad_z -= 2 * gap_weight * gap
        return total / n, np.concatenate([grad_y.ravel(), grad_z.ravel()]) / n

    found = minimize(objective, np.concatenate([y0.ravel(), z0.ravel()]), jac=True, method="L-BFGS-B",
                     options={"maxiter": iterations})
    return found.x[:n * dims].reshape(n, dims), found.x[n * dims:].reshape(n, dims)


def fitted_layout(q: np.ndarray, k: np.ndarray, text_id: np.ndarray, causal: bool, sinks: np.ndarray,
                  dims: int = 2, iterations: int = FITTED_ITERATIONS, tau: float = FITTED_TAU,
                  anchor: float = FITTED_ANCHOR, gap_weight: float = FITTED_GAP_WEIGHT) -> np.ndarray:
    """Queries then keys placed so that distance reproduces attention: q, k [N, d], text_id [N] sorted by text,
    sinks bool [N] -> [2N, dims] float32."""
    groups = attention_groups(q.astype(np.float64), k.astype(np.float64), text_id, causal)
    z0 = key_start(k, dims)
    y, z = fit_positions(groups, query_start(groups, z0), z0, np.asarray(sinks, dtype=bool), causal,
                         iterations, tau, anchor, gap_weight)
    return np.vstack([y, z]).astype(np.float32)
