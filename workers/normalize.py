"""Attention-preserving normalisations of one head's q and k.

Scaling q -> c·q, k -> k/c leaves every logit unchanged; translating every key by the same v adds q·v
to all logits of a query, which softmax ignores. AttentionViz: c so mean norms match, v so centroids coincide.
"""

from __future__ import annotations

import numpy as np

NORMALIZATIONS: tuple[str, ...] = ("none", "scale", "scale+translate")
DEFAULT_NORMALIZATION = "scale+translate"


def scale_factor(q: np.ndarray, k: np.ndarray) -> float:
    """c with mean ‖c·q‖ == mean ‖k/c‖ for q [token, d], k [token, d]."""
    q_norm = float(np.linalg.norm(q, axis=1).mean())
    k_norm = float(np.linalg.norm(k, axis=1).mean())
    if q_norm == 0.0 or k_norm == 0.0:
        return 1.0
    return float(np.sqrt(k_norm / q_norm))


def normalize(q: np.ndarray, k: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(q', k') for q, k [token, d] under `method` in NORMALIZATIONS; attention is unchanged."""
    if method not in NORMALIZATIONS:
        raise ValueError(f"unknown normalisation {method!r}; choose one of {', '.join(NORMALIZATIONS)}")
    q = q.astype(np.float32, copy=False)
    k = k.astype(np.float32, copy=False)
    if method == "none":
        return q, k
    c = scale_factor(q, k)
    q_scaled, k_scaled = q * c, k / c
    if method == "scale":
        return q_scaled, k_scaled
    shift = q_scaled.mean(axis=0) - k_scaled.mean(axis=0)
    return q_scaled, k_scaled + shift
