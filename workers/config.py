"""Settings read from `QK_ATLAS_*` environment variables (documented in docs/configuration.md)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")  # QK_ATLAS_DEVICE: auto = a CUDA GPU when torch sees one, else cpu
DTYPES = ("float32", "bfloat16", "float16")  # QK_ATLAS_DTYPE: the precision the model runs in
DEVICE_MAPS = ("none", "auto")  # QK_ATLAS_DEVICE_MAP: auto spreads a model over the GPUs (accelerate)


def _int_env(name: str, default: int) -> int:
    """Integer environment variable, or `default` when unset; a clear error when not an integer."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    """Everything configurable; read once per call of `settings()` so tests can change the environment."""

    cache_dir: Path
    redis_url: str | None
    batch_size: int
    max_tokens_per_text: int
    max_total_tokens: int
    max_texts: int
    corpora: dict[str, str]
    local_workers: int
    auth_users: dict[str, str]
    max_upload_bytes: int
    max_jobs_per_user: int
    secret_key: str | None
    min_free_bytes: int
    uploads_max_bytes: int
    uploads_max_age_days: int
    device: str
    dtype: str
    device_map: str | None

    def device_may_be_missing(self) -> bool:
        """Whether the device settings could name what this machine lacks (auto and cpu always exist, and need no
        accelerate): only then does a process import torch as it starts, to check them."""
        return self.device not in ("auto", "cpu") or self.device_map is not None


def _parse_corpora(raw: str) -> dict[str, str]:
    """`name=path,name2=path2` -> {name: path}."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ValueError(f"QK_ATLAS_CORPORA entries must look like name=/path/file.txt, got {item!r}")
        out[name.strip()] = path.strip()
    return out


def settings() -> Settings:
    """Current settings from the environment."""
    default_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "qk-atlas"
    return Settings(
        cache_dir=Path(os.environ.get("QK_ATLAS_CACHE_DIR", default_cache)),
        redis_url=_redis_url(),
        batch_size=_int_env("QK_ATLAS_BATCH_SIZE", 64),
        max_tokens_per_text=_int_env("QK_ATLAS_MAX_TOKENS_PER_TEXT", 128),
        max_total_tokens=_int_env("QK_ATLAS_MAX_TOKENS", 100_000),
        max_texts=_int_env("QK_ATLAS_MAX_TEXTS", 5000),
        corpora=_parse_corpora(os.environ.get("QK_ATLAS_CORPORA", "")),
        local_workers=max(1, min(16, _int_env("QK_ATLAS_LOCAL_WORKERS", min(2, os.cpu_count() or 1)))),
        auth_users=_auth_users(),
        max_upload_bytes=_int_env("QK_ATLAS_MAX_UPLOAD_BYTES", 20 * 10**6),
        max_jobs_per_user=max(1, _int_env("QK_ATLAS_MAX_JOBS_PER_USER", 300)),
        secret_key=os.environ.get("QK_ATLAS_SECRET_KEY") or None,
        min_free_bytes=max(0, _int_env("QK_ATLAS_MIN_FREE_MB", 200)) * 10**6,
        uploads_max_bytes=max(1, _int_env("QK_ATLAS_UPLOADS_MAX_MB", 500)) * 10**6,
        uploads_max_age_days=max(1, _int_env("QK_ATLAS_UPLOADS_MAX_AGE_DAYS", 30)),
        device=_device(),
        dtype=_choice_env("QK_ATLAS_DTYPE", DTYPES),
        device_map=_device_map(),
    )


def _choice_env(name: str, allowed: tuple[str, ...]) -> str:
    """One of `allowed` (the first when unset); a one-line error naming them all otherwise."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return allowed[0]
    if raw not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {raw!r}")
    return raw


def _device() -> str:
    """QK_ATLAS_DEVICE: auto (default), cpu, cuda, cuda:N or mps; whether it exists is checked where torch runs
    (workers.models.devices)."""
    raw = os.environ.get("QK_ATLAS_DEVICE", "").strip().lower() or "auto"
    if raw not in DEVICES and not re.fullmatch(r"cuda:\d+", raw):
        raise ValueError(f"QK_ATLAS_DEVICE must be one of {', '.join(DEVICES)} (N a GPU's number); got {raw!r}")
    return raw


def _device_map() -> str | None:
    """QK_ATLAS_DEVICE_MAP: None (one device) or "auto" (the model's layers spread over the GPUs, then CPU memory);
    auto leaves the placement to accelerate, so QK_ATLAS_DEVICE must leave it open (auto or cuda)."""
    value = _choice_env("QK_ATLAS_DEVICE_MAP", DEVICE_MAPS)
    if value == "none":
        return None
    device = _device()
    if device not in ("auto", "cuda"):
        raise ValueError(f"QK_ATLAS_DEVICE_MAP=auto places the model over every GPU itself: set QK_ATLAS_DEVICE to "
                         f"auto or cuda, not {device!r}")
    return value


PLACEHOLDER_PASSWORDS = ("change-me", "changeme", "password")


def _redis_url() -> str | None:
    """QK_ATLAS_REDIS_URL (None: embedded mode); a placeholder password is refused, never used."""
    url = os.environ.get("QK_ATLAS_REDIS_URL") or None
    if url is not None:
        from urllib.parse import urlsplit

        if (urlsplit(url).password or "").lower() in PLACEHOLDER_PASSWORDS:
            raise ValueError("QK_ATLAS_REDIS_URL uses a placeholder Redis password: set REDIS_PASSWORD to a secret")
    return url


def _auth_users() -> dict[str, str]:
    """HTTP basic-auth users from QK_ATLAS_AUTH_FILE (one `user:password` per line) and/or QK_ATLAS_AUTH_USERS
    (`user:password,user2:password2`); empty (no access control) unless one is set."""
    entries = [e for e in os.environ.get("QK_ATLAS_AUTH_USERS", "").split(",") if e.strip()]
    path = os.environ.get("QK_ATLAS_AUTH_FILE", "").strip()
    if path:
        try:
            entries += [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
        except OSError as exc:
            raise ValueError(f"QK_ATLAS_AUTH_FILE {path}: {exc.strerror}") from exc
    users: dict[str, str] = {}
    for number, entry in enumerate(entries, start=1):
        user, sep, password = entry.strip().partition(":")
        if not sep or not user or not password:
            raise ValueError(f"access-control entry {number} must look like user:password")  # never echoes it
        users[user] = password
    return users
