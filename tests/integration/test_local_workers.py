"""Embedded mode: several local worker processes share the queue; a corpus is extracted once."""

from __future__ import annotations

import os
import signal
import time

import pytest

from dashboard.jobs import LocalWorker
from workers.contracts.requests import HeadRequest
from workers.runtime import local_queue
from workers.store import open_store


def test_two_local_workers_share_the_matrix_and_extract_once(isolated_cache):
    workers = LocalWorker(isolated_cache, count=2)
    workers.start()
    try:
        store = open_store(isolated_cache)
        ids = [local_queue.submit(HeadRequest(layer=layer, head=head, method="pca").to_dict(), store)
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


def test_the_first_job_waits_for_the_worker_that_preloads_its_model(isolated_cache, monkeypatch):
    """With two workers, the first one preloads the bundled model; a view asked for meanwhile is left to it by the
    idle one (which would load the model a second time, competing for the same cores)."""
    from tests.support.browser import wait_until

    monkeypatch.setenv("QK_ATLAS_PRELOAD_MODEL", "minilm")
    workers = LocalWorker(isolated_cache, count=2)
    workers.start()
    try:
        store = open_store(isolated_cache)
        wait_until(lambda: store.get_json(local_queue.PRELOADING_KEY), 60, interval=0.02, what="preloading")
        first = local_queue.submit(HeadRequest(layer=0, head=0, method="pca").to_dict(), store)
        record = wait_until(lambda: (r := local_queue.job_status(first, store))["state"] == "done" and r, 300,
                            interval=0.1, what="the first view")
        assert record["worker"] == workers.processes[0].pid  # the preloading worker, not the idle one
        assert store.get_json(local_queue.PRELOADING_KEY) is None
    finally:
        workers.stop()


def test_jobs_are_left_to_a_preloading_worker_only_while_it_lives_and_only_for_its_model(isolated_cache):
    queues = (local_queue._queue(isolated_cache, urgent=True), local_queue._queue(isolated_cache))
    store = open_store(isolated_cache)
    minilm, gpt = ({"job_id": m, "request": HeadRequest(model=m).to_dict()} for m in ("minilm", "tiny-gpt"))
    queues[0].extend([minilm, gpt])
    store.put_json(local_queue.PRELOADING_KEY, {"model": "minilm", "pid": os.getppid()})  # a live process
    assert local_queue.model_being_preloaded(store) == "minilm"
    assert local_queue._next_item(queues, "minilm") is None  # the urgent queue starts with minilm: left there
    assert list(queues[0]) == [minilm, gpt]
    queues[1].append(gpt)
    assert local_queue._next_item(queues, "minilm") == gpt  # another model's job is taken meanwhile
    store.put_json(local_queue.PRELOADING_KEY, {"model": "minilm", "pid": 2**22 + 7})  # a dead preloader
    assert local_queue.model_being_preloaded(store) is None
    store.put_json(local_queue.PRELOADING_KEY, {"model": "minilm", "pid": os.getpid()})  # this process's own
    assert local_queue.model_being_preloaded(store) is None
    assert local_queue._next_item(queues, None) == minilm


RECOVERY_SECONDS = 30  # a killed worker never wedges a view for longer than this


@pytest.mark.parametrize("stage, method, started", [
    ("extraction", "pca", lambda message: "forward pass" in message),
    ("projection", "fitted", lambda message: "fitted" in message),  # the fitted picture: about 10 s
])
def test_a_local_worker_killed_at_any_stage_is_replaced_and_its_job_resumes_within_seconds(isolated_cache, stage,
                                                                                             method, started):
    """One local worker, SIGKILLed while it extracts (holding the corpus's extraction lock) or projects: its
    successor takes the job over (the lock dies with its holder) within RECOVERY_SECONDS, and finishes it."""
    from tests.support.browser import wait_until
    from workers.pipeline.keys import resolve

    workers = LocalWorker(isolated_cache, count=1)
    workers.start()
    try:
        store = open_store(isolated_cache)
        request = HeadRequest(layer=1, head=6, method=method)
        job_id = local_queue.submit(request.to_dict(), store)
        wait_until(lambda: started(local_queue.job_status(job_id, store)["message"]), 300, interval=0.05,
                   what=f"{stage} started")
        victim = workers.processes[0].pid
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: _running_elsewhere(job_id, store, victim), RECOVERY_SECONDS, interval=0.2,
                   what=f"the job running again after a kill during {stage}")
        assert time.monotonic() - killed < RECOVERY_SECONDS
        record = wait_until(lambda: (r := local_queue.job_status(job_id, store))["state"] == "done" and r, 600,
                            interval=0.5, what="job done after the restart")
        assert record["worker"] != victim and workers.processes[0].pid == record["worker"]  # its successor did it
        assert resolve(request).intact(store)
    finally:
        workers.stop()


def _running_elsewhere(job_id: str, store, victim: int) -> bool:
    """Whether a live worker other than `victim` is making progress on the job (its heartbeat shows it busy)."""
    record = local_queue.job_status(job_id, store)
    beats = [b for b in local_queue._beats(store) if b["pid"] != victim and b.get("activity") == "busy"]
    return record["state"] in ("running", "done") and bool(beats) and "worker process died" not in record["message"]


def test_a_local_worker_ends_with_its_server_even_mid_job(isolated_cache):
    """The server killed outright: its worker notices within seconds, even in the middle of a long job."""
    import subprocess
    import sys

    from tests.support.browser import wait_until

    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    worker = subprocess.Popen([sys.executable, "-m", "workers.runtime.local_queue", str(isolated_cache),
                               str(owner.pid), "0"])
    try:
        store = open_store(isolated_cache)
        job_id = local_queue.submit(HeadRequest(layer=1, head=6, method="umap").to_dict(), store)
        wait_until(lambda: local_queue.job_status(job_id, store)["state"] == "running", 300, what="job running")
        owner.kill()
        owner.wait()
        worker.wait(timeout=10)  # gone mid-job, not after it
        assert local_queue.job_status(job_id, store)["state"] == "running"  # the next server's worker re-queues it
    finally:
        for process in (owner, worker):
            if process.poll() is None:
                process.kill()


def test_a_sessions_job_limit_holds_back_its_matrix_but_not_others(isolated_cache, monkeypatch):
    """QK_ATLAS_MAX_JOBS_PER_USER=3: one session's 24 heads go in 3 at a time; another session is not held."""
    from dashboard import jobs

    monkeypatch.setenv("QK_ATLAS_MAX_JOBS_PER_USER", "3")
    jobs.set_cache_dir(isolated_cache)
    workers = LocalWorker(isolated_cache, count=1)
    workers.start()
    try:
        store = open_store(isolated_cache)
        matrix = [HeadRequest(layer=layer, head=head, method="pca").to_dict()
                  for layer in range(2) for head in range(12)]
        submitted, held = jobs.submit_limited("session-a", matrix, store)
        assert (len(submitted), held) == (3, 21)
        other_request = HeadRequest(layer=5, head=0, method="pca").to_dict()
        other, other_held = jobs.submit_limited("session-b", [other_request], store)
        assert len(other) == 1 and other_held == 0  # not held behind session A's limit
        b_done_while_a_busy = False
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            states = [local_queue.job_status(local_queue.job_id_for(r), store)["state"] for r in matrix]
            assert sum(s in ("queued", "running") for s in states) <= 3
            if local_queue.job_status(other[0], store)["state"] == "done" and states.count("done") < len(matrix):
                b_done_while_a_busy = True
            if states.count("done") == len(matrix):
                break
            pending = [r for r, s in zip(matrix, states, strict=True) if s != "done"]
            jobs.submit_limited("session-a", pending, store)  # what the matrix poll does
            time.sleep(0.3)
        assert states.count("done") == len(matrix) and b_done_while_a_busy
    finally:
        workers.stop()


def test_an_opened_head_is_served_before_queued_matrix_cells(isolated_cache):
    """24 matrix cells queued before anyone opens a head: the opened head still goes first."""
    store = open_store(isolated_cache)
    cells = [local_queue.submit(HeadRequest(layer=layer, head=head, method="pca").to_dict(), store,
                                urgent=False) for layer in range(2) for head in range(12)]
    opened = local_queue.submit(HeadRequest(layer=4, head=3, method="pca").to_dict(), store)
    workers = LocalWorker(isolated_cache, count=1)
    workers.start()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            records = [local_queue.job_status(i, store) for i in [opened, *cells]]
            assert not [r for r in records if r["state"] == "error"], records
            if all(r["state"] == "done" for r in records):
                break
            time.sleep(0.3)
        finished = [r["updated"] for r in records]
        assert all(r["state"] == "done" for r in records)
        assert finished[0] < min(finished[1:])  # one worker, and the opened head finished first
    finally:
        workers.stop()


def test_matrix_jobs_left_by_an_earlier_run_are_dropped_at_start_and_an_open_matrix_resubmits(isolated_cache):
    from dashboard import jobs
    from dashboard.app import create_app

    store = open_store(isolated_cache)
    stale = [local_queue.submit(HeadRequest(layer=3, head=head, method="umap", preview=True).to_dict(), store,
                                urgent=False) for head in range(12)]
    opened = local_queue.submit(HeadRequest(layer=1, head=1).to_dict(), store)
    app = create_app(cache_dir=isolated_cache)  # a new server run
    try:
        assert all(local_queue.job_status(j, store)["state"] == "dropped" for j in stale)
        record = wait_until_done(opened, store)
        assert record["state"] == "done"  # what someone opened is kept and served
        submitted, _held = jobs.submit_limited("tab", [HeadRequest(layer=3, head=0, method="umap",
                                                                   preview=True).to_dict()], store, urgent=False)
        assert local_queue.job_status(submitted[0], store)["state"] in ("queued", "running", "done")  # again
    finally:
        app.local_worker.stop()


def wait_until_done(job_id: str, store, timeout: float = 300) -> dict:
    """Poll a local job until it is done or failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = local_queue.job_status(job_id, store)
        if record["state"] in ("done", "error"):
            return record
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} not done in {timeout} s")


def test_the_first_local_worker_loads_the_bundled_model_before_the_first_request(isolated_cache, monkeypatch):
    """Model loading overlaps with the page loading: the first worker loads MiniLM as it starts (its heartbeat
    says so), then idles and serves jobs; a preload that fails is only said, and jobs are served all the same."""
    from tests.support.browser import wait_until

    monkeypatch.setenv("QK_ATLAS_PRELOAD_MODEL", "minilm")
    workers = LocalWorker(isolated_cache, count=1)
    workers.start()
    try:
        store = open_store(isolated_cache)
        seen = set()
        wait_until(lambda: seen.update(b.get("activity") for b in local_queue._beats(store)) or
                   ("loading minilm" in seen and "idle" in seen), 120, interval=0.05, what="the model preloaded")
        job_id = local_queue.submit(HeadRequest(layer=0, head=1, method="pca").to_dict(), store)
        wait_until(lambda: local_queue.job_status(job_id, store)["state"] == "done", 120, what="the job done")
    finally:
        workers.stop()
    monkeypatch.setenv("QK_ATLAS_PRELOAD_MODEL", "no-such-model")
    workers = LocalWorker(isolated_cache, count=1)
    workers.start()
    try:
        job_id = local_queue.submit(HeadRequest(layer=0, head=2, method="pca").to_dict(), store)
        wait_until(lambda: local_queue.job_status(job_id, store)["state"] == "done", 120, what="served all the same")
    finally:
        workers.stop()
