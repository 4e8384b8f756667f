"""Loading a model offline-first with eager attention, eval mode, on the configured device and in the configured
dtype (workers.models.devices); the only place weights are read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.contracts.specs import ModelError, ModelSpec
from workers.models.devices import CPU_FLOAT32, Placement, placement
from workers.models.families import Family, family_for, spec_from_config
from workers.models.registry import local_files, model_source


@dataclass
class LoadedModel:
    """A model in eval mode with eager attention, its tokenizer, its spec, and where it runs."""

    model: Any
    tokenizer: Any
    spec: ModelSpec
    family: Family
    placement: Placement = CPU_FLOAT32

    @property
    def input_device(self) -> Any:
        """The device its inputs go to (a model spread by accelerate: that of its first weights)."""
        return self.model.device if self.placement.device_map else self.placement.device


def wrap_model(model: Any, tokenizer: Any, model_id: str, revision: str, where: Placement = CPU_FLOAT32
               ) -> LoadedModel:
    """LoadedModel around an already built model (e.g. a tiny random one in tests), moved to `where` (unless
    accelerate placed it); forces eager attention."""
    model.eval()
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")  # sdpa returns no attention weights to check against
    else:  # older transformers
        model.config._attn_implementation = "eager"
    if where.device_map is None:
        model.to(device=where.device, dtype=where.dtype)
    elif model.dtype != where.dtype:
        raise ModelError(f"model {model_id!r} loaded as {model.dtype}, not the {where.dtype} asked for")
    spec, family = spec_from_config(model.config.to_dict(), model_id, revision)
    return LoadedModel(model=model, tokenizer=tokenizer, spec=spec, family=family, placement=where)


def load_model(ref: str, where: Placement | None = None) -> LoadedModel:
    """Load a registered model offline-first, eager attention, eval mode, on `where` (default: the configured
    QK_ATLAS_DEVICE, QK_ATLAS_DTYPE and QK_ATLAS_DEVICE_MAP); never trusts remote code."""
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # the worker's log is not a terminal; the job's progress says it

    where = where or placement()
    source = model_source(ref)
    path = local_files(source)
    config = json.loads((path / "config.json").read_text())
    family = family_for(config.get("model_type", "?"))  # refuse unsupported architectures before loading
    spread = {"device_map": where.device_map} if where.device_map else {}
    try:
        processor = _load_processor(path, family)
        model = AutoModel.from_pretrained(path, local_files_only=True, trust_remote_code=False,
                                          attn_implementation="eager", dtype=where.dtype, **spread)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model {ref!r}: {str(exc).splitlines()[0]}") from exc
    return wrap_model(model, processor, ref, source.revision, where)


def _load_processor(path: Path, family: Family) -> Any:
    """The tokenizer (text) or image processor (images) saved beside the weights."""
    if family.modality == "image":
        from transformers import AutoImageProcessor

        return AutoImageProcessor.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
