"""Every family: attention rebuilt from the extracted q and k equals the model's own eager attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.support.attention import rebuilt_attentions
from tests.support.texts import SENTENCES
from tests.support.tiny_models import build, image_processor
from workers.contracts.specs import ModelError
from workers.corpora.corpus import make_corpus, make_image_corpus
from workers.corpora.images import default_images
from workers.models.extract import extract
from workers.models.families import family_for
from workers.models.loading import wrap_model

TEXT_KINDS = ["bert", "roberta", "distilbert", "gpt2", "gpt2-layer-scaled", "llama-gqa", "mistral", "qwen2"]


def own_attentions(loaded, inputs: dict, lengths: list[int]) -> list[np.ndarray]:
    """The model's output_attentions per item, padding cut: list of [layer, head, pos, pos]."""
    with torch.inference_mode():
        out = loaded.model(**inputs, output_attentions=True)
    stacked = torch.stack(out.attentions).double().numpy()
    return [stacked[:, b, :, :n, :n] for b, n in enumerate(lengths)]


@pytest.mark.parametrize("kind", TEXT_KINDS)
def test_text_families_match_eager_attention(kind, minilm):
    loaded = wrap_model(build(kind), minilm.tokenizer, kind, "random")
    bundle = extract(loaded, make_corpus("t", SENTENCES), batch_size=2)  # padded batches
    encoded = minilm.tokenizer(SENTENCES, padding=True, truncation=True, max_length=128, return_tensors="pt")
    lengths = encoded["attention_mask"].sum(dim=1).tolist()
    inputs = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}  # as extraction
    expected = own_attentions(loaded, inputs, lengths)
    rebuilt = rebuilt_attentions(bundle, loaded.spec)
    for mine, theirs in zip(rebuilt, expected, strict=True):
        np.testing.assert_allclose(mine, theirs, atol=1e-5, rtol=0)
    if loaded.spec.causal:  # the causal mask is real: no attention to later tokens
        assert np.allclose(np.triu(expected[1][0, 0], k=1), 0.0)


def test_llama_spec_reports_grouped_query_attention(minilm):
    loaded = wrap_model(build("llama-gqa"), minilm.tokenizer, "llama", "random")
    spec = loaded.spec
    assert (spec.family, spec.n_heads, spec.n_kv_heads, spec.d_head, spec.causal, spec.rotary) == \
        ("llama", 8, 2, 8, True, True)
    bundle = extract(loaded, make_corpus("t", SENTENCES[:2]))
    assert bundle.q[0].shape[0] == 8 and bundle.k[0].shape[0] == 2


def test_rotary_is_applied(minilm):
    """Stored q differ from the raw q_proj output at positions > 0 (and equal it at position 0)."""
    loaded = wrap_model(build("llama-gqa"), minilm.tokenizer, "llama", "random")
    bundle = extract(loaded, make_corpus("t", ["one two three four five"]))
    raw = []
    handle = loaded.model.layers[0].self_attn.q_proj.register_forward_hook(lambda _m, _i, o: raw.append(o))
    with torch.inference_mode():
        loaded.model(**minilm.tokenizer(["one two three four five"], return_tensors="pt"))
    handle.remove()
    raw_heads = raw[0][0].view(-1, 8, 8).permute(1, 0, 2).numpy()
    np.testing.assert_allclose(bundle.q[0][:, 0], raw_heads[:, 0], atol=1e-6)
    assert not np.allclose(bundle.q[0][:, 3], raw_heads[:, 3], atol=1e-3)


def test_vit_patches_and_cls_match_eager_attention():
    processor = image_processor()
    loaded = wrap_model(build("vit"), processor, "vit", "random")
    corpus = make_image_corpus("images", default_images()[:5] + default_images()[-2:])
    bundle = extract(loaded, corpus, batch_size=3)
    pixels = processor(images=list(corpus.images), return_tensors="pt")["pixel_values"]
    expected = own_attentions(loaded, {"pixel_values": pixels}, [17] * len(corpus.images))
    for mine, theirs in zip(rebuilt_attentions(bundle, loaded.spec), expected, strict=True):
        np.testing.assert_allclose(mine, theirs, atol=1e-5, rtol=0)
    tokens = bundle.tokens
    first = tokens["text_id"] == 0
    assert list(tokens["token"][first][:3]) == ["[CLS]", "r0c0", "r0c1"]
    assert (tokens["row"][first][0], tokens["col"][first][0]) == (-1, -1)
    assert (tokens["image_id"] == tokens["text_id"]).all()
    assert tokens["row"][first].max() == tokens["col"][first].max() == 3  # 32 / 8 = 4 patches a side
    assert tokens["is_special"][first].sum() == 1


def test_modality_mismatch_is_refused(minilm):
    loaded = wrap_model(build("vit"), image_processor(), "vit", "random")
    with pytest.raises(ModelError, match="reads images"):
        extract(loaded, make_corpus("t", SENTENCES))
    with pytest.raises(ModelError, match="reads texts"):
        extract(minilm, make_image_corpus("images", default_images()[:2]))


def test_unsupported_architecture_names_the_supported_families():
    with pytest.raises(ModelError) as info:
        family_for("t5")
    message = str(info.value)
    assert "'t5' is not supported" in message
    for family in ("bert", "gpt2", "llama", "vit"):
        assert family in message
    assert "FAMILIES" in message


def test_disk_spool_gives_the_same_vectors_as_memory(minilm):
    corpus = make_corpus("t", SENTENCES)
    in_memory = extract(minilm, corpus, batch_size=2)
    on_disk = extract(minilm, corpus, batch_size=2, spool_memory_bytes=0)
    for layer in range(6):
        np.testing.assert_array_equal(in_memory.q[layer], on_disk.q[layer])
        np.testing.assert_array_equal(in_memory.k[layer], on_disk.k[layer])


@pytest.mark.parametrize("spool_memory_bytes", [0, 2**40])
def test_streamed_heads_equal_the_bundle_in_float16(minilm, monkeypatch, spool_memory_bytes):
    """extract_heads (what the store receives) hands out every head, in corpus order, as the bundle's float16."""
    import workers.models.extract

    monkeypatch.setattr(workers.models.extract, "HEAD_BATCH_BYTES", 1)  # one head per pass: several passes per file
    corpus = make_corpus("t", SENTENCES)
    bundle = extract(minilm, corpus, batch_size=2)
    tokens, heads = workers.models.extract.extract_heads(minilm, corpus, 2, 128, spool_memory_bytes=spool_memory_bytes)
    seen = set()
    for role, layer, head, vectors in heads:
        expected = {"q": bundle.q, "k": bundle.k, "v": bundle.v}[role][layer][head].astype(np.float16)
        assert vectors.dtype == np.float16
        np.testing.assert_array_equal(vectors, expected)
        seen.add((role, layer, head))
    assert len(seen) == 3 * 6 * 12  # q, k and v of every head
    np.testing.assert_array_equal(tokens["text_id"], bundle.tokens["text_id"])


OUTPUT_PROJECTIONS = ("attention.output.dense", "attention.out_lin", "attn.c_proj", "self_attn.o_proj")


@pytest.mark.parametrize("kind", ["bert", "distilbert", "gpt2", "llama-gqa"])
def test_values_rebuild_the_context_each_head_hands_to_the_output_projection(kind, minilm):
    """Attention (from extracted q, k) times extracted v, per head, equals what the model feeds its output
    projection: the value vectors are the model's own, grouped-query heads included."""
    from workers.core.attention import kv_head_for
    from workers.models.extract import _first_module

    loaded = wrap_model(build(kind), minilm.tokenizer, kind, "random")
    bundle = extract(loaded, make_corpus("t", SENTENCES), batch_size=2)
    spec, layer = loaded.spec, 1
    encoded = minilm.tokenizer(SENTENCES, padding=True, truncation=True, max_length=128, return_tensors="pt")
    blocks, _ = _first_module(loaded.model, loaded.family.layers, "layers")
    projection, _ = _first_module(blocks[layer], OUTPUT_PROJECTIONS, "output projection")
    seen = []
    handle = projection.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().double()))
    with torch.inference_mode():
        loaded.model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"])
    handle.remove()
    context = seen[0].numpy()  # [text, pos, heads * d_head]
    attentions = rebuilt_attentions(bundle, spec)
    for text, attention in enumerate(attentions):
        rows = np.flatnonzero(bundle.tokens["text_id"] == text)
        values = np.stack([bundle.v[layer][kv_head_for(h, spec.n_heads, spec.n_kv_heads)][rows]
                           for h in range(spec.n_heads)])  # [head, pos, d]
        rebuilt = np.einsum("hqk,hkd->qhd", attention[layer], values).reshape(len(rows), -1)
        np.testing.assert_allclose(rebuilt, context[text, :len(rows)], atol=1e-5, rtol=0)
