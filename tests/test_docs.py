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
