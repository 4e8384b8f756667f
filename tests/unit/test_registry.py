"""Model registry and local checkpoints: export works for every family from a local folder."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from dashboard.state import parse_query
from tests.support.cli import run_cli
from tests.support.tiny_models import save
from workers.contracts.specs import ModelError
from workers.models.registry import model_source, read_spec, registry


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, minilm) -> dict[str, Path]:
    """Tiny GPT-2, Llama with GQA and ViT saved to local folders like real checkpoints."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {kind: save(kind, root / kind, minilm.tokenizer) for kind in ("gpt2", "llama-gqa", "vit")}


@pytest.mark.parametrize(("kind", "corpus", "tokens_per_item"), [
    ("gpt2", "default", None), ("llama-gqa", "default", None), ("vit", "images", 17)])
def test_export_from_a_local_folder(checkpoints, tmp_path, kind, corpus, tokens_per_item):
    out = tmp_path / f"{kind}.npz"
    done = run_cli("export", "--model", str(checkpoints[kind]), "--corpus", corpus, "--layer", "1", "--head", "3",
                   "--out", str(out), cache=str(tmp_path / "cache"))
    assert done.returncode == 0, done.stderr
    data = np.load(out)
    n, d = data["q"].shape
    assert data["k"].shape == (n, d) and data["coords"].shape == (2 * n, 2)
    if tokens_per_item:  # images: CLS + 4x4 patches, with row and col
        assert n == 64 * tokens_per_item
        assert data["row"].min() == -1 and data["col"].max() == 3
        assert data["token"][0] == "[CLS]"


def test_registry_from_environment_and_file(checkpoints, tmp_path, monkeypatch):
    registry_file = tmp_path / "models.toml"
    registry_file.write_text(f'[models.tiny-llama]\nsource = "{checkpoints["llama-gqa"]}"\n'
                             'description = "random weights"\n'
                             '[models.hub-model]\nsource = "openai-community/gpt2"\n'
                             'revision = "607a30d783dfa663caf39e06633721c8d4cfcd7e"\n')
    monkeypatch.setenv("QK_ATLAS_MODELS_FILE", str(registry_file))
    monkeypatch.setenv("QK_ATLAS_MODELS", f"tiny-gpt={checkpoints['gpt2']}")
    models = registry()
    assert list(models)[:1] == ["minilm"]
    assert {"tiny-llama", "tiny-gpt", "hub-model"} <= set(models)
    assert models["hub-model"].kind == "hub" and models["hub-model"].revision.startswith("607a30d")
    assert models["tiny-llama"].kind == "local" and models["tiny-llama"].revision.startswith("local-")
    spec = read_spec("tiny-llama")
    assert (spec.family, spec.n_layers, spec.n_heads, spec.n_kv_heads) == ("llama", 2, 8, 2)
    # the URL may name registry aliases, nothing else
    state, notices = parse_query("?model=tiny-gpt&layer=2")
    assert state.model == "tiny-gpt" and state.layer == 2 and notices == []
    for outsider in (str(checkpoints["gpt2"]), "openai-community/gpt2", "../../etc"):
        state, notices = parse_query(f"?model={outsider}")
        assert state.model == "minilm" and "Unknown model" in notices[0]


def test_unlisted_models_are_refused_outside_the_command_line(checkpoints, monkeypatch):
    monkeypatch.delenv("QK_ATLAS_ALLOW_UNLISTED_MODELS", raising=False)
    with pytest.raises(ModelError, match="not in the registry"):
        model_source(str(checkpoints["gpt2"]))
    with pytest.raises(ModelError, match="not in the registry"):
        model_source("someone/some-model")


def test_image_models_get_image_corpora(checkpoints, monkeypatch):
    monkeypatch.setenv("QK_ATLAS_MODELS", f"tiny-vit={checkpoints['vit']}")
    state, notices = parse_query("?model=tiny-vit")
    assert state.corpus == "images" and notices == []
    state, notices = parse_query("?model=tiny-vit&corpus=default")
    assert state.corpus == "images" and "Unknown corpus" in notices[0]


def test_remote_code_is_never_trusted():
    sources = [p for p in Path("workers").rglob("*.py")] + [p for p in Path("dashboard").rglob("*.py")]
    text = "\n".join(p.read_text() for p in sources)
    assert "trust_remote_code" in text
    assert not re.search(r"trust_remote_code\s*=\s*(True|[a-z_]+\b(?<!False))", text)
    assert os.environ.get("QK_ATLAS_ALLOW_UNLISTED_MODELS") != "1"
