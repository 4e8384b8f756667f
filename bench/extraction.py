"""Extraction versus a plain eager forward pass over the same batches, same process, same run.

Run: `make bench` or `.venv/bin/python bench/extraction.py [--repeats 5] [--out bench/results/extraction.json]`.
Target (issue 2): extraction within 1.2x of the plain forward pass on the default corpus.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from workers.config import settings
from workers.corpora.corpus import load_corpus
from workers.models.extract import extract, plain_forward_seconds
from workers.models.loading import load_model


def main() -> None:
    """Interleave plain and extraction runs after a warm-up; report medians and their ratio."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="bench/results/extraction.json")
    args = parser.parse_args()
    config = settings()
    started = time.perf_counter()
    loaded = load_model("minilm")
    load_seconds = time.perf_counter() - started
    corpus = load_corpus("default")
    batch, max_tokens = config.batch_size, config.max_tokens_per_text
    plain_forward_seconds(loaded, corpus, batch, max_tokens)  # warm-up: allocator, threads
    extract(loaded, corpus, batch, max_tokens)
    plain, extraction = [], []
    for _ in range(args.repeats):
        plain.append(plain_forward_seconds(loaded, corpus, batch, max_tokens))
        bundle = extract(loaded, corpus, batch, max_tokens)
        extraction.append(bundle.seconds)
    tokens = int(len(bundle.tokens["token"]))
    result = {
        "model": "minilm", "corpus": "default", "texts": len(corpus.texts), "tokens": tokens,
        "batch_size": batch, "torch_threads": torch.get_num_threads(), "machine": platform.machine(),
        "model_load_s": round(load_seconds, 3),
        "plain_forward_s": [round(x, 3) for x in plain], "extraction_s": [round(x, 3) for x in extraction],
        "plain_forward_median_s": round(statistics.median(plain), 3),
        "extraction_median_s": round(statistics.median(extraction), 3),
        "ratio_median": round(statistics.median(extraction) / statistics.median(plain), 3),
        "target_ratio": 1.2,
    }
    print(f"{'measure':<28}{'value':>10}")
    for name in ("tokens", "model_load_s", "plain_forward_median_s", "extraction_median_s", "ratio_median"):
        print(f"{name:<28}{result[name]:>10}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
