"""Extraction: attention rebuilt from the extracted q and k equals the model's own eager attention."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.attention import model_attentions, rebuilt_attentions
from tests.support.texts import SENTENCES
from workers.corpora.corpus import load_corpus, make_corpus
from workers.models.extract import extract


@pytest.mark.parametrize("model_fixture", ["minilm", "tiny_bert"])
def test_rebuilt_attention_equals_output_attentions(request, model_fixture):
    loaded = request.getfixturevalue(model_fixture)
    # batch_size 2 so sentences of different lengths share a padded batch
    bundle = extract(loaded, make_corpus("t", SENTENCES), batch_size=2)
    expected = model_attentions(loaded, SENTENCES)
    rebuilt = rebuilt_attentions(bundle, loaded.spec)
    assert len(rebuilt) == len(expected) == len(SENTENCES)
    for mine, theirs in zip(rebuilt, expected, strict=True):
        assert mine.shape == theirs.shape
        np.testing.assert_allclose(mine, theirs, atol=1e-5, rtol=0)


def test_minilm_spec(minilm):
    spec = minilm.spec
    assert (spec.family, spec.n_layers, spec.n_heads, spec.d_head, spec.causal) == ("bert", 6, 12, 32, False)


def test_shapes_and_tokens_table(minilm):
    bundle = extract(minilm, make_corpus("t", SENTENCES), batch_size=2)
    tokens = bundle.tokens
    n = len(tokens["token"])
    assert len(bundle.q) == len(bundle.k) == 6
    assert bundle.q[3].shape == bundle.k[3].shape == (12, n, 32)
    assert bundle.q[0].dtype == np.float32
    first = np.flatnonzero(tokens["text_id"] == 0)
    assert list(tokens["token"][first]) == ["[CLS]", "the", "cat", "sat", "on", "the", "mat", ".", "[SEP]"]
    assert list(tokens["position"][first]) == list(range(9))
    assert set(tokens["length"][first]) == {9}
    np.testing.assert_allclose(tokens["position_norm"][first], np.arange(9) / 8, atol=1e-7)
    assert list(tokens["is_special"][first]) == [True] + [False] * 7 + [True]
    the = tokens["token"] == "the"
    assert set(tokens["frequency"][the]) == {int(the.sum())}
    assert tokens["frequency"][tokens["token"] == "[CLS]"][0] == len(SENTENCES)


def test_batching_does_not_change_vectors(minilm):
    corpus = make_corpus("t", SENTENCES)
    one_by_one = extract(minilm, corpus, batch_size=1)
    batched = extract(minilm, corpus, batch_size=5)
    for layer in range(6):
        np.testing.assert_allclose(one_by_one.q[layer], batched.q[layer], atol=1e-4)
        np.testing.assert_allclose(one_by_one.k[layer], batched.k[layer], atol=1e-4)


def test_long_texts_are_truncated(minilm):
    bundle = extract(minilm, make_corpus("t", ["word " * 400, "short one"]), max_tokens=64)
    assert bundle.tokens["length"].max() == 64


def test_default_corpus_is_over_ten_thousand_tokens(minilm):
    from workers.models.extract import text_batches

    assert text_batches(minilm, load_corpus("default"), 64, 128).lengths.sum() >= 10_000
