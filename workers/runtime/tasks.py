"""Celery tasks: thin wrappers that parse the request, call the pipeline, store, and return keys."""

from __future__ import annotations

import os
import socket

from workers.contracts.requests import HeadRequest
from workers.pipeline.keys import resolve
from workers.pipeline.stages import ensure_extraction, job_keys, run_stage
from workers.runtime import team_jobs
from workers.runtime.celery_app import app
from workers.store import open_store


@app.task(name="qk.extract", bind=True)
def extract(self, request: dict, job_id: str) -> dict:
    """Run the model over the corpus once (locked per corpus and model) unless it is stored."""
    head_request = HeadRequest.from_dict(request)
    keys = resolve(head_request)
    with team_jobs.alive(job_id), team_jobs.extraction_lock(keys.tokens):
        ensure_extraction(head_request, open_store(), team_jobs.reporter(self, job_id), keys)
    return {"keys": keys.__dict__}


@app.task(name="qk.head", bind=True)
def head(self, request: dict) -> dict:
    """Compute (or find) what the job names (a head's picture by default: workers.pipeline.stages.run_stage); the
    task id is the job id (a content hash)."""
    team_jobs.count_computation(self.request.id)
    (head_request, keys), store = job_keys(request), open_store()  # the job's keys, resolved once
    report = team_jobs.reporter(self, self.request.id)
    with team_jobs.alive(self.request.id):
        with team_jobs.extraction_lock(keys.tokens):  # one worker extracts a corpus; the others wait, then reuse it
            ensure_extraction(head_request, store, report, keys)
        result = run_stage(request, store, report, keys)
    return {**result, "worker": self.request.hostname, "pid": os.getpid(), "host": socket.gethostname()}
