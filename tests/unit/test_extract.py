"""Extraction: attention rebuilt from the extracted q and k equals the model's own eager attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.support.attention import model_attentions, own_attentions, rebuilt_attentions
from tests.support.texts import SENTENCES
from tests.support.tiny_models import build, image_processor
from workers.corpora.corpus import load_corpus, make_corpus, make_image_corpus
from workers.corpora.images import default_images
from workers.models.devices import CPU_FLOAT32, TORCH_DTYPES, Placement
from workers.models.extract import extract
from workers.models.loading import LoadedModel, load_model, wrap_model


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


class _CountingTokenizer:
    """The real tokenizer, counting the texts it is asked to tokenise."""

    def __init__(self, tokenizer):
        self.tokenizer, self.texts_seen = tokenizer, 0

    def __call__(self, texts, **kwargs):
        self.texts_seen += len(texts)
        return self.tokenizer(texts, **kwargs)


def test_tokenising_stops_once_the_token_limit_is_reached(minilm):
    """The kept ids are the whole corpus's tokenisation cut at the limit; texts past it are never tokenised."""
    import dataclasses

    from workers.models.extract import token_ids

    texts = [f"{sentence} ({i})" for i in range(10) for sentence in SENTENCES]
    whole = [list(ids) for ids in minilm.tokenizer(texts, truncation=True, max_length=16)["input_ids"]]
    kept = int((np.cumsum([len(ids) for ids in whole]) <= 150).sum())
    assert 4 < kept < len(texts) - 8
    counting = _CountingTokenizer(minilm.tokenizer)
    ids = token_ids(dataclasses.replace(minilm, tokenizer=counting), texts, 16, 150, chunk=4)
    assert ids == whole[:kept]
    assert counting.texts_seen == 4 * (kept // 4 + 1)  # the chunks up to the first text that does not fit
    assert token_ids(minilm, texts, 16, None, chunk=4) == whole
    assert token_ids(minilm, texts, 16, 1, chunk=4) == whole[:1]  # at least one text


def test_disk_spool_hands_out_each_head_in_corpus_order_holding_only_those_heads():
    """Heads read from a spool file are its columns in corpus order, each its own array; reading them takes the
    heads' memory and one row block (tracemalloc sees numpy's buffers), not copies of the file's columns."""
    import tracemalloc

    from workers.models.extract import Spool

    rows, heads, d_head, block_rows = 40_000, 8, 32, 16384  # block_rows: Spool's own
    rng = np.random.default_rng(0)
    batch_rows = rng.standard_normal((rows, heads * d_head)).astype(np.float16)
    order = rng.permutation(rows)  # corpus row i is batch row order[i]
    spool = Spool(on_disk=True, dtype=torch.float16)
    try:
        for start in range(0, rows, 3000):
            spool.add("q", 0, torch.from_numpy(batch_rows[start: start + 3000]))
        tracemalloc.start()
        got = spool.heads("q", 0, [2, 3, 4, 5, 6], d_head, order)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    finally:
        spool.close()
    heads_bytes, block_bytes = 5 * rows * d_head * 2, block_rows * heads * d_head * 2
    index_bytes = 2 * rows * 8  # where each row goes, and the range it is built from
    assert heads_bytes <= peak <= heads_bytes + block_bytes + index_bytes
    for i, head in enumerate(range(2, 7)):
        np.testing.assert_array_equal(got[i], batch_rows[order][:, head * d_head: (head + 1) * d_head])
        assert got[i].base is None and got[i].flags.c_contiguous


# The most attention rebuilt from a model run in each dtype may differ from the float32 model's own (max |difference|
# over every weight); docs/configuration.md states them, bench/gpu.py measures the bundled models.
DTYPE_TOLERANCE = {"float32": 1e-5, "bfloat16": 5e-2, "float16": 5e-3}


def _model_in(kind: str, tokenizer, where: Placement) -> LoadedModel:
    """A bundled model (tiny-gpt, tiny-vit: trained, so their attention is far from uniform) or a tiny random one
    of a family (tests/support/tiny_models.py), on `where`."""
    if kind.startswith("tiny-"):
        return load_model(kind, where)
    return wrap_model(build(kind), image_processor() if kind == "vit" else tokenizer, kind, "random", where)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("kind", ["tiny-gpt", "tiny-vit", "bert", "llama-gqa"])
def test_each_dtype_rebuilds_the_float32_models_attention(kind, dtype, minilm):
    """The model run in float32, bfloat16 or float16 (on the CPU, through the same functions a GPU runs): q, k and v
    come out as float32, and the attention rebuilt from them is the float32 model's own within the dtype's
    tolerance (rotary and grouped-query heads included: llama-gqa)."""
    reference = _model_in(kind, minilm.tokenizer, CPU_FLOAT32)
    loaded = _model_in(kind, minilm.tokenizer, Placement(torch.device("cpu"), TORCH_DTYPES[dtype]))
    assert loaded.model.dtype == TORCH_DTYPES[dtype]
    images = default_images()[:4] + default_images()[-3:]
    corpus = make_image_corpus("images", images) if kind.endswith("vit") else make_corpus("t", SENTENCES)
    bundle = extract(loaded, corpus, batch_size=3)  # padded batches
    assert {layer.dtype for layer in bundle.q + bundle.k + bundle.v} == {np.dtype(np.float32)}
    rebuilt, expected = rebuilt_attentions(bundle, loaded.spec), own_attentions(reference, corpus)
    error = max(np.abs(mine - theirs).max() for mine, theirs in zip(rebuilt, expected, strict=True))
    assert error <= DTYPE_TOLERANCE[dtype], error


def test_the_documented_tolerances_are_the_tested_ones():
    """docs/configuration.md's table of tolerances per dtype is DTYPE_TOLERANCE."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    for dtype, tolerance in DTYPE_TOLERANCE.items():
        assert f"\n| `{dtype}` | {tolerance:g}" in text, dtype
