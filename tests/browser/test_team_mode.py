"""Team mode in the browser: the dashboard over Celery workers and Redis, retriggering, Redis outages."""

from __future__ import annotations

import subprocess
import time

import pytest
import redis

from tests.support.browser import is_visible, wait_until
from tests.support.team import (
    REDIS_SERVER,
    Team,
    free_port,
    persistent_redis,
    pings,
    umap_running,
    wait_for_jobs,
)
from workers.contracts.requests import HeadRequest


@pytest.mark.browser
def test_dashboard_in_team_mode_draws_a_head(dash_duo, team_app):
    from tests.support.browser import wait_for_points

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
    running = wait_until(lambda: umap_running(team_jobs.job_status(job_id)), 300, what="UMAP started")
    for _ in range(3):  # re-trigger the view while the worker is busy
        dash_duo.find_element("#next-head").click()
        time.sleep(0.5)
    statuses = wait_for_jobs([job_id], timeout=600)
    assert team_jobs.computations(job_id) == 1  # the busy worker process was never killed or restarted
    assert statuses[job_id]["pid"] == running["pid"]


@pytest.mark.browser
def test_redis_down_at_start_shows_a_banner_and_the_app_recovers(dash_duo, tmp_path, monkeypatch):
    """No Redis when the page opens: a clear banner, no crash; Redis and workers come up: the view computes."""
    from tests.support.browser import wait_for_points

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


@pytest.mark.browser
def test_redis_gone_for_20_s_mid_view_leaves_every_worker_alive_and_the_page_recovers(dash_duo, tmp_path,
                                                                                       monkeypatch):
    """Redis stops for 20 s while an open page waits on a UMAP job; no process is restarted by hand: the compute
    worker reconnects, and the open page draws the view once it is done."""
    from tests.support.browser import wait_for_points

    command, server, url, port = persistent_redis(tmp_path, monkeypatch)
    team = Team(url, tmp_path / "shared", tmp_path)
    try:
        team.start("w1", quiet=False)  # with gossip and mingle, as compose runs it
        from dashboard.app import create_app
        from workers.runtime import team_jobs

        dash_duo.start_server(create_app(cache_dir=tmp_path / "shared"))
        dash_duo.driver.get(dash_duo.server_url + "/?layer=2&head=9&method=umap")
        job_id = team_jobs.job_id_for(HeadRequest(layer=2, head=9, method="umap").to_dict())
        wait_until(lambda: umap_running(team_jobs.job_status(job_id)), 300, what="UMAP started")
        server.terminate()
        server.wait(10)
        dash_duo.wait_for_contains_text("#backend-health", "unreachable", timeout=30)
        time.sleep(20)
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_until(lambda: pings(redis.Redis(port=port)), 10, what="redis back")
        wait_until(lambda: not is_visible(dash_duo, "#backend-health"), 15,
                   what="the banner gone within seconds of Redis returning")
        assert wait_for_points(dash_duo, timeout=300)[0][2] >= 10_000  # the page recovered by itself
        assert all(process.poll() is None for process in team.workers.values())  # nobody was restarted
        assert "Unrecoverable" not in (tmp_path / "w1.log").read_text()
    finally:
        team.stop()
        server.terminate()
        server.wait(10)
