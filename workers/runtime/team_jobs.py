"""The job API of the team deployment: submit a head, poll it, over Celery and Redis (same shape as local_queue).

A job's id is the content hash of its request and is also the Celery task id, so two users asking for the same
head share one computation: the first submission claims `qk:job:<id>` in Redis (SET NX), later ones just poll.
Results land in the shared store (QK_ATLAS_CACHE_DIR on a volume every process mounts); the tokens table is
written last and coordinates only when complete, so a killed job never leaves a partial result that is served.

A running task keeps a heartbeat (`qk:alive:<id>`, refreshed every ALIVE_REFRESH_SECONDS). When a whole worker is
lost, its message stays unacknowledged in Redis until the visibility timeout; instead of waiting that out, the first
poller that finds the heartbeat gone for LOST_AFTER_SECONDS sends the job again (once) and says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

import redis as redis_lib

from workers.runtime.local_queue import job_id_for
from workers.store import Store

JOB_TTL_SECONDS = 24 * 3600
LOCK_SECONDS = 60  # an extraction lock outlives a lost holder by at most this; a live holder extends it
ALIVE_SECONDS = 10  # a running task's heartbeat expires this long after its last refresh
ALIVE_REFRESH_SECONDS = 2
LOST_AFTER_SECONDS = 8  # heartbeat gone this long (as seen by pollers): the job is sent again


@lru_cache(maxsize=4)
def _redis(url: str) -> redis_lib.Redis:
    """One Redis client per URL per process."""
    return redis_lib.Redis.from_url(url)


def redis_client() -> redis_lib.Redis:
    """The Redis of QK_ATLAS_REDIS_URL."""
    from workers.runtime.celery_app import redis_url

    return _redis(redis_url())


@lru_cache(maxsize=4)
def _celery_for(url: str):
    """A Celery client for one Redis URL (the dashboard only sends tasks by name)."""
    from workers.runtime.celery_app import make_celery

    return make_celery(url)


def _celery():
    """The Celery client of QK_ATLAS_REDIS_URL."""
    from workers.runtime.celery_app import redis_url

    return _celery_for(redis_url())


@contextlib.contextmanager
def extraction_lock(tokens_key: str) -> Iterator[None]:
    """Hold the extraction lock of a model and corpus (named by the store key of its tokens table: other workers
    wait, then find the extraction stored); it expires LOCK_SECONDS after its holder stops extending it, so a lost
    worker never blocks the corpus for long."""
    lock = redis_client().lock(f"qk:lock:{tokens_key}", timeout=LOCK_SECONDS, blocking_timeout=None)
    with lock, _every(LOCK_SECONDS / 4, lambda: lock.reacquire()):
        yield


@contextlib.contextmanager
def _every(seconds: float, action: Callable[[], Any]) -> Iterator[None]:
    """Run `action` every `seconds` in a thread while the block runs (Redis errors ignored: best effort)."""
    import threading

    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(seconds):
            try:
                action()
            except Exception:  # a Redis outage or a lock already lost: the work itself goes on
                pass

    thread = threading.Thread(target=beat, daemon=True, name="qk-heartbeat")
    thread.start()
    try:
        yield
    finally:
        stop.set()


@contextlib.contextmanager
def alive(job_id: str) -> Iterator[None]:
    """Keep a heartbeat for a job while its task runs in this process."""
    client = redis_client()

    def beat() -> None:
        client.pipeline().set(f"qk:alive:{job_id}", os.getpid(), ex=ALIVE_SECONDS).delete(
            f"qk:missing:{job_id}", f"qk:resent:{job_id}").execute()

    try:
        beat()
    except redis_lib.RedisError:
        pass
    with _every(ALIVE_REFRESH_SECONDS, beat):
        yield


def reporter(task, job_id: str) -> Callable[[float, str], None]:
    """Progress sink that publishes (fraction, message) for pollers of job_id."""
    client = redis_client()

    def report(fraction: float, message: str) -> None:
        record = {"progress": fraction, "message": message, "worker": task.request.hostname, "pid": os.getpid(),
                  "time": time.time()}
        try:
            client.set(f"qk:progress:{job_id}", json.dumps(record), ex=JOB_TTL_SECONDS)
        except redis_lib.RedisError:  # progress is best effort: a Redis outage must not fail the computation
            pass

    return report


def count_computation(job_id: str) -> None:
    """Count executions of a job (tests check that shared requests run once)."""
    redis_client().incr(f"qk:computed:{job_id}")


def computations(job_id: str) -> int:
    """How many times a job started executing."""
    return int(redis_client().get(f"qk:computed:{job_id}") or 0)


def _extraction_done(request: dict[str, Any], store: Store) -> bool:
    """Whether the request's corpus is already extracted."""
    from workers.contracts.requests import HeadRequest
    from workers.pipeline.keys import resolve

    return resolve(HeadRequest.from_dict(request)).extracted(store)


URGENT_PRIORITY, BULK_PRIORITY = 0, 9  # Redis transport: 0 is served first


def submit(request: dict[str, Any], store: Store, urgent: bool = True) -> str:
    """Send the job unless an identical one is queued, running or done; returns its id.
    urgent: someone waits on this head (highest message priority); False for bulk work such as matrix cells."""
    job_id = job_id_for(request)
    client = redis_client()
    if not client.set(f"qk:job:{job_id}", time.time(), nx=True, ex=JOB_TTL_SECONDS):
        from workers.pipeline.keys import stage_done

        state = _celery().AsyncResult(job_id).state
        lost = state == "SUCCESS" and not stage_done(request, store)
        if state not in ("FAILURE", "REVOKED") and not lost:
            return job_id  # someone asked already: share the computation
        _celery().AsyncResult(job_id).forget()  # failed, or done but its result was damaged and removed
    client.delete(f"qk:progress:{job_id}")
    client.set(f"qk:request:{job_id}", json.dumps({"request": request, "urgent": urgent}), ex=JOB_TTL_SECONDS)
    _send(request, job_id, store, URGENT_PRIORITY if urgent else BULK_PRIORITY)
    return job_id


def _send(request: dict[str, Any], job_id: str, store: Store, priority: int) -> None:
    """Extraction first when needed (extraction queue), then the head (projection queue), at this priority."""
    from celery import chain

    app = _celery()
    head = app.signature("qk.head", args=(request,), task_id=job_id, immutable=True, priority=priority)
    if _extraction_done(request, store):
        head.apply_async(task_id=job_id, priority=priority)
        return
    extract = app.signature("qk.extract", args=(request, job_id), immutable=True, priority=priority)
    chain(extract, head).apply_async(priority=priority)


def job_status(job_id: str, store: Store | None = None) -> dict[str, Any]:
    """state (queued|running|done|error|unknown), progress 0..1, message, error, keys, worker."""
    result = _celery().AsyncResult(job_id)
    state = result.state
    if state == "SUCCESS":
        value = result.result
        return {"state": "done", "progress": 1.0, "message": "done", "error": None, **value}
    if state in ("FAILURE", "REVOKED"):
        return {"state": "error", "progress": 1.0, "message": "failed", "error": str(result.result)}
    progress = json.loads(redis_client().get(f"qk:progress:{job_id}") or "null")
    if progress:
        lost = _lost_for(job_id)
        if lost is not None:
            return _sent_again(job_id, store, lost, progress)
        return {"state": "running", "error": None, **progress}
    if state == "STARTED" or redis_client().exists(f"qk:job:{job_id}"):
        return {"state": "queued" if state == "PENDING" else "running", "progress": 0.0,
                "message": "waiting for a worker" if state == "PENDING" else "started", "error": None}
    return {"state": "unknown", "progress": 0.0, "message": "no such job", "error": None}


def _lost_for(job_id: str) -> float | None:
    """Seconds a started job's heartbeat has been seen missing, once that passes LOST_AFTER_SECONDS; else None."""
    client = redis_client()
    if client.exists(f"qk:alive:{job_id}"):
        return None
    now = time.time()
    client.set(f"qk:missing:{job_id}", now, nx=True, ex=JOB_TTL_SECONDS)
    missing = now - float(client.get(f"qk:missing:{job_id}") or now)
    return missing if missing >= LOST_AFTER_SECONDS else None


def _sent_again(job_id: str, store: Store | None, lost: float, progress: dict[str, Any]) -> dict[str, Any]:
    """Send a job whose worker was lost to the next free worker (one poller does it) and say so."""
    from workers.store import open_store

    client = redis_client()
    worker = progress.get("worker", "its worker")
    saved = json.loads(client.get(f"qk:request:{job_id}") or "null")
    if saved and client.set(f"qk:resent:{job_id}", time.time(), nx=True, ex=JOB_TTL_SECONDS // 24):
        client.delete(f"qk:progress:{job_id}", f"qk:missing:{job_id}")
        _celery().AsyncResult(job_id).forget()
        _send(saved["request"], job_id, store or open_store(),
              URGENT_PRIORITY if saved.get("urgent", True) else BULK_PRIORITY)
    return {"state": "queued", "progress": 0.0, "error": None,
            "message": f"waiting for a worker: {worker} stopped responding {lost:.0f} s ago, so the job was sent "
                       "again"}


def queue_lengths() -> dict[str, int]:
    """Pending messages per queue (for the status line)."""
    from workers.runtime.celery_app import EXTRACTION_QUEUE, PROJECTION_QUEUE

    client = redis_client()
    return {queue: int(client.llen(queue)) for queue in (EXTRACTION_QUEUE, PROJECTION_QUEUE)}

