"""Corpora uploaded through the dashboard: stored by content hash in the cache directory, shared by URL.

A file is named `upload-<sha256[:16]>.<txt|csv|jsonl>` under `<cache>/uploads/`, never by the user's file name,
with a small JSON sidecar (original name, texts, bytes). Any user of the same deployment can open it by that name.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from workers.config import settings
from workers.corpus import CorpusError, load_corpus_file

UPLOAD_NAME = re.compile(r"^upload-[0-9a-f]{16}\.(txt|csv|jsonl)$")
SUFFIXES = (".txt", ".csv", ".jsonl")


def uploads_dir() -> Path:
    """Where uploads live (inside the cache directory, so team workers see them on the shared volume)."""
    return settings().cache_dir / "uploads"


def upload_path(ref: str) -> Path | None:
    """The file of an uploaded corpus name, or None when the name is not an upload or is gone."""
    if not UPLOAD_NAME.match(ref):
        return None
    path = uploads_dir() / ref
    return path if path.is_file() else None


def save_upload(raw: bytes, filename: str) -> tuple[str, int]:
    """Validate and keep an uploaded corpus file; (its corpus name, texts kept). CorpusError with one line."""
    limit = settings().max_upload_bytes
    if len(raw) > limit:
        raise CorpusError(f"{filename}: {len(raw) / 1e6:.1f} MB is over the upload limit of {limit / 1e6:.0f} MB "
                          "(QK_ATLAS_MAX_UPLOAD_BYTES)")
    suffix = Path(filename).suffix.lower()
    if suffix not in SUFFIXES:
        raise CorpusError(f"{filename}: unsupported corpus file type {suffix or '(none)'!r}: use .txt, .csv or .jsonl")
    ref = f"upload-{hashlib.sha256(raw).hexdigest()[:16]}{suffix}"
    directory = uploads_dir()
    directory.mkdir(parents=True, exist_ok=True)
    shown = re.sub(r"[^\w.\- ]", "_", Path(filename).name)[-100:]  # for messages only; never a path on disk
    with tempfile.TemporaryDirectory(dir=directory, prefix=".incoming-") as incoming:
        path = Path(incoming) / f"corpus{suffix}"
        path.write_bytes(raw)
        try:
            corpus = load_corpus_file(path, max_texts=settings().max_texts)
        except CorpusError as exc:
            raise CorpusError(str(exc).replace(str(path), shown).replace(path.name, shown)) from exc
        path.replace(directory / ref)
    record = {"name": shown, "texts": len(corpus.texts), "bytes": len(raw), "time": time.time()}
    (directory / f"{ref}.json").write_text(json.dumps(record))
    return ref, len(corpus.texts)


def list_uploads() -> list[dict[str, Any]]:
    """Uploaded corpora, newest first: ref, name, texts, bytes."""
    directory = uploads_dir()
    if not directory.is_dir():
        return []
    found = []
    for sidecar in directory.glob("upload-*.json"):
        ref = sidecar.name.removesuffix(".json")
        if UPLOAD_NAME.match(ref) and (directory / ref).is_file():
            try:
                found.append({"ref": ref, **json.loads(sidecar.read_text())})
            except ValueError:
                continue
    return sorted(found, key=lambda record: -record.get("time", 0))
