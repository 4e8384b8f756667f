"""Content-addressed result store over diskcache: arrays as .npz bytes, small records as JSON."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import diskcache
import numpy as np

SCHEMA_VERSION = 3  # 2: q and k stored per head; 3: q and k stored as float16


def content_key(stage: str, params: dict[str, Any]) -> str:
    """`stage-<sha256>` of the canonical JSON of everything that determines a result, schema included."""
    canonical = json.dumps({**params, "schema": SCHEMA_VERSION, "stage": stage}, sort_keys=True, default=str)
    return f"{stage}-{hashlib.sha256(canonical.encode()).hexdigest()[:40]}"


def arrays_to_bytes(arrays: dict[str, np.ndarray], compress: bool = False) -> bytes:
    """dict of arrays -> .npz bytes (no pickles)."""
    buffer = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def bytes_to_arrays(raw: bytes) -> dict[str, np.ndarray]:
    """.npz bytes -> dict of arrays, refusing pickled objects."""
    with np.load(io.BytesIO(raw), allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


class Store:
    """Results by key in one diskcache directory, shared by the app, the local worker and the CLI."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.cache = diskcache.Cache(str(self.directory / "results"), size_limit=2**36)

    def has(self, key: str) -> bool:
        """Whether a result is stored under key."""
        return key in self.cache

    def put_arrays(self, key: str, arrays: dict[str, np.ndarray], compress: bool = False) -> None:
        """Store arrays under key."""
        self.cache.set(key, arrays_to_bytes(arrays, compress))

    def get_arrays(self, key: str) -> dict[str, np.ndarray] | None:
        """Arrays under key, or None."""
        raw = self.cache.get(key)
        return None if raw is None else bytes_to_arrays(raw)

    def put_json(self, key: str, record: dict[str, Any]) -> None:
        """Store a JSON record under key."""
        self.cache.set(key, json.dumps(record, sort_keys=True))

    def get_json(self, key: str) -> dict[str, Any] | None:
        """JSON record under key, or None."""
        raw = self.cache.get(key)
        return None if raw is None else json.loads(raw)

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
