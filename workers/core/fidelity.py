"""How well distance in a picture shows attention: per head, over every query of every text.

Two measures, for any pair of point sets that stand for the queries and keys (raw vectors, normalised vectors,
or their 2D/3D projection):
- top-1-in-k: the share of queries whose most-attended key (within its text, among the keys it may attend to)
  is among its k nearest keys in the picture (same text, same candidates);
- rank correlation: the mean over queries of Spearman's correlation between attention and closeness
  (negated distance) over the query's candidate keys.
Queries with no more than k candidates (the first tokens under a causal mask) are left out of top-1-in-k, where
they would hit by construction; queries with fewer than 3 candidates are left out of the rank correlation.

Most queries of most heads attend most to a sink (a special token such as [CLS] or [SEP]; in causal models the
first token), which a guess without any picture finds. So beside the share over all queries, the same share over
the queries whose most-attended key is not a sink, how many those are, and the no-picture baseline: the share of
queries whose most-attended key is a sink of their text or the previous token (over all queries, and over the
non-sink ones, where it is the previous token alone).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from workers.core.attention import text_attention

TOP_K = 3


@dataclass(frozen=True)
class Fidelity:
    """One picture's fidelity: top-1-in-k share, mean rank correlation, how many queries each counts, the same share
    over non-sink queries, and the no-picture baseline beside each."""

    top1_in_k: float
    rank_correlation: float
    k: int
    queries_top: int
    queries_rank: int
    top1_in_k_non_sink: float  # over the queries whose most-attended key is not a sink
    non_sink_share: float  # their share of the queries counted in top1_in_k
    baseline: float  # no picture: the most-attended key is a sink or the previous token
    baseline_non_sink: float  # no picture, non-sink queries: the most-attended key is the previous token

    def to_dict(self) -> dict[str, float | int]:
        """JSON-friendly form."""
        return asdict(self)


def sink_keys(text_id: np.ndarray, is_special: np.ndarray | None, causal: bool) -> np.ndarray:
    """bool [N]: the keys that act as attention sinks: special tokens, and in causal models each text's first token."""
    sinks = np.zeros(len(text_id), dtype=bool) if is_special is None else np.asarray(is_special, dtype=bool).copy()
    if causal and len(text_id):
        sinks[np.r_[0, np.flatnonzero(np.diff(text_id)) + 1]] = True
    return sinks


def text_boundaries(text_id: np.ndarray) -> list[np.ndarray]:
    """Row indices of each text's tokens, in order; text_id [N] sorted by text."""
    return np.split(np.arange(len(text_id)), np.flatnonzero(np.diff(text_id)) + 1)


def sampled_text_rows(text_id: np.ndarray, texts: int, seed: int = 0) -> np.ndarray:
    """Row indices of a seeded sample of whole texts (all rows when there are few texts), text_id [N] sorted."""
    unique = np.unique(text_id)
    if len(unique) > texts:
        unique = np.sort(np.random.default_rng(seed).choice(unique, size=texts, replace=False))
    return np.flatnonzero(np.isin(text_id, unique))


def texts_by_length(text_id: np.ndarray) -> list[np.ndarray]:
    """Row indices of the texts grouped by length: a list of [texts, length] arrays (text_id sorted by text)."""
    groups: dict[int, list[np.ndarray]] = {}
    for rows in text_boundaries(text_id):
        groups.setdefault(len(rows), []).append(rows)
    return [np.stack(rows) for rows in groups.values()]


def grouped_attention(q: np.ndarray, k: np.ndarray, text_id: np.ndarray, causal: bool):
    """Yield (rows [T, m], attention [T, m, m]) for each group of equal-length texts (one softmax call each)."""
    for rows in texts_by_length(text_id):
        yield rows, text_attention(q[rows], k[rows], causal)  # texts stand in for heads: one key head each


def _candidates(m: int, causal: bool) -> np.ndarray:
    """bool [m, m]: which keys each query may attend to."""
    return np.tril(np.ones((m, m), dtype=bool)) if causal else np.ones((m, m), dtype=bool)


def _row_spearman(attention: np.ndarray, closeness: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Spearman correlation per row [..., m] over the allowed entries (nan where a row has < 3 or is constant)."""
    from scipy.stats import rankdata  # imported here: scipy.stats takes about a second, which no picture needs

    low = -np.inf
    a_ranks = rankdata(np.where(allowed, attention, low), axis=-1)
    c_ranks = rankdata(np.where(allowed, closeness, low), axis=-1)
    count = allowed.sum(axis=-1)
    safe = np.maximum(count, 1)[..., None]
    a_centred = np.where(allowed, a_ranks - (a_ranks * allowed).sum(-1, keepdims=True) / safe, 0.0)
    c_centred = np.where(allowed, c_ranks - (c_ranks * allowed).sum(-1, keepdims=True) / safe, 0.0)
    denominator = np.sqrt((a_centred ** 2).sum(-1) * (c_centred ** 2).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (a_centred * c_centred).sum(-1) / denominator
    return np.where((count >= 3) & (denominator > 0), rho, np.nan)


def _distances(q_points: np.ndarray, k_points: np.ndarray) -> np.ndarray:
    """Euclidean distances [..., m, m] between q_points and k_points [..., m, p] (float64, no [m, m, p] temporary)."""
    q64, k64 = q_points.astype(np.float64), k_points.astype(np.float64)
    squared = (q64 ** 2).sum(-1)[..., :, None] + (k64 ** 2).sum(-1)[..., None, :] - 2.0 * q64 @ np.swapaxes(k64, -1, -2)
    return np.sqrt(np.maximum(squared, 0.0))


def text_fidelity(attention: np.ndarray, q_points: np.ndarray, k_points: np.ndarray, causal: bool,
                  k: int = TOP_K, with_rank: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query: top-1-in-k hit (float, nan when not counted), Spearman rho and the most-attended key, each [..., m].

    attention [..., m, m]; q_points, k_points [..., m, p] (the picture's positions of the texts' queries and keys);
    leading axes stand for texts of equal length. with_rank=False leaves rho nan (top-1-in-k alone is cheaper).
    """
    m = attention.shape[-1]
    allowed = np.broadcast_to(_candidates(m, causal), attention.shape)
    distance = np.where(allowed, _distances(q_points, k_points), np.inf)
    target = np.argmax(np.where(allowed, attention, -np.inf), axis=-1)
    target_distance = np.take_along_axis(distance, target[..., None], axis=-1)
    closer = (distance < target_distance).sum(axis=-1)  # keys strictly nearer than the most-attended one
    hits = np.where(allowed.sum(axis=-1) > k, (closer < k).astype(float), np.nan)
    if not with_rank:
        return hits, np.full(hits.shape, np.nan), target
    return hits, _row_spearman(attention, -distance, allowed), target


AttentionGroups = list[tuple[np.ndarray, np.ndarray]]


def attention_groups(q: np.ndarray, k: np.ndarray, text_id: np.ndarray, causal: bool) -> AttentionGroups:
    """(rows [T, m], attention [T, m, m]) per group of equal-length texts, from raw q, k [N, d_head]."""
    return list(grouped_attention(q, k, text_id, causal))


def _mean(values: np.ndarray) -> float:
    """Mean, nan for no values."""
    return float(values.mean()) if len(values) else float("nan")


def fidelity_of(groups: AttentionGroups, q_points: np.ndarray, k_points: np.ndarray, causal: bool,
                k_nearest: int = TOP_K, with_rank: bool = True, sinks: np.ndarray | None = None) -> Fidelity:
    """Fidelity of positions q_points, k_points [N, p] given the attention of every text (attention_groups);
    sinks bool [N] (sink_keys; None: no key is a sink)."""
    sinks = np.zeros(len(q_points), dtype=bool) if sinks is None else sinks
    hits, rhos, to_sink, to_previous = [], [], [], []
    for rows, attentions in groups:
        hit, rho, target = text_fidelity(attentions, q_points[rows], k_points[rows], causal, k_nearest, with_rank)
        hits.append(hit.ravel())
        rhos.append(rho.ravel())
        to_sink.append(np.take_along_axis(sinks[rows], target, axis=-1).ravel())
        to_previous.append((target == np.arange(rows.shape[-1]) - 1).ravel())
    hit_all, rho_all = np.concatenate(hits), np.concatenate(rhos)
    counted = ~np.isnan(hit_all)
    sink_all, previous_all = np.concatenate(to_sink)[counted], np.concatenate(to_previous)[counted]
    counted_hits, counted_rhos = hit_all[counted], rho_all[~np.isnan(rho_all)]
    return Fidelity(top1_in_k=_mean(counted_hits), rank_correlation=_mean(counted_rhos),
                    k=k_nearest, queries_top=int(len(counted_hits)), queries_rank=int(len(counted_rhos)),
                    top1_in_k_non_sink=_mean(counted_hits[~sink_all]), non_sink_share=_mean(~sink_all),
                    baseline=_mean(sink_all | previous_all), baseline_non_sink=_mean(previous_all[~sink_all]))


def top1_of_pictures(groups: AttentionGroups, q_points: np.ndarray, k_points: np.ndarray, causal: bool,
                     k_nearest: int = TOP_K) -> np.ndarray:
    """Top-1-in-k of several pictures of the same texts at once: q_points, k_points [C, N, p] -> [C]."""
    pictures = q_points.shape[0]
    hit_sum, counted = np.zeros(pictures), np.zeros(pictures)
    for rows, attentions in groups:
        hits, _, _ = text_fidelity(np.broadcast_to(attentions, (pictures, *attentions.shape)), q_points[:, rows],
                                k_points[:, rows], causal, k_nearest, with_rank=False)
        flat = hits.reshape(pictures, -1)
        hit_sum += np.nansum(flat, axis=1)
        counted += (~np.isnan(flat)).sum(axis=1)
    with np.errstate(invalid="ignore"):
        return np.where(counted > 0, hit_sum / np.maximum(counted, 1), np.nan)


def fidelity(q: np.ndarray, k: np.ndarray, q_points: np.ndarray, k_points: np.ndarray, text_id: np.ndarray,
             causal: bool, k_nearest: int = TOP_K, sinks: np.ndarray | None = None) -> Fidelity:
    """Fidelity of a picture: attention from raw q, k [N, d_head]; positions q_points, k_points [N, p]."""
    return fidelity_of(attention_groups(q, k, text_id, causal), q_points, k_points, causal, k_nearest, sinks=sinks)


def picture_fidelity(q: np.ndarray, k: np.ndarray, coords: np.ndarray, text_id: np.ndarray, causal: bool,
                     k_nearest: int = TOP_K, sinks: np.ndarray | None = None) -> Fidelity:
    """Fidelity of a stored picture: coords [2N, dims], queries then keys."""
    n = len(q)
    return fidelity(q, k, coords[:n], coords[n:], text_id, causal, k_nearest, sinks)
