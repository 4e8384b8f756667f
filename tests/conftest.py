"""Shared fixtures: the bundled MiniLM, a tiny random BERT, isolated cache directories, headless Chromium."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.texts import SENTENCES  # noqa: F401  (the texts most tests use)

pytest_plugins = ["tests.support.team"]  # the team-mode fixtures (redis_url, team, team_app) for every folder



def pytest_setup_options():
    """dash_duo's Chrome options: Debian Chromium, headless, with software WebGL."""
    from tests.support.browser import chromium_options

    return chromium_options()


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch) -> Path:
    """Every test gets its own cache directory unless it asks for the shared one."""
    directory = tmp_path_factory.mktemp("qk-cache")
    monkeypatch.setenv("QK_ATLAS_CACHE_DIR", str(directory))
    monkeypatch.setenv("QK_ATLAS_WARM_UMAP", "0")
    monkeypatch.setenv("QK_ATLAS_PRELOAD_MODEL", "")  # each test's first job loads what it uses
    return directory


@pytest.fixture(scope="session")
def minilm():
    """The bundled MiniLM, loaded once."""
    from workers.models.loading import load_model

    return load_model("minilm")


@pytest.fixture(scope="session")
def tiny_bert(minilm):
    """A randomly initialised 3-layer BERT (4 heads, d_head 8) built from a config, with MiniLM's tokenizer."""
    import torch
    from transformers import AutoModel, BertConfig

    from workers.models.loading import wrap_model

    torch.manual_seed(0)
    config = BertConfig(vocab_size=minilm.tokenizer.vocab_size, hidden_size=32, num_hidden_layers=3,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=256)
    model = AutoModel.from_config(config, attn_implementation="eager")
    return wrap_model(model, minilm.tokenizer, "tiny-bert", "random-seed-0")


@pytest.fixture(scope="session")
def extracted_template(tmp_path_factory) -> Path:
    """A store holding the bundled model's extraction of the default corpus, computed once a session."""
    from tests.support.stores import extract_default_corpus

    directory = tmp_path_factory.mktemp("qk-extracted")
    extract_default_corpus(directory)
    return directory


@pytest.fixture
def extracted_cache(isolated_cache, extracted_template) -> Path:
    """The test's own cache directory, starting with the default corpus extracted (pictures still computed)."""
    from tests.support.stores import copy_store

    copy_store(extracted_template, isolated_cache)
    return isolated_cache


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """A cache directory shared by the tests of one session (to reuse an extraction)."""
    return tmp_path_factory.mktemp("qk-shared-cache")


@pytest.fixture
def dash_duo(dash_duo):
    """dash_duo serving on a free port (two test processes may each serve an app at once: `pytest -n 2`)."""
    from tests.support.net import free_port

    start_server = dash_duo.start_server

    def on_a_free_port(app, **kwargs):
        kwargs.setdefault("port", free_port())
        return start_server(app, **kwargs)

    dash_duo.start_server = on_a_free_port
    return dash_duo


def pytest_configure(config):
    """Make the test run independent of the user's own cache."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
