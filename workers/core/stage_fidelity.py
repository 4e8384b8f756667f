"""Fidelity of one view at each stage: raw q/k, after its normalisation, and its picture."""

from __future__ import annotations

import numpy as np

from workers.core.fidelity import attention_groups, fidelity_of
from workers.core.normalize import Transform, picture_layout


def view_fidelity(q: np.ndarray, k: np.ndarray, coords: np.ndarray, text_id: np.ndarray, causal: bool,
                  transform: Transform, sinks: np.ndarray | None = None) -> dict[str, dict]:
    """Fidelity of a view at each stage: raw q, k [N, d]; after its normalisation `transform`; its picture coords
    [2N, dims]; and the normalisation's translation and scale; sinks bool [N] (sink_keys)."""
    q_norm, k_norm = transform.apply(q, k)
    groups = attention_groups(q, k, text_id, causal)
    n = len(q)
    return {"raw": fidelity_of(groups, q, k, causal, sinks=sinks).to_dict(),
            "normalised": fidelity_of(groups, q_norm, k_norm, causal, sinks=sinks).to_dict(),
            "picture": fidelity_of(groups, coords[:n], coords[n:], causal, sinks=sinks).to_dict(),
            "transform": transform.describe(), "layout": picture_layout(coords[:n], coords[n:])}
