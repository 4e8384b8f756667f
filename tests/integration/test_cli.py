"""`qk-atlas export` as a user runs it."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support.cli import run_cli
from workers.contracts.choices import DEFAULT_NORMALISATION
from workers.contracts.requests import HeadRequest
from workers.core.fidelity import picture_fidelity
from workers.core.normalize import transform_for
from workers.core.summaries import summarise_head

ROOT = Path(__file__).resolve().parents[2]


def readme_examples() -> list[list[str]]:
    """Every `qk-atlas ...` line of the bash blocks of the README (first) and docs/*.md, each once, as arguments
    (optional [--flag value] left out)."""
    texts = [(ROOT / "README.md").read_text(), *(path.read_text() for path in sorted((ROOT / "docs").glob("*.md")))]
    blocks = [block for text in texts for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]
    lines = [line.strip() for block in blocks for line in block.splitlines() if line.startswith("qk-atlas ")]
    return [shlex.split(re.sub(r"\[[^\]]*\]", "", line))[1:] for line in dict.fromkeys(lines)]


def test_the_readme_command_line_examples_run(tmp_path, minilm):
    """Each example, run as written from a working folder (a user's /models/... folders and notes.txt made
    there): exit 0, the named file written, and export's metrics stating the request the flags asked for, with
    the defaults of the table of choices where a flag is left out."""
    from tests.support.texts import SENTENCES
    from tests.support.tiny_models import save
    from workers.cli import build_parser

    examples = readme_examples()
    assert {e[0] for e in examples} == {"serve", "export", "heads"} and len(examples) >= 5
    folders = {f"/models/my-{kind}": str(save(kind, tmp_path / kind, minilm.tokenizer)) for kind in ("gpt2", "vit")}
    (tmp_path / "notes.txt").write_text("\n".join(SENTENCES))
    for example in examples:
        args = [folders.get(arg, arg) for arg in example]
        parsed = build_parser().parse_args(args)
        if parsed.command == "serve":  # serving is the browser tests' part; here: the flags parse as written
            assert (parsed.host, parsed.port) == ("127.0.0.1", 8050)
            continue
        if example[1:3] == ["--model", "minilm"] and "umap" in example:
            continue  # the UMAP export example is run and checked by the next test
        done = run_cli(*args, cache=str(tmp_path / "cache"), cwd=tmp_path)
        assert done.returncode == 0, (example, done.stderr[-2000:])
        assert (tmp_path / parsed.out).stat().st_size > 0, example
        if parsed.command == "export":
            request = json.loads((tmp_path / f"{parsed.out}.metrics.json").read_text())["request"]
            assert request == {**HeadRequest(model=parsed.model, corpus=parsed.corpus, layer=parsed.layer,
                                             head=parsed.head).to_dict(),
                               "norm": DEFAULT_NORMALISATION, "method": parsed.method, "dims": parsed.dims}, example


def test_export_without_flags_is_the_dashboards_default_picture(tmp_path):
    """The same defaults from one table: the command line's request is the dashboard's default view's."""
    from dashboard.state import ViewState
    from workers.cli import build_parser

    parsed = build_parser().parse_args(["export", "--layer", "2", "--head", "5", "--out", "x.npz"])
    from_cli = {"model": parsed.model, "corpus": parsed.corpus, "layer": parsed.layer, "head": parsed.head,
                "norm": parsed.norm, "method": parsed.method, "dims": parsed.dims}
    assert from_cli == ViewState(layer=2, head=5).request()
    assert from_cli["norm"] == "fit" == DEFAULT_NORMALISATION


def test_export_umap_npz_then_csv_and_parquet(tmp_path):
    cache = str(tmp_path / "cache")
    out = tmp_path / "x.npz"
    example = next(e for e in readme_examples() if e[0] == "export" and "umap" in e)  # the README's, as written
    assert example[-2:] == ["--out", "x.npz"]
    done = run_cli(*example, cache=cache, cwd=tmp_path)
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
    assert metrics["request"]["norm"] == "fit"  # no --norm: the dashboard's default
    fitted = transform_for(data["q"], data["k"], "fit", data["text_id"], False)  # the fit, computed again here
    assert metrics["fidelity"]["transform"] == fitted.describe()
    q_norm_again, k_norm_again = fitted.apply(data["q"], data["k"])
    np.testing.assert_allclose(data["q_norm"], q_norm_again, rtol=1e-3, atol=1e-3)  # as the transform states
    np.testing.assert_allclose(data["k_norm"], k_norm_again, rtol=1e-3, atol=1e-3)

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
    # each head's default picture: its fidelity beside the no-picture baseline, as a direct computation finds
    from workers.pipeline.keys import resolve
    from workers.pipeline.stages import head_vectors
    from workers.store import open_store

    store = open_store(tmp_path / "cache")
    keys = resolve(HeadRequest(corpus=str(corpus), layer=1, head=1))
    q, k = head_vectors(store, keys)
    tokens, coords = store.get_arrays(keys.tokens), store.get_arrays(keys.coords)["coords"]
    direct = picture_fidelity(q, k, coords, tokens["text_id"], False, sinks=tokens["is_special"])
    row = table.iloc[13]
    for column, value in (("fidelity_top1_in_3", direct.top1_in_k), ("baseline_top1_in_3", direct.baseline),
                          ("fidelity_top1_in_3_non_sink", direct.top1_in_k_non_sink),
                          ("non_sink_share", direct.non_sink_share), ("baseline_non_sink", direct.baseline_non_sink),
                          ("fidelity_rank_correlation", direct.rank_correlation)):
        assert row[column] == pytest.approx(value, nan_ok=True), column
    bad = run_cli("heads", "--out", str(tmp_path / "heads.xlsx"), cache=str(tmp_path / "cache"))
    assert bad.returncode == 2 and "use .csv or .parquet" in bad.stderr


def test_export_attention_layout_of_a_head_pca_shows_poorly(tmp_path):
    """`--method attention` exports the attention-driven picture: more faithful than PCA on L0H4 (the head PCA
    shows worst), with the figures in FILE.metrics.json equal to a direct computation."""
    from tests.support.texts import SENTENCES

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
    from workers.contracts.specs import ModelError
    from workers.models.registry import model_source

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
