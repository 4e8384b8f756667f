"""Cheaper UMAP settings against their fidelity: seconds per head and top-1-in-3 / rank correlation (PCA beside).

Usage: .venv/bin/python bench/umap_settings.py [--heads 0:0,2:5,5:3] [--out bench/results/umap_settings.json]
Each setting runs on the same heads (MiniLM, default corpus, scale+translate), after UMAP is compiled.
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

SETTINGS = {
    "PCA (reference)": ("pca", {}),
    "UMAP 200 epochs (umap-learn default)": ("umap", {"n_epochs": 200}),
    "UMAP 100 epochs": ("umap", {"n_epochs": 100}),
    "UMAP 50 epochs": ("umap", {"n_epochs": 50}),
    "UMAP 30 epochs": ("umap", {"n_epochs": 30}),
}
NORMALIZATIONS = ("none", "scale+translate")


def main() -> None:
    """Time and fidelity per setting and head; prints a table, writes JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--heads", default="0:0,1:3,2:5,3:7,4:2,5:9")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "umap_settings.json"))
    args = parser.parse_args()
    from workers.config import settings
    from workers.fidelity import picture_fidelity
    from workers.normalize import normalize
    from workers.pipeline import HeadRequest, head_qk
    from workers.project import Projector, warm_up_umap
    from workers.store import Store

    store = Store(settings().cache_dir / "results")
    warm_up_umap()
    heads = [tuple(int(x) for x in pair.split(":")) for pair in args.heads.split(",")]
    rows = {}
    for norm in NORMALIZATIONS:
        for name, (method, params) in SETTINGS.items():
            seconds, tops, rhos = [], [], []
            for layer, head in heads:
                q, k, text_id = head_qk(HeadRequest(layer=layer, head=head), store)
                qn, kn = normalize(q, k, norm)
                start = time.perf_counter()
                coords = Projector(method, 2, **params).fit_transform(np.vstack([qn, kn]))
                seconds.append(time.perf_counter() - start)
                fid = picture_fidelity(q, k, coords, text_id, causal=False)
                tops.append(fid.top1_in_k)
                rhos.append(fid.rank_correlation)
            row = {"normalisation": norm, "setting": name, "s_per_head": round(float(np.mean(seconds)), 2),
                   "top1_in_3": round(float(np.mean(tops)), 3), "rank_correlation": round(float(np.mean(rhos)), 3),
                   "points": 2 * len(q)}
            rows[f"{norm} · {name}"] = row
            print(f"{norm:16s} {name:38s} {row['s_per_head']:6.2f} s  top1-in-3 {row['top1_in_3']:.3f}  "
                  f"rho {row['rank_correlation']:.3f}", flush=True)
    Path(args.out).write_text(json.dumps({"heads": args.heads, "settings": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
