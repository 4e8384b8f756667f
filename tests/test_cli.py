"""`qk-atlas export` as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from workers.fidelity import picture_fidelity
from workers.summaries import summarise_head


def run_cli(*args: str, cache: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "QK_ATLAS_CACHE_DIR": cache}
    return subprocess.run([sys.executable, "-m", "workers.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_export_umap_npz_then_csv_and_parquet(tmp_path):
    cache = str(tmp_path / "cache")
    out = tmp_path / "x.npz"
    done = run_cli("export", "--model", "minilm", "--corpus", "default", "--layer", "2", "--head", "5",
                   "--method", "umap", "--out", str(out), cache=cache)
    assert done.returncode == 0, done.stderr
    data = np.load(out)
    assert set(data.files) == {"q", "k", "v", "q_norm", "k_norm", "coords", "text_id", "position", "token"}
    n = data["q"].shape[0]
    assert n >= 10_000
    assert data["q"].dtype == np.float32 and data["q"].shape == data["v"].shape == (n, 32)
    assert data["coords"].shape == (2 * n, 2)
    assert data["text_id"].dtype.kind == "i" and data["token"].dtype.kind == "U"
    metrics = json.loads((tmp_path / "x.npz.metrics.json").read_text())  # beside the arrays: what the head does
    assert set(metrics) == {"request", "summary", "fidelity", "notes"} and metrics["request"]["method"] == "umap"
    summary = summarise_head(data["q"], data["k"], data["text_id"], data["position"] == 0, False)
    assert metrics["summary"]["prev_token"] == pytest.approx(summary.prev_token)
    assert metrics["summary"]["entropy"] == pytest.approx(summary.entropy)
    picture = picture_fidelity(data["q"], data["k"], data["coords"], data["text_id"], False)
    assert metrics["fidelity"]["picture"]["top1_in_k"] == pytest.approx(picture.top1_in_k)
    assert metrics["fidelity"]["transform"]["translation"] in ("none", "centroid", "equal-norm")  # the fitted one
    q_norm_again = data["q"] * metrics["fidelity"]["transform"]["scale"]
    np.testing.assert_allclose(data["q_norm"], q_norm_again, rtol=1e-3, atol=1e-3)  # as the transform states

    for suffix in ("csv", "parquet"):
        table_path = tmp_path / f"x.{suffix}"
        done = run_cli("export", "--layer", "2", "--head", "5", "--method", "umap", "--out", str(table_path),
                       cache=cache)
        assert done.returncode == 0, done.stderr
        table = pd.read_csv(table_path) if suffix == "csv" else pd.read_parquet(table_path)
        assert list(table.columns) == ["text_id", "position", "token", "role", "x", "y"]
        assert len(table) == 2 * n and (table["role"][:n] == "query").all() and (table["role"][n:] == "key").all()
        np.testing.assert_allclose(table[["x", "y"]].to_numpy(), data["coords"], rtol=1e-6)


def test_export_3d_csv_has_z(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "A tiny corpus."}\n{"text": "With two texts in it."}\n')
    out = tmp_path / "y.csv"
    done = run_cli("export", "--corpus", str(corpus), "--layer", "0", "--head", "0", "--dims", "3", "--out", str(out),
                   cache=str(tmp_path / "cache"))
    assert done.returncode == 0, done.stderr
    assert list(pd.read_csv(out).columns)[-3:] == ["x", "y", "z"]


def test_bad_inputs_give_one_line_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    cases = [
        (["--corpus", str(empty)], "no non-empty text"),
        (["--model", "no/such-model"], "cannot fetch model 'no/such-model'"),
        (["--model", str(tmp_path)], "no config.json in local folder"),
        (["--layer", "9"], "layer 9 out of range"),
        (["--out", str(tmp_path / "x.xlsx")], "unsupported output"),
    ]
    for extra, message in cases:
        args = ["export", "--layer", "0", "--head", "0", "--out", str(tmp_path / "z.npz"), *extra]
        done = run_cli(*args, cache=str(tmp_path / "cache"))
        assert done.returncode == 2
        assert message in done.stderr
        assert "Traceback" not in done.stderr


def test_heads_table_summarises_every_head(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(f"Short text number {i} about the harbour." for i in range(12)))
    out = tmp_path / "heads.csv"
    done = run_cli("heads", "--corpus", str(corpus), "--out", str(out), cache=str(tmp_path / "cache"))
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(out)
    assert len(table) == 72 and list(table[["layer", "head"]].iloc[13]) == [1, 1]
    assert {"prev_token", "next_token", "first_token", "special", "entropy", "norm_ratio", "qk_overlap"} <= set(table)
    assert table["entropy"].between(0, 1).all() and table["special"].between(0, 1).all()
    bad = run_cli("heads", "--out", str(tmp_path / "heads.xlsx"), cache=str(tmp_path / "cache"))
    assert bad.returncode == 2 and "use .csv or .parquet" in bad.stderr


def test_export_attention_layout_of_a_head_pca_shows_poorly(tmp_path):
    """`--method attention` exports the attention-driven picture: more faithful than PCA on L0H4 (the head PCA
    shows worst), with the figures in FILE.metrics.json equal to a direct computation."""
    from tests.conftest import SENTENCES

    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(SENTENCES * 3))
    cache = str(tmp_path / "cache")
    shares = {}
    for method in ("pca", "attention"):
        out = tmp_path / f"{method}.npz"
        done = run_cli("export", "--corpus", str(corpus), "--layer", "0", "--head", "4", "--method", method,
                       "--out", str(out), cache=cache)
        assert done.returncode == 0, done.stderr
        data = np.load(out)
        metrics = json.loads((tmp_path / f"{method}.npz.metrics.json").read_text())
        picture = picture_fidelity(data["q"], data["k"], data["coords"], data["text_id"], False)
        assert metrics["request"]["method"] == method
        assert metrics["fidelity"]["picture"]["top1_in_k"] == pytest.approx(picture.top1_in_k)
        shares[method] = picture.top1_in_k
    assert shares["attention"] >= 0.85 and shares["attention"] > shares["pca"] + 0.1, shares


def test_only_export_and_heads_allow_unlisted_models(monkeypatch, tmp_path):
    from workers.cli import allow_unlisted_models_for
    from workers.models import ModelError
    from workers.registry import model_source

    folder = tmp_path / "outsider"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert"}')
    monkeypatch.setenv("QK_ATLAS_ALLOW_UNLISTED_MODELS", "1")  # what an operator's environment may say
    allow_unlisted_models_for("serve")
    assert "QK_ATLAS_ALLOW_UNLISTED_MODELS" not in os.environ
    with pytest.raises(ModelError, match="not in the registry"):
        model_source(str(folder))
    for command in ("export", "heads"):
        allow_unlisted_models_for(command)
        assert model_source(str(folder)).kind == "local"
    monkeypatch.delenv("QK_ATLAS_ALLOW_UNLISTED_MODELS")
