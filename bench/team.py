"""UMAP matrix of the default corpus through Celery: one worker process versus two (or more), in the same run.

Run: `.venv/bin/python bench/team.py [--layers 0-5] [--workers 1,2] [--out bench/results/team.json]` (needs
redis-server); `--workers 1,2,4 --layers 0-1 --out bench/results/team_fanout.json` is the fan-out docs/scale.md
quotes.
Each configuration gets a fresh store and fresh workers; workers compile UMAP at start (QK_ATLAS_WARM_UMAP=1)
and the clock starts once that is done, so the figure is the steady-state throughput of the matrix.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support: helpers shared with the tests

from tests.support.net import free_port  # noqa: E402


def run_config(workers: int, layers: list[int], redis_url: str) -> dict:
    """Time the matrix (the given layers x 12 heads, UMAP) on `workers` single-process Celery workers."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    cache = Path(tempfile.mkdtemp(prefix="qk-bench-team-"))
    env = {**os.environ, "QK_ATLAS_REDIS_URL": redis_url, "QK_ATLAS_CACHE_DIR": str(cache), "QK_ATLAS_WARM_UMAP": "1"}
    os.environ.update({"QK_ATLAS_REDIS_URL": redis_url, "QK_ATLAS_CACHE_DIR": str(cache)})
    procs = [subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers.runtime.celery_app", "worker", "-Q",
                               "extraction,projection", "-c", "1", "-n", f"bench{i}@%h", "--without-gossip",
                               "--without-mingle", "-l", "warning"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for i in range(workers)]
    try:
        from workers.contracts.requests import HeadRequest
        from workers.pipeline.stages import ensure_extraction
        from workers.runtime import team_jobs
        from workers.store import open_store

        store = open_store(cache)
        ensure_extraction(HeadRequest(), store)  # extraction is not what this measures
        time.sleep(60)  # let every worker process finish compiling UMAP
        started = time.perf_counter()
        ids = [team_jobs.submit(HeadRequest(layer=layer, head=head, method="umap").to_dict(), store)
               for layer in layers for head in range(12)]
        while not all(team_jobs.job_status(i)["state"] == "done" for i in ids):
            if any(team_jobs.job_status(i)["state"] == "error" for i in ids):
                raise RuntimeError("a job failed")
            time.sleep(0.5)
        seconds = time.perf_counter() - started
        used = sorted({team_jobs.job_status(i)["worker"] for i in ids})
        return {"workers": workers, "heads": len(ids), "seconds": round(seconds, 1),
                "seconds_per_head": round(seconds / len(ids), 2), "workers_used": used}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        shutil.rmtree(cache, ignore_errors=True)


def main() -> None:
    """Both configurations, then the speed-up."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", default="0-5", help="e.g. 0-5 (all 72 heads) or 0-1")
    parser.add_argument("--workers", default="1,2", help="worker processes per configuration, e.g. 1,2,4")
    parser.add_argument("--out", default="bench/results/team.json")
    args = parser.parse_args()
    first, _, last = args.layers.partition("-")
    layers = list(range(int(first), int(last or first) + 1))
    port = free_port()
    server = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        results = [run_config(int(count), layers, url) for count in args.workers.split(",")]
    finally:
        server.terminate()
    speedups = {str(r["workers"]): round(results[0]["seconds"] / r["seconds"], 2) for r in results}
    for r in results:
        print(f"{r['workers']} worker(s): {r['heads']} UMAP heads in {r['seconds']} s ({r['seconds_per_head']} s/head)"
              f", {speedups[str(r['workers'])]:.2f}x")
    record = {"configs": results, "speedups": speedups, "cores": os.cpu_count()}
    if len(results) == 2:
        record["speedup"] = speedups[str(results[1]["workers"])]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    if len(results) > 2:  # the fan-out table docs/scale.md quotes
        lines = [f"| Celery worker processes ({os.cpu_count()} cores) | {results[0]['heads']} UMAP heads | "
                 "seconds a head | speed-up over one |", "|---|---|---|---|"]
        lines += [f"| {r['workers']} | {r['seconds']} s | {r['seconds_per_head']} | "
                  f"{speedups[str(r['workers'])]:.2f}x |" for r in results]
        Path(args.out).with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
