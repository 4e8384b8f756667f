"""The head map: distances between heads' attention patterns, their 2D placement, related heads."""

from __future__ import annotations

import numpy as np
import pytest

from workers.contracts.results import HeadMap
from workers.core.attention import text_attention
from workers.core.headmap import attention_rows, classical_mds, head_map, pattern_distances

LENGTHS = (6, 9, 4, 9)


def _texts():
    """text_id [N] of texts of LENGTHS tokens, and each token's position."""
    text_id = np.repeat(np.arange(len(LENGTHS)), LENGTHS)
    position = np.concatenate([np.arange(n) for n in LENGTHS])
    return text_id, position


def _previous_token_head(position: np.ndarray, d: int = 16, strength: float = 12.0):
    """q, k [N, d] of a head that attends (almost) only to the previous token (the first token to itself)."""
    k = strength * np.eye(d)[position]
    q = strength * np.eye(d)[np.maximum(position - 1, 0)]
    return q, k


def _uniform_head(n: int, d: int = 16):
    """q = 0: every query spreads its attention evenly over its text."""
    rng = np.random.default_rng(3)
    return np.zeros((n, d)), rng.normal(size=(n, d))


def test_attention_rows_are_the_model_attention_of_every_sampled_text():
    text_id, _position = _texts()
    rng = np.random.default_rng(0)
    q, k = rng.normal(size=(len(text_id), 8)), rng.normal(size=(len(text_id), 8))
    rows = np.arange(len(text_id))
    found = attention_rows(q, k, text_id, False, rows, width=9)
    for text in range(len(LENGTHS)):
        members = np.flatnonzero(text_id == text)
        expected = text_attention(q[None, members], k[None, members])[0]
        np.testing.assert_allclose(found[members, :len(members)], expected, atol=1e-12)
        assert np.all(found[members, len(members):] == 0)


def test_pattern_distances_against_a_direct_loop():
    rng = np.random.default_rng(1)
    patterns = rng.dirichlet(np.ones(5), size=(4, 7))  # 4 heads, 7 queries, 5 keys
    found = pattern_distances(patterns)
    for a in range(4):
        for b in range(4):
            direct = np.mean([0.5 * np.abs(patterns[a, i] - patterns[b, i]).sum() for i in range(7)])
            assert found[a, b] == pytest.approx(direct)
    assert np.all(np.diag(found) == 0)


def test_known_heads_get_known_distances_and_the_same_pattern_is_the_nearest_relative():
    """A previous-token head, the same head with rotated and rescaled q/k (identical attention), and a uniform
    head: distance 0 between the first two, and 1 − 1/m on average to the uniform one."""
    text_id, position = _texts()
    q, k = _previous_token_head(position)
    rotation, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(16, 16)))
    q_uniform, k_uniform = _uniform_head(len(text_id))
    heads = [((0, 0), q, k), ((0, 1), 2.0 * q @ rotation, 0.5 * k @ rotation), ((1, 0), q_uniform, k_uniform)]
    found = head_map(iter(heads), text_id, causal=False)
    assert found.cells == [(0, 0), (0, 1), (1, 0)]
    assert found.distances[0, 1] < 1e-6
    expected = np.mean(np.concatenate([np.full(n, 1 - 1 / n) for n in LENGTHS]))
    assert found.distances[0, 2] == pytest.approx(expected, abs=1e-4)
    assert found.related((0, 0), 2) == [((0, 1), pytest.approx(found.distances[0, 1])),
                                         ((1, 0), pytest.approx(found.distances[0, 2]))]
    np.testing.assert_allclose(found.coords[0], found.coords[1], atol=1e-6)  # same pattern, same place
    assert HeadMap.from_dict(found.to_dict()).related((1, 0), 1)[0][0] in [(0, 0), (0, 1)]


def test_classical_mds_recovers_euclidean_distances():
    points = np.random.default_rng(4).normal(size=(10, 2))
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    placed = classical_mds(distances)
    np.testing.assert_allclose(np.linalg.norm(placed[:, None] - placed[None], axis=-1), distances, atol=1e-9)


def test_head_map_of_minilm_is_stored_once_and_puts_each_head_near_similar_ones(tmp_path, monkeypatch):
    import workers.core.headmap
    from tests.support.texts import SENTENCES
    from workers.contracts.requests import HeadRequest
    from workers.pipeline.keys import stored_head_map
    from workers.pipeline.stages import ensure_extraction, ensure_head_map, ensure_head_summary
    from workers.store import open_store

    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(SENTENCES * 3))
    store = open_store(tmp_path / "cache")
    template = HeadRequest(corpus=str(corpus))
    assert stored_head_map(template, store) is None
    with pytest.raises(RuntimeError, match="not been run"):
        ensure_head_map(template, store)
    ensure_extraction(template, store)
    found = HeadMap.from_dict(ensure_head_map(template, store))
    assert len(found.cells) == 72 and found.coords.shape == (72, 2)
    monkeypatch.setattr(workers.core.headmap, "head_map", lambda *a, **kw: (_ for _ in ()).throw(AssertionError))
    assert ensure_head_map(template, store) == found.to_dict()  # stored: not computed again
    # MiniLM's L0H2 is a previous-token head: its nearest relative attends to the previous token more than most
    prev = {cell: ensure_head_summary(HeadRequest(corpus=str(corpus), layer=cell[0], head=cell[1]), store)
            ["prev_token"] for cell in found.cells}
    nearest = found.related((0, 2), 1)[0][0]
    assert prev[nearest] > np.median(list(prev.values()))


def test_head_map_labels_never_collide_and_the_current_head_is_named_on_top():
    from dashboard.figures.headmap import head_map_figure
    from dashboard.figures.text import labels_that_fit

    rng = np.random.default_rng(0)
    pile = rng.normal(0, 1e-3, size=(50, 2))  # fifty heads on one spot, as in a real map's bottom cluster
    apart = np.array([[x, 1.0] for x in np.linspace(-1, 1, 5)])  # five heads far apart
    coords = np.vstack([pile, apart])
    names = [f"L{i // 12}H{i % 12}" for i in range(len(coords))]
    shown = labels_that_fit(coords[:, 0], coords[:, 1], names, first=[7])
    assert shown[7] and shown[50:].all() and shown[:50].sum() == 1  # the pile gets one label: the one asked first
    # a label is not written over another head's point: A's label would cover B's, B's clears A's
    x, y = np.array([100.0, 110.0]), np.array([100.0, 114.0])  # one data unit a pixel
    assert labels_that_fit(x, y, ["L0H0", "L0H1"], [], extent=(700, 420), marker_px=5.5).tolist() == [False, True]
    assert labels_that_fit(x, y, ["L0H0", "L0H1"], [], extent=(700, 420)).tolist() == [True, True]
    cells = [(i // 12, i % 12) for i in range(len(coords))]
    figure = head_map_figure(HeadMap(cells=cells, coords=coords, distances=np.zeros((55, 55))), 5, current=(0, 7))
    heads, ring = figure.data[-2], figure.data[-1]
    assert heads.text[7] == "" and ring.text == ("<b>L0H7</b>",)  # named once, on top of every other trace
    assert sum(bool(t) for t in heads.text) == 5  # the five far apart; the pile's labels only on hover
    assert all(h.startswith(f"L{a} H{b}:") for (a, b), h in zip(cells, heads.hovertext, strict=True))
