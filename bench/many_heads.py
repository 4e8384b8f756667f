"""A 1,024-head model (Llama-style, 32 layers x 32 heads, grouped-query attention 4:1, d_head 8, random weights
built from a config) through the whole matrix path: extraction, every head's PCA picture, the head map, the
matrix figure on the server (points, bytes) and its first paint in headless Chromium.

Run: `.venv/bin/python bench/many_heads.py [--out bench/results/many_heads.json]` (about 5 minutes on 2 cores).
docs/performance.md quotes the output (tests/unit/test_docs.py checks it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ALIAS = "llama-32x32"
DRAWN = ("var gd = document.querySelector('#matrix-graph .js-plotly-plot');"
         "return !!(gd && gd._fullData && gd._fullData.length >= 2 && gd._fullData[0].x &&"
         " gd._fullData[0].x.length >= arguments[0]);")


def timed(fn):
    """(seconds, result) of one call."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def build_model(folder: Path) -> Path:
    """Save the random 32 x 32 Llama with MiniLM's tokenizer, like a local checkpoint."""
    from tests.support.tiny_models import save
    from workers.models.loading import load_model

    return save(ALIAS, folder, load_model("minilm").tokenizer)


def compute(results: dict, cache: Path) -> None:
    """Extraction, every head's PCA picture and the head map, cold store, in this process."""
    from workers.contracts.requests import HeadRequest
    from workers.models.registry import read_spec
    from workers.pipeline.stages import ensure_extraction, ensure_head_map, ensure_head_view, loaded_model
    from workers.store import Store

    store = Store(cache)
    spec = read_spec(ALIAS)
    load_s, _ = timed(lambda: loaded_model(ALIAS))
    template = HeadRequest(model=ALIAS, method="pca")
    extraction_s, _ = timed(lambda: ensure_extraction(template, store))
    heads = [(layer, head) for layer in range(spec.n_layers) for head in range(spec.n_heads)]
    pca_s, _ = timed(lambda: [ensure_head_view(HeadRequest(model=ALIAS, layer=layer, head=head, method="pca"), store)
                              for layer, head in heads])
    head_map_s, head_map = timed(lambda: ensure_head_map(template, store))
    store_bytes = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
    results["model"] = {"layers": spec.n_layers, "heads_per_layer": spec.n_heads, "heads": len(heads)}
    results["compute"] = {"model_load_s": round(load_s, 2), "extraction_s": round(extraction_s, 2),
                          "pca_all_heads_s": round(pca_s, 1), "pca_per_head_ms": round(1000 * pca_s / len(heads), 1),
                          "head_map_s": round(head_map_s, 2), "head_map_heads": len(head_map["cells"]),
                          "store_mb": round(store_bytes / 2**20, 1)}


def server(results: dict, cache: Path) -> None:
    """The whole matrix figure built from the stored pictures: seconds (cold and cached), points, bytes."""
    import plotly.io as pio

    from dashboard import jobs
    from dashboard.views.matrix import cells_figure, finished_cells
    from workers.contracts.choices import DEFAULT_NORMALISATION
    from workers.models.registry import read_spec

    jobs.set_cache_dir(cache)
    request = {"model": ALIAS, "corpus": "default", "norm": DEFAULT_NORMALISATION, "method": "pca"}

    def whole_matrix() -> tuple[object, str, str]:
        done, total = finished_cells(request)
        assert len(done) == total, f"only {len(done)} of {total} cells are stored"
        figure, status = cells_figure(done, {}, read_spec(ALIAS), "", total, "pca")
        return figure, pio.to_json(figure, validate=False), status

    cold_s, (figure, payload, status) = timed(whole_matrix)
    cached_s, _ = timed(whole_matrix)
    points = sum(len(trace.x) for trace in figure.data if trace.x is not None)
    results["server"] = {"first_figure_s": round(cold_s, 2), "cached_figure_s": round(cached_s, 2),
                         "points": points, "bytes": len(payload), "bytes_per_point": round(len(payload) / points, 1),
                         "status": status}


def browser(results: dict, cache: Path) -> None:
    """Seconds from navigation to the painted 1,024-cell matrix in headless Chromium (store warm), twice."""
    from selenium import webdriver

    from dashboard.app import create_app
    from tests.support.browser import chromium_options, seconds_until_drawn, serve_in_thread

    app = create_app(cache_dir=cache)
    port = serve_in_thread(app)
    driver = webdriver.Chrome(options=chromium_options())
    driver.set_window_size(1366, 768)
    url = f"http://127.0.0.1:{port}/?model={ALIAS}&view=matrix&method=pca"
    per_role = results["server"]["points"] // 2
    try:
        runs = [seconds_until_drawn(driver, url, DRAWN, per_role, 300) for _ in range(3)]
        box = driver.execute_script("var r = document.querySelector('#matrix-graph .nsewdrag').getBoundingClientRect();"
                                    "return [r.width, r.height];")
        results["browser"] = {"first_paint_s_runs": runs, "first_paint_s": sorted(runs)[1],
                              "window": "1366x768", "plot_px": [round(v) for v in box],
                              "cell_px": round(min(box[0] / 32, box[1] / 32), 1)}
    finally:
        driver.quit()
        if app.local_worker:
            app.local_worker.stop()


def markdown(results: dict) -> str:
    """The table docs/performance.md quotes."""
    compute, server, browser = results["compute"], results["server"], results["browser"]
    model = results["model"]
    per_cell = server["points"] // (2 * model["heads"])
    rows = [
        ("extraction of the default corpus (one pass, every head's q / k / v stored)", f"{compute['extraction_s']} s"),
        (f"PCA pictures of all {model['heads']:,} heads, one process",
         f"{compute['pca_all_heads_s']} s ({compute['pca_per_head_ms']} ms a head)"),
        (f"head map ({compute['head_map_heads']:,} heads compared pairwise)", f"{compute['head_map_s']} s"),
        ("store after all of it", f"{compute['store_mb']:,} MB ({compute['store_mb'] / model['heads']:.2f} MB a head)"),
        ("matrix figure on the server: first (store read) / cached",
         f"{server['first_figure_s']} / {server['cached_figure_s']} s"),
        ("points drawn (budget 300,000)", f"{server['points']:,} ({per_cell} tokens a cell, as a query and a key)"),
        ("figure sent", f"{server['bytes'] / 2**20:.1f} MB ({server['bytes_per_point']} bytes a point)"),
        (f"first paint in headless Chromium, {browser['window']}, store warm (median of 3)",
         f"{browser['first_paint_s']} s"),
        ("a cell on screen", f"{browser['cell_px']} px"),
    ]
    head = (f"| {model['layers']} layers x {model['heads_per_layer']} heads (random Llama, GQA 4:1, d_head 8), "
            f"{results['machine']} | measured |")
    return "\n".join([head, "|---|---|", *(f"| {step} | {value} |" for step, value in rows)]) + "\n"


def main() -> int:
    """Build the model, measure every step, print and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "many_heads.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        folder = build_model(root / ALIAS)
        os.environ["QK_ATLAS_MODELS"] = f"{ALIAS}={folder}"
        os.environ["QK_ATLAS_PRELOAD_MODEL"] = ""
        cache = root / "cache"
        results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores"}
        compute(results, cache)
        server(results, cache)
        browser(results, cache)
    text = json.dumps(results, indent=1)
    print(text)
    Path(args.out).write_text(text + "\n")
    table = markdown(results)
    print(table)
    Path(args.out).with_suffix(".md").write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
