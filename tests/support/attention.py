"""Attention computed two independent ways: by the model itself, and rebuilt from extracted q and k; and a
synthetic head whose attention is known."""

from __future__ import annotations

import numpy as np
import torch

from workers.core.attention import text_attention


def model_attentions(loaded, texts: list[str]) -> list[np.ndarray]:
    """The model's own output_attentions per text, padding cut: list of [layer, head, pos, pos]."""
    encoded = loaded.tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.inference_mode():
        out = loaded.model(**encoded, output_attentions=True)
    lengths = encoded["attention_mask"].sum(dim=1).tolist()
    stacked = torch.stack(out.attentions).double().numpy()  # [layer, batch, head, pos, pos]
    return [stacked[:, b, :, :n, :n] for b, n in enumerate(lengths)]


def model_image_attentions(loaded, images: list[np.ndarray]) -> list[np.ndarray]:
    """The model's own output_attentions per image, through its image processor: list of [layer, head, pos, pos]."""
    pixels = loaded.tokenizer(images=list(images), return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        out = loaded.model(pixel_values=pixels, output_attentions=True)
    stacked = torch.stack(out.attentions).double().numpy()  # [layer, batch, head, pos, pos]
    return [stacked[:, b] for b in range(stacked.shape[1])]


def rebuilt_attentions(bundle, spec) -> list[np.ndarray]:
    """softmax(q kᵀ/√d + mask) per text from the extracted vectors: list of [layer, head, pos, pos]."""
    text_id = bundle.tokens["text_id"]
    out = []
    for text in range(text_id.max() + 1):
        rows = np.flatnonzero(text_id == text)
        out.append(np.stack([text_attention(bundle.q[layer][:, rows], bundle.k[layer][:, rows], spec.causal)
                             for layer in range(spec.n_layers)]))
    return out


def one_key_head(texts: int, length: int, d: int = 32, seed: int = 0, causal: bool = False):
    """q, k [N, d] and text ids where every query attends (almost) only to one chosen key of its text:
    q_i = 12 k_target(i), keys random unit vectors (nearly orthogonal); targets a random key (an earlier one
    under a causal mask). Returns q, k, text_id, target [N] (row index of each query's key)."""
    rng = np.random.default_rng(seed)
    n = texts * length
    k = rng.normal(size=(n, d))
    k /= np.linalg.norm(k, axis=1, keepdims=True)
    text_id = np.repeat(np.arange(texts), length)
    start = text_id * length
    position = np.arange(n) - start
    within = np.array([rng.integers(0, p + 1) if causal else rng.integers(0, length) for p in position])
    target = start + within
    q = 12.0 * k[target] * np.sqrt(d)
    return q.astype(np.float32), k.astype(np.float32), text_id, target


def own_attentions(loaded, corpus) -> list[np.ndarray]:
    """The model's own output_attentions for each text or image of a corpus, fed as the extraction feeds it (input
    ids and mask only; pixels), padding cut: list of [layer, head, pos, pos]."""
    if loaded.spec.modality == "image":
        return model_image_attentions(loaded, list(corpus.images))
    encoded = loaded.tokenizer(list(corpus.texts), padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.inference_mode():
        out = loaded.model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"],
                           output_attentions=True)
    stacked = torch.stack(out.attentions).double().numpy()  # [layer, batch, head, pos, pos]
    return [stacked[:, b, :, :n, :n] for b, n in enumerate(encoded["attention_mask"].sum(dim=1).tolist())]
