"""The README quotes the benchmark table as the bench wrote it (bench/results/bench.md), not by hand."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_performance_table_is_the_bench_output():
    readme = (ROOT / "README.md").read_text()
    quoted = readme.split("<!-- bench.md -->\n", 1)[1].split("<!-- /bench.md -->", 1)[0]
    assert quoted == (ROOT / "bench" / "results" / "bench.md").read_text()
    assert "| UMAP matrix embedded" in quoted


def test_readme_normalisation_table_is_the_bench_output():
    readme = (ROOT / "README.md").read_text()
    quoted = readme.split("<!-- normalisation.md -->\n", 1)[1].split("<!-- /normalisation.md -->", 1)[0]
    assert quoted == (ROOT / "bench" / "results" / "normalisation.md").read_text()
    assert "| fit | PCA | 72 |" in quoted and "| scale+translate | PCA | 72 |" in quoted


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
