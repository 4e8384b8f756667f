"""Normalisations change the picture, never the attention."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import SENTENCES
from workers.attention import text_attention
from workers.corpus import make_corpus
from workers.extract import extract
from workers.normalize import NORMALIZATIONS, normalize


@pytest.fixture(scope="module")
def bundle(minilm):
    return extract(minilm, make_corpus("t", SENTENCES), batch_size=2)


@pytest.mark.parametrize("method", NORMALIZATIONS)
@pytest.mark.parametrize(("layer", "head"), [(0, 0), (2, 5), (5, 11)])
def test_attention_per_text_is_unchanged(bundle, method, layer, head):
    q, k = bundle.q[layer][head], bundle.k[layer][head]
    q2, k2 = normalize(q, k, method)
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
