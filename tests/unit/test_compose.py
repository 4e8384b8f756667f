"""Docker cannot run here: check that docker-compose.yml and the Dockerfile agree with the code's entry points."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workers.runtime.celery_app import EXTRACTION_QUEUE, PROJECTION_QUEUE

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _flag(command: list[str], flag: str) -> str:
    """The value after a command-line flag."""
    return command[command.index(flag) + 1]


def test_services_and_redis_is_private_with_a_password(compose):
    services = compose["services"]
    assert {"redis", "worker", "web"} <= set(services)
    redis = services["redis"]
    assert "ports" not in redis  # never published on the host
    assert "--requirepass" in redis["command"]
    assert any(v.startswith("redis-data:") for v in redis["volumes"])
    url = services["worker"]["environment"]["QK_ATLAS_REDIS_URL"]
    assert re.match(r"redis://:\$\{REDIS_PASSWORD:\?[^}]*\}@redis:6379/\d", url)


def test_compose_refuses_to_start_without_secrets_and_listens_on_loopback(compose):
    """`${VAR:?message}` makes compose stop with the message when VAR is unset or empty: no default password."""
    text = (ROOT / "docker-compose.yml").read_text()
    assert "change-me" not in text
    for name in ("REDIS_PASSWORD", "QK_ATLAS_SECRET_KEY"):
        uses = re.findall(r"\$\{" + name + r"([^}]*)\}", text)
        assert uses and all(use.startswith(":?") for use in uses), (name, uses)
    assert compose["services"]["web"]["ports"] == ["${QK_ATLAS_BIND:-127.0.0.1}:${QK_ATLAS_PORT:-8050}:8050"]


def test_commands_match_the_entry_points(compose):
    services = compose["services"]
    worker, web = (services[name]["command"] for name in ("worker", "web"))
    assert worker[:4] == ["celery", "-A", "workers.runtime.celery_app", "worker"]
    assert set(_flag(worker, "-Q").split(",")) == {EXTRACTION_QUEUE, PROJECTION_QUEUE}
    assert web[0] == "gunicorn" and web[-1] == "dashboard.wsgi:server"
    assert "replicas" in services["worker"]["deploy"] and "--concurrency" in worker


def test_entry_point_modules_import_in_team_mode(tmp_path):
    code = ("import dashboard.wsgi as w, workers.runtime.celery_app as a, workers.runtime.tasks;"
            "assert w.app._background_manager is None;"  # the page polls jobs; no callback runs in a worker
            "assert a.app.conf.task_serializer == 'json' and a.app.conf.accept_content == ['json'];"
            "assert a.app.conf.task_acks_late and a.app.conf.task_reject_on_worker_lost;"
            "assert {'qk.extract', 'qk.head'} <= set(a.app.tasks);"
            "assert w.app.local_worker is None; print('ok')")
    env = {**os.environ, "QK_ATLAS_REDIS_URL": "redis://127.0.0.1:1/0", "QK_ATLAS_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr


def test_environment_is_documented_and_shared_volume_matches(compose):
    """Every QK_ATLAS_* variable the compose file sets or reads (its services' environment, the published port)
    is a row of the configuration table, docs/configuration.md."""
    configuration = (ROOT / "docs" / "configuration.md").read_text()
    used = set(re.findall(r"QK_ATLAS_[A-Z][A-Z_]*[A-Z]", (ROOT / "docker-compose.yml").read_text()))
    for service in ("worker", "web"):
        assert {n for n in compose["services"][service]["environment"] if n.startswith("QK_ATLAS_")} <= used
    assert {"QK_ATLAS_BIND", "QK_ATLAS_PORT", "QK_ATLAS_REDIS_URL"} <= used
    for name in sorted(used):
        assert f"\n| `{name}` |" in configuration, f"{name} is not documented in docs/configuration.md"
    for service in ("worker", "web"):
        environment = compose["services"][service]["environment"]
        cache_dir = environment["QK_ATLAS_CACHE_DIR"]
        mounts = [v.split(":")[1] for v in compose["services"][service]["volumes"]]
        assert any(cache_dir.startswith(m) for m in mounts)


def test_dockerfile_installs_the_team_extra_and_serves_the_wsgi_app():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG EXTRAS=team\n" in dockerfile and 'pip install ".[${EXTRAS}]"' in dockerfile
    assert "dashboard.wsgi:server" in dockerfile
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu\n" in dockerfile  # the CPU build by default


def test_the_gpu_worker_is_the_worker_on_an_nvidia_gpu(compose):
    """`docker compose --profile gpu up` adds `worker-gpu`: the worker's command and environment, an NVIDIA GPU
    reserved, QK_ATLAS_DEVICE=cuda (so a container without a GPU stops at start rather than run on the CPU), an
    image built with CUDA torch and the gpu extra, whose packages are the ones the code asks for."""
    import tomllib

    services = compose["services"]
    gpu, cpu = services["worker-gpu"], services["worker"]
    assert gpu["profiles"] == ["gpu"] and "profiles" not in cpu  # off unless asked for
    assert gpu["command"][:6] == cpu["command"][:6] and _flag(gpu["command"], "-Q") == _flag(cpu["command"], "-Q")
    assert gpu["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    environment = gpu["environment"]
    assert environment["QK_ATLAS_DEVICE"] == "cuda"
    assert {n: v for n, v in cpu["environment"].items() if n != "QK_ATLAS_DEVICE"} == \
        {n: v for n, v in environment.items() if n not in ("QK_ATLAS_DEVICE", "QK_ATLAS_DEVICE_MAP")}
    assert gpu["image"] != cpu["image"] and gpu["build"]["context"] == "."
    args = gpu["build"]["args"]
    assert set(args["EXTRAS"].split(",")) == {"team", "gpu"}
    assert re.search(r"download\.pytorch\.org/whl/cu\d+", args["TORCH_INDEX"])
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {re.split(r"[<>=]", req)[0] for req in extras["gpu"]} == {"accelerate", "cuml-cu12"}
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert all(f"ARG {name}" in dockerfile for name in args)


def test_the_dtype_is_the_same_for_the_web_and_every_worker(compose):
    """QK_ATLAS_DTYPE is part of the extraction's key, which the web process resolves: one value for all."""
    values = {name: compose["services"][name]["environment"].get("QK_ATLAS_DTYPE")
              for name in ("web", "worker", "worker-gpu")}
    assert set(values.values()) == {"${QK_ATLAS_DTYPE:-float32}"}, values
