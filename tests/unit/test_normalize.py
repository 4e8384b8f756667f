"""Normalisations change the picture, never the attention."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.texts import SENTENCES
from workers.contracts.choices import NORMALISATIONS, values
from workers.core.attention import text_attention
from workers.core.fidelity import fidelity
from workers.core.normalize import (
    SCALE_MULTIPLIERS,
    TRANSLATIONS,
    candidate_transform,
    equal_norm_shift,
    fit_transform_for,
    normalize,
    transform_for,
)
from workers.core.project import Projector
from workers.corpora.corpus import make_corpus
from workers.models.extract import extract


@pytest.fixture(scope="module")
def bundle(minilm):
    return extract(minilm, make_corpus("t", SENTENCES), batch_size=2)


@pytest.mark.parametrize("method", values(NORMALISATIONS))
@pytest.mark.parametrize(("layer", "head"), [(0, 0), (2, 5), (5, 11)])
def test_attention_per_text_is_unchanged(bundle, method, layer, head):
    q, k = bundle.q[layer][head], bundle.k[layer][head]
    q2, k2 = normalize(q, k, method, bundle.tokens["text_id"])
    for text in np.unique(bundle.tokens["text_id"]):
        rows = np.flatnonzero(bundle.tokens["text_id"] == text)
        before = text_attention(q[None, rows], k[None, rows])
        after = text_attention(q2[None, rows], k2[None, rows])
        np.testing.assert_allclose(after, before, atol=1e-5, rtol=0)


def test_scale_matches_mean_norms_and_translate_matches_centroids(bundle):
    q, k = bundle.q[2][5], bundle.k[2][5]
    qs, ks = normalize(q, k, "scale")
    assert np.isclose(np.linalg.norm(qs, axis=1).mean(), np.linalg.norm(ks, axis=1).mean(), rtol=1e-5)
    assert not np.isclose(np.linalg.norm(q, axis=1).mean(), np.linalg.norm(k, axis=1).mean(), rtol=1e-2)
    qt, kt = normalize(q, k, "scale+translate")
    np.testing.assert_allclose(qt.mean(axis=0), kt.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(qt, qs, atol=1e-6)  # queries are only scaled


def test_none_is_identity_and_unknown_is_refused(bundle):
    q, k = bundle.q[1][1], bundle.k[1][1]
    q2, k2 = normalize(q, k, "none")
    assert np.array_equal(q2, q) and np.array_equal(k2, k)
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalize(q, k, "whiten")


def test_fit_needs_text_ids(bundle):
    with pytest.raises(ValueError, match="text id"):
        normalize(bundle.q[0][0], bundle.k[0][0], "fit")


def test_equal_norm_shift_recovers_the_centre_of_keys_on_a_sphere():
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(300, 8))
    centre = rng.normal(size=8) * 5
    keys = centre + 3.0 * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    shift = equal_norm_shift(keys, ridge=1e-9)
    np.testing.assert_allclose(shift, -centre, atol=1e-5)
    norms = np.linalg.norm(keys + shift, axis=1)
    assert norms.std() < 1e-5 < np.linalg.norm(keys, axis=1).std()


def test_with_equal_key_norms_distance_ranks_keys_exactly_as_attention():
    """The reason for the equal-norm translation: ‖q − k'‖² = ‖q‖² + r² − 2 q·k, monotone in the logit."""
    rng = np.random.default_rng(1)
    directions = rng.normal(size=(12, 5))
    k = 2.0 + directions / np.linalg.norm(directions, axis=1, keepdims=True)  # on a sphere off the origin
    q = rng.normal(size=(12, 5))
    text_id = np.zeros(12, dtype=int)
    transform = candidate_transform(q, k, "equal-norm", 1.0)
    q2, k2 = transform.apply(q, k)
    found = fidelity(q, k, q2, k2, text_id, causal=False)
    assert found.top1_in_k == 1.0 and found.rank_correlation > 0.999
    assert fidelity(q, k, q, k, text_id, causal=False).rank_correlation < 0.9  # untranslated keys rank worse


def test_fit_keeps_the_grid_point_with_the_best_sampled_picture(bundle):
    q, k, text_id = bundle.q[2][5], bundle.k[2][5], bundle.tokens["text_id"]
    chosen, scores = fit_transform_for(q, k, text_id, causal=False)
    assert len(scores) == len(TRANSLATIONS) * len(SCALE_MULTIPLIERS)
    readable = [row for row in scores if 0.5 <= row["spread_ratio"] <= 2.0]
    assert readable and len(readable) < len(scores)  # the size limit rules some candidates out on this head
    best = max(readable, key=lambda row: row["top1_in_k"])
    first_best = next(row for row in readable if row["top1_in_k"] == best["top1_in_k"])
    assert (chosen.translation, chosen.multiplier) == (first_best["translation"], first_best["scale_multiplier"])
    # every candidate is a plain grid transform: the returned one is rebuilt from its name
    again = candidate_transform(q.astype(np.float64), k.astype(np.float64), chosen.translation, chosen.multiplier)
    np.testing.assert_allclose(again.shift, chosen.shift, atol=1e-5)
    assert transform_for(q, k, "fit", text_id).describe() == chosen.describe()


@pytest.mark.parametrize(("layer", "head"), [(0, 0), (2, 5), (4, 9)])
def test_fit_gives_a_more_faithful_pca_picture_than_the_centroid_rule(bundle, layer, head):
    q, k, text_id = bundle.q[layer][head], bundle.k[layer][head], bundle.tokens["text_id"]
    shares = {}
    for method in ("scale+translate", "fit"):
        q2, k2 = normalize(q, k, method, text_id)
        coords = Projector("pca", 2).fit_transform(np.vstack([q2, k2]))
        shares[method] = fidelity(q, k, coords[:len(q)], coords[len(q):], text_id, causal=False).top1_in_k
    assert shares["fit"] > shares["scale+translate"]


def test_shared_scale_and_equal_norm_shift_give_the_same_candidates(bundle):
    """What the fit computes once for its 12 grid points equals computing each candidate on its own."""
    q, k = bundle.q[1][3].astype(np.float64), bundle.k[1][3].astype(np.float64)
    from workers.core.normalize import scale_factor

    shared = {"base_scale": scale_factor(q, k), "unscaled_equal_norm": equal_norm_shift(k)}
    for translation in TRANSLATIONS:
        for multiplier in SCALE_MULTIPLIERS:
            alone = candidate_transform(q, k, translation, multiplier)
            together = candidate_transform(q, k, translation, multiplier, **shared)
            assert together.scale == pytest.approx(alone.scale)
            np.testing.assert_allclose(together.shift, alone.shift, rtol=1e-4, atol=1e-6)
