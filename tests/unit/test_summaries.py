"""Head summaries against constructed heads with known answers and a direct per-query loop."""

from __future__ import annotations

import numpy as np
import pytest

from workers.core.attention import text_attention
from workers.core.summaries import qk_overlap, summarise_head

LENGTHS = (12, 20, 7)


def _tokens():
    """text_id, position and is_special (first and last token of each text) for LENGTHS."""
    text_id = np.repeat(np.arange(len(LENGTHS)), LENGTHS)
    position = np.concatenate([np.arange(n) for n in LENGTHS])
    is_special = np.concatenate([np.isin(np.arange(n), [0, n - 1]) for n in LENGTHS])
    return text_id, position, is_special


def test_previous_token_head():
    text_id, position, is_special = _tokens()
    basis = np.eye(max(LENGTHS))
    q, k = basis[np.maximum(position - 1, 0)] * 6.0, basis[position] * 6.0  # q_i . k_j = 36 iff j = i - 1
    summary = summarise_head(q, k, text_id, is_special, causal=False)
    assert summary.prev_token > 0.95 and summary.next_token < 0.01 and summary.entropy < 0.1


def test_uniform_head():
    text_id, _position, is_special = _tokens()
    q, k = np.zeros((len(text_id), 8)), np.random.default_rng(0).normal(size=(len(text_id), 8))
    summary = summarise_head(q, k, text_id, is_special, causal=False)
    n = sum(LENGTHS)
    assert summary.entropy == pytest.approx(1.0)
    assert summary.first_token == pytest.approx(sum(m * (1 / m) for m in LENGTHS) / n)
    assert summary.special == pytest.approx(sum(m * (2 / m) for m in LENGTHS) / n)
    assert summary.prev_token == pytest.approx(np.mean([1 / m for m in LENGTHS for _ in range(m - 1)]))
    assert np.isnan(summary.norm_ratio)  # zero queries: no ratio, rather than -inf on the colour scale


@pytest.mark.parametrize("causal", [False, True])
def test_matches_a_direct_loop(causal):
    text_id, position, is_special = _tokens()
    rng = np.random.default_rng(int(causal))
    q, k = rng.normal(size=(len(text_id), 6)) * 2, rng.normal(size=(len(text_id), 6))
    prev, nxt, first, special, entropy = [], [], [], [], []
    for text in range(len(LENGTHS)):
        rows = np.flatnonzero(text_id == text)
        attention = text_attention(q[None, rows], k[None, rows], causal)[0]
        for i in range(len(rows)):
            weights = attention[i, : i + 1] if causal else attention[i]
            if i > 0:
                prev.append(attention[i, i - 1])
            if not causal and i < len(rows) - 1:
                nxt.append(attention[i, i + 1])
            first.append(attention[i, 0])
            special.append(attention[i, is_special[rows]].sum())
            p = weights[weights > 0]
            entropy.append(-(p * np.log(p)).sum() / np.log(len(weights)) if len(weights) > 1 else 0.0)
    summary = summarise_head(q, k, text_id, is_special, causal)
    assert summary.prev_token == pytest.approx(np.mean(prev))
    assert summary.first_token == pytest.approx(np.mean(first))
    assert summary.special == pytest.approx(np.mean(special))
    assert summary.entropy == pytest.approx(np.mean(entropy))
    assert np.isnan(summary.next_token) if causal else summary.next_token == pytest.approx(np.mean(nxt))
    norms = np.linalg.norm(q, axis=1).mean() / np.linalg.norm(k, axis=1).mean()
    assert summary.norm_ratio == pytest.approx(np.log2(norms))


def test_overlap_separates_apart_from_mixed_clouds():
    rng = np.random.default_rng(0)
    cloud = rng.normal(size=(3000, 8))
    assert qk_overlap(cloud, cloud + 50.0) == 0.0  # apart: every query's nearest point is a query
    mixed = qk_overlap(rng.normal(size=(3000, 8)), rng.normal(size=(3000, 8)))
    assert 0.4 < mixed < 0.6


def test_induction_targets_and_an_induction_head():
    """'x a b c a b c': from the second a, b, c the targets are the first b, c and the second a."""
    from workers.core.summaries import induction_targets

    tokens = np.array(["x", "a", "b", "c", "a", "b", "c", "c"])
    assert induction_targets(tokens).tolist() == [-1, -1, -1, -1, 2, 3, 4, -1]  # "c c": just before, no target
    # a causal head whose query at i is the key at its target (or at itself where it has none)
    text_id = np.zeros(len(tokens), dtype=int)
    targets = induction_targets(tokens)
    basis = np.eye(len(tokens))
    q, k = basis[np.where(targets >= 0, targets, np.arange(len(tokens)))] * 8.0, basis * 8.0
    is_special = np.zeros(len(tokens), dtype=bool)
    summary = summarise_head(q, k, text_id, is_special, causal=True, tokens=tokens)
    assert summary.induction > 0.99
    uniform = summarise_head(np.zeros_like(q), k, text_id, is_special, causal=True, tokens=tokens)
    assert uniform.induction == pytest.approx(np.mean([1 / 5, 1 / 6, 1 / 7]))  # queries 4, 5, 6 over i + 1 keys
    assert np.isnan(summarise_head(q, k, text_id, is_special, causal=True).induction)  # no tokens: not measured
