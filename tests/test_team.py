"""Team mode with real parts: a redis-server and Celery worker processes, driven through the job API."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tests.browser_helpers import is_visible, wait_until
from workers.contracts.requests import HeadRequest
from workers.pipeline.keys import resolve
from workers.store import open_store

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A real redis-server on a free loopback port."""
    assert Path(REDIS_SERVER).exists(), "redis-server is required (apt install redis-server)"
    port = free_port()
    server = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    wait_until(lambda: _pings(client), 10, what="redis ping")
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(10)


def _pings(client) -> bool:
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
    running = wait_until(lambda: _fitting(team_jobs.job_status(job_id)), 300, what="the fitted picture started")
    assert cached_keys(request, store) is None and not store.has(resolve(request).coords)
    os.kill(running["pid"], signal.SIGKILL)  # the worker process computing the head dies
    statuses = wait_for_jobs([job_id], timeout=600)
    assert team_jobs.computations(job_id) == 2  # redelivered once, then completed
    coords = store.get_arrays(statuses[job_id]["keys"]["coords"])["coords"]
    assert coords.shape == (2 * len(store.get_arrays(resolve(request).tokens)["token"]), 2)


def _umap_running(status: dict) -> dict | None:
    """The status once the worker is inside the UMAP projection."""
    return status if status.get("state") == "running" and "UMAP" in status.get("message", "") else None


def _fitting(status: dict) -> dict | None:
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


@pytest.mark.browser
def test_dashboard_in_team_mode_draws_a_head(dash_duo, team_app):
    from tests.browser_helpers import wait_for_points

    dash_duo.start_server(team_app)
    dash_duo.driver.get(dash_duo.server_url + "/?layer=2&head=5")
    dash_duo.wait_for_text_to_equal("#view-heading", "L2 H5", timeout=30)
    data = wait_for_points(dash_duo)
    assert data[0][2] >= 10_000
    dash_duo.wait_for_contains_text("#view-status", "points", timeout=60)


@pytest.mark.browser
def test_retriggering_in_the_browser_never_kills_a_busy_worker(dash_duo, team_app):
    from workers.runtime import team_jobs

    dash_duo.start_server(team_app)
    request = HeadRequest(layer=3, head=4, method="umap")  # UMAP compiles inside the task: a long job
    dash_duo.driver.get(dash_duo.server_url + "/?layer=3&head=4&method=umap")
    job_id = team_jobs.job_id_for(request.to_dict())
    running = wait_until(lambda: _umap_running(team_jobs.job_status(job_id)), 300, what="UMAP started")
    for _ in range(3):  # re-trigger the view while the worker is busy
        dash_duo.find_element("#next-head").click()
        time.sleep(0.5)
    statuses = wait_for_jobs([job_id], timeout=600)
    assert team_jobs.computations(job_id) == 1  # the busy worker process was never killed or restarted
    assert statuses[job_id]["pid"] == running["pid"]


@pytest.mark.browser
def test_redis_down_at_start_shows_a_banner_and_the_app_recovers(dash_duo, tmp_path, monkeypatch):
    """No Redis when the page opens: a clear banner, no crash; Redis and workers come up: the view computes."""
    from tests.browser_helpers import wait_for_points

    port = free_port()
    url = f"redis://:s3cret-pass@127.0.0.1:{port}/0"
    monkeypatch.setenv("QK_ATLAS_REDIS_URL", url)
    monkeypatch.setenv("QK_ATLAS_CACHE_DIR", str(tmp_path / "shared"))
    from dashboard.app import create_app

    dash_duo.start_server(create_app(cache_dir=tmp_path / "shared"))
    dash_duo.driver.get(dash_duo.server_url + "/?layer=1&head=4")
    dash_duo.wait_for_contains_text("#backend-health", "unreachable", timeout=30)
    banner = dash_duo.find_element("#backend-health").text
    assert f"127.0.0.1:{port}" in banner and "s3cret" not in banner  # where, never the password
    server = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--requirepass", "s3cret-pass"], stdout=subprocess.DEVNULL)
    team = Team(url, tmp_path / "shared", tmp_path)
    try:
        team.start("w1")
        wait_until(lambda: not is_visible(dash_duo, "#backend-health"), 60, what="banner gone")
        dash_duo.wait_for_text_to_equal("#view-heading", "L1 H4", timeout=30)
        assert wait_for_points(dash_duo, timeout=180)[0][2] >= 10_000  # the view the page waited for is drawn
    finally:
        team.stop()
        server.terminate()
        server.wait(10)


def persistent_redis(tmp_path: Path, monkeypatch) -> tuple[list[str], subprocess.Popen, str, int]:
    """A redis-server with an append-only file (as in compose) on a free port, and team-mode settings pointing at
    it; (its command line, to start it again, the process, its URL, its port)."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    (tmp_path / "redis").mkdir()
    command = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--appendonly", "yes",
               "--dir", str(tmp_path / "redis"), "--save", ""]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    wait_until(lambda: _pings(redis.Redis(port=port)), 10, what="redis ping")
    monkeypatch.setenv("QK_ATLAS_REDIS_URL", url)
    monkeypatch.setenv("QK_ATLAS_CACHE_DIR", str(tmp_path / "shared"))
    return command, server, url, port


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
        wait_until(lambda: _umap_running(team_jobs.job_status(job_id)), 300, what="UMAP started")
        server.terminate()
        server.wait(10)
        time.sleep(3)
        assert "unreachable" in jobs.backend_problem()
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_until(lambda: _pings(redis.Redis(port=port)), 10, what="redis back")
        poller.join(timeout=600)
        assert outcome.get("keys") == resolve(request).__dict__
        assert resolve(request).intact(store)
    finally:
        team.stop()
        server.terminate()
        server.wait(10)


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and its children at once (a whole worker lost: its container gone, say)."""
    for victim in [pid, *_children(pid)]:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _parent_of(proc: Path) -> int | None:
    """The parent pid of a /proc entry (None when it is gone)."""
    try:
        return int(proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_a_whole_worker_lost_mid_job_is_sent_again_within_seconds_and_says_so(team):
    """Not a child process but the whole worker: its message stays unacknowledged in Redis for the visibility
    timeout (900 s); the lost heartbeat gets the job to the other worker within seconds instead."""
    from workers.runtime import team_jobs

    team.start("w1")
    team.start("w2")
    store = open_store()
    request = HeadRequest(layer=4, head=2, method="fitted")  # the fitted picture: about 10 s in the task
    job_id = team_jobs.submit(request.to_dict(), store)
    running = wait_until(lambda: _fitting(team_jobs.job_status(job_id)), 300, what="the fitted picture started")
    lost, survivor = running["worker"].split("@")[0], ({"w1", "w2"} - {running["worker"].split("@")[0]}).pop()
    _kill_tree(team.workers[lost].pid)
    killed = time.monotonic()
    waiting = wait_until(lambda: "stopped responding" in (s := team_jobs.job_status(job_id, store))["message"] and s,
                         45, interval=0.5, what="the job marked as waiting for a worker")
    assert waiting["state"] == "queued" and lost in waiting["message"]  # said in words, not stale progress
    wait_until(lambda: team_jobs.job_status(job_id, store).get("worker", "").startswith(survivor), 45,
               interval=0.5, what="the other worker running it")
    assert time.monotonic() - killed < 60
    statuses = wait_for_jobs([job_id], timeout=600)
    assert statuses[job_id]["worker"].startswith(survivor) and resolve(request).intact(store)


@pytest.mark.browser
def test_redis_gone_for_20_s_mid_view_leaves_every_worker_alive_and_the_page_recovers(dash_duo, tmp_path,
                                                                                       monkeypatch):
    """Redis stops for 20 s while an open page waits on a UMAP job; no process is restarted by hand: the compute
    worker reconnects, and the open page draws the view once it is done."""
    from tests.browser_helpers import wait_for_points

    command, server, url, port = persistent_redis(tmp_path, monkeypatch)
    team = Team(url, tmp_path / "shared", tmp_path)
    try:
        team.start("w1", quiet=False)  # with gossip and mingle, as compose runs it
        from dashboard.app import create_app
        from workers.runtime import team_jobs

        dash_duo.start_server(create_app(cache_dir=tmp_path / "shared"))
        dash_duo.driver.get(dash_duo.server_url + "/?layer=2&head=9&method=umap")
        job_id = team_jobs.job_id_for(HeadRequest(layer=2, head=9, method="umap").to_dict())
        wait_until(lambda: _umap_running(team_jobs.job_status(job_id)), 300, what="UMAP started")
        server.terminate()
        server.wait(10)
        dash_duo.wait_for_contains_text("#backend-health", "unreachable", timeout=30)
        time.sleep(20)
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_until(lambda: _pings(redis.Redis(port=port)), 10, what="redis back")
        wait_until(lambda: not is_visible(dash_duo, "#backend-health"), 15,
                   what="the banner gone within seconds of Redis returning")
        assert wait_for_points(dash_duo, timeout=300)[0][2] >= 10_000  # the page recovered by itself
        assert all(process.poll() is None for process in team.workers.values())  # nobody was restarted
        assert "Unrecoverable" not in (tmp_path / "w1.log").read_text()
    finally:
        team.stop()
        server.terminate()
        server.wait(10)


def _children(pid: int) -> list[int]:
    """Pids of a process's children (a Celery worker's pool processes)."""
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent_of(p) == pid]


def _maps_numba(pid: int) -> bool:
    """Whether a process has loaded llvmlite (numba's compiler, which UMAP's compilation loads)."""
    try:
        return "llvmlite" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def test_compute_workers_compile_umap_in_their_pool_process(team):
    """QK_ATLAS_WARM_UMAP=1, as compose sets it: the worker's pool process compiles UMAP (loads numba's compiler)
    off the task path, so the first UMAP job does not pay for it."""
    team.env["QK_ATLAS_WARM_UMAP"] = "1"
    team.start("w1")
    compute_pool = wait_until(lambda: _children(team.workers["w1"].pid), 30, what="compute pool process")
    wait_until(lambda: any(_maps_numba(pid) for pid in compute_pool), 120, what="the compute worker compiling UMAP")
