"""The bundled `tiny-vit` (a small ViT trained on scikit-learn's handwritten digits by scripts/train_tiny_vit.py)
and the head scores that say where its heads look, measured from its own attention on held-out digits.

Tokens are CLS, then the grid x grid patches row by row. For every patch query a head's attention is summed over
the keys in one relation to it: the same patch, its 4 neighbours (up, down, left, right), the other patches of its
row, the other patches of its column, the patches left of it (any row: a smaller column), right of it, above it (a
smaller row) and below it, CLS, and the ink patches (those whose pixels average at least half brightness: the
strokes of a digit). For the CLS query, its attention on the ink patches. A head spreading its attention evenly over
all 1 + grid² tokens would give each relation its share of the keys: the uniform baseline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

TINY_VIT_ALIAS = "tiny-vit"
CLASSIFIER_FILE = "classifier.safetensors"  # the linear classifier on the pooled CLS, beside the ViTModel
RELATIONS = ("same_patch", "neighbours", "same_row", "same_column", "left", "right", "above", "below", "cls", "ink",
             "cls_to_ink")
POSITIONAL = RELATIONS[:9]  # relations of positions alone (the same for every image)
INK = 128  # a patch is ink when its pixels average at least this (of 255)


_FOLDER = Path(__file__).resolve().parent.parent / "data" / "tiny_vit"


def tiny_vit_path() -> Path:
    """Folder of the tiny-vit weights and image processor inside the installed package."""
    return _FOLDER


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
    return {name: masks[name] for name in POSITIONAL}


def ink_patches(images: np.ndarray, patch: int) -> np.ndarray:
    """uint8 images [n, side, side, 3] -> which patches are ink, row by row: bool [n, grid²]."""
    n, side = images.shape[:2]
    grid = side // patch
    blocks = images[:, :grid * patch, :grid * patch].reshape(n, grid, patch, grid, patch, -1)
    return blocks.mean(axis=(2, 4, 5)).reshape(n, grid * grid) >= INK


def uniform_shares(grid: int, ink: np.ndarray) -> dict[str, float]:
    """The share of its attention each relation gets from a head attending evenly to every token, over images whose
    ink patches are `ink` [images, grid²]."""
    shares = {name: float(mask.sum(axis=1).mean() / mask.shape[1]) for name, mask in relation_masks(grid).items()}
    ink_share = float(ink.sum(axis=1).mean() / (1 + grid * grid))
    return {**shares, "ink": ink_share, "cls_to_ink": ink_share}


def relation_sums(maps: np.ndarray, grid: int, ink: np.ndarray) -> dict[str, np.ndarray]:
    """maps [images, layers, heads, n, n], ink [images, grid²] -> per relation, the attention summed over the keys in
    that relation, summed over images and queries (the patches; CLS alone for cls_to_ink) [layers, heads]."""
    patch_queries = maps[..., 1:, :].astype(np.float64)  # [images, layers, heads, grid², n]
    sums = {name: np.einsum("ilhqk,qk->lh", patch_queries, mask) for name, mask in relation_masks(grid).items()}
    sums["ink"] = np.einsum("ilhqk,ik->lh", patch_queries[..., 1:], ink.astype(np.float64))
    sums["cls_to_ink"] = np.einsum("ilhk,ik->lh", maps[..., 0, 1:].astype(np.float64), ink.astype(np.float64))
    return sums


def relation_shares(maps: np.ndarray, grid: int, ink: np.ndarray) -> dict[str, np.ndarray]:
    """Mean share of a query's attention on each relation's keys, over images and queries [layers, heads]."""
    images = maps.shape[0]
    return {name: total / (images if name == "cls_to_ink" else images * grid * grid)
            for name, total in relation_sums(maps, grid, ink).items()}


def attention_maps(model: Any, pixel_values: Any) -> np.ndarray:
    """The model's own attention (a ViTModel, eager attention) for a batch of images [images, layers, heads, n, n]."""
    import torch

    with torch.inference_mode():
        output = model(pixel_values=pixel_values, output_attentions=True)
    return torch.stack(output.attentions, dim=1).float().numpy()


def heads_found(model: Any, pixel_values: Any, ink: np.ndarray, batch_size: int = 60) -> dict[str, Any]:
    """Where each head looks, from its own attention on `pixel_values` [images, 3, side, side] whose ink patches are
    `ink` [images, grid²]: per relation the mean share of a query's attention [layers][heads], beside the uniform
    baseline; rounded to 3 digits."""
    grid = int(model.config.image_size) // int(model.config.patch_size)
    totals: dict[str, np.ndarray] = {}
    for start in range(0, len(pixel_values), batch_size):
        maps = attention_maps(model, pixel_values[start:start + batch_size])
        sums = relation_sums(maps, grid, ink[start:start + batch_size])
        totals = {name: totals.get(name, 0.0) + value for name, value in sums.items()}
    images = len(pixel_values)
    return {"images": images, "grid": grid,
            "uniform": {name: round(share, 3) for name, share in uniform_shares(grid, ink).items()},
            "shares": {name: np.round(totals[name] / (images if name == "cls_to_ink" else images * grid * grid),
                                      3).tolist() for name in RELATIONS}}


def strongest_heads(found: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per relation, the heads giving it the largest and the smallest share:
    {relation: {"most" | "least": {head "LxHy", share, uniform, times_uniform}}}."""
    out = {}
    for name in RELATIONS:
        shares, uniform = np.array(found["shares"][name]), found["uniform"][name]
        out[name] = {}
        for end, index in (("most", shares.argmax()), ("least", shares.argmin())):
            layer, head = np.unravel_index(index, shares.shape)
            share = float(shares[layer, head])
            out[name][end] = {"head": f"L{layer}H{head}", "share": share, "uniform": uniform,
                              "times_uniform": round(share / uniform, 2)}
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


def held_out(processor: Any, patch: int = 4) -> tuple[Any, np.ndarray, np.ndarray]:
    """Every held-out digit (scikit-learn's digits outside tiny-vit's training split) as the image processor gives
    it to the model [images, 3, side, side], the labels [images] and the ink patches [images, grid²]."""
    from workers.corpora.images import digit_split, digits

    images, labels = digits()
    _train, kept = digit_split(len(images))
    return pixels(processor, images[kept]), labels[kept], ink_patches(images[kept], patch)


def pixels(processor: Any, images: np.ndarray) -> Any:
    """uint8 images [n, h, w, 3] -> the processor's pixel_values tensor [n, 3, side, side]."""
    return processor(images=list(images), return_tensors="pt")["pixel_values"]
