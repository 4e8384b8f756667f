"""The result store: damaged entries are detected and recomputed, a failed write is a clear error."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import workers.core.project
from workers.contracts.requests import HeadRequest
from workers.pipeline.stages import ensure_head_view
from workers.store import open_store

SMALL_CORPUS = "\n".join(f"Sentence number {i} talks about the weather and the sea." for i in range(30))


def _value_files(directory: Path) -> list[Path]:
    """diskcache's value files (values above its inline size live in files)."""
    return [p for p in (directory / "results").rglob("*.val")]


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_file_is_detected_and_removed(tmp_path, caplog, damage):
    store = open_store(tmp_path)
    arrays = {"v": np.arange(200_000, dtype=np.float32)}  # large enough for diskcache to keep it in a file
    store.put_arrays("k", arrays)
    (path,) = _value_files(tmp_path)
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    else:
        path.write_bytes(raw[:5000] + bytes([raw[5000] ^ 0xFF]) + raw[5001:])
    with caplog.at_level(logging.WARNING, logger="workers.store"):
        assert store.get_arrays("k") is None
    assert not store.has("k")
    assert "damaged" in caplog.text and "0.0" not in caplog.text  # logged by key, never its content


def test_a_damaged_small_entry_is_detected(tmp_path):
    store = open_store(tmp_path)
    store.put_json("j", {"state": "done"})
    store.cache.set("j", store.cache.get("j")[:-3])  # cut short inside the database
    assert store.get_json("j") is None and not store.has("j")
    store.cache.set("old", b"not sealed")
    assert store.get_json("old") is None


def test_a_damaged_view_is_recomputed(tmp_path, monkeypatch):
    corpus = tmp_path / "c.txt"
    corpus.write_text(SMALL_CORPUS)
    store = open_store(tmp_path / "cache")
    request = HeadRequest(corpus=str(corpus), layer=1, head=2, method="pca")
    keys = ensure_head_view(request, store)
    coords = store.get_arrays(keys.coords)["coords"]
    calls = []
    original = workers.core.project.Projector.fit_transform
    monkeypatch.setattr(workers.core.project.Projector, "fit_transform",
                        lambda self, points: calls.append(1) or original(self, points))
    ensure_head_view(request, store)
    assert calls == []  # intact: served from the store
    store.cache.set(keys.coords, store.cache.get(keys.coords)[:100])
    again = ensure_head_view(request, store)
    assert calls == [1]  # damaged: computed again, the same picture
    np.testing.assert_array_equal(store.get_arrays(again.coords)["coords"], coords)


def test_a_write_that_fails_gives_a_clear_error(tmp_path):
    """A real failed write: the process may not grow files past 64 kB (RLIMIT_FSIZE), as on a full disk."""
    script = textwrap.dedent(f"""
        import resource, signal
        import numpy as np
        from workers.store import StoreError, open_store
        store = open_store({str(tmp_path)!r})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        try:
            store.put_arrays("big", {{"v": np.zeros(100_000, dtype=np.float32)}})
        except StoreError as exc:
            print("STORE-ERROR", exc)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "STORE-ERROR cannot write to the result store" in out.stdout, out.stderr[-2000:]
    assert "disk full" in out.stdout and "QK_ATLAS_CACHE_DIR" in out.stdout
