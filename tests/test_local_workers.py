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
