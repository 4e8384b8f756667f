"""Team mode: Celery workers over a real Redis share one store; shared requests run once; lost workers and
Redis outages are recovered."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import redis

from tests.support.browser import wait_until
from tests.support.team import (
    Team,
    children_of,
    fitting,
    kill_tree,
    maps_numba,
    persistent_redis,
    pings,
    umap_running,
    wait_for_jobs,
)
from workers.contracts.requests import HeadRequest
from workers.pipeline.keys import resolve
from workers.store import open_store


def test_full_matrix_on_two_workers(team):
    from workers.runtime import team_jobs

    team.start("w1")
    team.start("w2")
    store = open_store()
    requests = [HeadRequest(layer=layer, head=head, method="pca").to_dict() for layer in range(6) for head in range(12)]
    job_ids = [team_jobs.submit(request, store) for request in requests]
    assert len(set(job_ids)) == 72
    statuses = wait_for_jobs(job_ids, timeout=600)
    for request, job_id in zip(requests, job_ids, strict=True):
        keys = resolve(HeadRequest.from_dict(request))
        assert statuses[job_id]["keys"]["coords"] == keys.coords and store.has(keys.coords)
        assert team_jobs.computations(job_id) == 1
    workers = {status["worker"] for status in statuses.values()}
    assert {w.split("@")[0] for w in workers} == {"w1", "w2"}, workers  # both took part


def test_same_request_twice_is_one_computation(team):
    from workers.runtime import team_jobs

    team.start("w1")
    store = open_store()
    request = HeadRequest(layer=1, head=1, method="pca", dims=3).to_dict()
    first, second = team_jobs.submit(request, store), team_jobs.submit(request, store)
    assert first == second
    wait_for_jobs([first], timeout=300)
    assert team_jobs.submit(request, store) == first  # asking again after it finished computes nothing
    time.sleep(1.0)
    assert team_jobs.computations(first) == 1


def test_measures_are_jobs_the_workers_compute_and_store(team):
    """A picture's fidelity, every head's summary, the head map and a head's attention within each text are job
    stages: a Celery worker computes and stores them (the web process only reads them); the stored fidelity is the
    picture's, and a text's stored attention the head's, computed here again."""
    import numpy as np

    from workers.contracts.requests import job_request
    from workers.core.attention import text_attention
    from workers.core.fidelity import picture_fidelity, sink_keys
    from workers.pipeline.keys import (
        corpus_template,
        fidelity_key,
        head_map_key,
        head_template,
        stage_done,
        summary_key,
    )
    from workers.pipeline.stages import ensure_text_attention, head_vectors
    from workers.runtime import team_jobs

    team.start("w1")
    store = open_store()
    request = HeadRequest(layer=1, head=2, method="pca")
    stages = [job_request(request, "fidelity"), job_request(corpus_template(request), "summaries"),
              job_request(corpus_template(request), "headmap"), job_request(head_template(request), "attention")]
    assert not any(stage_done(job, store) for job in stages)
    ids = [team_jobs.submit(job, store) for job in stages]
    assert len(set(ids)) == 4  # one job per stage
    wait_for_jobs(ids, timeout=600)
    assert [stage_done(job, store) for job in stages] == [True, True, True, True]
    keys = resolve(request)
    q, k = head_vectors(store, keys)
    tokens = store.get_arrays(keys.tokens)
    direct = picture_fidelity(q, k, store.get_arrays(keys.coords)["coords"], tokens["text_id"], False,
                              sinks=sink_keys(tokens["text_id"], tokens["is_special"], False))
    assert store.get_json(fidelity_key(keys))["picture"] == direct.to_dict()
    assert 0 <= store.get_json(summary_key(keys))["prev_token"] <= 1
    assert len(store.get_json(head_map_key(keys))["cells"]) == 72
    rows = tokens["text_id"] == 5
    np.testing.assert_allclose(ensure_text_attention(request, store).of(5),
                               text_attention(q[None, rows], k[None, rows])[0], atol=5e-4)


def test_an_opened_head_is_served_before_queued_matrix_cells(team):
    """Matrix cells go at bulk priority: a head someone opens is taken first (Redis message priority)."""
    from workers.runtime import team_jobs

    team.start("w1")
    store = open_store()
    first = team_jobs.submit(HeadRequest(layer=0, head=0, method="pca").to_dict(), store)
    wait_for_jobs([first], timeout=300)  # extraction
    team.stop()
    cells = [team_jobs.submit(HeadRequest(layer=1, head=head, method="pca").to_dict(), store, urgent=False)
             for head in range(12)]
    opened = team_jobs.submit(HeadRequest(layer=4, head=3, method="pca").to_dict(), store)
    team.start("w1")
    wait_for_jobs([opened, *cells], timeout=300)
    finished = {job_id: team_jobs._celery().AsyncResult(job_id).date_done for job_id in [opened, *cells]}
    assert finished[opened] < min(finished[cell] for cell in cells)


def test_worker_killed_mid_job_is_redelivered_and_nothing_partial_is_served(team):
    from dashboard.jobs import cached_keys
    from workers.runtime import team_jobs

    team.start("w1")
    team.start("w2")
    store = open_store()
    request = HeadRequest(layer=2, head=5, method="fitted")  # the fitted picture: about 10 s in the task
    job_id = team_jobs.submit(request.to_dict(), store)
    running = wait_until(lambda: fitting(team_jobs.job_status(job_id)), 300, what="the fitted picture started")
    assert cached_keys(request, store) is None and not store.has(resolve(request).coords)
    os.kill(running["pid"], signal.SIGKILL)  # the worker process computing the head dies
    statuses = wait_for_jobs([job_id], timeout=600)
    assert team_jobs.computations(job_id) == 2  # redelivered once, then completed
    coords = store.get_arrays(statuses[job_id]["keys"]["coords"])["coords"]
    assert coords.shape == (2 * len(store.get_arrays(resolve(request).tokens)["token"]), 2)


def test_redis_restart_mid_job_and_the_job_still_completes(tmp_path, monkeypatch):
    """Redis stops while a worker is inside UMAP and comes back (append-only file, as in compose): the job
    completes, its result is served, and the dashboard's poller waited instead of failing."""
    import threading

    from dashboard import jobs
    from workers.runtime import team_jobs

    command, server, url, port = persistent_redis(tmp_path, monkeypatch)
    team = Team(url, tmp_path / "shared", tmp_path)
    try:
        team.start("w1")
        store = open_store()
        jobs.set_cache_dir(tmp_path / "shared")
        request = HeadRequest(layer=0, head=7, method="umap")
        outcome: dict = {}
        poller = threading.Thread(target=lambda: outcome.update(keys=jobs.run_request(request, store)), daemon=True)
        poller.start()
        job_id = team_jobs.job_id_for(request.to_dict())
        wait_until(lambda: umap_running(team_jobs.job_status(job_id)), 300, what="UMAP started")
        server.terminate()
        server.wait(10)
        time.sleep(3)
        assert "unreachable" in jobs.backend_problem()
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_until(lambda: pings(redis.Redis(port=port)), 10, what="redis back")
        poller.join(timeout=600)
        assert outcome.get("keys") == resolve(request).__dict__
        assert resolve(request).intact(store)
    finally:
        team.stop()
        server.terminate()
        server.wait(10)


def test_a_whole_worker_lost_mid_job_is_sent_again_within_seconds_and_says_so(team):
    """Not a child process but the whole worker: its message stays unacknowledged in Redis for the visibility
    timeout (900 s); the lost heartbeat gets the job to the other worker within seconds instead."""
    from workers.runtime import team_jobs

    team.start("w1")
    team.start("w2")
    store = open_store()
    request = HeadRequest(layer=4, head=2, method="fitted")  # the fitted picture: about 10 s in the task
    job_id = team_jobs.submit(request.to_dict(), store)
    running = wait_until(lambda: fitting(team_jobs.job_status(job_id)), 300, what="the fitted picture started")
    lost, survivor = running["worker"].split("@")[0], ({"w1", "w2"} - {running["worker"].split("@")[0]}).pop()
    kill_tree(team.workers[lost].pid)
    killed = time.monotonic()
    waiting = wait_until(lambda: "stopped responding" in (s := team_jobs.job_status(job_id, store))["message"] and s,
                         45, interval=0.5, what="the job marked as waiting for a worker")
    assert waiting["state"] == "queued" and lost in waiting["message"]  # said in words, not stale progress
    wait_until(lambda: team_jobs.job_status(job_id, store).get("worker", "").startswith(survivor), 45,
               interval=0.5, what="the other worker running it")
    assert time.monotonic() - killed < 60
    statuses = wait_for_jobs([job_id], timeout=600)
    assert statuses[job_id]["worker"].startswith(survivor) and resolve(request).intact(store)


def test_compute_workers_compile_umap_in_their_pool_process(team):
    """QK_ATLAS_WARM_UMAP=1, as compose sets it: the worker's pool process compiles UMAP (loads numba's compiler)
    off the task path, so the first UMAP job does not pay for it."""
    team.env["QK_ATLAS_WARM_UMAP"] = "1"
    team.start("w1")
    compute_pool = wait_until(lambda: children_of(team.workers["w1"].pid), 30, what="compute pool process")
    wait_until(lambda: any(maps_numba(pid) for pid in compute_pool), 120, what="the compute worker compiling UMAP")
