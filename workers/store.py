"""Content-addressed result store over diskcache: arrays as .npz bytes, small records as JSON."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import shutil
import sqlite3
import struct
import threading
import zipfile
from pathlib import Path
from typing import Any

import diskcache
import numpy as np

SCHEMA_VERSION = 4  # 2: q, k per head; 3: q, k as float16; 4: values checksummed
MAGIC = b"QKA1"  # every stored value: MAGIC + sha256(payload)[:16] + payload
DIGEST_BYTES = 16
log = logging.getLogger(__name__)


def content_key(stage: str, params: dict[str, Any]) -> str:
    """`stage-<sha256>` of the canonical JSON of everything that determines a result, schema included."""
    if "schema" in params or "stage" in params:
        raise ValueError("'schema' and 'stage' name the key itself; nest the parameters that use those names")
    canonical = json.dumps({**params, "schema": SCHEMA_VERSION, "stage": stage}, sort_keys=True, default=str)
    return f"{stage}-{hashlib.sha256(canonical.encode()).hexdigest()[:40]}"


def arrays_to_bytes(arrays: dict[str, np.ndarray], compress: bool = False) -> bytes:
    """dict of arrays -> .npz bytes (no pickles)."""
    buffer = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def sealed(payload: bytes) -> bytes:
    """payload with the magic prefix and its checksum in front."""
    return MAGIC + hashlib.sha256(payload).digest()[:DIGEST_BYTES] + payload


def unsealed(raw: bytes) -> bytes | None:
    """The payload of a sealed value, or None when the prefix or checksum does not match (truncated, corrupted)."""
    if not isinstance(raw, bytes) or not raw.startswith(MAGIC):
        return None
    digest, payload = raw[len(MAGIC): len(MAGIC) + DIGEST_BYTES], raw[len(MAGIC) + DIGEST_BYTES:]
    return payload if hashlib.sha256(payload).digest()[:DIGEST_BYTES] == digest else None


def bytes_to_arrays(raw: bytes) -> dict[str, np.ndarray]:
    """.npz bytes -> dict of arrays, refusing pickled objects; safe to call from many threads at once.

    numpy's reader parses each .npy header with `ast.literal_eval`, which CPython 3.11 cannot run in two threads at
    once (the AST constructor's recursion depth is one per interpreter: a thread switch inside it, e.g. from a
    finalizer that the garbage collector runs, raises "SystemError: AST constructor recursion depth mismatch").
    The headers `np.savez` writes have one exact form, read here by `npy_header` without `ast`; any other header
    (a structured dtype, a header of format 2 or 3) goes to numpy's parser, one thread at a time."""
    arrays = {}
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                raise ValueError(f"not an array in the archive: {info.filename!r}")
            with archive.open(info) as member:
                arrays[info.filename[: -len(".npy")]] = _read_npy(member)
    return arrays


NPY_MAGIC = b"\x93NUMPY"
# the header np.save writes (format 1.0): a dict literal in one fixed form, padded with spaces to a newline
NPY_HEADER = re.compile(r"\{'descr': '([<>|=][a-zA-Z]\d*(?:\[\w+\])?)', 'fortran_order': (True|False), "
                        r"'shape': \(((?:\d+, )*\d+,?|)\), \} *\n")
_NUMPY_HEADER_LOCK = threading.Lock()  # numpy's own header parser (ast) runs in one thread at a time


def npy_header(header: bytes) -> tuple[np.dtype, tuple[int, ...], bool] | None:
    """(dtype, shape, fortran order) of a format-1.0 .npy header dict as np.save writes it; None for any other
    form (left to numpy's parser); ValueError for an object dtype (a pickle)."""
    match = NPY_HEADER.fullmatch(header.decode("latin1"))
    if match is None:
        return None
    descr, fortran, shape_text = match.groups()
    dtype = np.dtype(descr)
    if dtype.hasobject:
        raise ValueError("object arrays (pickles) are refused")
    shape = tuple(int(n) for n in shape_text.replace(",", " ").split())
    return dtype, shape, fortran == "True"


def _read_npy(member: io.BufferedIOBase) -> np.ndarray:
    """One .npy member of an archive -> a new writable array (the bytes read straight into it)."""
    prefix = member.read(len(NPY_MAGIC) + 4)
    if len(prefix) < len(NPY_MAGIC) + 4 or not prefix.startswith(NPY_MAGIC):
        raise ValueError("not a .npy array (bad magic)")
    version = prefix[len(NPY_MAGIC)], prefix[len(NPY_MAGIC) + 1]
    parsed = npy_header(member.read(struct.unpack("<H", prefix[-2:])[0])) if version == (1, 0) else None
    if parsed is None:
        member.seek(0)
        with _NUMPY_HEADER_LOCK:
            return np.lib.format.read_array(member, allow_pickle=False)
    dtype, shape, fortran = parsed
    array = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
    view = memoryview(array.reshape(-1, order="A").view(np.uint8))
    filled = 0
    while filled < len(view):
        got = member.readinto(view[filled:])
        if not got:
            raise EOFError(f"array data cut short: {filled} of {len(view)} bytes")
        filled += got
    if member.read(1):
        raise ValueError("trailing bytes after the array data")
    return array


class StoreError(RuntimeError):
    """The store cannot be written (full disk, permissions); the message is one line meant for the user."""


class Store:
    """Results by key in one diskcache directory, shared by the app, the local worker and the CLI."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.cache = diskcache.Cache(str(self.directory / "results"), size_limit=2**36)

    def has(self, key: str) -> bool:
        """Whether a result is stored under key."""
        return key in self.cache

    def put_arrays(self, key: str, arrays: dict[str, np.ndarray], compress: bool = False) -> None:
        """Store arrays under key (checksummed)."""
        self._put(key, arrays_to_bytes(arrays, compress))

    def get_arrays(self, key: str) -> dict[str, np.ndarray] | None:
        """Arrays under key; None when absent, or when damaged (then the entry is removed, to be recomputed)."""
        payload = self._get(key)
        if payload is None:
            return None
        try:
            return bytes_to_arrays(payload)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            return self._discard(key, f"unreadable arrays ({type(exc).__name__})")

    def put_json(self, key: str, record: dict[str, Any]) -> None:
        """Store a JSON record under key (checksummed)."""
        self._put(key, json.dumps(record, sort_keys=True).encode())

    def get_json(self, key: str) -> dict[str, Any] | None:
        """JSON record under key; None when absent or damaged (then removed)."""
        payload = self._get(key)
        if payload is None:
            return None
        try:
            return json.loads(payload)
        except ValueError:
            return self._discard(key, "unreadable JSON")

    def intact(self, key: str) -> bool:
        """Whether the entry under key is present and passes its checksum (a damaged one is removed)."""
        return self._get(key) is not None

    def _put(self, key: str, payload: bytes) -> None:
        """Write a sealed payload; a full disk (a file write or SQLite's own) becomes a one-line StoreError."""
        try:
            self.cache.set(key, sealed(payload))
        except (OSError, sqlite3.Error) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise StoreError(f"cannot write to the result store in {self.directory}: {reason} (is the disk full? "
                             f"{self.free_bytes() / 1e6:.0f} MB free there; QK_ATLAS_CACHE_DIR sets where results "
                             "go)") from exc

    def free_bytes(self) -> int:
        """Bytes free on the store's filesystem."""
        try:
            return shutil.disk_usage(self.directory).free
        except OSError:
            return 0

    def space_problem(self, min_free_bytes: int) -> str | None:
        """One line when the store's filesystem has less than `min_free_bytes` free (no new work fits), else None."""
        free = self.free_bytes()
        if free >= min_free_bytes:
            return None
        return (f"The result store is full: {free / 1e6:.0f} MB free in {self.directory}, below the "
                f"{min_free_bytes / 1e6:.0f} MB that new work needs (QK_ATLAS_MIN_FREE_MB). Views already computed "
                "still show; free space or point QK_ATLAS_CACHE_DIR elsewhere.")

    def _get(self, key: str) -> bytes | None:
        """The payload under key if present and intact; a damaged entry is removed and gives None."""
        raw = self.cache.get(key)
        if raw is None:
            return None
        payload = unsealed(raw)
        return payload if payload is not None else self._discard(key, "checksum mismatch")

    def _discard(self, key: str, why: str) -> None:
        """Remove a damaged entry so that it is recomputed; logged without its content."""
        log.warning("store entry %s is damaged (%s); removed, it will be recomputed", key, why)
        self.cache.delete(key)
        return None

    def delete(self, key: str) -> None:
        """Forget key."""
        self.cache.delete(key)

    def close(self) -> None:
        """Close the underlying database."""
        self.cache.close()


def open_store(directory: str | Path | None = None) -> Store:
    """Store in `directory`, or in the configured cache directory."""
    if directory is None:
        from workers.config import settings

        directory = settings().cache_dir
    return Store(directory)
