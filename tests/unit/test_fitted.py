"""The picture fitted to attention: its gradient against finite differences, constructed heads with known answers,
invariance to the normalisation, and on MiniLM a picture that beats the no-picture guess past the sinks, in one
cloud, where the PCA picture does not."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.attention import one_key_head
from tests.support.texts import SENTENCES
from workers.core.fidelity import attention_groups, fidelity, sink_keys
from workers.core.fitted import _kl_and_gradients, fitted_layout
from workers.core.normalize import normalize, picture_layout
from workers.core.project import Projector
from workers.corpora.corpus import make_corpus
from workers.models.extract import extract


@pytest.mark.parametrize("causal", [False, True])
def test_gradients_match_finite_differences(causal):
    rng = np.random.default_rng(0)
    text_id = np.repeat([0, 1, 2], [5, 6, 7])
    q, k = rng.normal(size=(2, len(text_id), 4))
    groups = attention_groups(q, k, text_id, causal)
    y, z = rng.normal(size=(2, len(text_id), 2))
    value, grad_y, grad_z = _kl_and_gradients(groups, y, z, 0.3, causal)
    step = 1e-6
    for positions, gradient, which in ((y, grad_y, 0), (z, grad_z, 1)):
        numeric = np.zeros_like(positions)
        for index in np.ndindex(positions.shape):
            moved = positions.copy()
            moved[index] += step
            pair = (moved, z) if which == 0 else (y, moved)
            numeric[index] = (_kl_and_gradients(groups, *pair, 0.3, causal)[0] - value) / step
        np.testing.assert_allclose(gradient, numeric, atol=1e-4)


def test_where_the_picture_shows_attention_exactly_the_loss_is_its_entropy_and_flat():
    """A head whose logits are -|y_i - z_j|^2 / tau (up to a per-query constant) for known points y, z: its
    attention is the picture's softmax there, so the loss is the attention's entropy and no query gains by moving."""
    rng = np.random.default_rng(1)
    tau, n = 0.5, 7
    y, z = rng.normal(size=(2, n, 2))
    d = 3  # q.k / sqrt(d) = (2 y.z - |z|^2) / tau
    q = np.sqrt(d) * np.hstack([2 * y / tau, -np.ones((n, 1)) / tau])
    k = np.hstack([z, (z ** 2).sum(1, keepdims=True)])
    groups = attention_groups(q, k, np.zeros(n, dtype=int), causal=False)
    attention = groups[0][1][0]
    shown = np.exp(-((y[:, None] - z[None]) ** 2).sum(-1) / tau)
    np.testing.assert_allclose(attention, shown / shown.sum(1, keepdims=True), atol=1e-9)
    value, grad_y, _ = _kl_and_gradients(groups, y, z, tau, causal=False)
    assert value == pytest.approx(-(attention * np.log(attention)).sum(), rel=1e-9)
    np.testing.assert_allclose(grad_y, 0.0, atol=1e-9)


@pytest.mark.parametrize("causal", [False, True])
def test_each_query_lies_nearest_the_key_it_attends_to_in_one_cloud(causal):
    q, k, text_id, _target = one_key_head(texts=60, length=10, causal=causal)
    sinks = sink_keys(text_id, None, causal)
    coords = fitted_layout(q, k, text_id, causal, sinks)
    assert coords.shape == (2 * len(q), 2) and coords.dtype == np.float32 and np.isfinite(coords).all()
    found = fidelity(q, k, coords[:len(q)], coords[len(q):], text_id, causal, k_nearest=1, sinks=sinks)
    assert found.top1_in_k >= 0.95, found
    assert picture_layout(coords[:len(q)], coords[len(q):])["centroid_gap"] <= 0.5
    np.testing.assert_array_equal(coords, fitted_layout(q, k, text_id, causal, sinks))  # deterministic
    assert fitted_layout(q, k, text_id, causal, sinks, dims=3).shape == (2 * len(q), 3)


@pytest.fixture(scope="module")
def bundle(minilm):
    return extract(minilm, make_corpus("t", SENTENCES), batch_size=2)


def test_the_normalisation_does_not_change_the_picture(bundle):
    """Attention is unchanged by every normalisation, and so is the picture built from it."""
    q, k, text_id = bundle.q[1][3], bundle.k[1][3], bundle.tokens["text_id"]
    sinks = sink_keys(text_id, bundle.tokens["is_special"], causal=False)
    pictures = [fitted_layout(*normalize(q, k, norm, text_id), text_id, False, sinks, iterations=20)
                for norm in ("none", "scale+translate", "fit")]
    for other in pictures[1:]:
        np.testing.assert_allclose(other, pictures[0], atol=1e-3 * np.abs(pictures[0]).max())


@pytest.mark.parametrize(("layer", "head"), [(0, 4), (2, 5), (4, 6)])
def test_on_minilm_faithful_past_the_sinks_where_pca_is_not(bundle, layer, head):
    """Past the no-picture guess on the queries that do not look at [CLS]/[SEP], with queries and keys in one
    cloud; the fit + PCA picture keeps its clouds apart and scores lower past the sinks."""
    q, k, text_id = bundle.q[layer][head], bundle.k[layer][head], bundle.tokens["text_id"]
    sinks = sink_keys(text_id, bundle.tokens["is_special"], causal=False)
    coords = fitted_layout(q, k, text_id, False, sinks)
    found = fidelity(q, k, coords[:len(q)], coords[len(q):], text_id, False, sinks=sinks)
    q2, k2 = normalize(q, k, "fit", text_id)
    pca = Projector("pca", 2).fit_transform(np.vstack([q2, k2]))
    pca_found = fidelity(q, k, pca[:len(q)], pca[len(q):], text_id, False, sinks=sinks)
    assert found.top1_in_k >= max(0.9, found.baseline), found
    assert found.top1_in_k_non_sink >= 0.8 and found.top1_in_k_non_sink > found.baseline_non_sink + 0.3, found
    assert found.rank_correlation >= 0.6, found
    assert found.top1_in_k_non_sink > pca_found.top1_in_k_non_sink, (found, pca_found)
    assert picture_layout(coords[:len(q)], coords[len(q):])["centroid_gap"] <= 0.5
