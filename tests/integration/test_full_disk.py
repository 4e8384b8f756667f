"""A full result store, for real: the cache directory on a small tmpfs that the extraction fills up."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from workers.contracts.requests import HeadRequest
from workers.store import StoreError

SIZE_MB = 24  # the default corpus's q, k and v of every MiniLM head take about 170 MB


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A 24 MB tmpfs (CI runs as root, as .ci/run's apt-get does; a failed mount fails the test, never skips it)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"cannot mount a tmpfs for this test (run as root): {done.stderr.strip()}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_store_is_one_line_in_the_view_and_the_worker_keeps_running(small_disk, monkeypatch):
    from dashboard import jobs
    from dashboard.app import create_app

    cache = small_disk / "cache"
    monkeypatch.setenv("QK_ATLAS_CACHE_DIR", str(cache))
    monkeypatch.setenv("QK_ATLAS_LOCAL_WORKERS", "1")
    monkeypatch.setenv("QK_ATLAS_MIN_FREE_MB", "1")  # let the job start, so that the disk fills during it
    monkeypatch.setattr(jobs, "TIMEOUT_SECONDS", 180.0)  # a view frozen on stale progress fails the test
    app = create_app(cache_dir=cache)
    try:
        worker_pid = app.local_worker.processes[0].pid
        messages: list[str] = []
        with pytest.raises((StoreError, RuntimeError)) as failure:
            jobs.run_request(HeadRequest(), jobs.store(), lambda f, m: messages.append(m))
        line = str(failure.value)
        assert "\n" not in line and ("result store" in line), line  # one line, naming the store
        assert any("forward pass" in m or "storing" in m for m in messages)  # it did fail during the work
        time.sleep(8)  # the supervisor checks every 2 s: a crash-looping worker would have a new pid by now
        assert app.local_worker.processes[0].pid == worker_pid and app.local_worker.processes[0].poll() is None
        # the next request is refused at once with the same kind of line, not queued behind a disk that is full
        monkeypatch.setenv("QK_ATLAS_MIN_FREE_MB", str(SIZE_MB))
        started = time.monotonic()
        with pytest.raises((StoreError, RuntimeError), match="The result store is full"):
            jobs.run_request(HeadRequest(layer=3), jobs.store())
        assert time.monotonic() - started < 5
    finally:
        app.local_worker.stop()
