"""The dashboard's one door to computation: submit a job (a picture, its fidelity, a head's attention within each
text, a model's summaries or head map), poll it, read finished results; the web process never computes them.

Embedded default: a local worker process (workers.runtime.local_queue) fed through a diskcache queue,
started and supervised here. Nothing in this module imports torch.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from dashboard.figures.single import HeadData, screen_coords
from workers.contracts.requests import HeadRequest, ViewKeys, job_request, stage_of
from workers.contracts.results import TextAttention
from workers.core import metrics
from workers.core.tokens import with_readable
from workers.pipeline.keys import attention_keys, head_template, resolve, stage_done
from workers.runtime import local_queue
from workers.store import Store

POLL_SECONDS = 0.1
TIMEOUT_SECONDS = 900.0


class LocalWorker:
    """Starts `python -m workers.runtime.local_queue` processes (one per slot), restarts any that dies, stops them
    at exit."""

    def __init__(self, cache_dir: Path, count: int = 1):
        self.cache_dir = cache_dir
        self.processes: dict[int, subprocess.Popen] = {}
        self.count = count
        self._stop = threading.Event()

    def start(self) -> None:
        """Spawn the workers and a supervising thread."""
        for slot in range(self.count):
            self._spawn(slot)
        threading.Thread(target=self._supervise, daemon=True, name="local-worker-supervisor").start()
        atexit.register(self.stop)

    def _spawn(self, slot: int) -> None:
        """Start the worker of one slot, owned by this process."""
        command = [sys.executable, "-m", "workers.runtime.local_queue", str(self.cache_dir), str(os.getpid()),
                   str(slot)]
        self.processes[slot] = subprocess.Popen(command)

    def _supervise(self) -> None:
        """Restart any worker that exits."""
        while not self._stop.wait(2.0):
            for slot, process in list(self.processes.items()):
                if process.poll() is not None and not self._stop.is_set():
                    self._spawn(slot)

    def stop(self) -> None:
        """Terminate the workers."""
        self._stop.set()
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()


def start_local_workers(cache_dir: str | Path) -> LocalWorker | None:
    """Start the embedded mode's worker processes over a cache directory (None in team mode), after dropping the
    matrix jobs an earlier run left queued."""
    from workers.config import settings

    if team_mode():
        return None
    dropped = local_queue.drop_bulk_jobs(store_for(str(cache_dir)))
    if dropped:
        logging.getLogger(__name__).info("dropped %d matrix jobs left queued by an earlier run", dropped)
    workers = LocalWorker(Path(cache_dir), settings().local_workers)
    workers.start()
    return workers


_CACHE_DIR: list[str] = []


def team_mode() -> bool:
    """Whether QK_ATLAS_REDIS_URL is set (Celery workers over Redis) rather than embedded."""
    from workers.config import settings

    return settings().redis_url is not None


def backend():
    """The job API in use: workers.runtime.team_jobs (team mode) or workers.runtime.local_queue (embedded)."""
    if team_mode():
        from workers.runtime import team_jobs

        return team_jobs
    return local_queue


def backend_problem() -> str | None:
    """A one-line message when the job backend cannot be reached (team mode: Redis), else None.

    The URL shown has no password; stored views keep showing, new work waits until the backend is back.
    """
    if not team_mode():
        return None
    import redis

    from workers.runtime.celery_app import redis_url
    from workers.runtime.team_jobs import redis_client

    try:
        redis_client().ping()
        return None
    except redis.RedisError as exc:
        where = _without_password(redis_url())
        return (f"Redis at {where} is unreachable ({type(exc).__name__}). Views already computed still show; "
                "new work starts when Redis is back (this page retries by itself).")


def _without_password(url: str) -> str:
    """scheme://host:port/db of a Redis URL (user and password left out)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"


def set_cache_dir(directory: str | Path) -> None:
    """Remember the app's cache directory (set once by create_app)."""
    _CACHE_DIR[:] = [str(directory)]


def cache_dir() -> str:
    """The app's cache directory."""
    if not _CACHE_DIR:
        from workers.config import settings

        set_cache_dir(settings().cache_dir)
    return _CACHE_DIR[0]


@lru_cache(maxsize=4)
def store_for(directory: str) -> Store:
    """One Store per cache directory per process."""
    return Store(directory)


def store() -> Store:
    """The app's store."""
    return store_for(cache_dir())


def cached_keys(request: HeadRequest, store: Store) -> dict[str, str] | None:
    """Keys of a finished view, or None when it still has to be computed."""
    keys = resolve(request)
    return keys.__dict__ if keys.complete(store) else None


def intact_keys(request: HeadRequest, store: Store) -> dict[str, str] | None:
    """Keys of a stored view whose parts pass their checksums; None when any part is missing or was damaged
    (removed). The parts its picture is drawn from are read through this process's cache of stored arrays (checked
    as they are read), which its drawing reads next: a picture opened again is not read and checked again."""
    keys = resolve(request)
    if not keys.complete(store):
        return None
    try:
        for key in drawn_parts(keys, request.vectors):
            _arrays(key)
    except KeyError:  # damaged, and removed: the view is computed again
        return None
    return keys.__dict__


def drawn_parts(keys: ViewKeys, vectors: str) -> tuple[str, ...]:
    """The stored arrays a view's picture is drawn from: its tokens table and coordinates, and its head's q and k
    (or, for the value vectors' picture, v)."""
    return tuple(key for key in (keys.tokens, keys.coords, *((keys.v,) if vectors == "v" else (keys.q, keys.k))) if key)


def submit_limited(client: str | None, requests: list[dict[str, Any]], store: Store, urgent: bool = True
                   ) -> tuple[list[str], int]:
    """Submit requests for one browser session, at most QK_ATLAS_MAX_JOBS_PER_USER unfinished at once;
    (job ids submitted, how many were held back). A fairness limit: one user's matrix cannot fill the queue.
    urgent=False for bulk work (matrix cells): the workers serve opened heads first."""
    refuse_unoffered(requests)
    if not client:
        return [backend().submit(r, store, urgent=urgent) for r in requests], 0
    limit, key = job_limit(), f"client:{client[:64]}"
    mine = (store.get_json(key) or {}).get("jobs", [])
    active = [j for j in mine if backend().job_status(j, store)["state"] in ("queued", "running")]
    submitted, held = [], 0
    for request in requests:
        job_id = local_queue.job_id_for(request)
        if job_id not in active and len(active) >= limit:
            held += 1
            continue
        submitted.append(backend().submit(request, store, urgent=urgent))
        if job_id not in active:
            active.append(job_id)
    store.put_json(key, {"jobs": active})
    return submitted, held


def refuse_unoffered(requests: list[dict[str, Any]]) -> None:
    """ValueError unless every request names a registry model and an offered corpus, by the URL's rules (checked
    once per distinct picture setting: a matrix's requests differ only by layer and head)."""
    from dashboard.state import request_problem

    for request in requests:
        stage_of(request)
    settings_ = {tuple(sorted({**r, "layer": 0, "head": 0}.items(), key=str)) for r in requests}
    for fields in settings_:
        problem = request_problem(dict(fields))
        if problem is not None:
            raise ValueError(f"refused request: {problem}")


def space_problem(store: Store) -> str | None:
    """One line when the store's disk has too little room for new work (QK_ATLAS_MIN_FREE_MB), else None."""
    from workers.config import settings

    return store.space_problem(settings().min_free_bytes)


def job_limit() -> int:
    """Unfinished jobs allowed per browser session."""
    from workers.config import settings

    return settings().max_jobs_per_user


def follow(request: HeadRequest, store: Store, client: str | None = None, submit: bool = False) -> dict[str, Any]:
    """One look at a view: {"state": "done", "keys"}, {"state": "error", "error"} or {"state": "waiting",
    "progress" 0..1, "message"}. A stored view is checked (checksums) first; a job that is neither queued nor
    running is submitted (submit=True: always, unless stored), within the session's job limit."""
    keys = intact_keys(request, store)
    if keys is not None:
        return {"state": "done", "keys": keys}
    problem = space_problem(store)  # the worker may not even be able to record its error
    if problem is not None:
        return {"state": "error", "error": problem}
    status = _job_look(request.to_dict(), store, client, submit)
    if status["state"] in ("waiting", "error"):
        return status
    if status["state"] == "done":  # finished since the first look
        keys = intact_keys(request, store)
        return {"state": "done", "keys": keys} if keys is not None else _waiting(0.99, "storing the result")
    return _waiting(status["progress"], status["message"])


def measure(request: HeadRequest, stage: str, store: Store, client: str | None, urgent: bool = True
            ) -> dict[str, Any]:
    """One look at a stage's result (workers.pipeline.stages): {"state": "done"} once stored; else its job is
    submitted unless queued or running, and the look is {"state": "waiting", "progress", "message"} or
    {"state": "error", "error"}."""
    job = job_request(request, stage)
    if stage_done(job, store):
        return {"state": "done"}
    status = _job_look(job, store, client, submit=False, urgent=urgent)
    if status["state"] in ("waiting", "error"):
        return status
    return _waiting(status["progress"], status["message"])


def lines_look(request: HeadRequest, store: Store, client: str | None) -> dict[str, Any]:
    """One look at what a head's selected-text lines and position mean are drawn from (stage "attention": one job
    per head, whatever the picture): {"state": "done"}, {"state": "waiting", "message"} or {"state": "error",
    "error"}; submitted (urgent) unless stored, queued or running."""
    seen = measure(head_template(request), "attention", store, client)
    return {"state": "waiting", "message": seen["message"]} if seen["state"] == "waiting" else seen


def _job_look(job: dict[str, Any], store: Store, client: str | None, submit: bool, urgent: bool = True
              ) -> dict[str, Any]:
    """The job's record, submitting it first (within the session's job limit) when it is neither queued, running
    nor failed (submit=True: always); or a look {"state": "waiting" | "error", ...} when it cannot be followed
    (held back by the job limit, refused, the backend unreachable) or failed."""
    try:
        status = None if submit else backend().job_status(local_queue.job_id_for(job), store)
        if status is None or status["state"] not in ("queued", "running", "error"):
            submitted = submit_limited(client, [job], store, urgent=urgent)[0]
            if not submitted:
                return _waiting(0.0, f"waiting: this session already has {job_limit()} unfinished jobs "
                                     "(QK_ATLAS_MAX_JOBS_PER_USER); this one starts as they finish")
            status = backend().job_status(submitted[0], store)
    except ValueError as exc:  # a request the server does not offer
        return {"state": "error", "error": str(exc)}
    except Exception:  # the backend went away: wait for it (a worker may still store the result)
        problem = backend_problem()
        if problem is None:
            raise
        return _waiting(0.0, problem)
    if status["state"] == "error":
        return {"state": "error", "error": str(status["error"])}
    return status


def _waiting(progress: float, message: str) -> dict[str, Any]:
    """A look at a view that is not finished."""
    return {"state": "waiting", "progress": float(progress), "message": message}


def run_request(request: HeadRequest, store: Store, progress: Any = None, client: str | None = None
                ) -> dict[str, str]:
    """Keys of the finished view, submitting it and reporting (fraction, message) until done (the command line's
    and the tests' blocking form of `follow`)."""
    deadline, submit = time.monotonic() + TIMEOUT_SECONDS, True
    while time.monotonic() < deadline:
        seen = follow(request, store, client, submit)
        if seen["state"] == "done":
            return seen["keys"]
        if seen["state"] == "error":
            raise RuntimeError(seen["error"])
        if progress is not None:
            progress(seen["progress"], seen["message"])
        submit = False
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"no result after {TIMEOUT_SECONDS:.0f} s; is the worker running?")


@lru_cache(maxsize=32)
def tokens_table(key: str) -> dict[str, np.ndarray]:
    """Tokens table by key with each token's readable label and piece (workers.core.tokens; immutable content, so
    cached in process)."""
    return with_readable(_arrays(key))


@lru_cache(maxsize=32)
def _arrays(key: str) -> dict[str, np.ndarray]:
    """Stored arrays by key (content-addressed, so safe to cache)."""
    arrays = store().get_arrays(key)
    if arrays is None:
        raise KeyError(f"{key} missing from the store")
    return arrays


@lru_cache(maxsize=16)
def stored_vector(key: str) -> np.ndarray:
    """One head's stored q or k, float32 [token, d_head] (stored as float16)."""
    return _arrays(key)["v"].astype(np.float32)


def stored_coords(key: str) -> np.ndarray:
    """A stored picture's coordinates [points, dims] (cached like every content-addressed array)."""
    return _arrays(key)["coords"]


@lru_cache(maxsize=16)
def drawn_coords(key: str) -> np.ndarray:
    """A stored picture's coordinates on the screen scale they are drawn at (dashboard.figures.single.screen_coords,
    read-only): computed once per picture, not on every drawing and overlay."""
    coords = screen_coords(stored_coords(key))
    coords.flags.writeable = False
    return coords


def head_data(keys: dict[str, str], causal: bool, attention: TextAttention | None = None) -> HeadData:
    """Everything the single view draws for one head, its coordinates on the screen scale (its lines from
    `attention`, when stored)."""
    return HeadData(coords=drawn_coords(keys["coords"]), tokens=tokens_table(keys["tokens"]),
                    q=stored_vector(keys["q"]), k=stored_vector(keys["k"]), causal=causal, attention=attention)


def stored_attention(keys: dict[str, str], causal: bool) -> TextAttention | None:
    """A head's stored attention within every text and its value norms (workers.contracts.results.TextAttention),
    or None when it is not stored; `keys` the head's view keys."""
    arrays = _stored_or_none(attention_keys(ViewKeys(**keys), causal)[0])
    return None if arrays is None else TextAttention.from_arrays(arrays)


def stored_position_mean(keys: dict[str, str], causal: bool) -> dict[str, np.ndarray] | None:
    """A head's stored mean attention by position, mean and count [P, P], or None when it is not stored."""
    return _stored_or_none(attention_keys(ViewKeys(**keys), causal)[1])


def _stored_or_none(key: str) -> dict[str, np.ndarray] | None:
    """Stored arrays by key (cached like _arrays), or None when absent or damaged."""
    try:
        return _arrays(key) if store().has(key) else None
    except KeyError:  # damaged since: removed, to be computed again
        return None


def lines_of(computed: dict[str, Any]) -> TextAttention | None:
    """The stored attention a computed picture's lines are drawn from, once its look says it is stored."""
    if computed.get("lines", {}).get("state") != "done":
        return None
    return stored_attention(computed["keys"], computed["causal"])


def hovered_sentence(tokens_key: str, index: int) -> tuple[list[str], str, int] | None:
    """The pieces of the text that holds token `index` (joined, they read as the text), the token's label, and
    its position in the text."""
    tokens = tokens_table(tokens_key)
    if not 0 <= index < len(tokens["token"]):
        return None
    rows = metrics.text_rows(tokens["text_id"], tokens["text_id"][index])
    return [str(p) for p in tokens["piece"][rows]], str(tokens["label"][index]), int(tokens["position"][index])
