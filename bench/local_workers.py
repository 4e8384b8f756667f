"""Embedded mode: the UMAP matrix with one local worker process versus two, in the same run.

Run: `.venv/bin/python bench/local_workers.py [--layers 0-5] [--out bench/results/local_workers.json]`.
Each configuration gets a fresh store (extraction done before the clock starts) and fresh workers that have
compiled UMAP while idle, so the figure is the steady-state throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def run_config(count: int, layers: list[int]) -> dict:
    """Seconds for the given layers x 12 UMAP heads on `count` local workers."""
    os.environ["QK_ATLAS_WARM_UMAP"] = "1"
    from dashboard.jobs import LocalWorker
    from workers.contracts.requests import HeadRequest
    from workers.pipeline.stages import ensure_extraction
    from workers.runtime import local_queue
    from workers.store import open_store

    with tempfile.TemporaryDirectory(prefix="qk-bench-local-") as directory:
        store = open_store(directory)
        ensure_extraction(HeadRequest(), store)
        workers = LocalWorker(Path(directory), count=count)
        workers.start()
        try:
            time.sleep(60)  # idle: every worker compiles UMAP
            started = time.perf_counter()
            ids = [local_queue.submit(HeadRequest(layer=layer, head=head, method="umap").to_dict(), store)
                   for layer in layers for head in range(12)]
            while not all(local_queue.job_status(i, store)["state"] == "done" for i in ids):
                time.sleep(0.3)
            seconds = time.perf_counter() - started
            used = len({local_queue.job_status(i, store)["worker"] for i in ids})
        finally:
            workers.stop()
    return {"workers": count, "heads": len(ids), "seconds": round(seconds, 1),
            "seconds_per_head": round(seconds / len(ids), 2), "processes_used": used}


def main() -> None:
    """One worker, then two; print the speed-up."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", default="0-5")
    parser.add_argument("--out", default="bench/results/local_workers.json")
    args = parser.parse_args()
    first, _, last = args.layers.partition("-")
    layers = list(range(int(first), int(last or first) + 1))
    results = [run_config(1, layers), run_config(2, layers)]
    speedup = results[0]["seconds"] / results[1]["seconds"]
    for r in results:
        print(f"{r['workers']} local worker(s): {r['heads']} UMAP heads in {r['seconds']} s "
              f"({r['seconds_per_head']} s/head)")
    print(f"speed-up with two local workers: {speedup:.2f}x")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"configs": results, "speedup": round(speedup, 2)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
