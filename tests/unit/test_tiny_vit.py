"""The bundled tiny-vit: it ships beside tiny-gpt, loads through the registry as an image model, extraction over the
bundled images is its own attention, and its training record (accuracy, where each head looks) is what the
shipped weights give."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support.attention import model_image_attentions, rebuilt_attentions
from workers.corpora.corpus import load_corpus
from workers.corpora.images import digit_split, held_out_digits
from workers.models.extract import extract
from workers.models.loading import load_model
from workers.models.registry import read_spec, registry
from workers.models.tiny_vit import (
    RELATIONS,
    TINY_VIT_ALIAS,
    classifier_logits,
    heads_found,
    held_out,
    ink_patches,
    load_classifier,
    relation_shares,
    tiny_vit_path,
    uniform_shares,
)

GRID = 8


@pytest.fixture(scope="module")
def tiny_vit():
    """tiny-vit loaded the way every model is (registry alias, eager attention)."""
    return load_model(TINY_VIT_ALIAS)


@pytest.fixture(scope="module")
def record() -> dict:
    """Its training record."""
    return json.loads((tiny_vit_path() / "training.json").read_text())


def test_relation_shares_on_constructed_attention():
    """Heads whose attention is known: all on the query's own patch, all on CLS, spread evenly over every token,
    split between a patch's neighbours, and all on the ink (for the CLS query too)."""
    n = 1 + GRID * GRID
    ink = np.zeros((1, GRID * GRID), dtype=bool)
    ink[0, [10, 11, 12, 20, 28]] = True  # five ink patches
    itself = np.zeros((n, n))
    itself[np.arange(n), np.arange(n)] = 1.0
    on_cls = np.zeros((n, n))
    on_cls[:, 0] = 1.0
    even = np.full((n, n), 1.0 / n)
    neighbours = np.zeros((n, n))
    for patch in range(GRID * GRID):
        row, col = divmod(patch, GRID)
        around = [(r, c) for r, c in ((row - 1, col), (row + 1, col), (row, col - 1), (row, col + 1))
                  if 0 <= r < GRID and 0 <= c < GRID]
        for r, c in around:
            neighbours[1 + patch, 1 + r * GRID + c] = 1.0 / len(around)
    on_ink = np.zeros((n, n))
    on_ink[:, 1 + np.flatnonzero(ink[0])] = 1.0 / ink.sum()
    maps = np.stack([itself, on_cls, even, neighbours, on_ink])[None, None]  # [images=1, layers=1, heads=5, n, n]
    shares = relation_shares(maps, GRID, ink)
    uniform = uniform_shares(GRID, ink)
    assert list(shares) == list(RELATIONS) == list(uniform)
    half = 8 * 3.5 / n  # the patches left of a patch in column c: 8 c; c is 3.5 on average
    assert uniform == pytest.approx({"same_patch": 1 / n, "neighbours": 3.5 / n, "same_row": 7 / n,
                                     "same_column": 7 / n, "left": half, "right": half, "above": half,
                                     "below": half, "cls": 1 / n, "ink": 5 / n, "cls_to_ink": 5 / n})
    np.testing.assert_allclose(shares["same_patch"][0], [1, 0, 1 / n, 0, 1 / 64])  # 5 patches 1/5 on themselves
    np.testing.assert_allclose(shares["cls"][0], [0, 1, 1 / n, 0, 0])
    np.testing.assert_allclose([shares[name][0, 2] for name in RELATIONS], list(uniform.values()))
    np.testing.assert_allclose(shares["neighbours"][0, 3], 1.0)
    assert shares["same_row"][0, 3] + shares["same_column"][0, 3] == pytest.approx(1.0)
    assert shares["left"][0, 3] + shares["right"][0, 3] == pytest.approx(shares["same_row"][0, 3])
    assert shares["above"][0, 3] == pytest.approx(shares["below"][0, 3])
    np.testing.assert_allclose(shares["ink"][0, [0, 1, 2, 4]], [5 / 64, 0, 5 / n, 1])
    np.testing.assert_allclose(shares["cls_to_ink"][0], [0, 0, 5 / n, 0, 1])
    assert ink_patches(np.kron(ink.reshape(1, GRID, GRID, 1), np.ones((1, 4, 4, 3))).astype(np.uint8) * 255,
                       4).tolist() == ink.tolist()


def test_ships_small_and_loads_through_the_registry_as_an_image_model(tiny_vit):
    files = sorted(tiny_vit_path().iterdir())
    assert {f.name for f in files} == {"config.json", "model.safetensors", "classifier.safetensors",
                                        "preprocessor_config.json", "training.json"}
    assert sum(f.stat().st_size for f in files) <= 2 * 2**20
    source = registry()[TINY_VIT_ALIAS]
    assert source.kind == "bundled" and source.revision.startswith("bundled-")
    spec = read_spec(TINY_VIT_ALIAS)
    assert (spec.family, spec.modality, spec.causal, spec.n_layers, spec.n_heads) == ("vit", "image", False, 4, 4)
    assert tiny_vit.spec == spec
    pixel_values = tiny_vit.tokenizer(images=[held_out_digits()[0][1]], return_tensors="pt")["pixel_values"]
    assert tuple(pixel_values.shape) == (1, 3, 32, 32)


def test_extraction_over_the_bundled_images_is_its_own_attention(tiny_vit):
    """q and k extracted from every image of the bundled corpus rebuild the model's own attention."""
    corpus = load_corpus("images")
    bundle = extract(tiny_vit, corpus, batch_size=16)
    expected = model_image_attentions(tiny_vit, list(corpus.images))
    rebuilt = rebuilt_attentions(bundle, tiny_vit.spec)
    assert len(rebuilt) == len(expected) == len(corpus.images)
    for mine, theirs in zip(rebuilt, expected, strict=True):
        assert mine.shape == theirs.shape == (4, 4, 1 + GRID * GRID, 1 + GRID * GRID)
        np.testing.assert_allclose(mine, theirs, atol=1e-5, rtol=0)
    first = bundle.tokens["text_id"] == 0
    assert bundle.tokens["row"][first].max() == bundle.tokens["col"][first].max() == GRID - 1


def test_the_recorded_heads_are_what_the_shipped_weights_give(tiny_vit, record):
    """`--remeasure`'s measure on the held-out digits, from the weights as the registry loads them, gives the
    shares training.json records."""
    pixels, _labels, ink = held_out(tiny_vit.tokenizer)
    found = heads_found(tiny_vit.model, pixels, ink)
    assert found["images"] == record["test_images"] and found["uniform"] == record["heads"]["uniform"]
    for name in RELATIONS:
        np.testing.assert_allclose(found["shares"][name], record["heads"]["shares"][name], atol=1.5e-3, rtol=0)


def test_the_recorded_accuracy_is_what_the_shipped_weights_give(tiny_vit, record):
    """The classifier saved beside the model, on its pooled CLS, reads the held-out digits as well as recorded, far
    above the majority class; the 30 digits of the bundled corpus are among the held-out ones."""
    pixels, labels, _ink = held_out(tiny_vit.tokenizer)
    predicted = classifier_logits(tiny_vit.model, load_classifier(), pixels).argmax(-1)
    assert round(float((predicted == labels).mean()), 4) == record["test_accuracy"]
    assert record["test_accuracy"] >= 0.9 > 0.2 > record["majority_baseline"]
    names = [name for name, _image in held_out_digits()]
    assert [name.split()[1] for name in names] == [str(digit) for digit in range(10) for _ in range(3)]
    assert {int(name.split("#")[1]) for name in names} <= set(digit_split(1797)[1].tolist())


def test_the_dashboard_offers_it_with_the_images_and_its_matrix_fills(tiny_vit, tmp_path):
    """Picking tiny-vit in the dashboard gives the bundled images; the matrix ordered by attention to the first
    token (CLS) ranks first the head whose own attention gives CLS the most, over the corpus."""
    from dashboard import jobs
    from dashboard.state import corpus_choices, model_choices, parse_query
    from dashboard.views.matrix import head_values
    from workers.contracts.requests import HeadRequest
    from workers.pipeline.keys import corpus_template
    from workers.pipeline.stages import ensure_head_summaries

    assert TINY_VIT_ALIAS in model_choices() and corpus_choices("image")[0] == "images"
    state, notices = parse_query("?model=tiny-vit&view=matrix")
    assert (state.model, state.corpus, notices) == (TINY_VIT_ALIAS, "images", [])
    jobs.set_cache_dir(tmp_path / "cache")
    ensure_head_summaries(corpus_template(HeadRequest(model=TINY_VIT_ALIAS, corpus="images")), jobs.store())
    request = {"model": TINY_VIT_ALIAS, "corpus": "images", "norm": "fit", "method": "pca"}
    values, missing = head_values(request, "first_token", submit=False)
    assert missing == 0 and len(values) == 16
    own = np.mean([maps[:, :, :, 0].mean(axis=-1) for maps in
                   model_image_attentions(tiny_vit, list(load_corpus("images").images))], axis=0)  # [layers, heads]
    best = max(values, key=values.get)
    assert best == np.unravel_index(own.argmax(), own.shape)
    assert values[best] == pytest.approx(own.max(), abs=2e-3)


def test_the_mean_by_position_covers_every_patch_of_an_image(tiny_vit, tmp_path):
    """A head's stored mean attention by position spans CLS and all 64 patches (a text keeps its first 48
    positions), and equals the model's own attention averaged over the bundled images."""
    from workers.contracts.requests import HeadRequest
    from workers.pipeline.stages import ensure_extraction, ensure_position_mean
    from workers.store import open_store

    store = open_store(tmp_path / "cache")
    request = HeadRequest(model=TINY_VIT_ALIAS, corpus="images", layer=1, head=2, method="pca")
    ensure_extraction(request, store)
    stored = ensure_position_mean(request, store)
    n = 1 + GRID * GRID
    images = list(load_corpus("images").images)
    assert (stored["count"][:n, :n] == len(images)).all() and not stored["count"][n:].any()
    own = np.mean([maps[1, 2] for maps in model_image_attentions(tiny_vit, images)], axis=0)  # [n, n]
    np.testing.assert_allclose(stored["mean"][:n, :n], own, atol=1e-3)
