"""The candidates tried for the default picture that did not become it, beside the two that matter: fit + PCA and
the picture fitted to attention (workers/fitted.py), on every 9th MiniLM head of one corpus.

Usage: .venv/bin/python bench/picture_candidates.py [--corpus default|unseen] [--every 9]
Candidates (each row: top-1-in-3 over all queries and over non-sink queries, rank correlation, the no-picture
baselines, median centroid gap over the pooled spread, seconds per head):
- fit + PCA: the fitted normalisation's 2D PCA picture;
- linear maps, one cloud: 2D linear maps of the (centred) queries and keys, separate or shared, started from the
  fit's PCA axes and fitted (L-BFGS, 150 steps, 48 texts) to the same KL objective as workers/fitted.py, with the
  two clouds' centroids held together;
- queries placed on PCA keys: keys at their own PCA picture, each query at 0.7 x its most-attended key + 0.3 x its
  attention-weighted mean key (workers/fitted.py's start, not optimised);
- fitted to attention without the centring term, and the default (with it).
Writes bench/results/picture_candidates[_unseen].json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def linear_map_loss(params: np.ndarray, groups, q: np.ndarray, k: np.ndarray, shared: bool):
    """KL objective (workers.core.fitted) of the picture y = A q, z = B k (A, B [2, d]) and its gradient in A, B."""
    from workers.core.fitted import _kl_and_gradients

    d = q.shape[1]
    a = params[:2 * d].reshape(2, d)
    b = a if shared else params[2 * d:].reshape(2, d)
    total, grad_y, grad_z = _kl_and_gradients(groups, q @ a.T, k @ b.T, 0.1, causal=False)
    grad_a, grad_b = grad_y.T @ q, grad_z.T @ k
    n = len(q)
    return total / n, ((grad_a + grad_b).ravel() if shared else np.concatenate([grad_a.ravel(), grad_b.ravel()])) / n


def linear_maps(q: np.ndarray, k: np.ndarray, text_id: np.ndarray, shared: bool) -> np.ndarray:
    """Fitted linear maps' picture [2N, 2], centroids together, started from the fit's PCA axes."""
    from workers.core.fidelity import attention_groups, sampled_text_rows
    from workers.core.normalize import transform_for

    transform = transform_for(q, k, "fit", text_id, causal=False)
    q2, k2 = transform.apply(q, k)
    points = np.vstack([q2, k2]).astype(np.float64)
    centred = points - points.mean(axis=0)
    axes = np.linalg.eigh(centred.T @ centred)[1][:, ::-1][:, :2].T  # [2, d]
    qc, kc = q - q.mean(axis=0), k - k.mean(axis=0)
    rows = sampled_text_rows(text_id, 48)
    groups = attention_groups(q[rows], k[rows], text_id[rows], causal=False)
    start = (axes.ravel() if shared
             else np.concatenate([(transform.scale * axes).ravel(), (axes / transform.scale).ravel()]))
    found = minimize(linear_map_loss, start, args=(groups, qc[rows], kc[rows], shared), jac=True, method="L-BFGS-B",
                     options={"maxiter": 150})
    d = q.shape[1]
    a = found.x[:2 * d].reshape(2, d)
    b = a if shared else found.x[2 * d:].reshape(2, d)
    return np.vstack([qc @ a.T, kc @ b.T])


def fit_pca(q: np.ndarray, k: np.ndarray, text_id: np.ndarray) -> np.ndarray:
    """The fitted normalisation's 2D PCA picture [2N, 2]."""
    from workers.core.normalize import normalize
    from workers.core.project import Projector

    return Projector("pca", 2).fit_transform(np.vstack(normalize(q, k, "fit", text_id)))


def placed_on_pca_keys(q: np.ndarray, k: np.ndarray, text_id: np.ndarray) -> np.ndarray:
    """Keys at their PCA picture, queries at workers.core.fitted's start [2N, 2]."""
    from workers.core.fidelity import attention_groups
    from workers.core.fitted import key_start, query_start

    keys = key_start(k, 2)
    return np.vstack([query_start(attention_groups(q, k, text_id, False), keys), keys])


CANDIDATES = {
    "fit + PCA": lambda q, k, t, s: fit_pca(q, k, t),
    "linear maps (separate), one cloud": lambda q, k, t, s: linear_maps(q, k, t, shared=False),
    "linear map (shared), one cloud": lambda q, k, t, s: linear_maps(q, k, t, shared=True),
    "queries placed on PCA keys": lambda q, k, t, s: placed_on_pca_keys(q, k, t),
}  # and the two fitted to attention, set in main


def candidate_table(rows: list[dict]) -> str:
    """Markdown table, one candidate a row."""
    lines = ["| candidate | heads | top-1-in-3 | no-picture baseline | non-sink top-1-in-3 | non-sink baseline | "
             "worst head | rank correlation | centroid gap / spread | s / head |", "|---" * 10 + "|"]
    for row in rows:
        lines.append(f"| {row['method']} | {row['heads']} | {row['top1_mean']:.3f} | {row['baseline_mean']:.3f} | "
                     f"{row['top1_non_sink_mean']:.3f} | {row['baseline_non_sink_mean']:.3f} | "
                     f"{row['top1_worst']:.3f} ({row['worst_head']}) | {row['rho_mean']:.3f} | "
                     f"{row['gap_median']:.2f} | {row['s_per_head']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Measure every candidate on every --every-th head; write the table."""
    from normalisation import summarise, unseen_corpus

    from workers.config import settings
    from workers.contracts.requests import HeadRequest
    from workers.core.fidelity import picture_fidelity, sink_keys
    from workers.core.fitted import fitted_layout
    from workers.core.normalize import picture_layout
    from workers.models.registry import read_spec
    from workers.pipeline.keys import resolve
    from workers.pipeline.stages import head_qk
    from workers.store import Store

    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", choices=["default", "unseen"], default="default")
    parser.add_argument("--every", type=int, default=9)
    args = parser.parse_args()
    corpus = "default" if args.corpus == "default" else str(unseen_corpus(ROOT / "bench" / "results" / "unseen.txt"))
    out = ROOT / "bench" / "results" / ("picture_candidates" + ("_unseen" if args.corpus == "unseen" else ""))
    candidates = {**CANDIDATES, "fitted to attention (default)": lambda q, k, t, s: fitted_layout(q, k, t, False, s),
                  "fitted to attention, no centring": lambda q, k, t, s: fitted_layout(q, k, t, False, s,
                                                                                       gap_weight=0.0)}
    store = Store(settings().cache_dir / "results")
    spec = read_spec("minilm")
    heads = [(layer, head) for layer in range(spec.n_layers) for head in range(spec.n_heads)][::args.every]
    results: dict[str, dict[str, dict]] = {}
    for layer, head in heads:
        request = HeadRequest(corpus=corpus, layer=layer, head=head, method="pca")
        q, k, text_id = head_qk(request, store)
        q, k = q.astype(np.float64), k.astype(np.float64)
        sinks = sink_keys(text_id, store.get_arrays(resolve(request).tokens)["is_special"], causal=False)
        for name, build in candidates.items():
            start = time.perf_counter()
            coords = build(q, k, text_id, sinks)
            seconds = time.perf_counter() - start
            found = picture_fidelity(q, k, coords, text_id, causal=False, sinks=sinks)
            results.setdefault(name, {})[f"L{layer}H{head}"] = {
                "s_total": seconds, "s_normalise": 0.0, "top1_in_3": found.top1_in_k,
                "rank_correlation": found.rank_correlation, "top1_in_3_non_sink": found.top1_in_k_non_sink,
                "non_sink_share": found.non_sink_share, "baseline": found.baseline,
                "baseline_non_sink": found.baseline_non_sink, **picture_layout(coords[:len(q)], coords[len(q):])}
            print(f"L{layer}H{head} {name:36s} top1 {found.top1_in_k:.3f} non-sink {found.top1_in_k_non_sink:.3f} "
                  f"{seconds:.2f} s", flush=True)
    rows = [summarise("—", name, found) for name, found in results.items()]
    out.with_suffix(".json").write_text(json.dumps({"corpus": args.corpus, "every": args.every, "rows": rows,
                                                    "per_head": results}, indent=2) + "\n")
    out.with_suffix(".md").write_text(candidate_table(rows))


if __name__ == "__main__":
    main()
