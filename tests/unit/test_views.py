"""View computations against direct ones: metrics, colour modes, overlays, matrix tiling, downloads."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard.figures.matrix import cell_at, cell_origin, matrix_figure, unit_cell
from dashboard.figures.single import (
    COLOR_MODES,
    HeadData,
    Style,
    available_colors,
    color_values,
    on_screen,
    screen_coords,
    single_figure,
)
from tests.support.texts import SENTENCES
from workers.contracts.results import TextAttention
from workers.core import metrics
from workers.core.attention import attention_within_texts, position_mean, text_attention
from workers.core.tokens import readable
from workers.corpora.corpus import make_corpus
from workers.models.extract import extract


@pytest.fixture(scope="module")
def head(minilm) -> HeadData:
    """L2 H5 of MiniLM over the test sentences, with its attention within each text as the workers store it."""
    bundle = extract(minilm, make_corpus("t", SENTENCES), batch_size=2)
    q, k = bundle.q[2][5], bundle.k[2][5]
    coords = np.random.default_rng(0).normal(size=(2 * len(q), 2)).astype(np.float32)
    within = TextAttention.from_arrays(TextAttention(*attention_within_texts(q, k, bundle.tokens["text_id"], False))
                                       .to_arrays())
    return HeadData(coords=coords, tokens={**bundle.tokens, "texts": np.array(SENTENCES)}, q=q, k=k, causal=False,
                    attention=within)

CLIENT = "test-client"


def test_token_kinds_and_lengths_read_the_labels():
    labels = readable(["[CLS]", "the", ".", "##s", "'", "?!", "[SEP]"], [True, False, False, False, False, False, True],
                      [0] * 7)["label"]
    special = np.array([True, False, False, False, False, False, True])
    assert list(metrics.token_kind(labels, special)) == [1, 0, 2, 0, 2, 2, 1]
    assert list(metrics.token_lengths(labels)[:4]) == [5, 3, 1, 1]  # '##s' reads 's'


def test_search_is_case_insensitive_and_matches_tokens_as_they_read():
    labels = readable(["The", "the", "THE", "##the", "there", "[CLS]"], [False] * 5 + [True], [0] * 6)["label"]
    assert list(metrics.search_matches(labels, " tHe ")) == [True, True, True, True, False, False]
    assert list(metrics.search_matches(labels, "##the")) == [True, True, True, True, False, False]  # mark ignored
    assert not metrics.search_matches(labels, "").any()
    byte_level = readable(["<|endoftext|>", "ĠThe", "Ġcaf", "Ã", "©"], [True] + [False] * 4, [0] * 5)["label"]
    assert list(metrics.search_matches(byte_level, "the")) == [False, True, False, False, False]
    assert list(metrics.search_matches(byte_level, "É")) == [False, False, False, True, True]


def test_value_weighting_scales_each_key_by_its_value_norm_and_renormalises():
    attention = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    norms = np.array([1.0, 3.0, 0.0])
    out = metrics.value_weighted(attention, norms)
    for i in range(3):  # direct: a_ij |v_j| / sum_j a_ij |v_j|
        direct = [attention[i, j] * norms[j] / sum(attention[i, m] * norms[m] for m in range(3)) for j in range(3)]
        np.testing.assert_allclose(out[i], direct)
    assert out[0, 1] == 0.75 and np.all(out[:, 2] == 0)  # a key with an empty value vector contributes nothing
    assert np.all(metrics.value_weighted(attention, np.zeros(3)) == 0)  # no division by zero


def test_renormalise_without_special_columns():
    attention = np.array([[0.5, 0.3, 0.2], [0.6, 0.2, 0.2], [0.1, 0.1, 0.8]])
    out = metrics.renormalise_without(attention, np.array([True, False, False]))
    np.testing.assert_allclose(out[:, 0], 0)
    np.testing.assert_allclose(out.sum(axis=1), 1)
    np.testing.assert_allclose(out[0, 1:], [0.6, 0.4])


def test_attention_within_texts_is_each_texts_own_attention_in_any_token_order(head):
    """Every text's block is softmax(q kᵀ/√d) over that text's tokens (rows in table order), whatever order the
    tokens table lists the texts in; causal blocks are lower-triangular; the stored form reads back within 5e-4."""
    text_id = head.tokens["text_id"]
    order = np.random.default_rng(1).permutation(len(text_id))  # texts interleaved
    for causal in (False, True):
        flat, offsets = attention_within_texts(head.q[order], head.k[order], text_id[order], causal)
        stored = TextAttention.from_arrays(TextAttention(flat, offsets).to_arrays())
        assert len(offsets) == len(SENTENCES) + 1 and stored.of(len(SENTENCES)) is None and stored.of(-1) is None
        for text in range(len(SENTENCES)):
            rows = order[text_id[order] == text]
            q, k = head.q[rows].astype(np.float64), head.k[rows].astype(np.float64)
            logits = q @ k.T / np.sqrt(q.shape[1])
            if causal:
                logits[np.triu_indices(len(rows), 1)] = -np.inf
            direct = np.exp(logits - logits.max(axis=1, keepdims=True))
            direct /= direct.sum(axis=1, keepdims=True)
            np.testing.assert_allclose(flat[offsets[text]: offsets[text + 1]].reshape(len(rows), -1), direct,
                                       atol=1e-6)
            np.testing.assert_allclose(stored.of(text), direct, atol=5e-4)


def test_position_mean_equals_a_direct_average(head):
    within = head.attention
    mean, count = position_mean(within.attention, within.offsets, 48)
    total, seen = np.zeros((48, 48)), np.zeros((48, 48))
    for text in range(len(SENTENCES)):
        rows = head.tokens["text_id"] == text
        attention = text_attention(head.q[None, rows], head.k[None, rows])[0]
        n = len(attention)
        total[:n, :n] += attention
        seen[:n, :n] += 1
    np.testing.assert_array_equal(count, seen)
    np.testing.assert_allclose(mean[seen > 0], (total / np.maximum(seen, 1))[seen > 0], atol=5e-4)
    assert np.isnan(mean[seen == 0]).all()


@pytest.mark.parametrize("mode", [m for m in COLOR_MODES if m not in ("row", "col")])
def test_every_colour_mode_draws(head, mode):
    figure, _ = single_figure(head, Style(color=mode), "r")
    n = len(head.tokens["token"])
    assert [t.name for t in figure.data[:2]] == ["queries", "keys"]
    values = color_values(mode, "query", head)
    if mode == "role":
        assert values is None
    else:
        assert len(values) == n and np.isfinite(values).all()
    if mode == "norm":
        np.testing.assert_allclose(color_values(mode, "key", head), np.linalg.norm(head.k, axis=1), rtol=1e-5)


def test_image_colours_only_for_image_corpora(head):
    assert "row" not in available_colors(head.tokens)
    assert "row" in available_colors({**head.tokens, "row": np.zeros(3), "col": np.zeros(3)})


def test_overlays_count_matches_and_lines(head):
    _, counts = single_figure(head, Style(search="the", text=0), "r")
    assert counts["matches"] == int(np.isin(np.char.lower(head.tokens["token"]), ["the"]).sum()) == 3
    rows = head.tokens["text_id"] == 0
    attention = text_attention(head.q[None, rows], head.k[None, rows])[0].astype(np.float16)  # as stored
    assert counts["lines"] == int((attention >= 0.1).sum()) > 0
    # while the head's attention is being computed, the selected text is outlined and its lines wait
    from dataclasses import replace

    figure, counts = single_figure(replace(head, attention=None), Style(text=0), "r")
    names = [t.name for t in figure.data]
    assert "selected text (queries)" in names and not any(n.startswith("attention") for n in names)
    assert "lines" not in counts
    figure, _ = single_figure(head, Style(show="queries", text=0), "r")
    assert figure.data[1].visible == "legendonly"
    assert not any("keys" in (t.name or "") and "selected" in (t.name or "") for t in figure.data)


def test_a_picture_drawn_from_its_screen_coordinates_is_the_one_drawn_from_its_stored_ones(head):
    drawn = on_screen(head).coords  # what dashboard.jobs.head_data hands the views
    assert drawn.dtype == np.uint16
    np.testing.assert_array_equal(screen_coords(drawn.astype(np.float32)), drawn)  # the scale maps them onto themselves
    style = Style(labels=True, search="the", text=1)
    stored, screen = single_figure(head, style, "u"), single_figure(on_screen(head), style, "u")
    assert stored[1] == screen[1] and len(stored[0].data) == len(screen[0].data) > 4
    for a, b in zip(stored[0].data, screen[0].data, strict=True):
        assert a.name == b.name and list(a.text or []) == list(b.text or [])
        np.testing.assert_array_equal(np.asarray(a.x, dtype=float), np.asarray(b.x, dtype=float))
        np.testing.assert_array_equal(np.asarray(a.y, dtype=float), np.asarray(b.y, dtype=float))


def test_dense_pictures_draw_smaller_markers_down_to_two_pixels():
    def marker_sizes(tokens: int, dims: int = 2) -> list[float]:
        data = HeadData(coords=np.random.default_rng(0).normal(size=(2 * tokens, dims)),
                        tokens={"token": np.zeros(tokens, dtype=int), "position": np.arange(tokens) % 64},
                        q=np.zeros((tokens, 4)), k=np.zeros((tokens, 4)), causal=False)
        return [trace.marker.size for trace in single_figure(data, Style(), "u")[0].data]

    assert marker_sizes(12_000) == [4.0, 4.0]  # up to 50,000 points (queries and keys): 4 px
    assert marker_sizes(25_000) == [4.0, 4.0]
    assert marker_sizes(50_000) == [pytest.approx(2 * np.sqrt(2))] * 2  # all together cover what 50,000 of 4 px do
    assert marker_sizes(100_000) == [2.0, 2.0]
    assert marker_sizes(500_000) == [2.0, 2.0]
    assert marker_sizes(100_000, dims=3) == [2.0, 2.0]


def test_matrix_cells_tile_and_clicks_map_back():
    for layer in range(6):
        for head_index in range(12):
            x, y = cell_origin(layer, head_index, 6)
            for dx, dy in ((-20, -20), (0, 0), (500, 500), (1000, 1000), (1020, 1020)):
                assert cell_at(x + dx, y + dy, 6) == (layer, head_index)
    rng = np.random.default_rng(0)
    cells = {(0, 0): rng.normal(size=(200, 2)), (1, 2): rng.normal(size=(200, 2))}
    figure = matrix_figure(cells, 2, 3, np.arange(50))
    assert len(figure.data) == 2 and len(figure.data[0].x) == 2 * 50
    assert figure.data[0].x.dtype == np.uint16  # 2 bytes a coordinate on the wire
    placed = unit_cell(rng.normal(size=(500, 2)))
    assert placed.min() >= -0.02 and placed.max() <= 1.02


def test_a_1024_head_matrix_stays_within_its_point_budget_with_readable_labels_and_clickable_cells():
    """32 layers x 32 heads: every cell draws the same fewer tokens so the whole figure holds at most view.POINT_BUDGET
    points; each cell keeps its own picture (scaled into its cell), every 2nd layer and head is labelled, and the
    graph is tall enough for 18 px rows."""
    from dashboard.figures.matrix import label_step
    from dashboard.views import matrix as view

    assert view.tokens_per_cell(12_492, 72) == view.SAMPLE_TOKENS  # MiniLM's matrix is unchanged
    assert view.tokens_per_cell(12_492, 1024) == view.POINT_BUDGET // (2 * 1024) == 146
    assert view.tokens_per_cell(100, 1024) == 100 and view.tokens_per_cell(10**6, 10**6) == 1
    rng = np.random.default_rng(0)
    n_tokens, layers, heads = 600, 32, 32
    size = view.tokens_per_cell(n_tokens, layers * heads)
    sample = view.token_sample(n_tokens, size)
    cells = {(layer, head): rng.normal(size=(2 * n_tokens, 2)) + layer for layer in range(layers)
             for head in range(heads)}
    figure = matrix_figure(cells, layers, heads, sample)
    points = sum(len(trace.x) for trace in figure.data)
    assert points == 2 * layers * heads * size <= view.POINT_BUDGET
    origin = np.array(cell_origin(31, 7, layers))
    rows = np.concatenate([sample, sample + n_tokens])
    expected = (np.round(unit_cell(cells[(31, 7)][rows]) * 1000) + origin).astype(np.uint16)
    start = (31 * heads + 7) * size  # cells are drawn in (layer, head) order
    assert np.array_equal(np.c_[figure.data[0].x, figure.data[0].y][start:start + size], expected[:size])
    texts = [a.text for a in figure.layout.annotations]
    assert label_step(32) == 2 and "L30" in texts and "L31" not in texts and "H30" in texts and "H31" not in texts
    assert len(figure.layout.shapes) == layers * heads  # one frame a cell
    assert view.graph_style(32) == {"minHeight": f"{32 * view.MIN_CELL_PX + 90}px"}
    assert [a.text for a in matrix_figure(cells, 6, 12, sample).layout.annotations if a.text.startswith("H")] == \
        [f"H{h}" for h in range(12)]  # MiniLM: every head labelled


def test_download_table_equals_export(tmp_path):
    from dashboard import jobs
    from dashboard.shell.downloads import points_frame
    from workers.contracts.requests import HeadRequest
    from workers.pipeline.stages import ensure_head_view, export_arrays
    from workers.store import open_store

    jobs.set_cache_dir(tmp_path)
    store = open_store(tmp_path)
    request = HeadRequest(layer=1, head=1)
    keys = ensure_head_view(request, store)
    frame = points_frame(keys.__dict__)
    arrays = export_arrays(request, store)
    n = len(arrays["token"])
    assert list(frame.columns) == ["text_id", "position", "token", "role", "x", "y"] and len(frame) == 2 * n
    np.testing.assert_array_equal(frame[["x", "y"]].to_numpy(), arrays["coords"])


def test_matrix_shows_pca_until_the_slower_projection_finishes(tmp_path):
    from dashboard import jobs
    from dashboard.views.matrix import cells_figure, finished_cells, provisional_cells
    from workers.contracts.requests import HeadRequest
    from workers.models.registry import read_spec
    from workers.pipeline.stages import ensure_head_view
    from workers.store import open_store

    corpus = tmp_path / "tiny.txt"
    corpus.write_text("\n".join(SENTENCES * 8))
    jobs.set_cache_dir(tmp_path / "cache")
    store = open_store(tmp_path / "cache")
    for head in range(3):
        ensure_head_view(HeadRequest(corpus=str(corpus), layer=0, head=head, method="pca"), store)
    ensure_head_view(HeadRequest(corpus=str(corpus), layer=0, head=1, method="umap"), store)  # full: not a cell
    request = {"model": "minilm", "corpus": str(corpus), "norm": "fit", "method": "umap"}
    assert finished_cells(request)[0] == {}
    ensure_head_view(HeadRequest(corpus=str(corpus), layer=0, head=0, method="umap", preview=True), store)
    done, total = finished_cells(request)
    provisional = provisional_cells(request, done)
    assert set(done) == {(0, 0)} and set(provisional) == {(0, 1), (0, 2)} and total == 72
    figure, status = cells_figure(done, provisional, read_spec("minilm"), "", total, "umap")
    dashed = [s for s in figure.layout.shapes if s.line.dash == "dash"]
    assert len(dashed) == 2 and "2 cells show PCA (dashed) until their UMAP finishes" in status
    assert "UMAP previews (50 epochs" in status
    n_tokens = len(jobs.tokens_table(done[(0, 0)]["tokens"])["token"])
    assert len(figure.data[0].x) == 3 * min(n_tokens, 2000)  # three cells drawn: one UMAP, two PCA stand-ins
    assert provisional_cells({**request, "method": "pca"}, done) == {}


def test_view_fidelity_is_computed_once_and_matches_a_direct_computation(tmp_path, monkeypatch):
    import workers.core.stage_fidelity
    from dashboard.views.single import fidelity_text
    from workers.contracts.requests import HeadRequest
    from workers.core.fidelity import fidelity, picture_fidelity, sink_keys
    from workers.core.normalize import normalize
    from workers.pipeline.stages import ensure_head_view, ensure_view_fidelity, head_vectors
    from workers.store import open_store

    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(SENTENCES * 3))
    store = open_store(tmp_path / "cache")
    request = HeadRequest(corpus=str(corpus), layer=2, head=5)
    keys = ensure_head_view(request, store)
    found = ensure_view_fidelity(request, store)
    q, k = head_vectors(store, keys)
    tokens = store.get_arrays(keys.tokens)
    text_id, sinks = tokens["text_id"], tokens["is_special"]  # [CLS] and [SEP]: MiniLM's sinks
    coords = store.get_arrays(keys.coords)["coords"]
    assert (sink_keys(text_id, sinks, False) == sinks).all()
    assert found["raw"] == fidelity(q, k, q, k, text_id, False, sinks=sinks).to_dict()
    assert request.norm == "fit"  # the default
    normalised = normalize(q, k, "fit", text_id)
    assert found["normalised"] == fidelity(q, k, *normalised, text_id, False, sinks=sinks).to_dict()
    assert found["picture"] == picture_fidelity(q, k, coords, text_id, False, sinks=sinks).to_dict()
    assert 0 < found["picture"]["non_sink_share"] < 1 and 0 < found["picture"]["baseline"] < 1
    monkeypatch.setattr(workers.core.stage_fidelity, "view_fidelity",
                        lambda *a, **kw: (_ for _ in ()).throw(AssertionError))
    assert ensure_view_fidelity(request, store) == found  # stored: not computed again
    line = fidelity_text(found)
    picture = found["picture"]
    assert f"for {100 * picture['top1_in_k']:.0f}% of queries in this picture" in line
    assert f"already gets {100 * picture['baseline']:.0f}%" in line  # the no-picture guess, beside it
    assert f"for them the picture gets {100 * picture['top1_in_k_non_sink']:.0f}%" in line
    assert f"closeness: {picture['rank_correlation']:.2f}" in line
    assert f"queries scaled by {found['transform']['scale']:.2f}" in line  # the fitted scale is shown


def test_ranked_slots_put_the_highest_first_and_unknown_last():
    from dashboard.figures.matrix import ranked_slots

    values = {(0, 0): 0.1, (0, 1): 0.9, (1, 0): float("nan"), (1, 1): 0.5}
    assert ranked_slots(values, n_heads=2) == {(0, 1): (0, 0), (1, 1): (0, 1), (0, 0): (1, 0), (1, 0): (1, 1)}


def test_matrix_ranked_by_a_summary_places_and_labels_heads_and_a_click_opens_the_right_one(tmp_path, monkeypatch):
    from dashboard import jobs
    from dashboard.figures.matrix import CELL, cell_origin
    from dashboard.state import ViewState
    from dashboard.views.matrix import cells_figure, finished_cells, head_values, kept, matrix_cell, ranking
    from workers.contracts.requests import HeadRequest
    from workers.core.fidelity import picture_fidelity
    from workers.models.registry import read_spec
    from workers.pipeline.stages import ensure_head_view
    from workers.runtime import local_queue

    corpus = tmp_path / "tiny.txt"
    corpus.write_text("\n".join(SENTENCES * 4))
    monkeypatch.setenv("QK_ATLAS_CORPORA", f"tiny={corpus}")  # an offered corpus: the dashboard submits no paths
    jobs.set_cache_dir(tmp_path / "cache")
    store = jobs.store()
    for head in range(12):
        ensure_head_view(HeadRequest(corpus="tiny", layer=0, head=head, method="pca"), store)
    request = {"model": "minilm", "corpus": "tiny", "norm": "fit", "method": "pca"}
    values, missing = head_values(request, "prev_token", CLIENT)
    assert values == {} and missing == 72  # nothing summarised yet: one job for every head's summary submitted
    assert local_queue.run_queued(store) == 1  # what a worker does with it
    values, missing = head_values(request, "prev_token", CLIENT)
    assert len(values) == 72 and missing == 0  # extraction stores every layer: every head can be summarised
    slots, labels = ranking(values, 12)
    best = max(values, key=values.get)
    assert slots[best] == (0, 0) and labels[best] == f"L{best[0]}H{best[1]} · {values[best]:.2f}"
    done, total = finished_cells(request)
    figure, _status = cells_figure(done, {}, read_spec("minilm"), "", total, "pca", slots, labels)
    assert labels[best] in [a.text for a in figure.layout.annotations]
    x, y = cell_origin(0, 0, 6)
    click = {"points": [{"x": x + CELL / 2, "y": y + CELL / 2}]}
    opened = matrix_cell(ViewState(view="matrix", corpus="tiny", order="prev_token"), click)
    assert (opened.view, opened.layer, opened.head) == ("single", *best)
    # by the fidelity of each cell's own picture: only heads with a picture have one
    assert head_values(request, "fidelity", CLIENT) == ({}, 72)  # one bulk job per finished picture submitted
    assert local_queue.run_queued(store) == len(done)
    by_fidelity, without = head_values(request, "fidelity", CLIENT)
    assert set(by_fidelity) == set(done) and without == 72 - len(done)
    q, k = (jobs.stored_vector(done[(0, 3)][role]) for role in ("q", "k"))
    text_id = jobs.tokens_table(done[(0, 3)]["tokens"])["text_id"]
    direct = picture_fidelity(q, k, jobs.store().get_arrays(done[(0, 3)]["coords"])["coords"], text_id, False)
    assert by_fidelity[(0, 3)] == pytest.approx(direct.top1_in_k)
    # keep only the heads at or above a value: fewer cells, still ranked; a click past them opens nothing
    threshold = sorted(values.values())[-5]
    slots, labels = ranking(kept(values, str(threshold)), 12)
    assert len(slots) == 5 and set(slots.values()) == {(0, c) for c in range(5)}
    figure, _status = cells_figure(done, {}, read_spec("minilm"), "", total, "pca", slots, labels)
    drawn = sum(cell in done for cell in slots)  # kept heads that have a picture (layer 0 here)
    assert drawn >= 1 and len(figure.data[0].x) == drawn * len(jobs.tokens_table(done[(0, 0)]["tokens"])["token"])
    x, y = cell_origin(3, 0, 6)
    state = ViewState(view="matrix", corpus="tiny", order="prev_token", keep=str(threshold))
    assert matrix_cell(state, {"points": [{"x": x + CELL / 2, "y": y + CELL / 2}]}) == state


def test_matrix_cells_coloured_by_fidelity_follow_the_values_on_one_colour_bar(tmp_path, monkeypatch):
    from dashboard import jobs
    from dashboard.figures.matrix import TINT_SCALE, cell_origin
    from dashboard.views.matrix import cells_figure, finished_cells, head_values
    from workers.contracts.requests import HeadRequest
    from workers.models.registry import read_spec
    from workers.pipeline.stages import ensure_head_view
    from workers.runtime import local_queue

    corpus = tmp_path / "tiny.txt"
    corpus.write_text("\n".join(SENTENCES * 4))
    monkeypatch.setenv("QK_ATLAS_CORPORA", f"tiny={corpus}")  # an offered corpus: the dashboard submits no paths
    jobs.set_cache_dir(tmp_path / "cache")
    for head in range(6):
        ensure_head_view(HeadRequest(corpus="tiny", layer=1, head=head, method="pca"), jobs.store())
    request = {"model": "minilm", "corpus": "tiny", "norm": "fit", "method": "pca"}
    head_values(request, "fidelity", CLIENT)
    assert local_queue.run_queued(jobs.store()) == 6
    values, _missing = head_values(request, "fidelity", CLIENT)
    assert set(values) == {(1, head) for head in range(6)}
    done, total = finished_cells(request)
    figure, status = cells_figure(done, {}, read_spec("minilm"), "", total, "pca", tint=(values, "fidelity"))
    fills = {}
    for shape in figure.layout.shapes:  # the frame of each cell, found by its corner
        for cell in values:
            x, y = cell_origin(*cell, 6)
            if shape.x0 == x - 40 and shape.y0 == y - 40:
                fills[cell] = shape.fillcolor
    assert len(fills) == 6 and len(set(fills.values())) > 1
    low, high = min(values, key=values.get), max(values, key=values.get)
    yellow, purple = (int(part) for part in fills[high][5:-1].split(",")[:2]), fills[low]
    assert next(yellow) > 200 and purple.startswith("rgba(68,1,84")  # Viridis: top value yellow, lowest purple
    bar = figure.data[-1]
    assert bar.marker.showscale and bar.marker.cmin == values[low] and bar.marker.cmax == values[high]
    assert TINT_SCALE == "Viridis" and bar.marker.colorbar.title.text == "fidelity"
    untinted = {s.fillcolor for s in figure.layout.shapes if s.fillcolor and s.fillcolor not in fills.values()}
    assert untinted <= {"rgba(240,240,240,0.6)", "rgba(0,0,0,0)"}  # heads without a value keep the plain frame


def test_the_default_plotly_template_is_built_before_requests_draw_figures():
    """Plotly builds template objects lazily without a lock (plotly.py #3441); the app builds them all first."""
    import plotly.io as pio
    from _plotly_utils.basevalidators import CompoundArrayValidator, CompoundValidator
    from plotly.basedatatypes import BasePlotlyType

    from dashboard.figures import warm_default_template

    assert warm_default_template() > 100

    def unbuilt(node: object) -> list[str]:
        if isinstance(node, BasePlotlyType):
            cached = {**node._compound_props, **node._compound_array_props}
            compound = [name for name in node._props or {}
                        if isinstance(node._get_validator(name), (CompoundValidator, CompoundArrayValidator))]
            return [name for name in compound if name not in cached] + [
                missing for name in compound for missing in unbuilt(cached.get(name))]
        if isinstance(node, (tuple, list)):
            return [missing for item in node for missing in unbuilt(item)]
        return []

    template = pio.templates[pio.templates.default]
    assert unbuilt(template.layout) == [] and unbuilt(template.data) == []


def test_label_legend_names_read_as_english_and_count_the_labels_written(head, monkeypatch):
    """Token labels are named per role in plain words, with how many tokens are written when not all ('query
    labels (35 of 64)'); of a crowded picture's sample only the labels that meet no other are written, of one spread
    wide all of them."""

    from dashboard.figures import single

    n = len(head.tokens["token"])
    figure, _ = single_figure(head, Style(labels=True), "r")  # 2 x 64 points drawn at random: crowded
    labels = [t for t in figure.data if t.mode == "text"]
    written = [len(t.text) for t in labels]  # the sample is every token; only the labels that fit are drawn
    assert [t.name for t in labels] == [f"query labels ({written[0]} of {n})", f"key labels ({written[1]} of {n})"]
    assert all(0 < count < n for count in written) and all(len(t.x) == len(t.text) for t in labels)
    first = np.flatnonzero(head.tokens["text_id"] == 0)  # one text, its queries in a row above its keys, far apart
    m = len(first)
    spread = HeadData(coords=np.array([[100.0 * (i % m), 200.0 * (i // m)] for i in range(2 * m)]),
                      tokens={name: column[first] if len(column) == n else column
                              for name, column in head.tokens.items()}, q=head.q[first], k=head.k[first], causal=False)
    figure, _ = single_figure(spread, Style(labels=True), "r")
    labels = [t for t in figure.data if t.mode == "text"]
    assert [t.name for t in labels] == ["query labels", "key labels"] and all(len(t.text) == m for t in labels)
    monkeypatch.setattr(single, "LABEL_SAMPLE", 3)
    figure, _ = single_figure(spread, Style(labels=True), "r")
    assert [t.name for t in figure.data if t.mode == "text"] == [f"query labels (3 of {m})", f"key labels (3 of {m})"]


def test_labels_with_a_search_stay_readable(head, monkeypatch):
    """Token labels plus a search do not bury the picture: the sample's labels turn faint and skip the matches,
    and matches carry labels only when there are few of them (every label fitting, for the count)."""
    from dashboard.figures import single
    from dashboard.figures.single import LABEL_SAMPLE, MATCH_LABELS, overlay_traces

    monkeypatch.setattr(single, "labels_that_fit", lambda x, y, *_a, **_k: np.ones(len(x), dtype=bool))
    common = "the"
    plain, _ = overlay_traces(head, Style(labels=True))
    searched, counts = overlay_traces(head, Style(labels=True, search=common))
    labels = {t.name: t for t in searched if "labels" in t.name}
    matches = [t for t in searched if t.name.startswith("match")]
    assert all(len(t.textfont.color) == 9 for t in labels.values())  # #rrggbb + alpha: faint
    assert all(len(t.textfont.color) == 7 for t in plain if "labels" in t.name)  # full colour without a search
    assert sum(len(t.x) for t in labels.values()) < sum(len(t.x) for t in plain)  # the matches' labels left out
    assert len(plain[0].x) == min(LABEL_SAMPLE, len(head.tokens["token"]))
    assert all(m.mode == ("markers+text" if counts["matches"] <= MATCH_LABELS else "markers") for m in matches)
    for limit, mode in ((counts["matches"], "markers+text"), (counts["matches"] - 1, "markers")):
        original, single.MATCH_LABELS = single.MATCH_LABELS, limit
        try:
            again, _ = overlay_traces(head, Style(labels=True, search=common))
        finally:
            single.MATCH_LABELS = original
        assert {t.mode for t in again if t.name.startswith("match")} == {mode}


def test_search_match_labels_never_pile_up(head):
    """A few matches are labelled, but a pile of one word is labelled once: matching queries heaped on one spot get
    one label between them, matching keys set far apart keep all theirs; in 3D (the camera decides) all are."""
    from dataclasses import replace

    from dashboard.figures.single import MATCH_LABELS, overlay_traces, token_labels

    word = "the"
    rows = np.flatnonzero(metrics.search_matches(token_labels(head.tokens), word))
    assert 3 <= len(rows) <= MATCH_LABELS
    n = len(head.tokens["token"])
    coords = np.random.default_rng(1).uniform(0, 1000, size=(2 * n, 2))
    coords[rows] = 500.0  # every matching query on one spot
    coords[n + rows] = np.column_stack([np.linspace(0, 1000, len(rows)), np.zeros(len(rows))])  # keys far apart
    traces, _ = overlay_traces(replace(head, coords=coords), Style(search=word))
    queries, keys = (next(t for t in traces if t.name == f"match ({role})") for role in ("queries", "keys"))
    assert queries.mode == keys.mode == "markers+text"
    assert sum(bool(t.strip()) for t in queries.text) == 1 and all(t.strip() for t in keys.text)
    spaced = np.hstack([coords, np.zeros((2 * n, 1))])
    traces, _ = overlay_traces(replace(head, coords=spaced), Style(search=word))
    assert all(all(text.strip() for text in t.text) for t in traces if t.name.startswith("match"))


def test_a_click_on_an_image_patch_selects_it_and_other_clicks_change_nothing():
    """The image view's heatmap carries each cell's token position: clicking a cell selects that patch of the shown
    image; a click on a text's lines, or with no image shown, leaves the selection as it was."""
    from dashboard.figures.image import image_figure
    from dashboard.state import ViewState
    from dashboard.views.sentence import clicked_patch

    grid = 8
    figure = image_figure(np.zeros((32, 32, 3), dtype=np.uint8), np.full(1 + grid * grid, 1 / 65), grid, 28, "x")
    heatmap = figure.data[1]
    row, col = 5, 2
    position = int(heatmap.customdata[row][col])
    assert position == 1 + row * grid + col
    shown = ViewState(model="tiny-vit", corpus="images", text=40, pos=28)
    click = {"points": [{"x": float(heatmap.x[col]), "y": float(heatmap.y[row]), "z": 0.1, "customdata": position}]}
    assert clicked_patch(shown, click).pos == position and clicked_patch(shown, click).text == 40
    assert clicked_patch(shown, {"points": [{"x": 0, "y": 3, "customdata": 3}]}) == shown  # a text's lines
    assert clicked_patch(ViewState(text=-1, pos=-1), click).pos == -1  # no image shown
    assert clicked_patch(shown, None) == shown


def test_a_picture_follows_its_heads_attention_until_it_is_stored(tmp_path, monkeypatch):
    """A stored picture is drawn at once and its head's attention job is submitted beside it; poll ticks follow that
    job without redrawing anything until it is stored; then the computed record says the lines can be drawn, and
    they are read from the store. The guard accepts exactly what the server writes."""
    from dashboard import guard, ids, jobs, picture
    from dashboard.state import COMPUTE_FIELDS
    from workers.contracts.requests import HeadRequest
    from workers.pipeline.stages import ensure_head_view, ensure_text_attention
    from workers.runtime.local_queue import run_queued
    from workers.store import open_store

    corpus = tmp_path / "small.txt"
    corpus.write_text("\n".join(SENTENCES))
    monkeypatch.setenv("QK_ATLAS_CORPORA", f"small={corpus}")
    jobs.set_cache_dir(tmp_path / "cache")
    store = open_store(tmp_path / "cache")
    request = HeadRequest(corpus="small", layer=1, head=2, method="pca")
    ensure_head_view(request, store)
    data = {name: request.to_dict()[name] for name in COMPUTE_FIELDS}  # what the URL sync writes
    first = picture.look(data, None, "a-client", asked=True)
    assert first.computed["keys"] == jobs.cached_keys(request, store) and first.computed["lines"]["state"] == "waiting"
    assert first.job["lines"] is True and not first.repeat
    assert jobs.lines_of(first.computed) is None
    tick = picture.look(data, first.job, "a-client", asked=False)
    assert tick.repeat and tick.job == first.job  # nothing new: the poll goes on, nothing is redrawn
    assert run_queued(store) == 1  # the one attention job (the picture was stored)
    done = picture.look(data, first.job, "a-client", asked=False)
    assert done.computed["lines"] == {"state": "done"} and done.job is None and not done.repeat
    np.testing.assert_array_equal(jobs.lines_of(done.computed).of(3), ensure_text_attention(request, store).of(3))
    for record, slot in ((first.computed, ids.SINGLE_KEYS), (done.computed, ids.SINGLE_KEYS),
                         (first.job, ids.SINGLE_JOB)):
        assert guard.RULES[(slot, "data")](record) is None
    for lines in ({"state": "done", "key": "textattention-0"}, {"state": "waiting"}, {"state": "ready"}, "done"):
        assert guard.RULES[(ids.SINGLE_KEYS, "data")]({**done.computed, "lines": lines}) is not None
    assert guard.RULES[(ids.SINGLE_JOB, "data")]({**first.job, "lines": "yes"}) is not None


def test_the_special_token_switch_changes_a_text_and_is_ignored_for_an_image(isolated_cache, tmp_path, monkeypatch):
    """The sentence view's 'hide special tokens' switch means something for a text only: posted on an image (its
    box is hidden there, but a request is anyone's to send) it leaves the drawing as it was; on a text it drops
    [CLS] and [SEP]."""
    import json

    from dashboard import ids, jobs
    from dashboard.app import create_app
    from dashboard.state import ViewState
    from tests.support.callbacks import base_values, post, reading, request_body
    from workers.contracts.requests import HeadRequest
    from workers.pipeline.stages import ensure_head_view, ensure_position_mean, ensure_text_attention

    corpus = tmp_path / "small.txt"
    corpus.write_text("\n".join(SENTENCES))
    monkeypatch.setenv("QK_ATLAS_CORPORA", f"small={corpus}")
    client = create_app(cache_dir=isolated_cache, start_worker=False).server.test_client()
    draw = reading(client, f"{ids.HIDE_SPECIAL}.value")

    def drawn(state: ViewState, hide: bool) -> dict:
        request = HeadRequest.from_dict(state.request())
        keys = ensure_head_view(request, jobs.store()).__dict__
        ensure_text_attention(request, jobs.store())  # what the view draws from
        ensure_position_mean(request, jobs.store())
        values = {**base_values(state, keys), (ids.HIDE_SPECIAL, "value"): hide}
        answer = post(client, request_body(draw, values, f"{ids.HIDE_SPECIAL}.value"))
        assert answer.status_code == 200, answer.get_data(as_text=True)[-500:]
        return json.loads(answer.get_data(as_text=True))["response"][ids.SENTENCE_GRAPH]["figure"]

    image = ViewState(view="sentence", model="tiny-vit", corpus="images", method="pca", text=40, pos=28)
    shown = drawn(image, False)
    assert [t["type"] for t in shown["data"]] == ["image", "heatmap"]
    assert drawn(image, True) == shown
    text = ViewState(view="sentence", corpus="small", method="pca", text=0)
    queries = {hide: next(t for t in drawn(text, hide)["data"] if t.get("name") == "queries")["text"]
               for hide in (False, True)}
    assert queries[False][0] == "[CLS]" and queries[False][-1] == "[SEP]"
    assert queries[True] == queries[False][1:-1]
