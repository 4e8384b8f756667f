"""A store that starts with the default corpus extracted: computed once a session, copied into a test's cache.

Most browser tests check what the page does with pictures, not the extraction every one of them would otherwise
wait for; the pictures, attention and summaries stay theirs to compute (the copy holds the extraction alone)."""

from __future__ import annotations

import shutil
from pathlib import Path


def extract_default_corpus(directory: Path) -> None:
    """Store the bundled model's q/k/v of every head over the default corpus in `directory` (the store closed)."""
    from workers.contracts.requests import HeadRequest
    from workers.pipeline.stages import ensure_extraction
    from workers.store import open_store

    store = open_store(directory)
    try:
        ensure_extraction(HeadRequest(), store)
    finally:
        store.close()


def copy_store(source: Path, target: Path) -> None:
    """Copy a closed store into `target` (every file copied: a test that damages its copy leaves the source intact)."""
    shutil.copytree(source, target, dirs_exist_ok=True)
