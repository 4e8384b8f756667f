"""Joint projection: shapes, seeds, duplicates."""

from __future__ import annotations

import numpy as np
import pytest

from workers.core.project import Projector


def clustered(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """300 points [300, 16] in 4 well separated clusters, and their labels [300]."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6, size=(4, 16))
    labels = rng.integers(0, 4, 300)
    return (centres[labels] + rng.normal(size=(300, 16))).astype(np.float32), labels


@pytest.fixture(scope="module")
def points() -> np.ndarray:
    return clustered()[0]


@pytest.mark.parametrize("method", ["pca", "umap", "tsne"])
@pytest.mark.parametrize("dims", [2, 3])
def test_shape_and_same_request_same_picture(points, method, dims):
    first = Projector(method, dims).fit_transform(points)
    second = Projector(method, dims).fit_transform(points)
    assert first.shape == (300, dims) and first.dtype == np.float32
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, second)


def test_clusters_stay_apart_in_umap():
    points, labels = clustered()
    embedding = Projector("umap", 2).fit_transform(points)
    within = np.mean([embedding[labels == c].std(axis=0).mean() for c in range(4)])
    between = np.std([embedding[labels == c].mean(axis=0) for c in range(4)], axis=0).mean()
    assert between > 2 * within


def test_duplicate_rows_share_one_place(points):
    doubled = np.vstack([points, points[:50]])
    embedding = Projector("umap", 2).fit_transform(doubled)
    np.testing.assert_array_equal(embedding[300:], embedding[:50])


def test_bad_parameters_are_refused(points):
    with pytest.raises(ValueError, match="unknown projection"):
        Projector("mds").fit_transform(points)
    with pytest.raises(ValueError, match="dims must be 2 or 3"):
        Projector("pca", 4).fit_transform(points)
    with pytest.raises(ValueError, match="at least"):
        Projector("pca", 2).fit_transform(points[:2])


def test_each_point_method_is_the_estimator_its_choice_names(points):
    """The table of choices names each method's estimator; the Projector runs exactly that (one place to add a
    method): a function or a scikit-learn estimator class, seeded either way."""
    from sklearn.decomposition import PCA, TruncatedSVD

    from workers.contracts.choices import METHODS
    from workers.core.project import ESTIMATORS, embed_with, pca_embedding

    assert set(ESTIMATORS) == {c.value for c in METHODS if not c.from_attention}
    assert ESTIMATORS["pca"] == "workers.models.projection:pca_embedding"  # a GPU's when there is one
    np.testing.assert_allclose(embed_with("workers.core.project:pca_embedding", points, 2, 0),
                               pca_embedding(points, 2, 0))
    by_class = embed_with("sklearn.decomposition:PCA", points, 2, 0)
    np.testing.assert_allclose(by_class, PCA(n_components=2, random_state=0).fit_transform(points), rtol=1e-5)
    svd = embed_with("sklearn.decomposition:TruncatedSVD", points, 3, 7, n_iter=3)
    np.testing.assert_allclose(svd, TruncatedSVD(3, random_state=7, n_iter=3).fit_transform(points), rtol=1e-5)
    with pytest.raises(ValueError, match="unknown projection 'attention'"):
        Projector("attention", 2).fit_transform(points)  # placed from attention, not by an estimator


def _same_up_to_sign(mine: np.ndarray, theirs: np.ndarray, atol: float) -> None:
    """Equal column by column, each column possibly negated."""
    assert mine.shape == theirs.shape
    for column in range(mine.shape[1]):
        sign = 1.0 if np.abs(mine[:, column] - theirs[:, column]).max() <= atol else -1.0
        np.testing.assert_allclose(sign * mine[:, column], theirs[:, column], atol=atol, rtol=0)


@pytest.mark.parametrize("dims", [2, 3])
def test_torch_pca_equals_numpy_pca(points, dims):
    """The GPU's PCA, run here on the CPU through torch, is scikit-learn's: equal up to sign per component (1e-4 of
    the picture's extent), and with scikit-learn's own signs too, so CPU and GPU workers store one picture."""
    import torch

    from workers.core.project import pca_embedding
    from workers.models.projection import torch_pca

    theirs = pca_embedding(points, dims, 0)
    mine = torch_pca(points, dims, torch.device("cpu"))
    assert mine.dtype == np.float32
    _same_up_to_sign(mine, theirs, 1e-4 * np.abs(theirs).max())
    np.testing.assert_allclose(mine, theirs, atol=1e-4 * np.abs(theirs).max(), rtol=0)
    flat = np.c_[points[:, :1], np.zeros((len(points), 1), np.float32)]  # one dimension of variance: zero-padded
    np.testing.assert_allclose(torch_pca(flat[:, :1], dims, torch.device("cpu")), pca_embedding(flat[:, :1], dims, 0),
                               atol=1e-4 * np.abs(flat).max(), rtol=0)


def test_on_the_cpu_pca_and_umap_are_the_cpu_estimators_and_load_no_torch(points, monkeypatch):
    """QK_ATLAS_DEVICE=cpu: the choices' PCA and UMAP are core.project's, unchanged, and a projecting process does not
    import torch for them; auto on a machine without a GPU is the CPU path too."""
    import subprocess
    import sys

    from workers.core import project
    from workers.models import projection

    on_the_cpu = project.pca_embedding(points, 2, 0).astype(np.float32)
    for device in ("cpu", "auto"):
        monkeypatch.setenv("QK_ATLAS_DEVICE", device)
        picture = Projector("pca", 2).fit_transform(points)
        if projection.projection_device() is None:  # cpu, or auto without a GPU: scikit-learn's own
            np.testing.assert_array_equal(picture, on_the_cpu)
        else:  # auto on a GPU: torch's PCA there, the same picture
            np.testing.assert_allclose(picture, on_the_cpu, atol=1e-4 * np.abs(on_the_cpu).max(), rtol=0)
    monkeypatch.setenv("QK_ATLAS_DEVICE", "cpu")
    np.testing.assert_array_equal(projection.umap_embedding(points, 2, 3, n_epochs=20),
                                  project.umap_embedding(points, 2, 3, n_epochs=20))
    code = ("import sys, numpy as np; from workers.core.project import Projector;"
            "Projector('pca', 2).fit_transform(np.random.default_rng(0).normal(size=(50, 8)));"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "QK_ATLAS_DEVICE": "cpu"})
    assert done.stdout.strip() == "False", done.stderr[-2000:]
