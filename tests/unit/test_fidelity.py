"""Fidelity measures against a direct per-query computation, and on constructed heads with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from workers.core.attention import text_attention
from workers.core.fidelity import fidelity, picture_fidelity, sink_keys


def _random_case(seed: int, lengths=(5, 9, 2, 14, 4), d: int = 6, dims: int = 2):
    """Random q, k [N, d], text ids, and a random picture of them [N, dims] each."""
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    text_id = np.repeat(np.arange(len(lengths)), lengths)
    return (rng.normal(size=(n, d)), rng.normal(size=(n, d)), rng.normal(size=(n, dims)),
            rng.normal(size=(n, dims)), text_id)


def _direct(q, k, qp, kp, text_id, causal, k_nearest=3):
    """Loop over every query: its candidates, most-attended key, nearest keys, and scipy's Spearman."""
    hits, rhos = [], []
    for text in np.unique(text_id):
        rows = np.flatnonzero(text_id == text)
        attention = text_attention(q[None, rows], k[None, rows], causal)[0]
        for i in range(len(rows)):
            candidates = np.arange(i + 1) if causal else np.arange(len(rows))
            weights = attention[i, candidates]
            distance = np.linalg.norm(qp[rows[i]] - kp[rows[candidates]], axis=1)
            if len(candidates) > k_nearest:
                nearest = np.argsort(distance, kind="stable")[:k_nearest]
                hits.append(float(np.argmax(weights) in nearest))
            if len(candidates) >= 3:
                rhos.append(spearmanr(weights, -distance).statistic)
    return np.mean(hits), np.mean(rhos), len(hits), len(rhos)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("dims", [2, 3])
def test_matches_direct_computation(causal, dims):
    q, k, qp, kp, text_id = _random_case(seed=dims + 10 * causal, dims=dims)
    result = fidelity(q, k, qp, kp, text_id, causal)
    top, rho, n_top, n_rho = _direct(q, k, qp, kp, text_id, causal)
    assert result.top1_in_k == pytest.approx(top, abs=1e-12)
    assert result.rank_correlation == pytest.approx(rho, abs=1e-9)
    assert (result.queries_top, result.queries_rank) == (n_top, n_rho)
    assert 0 < result.top1_in_k < 1  # a random picture is neither perfect nor useless on this case


def _direct_sinks(q, k, qp, kp, text_id, causal, sinks, k_nearest=3):
    """Loop over every counted query: is its most-attended key a sink, the previous token, among the nearest?"""
    rows_hit, rows_sink, rows_previous = [], [], []
    for text in np.unique(text_id):
        rows = np.flatnonzero(text_id == text)
        attention = text_attention(q[None, rows], k[None, rows], causal)[0]
        for i in range(len(rows)):
            candidates = np.arange(i + 1) if causal else np.arange(len(rows))
            if len(candidates) <= k_nearest:
                continue
            target = candidates[np.argmax(attention[i, candidates])]
            distance = np.linalg.norm(qp[rows[i]] - kp[rows[candidates]], axis=1)
            rows_hit.append(target in candidates[np.argsort(distance, kind="stable")[:k_nearest]])
            rows_sink.append(bool(sinks[rows[target]]))
            rows_previous.append(target == i - 1)
    hit, sink, previous = (np.array(x) for x in (rows_hit, rows_sink, rows_previous))
    return {"top1_in_k_non_sink": hit[~sink].mean(), "non_sink_share": (~sink).mean(),
            "baseline": (sink | previous).mean(), "baseline_non_sink": previous[~sink].mean()}


@pytest.mark.parametrize("causal", [False, True])
def test_non_sink_share_and_the_no_picture_baseline_match_a_direct_loop(causal):
    """Sinks: random 'special' tokens (plus each text's first token when causal), their keys made attractive so
    that many queries attend to one; every figure equals the per-query loop's."""
    q, k, qp, kp, text_id = _random_case(seed=3 + causal, lengths=(6, 11, 3, 17, 9, 12), dims=2)
    special = np.random.default_rng(7).random(len(q)) < 0.15
    k = k + 2.5 * special[:, None] * q.mean(axis=0)  # sinks: keys that many queries attend to
    sinks = sink_keys(text_id, special, causal)
    assert sinks[0] == causal or special[0]
    result = fidelity(q, k, qp, kp, text_id, causal, sinks=sinks)
    expected = _direct_sinks(q, k, qp, kp, text_id, causal, sinks)
    for name, value in expected.items():
        assert getattr(result, name) == pytest.approx(value, abs=1e-12), name
    assert 0 < result.non_sink_share < 1 and 0 < result.baseline < 1
    without = fidelity(q, k, qp, kp, text_id, causal)  # no sinks named: every query is a non-sink query
    assert without.non_sink_share == 1.0 and without.top1_in_k_non_sink == without.top1_in_k


def test_previous_token_head_drawn_faithfully_scores_one():
    """Each query attends to the previous token; a picture putting query i on key i-1 is perfect at top-1-in-3."""
    lengths = (12, 20, 7)
    text_id = np.repeat(np.arange(len(lengths)), lengths)
    position = np.concatenate([np.arange(n) for n in lengths])
    basis = np.eye(max(lengths))  # orthonormal: q_i . k_j = 36 where j = i - 1, else 0
    k = basis[position] * 6.0
    q = basis[np.maximum(position - 1, 0)] * 6.0  # q_i . k_j is largest for j = i - 1
    attention = text_attention(q[None, :12], k[None, :12], causal=True)[0]
    assert (np.argmax(attention[1:], axis=1) == np.arange(11)).all()
    picture_k = np.stack([position, text_id * 100.0], axis=1).astype(float)
    picture_q = np.stack([np.maximum(position - 1, 0) + 0.1, text_id * 100.0], axis=1)
    faithful = fidelity(q, k, picture_q, picture_k, text_id, causal=True)
    assert faithful.top1_in_k == 1.0
    assert faithful.rank_correlation > 0.5
    backwards = fidelity(q, k, picture_q, -picture_k, text_id, causal=True)  # keys mirrored: far from their query
    assert backwards.top1_in_k < 0.5


def test_picture_fidelity_reads_queries_then_keys():
    q, k, qp, kp, text_id = _random_case(seed=3)
    assert picture_fidelity(q, k, np.vstack([qp, kp]), text_id, False) == fidelity(q, k, qp, kp, text_id, False)


@pytest.mark.parametrize("causal", [False, True])
def test_several_pictures_at_once_match_one_at_a_time(causal):
    from workers.core.fidelity import attention_groups, fidelity_of, top1_of_pictures

    q, k, _qp, _kp, text_id = _random_case(7)
    rng = np.random.default_rng(8)
    pictures = rng.normal(size=(5, 2 * len(q), 2))
    groups = attention_groups(q, k, text_id, causal)
    together = top1_of_pictures(groups, pictures[:, :len(q)], pictures[:, len(q):], causal)
    one_by_one = [fidelity_of(groups, p[:len(q)], p[len(q):], causal, with_rank=False).top1_in_k for p in pictures]
    np.testing.assert_allclose(together, one_by_one)
