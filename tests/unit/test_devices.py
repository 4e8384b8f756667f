"""Devices and precision: QK_ATLAS_DEVICE, QK_ATLAS_DTYPE and QK_ATLAS_DEVICE_MAP are checked as every process that
runs models starts (one line naming the allowed values, or what this machine lacks), and the dtype is part of the
extraction's key, so results of one precision are never served for another."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from workers.config import settings
from workers.contracts.requests import HeadRequest
from workers.models.devices import placement, resolve_device
from workers.pipeline.keys import extraction_params, resolve
from workers.pipeline.stages import ensure_head_view, head_vectors
from workers.store import open_store

MISSING_GPU = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU torch sees: missing on every machine


@pytest.mark.parametrize(("name", "value", "allowed"), [
    ("QK_ATLAS_DEVICE", "nonsense", "auto, cpu, cuda, cuda:N, mps"),
    ("QK_ATLAS_DEVICE", "cuda:first", "auto, cpu, cuda, cuda:N, mps"),
    ("QK_ATLAS_DTYPE", "float64", "float32, bfloat16, float16"),
    ("QK_ATLAS_DEVICE_MAP", "balanced", "none, auto"),
])
def test_a_setting_of_the_wrong_form_is_refused_in_one_line(monkeypatch, name, value, allowed):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as info:
        settings()
    assert str(info.value).startswith(f"{name} must be one of {allowed}") and repr(value) in str(info.value)
    assert "\n" not in str(info.value)


def test_settings_default_and_accepted_forms(monkeypatch):
    for name in ("QK_ATLAS_DEVICE", "QK_ATLAS_DTYPE", "QK_ATLAS_DEVICE_MAP"):
        monkeypatch.delenv(name, raising=False)
    config = settings()
    assert (config.device, config.dtype, config.device_map) == ("auto", "float32", None)
    monkeypatch.setenv("QK_ATLAS_DEVICE", " CUDA:1 ")
    monkeypatch.setenv("QK_ATLAS_DTYPE", "BFloat16")
    assert (settings().device, settings().dtype) == ("cuda:1", "bfloat16")
    monkeypatch.setenv("QK_ATLAS_DEVICE_MAP", "auto")
    with pytest.raises(ValueError, match="QK_ATLAS_DEVICE_MAP=auto places the model over every GPU itself"):
        settings()  # one GPU named and a map over all of them: contradictory
    monkeypatch.setenv("QK_ATLAS_DEVICE", "auto")
    assert settings().device_map == "auto"


def test_auto_is_a_gpu_when_torch_sees_one_and_a_missing_device_is_a_clear_error(monkeypatch):
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=rf"QK_ATLAS_DEVICE={MISSING_GPU}, but .* here: set QK_ATLAS_DEVICE to auto "
                                         "or cpu"):
        resolve_device(MISSING_GPU)
    if not torch.backends.mps.is_available():
        with pytest.raises(ValueError, match="torch sees no Apple GPU"):
            resolve_device("mps")
    monkeypatch.setenv("QK_ATLAS_DEVICE", "cpu")
    monkeypatch.setenv("QK_ATLAS_DTYPE", "float16")
    where = placement()
    assert (where.device, where.dtype, where.describe()) == (torch.device("cpu"), torch.float16, "cpu, float16")


def test_a_device_map_without_accelerate_is_a_clear_error(monkeypatch):
    """accelerate made unimportable (None in sys.modules is how Python marks a module that cannot be imported)."""
    monkeypatch.setitem(sys.modules, "accelerate", None)
    monkeypatch.setenv("QK_ATLAS_DEVICE_MAP", "auto")
    monkeypatch.delenv("QK_ATLAS_DEVICE", raising=False)
    with pytest.raises(ValueError, match=r"QK_ATLAS_DEVICE_MAP=auto needs the accelerate package: pip install "
                                         r"'qk-atlas\[gpu\]'"):
        placement()


def test_every_process_that_runs_models_refuses_to_start_on_a_missing_device(tmp_path):
    """The command line (serve, export), a local worker and a Celery worker stop at once with one line."""
    env = {**os.environ, "QK_ATLAS_DEVICE": MISSING_GPU, "QK_ATLAS_CACHE_DIR": str(tmp_path),
           "QK_ATLAS_REDIS_URL": "redis://127.0.0.1:1/0"}
    expected = f"QK_ATLAS_DEVICE={MISSING_GPU}, but "
    commands = {
        "serve": [sys.executable, "-m", "workers.cli", "serve", "--port", "1"],
        "export": [sys.executable, "-m", "workers.cli", "export", "--layer", "0", "--head", "0", "--out",
                   str(tmp_path / "x.npz")],
        "local worker": [sys.executable, "-m", "workers.runtime.local_queue", str(tmp_path)],
        "celery worker": [sys.executable, "-m", "celery", "-A", "workers.runtime.celery_app", "worker", "-Q",
                          "extraction", "--concurrency", "1"],
    }
    for name, command in commands.items():
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        lines = [line for line in done.stderr.splitlines() if expected in line]
        assert done.returncode == 2 and len(lines) == 1, (name, done.returncode, done.stderr[-1500:])
    for name in ("serve", "local worker"):  # a value of the wrong form: one line too
        done = subprocess.run(commands[name], capture_output=True, text=True, timeout=60,
                              env={**env, "QK_ATLAS_DTYPE": "double"})
        assert done.returncode == 2 and "QK_ATLAS_DTYPE must be one of float32, bfloat16, float16; got 'double'" \
            in done.stderr and "Traceback" not in done.stderr, (name, done.stderr[-1500:])


def test_the_dtype_is_part_of_the_extraction_key_and_float32_keeps_its_keys(monkeypatch, tmp_path):
    """A bfloat16 run stores its own extraction (and every result computed from it): never the float32 one's.
    float32, the default, names no dtype in the key, so stores written before keep serving."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(f"Text {i} tells of a cat, a mat and the sea." for i in range(6)))
    request = HeadRequest(model="tiny-gpt", corpus=str(corpus), layer=1, head=2, method="pca")
    store = open_store(tmp_path / "cache")
    monkeypatch.delenv("QK_ATLAS_DTYPE", raising=False)
    unset = extraction_params(request.model, _corpus(request))
    monkeypatch.setenv("QK_ATLAS_DTYPE", "float32")
    assert extraction_params(request.model, _corpus(request)) == unset and "dtype" not in unset
    in_float32 = ensure_head_view(request, store)
    monkeypatch.setenv("QK_ATLAS_DTYPE", "bfloat16")
    assert resolve(request).q != in_float32.q and resolve(request).tokens != in_float32.tokens
    assert resolve(request).coords != in_float32.coords
    assert not store.has(resolve(request).q)  # nothing of the float32 run answers the bfloat16 request
    in_bfloat16 = ensure_head_view(request, store)
    q32, k32 = head_vectors(store, in_float32)
    q16, k16 = head_vectors(store, in_bfloat16)
    assert not np.array_equal(q32, q16)  # the model really ran in bfloat16
    np.testing.assert_allclose(q16, q32, atol=0.05 * np.abs(q32).max())


def _corpus(request: HeadRequest):
    """The request's corpus, as keys read it."""
    from workers.pipeline.keys import corpus_for

    return corpus_for(request.corpus)
