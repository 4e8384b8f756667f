"""Peak memory of extraction on a 12-layer BERT-base-sized model over ~50k tokens, each variant in its own process.

Run: `.venv/bin/python bench/memory.py [--tokens 50000] [--out bench/results/memory.json]`.
Variants: `plain` (eager forward passes only: the floor), `streaming` (extract_heads into a store, as the
worker does), `in-memory` (extract(): every layer's q/k held at once, what streaming avoids).
Figures are peak RSS (ru_maxrss) minus RSS once the model is loaded and the corpus tokenised.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def rss_mb() -> float:
    """Current resident set size in MB."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def peak_mb() -> float:
    """Peak resident set size of this process so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def corpus_of(tokens: int):
    """The default corpus repeated (with numbered variants) until it holds about `tokens` MiniLM tokens."""
    from workers.corpora.corpus import load_corpus, make_corpus

    base = load_corpus("default").texts
    copies = max(1, round(tokens / 12_492))
    return make_corpus("bench", [f"{text} ({i})" if i else text for i in range(copies) for text in base])


def run_variant(variant: str, tokens: int) -> dict:
    """Measure one variant in this process."""
    import torch
    from transformers import AutoModel, BertConfig

    from workers.models.extract import extract, extract_heads, plain_forward_seconds
    from workers.models.loading import load_model, wrap_model
    from workers.store import Store

    torch.manual_seed(0)
    tokenizer = load_model("minilm").tokenizer
    model = AutoModel.from_config(BertConfig(), attn_implementation="eager")  # BERT-base: 12 x 12, d 768
    loaded = wrap_model(model, tokenizer, "bert-base-random", "seed-0")
    corpus = corpus_of(tokens)
    plain_forward_seconds(loaded, make_small(corpus))  # warm allocator and threads
    baseline = rss_mb()
    started = time.perf_counter()
    if variant == "plain":
        plain_forward_seconds(loaded, corpus)
        n_tokens = None
    elif variant == "in-memory":
        n_tokens = len(extract(loaded, corpus).tokens["token"])
    else:
        with tempfile.TemporaryDirectory() as directory:
            store = Store(directory)
            table, heads = extract_heads(loaded, corpus, 64, 128)
            for role, layer, head, vectors in heads:
                store.put_arrays(f"{role}-{layer}-{head}", {"v": vectors})
            n_tokens = len(table["token"])
    return {"variant": variant, "tokens": n_tokens, "seconds": round(time.perf_counter() - started, 1),
            "rss_after_load_mb": round(baseline), "peak_above_load_mb": round(peak_mb() - baseline)}


def make_small(corpus):
    """The first 64 texts (warm-up)."""
    from workers.corpora.corpus import make_corpus

    return make_corpus("warm", list(corpus.texts[:64]))


def main() -> None:
    """Run each variant in a fresh process and print a table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=50_000)
    parser.add_argument("--variants", default="plain,streaming,in-memory")
    parser.add_argument("--out", default="bench/results/memory.json")
    parser.add_argument("--child", default=None)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_variant(args.child, args.tokens)))
        return
    results = []
    for variant in args.variants.split(","):
        done = subprocess.run([sys.executable, __file__, "--child", variant, "--tokens", str(args.tokens)],
                              capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(results[-1], flush=True)
    print(f"\n{'variant':<12}{'tokens':>8}{'seconds':>9}{'RSS after load MB':>19}{'peak above MB':>15}")
    for r in results:
        print(f"{r['variant']:<12}{r['tokens'] or '':>8}{r['seconds']:>9}{r['rss_after_load_mb']:>19}"
              f"{r['peak_above_load_mb']:>15}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
