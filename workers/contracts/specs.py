"""What every process may know about a model without loading it: its alias, its shape, and the error users read."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

BUNDLED_ALIAS = "minilm"


class ModelError(ValueError):
    """A model that cannot be used; the message is one line meant for the user."""


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
