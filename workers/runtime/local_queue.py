"""Embedded background work: a job queue in diskcache and one long-lived local worker process.

The worker keeps the model and numba-compiled UMAP warm across requests; the dashboard only enqueues
requests and reads job records, so it never imports torch. Job ids are content hashes of the request,
so two users asking for the same head share one computation.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import socket
import sqlite3
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import diskcache

from workers.store import Store, StoreError, content_key

HEARTBEAT_KEY = "worker:heartbeat"
CURRENT_KEY = "worker:current"  # the job a worker slot is running
PRELOADING_KEY = "worker:preloading"  # the model a worker is loading before any job asks for it
MAX_SLOTS = 16
STALE_SECONDS = 10.0
WARM_AFTER_IDLE_SECONDS = 8.0
WARM_STAGGER_SECONDS = 40.0


def job_id_for(request: dict[str, Any]) -> str:
    """Stable id of a job (workers.contracts.requests.job_request): the same head and stage asked twice is one
    job."""
    return content_key("job", {"job": request})


def _queue(cache_dir: Path, urgent: bool = False) -> diskcache.Deque:
    """A shared FIFO of pending requests: the urgent one (a head someone opened) is served before the bulk one
    (matrix cells), so an opened head never waits behind a whole matrix."""
    return diskcache.Deque(directory=str(Path(cache_dir) / ("queue-urgent" if urgent else "queue")))


def _beats(store: Store) -> list[dict[str, Any]]:
    """Recent heartbeats of the local workers (one per slot)."""
    beats = [store.get_json(f"{HEARTBEAT_KEY}:{slot}") for slot in range(MAX_SLOTS)]
    return [b for b in beats if b and time.time() - b["time"] < STALE_SECONDS]


def worker_alive(store: Store) -> bool:
    """Whether any local worker wrote its heartbeat recently."""
    return bool(_beats(store))


def submit(request: dict[str, Any], store: Store, urgent: bool = True) -> str:
    """Enqueue a request unless the same one is already queued or running; returns its job id.

    urgent: someone waits on this head (served first); False for bulk work such as matrix cells. An urgent
    request already waiting in the bulk queue is queued again as urgent (the later copy finds it stored).
    """
    job_id = job_id_for(request)
    record = store.get_json(f"job:{job_id}")
    item = {"job_id": job_id, "request": request, "urgent": urgent}
    if record and record["state"] in ("queued", "running") and worker_alive(store):
        if urgent and record["state"] == "queued" and not record.get("urgent"):
            store.put_json(f"job:{job_id}", {**record, "urgent": True})
            _queue(store.directory, urgent=True).append(item)
        return job_id
    store.put_json(f"job:{job_id}", {**_record("queued", 0.0, "waiting for the local worker"), "urgent": urgent})
    _queue(store.directory, urgent).append(item)
    return job_id


def drop_bulk_jobs(store: Store) -> int:
    """Empty the bulk queue (matrix cells of a previous server run: no page waits on them any more; an open
    matrix resubmits what it still lacks) and mark those jobs dropped; returns how many were dropped."""
    queue, dropped = _queue(store.directory), 0
    while True:
        try:
            item = queue.popleft()
        except IndexError:
            return dropped
        store.put_json(f"job:{item['job_id']}", _record("dropped", 0.0, "dropped when the server restarted"))
        dropped += 1


def job_status(job_id: str, store: Store) -> dict[str, Any]:
    """The job's record: state (queued|running|done|error), progress 0..1, message, error."""
    record = store.get_json(f"job:{job_id}") or _record("unknown", 0.0, "no such job")
    beats = _beats(store)
    if record["state"] in ("queued", "running") and not beats:
        record["message"] = "the local worker is not running (it restarts automatically; retrying)"
    elif record["state"] == "queued" and all(b.get("activity", "idle") != "idle" for b in beats):
        record["message"] = "queued: the workers are " + ", ".join(sorted({b["activity"] for b in beats}))
    return record


def _record(state: str, progress: float, message: str, error: str | None = None) -> dict[str, Any]:
    """A job record."""
    return {"state": state, "progress": progress, "message": message, "error": error, "updated": time.time()}


def _heartbeat(store: Store, stop: threading.Event, status: dict[str, str], slot: int,
               owner_pid: int | None = None) -> None:
    """Write this worker's heartbeat every second until stopped; end the process (even mid-job) once the server
    that started it is gone, so a worker never outlives its server (its job is re-queued by the next server's)."""
    while not stop.is_set():
        if not _owner_alive(owner_pid):
            os._exit(0)
        try:
            store.put_json(f"{HEARTBEAT_KEY}:{slot}", {"time": time.time(), "pid": os.getpid(), **status})
        except Exception:  # a full disk must not stop the heartbeat thread (the job reports the store error)
            traceback.print_exc()
        stop.wait(1.0)


def process_alive(pid: int) -> bool:
    """Whether a process of this machine is running (a zombie, killed but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (not Linux): the signal check is all there is


def _holder_gone(raw: Any) -> bool:
    """Whether a lock record names a process of this machine that no longer runs."""
    try:
        holder = json.loads(raw)
        return holder["host"] == socket.gethostname() and not process_alive(int(holder["pid"]))
    except (TypeError, ValueError, KeyError):
        return True  # not a record this code wrote


@contextlib.contextmanager
def lock_while_alive(store: Store, key: str, waiting: Any = None, poll_seconds: float = 0.2) -> Iterator[None]:
    """A lock in the store that dies with its holder: it records the holder's host and pid, and a waiter that
    finds the holder's process gone (killed mid-extraction) takes it over at once instead of waiting it out."""
    mine = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()})
    told = False
    while not store.cache.add(key, mine):
        with store.cache.transact():
            held = store.cache.get(key)
            if held is None or _holder_gone(held):
                store.cache.set(key, mine)
                break
        if waiting is not None and not told:
            waiting()
            told = True
        time.sleep(poll_seconds)
    try:
        yield
    finally:
        with store.cache.transact():
            if store.cache.get(key) == mine:
                store.cache.delete(key)


def run_job(item: dict[str, Any], store: Store) -> None:
    """Compute one queued request, recording progress, result keys or a one-line error."""
    from workers.pipeline.stages import ensure_extraction, job_keys, run_stage

    job_key = f"job:{item['job_id']}"

    def progress(fraction: float, message: str) -> None:
        store.put_json(job_key, _record("running", fraction, message))

    try:
        request, keys = job_keys(item["request"])  # resolved once, handed to the extraction and the stage
        # one worker extracts a corpus; the others wait on the lock, then find it stored
        with lock_while_alive(store, f"lock:{keys.tokens}", lambda: progress(0.0, "waiting for another worker's "
                                                                                  "extraction of this corpus")):
            if not store.has(keys.tokens):
                store.cache.incr("stats:extractions", default=0)
            ensure_extraction(request, store, progress, keys)
        result = run_stage(item["request"], store, progress, keys)
        store.put_json(job_key, {**_record("done", 1.0, "done"), **result, "worker": os.getpid()})
    except Exception as exc:  # the worker must survive any single bad request
        traceback.print_exc()
        try:
            store.put_json(job_key, _record("error", 1.0, "failed", f"{type(exc).__name__}: {exc}"))
        except STORE_ERRORS:  # a full disk: the dashboard sees the full disk itself (QK_ATLAS_MIN_FREE_MB)
            traceback.print_exc()


def run_queued(store: Store) -> int:
    """Run every queued job in this process, urgent ones first, as a worker slot would (tests, benchmarks);
    returns how many ran."""
    queues, ran = (_queue(store.directory, urgent=True), _queue(store.directory)), 0
    while (item := _next_item(queues)) is not None:
        run_job(item, store)
        ran += 1
    return ran


def _requeue_orphan(store: Store, slot: int) -> None:
    """Put back the job a dead predecessor of this slot was running (the supervisor restarts the slot)."""
    item = store.get_json(f"{CURRENT_KEY}:{slot}")
    if not item:
        return
    record = store.get_json(f"job:{item['job_id']}") or {}
    if record.get("state") in ("queued", "running"):
        store.put_json(f"job:{item['job_id']}", _record("queued", 0.0, "re-queued: its worker process died"))
        _queue(store.directory, item.get("urgent", True)).appendleft(item)
    store.delete(f"{CURRENT_KEY}:{slot}")


def _owner_alive(owner_pid: int | None) -> bool:
    """Whether the process that started this worker still exists."""
    return owner_pid is None or process_alive(owner_pid)


def run_worker(cache_dir: str | Path, owner_pid: int | None = None, warm_umap: bool = False, slot: int = 0) -> None:
    """Process queued jobs forever (one worker per slot and cache directory, held by a file lock)."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    lock = open(cache_dir / f"worker-{slot}.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another worker already serves this cache directory
    store, stop = Store(cache_dir), threading.Event()
    queues = (_queue(cache_dir, urgent=True), _queue(cache_dir))
    status = {"activity": "idle"}
    _unless_store_fails(lambda: _requeue_orphan(store, slot), status)
    threading.Thread(target=_heartbeat, args=(store, stop, status, slot, owner_pid), daemon=True).start()
    try:
        _serve_queue(store, queues, status, owner_pid, warm_umap, slot)
    finally:
        stop.set()


STORE_ERRORS = (StoreError, OSError, sqlite3.Error, diskcache.Timeout)  # what a full or failing disk raises
STORE_RETRY_SECONDS = 5.0


def _unless_store_fails(step: Any, status: dict[str, str]) -> Any:
    """Run one bookkeeping step; when the store cannot be written (a full disk), say so in the heartbeat, wait,
    and go on (None), instead of ending the process and being restarted every few seconds."""
    try:
        result = step()
    except STORE_ERRORS as exc:
        status["activity"] = f"waiting: the result store cannot be written ({type(exc).__name__})"
        print(f"qk-atlas worker: the result store cannot be written: {exc}", file=sys.stderr, flush=True)
        time.sleep(STORE_RETRY_SECONDS)
        return None
    if status["activity"].startswith("waiting: the result store"):
        status["activity"] = "idle"
    return result


def _next_item(queues: tuple[diskcache.Deque, ...], leave_model: str | None = None) -> dict[str, Any] | None:
    """The first job of the first non-empty queue (urgent before bulk), or None; a job for `leave_model` is put
    back for the worker that is loading that model."""
    for queue in queues:
        try:
            item = queue.popleft()
        except IndexError:
            continue
        if leave_model is not None and item.get("request", {}).get("model") == leave_model:
            queue.appendleft(item)
            continue
        return item
    return None


def model_being_preloaded(store: Store) -> str | None:
    """The model another live worker process is preloading (its jobs wait for that worker), or None."""
    marker = store.get_json(PRELOADING_KEY)
    if not marker or marker.get("pid") == os.getpid() or not process_alive(int(marker.get("pid", 0))):
        return None
    return str(marker.get("model"))


def _serve_queue(store: Store, queues: tuple[diskcache.Deque, ...], status: dict[str, str], owner_pid: int | None,
                 warm_umap: bool, slot: int = 0) -> None:
    """Pop and run jobs, urgent ones first; compile UMAP once idle for a while, so no request pays for it. The
    first worker loads the preloaded model first (QK_ATLAS_PRELOAD_MODEL), while the browser loads the page."""
    if slot == 0:
        _preload(store, status)
    idle_since = time.monotonic()
    while _owner_alive(owner_pid):
        item = _unless_store_fails(lambda: _next_item(queues, model_being_preloaded(store)), status)
        if item is None:
            # staggered by slot, so one worker stays free while another compiles
            if warm_umap and time.monotonic() - idle_since > WARM_AFTER_IDLE_SECONDS + WARM_STAGGER_SECONDS * slot:
                status["activity"] = "compiling UMAP (once per worker process)"
                from workers.core.project import warm_up_umap

                warm_up_umap()
                warm_umap, status["activity"] = False, "idle"
            time.sleep(0.05)
            continue
        status["activity"] = "busy"
        # if this process dies, its successor re-queues the job
        _unless_store_fails(functools.partial(store.put_json, f"{CURRENT_KEY}:{slot}", item), status)
        run_job(item, store)
        _unless_store_fails(lambda: store.delete(f"{CURRENT_KEY}:{slot}"), status)
        status["activity"] = "idle"
        idle_since = time.monotonic()


def _preload(store: Store, status: dict[str, str]) -> None:
    """Load the model most first views need (QK_ATLAS_PRELOAD_MODEL: the bundled one unless set; empty: none)
    and import what the first picture needs, so the first request does not wait for them; meanwhile the other
    workers leave that model's jobs to this one (each would load the model again); a failure is only said."""
    from workers.contracts.specs import BUNDLED_ALIAS

    ref = os.environ.get("QK_ATLAS_PRELOAD_MODEL", BUNDLED_ALIAS).strip()
    if not ref:
        return
    status["activity"] = f"loading {ref}"
    _unless_store_fails(lambda: store.put_json(PRELOADING_KEY, {"model": ref, "pid": os.getpid()}), status)
    try:
        from workers.pipeline.stages import loaded_model

        loaded_model(ref)
        import workers.core.fitted  # noqa: F401  (scipy's optimiser: the default picture)
    except Exception as exc:  # a broken or unknown model: the jobs that ask for it say why
        print(f"qk-atlas worker: could not preload {ref}: {exc}", file=sys.stderr, flush=True)
    finally:
        _unless_store_fails(lambda: store.delete(PRELOADING_KEY), status)
    status["activity"] = "idle"


def main(argv: list[str] | None = None) -> None:
    """`python -m workers.runtime.local_queue CACHE_DIR [OWNER_PID [SLOT]]`; exits at once (status 2, one line) on a
    device setting this machine cannot run (checked with torch only when it could name a missing device)."""
    from workers.config import settings

    try:
        if settings().device_may_be_missing():
            from workers.models.devices import placement

            placement()
    except ValueError as exc:
        print(f"qk-atlas worker: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    args = sys.argv[1:] if argv is None else argv
    owner = int(args[1]) if len(args) > 1 else None
    slot = int(args[2]) if len(args) > 2 else 0
    run_worker(args[0], owner, warm_umap=os.environ.get("QK_ATLAS_WARM_UMAP", "1") != "0", slot=slot)


if __name__ == "__main__":
    main()
