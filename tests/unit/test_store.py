"""The result store: damaged entries are detected and recomputed, a failed write is a clear error."""

from __future__ import annotations

import gc
import io
import logging
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import workers.core.project
from workers.contracts.requests import HeadRequest, ViewKeys
from workers.pipeline.stages import ensure_head_view
from workers.store import Store, arrays_to_bytes, bytes_to_arrays, open_store

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


def stored_view(tmp_path: Path) -> tuple[Store, HeadRequest, ViewKeys]:
    """A store in tmp_path/cache holding one head's PCA view of a small corpus: the store, the request, its keys."""
    corpus = tmp_path / "c.txt"
    corpus.write_text(SMALL_CORPUS)
    store = open_store(tmp_path / "cache")
    request = HeadRequest(corpus=str(corpus), layer=1, head=2, method="pca")
    return store, request, ensure_head_view(request, store)


def test_a_damaged_view_is_recomputed(tmp_path, monkeypatch):
    store, request, keys = stored_view(tmp_path)
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


def test_the_web_process_reads_a_pictures_parts_once_and_never_serves_a_damaged_one(tmp_path, monkeypatch):
    from dashboard import jobs

    store, request, keys = stored_view(tmp_path)
    monkeypatch.setattr(jobs, "_CACHE_DIR", [str(tmp_path / "cache")])
    jobs._arrays.cache_clear()
    reads = []  # every entry read from disk (and checked)
    read = Store._get
    monkeypatch.setattr(Store, "_get", lambda self, key: reads.append(key) or read(self, key))
    assert jobs.intact_keys(request, jobs.store()) == keys.__dict__
    assert sorted(reads) == sorted([keys.tokens, keys.coords, keys.q, keys.k])  # what the picture is drawn from
    jobs.head_data(keys.__dict__, False)
    assert jobs.intact_keys(request, jobs.store()) == keys.__dict__ and len(reads) == 4  # drawn and opened again
    jobs._arrays.cache_clear()  # a new web process, and a damaged part on disk
    store.cache.set(keys.q, store.cache.get(keys.q)[:100])
    assert jobs.intact_keys(request, jobs.store()) is None and not store.has(keys.q)  # removed: computed again


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


class SwitchInsideAst:
    """While active: garbage that the collector finds at every allocation (gc threshold 1), whose finalizer, when
    the collection runs inside `ast.parse` (the AST constructor allocating its nodes), hands the GIL to the other
    threads until one of them has finished a read: the thread switch that breaks CPython 3.11's AST constructor
    (one recursion-depth counter per interpreter), made certain instead of rare."""

    def __init__(self):
        self.reads_done = 0
        self.handovers = 0
        self.reading = 0  # threads still reading
        self.armed = False

    def garbage(self) -> None:
        """One object in a reference cycle, with the finalizer."""
        cycle = _Finalised(self)
        cycle.me = cycle

    def finalise(self) -> None:
        """Hand over when collected inside ast.parse; re-arm while active."""
        if not self.armed:
            return
        caller = sys._getframe(2)
        if (caller.f_globals.get("__name__") == "ast" and caller.f_code.co_name == "parse" and self.reading > 1
                and self.handovers < 3):
            before, deadline = self.reads_done, time.monotonic() + 1.0
            while self.reads_done == before and time.monotonic() < deadline:
                time.sleep(0.0005)  # releases the GIL: another thread reads meanwhile
            self.handovers += self.reads_done != before
        self.garbage()

    def run(self, reader, raw: bytes, expected: dict[str, np.ndarray], threads: int = 6, reads: int = 40) -> list:
        """`reader(raw)` `reads` times in each of `threads` threads at once; the errors raised and wrong results."""
        failures: list[str] = []

        counting = threading.Lock()

        def work() -> None:
            for _ in range(reads):
                try:
                    got = reader(raw)
                    if set(got) != set(expected) or any(not np.array_equal(got[n], expected[n]) for n in expected):
                        failures.append("wrong arrays")
                except Exception as exc:  # noqa: BLE001  (every failure is the finding)
                    failures.append(f"{type(exc).__name__}: {exc}")
                with counting:
                    self.reads_done += 1
            with counting:
                self.reading -= 1

        threshold = gc.get_threshold()
        self.reading, self.armed = threads, True
        gc.set_threshold(1)
        self.garbage()
        try:
            pool = [threading.Thread(target=work) for _ in range(threads)]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join()
        finally:
            self.armed = False
            gc.set_threshold(*threshold)
            gc.collect()
        return failures


class _Finalised:
    """Garbage whose finalizer calls back into a SwitchInsideAst."""

    def __init__(self, harness: SwitchInsideAst):
        self.harness = harness

    def __del__(self):
        self.harness.finalise()


def stored_like_a_view() -> dict[str, np.ndarray]:
    """Arrays shaped like a view's reads: q and k of a head (float16), a tokens table (ints, strings, bools)."""
    rng = np.random.default_rng(0)
    arrays = {"v": rng.normal(size=(300, 32)).astype(np.float16), "token": np.array(["the", "cat", "[CLS]"] * 20),
              "is_special": np.arange(60) % 7 == 0, "position_norm": rng.random(60).astype(np.float32)}
    arrays.update({f"column{i}": np.arange(i, i + 5, dtype=np.int32) for i in range(24)})  # many headers per read
    return arrays


def test_arrays_are_read_by_many_threads_at_once():
    """Readers in many threads, with a thread switch forced inside every AST construction (the CPython 3.11 bug
    that made a draw callback answer 500): the store's reader never parses a header with `ast`, so every read
    returns the stored arrays; numpy's own reader, under the same switches, is interrupted inside the AST
    constructor (on CPython 3.11 it then raises SystemError: AST constructor recursion depth mismatch)."""
    arrays = stored_like_a_view()
    raw = arrays_to_bytes(arrays)
    ours = SwitchInsideAst()
    assert ours.run(bytes_to_arrays, raw, arrays) == []
    assert ours.handovers == 0  # no AST is built on this read path

    def numpy_reader(payload: bytes) -> dict[str, np.ndarray]:
        with np.load(io.BytesIO(payload), allow_pickle=False) as data:
            return {name: data[name] for name in data.files}

    theirs = SwitchInsideAst()
    failures = theirs.run(numpy_reader, raw, arrays, reads=2)
    assert theirs.handovers > 0, "the harness never switched threads inside an AST construction"
    assert sys.version_info >= (3, 12) or any("AST constructor recursion depth mismatch" in f for f in failures), \
        failures[:3]


@pytest.mark.parametrize("compress", [False, True])
def test_every_kind_of_array_reads_back_as_written(compress):
    """The store's reader gives exactly what np.savez wrote, for every dtype and layout it may hold (a structured
    dtype's header, not of the one form np.save writes for plain dtypes, goes to numpy's parser); object arrays
    (pickles) are refused."""
    written = {"f4": np.arange(10, dtype=np.float32).reshape(2, 5), "f2": np.arange(4, dtype=np.float16),
               "text": np.array(["ab", "ç", ""]), "bytes": np.array([b"x", b"yz"]), "empty": np.zeros((0, 3)),
               "scalar": np.float32(3.5), "fortran": np.asfortranarray(np.arange(6.0).reshape(3, 2)),
               "bool": np.array([True, False]), "date": np.array(["2020-01-01"], dtype="M8[D]"),
               "big_endian": np.arange(3, dtype=">i4"), "int64": np.array([2**40, -1]),
               "structured": np.array([(1, 2.0)], dtype=[("x", "<i4"), ("y", "<f8")])}
    read = bytes_to_arrays(arrays_to_bytes(written, compress))
    assert list(read) == list(written)
    for name, array in written.items():
        assert read[name].dtype == array.dtype and read[name].shape == np.shape(array), name
        np.testing.assert_array_equal(read[name], array)
        assert read[name].flags.writeable and read[name].flags.f_contiguous == np.asarray(array).flags.f_contiguous
    with pytest.raises(ValueError, match="object arrays"):
        bytes_to_arrays(arrays_to_bytes({"o": np.array([1, "x"], dtype=object)}))


def test_a_header_of_another_form_is_left_to_numpy_and_a_cut_array_is_refused():
    """npy_header reads only the one form np.save writes; data shorter than its header says is an error."""
    from workers.store import npy_header

    assert npy_header(b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 5), }   \n") == \
        (np.dtype("<f4"), (2, 5), False)
    assert npy_header(b"{'descr': '<U3', 'fortran_order': True, 'shape': (7,), }\n")[1:] == ((7,), True)
    assert npy_header(b"{'descr': '<f8', 'fortran_order': False, 'shape': (), }\n")[1] == ()
    assert npy_header(b"{'shape': (2,), 'descr': '<f4', 'fortran_order': False}\n") is None
    assert npy_header(b"{'descr': [('x', '<i4')], 'fortran_order': False, 'shape': (2,), }\n") is None
    assert npy_header(b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 5), } __import__('os')\n") is None
    whole = io.BytesIO()
    np.save(whole, np.arange(100, dtype=np.float32))
    for cut, error in ((whole.getvalue()[:-200], "cut short: 200 of 400 bytes"), (whole.getvalue() + b"!", "trailing")):
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as out:
            out.writestr("v.npy", cut)
        with pytest.raises((EOFError, ValueError), match=error):
            bytes_to_arrays(archive.getvalue())
