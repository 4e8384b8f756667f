"""Embedded mode: several local worker processes share the queue; a corpus is extracted once."""

from __future__ import annotations

import time

from dashboard.jobs import LocalWorker
from workers import local_queue
from workers.pipeline import HeadRequest
from workers.store import open_store


def test_two_local_workers_share_the_matrix_and_extract_once(isolated_cache):
    workers = LocalWorker(isolated_cache, count=2)
    workers.start()
    try:
        store = open_store(isolated_cache)
        ids = [local_queue.submit(HeadRequest(layer=layer, head=head).to_dict(), store)
               for layer in range(2) for head in range(12)]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            records = [local_queue.job_status(i, store) for i in ids]
            assert not [r for r in records if r["state"] == "error"], records
            if all(r["state"] == "done" for r in records):
                break
            time.sleep(0.3)
        assert all(r["state"] == "done" for r in records)
        assert len({r["worker"] for r in records}) == 2  # both processes took part
        assert store.cache.get("stats:extractions") == 1  # the other waited on the lock, then reused it
    finally:
        workers.stop()


def test_a_local_worker_killed_mid_job_is_restarted_and_the_job_completes(isolated_cache):
    import os
    import signal

    from tests.browser_helpers import wait_until
    from workers.pipeline import resolve

    workers = LocalWorker(isolated_cache, count=1)
    workers.start()
    try:
        store = open_store(isolated_cache)
        request = HeadRequest(layer=1, head=6, method="umap")  # UMAP compiles inside the job: a long one
        job_id = local_queue.submit(request.to_dict(), store)
        wait_until(lambda: "UMAP" in local_queue.job_status(job_id, store)["message"], 300, what="UMAP started")
        victim = workers.processes[0].pid
        os.kill(victim, signal.SIGKILL)
        record = wait_until(lambda: (r := local_queue.job_status(job_id, store))["state"] == "done" and r, 600,
                            interval=0.5, what="job done after the restart")
        assert record["worker"] != victim and workers.processes[0].pid == record["worker"]  # its successor did it
        assert resolve(request).intact(store)
    finally:
        workers.stop()
