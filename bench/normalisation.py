"""Fidelity and time of every picture: normalisations x projections, and the attention layout, per MiniLM head.

Usage: .venv/bin/python bench/normalisation.py [--umap-every 4] [--tsne-every 8] [--only pca ...]
       [--out bench/results/normalisation]
On the bundled MiniLM over the default corpus: PCA under every normalisation and the attention layout on every
head; UMAP (200 epochs, the single view's setting) under every normalisation on every `--umap-every`-th head, and
t-SNE (openTSNE, 500 iterations) on every `--tsne-every`-th head (their cost: about 9 and 25 s a head on 2 cores).
UMAP is compiled first. Writes OUT.json and OUT.md (a Markdown table).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


OVERLAP = "fit, clouds forced to overlap"
OVERLAP_GAP = 0.5


def overlapping_fit(q, k, text_id):
    """The fit's most faithful grid candidate among those whose clouds overlap (centroid gap <= OVERLAP_GAP)."""
    from workers.normalize import candidate_transform, fit_transform_for

    _chosen, scores = fit_transform_for(q, k, text_id, causal=False)
    allowed = [s for s in scores if s["centroid_gap"] <= OVERLAP_GAP and 0.5 <= s["spread_ratio"] <= 2.0]
    best = max(allowed or scores, key=lambda s: s["top1_in_k"])
    return candidate_transform(q.astype(np.float64), k.astype(np.float64), best["translation"],
                               best["scale_multiplier"]).apply(q, k)


def measure(q, k, text_id, norm: str, method: str) -> dict[str, float]:
    """Seconds to normalise and project, and the picture's fidelity, for one head."""
    from workers.fidelity import picture_fidelity
    from workers.layout import attention_layout
    from workers.normalize import normalize, picture_layout
    from workers.pipeline import estimator_params
    from workers.project import Projector

    start = time.perf_counter()
    q2, k2 = overlapping_fit(q, k, text_id) if norm == OVERLAP else normalize(q, k, norm, text_id, causal=False)
    normalised = time.perf_counter()
    params = estimator_params(method, False)
    if method == "attention":
        coords = attention_layout(q2, k2, text_id, False, 2, **params)
    else:
        coords = Projector(method, 2, **params).fit_transform(np.vstack([q2, k2]))
    seconds = time.perf_counter() - start
    found = picture_fidelity(q, k, coords, text_id, causal=False)
    return {"s_normalise": normalised - start, "s_total": seconds, "top1_in_3": found.top1_in_k,
            "rank_correlation": found.rank_correlation, **picture_layout(coords[:len(q)], coords[len(q):])}


def table(rows: list[dict]) -> str:
    """Markdown table of the aggregated rows."""
    lines = ["| normalisation | projection | heads | top-1-in-3 mean | worst head | rank correlation | "
             "centroid gap / spread | s / head |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['norm']} | {row['method']} | {row['heads']} | {row['top1_mean']:.3f} | "
                     f"{row['top1_worst']:.3f} ({row['worst_head']}) | {row['rho_mean']:.3f} | "
                     f"{row['gap_median']:.2f} | {row['s_per_head']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Every normalisation under PCA on all heads, and the centroid rule against the fit under UMAP."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--umap-every", type=int, default=4)
    parser.add_argument("--tsne-every", type=int, default=8)
    parser.add_argument("--only", nargs="*", choices=["attention", "pca", "umap", "tsne"],
                        help="re-measure these projections only; the other rows are kept from OUT.json")
    parser.add_argument("--norms", nargs="*", help="with --only: these normalisations only")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "normalisation"))
    args = parser.parse_args()
    from workers.config import settings
    from workers.models import read_spec
    from workers.normalize import NORMALIZATIONS
    from workers.pipeline import METHOD_NAMES, HeadRequest, ensure_extraction, head_vectors
    from workers.project import warm_up_umap
    from workers.store import Store

    store = Store(settings().cache_dir / "results")
    spec = read_spec("minilm")
    heads = [(layer, head) for layer in range(spec.n_layers) for head in range(spec.n_heads)]
    plan = [("fit", "attention", heads), ("scale+translate", "attention", heads)]
    plan += [(norm, "pca", heads) for norm in (*NORMALIZATIONS, OVERLAP)]
    plan += [(norm, "umap", heads[::args.umap_every]) for norm in NORMALIZATIONS]
    plan += [(norm, "tsne", heads[::args.tsne_every]) for norm in NORMALIZATIONS]
    kept: dict = {"rows": [], "per_head": {}}
    if args.only:
        plan = [step for step in plan if step[1] in args.only and (not args.norms or step[0] in args.norms)]
        kept = json.loads(Path(args.out + ".json").read_text())
    warm_up_umap()
    per_head, rows = {}, []
    for norm, method, chosen in plan:
        found = {}
        for layer, head in chosen:
            keys = ensure_extraction(HeadRequest(layer=layer, head=head), store)
            q, k = head_vectors(store, keys)
            found[f"L{layer}H{head}"] = measure(q, k, store.get_arrays(keys.tokens)["text_id"], norm, method)
        tops = {name: value["top1_in_3"] for name, value in found.items()}
        worst = min(tops, key=tops.get)
        row = {"norm": norm, "method": METHOD_NAMES[method], "heads": len(chosen),
               "top1_mean": float(np.mean(list(tops.values()))), "top1_worst": tops[worst], "worst_head": worst,
               "rho_mean": float(np.mean([value["rank_correlation"] for value in found.values()])),
               "gap_median": float(np.median([value["centroid_gap"] for value in found.values()])),
               "s_per_head": float(np.mean([value["s_total"] for value in found.values()])),
               "s_normalise_per_head": float(np.mean([value["s_normalise"] for value in found.values()]))}
        rows.append(row)
        per_head[f"{norm} · {method}"] = found
        print(f"{norm:16s} {method:5s} top1 {row['top1_mean']:.3f} worst {row['top1_worst']:.3f} ({worst}) "
              f"rho {row['rho_mean']:.3f} {row['s_per_head']:.2f} s/head", flush=True)
    if args.only:  # the re-measured rows take the place of their old ones, in the table's order
        fresh = {(row["norm"], row["method"]): row for row in rows}
        rows = [fresh.get((row["norm"], row["method"]), row) for row in kept["rows"]]
        per_head = {**kept["per_head"], **per_head}
    Path(args.out + ".json").write_text(json.dumps({"rows": rows, "per_head": per_head}, indent=2) + "\n")
    Path(args.out + ".md").write_text(table(rows))


if __name__ == "__main__":
    main()
