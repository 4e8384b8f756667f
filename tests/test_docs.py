"""The README quotes the benchmark table as the bench wrote it (bench/results/bench.md), not by hand."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_performance_table_is_the_bench_output():
    readme = (ROOT / "README.md").read_text()
    quoted = readme.split("<!-- bench.md -->\n", 1)[1].split("<!-- /bench.md -->", 1)[0]
    assert quoted == (ROOT / "bench" / "results" / "bench.md").read_text()
    assert "| UMAP matrix embedded" in quoted


def quoted_tables(readme: str) -> dict[str, str]:
    """Every `<!-- NAME.md -->` ... `<!-- /NAME.md -->` block of the README, by NAME.md."""
    blocks = {}
    for part in readme.split("<!-- ")[1:]:
        name = part.split(" -->", 1)[0]
        if name.endswith(".md") and not name.startswith("/"):
            blocks[name] = part.split(" -->\n", 1)[1].split(f"<!-- /{name} -->", 1)[0]
    return blocks


def test_every_quoted_bench_table_is_the_bench_output():
    """Each table the README quotes from bench/results is that file, as the bench wrote it."""
    blocks = quoted_tables((ROOT / "README.md").read_text())
    assert {"bench.md", "normalisation.md", "normalisation_unseen.md", "picture_candidates.md",
            "picture_candidates_unseen.md"} <= set(blocks)
    for name, quoted in blocks.items():
        assert quoted == (ROOT / "bench" / "results" / name).read_text(), name
    assert "| fit | PCA | 72 |" in blocks["normalisation.md"]
    assert "| any (attention unchanged) | picture fitted to attention | 72 |" in blocks["normalisation_unseen.md"]


def test_readme_load_table_is_the_bench_output():
    import json

    readme = (ROOT / "README.md").read_text()
    table = readme.split("**Load** (bench:", 1)[1].split("**Limits**", 1)[0]
    measured = json.loads((ROOT / "bench" / "results" / "load.json").read_text())
    for run in measured["runs"]:
        row = f"| {run['views']:,} | {run['requests_per_s']} | **{run['errors']}** | " \
              f"{run['request_p50_ms']:.0f} / **{run['request_p95_ms']:.0f} ms** | " \
              f"{run['view_p50_ms']:,.0f} / {run['view_p95_ms']:,.0f} ms |"
        assert row in table, row
    memory = measured["memory"]
    assert f"{memory['rss_before_mb']} → {memory['rss_after_mb']} MB (**+{memory['growth_mb']} MB**)" in table


def test_readme_table_of_choices_is_the_table_the_code_reads():
    """Values, labels, defaults and preview notes in the README are workers.choices' own (one fact, one place)."""
    from workers.choices import markdown_table

    assert markdown_table() in (ROOT / "README.md").read_text()


def test_readme_tiny_gpt_figures_are_its_training_record():
    """The tiny-gpt section states what training.json records: time, steps, and the heads' scores."""
    import json

    readme = (ROOT / "README.md").read_text()
    section = readme.split("### The bundled tiny-gpt", 1)[1].split("## The method", 1)[0]
    record = json.loads((ROOT / "workers" / "data" / "tiny_gpt" / "training.json").read_text())
    heads = record["heads"]
    assert f"**{record['train_seconds']:,.0f} s on this 2-core machine**" in section
    assert f"{record['settings']['steps']:,} AdamW steps" in section
    assert f"→ {record['final_loss']} over the last 100" in section
    assert "0.8 at every band" in section
    for band, scores in heads["previous_token_by_band"].items():
        first, last = band.split("-")
        assert scores[0][2] >= 0.8
        assert f"{scores[0][2]:.2f} at {'positions ' if first == '1' else ''}{first}–{last}" in section, band
    assert f"{heads['previous_token'][0][2]:.2f} over the first 64 corpus texts" in section
    for layer, head, key in ((1, 1, "induction"), (1, 2, "induction"), (1, 3, "induction"),
                             (1, 1, "induction_corpus_words"), (1, 2, "induction_corpus_words"),
                             (1, 3, "induction_corpus_words")):
        assert f"{heads[key][layer][head]:.3g} (L{layer}H{head})" in section, (key, layer, head)
