"""The Celery application of the team deployment
(`celery -A workers.runtime.celery_app worker -Q extraction,projection`).

JSON only (no pickle), late acknowledgement and requeue when a worker process is lost, one task at a time per
process; the model is loaded once per worker process (workers.pipeline caches it) and UMAP is compiled once per
process in the background unless QK_ATLAS_WARM_UMAP=0.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from celery import Celery
from celery.signals import celeryd_init, worker_process_init

from workers.config import settings

EXTRACTION_QUEUE = "extraction"
PROJECTION_QUEUE = "projection"


def make_celery(url: str) -> Celery:
    """A Celery app on Redis `url` configured for safe, deduplicated, JSON-only work."""
    app = Celery("qk_atlas", broker=url, backend=url, include=["workers.runtime.tasks"])
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"],
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_track_started=True, result_expires=7 * 24 * 3600, worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        # a whole worker lost (not just a child process) gets its unacknowledged jobs back after this
        broker_transport_options={"visibility_timeout": int(os.environ.get("QK_ATLAS_VISIBILITY_TIMEOUT", 900))},
        task_routes={"qk.extract": {"queue": EXTRACTION_QUEUE}, "qk.head": {"queue": PROJECTION_QUEUE}},
    )
    return app


def _restore_unacked_tolerating_a_lost_connection() -> None:
    """Keep a worker alive when Redis goes away while it holds unacknowledged messages.

    On a lost connection kombu's Redis QoS restores the unacknowledged messages through that connection; when its
    client is already gone this raises AttributeError ('NoneType' object has no attribute 'hostname'), which
    Celery treats as unrecoverable and the worker exits. The messages stay in Redis's unacked index, from which
    kombu restores them after the visibility timeout (and team_jobs sends a job whose heartbeat stopped sooner).
    """
    from kombu.transport import redis as kombu_redis

    original = kombu_redis.QoS.restore_unacked
    if getattr(original, "tolerates_lost_connection", False):
        return

    def restore_unacked(self, client=None):
        try:
            return original(self, client)
        except AttributeError as exc:
            logging.getLogger(__name__).warning("unacknowledged messages left in Redis for later restore: %s", exc)
            return None

    restore_unacked.tolerates_lost_connection = True
    kombu_redis.QoS.restore_unacked = restore_unacked


_restore_unacked_tolerating_a_lost_connection()


def redis_url() -> str:
    """QK_ATLAS_REDIS_URL (the team deployment's one switch)."""
    url = os.environ.get("QK_ATLAS_REDIS_URL")
    if not url:
        raise RuntimeError("QK_ATLAS_REDIS_URL is not set: team mode needs Redis (unset = embedded mode)")
    return url


app = make_celery(settings().redis_url or "redis://127.0.0.1:6379/0")  # settings refuse a placeholder password


@worker_process_init.connect
def _warm_up_in_background(**_kwargs) -> None:
    """Compile UMAP once per worker process, off the task path (a thread, so the process reports ready)."""
    if os.environ.get("QK_ATLAS_WARM_UMAP", "1") != "0":
        from workers.core.project import warm_up_umap

        threading.Thread(target=warm_up_umap, daemon=True, name="umap-warm-up").start()


@celeryd_init.connect
def _refuse_a_missing_device(**_kwargs) -> None:
    """Stop the worker as it starts (status 2, one line) on a device setting this machine cannot run; only the worker
    runs this (the web process imports this module too, and never loads torch)."""
    from workers.models.devices import placement

    try:
        placement()
    except ValueError as exc:
        print(f"qk-atlas worker: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
