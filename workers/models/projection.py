"""PCA and UMAP on a GPU when the workers run on one (QK_ATLAS_DEVICE), through the functions the table of choices
names for them: PCA through torch on the device, UMAP through cuML when it is installed (the `gpu` extra). On the
CPU they are workers.core.project's own (scikit-learn, umap-learn), unchanged: torch is not even imported there
when QK_ATLAS_DEVICE=cpu.

The torch PCA is scikit-learn's for tall data (the covariance's eigenvectors, each component's sign set so that its
largest loading is positive), so a GPU worker and a CPU worker store the same picture up to float rounding.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from workers.core import project


def projection_device() -> Any:
    """The torch device projections run on: the configured one when it is a GPU, else None (the CPU path)."""
    from workers.config import settings

    if settings().device == "cpu":
        return None
    from workers.models.devices import is_gpu, placement

    device = placement().device
    return device if is_gpu(device) else None


def pca_embedding(points: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """points [n, d] -> [n, dims]: torch on the GPU when there is one, else scikit-learn (core.project)."""
    device = projection_device()
    if device is None:
        return project.pca_embedding(points, dims, seed)
    return torch_pca(points, dims, device)


def torch_pca(points: np.ndarray, dims: int, device: Any) -> np.ndarray:
    """PCA of points [n, d] on a torch device -> [n, dims] float32, zero-padded when the data has fewer dimensions:
    the covariance's top eigenvectors (float64, float32 on MPS which has no float64), each component's largest
    loading made positive (scikit-learn's sign rule)."""
    import torch

    dtype = torch.float32 if device.type == "mps" else torch.float64
    x = torch.as_tensor(np.ascontiguousarray(points), device=device).to(dtype)
    x = x - x.mean(dim=0)
    n_components = min(dims, x.shape[0], x.shape[1])
    _, vectors = torch.linalg.eigh(x.T @ x)  # ascending eigenvalues
    components = vectors[:, -n_components:].flip(1).T  # [n_components, d], largest variance first
    largest = components.abs().argmax(dim=1)
    components = components * torch.sign(components[torch.arange(n_components, device=device), largest])[:, None]
    out = (x @ components.T).float().cpu().numpy()
    if n_components < dims:
        out = np.hstack([out, np.zeros((out.shape[0], dims - n_components), np.float32)])
    return out


def cuml_available() -> bool:
    """Whether cuML (RAPIDS, the `gpu` extra) is installed."""
    return importlib.util.find_spec("cuml") is not None


def umap_embedding(points: np.ndarray, dims: int, seed: int, n_neighbors: int = 15, min_dist: float = 0.1,
                   n_epochs: int | None = None) -> np.ndarray:
    """points [n, d] -> [n, dims]: cuML's UMAP on the GPU when there is one and cuML is installed, else umap-learn
    (core.project); the same parameters and seed either way."""
    device = projection_device()
    if device is None or device.type != "cuda" or not cuml_available():
        return project.umap_embedding(points, dims, seed, n_neighbors, min_dist, n_epochs)
    return cuml_umap(points, dims, seed, n_neighbors, min_dist, n_epochs)


def cuml_umap(points: np.ndarray, dims: int, seed: int, n_neighbors: int = 15, min_dist: float = 0.1,
              n_epochs: int | None = None) -> np.ndarray:
    """cuML's UMAP, seeded (reproducible), with umap-learn's parameters; spectral start (cuML has no PCA start)."""
    from cuml.manifold import UMAP

    n_neighbors = min(n_neighbors, points.shape[0] - 1)
    reducer = UMAP(n_components=dims, n_neighbors=n_neighbors, min_dist=min_dist, n_epochs=n_epochs,
                   random_state=seed, init="spectral", output_type="numpy")
    return np.asarray(reducer.fit_transform(np.ascontiguousarray(points, dtype=np.float32)))
