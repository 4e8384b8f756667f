"""The bundled tiny-gpt: it ships in the wheel, loads through the registry, and its own attention shows the
previous-token and induction heads it was trained to form."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from workers.corpora.corpus import load_corpus
from workers.models.loading import load_model
from workers.models.registry import read_spec, registry
from workers.models.tiny_gpt import (
    POSITION_BANDS,
    TINY_GPT_ALIAS,
    attention_maps,
    corpus_windows,
    induction_scores,
    induction_scores_by_span,
    previous_token_by_band,
    previous_token_scores,
    repeated_corpus_words,
    repeated_random_tokens,
    tiny_gpt_path,
    words_of,
)

ROOT = Path(__file__).resolve().parents[2]
SPAN = 24


@pytest.fixture(scope="module")
def tiny_gpt():
    """tiny-gpt loaded the way every model is (registry alias, eager attention)."""
    return load_model(TINY_GPT_ALIAS)


def test_scores_on_constructed_attention():
    """A head that attends only to the previous token scores 1 on it; one that copies after a repeat scores 1."""
    n = 1 + 2 * SPAN
    previous = np.eye(n, k=-1)
    previous[0, 0] = 1.0
    induction = np.eye(n)
    queries = 1 + SPAN + np.arange(SPAN - 1)
    induction[queries] = 0.0
    induction[queries, queries - SPAN + 1] = 1.0
    maps = [np.stack([previous, induction])[None]]  # [layers=1, heads=2, n, n]
    assert np.allclose(previous_token_scores(maps), [[1.0, 0.0]])
    assert np.allclose(induction_scores(maps, SPAN), [[0.0, 1.0]])


def test_band_and_span_scores_on_constructed_attention():
    """Previous-token attention by position band, and induction over spans of different lengths, on maps with
    known answers."""
    n = 128
    previous = np.eye(n, k=-1)
    previous[0, 0] = 1.0
    uniform = np.tril(np.ones((n, n))) / np.arange(1, n + 1)[:, None]
    bands = previous_token_by_band([np.stack([previous, uniform])[None]])
    assert bands.shape == (len(POSITION_BANDS), 1, 2)
    np.testing.assert_allclose(bands[:, 0, 0], 1.0)
    for (first, last), band in zip(POSITION_BANDS, bands[:, 0, 1], strict=True):
        assert band == pytest.approx(np.mean(1 / np.arange(first + 1, last + 2)))
    maps, spans = [], [5, 9]
    for span in spans:
        size = 1 + 2 * span
        copy = np.eye(size)
        queries = 1 + span + np.arange(span - 1)
        copy[queries] = 0.0
        copy[queries, queries - span + 1] = 1.0
        maps.append(np.stack([copy, np.eye(size)])[None])
    np.testing.assert_allclose(induction_scores_by_span(maps, spans), [[1.0, 0.0]])


def test_ships_small_and_loads_through_the_registry(tiny_gpt):
    files = sorted(tiny_gpt_path().iterdir())
    assert sum(f.stat().st_size for f in files) <= 20 * 2**20
    source = registry()[TINY_GPT_ALIAS]
    assert source.kind == "bundled" and source.revision.startswith("bundled-")
    spec = read_spec(TINY_GPT_ALIAS)
    assert (spec.family, spec.causal, spec.n_layers, spec.n_heads) == ("gpt2", True, 3, 4)
    assert tiny_gpt.spec == spec
    ids = tiny_gpt.tokenizer("The cat sat on the mat.")["input_ids"]
    assert ids[0] == tiny_gpt.tokenizer.bos_token_id and len(ids) > 3


def test_the_wheel_carries_the_weights_and_tokenizer(tmp_path):
    """A clean install gets the model: the wheel holds every file of the folder (and every file of tiny-vit's)."""
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("qk_atlas-*.whl")
    inside = set(zipfile.ZipFile(wheel).namelist())
    wanted = {f"workers/data/tiny_gpt/{name}" for name in ("config.json", "model.safetensors", "tokenizer.json",
                                                              "tokenizer_config.json")}
    wanted |= {f"workers/data/tiny_vit/{path.name}" for path in (ROOT / "workers" / "data" / "tiny_vit").iterdir()}
    assert len(wanted) == 4 + 5 and wanted <= inside


def test_a_previous_token_head_on_the_corpus(tiny_gpt):
    """One head of layer 0 (below the induction heads that need it) gives the previous token at least 0.8 of its
    attention at every position band of 128-token windows of running corpus text, far more than any head above."""
    texts = list(load_corpus("default").texts)
    tokenizer = tiny_gpt.tokenizer
    stream = [i for ids in tokenizer(texts, add_special_tokens=False)["input_ids"] for i in ids]
    windows = corpus_windows(stream, tokenizer.bos_token_id, count=8, length=128, seed=11)
    bands = previous_token_by_band(attention_maps(tiny_gpt.model, windows))  # [bands, layers, heads]
    weakest = bands.min(axis=0)
    layer, head = np.unravel_index(weakest.argmax(), weakest.shape)
    assert layer == 0 and weakest[0, head] >= 0.8, bands[:, 0].round(2)
    scores = previous_token_scores(attention_maps(tiny_gpt.model, tokenizer(texts[:64])["input_ids"]))
    assert scores.shape == (3, 4) and scores[0, head] > 2.5 * scores[1:].max(), scores.round(2)


def test_an_induction_head_on_repeated_random_tokens(tiny_gpt):
    """From the second occurrence of a token, attention goes to the token after its first occurrence; the same
    head does not do it when the second half is a fresh random string (the control)."""
    tokenizer = tiny_gpt.tokenizer
    repeated = repeated_random_tokens(len(tokenizer), tokenizer.bos_token_id, count=24, span=SPAN, seed=7)
    scores = induction_scores(attention_maps(tiny_gpt.model, repeated), SPAN)
    control_seqs = [seq[:1 + SPAN] + other[1 + SPAN:] for seq, other in
                    zip(repeated, repeated_random_tokens(len(tokenizer), tokenizer.bos_token_id, 24, SPAN, seed=8),
                        strict=True)]
    control = induction_scores(attention_maps(tiny_gpt.model, control_seqs), SPAN)
    layer, head = np.unravel_index(scores.argmax(), scores.shape)
    assert layer >= 1, "an induction head needs a previous-token head below it"
    assert scores[layer, head] > 0.3, scores.round(2)
    assert scores[layer, head] > 5 * control[layer, head], (scores.round(2), control.round(2))


def test_an_induction_head_on_repeated_corpus_words(tiny_gpt):
    """Twenty distinct corpus words written twice: from each token of the second copy, at least 0.6 of the
    attention goes to the token after its first occurrence, in a head above layer 0; with the second copy's words
    shuffled (the control) the same positions get far less."""
    tokenizer = tiny_gpt.tokenizer
    words = words_of(list(load_corpus("default").texts))
    sequences, spans = repeated_corpus_words(tokenizer, words, count=16, n_words=20, seed=5)
    scores = induction_scores_by_span(attention_maps(tiny_gpt.model, sequences), spans)
    rng = np.random.default_rng(6)
    controls = []
    for sequence, span in zip(sequences, spans, strict=True):
        shuffled = " " + " ".join(rng.permutation(tokenizer.decode(sequence[1:1 + span]).split()))
        second = tokenizer(shuffled, add_special_tokens=False)["input_ids"][:span]
        controls.append(sequence[:1 + span] + second + [sequence[1]] * (span - len(second)))
    control = induction_scores_by_span(attention_maps(tiny_gpt.model, controls), spans)
    layer, head = np.unravel_index(scores.argmax(), scores.shape)
    assert layer >= 1 and scores[layer, head] >= 0.6, scores.round(2)
    assert scores[layer, head] > 3 * control[layer, head], (scores.round(2), control.round(2))


def test_the_matrix_ranks_its_previous_token_and_induction_heads_first(tiny_gpt, tmp_path):
    """In the dashboard's matrix, ordered by a summary, the heads the model's own attention shows come first:
    by previous-token attention on the default corpus, by induction on the bundled 'repeated' corpus."""
    from dashboard import jobs
    from dashboard.state import corpus_choices, model_choices
    from dashboard.views.matrix import head_values
    from workers.contracts.requests import HeadRequest
    from workers.pipeline.keys import corpus_template
    from workers.pipeline.stages import ensure_head_summaries

    assert TINY_GPT_ALIAS in model_choices() and "repeated" in corpus_choices("text")
    jobs.set_cache_dir(tmp_path / "cache")
    texts = list(load_corpus("default").texts)
    maps = attention_maps(tiny_gpt.model, tiny_gpt.tokenizer(texts)["input_ids"])
    direct_prev = previous_token_scores(maps)
    for corpus, order, direct in (("default", "prev_token", direct_prev), ("repeated", "induction", None)):
        request = {"model": TINY_GPT_ALIAS, "corpus": corpus, "norm": "fit", "method": "pca"}
        assert head_values(request, order, submit=False)[1] == 12  # nothing measured: the web process computes none
        ensure_head_summaries(corpus_template(HeadRequest(model=TINY_GPT_ALIAS, corpus=corpus)), jobs.store())
        values, missing = head_values(request, order, submit=False)
        assert missing == 0 and len(values) == 12
        best = max(values, key=values.get)
        if direct is not None:  # the summary is the same measure as the model's own attention gives
            assert values[best] == pytest.approx(direct.max(), abs=2e-3)
            assert best == np.unravel_index(direct.argmax(), direct.shape)
        else:
            layer_0 = max(value for (layer, _head), value in values.items() if layer == 0)
            assert best[0] >= 1 and values[best] > 0.3 and values[best] > 5 * layer_0, values


def test_texts_longer_than_its_positions_are_cut_to_them(tiny_gpt):
    """tiny-gpt has 256 positions: a longer text (and a larger token limit) is truncated, never an index error."""
    from workers.corpora.corpus import make_corpus
    from workers.models.extract import extract

    long_text = " ".join(load_corpus("default").texts[:40])
    bundle = extract(tiny_gpt, make_corpus("long", [long_text, "A short one."]), batch_size=2, max_tokens=1024)
    lengths = np.bincount(bundle.tokens["text_id"])
    assert lengths.tolist()[0] == 256 and lengths[1] < 10
