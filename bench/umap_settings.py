"""Cheaper UMAP settings against their fidelity: seconds per head and top-1-in-3 / rank correlation (PCA beside),
each beside the no-picture baseline (a sink or the previous token), over all queries and over non-sink queries.

Usage: .venv/bin/python bench/umap_settings.py [--heads 0:0,2:5,5:3] [--out bench/results/umap_settings.json]
Each setting runs on the same heads (MiniLM, default corpus; the fitted normalisation, the default, and
AttentionViz's scale+translate), after UMAP is compiled. Writes OUT (JSON) and OUT with .md (a Markdown table).
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
NORMALIZATIONS = ("fit", "scale+translate")


def main() -> None:
    """Time and fidelity per setting and head; prints a table, writes JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--heads", default="0:0,1:3,2:5,3:7,4:2,5:9")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "umap_settings.json"))
    args = parser.parse_args()
    from workers.config import settings
    from workers.contracts.requests import HeadRequest
    from workers.core.fidelity import picture_fidelity, sink_keys
    from workers.core.normalize import normalize
    from workers.core.project import Projector, warm_up_umap
    from workers.pipeline.keys import resolve
    from workers.pipeline.stages import head_qk
    from workers.store import Store

    store = Store(settings().cache_dir / "results")
    warm_up_umap()
    heads = [tuple(int(x) for x in pair.split(":")) for pair in args.heads.split(",")]
    rows = {}
    for norm in NORMALIZATIONS:
        for name, (method, params) in SETTINGS.items():
            seconds, found = [], []
            for layer, head in heads:
                request = HeadRequest(layer=layer, head=head, method="pca")
                q, k, text_id = head_qk(request, store)
                sinks = sink_keys(text_id, store.get_arrays(resolve(request).tokens)["is_special"], causal=False)
                qn, kn = normalize(q, k, norm, text_id)
                start = time.perf_counter()
                coords = Projector(method, 2, **params).fit_transform(np.vstack([qn, kn]))
                seconds.append(time.perf_counter() - start)
                found.append(picture_fidelity(q, k, coords, text_id, causal=False, sinks=sinks).to_dict())
            mean = {name: round(float(np.mean([f[name] for f in found])), 3) for name in found[0]}
            row = {"normalisation": norm, "setting": name, "s_per_head": round(float(np.mean(seconds)), 2),
                   "top1_in_3": mean["top1_in_k"], "baseline": mean["baseline"],
                   "top1_in_3_non_sink": mean["top1_in_k_non_sink"], "baseline_non_sink": mean["baseline_non_sink"],
                   "rank_correlation": mean["rank_correlation"], "points": 2 * len(q)}
            rows[f"{norm} · {name}"] = row
            print(f"{norm:16s} {name:38s} {row['s_per_head']:6.2f} s  top1-in-3 {row['top1_in_3']:.3f}  "
                  f"rho {row['rank_correlation']:.3f}", flush=True)
    Path(args.out).write_text(json.dumps({"heads": args.heads, "settings": rows}, indent=2) + "\n")
    lines = ["| normalisation | projection | s per head | top-1-in-3 | no-picture baseline | non-sink top-1-in-3 | "
             "non-sink baseline | rank correlation |", "|---" * 8 + "|"]
    lines += [f"| {r['normalisation']} | {r['setting']} | {r['s_per_head']:.2f} | {r['top1_in_3']:.3f} | "
              f"{r['baseline']:.3f} | {r['top1_in_3_non_sink']:.3f} | {r['baseline_non_sink']:.3f} | "
              f"{r['rank_correlation']:.3f} |" for r in rows.values()]
    Path(args.out).with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
