"""The cached data flow: a second identical request computes nothing; changing the projection skips the model."""

from __future__ import annotations

import numpy as np
import pytest

import workers.core.normalize
import workers.core.project
import workers.models.extract
import workers.models.loading
import workers.pipeline.stages
from workers.contracts.requests import HeadRequest
from workers.pipeline.keys import resolve
from workers.pipeline.stages import ensure_head_view, ensure_view_fidelity, export_arrays
from workers.store import content_key, open_store


def test_content_key_is_canonical_and_versioned():
    assert content_key("x", {"a": 1, "b": 2}) == content_key("x", {"b": 2, "a": 1})
    assert content_key("x", {"a": 1}) != content_key("x", {"a": 2})
    assert content_key("x", {"a": 1}) != content_key("y", {"a": 1})
    with pytest.raises(ValueError, match="nest"):  # a parameter may not overwrite what names the key
        content_key("x", {"stage": "y"})


def test_each_stage_of_a_head_is_its_own_job():
    from workers.contracts.requests import STAGES, job_request
    from workers.runtime.local_queue import job_id_for

    request = HeadRequest(layer=1, head=3)
    assert len({job_id_for(job_request(request, stage)) for stage in STAGES}) == len(STAGES)
    assert job_id_for(job_request(request)) == job_id_for(request.to_dict())  # the picture's job: its request


def test_second_identical_request_computes_nothing(monkeypatch, tmp_path):
    store = open_store(tmp_path / "cache")
    request = HeadRequest(layer=1, head=3, method="pca")  # the fitted normalisation (the default) and PCA
    first = ensure_head_view(request, store)
    coords = store.get_arrays(first.coords)["coords"]

    def tripwire(*args, **kwargs):
        raise AssertionError("recomputed a cached result")

    steps = ((workers.models.loading, "load_model"), (workers.models.extract, "extract_heads"),
             (workers.core.normalize, "fit_transform_for"), (workers.core.project.Projector, "fit_transform"))
    for owner, name in steps:
        monkeypatch.setattr(owner, name, tripwire)
    workers.pipeline.stages._loaded_model.cache_clear()
    second = ensure_head_view(request, store)
    assert second == first
    np.testing.assert_array_equal(store.get_arrays(second.coords)["coords"], coords)
    # the fitted normalisation is stored beside the picture: its fidelity and the export read it, never fit again
    assert ensure_view_fidelity(request, store)["transform"]["translation"] in ("none", "centroid", "equal-norm")
    assert export_arrays(request, store)["q_norm"].shape == store.get_arrays(first.q)["v"].shape
    other_corpus = tmp_path / "other.txt"  # the tripwires are live: anything not stored trips them
    other_corpus.write_text("A text this store has never seen.\n")
    with pytest.raises(AssertionError, match="recomputed"):
        ensure_head_view(HeadRequest(corpus=str(other_corpus), method="pca"), store)

    # Another projection or head of the same layers re-uses the extraction: only the projection runs.
    monkeypatch.undo()
    monkeypatch.setattr(workers.models.extract, "extract_heads", tripwire)
    other = ensure_head_view(HeadRequest(layer=4, head=0, method="pca", dims=3, norm="none"), store)
    assert store.get_arrays(other.coords)["coords"].shape[1] == 3


def test_keys_depend_on_everything_that_changes_the_picture():
    base = HeadRequest(layer=1, head=3)
    variants = [HeadRequest(layer=2, head=3), HeadRequest(layer=1, head=4), HeadRequest(layer=1, head=3, dims=3),
                HeadRequest(layer=1, head=3, method="umap"), HeadRequest(layer=1, head=3, norm="none")]
    assert len({resolve(r).coords for r in [base, *variants]}) == 6
    assert resolve(base).tokens == resolve(HeadRequest(layer=5, head=0)).tokens


def test_corpus_content_changes_the_keys(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("one text\nanother text\n")
    before = resolve(HeadRequest(corpus=str(path)))
    path.write_text("one text\nanother, different text\n")
    assert resolve(HeadRequest(corpus=str(path))).tokens != before.tokens


def test_export_arrays_follow_the_contract(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("The first text is short.\nThe second one is a little bit longer than the first.\n")
    arrays = export_arrays(HeadRequest(corpus=str(path), layer=2, head=5), open_store(tmp_path / "cache"))
    n = len(arrays["token"])
    assert arrays["q"].shape == arrays["k"].shape == arrays["q_norm"].shape == (n, 32)
    assert arrays["coords"].shape == (2 * n, 2) and arrays["coords"].dtype == np.float32
    assert arrays["text_id"].shape == arrays["position"].shape == (n,)
    assert arrays["token"][0] == "[CLS]"


def test_out_of_range_requests_are_refused(tmp_path):
    with pytest.raises(ValueError, match="layer 6 out of range"):
        ensure_head_view(HeadRequest(layer=6), open_store(tmp_path))
    with pytest.raises(ValueError, match="head 12 out of range"):
        ensure_head_view(HeadRequest(head=12), open_store(tmp_path))


def test_stored_vectors_rebuild_the_models_attention(tmp_path, minilm):
    """q and k rest in the store as float16; attention rebuilt from them stays within 1e-3 of the model's own."""
    from tests.support.attention import model_attentions
    from tests.support.texts import SENTENCES
    from workers.core.attention import text_attention
    from workers.pipeline.stages import head_qk

    path = tmp_path / "c.txt"
    path.write_text("\n".join(SENTENCES))
    store = open_store(tmp_path / "cache")
    expected = model_attentions(minilm, SENTENCES)
    for layer, head in [(0, 0), (3, 7), (5, 11)]:
        request = HeadRequest(corpus=str(path), layer=layer, head=head)
        assert store.get_arrays(ensure_head_view(request, store).q)["v"].dtype == np.float16
        q, k, text_id = head_qk(request, store)
        for text, theirs in enumerate(expected):
            rows = np.flatnonzero(text_id == text)
            mine = text_attention(q[None, rows], k[None, rows])[0]
            np.testing.assert_allclose(mine, theirs[layer, head], atol=1e-3, rtol=0)


def test_preview_is_its_own_picture_and_pca_has_none():
    full, preview = HeadRequest(method="umap"), HeadRequest(method="umap", preview=True)
    assert resolve(full).coords != resolve(preview).coords
    assert resolve(HeadRequest(method="pca", preview=True)).coords == resolve(HeadRequest(method="pca")).coords
    assert HeadRequest.from_dict(preview.to_dict()) == preview


def test_total_token_limit_keeps_the_first_texts_with_a_note(tmp_path, monkeypatch):
    path = tmp_path / "c.txt"
    path.write_text("\n".join(f"Text number {i} is here." for i in range(40)))  # 8 MiniLM tokens each
    monkeypatch.setenv("QK_ATLAS_MAX_TOKENS", "100")
    store = open_store(tmp_path / "cache")
    arrays = export_arrays(HeadRequest(corpus=str(path), layer=0, head=0), store)
    assert np.all(np.bincount(arrays["text_id"]) == 8)
    assert arrays["text_id"].max() + 1 == 12 and len(arrays["token"]) == 96  # 12 x 8 <= 100 < 13 x 8
    (note,) = arrays["notes"]
    assert "first 12 of 40 texts" in note and "QK_ATLAS_MAX_TOKENS" in note
    monkeypatch.setenv("QK_ATLAS_MAX_TOKENS", "100000")  # another limit is another extraction, not a stale one
    assert len(export_arrays(HeadRequest(corpus=str(path), layer=0, head=0), store)["notes"]) == 0


def test_value_picture_embeds_the_heads_value_vectors_alone(tmp_path):
    from tests.support.texts import SENTENCES
    from workers.core.project import Projector

    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(SENTENCES))
    store = open_store(tmp_path / "cache")
    request = HeadRequest(corpus=str(corpus), layer=3, head=4, method="pca", vectors="v")
    keys = ensure_head_view(request, store)
    coords = store.get_arrays(keys.coords)["coords"]
    values = store.get_arrays(keys.v)["v"].astype(np.float32)
    assert coords.shape == (len(values), 2)  # one point per token: the value vectors, not 2N
    np.testing.assert_allclose(coords, Projector("pca", 2).fit_transform(values), atol=1e-5)
    assert keys.coords != resolve(HeadRequest(corpus=str(corpus), layer=3, head=4)).coords
    same = HeadRequest(corpus=str(corpus), layer=3, head=4, method="pca", vectors="v", norm="none")
    assert resolve(same).coords == keys.coords  # values are not normalised
    with pytest.raises(ValueError, match="unknown vectors"):
        ensure_head_view(HeadRequest(corpus=str(corpus), vectors="o"), store)


def test_a_job_resolves_its_keys_once(monkeypatch, tmp_path):
    """run_stage resolves the request's keys once and hands them down: extraction, transform, picture, fidelity;
    so does a worker's run_job around it (extraction lock, extraction, stage). Counted wherever resolve is called
    from: the pipeline's stages, and any module that imports it from workers.pipeline.keys when it runs."""
    import workers.pipeline.keys
    from workers.contracts.requests import job_request
    from workers.pipeline.stages import run_stage
    from workers.runtime.local_queue import job_id_for, run_job

    calls = []
    real = workers.pipeline.keys.resolve
    for module in (workers.pipeline.stages, workers.pipeline.keys):
        monkeypatch.setattr(module, "resolve", lambda *a, **k: calls.append(a) or real(*a, **k))
    from tests.support.texts import SENTENCES

    path = tmp_path / "c.txt"
    path.write_text("\n".join(SENTENCES))
    store = open_store(tmp_path / "cache")
    request = HeadRequest(corpus=str(path), layer=2, head=5, method="pca")
    record = run_stage(job_request(request, "fidelity"), store)
    assert len(calls) == 1
    assert record["keys"] == real(request).__dict__ and store.get_arrays(record["keys"]["coords"]) is not None
    calls.clear()
    job = job_request(HeadRequest(corpus=str(path), layer=2, head=6, method="pca"), "fidelity")
    run_job({"job_id": job_id_for(job), "request": job}, store)
    done = store.get_json(f"job:{job_id_for(job)}")
    assert done["state"] == "done", done
    assert len(calls) == 1 and store.get_arrays(done["keys"]["coords"]) is not None


def test_a_heads_attention_within_texts_is_one_stored_job_that_matches_the_model(tmp_path, minilm):
    """The attention stage stores a head's attention within every text (the model's own, within 1e-3), the norm of
    each token's value vector, and its mean by position; every picture of the head shares that one job; once
    stored, running it again computes nothing."""
    from tests.support.attention import model_attentions
    from tests.support.texts import SENTENCES
    from workers.contracts.requests import job_request
    from workers.pipeline.keys import attention_keys, head_template, stage_done
    from workers.pipeline.stages import ensure_position_mean, ensure_text_attention, run_stage
    from workers.runtime.local_queue import job_id_for

    path = tmp_path / "c.txt"
    path.write_text("\n".join(SENTENCES))
    store = open_store(tmp_path / "cache")
    request = HeadRequest(corpus=str(path), layer=3, head=7, method="umap", norm="none")
    job = job_request(head_template(request), "attention")
    assert job_id_for(job) == job_id_for(job_request(head_template(HeadRequest(corpus=str(path), layer=3, head=7)),
                                                     "attention"))
    assert not stage_done(job, store)
    assert run_stage(job, store) == {"texts": len(SENTENCES)}
    assert stage_done(job, store)
    keys = resolve(request)
    assert attention_keys(keys, True) != attention_keys(keys, False)  # a causal head is another result
    within = ensure_text_attention(request, store)
    expected = [attention[3, 7] for attention in model_attentions(minilm, SENTENCES)]
    for text, theirs in enumerate(expected):
        np.testing.assert_allclose(within.of(text), theirs, atol=1e-3, rtol=0)
    values = store.get_arrays(keys.v)["v"].astype(np.float64)
    np.testing.assert_allclose(within.value_norms, np.sqrt((values**2).sum(axis=1)), rtol=1e-5)
    stored = ensure_position_mean(request, store)
    longest = max(len(theirs) for theirs in expected)
    for position in range(longest):
        column = [theirs[position, :] for theirs in expected if len(theirs) > position]
        direct = np.nanmean([np.pad(row, (0, longest - len(row)), constant_values=np.nan) for row in column], axis=0)
        np.testing.assert_allclose(stored["mean"][position, :longest], direct, atol=1e-3)
        assert stored["count"][position, 0] == len(column)
    for name in ("attention_within_texts", "position_mean"):  # stored: nothing is computed again
        setattr_ = pytest.MonkeyPatch()
        setattr_.setattr(workers.pipeline.stages, name, lambda *a, **k: pytest.fail("computed again"))
        try:
            run_stage(job, store)
        finally:
            setattr_.undo()


def test_the_attention_of_a_causal_head_is_masked(tmp_path):
    """The bundled causal GPT: each stored text block is lower-triangular and its rows sum to 1."""
    from tests.support.texts import SENTENCES
    from workers.contracts.requests import job_request
    from workers.pipeline.stages import ensure_text_attention, run_stage

    path = tmp_path / "c.txt"
    path.write_text("\n".join(SENTENCES[:4]))
    store = open_store(tmp_path / "cache")
    request = HeadRequest(model="tiny-gpt", corpus=str(path), layer=1, head=2)
    run_stage(job_request(request, "attention"), store)
    for text in range(4):
        block = ensure_text_attention(request, store).of(text)
        assert len(block) >= 3 and np.all(np.triu(block, 1) == 0)
        np.testing.assert_allclose(block.sum(axis=1), 1, atol=3e-3)
