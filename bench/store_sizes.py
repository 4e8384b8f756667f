"""What the shared store holds per head, measured on MiniLM over the default corpus and projected to bigger
models and corpora (the sizes docs/scale.md reasons with).

Run: `.venv/bin/python bench/store_sizes.py [--out bench/results/store_sizes.json]` (about a minute).
Measured: the stored bytes of one head's q, k and v (float16 at rest, compressed) and of its 2D picture, per token
and dimension; projected: the same rates times each model's heads, key/value heads, d_head and a corpus size.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (name, layers, query heads per layer, key/value heads per layer, d_head), from each model's published config
MODELS = (("MiniLM-L6 (bundled)", 6, 12, 12, 32), ("GPT-2 small", 12, 12, 12, 64),
          ("Llama-2-7B", 32, 32, 32, 128), ("Llama-3-8B (GQA)", 32, 32, 8, 128))
CORPUS_TOKENS = (10_000, 100_000)


def measure() -> dict:
    """Bytes per token and dimension of stored q/k/v, and per point of a stored picture, on MiniLM."""
    from workers.contracts.requests import HeadRequest
    from workers.models.registry import read_spec
    from workers.pipeline.keys import resolve_heads
    from workers.pipeline.stages import ensure_extraction, ensure_head_view
    from workers.store import Store

    with tempfile.TemporaryDirectory() as cache:
        store = Store(cache)
        request = HeadRequest(method="pca")
        ensure_extraction(request, store)
        spec = read_spec(request.model)
        every = resolve_heads(request)
        for layer, head in every:
            if layer == 0:
                ensure_head_view(HeadRequest(layer=layer, head=head, method="pca"), store)
        n_tokens = len(store.get_arrays(every[(0, 0)].tokens)["token"])
        vector_keys = {keys.q for keys in every.values()} | {keys.k for keys in every.values()} | \
            {keys.v for keys in every.values()}
        vectors = sum(len(store._get(key)) for key in vector_keys)
        pictures = [len(store._get(keys.coords)) for (layer, _), keys in every.items() if layer == 0]
        d_head = next(iter(store.get_arrays(every[(0, 0)].q).values())).shape[1]
    n_vectors = spec.n_layers * (spec.n_heads + 2 * spec.n_kv_heads)
    return {"model": "minilm", "tokens": n_tokens, "d_head": d_head,
            "vector_bytes_per_token_dim": round(vectors / (n_vectors * n_tokens * d_head), 3),
            "picture_bytes_per_point": round(sum(pictures) / len(pictures) / (2 * n_tokens), 2)}


def project(rates: dict) -> list[dict]:
    """Per-head and whole-model store sizes for each model at each corpus size, from the measured rates."""
    rows = []
    for name, layers, heads, kv_heads, d_head in MODELS:
        for tokens in CORPUS_TOKENS:
            vector = rates["vector_bytes_per_token_dim"] * tokens * d_head
            picture = rates["picture_bytes_per_point"] * 2 * tokens
            total = layers * (heads + 2 * kv_heads) * vector + layers * heads * picture
            per_head = vector * (1 + 2 * kv_heads / heads) + picture
            rows.append({"model": name, "heads": layers * heads, "d_head": d_head, "kv_heads": layers * kv_heads,
                         "tokens": tokens, "per_head_mb": round(per_head / 2**20, 2),
                         "total_gb": round(total / 2**30, 2)})
    return rows


def markdown(rates: dict, rows: list[dict]) -> str:
    """The table docs/scale.md quotes."""
    lines = ["| model | heads | d_head | corpus tokens | per head (q, its share of k and v, one 2D picture) | "
             "whole model |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['model']} | {row['heads']:,} | {row['d_head']} | {row['tokens']:,} | "
                     f"{row['per_head_mb']:,} MB | {row['total_gb']:,} GB |")
    lines.append(f"\nMeasured on MiniLM over the default corpus ({rates['tokens']:,} tokens): "
                 f"{rates['vector_bytes_per_token_dim']} bytes per token and dimension of q, k or v at rest, "
                 f"{rates['picture_bytes_per_point']} bytes per point of a 2D picture.")
    return "\n".join(lines) + "\n"


def main() -> int:
    """Measure, project, print and write the JSON and the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "store_sizes.json"))
    args = parser.parse_args()
    rates = measure()
    rows = project(rates)
    Path(args.out).write_text(json.dumps({"measured": rates, "projected": rows}, indent=1) + "\n")
    table = markdown(rates, rows)
    Path(args.out).with_suffix(".md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
