"""Corpora uploaded through the dashboard: stored by content hash in the cache directory, shared by URL.

A file is named `upload-<sha256[:16]>.<txt|csv|jsonl>` under `<cache>/uploads/`, never by the user's file name,
with a small JSON sidecar (original name, texts, bytes, time, owner). Anyone with a link can open it by that name;
the corpus menu lists an upload only to the browser that made it (its owner id). Uploads older than
QK_ATLAS_UPLOADS_MAX_AGE_DAYS are gone, and the oldest are evicted once all of them pass QK_ATLAS_UPLOADS_MAX_MB.
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
from workers.corpora.corpus import CorpusError, load_corpus_file

UPLOAD_NAME = re.compile(r"^upload-[0-9a-f]{16}\.(txt|csv|jsonl)$")
SUFFIXES = (".txt", ".csv", ".jsonl")


def uploads_dir() -> Path:
    """Where uploads live (inside the cache directory, so team workers see them on the shared volume)."""
    return settings().cache_dir / "uploads"


def upload_path(ref: str) -> Path | None:
    """The file of an uploaded corpus name, or None when the name is not an upload, is gone or has expired."""
    if not UPLOAD_NAME.match(ref):
        return None
    path = uploads_dir() / ref
    record = _record(path)
    return path if record is not None and not _expired(record) else None


def upload_name(ref: str) -> str | None:
    """The file name an uploaded corpus came with (as shown in messages), or None when `ref` is no live upload."""
    path = upload_path(ref)
    record = _record(path) if path else None
    return str(record["name"]) if record and "name" in record else None


def _record(path: Path) -> dict[str, Any] | None:
    """The sidecar of an upload file, or None when either is missing or unreadable."""
    try:
        record = json.loads((path.parent / f"{path.name}.json").read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and path.is_file() else None


def _expired(record: dict[str, Any]) -> bool:
    """Whether an upload is older than QK_ATLAS_UPLOADS_MAX_AGE_DAYS."""
    return time.time() - float(record.get("time", 0)) > settings().uploads_max_age_days * 86400


def save_upload(raw: bytes, filename: str, owner: str = "") -> tuple[str, int]:
    """Validate and keep an uploaded corpus file for the browser `owner`; (its corpus name, texts kept), the oldest
    uploads evicted when all of them pass the quota. CorpusError with one line."""
    limit = min(settings().max_upload_bytes, settings().uploads_max_bytes)
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
    owners = sorted({*(_record(directory / ref) or {}).get("owners", []), owner} - {""})  # same file, two owners
    record = {"name": shown, "texts": len(corpus.texts), "bytes": len(raw), "time": time.time(), "owners": owners}
    (directory / f"{ref}.json").write_text(json.dumps(record))
    evict_uploads(keep=ref)
    return ref, len(corpus.texts)


def _all_uploads() -> list[dict[str, Any]]:
    """Every upload with a readable sidecar, newest first: ref, name, texts, bytes, time, owners."""
    directory = uploads_dir()
    if not directory.is_dir():
        return []
    found = []
    for sidecar in directory.glob("upload-*.json"):
        ref = sidecar.name.removesuffix(".json")
        record = _record(directory / ref) if UPLOAD_NAME.match(ref) else None
        if record is not None:
            found.append({"ref": ref, **record})
    return sorted(found, key=lambda record: -record.get("time", 0))


def list_uploads(owner: str | None = None) -> list[dict[str, Any]]:
    """Live (not expired) uploads, newest first; only those `owner` made when an owner is given."""
    live = [record for record in _all_uploads() if not _expired(record)]
    return live if owner is None else [record for record in live if owned_by(record, owner)]


def owned_by(record: dict[str, Any], owner: str) -> bool:
    """Whether the browser `owner` uploaded this corpus (an empty owner owns nothing)."""
    return bool(owner) and owner in record.get("owners", [])


def evict_uploads(keep: str = "") -> list[str]:
    """Remove expired uploads, then the oldest others until all fit QK_ATLAS_UPLOADS_MAX_MB; the removed names."""
    quota, removed = settings().uploads_max_bytes, []
    uploads = _all_uploads()
    total = sum(int(record.get("bytes", 0)) for record in uploads)
    for record in reversed(uploads):  # oldest first
        if record["ref"] != keep and (_expired(record) or total > quota):
            _remove(record["ref"])
            removed.append(record["ref"])
            total -= int(record.get("bytes", 0))
    return removed


def _remove(ref: str) -> None:
    """Delete an upload's file and sidecar."""
    for path in (uploads_dir() / ref, uploads_dir() / f"{ref}.json"):
        path.unlink(missing_ok=True)
