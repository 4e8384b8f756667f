"""The bundled `tiny-vit` (a small ViT trained on scikit-learn's handwritten digits by scripts/train_tiny_vit.py)
and the head scores that say where its heads look, measured from its own attention on held-out digits.

Tokens are CLS, then the grid x grid patches row by row. For every patch query a head's attention is summed over
the keys in one relation to it: the same patch, its 4 neighbours (up, down, left, right), the other patches of its
row, the other patches of its column, CLS, and the patches left of it (any row: a smaller column), right of it,
above it (a smaller row) and below it. A head spreading its attention evenly over all 1 + grid² tokens would give
each relation its share of the keys: the uniform baseline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

TINY_VIT_ALIAS = "tiny-vit"
CLASSIFIER_FILE = "classifier.safetensors"  # the linear classifier on the pooled CLS, beside the ViTModel
RELATIONS = ("same_patch", "neighbours", "same_row", "same_column", "cls", "left", "right", "above", "below")


def tiny_vit_path() -> Path:
    """Folder of the tiny-vit weights and image processor inside the installed package."""
    return Path(__file__).resolve().parent.parent / "data" / "tiny_vit"


def relation_masks(grid: int) -> dict[str, np.ndarray]:
    """For each relation, which keys each patch query has in it: bool [grid², 1 + grid²] (key 0 is CLS)."""
    row, col = np.divmod(np.arange(grid * grid), grid)
    same_row = row[:, None] == row[None, :]
    same_col = col[:, None] == col[None, :]
    distance = np.abs(row[:, None] - row[None, :]) + np.abs(col[:, None] - col[None, :])
    itself = np.eye(grid * grid, dtype=bool)
    cls = np.zeros((grid * grid, 1), dtype=bool)
    patches = {"same_patch": itself, "neighbours": distance == 1, "same_row": same_row & ~itself,
               "same_column": same_col & ~itself, "left": col[None, :] < col[:, None],
               "right": col[None, :] > col[:, None], "above": row[None, :] < row[:, None],
               "below": row[None, :] > row[:, None]}
    masks = {name: np.concatenate([cls, mask], axis=1) for name, mask in patches.items()}
    masks["cls"] = np.concatenate([~cls, np.zeros_like(itself)], axis=1)
    return {name: masks[name] for name in RELATIONS}


def uniform_shares(grid: int) -> dict[str, float]:
    """The share of a patch query's attention each relation gets from a head attending evenly to every token."""
    return {name: float(mask.sum(axis=1).mean() / mask.shape[1]) for name, mask in relation_masks(grid).items()}


def relation_sums(maps: np.ndarray, grid: int) -> dict[str, np.ndarray]:
    """maps [images, layers, heads, n, n] -> per relation, the attention of every patch query summed over the keys
    in that relation, summed over queries and images [layers, heads] (divide by images x grid² for the mean)."""
    patch_queries = maps[..., 1:, :].astype(np.float64)  # [images, layers, heads, grid², n]
    return {name: np.einsum("ilhqk,qk->lh", patch_queries, mask) for name, mask in relation_masks(grid).items()}


def relation_shares(maps: np.ndarray, grid: int) -> dict[str, np.ndarray]:
    """Mean share of a patch query's attention on each relation's keys, over images and patches [layers, heads]."""
    count = maps.shape[0] * grid * grid
    return {name: total / count for name, total in relation_sums(maps, grid).items()}


def attention_maps(model: Any, pixel_values: Any) -> np.ndarray:
    """The model's own attention (a ViTModel, eager attention) for a batch of images [images, layers, heads, n, n]."""
    import torch

    with torch.inference_mode():
        output = model(pixel_values=pixel_values, output_attentions=True)
    return torch.stack(output.attentions, dim=1).float().numpy()


def heads_found(model: Any, pixel_values: Any, batch_size: int = 60) -> dict[str, Any]:
    """Where each head looks, from its own attention on `pixel_values` [images, 3, side, side]: per relation the
    mean share of a patch's attention [layers][heads], beside the uniform baseline; rounded to 3 digits."""
    grid = int(model.config.image_size) // int(model.config.patch_size)
    totals: dict[str, np.ndarray] = {}
    for start in range(0, len(pixel_values), batch_size):
        sums = relation_sums(attention_maps(model, pixel_values[start:start + batch_size]), grid)
        totals = {name: totals.get(name, 0.0) + value for name, value in sums.items()}
    count = len(pixel_values) * grid * grid
    return {"images": len(pixel_values), "grid": grid,
            "uniform": {name: round(share, 3) for name, share in uniform_shares(grid).items()},
            "shares": {name: np.round(totals[name] / count, 3).tolist() for name in RELATIONS}}


def strongest_heads(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per relation, the head giving it the largest share: {relation: {head "LxHy", share, uniform, times}}."""
    out = {}
    for name in RELATIONS:
        shares = np.array(found["shares"][name])
        layer, head = np.unravel_index(shares.argmax(), shares.shape)
        uniform = found["uniform"][name]
        out[name] = {"head": f"L{layer}H{head}", "share": float(shares[layer, head]), "uniform": uniform,
                     "times_uniform": round(float(shares[layer, head]) / uniform, 1)}
    return out


def load_classifier(folder: Path | None = None) -> dict[str, Any]:
    """The saved linear classifier: {"weight": [labels, hidden], "bias": [labels]} tensors."""
    from safetensors.torch import load_file

    return load_file(str((folder or tiny_vit_path()) / CLASSIFIER_FILE))


def classifier_logits(model: Any, classifier: dict[str, Any], pixel_values: Any, batch_size: int = 256) -> np.ndarray:
    """Digit logits [images, labels]: the linear classifier on the model's pooled CLS (its pooler output)."""
    import torch

    with torch.inference_mode():
        pooled = torch.cat([model(pixel_values=pixel_values[i:i + batch_size]).pooler_output
                            for i in range(0, len(pixel_values), batch_size)])
        return (pooled @ classifier["weight"].T + classifier["bias"]).numpy()


def held_out_pixels(processor: Any) -> tuple[Any, np.ndarray]:
    """Every held-out digit (scikit-learn's digits outside tiny-vit's training split) as the image processor
    gives it to the model [images, 3, side, side], and the labels [images]."""
    from workers.corpora.images import digit_split, digits

    images, labels = digits()
    _train, held_out = digit_split(len(images))
    return pixels(processor, images[held_out]), labels[held_out]


def pixels(processor: Any, images: np.ndarray) -> Any:
    """uint8 images [n, h, w, 3] -> the processor's pixel_values tensor [n, 3, side, side]."""
    return processor(images=list(images), return_tensors="pt")["pixel_values"]
