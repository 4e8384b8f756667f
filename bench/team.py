"""UMAP matrix of the default corpus through Celery: one worker process versus two, in the same run.

Run: `.venv/bin/python bench/team.py [--layers 0-5] [--out bench/results/team.json]` (needs redis-server).
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
        results = [run_config(1, layers, url), run_config(2, layers, url)]
    finally:
        server.terminate()
    speedup = results[0]["seconds"] / results[1]["seconds"]
    for r in results:
        print(f"{r['workers']} worker(s): {r['heads']} UMAP heads in {r['seconds']} s ({r['seconds_per_head']} s/head)")
    print(f"speed-up with two workers: {speedup:.2f}x")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"configs": results, "speedup": round(speedup, 2), "cores": os.cpu_count()},
                                         indent=2) + "\n")


if __name__ == "__main__":
    main()
