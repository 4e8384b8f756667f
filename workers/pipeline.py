"""The data flow for one head: corpus -> tokens + q/k (per layer) -> normalised q/k -> coords, each cached by key.

Key resolution imports no torch, so the dashboard can check the store for finished views itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from workers.attention import kv_head_for
from workers.config import settings
from workers.corpus import DEFAULT_CORPUS, Corpus, load_corpus
from workers.models import BUNDLED_ALIAS, ModelSpec, read_spec, resolve_model
from workers.normalize import DEFAULT_NORMALIZATION, NORMALIZATIONS, normalize
from workers.project import DEFAULT_METHOD, METHODS, Projector
from workers.store import Store, content_key

Progress = Callable[[float, str], None]
PROJECTION_PARAMS: dict[str, dict[str, Any]] = {"pca": {}, "umap": {"n_neighbors": 15, "min_dist": 0.1}, "tsne": {}}


def _no_progress(fraction: float, message: str) -> None:
    """Default progress sink."""


@dataclass(frozen=True)
class HeadRequest:
    """Everything that determines one head's picture."""

    model: str = BUNDLED_ALIAS
    corpus: str = DEFAULT_CORPUS
    layer: int = 0
    head: int = 0
    norm: str = DEFAULT_NORMALIZATION
    method: str = DEFAULT_METHOD
    dims: int = 2

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (what travels to workers)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeadRequest:
        """Rebuild from `to_dict` output."""
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


@dataclass(frozen=True)
class ViewKeys:
    """Store keys of everything one head view reads."""

    tokens: str
    qk: str
    coords: str


def validate(request: HeadRequest, spec: ModelSpec) -> None:
    """ValueError with a one-line message when the request does not fit the model."""
    if not 0 <= request.layer < spec.n_layers:
        raise ValueError(f"layer {request.layer} out of range 0..{spec.n_layers - 1}")
    if not 0 <= request.head < spec.n_heads:
        raise ValueError(f"head {request.head} out of range 0..{spec.n_heads - 1}")
    if request.norm not in NORMALIZATIONS:
        raise ValueError(f"unknown normalisation {request.norm!r}")
    if request.method not in METHODS:
        raise ValueError(f"unknown projection {request.method!r}")
    if request.dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {request.dims}")


def corpus_for(ref: str) -> Corpus:
    """The corpus a request names, under the configured limits."""
    config = settings()
    return load_corpus(ref, max_texts=config.max_texts, named=config.corpora)


def extraction_params(model: str, corpus: Corpus) -> dict[str, Any]:
    """What determines the tokens table and q/k: model revision, corpus content, truncation."""
    _path, revision = resolve_model(model)
    return {"model": model, "revision": revision, "corpus": corpus.content_hash,
            "max_tokens": settings().max_tokens_per_text}


def qk_key(base: dict[str, Any], layer: int) -> str:
    """Key of one layer's q and k."""
    return content_key("qk", {**base, "layer": layer})


def resolve(request: HeadRequest) -> ViewKeys:
    """Store keys for a request (cheap: reads the corpus and config files, no model)."""
    base = extraction_params(request.model, corpus_for(request.corpus))
    view = {**base, "layer": request.layer, "head": request.head, "norm": request.norm,
            "method": request.method, "dims": request.dims, "params": PROJECTION_PARAMS[request.method]}
    return ViewKeys(tokens=content_key("tokens", base), qk=qk_key(base, request.layer),
                    coords=content_key("coords", view))


@functools.lru_cache(maxsize=2)
def _loaded_model(ref: str) -> Any:
    """Model loaded once per process and reused."""
    from workers.models import load_model

    return load_model(ref)


def ensure_extraction(request: HeadRequest, store: Store, progress: Progress = _no_progress) -> ViewKeys:
    """Run the model over the corpus unless the tokens table and this layer's q/k are stored."""
    keys = resolve(request)
    if store.has(keys.tokens) and store.has(keys.qk):
        return keys
    from workers.extract import extract

    progress(0.0, "loading model")
    loaded = _loaded_model(request.model)
    corpus = corpus_for(request.corpus)
    config = settings()
    bundle = extract(loaded, corpus, config.batch_size, config.max_tokens_per_text,
                     progress=lambda f, m: progress(0.05 + 0.75 * f, m))
    base = extraction_params(request.model, corpus)
    for layer in range(loaded.spec.n_layers):
        store.put_arrays(qk_key(base, layer), {"q": bundle.q[layer], "k": bundle.k[layer]})
    # The tokens table goes last: its presence marks a complete extraction.
    store.put_arrays(keys.tokens, {**bundle.tokens, "texts": np.array(corpus.texts, dtype=str)}, compress=True)
    return keys


def head_vectors(store: Store, keys: ViewKeys, request: HeadRequest, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """Raw q, k [token, d_head] of the requested head (its key head under grouped-query attention)."""
    arrays = store.get_arrays(keys.qk)
    if arrays is None:
        raise RuntimeError(f"q/k for layer {request.layer} missing from the store")
    return arrays["q"][request.head], arrays["k"][kv_head_for(request.head, spec.n_heads, spec.n_kv_heads)]


def ensure_head_view(request: HeadRequest, store: Store, progress: Progress = _no_progress) -> ViewKeys:
    """Compute (or find) the coordinates of one head's joint q/k projection; returns its keys."""
    spec = read_spec(request.model)
    validate(request, spec)
    keys = resolve(request)
    if store.has(keys.coords) and store.has(keys.tokens):
        progress(1.0, "cached")
        return keys
    keys = ensure_extraction(request, store, progress)
    q, k = head_vectors(store, keys, request, spec)
    q_norm, k_norm = normalize(q, k, request.norm)
    label = {"pca": "PCA", "umap": "UMAP", "tsne": "t-SNE"}[request.method]
    progress(0.85, f"{label} projection of {2 * len(q):,} points")
    projector = Projector(request.method, request.dims, **PROJECTION_PARAMS[request.method])
    coords = projector.fit_transform(np.vstack([q_norm, k_norm]))
    store.put_arrays(keys.coords, {"coords": coords.astype(np.float32)})
    progress(1.0, "done")
    return keys


def export_arrays(request: HeadRequest, store: Store, progress: Progress = _no_progress) -> dict[str, np.ndarray]:
    """The export contract: q, k, q_norm, k_norm, coords, text_id, position, token."""
    keys = ensure_head_view(request, store, progress)
    spec = read_spec(request.model)
    q, k = head_vectors(store, keys, request, spec)
    q_norm, k_norm = normalize(q, k, request.norm)
    tokens = store.get_arrays(keys.tokens)
    coords = store.get_arrays(keys.coords)
    assert tokens is not None and coords is not None
    return {"q": q.astype(np.float32), "k": k.astype(np.float32), "q_norm": q_norm, "k_norm": k_norm,
            "coords": coords["coords"], "text_id": tokens["text_id"].astype(np.int64),
            "position": tokens["position"].astype(np.int64), "token": tokens["token"]}
