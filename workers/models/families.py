"""Model families: where each architecture keeps its attention projections, and the ModelSpec read from a config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workers.contracts.specs import ModelError, ModelSpec


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


def family_for(model_type: str) -> Family:
    """The family entry for a transformers `model_type`, or a ModelError naming the supported ones."""
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    supported = ", ".join(f"{f.name} ({'/'.join(f.model_types)})" for f in FAMILIES)
    raise ModelError(
        f"model type {model_type!r} is not supported; supported families: {supported}. "
        "To add one, append a Family entry to workers/models/families.py's FAMILIES."
    )


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
