"""Does a picture keep the vectors' own neighbourhoods? Per head: the share of each point's 10 nearest queries
(for a query) or keys (for a key) in the normalised vectors that are also among its 10 nearest in the picture.

Usage: .venv/bin/python bench/structure.py [--every 12]  (MiniLM, default corpus, every `--every`-th head)
Prints a Markdown table: picture, heads, neighbours kept (mean), top-1-in-3 (mean).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NEIGHBOURS = 10


def neighbours_kept(vectors: np.ndarray, picture: np.ndarray, neighbours: int = NEIGHBOURS) -> float:
    """Mean share of each row's `neighbours` nearest rows in `vectors` [n, d] kept among its nearest in `picture`."""
    from sklearn.neighbors import NearestNeighbors

    def nearest(points: np.ndarray) -> np.ndarray:
        return NearestNeighbors(n_neighbors=neighbours + 1).fit(points).kneighbors(points)[1][:, 1:]

    before, after = nearest(vectors), nearest(picture)
    return float(np.mean([len(np.intersect1d(b, a)) / neighbours for b, a in zip(before, after, strict=True)]))


def main() -> None:
    """PCA, UMAP and the attention layout of the same heads, under the fitted normalisation."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--every", type=int, default=12)
    args = parser.parse_args()
    from workers.config import settings
    from workers.contracts.requests import HeadRequest
    from workers.core.fidelity import picture_fidelity
    from workers.core.layout import attention_layout
    from workers.core.normalize import normalize
    from workers.core.project import Projector, warm_up_umap
    from workers.pipeline.keys import estimator_params
    from workers.pipeline.stages import head_qk
    from workers.store import Store

    store = Store(settings().cache_dir / "results")
    heads = [(layer, head) for layer in range(6) for head in range(12)][::args.every]
    warm_up_umap()
    found: dict[str, list[tuple[float, float]]] = {"PCA": [], "UMAP": [], "attention layout": []}
    for layer, head in heads:
        q, k, text_id = head_qk(HeadRequest(layer=layer, head=head), store)
        q2, k2 = normalize(q, k, "fit", text_id)
        pictures = {"PCA": Projector("pca", 2).fit_transform(np.vstack([q2, k2])),
                    "UMAP": Projector("umap", 2, **estimator_params("umap", False)).fit_transform(np.vstack([q2, k2])),
                    "attention layout": attention_layout(q2, k2, text_id, False)}
        n = len(q)
        for name, coords in pictures.items():
            kept = (neighbours_kept(q2, coords[:n]) + neighbours_kept(k2, coords[n:])) / 2
            found[name].append((kept, picture_fidelity(q, k, coords, text_id, False).top1_in_k))
            print(f"L{layer}H{head} {name}: neighbours kept {kept:.3f}", flush=True)
    print(f"\n| picture | heads | {NEIGHBOURS} nearest same-role neighbours kept | top-1-in-3 |\n|---|---|---|---|")
    for name, rows in found.items():
        print(f"| {name} | {len(rows)} | {np.mean([r[0] for r in rows]):.3f} | {np.mean([r[1] for r in rows]):.3f} |")


if __name__ == "__main__":
    main()
