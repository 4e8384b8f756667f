"""What each head does, in a few numbers: where its attention goes, how spread it is, how its q and k sit.

All from the raw q, k of one head and the tokens table, attention rebuilt per text (as every view does):
- prev_token / next_token: mean attention from a query to the key just before / after it (queries that have one);
- first_token: mean attention to the text's first key (BERT's [CLS], a causal model's first token);
- special: mean attention a query gives to special tokens ([CLS], [SEP], …) in total;
- induction: over queries whose token occurred earlier in the text (not just before), mean attention to the key
  after that earlier occurrence (the induction pattern: "A B … A" attends to B); nan where no token repeats;
- entropy: mean attention entropy over queries, divided by log(number of keys it may attend to), in [0, 1];
- norm_ratio: log2 of mean query norm / mean key norm (0 when balanced);
- qk_overlap: share of (sampled) queries whose nearest neighbour among queries and keys is a key: about 0.5 when
  the two clouds mix, 0 when they sit apart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from workers.core.fidelity import grouped_attention, text_boundaries

OVERLAP_SAMPLE = 2000


@dataclass(frozen=True)
class HeadSummary:
    """One head's summary numbers (see the module docstring)."""

    prev_token: float
    next_token: float
    first_token: float
    special: float
    induction: float
    entropy: float
    norm_ratio: float
    qk_overlap: float

    def to_dict(self) -> dict[str, float]:
        """JSON-friendly form."""
        return asdict(self)


def induction_targets(tokens: np.ndarray) -> np.ndarray:
    """One text's tokens [m] -> per query the position after its token's latest earlier occurrence, -1 where the
    token has not occurred before or occurred just before (then the target would be the query itself) [m]."""
    latest: dict[str, int] = {}
    targets = np.full(len(tokens), -1)
    for position, token in enumerate(tokens.tolist()):
        if token in latest and latest[token] + 1 < position:
            targets[position] = latest[token] + 1
        latest[token] = position
    return targets


def _induction_sums(attention: np.ndarray, targets: np.ndarray) -> tuple[float, int]:
    """attention [T, m, m], targets [T, m] (-1: none): summed attention to the targets, and how many queries."""
    texts, queries = np.nonzero(targets >= 0)
    return float(attention[texts, queries, targets[texts, queries]].sum()), len(texts)


def _group_sums(attention: np.ndarray, special: np.ndarray, causal: bool, targets: np.ndarray) -> np.ndarray:
    """Texts of one length, attention [T, m, m], special and induction targets [T, m]: sums and counts
    [prev, n_prev, next, n_next, first, special, entropy, n, induction, n_induction] over all their queries."""
    texts, m, _ = attention.shape
    prev = np.diagonal(attention, offset=-1, axis1=1, axis2=2)  # query i -> key i-1
    nxt = np.diagonal(attention, offset=1, axis1=1, axis2=2) if not causal else np.zeros((texts, 0))
    candidates = np.arange(1, m + 1) if causal else np.full(m, m)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(attention > 0, attention * np.log(attention), 0.0)
        entropy = np.where(candidates > 1, -plogp.sum(axis=2) / np.log(np.maximum(candidates, 2)), 0.0)
    on_special = (attention * special[:, None, :]).sum()
    induction, n_induction = _induction_sums(attention, targets)
    return np.array([prev.sum(), prev.size, nxt.sum(), nxt.size, attention[:, :, 0].sum(), on_special,
                     entropy.sum(), texts * m, induction, n_induction], dtype=np.float64)


def summarise_head(q: np.ndarray, k: np.ndarray, text_id: np.ndarray, is_special: np.ndarray, causal: bool,
                   seed: int = 0, tokens: np.ndarray | None = None) -> HeadSummary:
    """Summary of one head: q, k [N, d_head] raw; text_id, is_special, tokens [N] from the tokens table
    (without tokens, e.g. image patches, induction is nan)."""
    targets = (np.concatenate([induction_targets(tokens[rows]) for rows in text_boundaries(text_id)])
               if tokens is not None else np.full(len(text_id), -1))
    totals = np.zeros(10)
    for rows, attention in grouped_attention(q, k, text_id, causal):
        totals += _group_sums(attention, is_special[rows].astype(bool), causal, targets[rows])
    prev, n_prev, nxt, n_next, first, special, entropy, n, induction, n_induction = totals
    return HeadSummary(
        prev_token=float(prev / n_prev) if n_prev else float("nan"),
        next_token=float(nxt / n_next) if n_next else float("nan"),
        first_token=float(first / n), special=float(special / n),
        induction=float(induction / n_induction) if n_induction else float("nan"), entropy=float(entropy / n),
        norm_ratio=norm_ratio(q, k), qk_overlap=qk_overlap(q, k, seed))


def norm_ratio(q: np.ndarray, k: np.ndarray) -> float:
    """log2(mean |q| / mean |k|) over q [n, d] and k [n, d]; NaN where either mean is 0 (no ratio to show)."""
    q_mean, k_mean = np.linalg.norm(q, axis=1).mean(), np.linalg.norm(k, axis=1).mean()
    return float(np.log2(q_mean / k_mean)) if q_mean > 0 and k_mean > 0 else float("nan")


def qk_overlap(q: np.ndarray, k: np.ndarray, seed: int = 0, sample: int = OVERLAP_SAMPLE) -> float:
    """Share of sampled queries whose nearest other point among the sampled queries and keys is a key."""
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed)
    rows = rng.choice(len(q), min(sample, len(q)), replace=False)
    points = np.vstack([q[rows], k[rows]]).astype(np.float32)
    _distance, index = NearestNeighbors(n_neighbors=2).fit(points).kneighbors(points[: len(rows)])
    return float((index[:, 1] >= len(rows)).mean())
