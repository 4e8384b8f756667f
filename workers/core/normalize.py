"""Attention-preserving normalisations of one head's q and k.

Scaling q -> c·q, k -> k/c leaves every logit unchanged; translating every key by the same v adds q·v
to all logits of a query, which softmax ignores. AttentionViz: c so mean norms match, v so centroids coincide
("scale+translate"). "fit" chooses c and v per head to maximise the fidelity of the picture instead: it tries a
small grid of scales and translations and keeps the one whose 2D PCA picture, on a seeded sample of texts, puts
each query's most-attended key among its nearest keys most often (workers.core.fidelity), among the candidates whose
key cloud keeps a size within SPREAD_RATIO_LIMIT of the query cloud's (larger scales win fidelity by shrinking the
keys to a dot, which no one can read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workers.contracts.choices import FIT_SAMPLE_TEXTS, NORMALISATIONS, values
from workers.contracts.choices import FIT_SCALE_MULTIPLIERS as SCALE_MULTIPLIERS
from workers.contracts.choices import FIT_SPREAD_RATIO_LIMIT as SPREAD_RATIO_LIMIT
from workers.contracts.choices import FIT_TRANSLATIONS as TRANSLATIONS
from workers.core.fidelity import attention_groups, sampled_text_rows, top1_of_pictures


@dataclass(frozen=True)
class Transform:
    """q' = scale·q, k' = k/scale + shift; `translation` names how shift was chosen, `multiplier` how far the
    scale is from AttentionViz's mean-norm rule."""

    scale: float
    shift: np.ndarray
    translation: str
    multiplier: float

    def apply(self, q: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(q', k') float32 [token, d]."""
        return ((q * self.scale).astype(np.float32, copy=False),
                (k / self.scale + self.shift).astype(np.float32, copy=False))

    def to_dict(self) -> dict[str, Any]:
        """JSON form that rebuilds it exactly (the shift keeps its dtype)."""
        return {"scale": float(self.scale), "shift": self.shift.tolist(), "dtype": str(self.shift.dtype),
                "translation": self.translation, "multiplier": float(self.multiplier)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transform:
        """Inverse of to_dict."""
        return cls(data["scale"], np.asarray(data["shift"], dtype=data["dtype"]), data["translation"],
                   data["multiplier"])

    def describe(self) -> dict[str, float | str]:
        """JSON-friendly summary (the shift as its norm)."""
        return {"translation": self.translation, "scale_multiplier": self.multiplier, "scale": round(self.scale, 6),
                "shift_norm": round(float(np.linalg.norm(self.shift)), 6)}


def scale_factor(q: np.ndarray, k: np.ndarray) -> float:
    """c with mean ‖c·q‖ == mean ‖k/c‖ for q [token, d], k [token, d]."""
    q_norm = float(np.linalg.norm(q, axis=1).mean())
    k_norm = float(np.linalg.norm(k, axis=1).mean())
    if q_norm == 0.0 or k_norm == 0.0:
        return 1.0
    return float(np.sqrt(k_norm / q_norm))


def equal_norm_shift(k: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """v [d] that makes the key norms ‖k + v‖ as equal as possible (ridge least squares), k [token, d].

    With equal key norms, ‖q − k'‖² = ‖q‖² + const − 2 q·k: distance ranks a query's keys exactly as attention.
    """
    k = k.astype(np.float64)
    centred = k - k.mean(axis=0)
    squared = (k ** 2).sum(axis=1)
    design = 2.0 * centred  # variance of ‖k+v‖² over keys = ‖(‖k‖² − mean) + 2 (k − k̄)·v‖²
    gram = design.T @ design
    penalty = ridge * float(np.trace(gram)) / max(k.shape[1], 1)
    return -np.linalg.solve(gram + penalty * np.eye(k.shape[1]), design.T @ (squared - squared.mean()))


def candidate_transform(q: np.ndarray, k: np.ndarray, translation: str, multiplier: float,
                        base_scale: float | None = None, unscaled_equal_norm: np.ndarray | None = None) -> Transform:
    """The transform for one grid point: scale = multiplier × mean-norm scale, then the named translation.
    A caller trying many grid points passes what they share: `base_scale` and `equal_norm_shift(k)` (the
    equal-norm shift of k / s is exactly that divided by s: the objective only scales)."""
    scale = (scale_factor(q, k) if base_scale is None else base_scale) * multiplier
    k_scaled = k / scale
    if translation == "none":
        shift = np.zeros(k.shape[1])
    elif translation == "centroid":
        shift = (q * scale).mean(axis=0) - k_scaled.mean(axis=0)
    elif translation == "equal-norm":
        shift = equal_norm_shift(k_scaled) if unscaled_equal_norm is None else unscaled_equal_norm / scale
    else:
        raise ValueError(f"unknown translation {translation!r}; choose one of {', '.join(TRANSLATIONS)}")
    return Transform(scale, shift.astype(np.float32), translation, multiplier)


def _pca_2d(points: np.ndarray) -> np.ndarray:
    """First two principal coordinates of points [n, d] (n, d >= 2), from the d x d scatter matrix (an SVD of the
    points costs 20x more and gives the same axes)."""
    centred = points - points.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    return centred @ vectors[:, ::-1][:, :2]


def picture_layout(q_points: np.ndarray, k_points: np.ndarray) -> dict[str, float]:
    """How the two clouds of a picture sit: key / query spread (RMS radius) and the centroid gap over the pooled
    spread (0: centred on each other; above 1: side by side). q_points, k_points [n, dims]."""
    spread_q = float(np.sqrt(((q_points - q_points.mean(axis=0)) ** 2).sum(axis=1).mean()))
    spread_k = float(np.sqrt(((k_points - k_points.mean(axis=0)) ** 2).sum(axis=1).mean()))
    pooled = np.sqrt((spread_q ** 2 + spread_k ** 2) / 2) or 1.0
    return {"spread_ratio": spread_k / spread_q if spread_q else float("inf"),
            "centroid_gap": float(np.linalg.norm(q_points.mean(axis=0) - k_points.mean(axis=0)) / pooled)}


def fit_transform_for(q: np.ndarray, k: np.ndarray, text_id: np.ndarray, causal: bool,
                      sample_texts: int = FIT_SAMPLE_TEXTS) -> tuple[Transform, list[dict]]:
    """The grid transform with the most faithful 2D PCA picture on a sample of texts, and every candidate's score.

    q, k [N, d]; text_id [N] sorted by text. Score: top-1-in-3 among candidates whose clouds keep comparable sizes
    (all candidates when none does); a tie keeps the earlier candidate of the grid.
    """
    rows = sampled_text_rows(text_id, sample_texts)
    n = len(rows)
    q_sample, k_sample = q[rows].astype(np.float64), k[rows].astype(np.float64)
    groups = attention_groups(q_sample, k_sample, text_id[rows], causal)
    grid = [(translation, multiplier) for translation in TRANSLATIONS for multiplier in SCALE_MULTIPLIERS]
    shared = {"base_scale": scale_factor(q_sample, k_sample), "unscaled_equal_norm": equal_norm_shift(k_sample)}
    pictures = np.stack([_pca_2d(np.vstack(candidate_transform(q_sample, k_sample, *point, **shared)
                                           .apply(q_sample, k_sample)).astype(np.float64))
                         for point in grid])  # [C, 2n, 2]
    tops = top1_of_pictures(groups, pictures[:, :n], pictures[:, n:], causal)  # all candidates at once
    scores = [{"translation": translation, "scale_multiplier": multiplier, "top1_in_k": float(top),
               **picture_layout(picture[:n], picture[n:])}
              for (translation, multiplier), top, picture in zip(grid, tops, pictures, strict=True)]
    best, best_score = None, -np.inf
    readable = [s for s in scores if 1 / SPREAD_RATIO_LIMIT <= s["spread_ratio"] <= SPREAD_RATIO_LIMIT] or scores
    for score in readable:  # ties keep the earlier, simpler candidate
        value = float(np.nan_to_num(score["top1_in_k"], nan=-1.0))
        if value > best_score:
            best, best_score = (score["translation"], score["scale_multiplier"]), value
    assert best is not None
    return candidate_transform(q.astype(np.float64), k.astype(np.float64), *best), scores


def transform_for(q: np.ndarray, k: np.ndarray, method: str, text_id: np.ndarray | None = None,
                  causal: bool = False) -> Transform:
    """The transform `method` applies to q, k [N, d] ("fit" needs text_id [N], sorted by text)."""
    if method not in values(NORMALISATIONS):
        raise ValueError(f"unknown normalisation {method!r}; choose one of {', '.join(values(NORMALISATIONS))}")
    if method == "none":
        return Transform(1.0, np.zeros(q.shape[1], dtype=np.float32), "none", 1.0)
    if method == "scale":
        return candidate_transform(q, k, "none", 1.0)
    if method == "scale+translate":
        return candidate_transform(q, k, "centroid", 1.0)
    if text_id is None:
        raise ValueError("the fitted normalisation needs each token's text id")
    return fit_transform_for(q, k, text_id, causal)[0]


def normalize(q: np.ndarray, k: np.ndarray, method: str, text_id: np.ndarray | None = None,
              causal: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(q', k') float32 for q, k [token, d] under `method` (a normalisation's value); attention is unchanged."""
    q = q.astype(np.float32, copy=False)
    k = k.astype(np.float32, copy=False)
    if method == "none":
        return q, k
    return transform_for(q, k, method, text_id, causal).apply(q, k)
