"""A bounded load test on loopback: concurrent clients over cached views get no error, memory stays flat.

The full figures (20 clients for 60 s, 1,000 views in a row) come from `bench/load.py`; this is its short form.
"""

from __future__ import annotations

import pytest

from bench.load import load, memory, prepare_store, server_log, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp("load-cache")
    prepare_store(cache_dir)
    process, url = start_server(cache_dir)
    yield process, url, cache_dir
    process.terminate()
    process.wait(timeout=10)


def test_concurrent_clients_get_no_error(server):
    _process, url, cache_dir = server
    result = load(url, clients=8, seconds=12, think=0.0)
    log_tail = server_log(cache_dir).read_text(errors="replace")[-4000:]
    assert result["errors"] == 0, (result["error_examples"], log_tail)
    assert result["views"] >= 8 and set(result["steps_p95_ms"]) == {"url", "cached view", "draw", "hover",
                                                                    "select (url)", "select (patch)"}


def test_memory_stays_flat_over_repeated_views(server):
    process, url, _cache_dir = server
    result = memory(url, process.pid, repeat=300)
    assert result["growth_mb"] < 60, result
