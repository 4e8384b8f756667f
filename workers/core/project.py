"""Joint projection of one head's queries and keys ([2N, d] -> [2N, dims]), as seeded estimators.

The CPU implementations live here (scikit-learn, umap-learn, openTSNE). The table of choices names each method's
estimator: PCA's and UMAP's are workers.models.projection's, which run on a GPU when the workers have one and
otherwise call the functions here; this module reaches them by that name only (it imports no torch).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import numpy as np

from workers.contracts.choices import METHODS as METHOD_CHOICES

# the methods placed from the points alone, by value: the estimator their Choice names ("attention" and "fitted" are
# placed from the head's attention: workers.core.layout, workers.core.fitted)
ESTIMATORS: dict[str, str] = {c.value: c.estimator for c in METHOD_CHOICES if c.estimator}


class Projector:
    """Estimator in the scikit-learn manner: parameters in __init__, validation at fit, result in `embedding_`."""

    def __init__(self, method: str, dims: int = 2, random_state: int = 0, **params: Any):
        self.method = method
        self.dims = dims
        self.random_state = random_state
        self.params = params

    def fit_transform(self, points: np.ndarray) -> np.ndarray:
        """points [n, d] -> embedding [n, dims] float32; identical rows are embedded once and share a place
        (PCA, a linear map, places them together anyway: it skips the sort that finds them, ~25 ms a head)."""
        self._validate(points)
        if self.method == "pca":
            self.embedding_ = embed_with(ESTIMATORS["pca"], points.astype(np.float32), self.dims, self.random_state
                                         ).astype(np.float32)
            return self.embedding_
        unique, inverse = np.unique(points, axis=0, return_inverse=True)
        embedded = self._embed(unique.astype(np.float32))
        self.embedding_ = embedded[inverse.reshape(-1)].astype(np.float32)
        return self.embedding_

    def _validate(self, points: np.ndarray) -> None:
        """Check method, dims and input shape."""
        if self.method not in ESTIMATORS:
            raise ValueError(f"unknown projection {self.method!r}; choose one of {', '.join(ESTIMATORS)}")
        if self.dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {self.dims!r}")
        if points.ndim != 2 or points.shape[0] < self.dims + 2:
            raise ValueError(f"need a 2-D array of at least {self.dims + 2} points, got shape {points.shape}")

    def _embed(self, points: np.ndarray) -> np.ndarray:
        """The method's estimator (its Choice names it); tiny inputs fall back to PCA where neighbour methods
        cannot run."""
        if points.shape[0] < 16:
            return pca_embedding(points, self.dims, self.random_state)
        return embed_with(ESTIMATORS[self.method], points, self.dims, self.random_state, **self.params)


def embed_with(estimator: str, points: np.ndarray, dims: int, seed: int, **params: Any) -> np.ndarray:
    """points [n, d] -> [n, dims] by the "module:name" a method's Choice names: a function (points, dims, seed,
    **params), or a scikit-learn-style estimator class (n_components, random_state when it takes one)."""
    module, _, name = estimator.partition(":")
    target = getattr(importlib.import_module(module), name)
    if not inspect.isclass(target):
        return np.asarray(target(points, dims, seed, **params))
    seeded = {"random_state": seed} if "random_state" in inspect.signature(target).parameters else {}
    return np.asarray(target(n_components=dims, **seeded, **params).fit_transform(points))


def pca_embedding(points: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """PCA, padded with zeros when the data has fewer dimensions than asked."""
    from sklearn.decomposition import PCA

    n_components = min(dims, points.shape[0], points.shape[1])
    out = PCA(n_components=n_components, random_state=seed).fit_transform(points)
    if n_components < dims:
        out = np.hstack([out, np.zeros((out.shape[0], dims - n_components))])
    return out


def umap_embedding(points: np.ndarray, dims: int, seed: int, n_neighbors: int = 15, min_dist: float = 0.1,
                   n_epochs: int | None = None) -> np.ndarray:
    """umap-learn, seeded (single-threaded by design of umap-learn when seeded)."""
    import umap

    n_neighbors = min(n_neighbors, points.shape[0] - 1)
    reducer = umap.UMAP(n_components=dims, n_neighbors=n_neighbors, min_dist=min_dist, n_epochs=n_epochs,
                        random_state=seed, n_jobs=1, init="pca" if points.shape[0] > dims + 1 else "random")
    return reducer.fit_transform(points)


def tsne_embedding(points: np.ndarray, dims: int, seed: int, perplexity: float = 30.0,
                   early_exaggeration_iter: int = 250, n_iter: int = 500, n_jobs: int = 2) -> np.ndarray:
    """openTSNE in 2D; scikit-learn's Barnes-Hut t-SNE in 3D (openTSNE's fast path is 2D only; iterations 2D only)."""
    perplexity = min(perplexity, max(2.0, (points.shape[0] - 1) / 3))
    if dims == 2:
        from openTSNE import TSNE

        return np.asarray(TSNE(n_components=2, perplexity=perplexity, random_state=seed, n_jobs=n_jobs, n_iter=n_iter,
                               early_exaggeration_iter=early_exaggeration_iter).fit(points))
    from sklearn.manifold import TSNE as SkTSNE

    return SkTSNE(n_components=3, perplexity=perplexity, random_state=seed, init="pca").fit_transform(points)


def warm_up_umap() -> None:
    """Compile umap-learn's numba code once in this process (small and >4,096-point paths, attention layout)."""
    from workers.core.layout import attention_layout

    rng = np.random.default_rng(0)
    for n in (64, 4200):
        umap_embedding(rng.normal(size=(n, 8)).astype(np.float32), 2, 0, n_epochs=5)
    q, k = rng.normal(size=(2, 64, 8)).astype(np.float32)
    attention_layout(q, k, np.repeat(np.arange(8), 8), causal=False, n_epochs=5)
