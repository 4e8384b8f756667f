"""Team mode in tests: real redis-server processes, Celery worker processes sharing one store, and their
fixtures."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.support.browser import wait_until
from tests.support.net import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A real redis-server on a free loopback port."""
    assert Path(REDIS_SERVER).exists(), "redis-server is required (apt install redis-server)"
    port = free_port()
    server = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    wait_until(lambda: pings(client), 10, what="redis ping")
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(10)


def pings(client) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


class Team:
    """Celery worker processes sharing one store directory."""

    def __init__(self, url: str, cache_dir: Path, log_dir: Path):
        self.url, self.cache_dir, self.log_dir = url, cache_dir, log_dir
        self.workers: dict[str, subprocess.Popen] = {}
        self.env = {**os.environ, "QK_ATLAS_REDIS_URL": url, "QK_ATLAS_CACHE_DIR": str(cache_dir),
                    "QK_ATLAS_WARM_UMAP": "0"}

    def start(self, name: str, quiet: bool = True) -> None:
        """Start one worker (one process, both queues) and wait until it answers; quiet=False keeps gossip and mingle
        on, as compose runs it."""
        log = open(self.log_dir / f"{name}.log", "w")
        command = [sys.executable, "-m", "celery", "-A", "workers.runtime.celery_app", "worker",
                   "-Q", "extraction,projection",
                   "-c", "1", "-n", f"{name}@%h", "-P", "prefork", "-l", "info",
                   *(["--without-gossip", "--without-mingle"] if quiet else [])]
        self.workers[name] = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: "ready" in (self.log_dir / f"{name}.log").read_text(), 60, what=f"worker {name} ready")

    def stop(self) -> None:
        """Stop every worker."""
        for process in self.workers.values():
            process.terminate()
        for process in self.workers.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def team(redis_url, tmp_path, monkeypatch):
    """Two workers on a clean Redis database and a fresh shared store; the test process uses the job API."""
    redis.Redis.from_url(redis_url).flushdb()
    monkeypatch.setenv("QK_ATLAS_REDIS_URL", redis_url)
    monkeypatch.setenv("QK_ATLAS_CACHE_DIR", str(tmp_path / "shared"))
    group = Team(redis_url, tmp_path / "shared", tmp_path)
    yield group
    group.stop()


def wait_for_jobs(job_ids: list[str], timeout: float) -> dict[str, dict]:
    """Poll until every job is done; fail on an error."""
    from workers.runtime import team_jobs

    statuses: dict[str, dict] = {}

    def all_done() -> bool:
        for job_id in job_ids:
            if statuses.get(job_id, {}).get("state") != "done":
                statuses[job_id] = team_jobs.job_status(job_id)
                assert statuses[job_id]["state"] != "error", statuses[job_id]
        return all(s["state"] == "done" for s in statuses.values())

    wait_until(all_done, timeout, interval=0.5, what="all jobs done")
    return statuses


def umap_running(status: dict) -> dict | None:
    """The status once the worker is inside the UMAP projection."""
    return status if status.get("state") == "running" and "UMAP" in status.get("message", "") else None


def fitting(status: dict) -> dict | None:
    """The status once the worker is placing the picture fitted to attention."""
    return status if status.get("state") == "running" and "fitted" in status.get("message", "") else None


@pytest.fixture
def team_app(team, monkeypatch):
    """The dashboard in team mode: a compute worker and the app, which only submits jobs and reads the store."""
    team.start("w1")
    from dashboard.app import create_app

    app = create_app(cache_dir=team.cache_dir)
    assert app.local_worker is None  # no embedded worker in team mode
    return app


def persistent_redis(tmp_path: Path, monkeypatch) -> tuple[list[str], subprocess.Popen, str, int]:
    """A redis-server with an append-only file (as in compose) on a free port, and team-mode settings pointing at
    it; (its command line, to start it again, the process, its URL, its port)."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    (tmp_path / "redis").mkdir()
    command = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--appendonly", "yes",
               "--dir", str(tmp_path / "redis"), "--save", ""]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    wait_until(lambda: pings(redis.Redis(port=port)), 10, what="redis ping")
    monkeypatch.setenv("QK_ATLAS_REDIS_URL", url)
    monkeypatch.setenv("QK_ATLAS_CACHE_DIR", str(tmp_path / "shared"))
    return command, server, url, port


def kill_tree(pid: int) -> None:
    """SIGKILL a process and its children at once (a whole worker lost: its container gone, say)."""
    for victim in [pid, *children_of(pid)]:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass


def parent_of(proc: Path) -> int | None:
    """The parent pid of a /proc entry (None when it is gone)."""
    try:
        return int(proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def children_of(pid: int) -> list[int]:
    """Pids of a process's children (a Celery worker's pool processes)."""
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and parent_of(p) == pid]


def maps_numba(pid: int) -> bool:
    """Whether a process has loaded llvmlite (numba's compiler, which UMAP's compilation loads)."""
    try:
        return "llvmlite" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
