"""The performance figures of issue 6 in one command: `make bench` (prints a table, writes bench/results/bench.json).

Every figure is measured in this run, against its baseline where it has one:
  extraction / plain eager forward pass (same batches); projection seconds per head for PCA, UMAP and t-SNE at
  about 2k, 10k and 20k points; a complete matrix from a cold store with PCA and with UMAP (UMAP on one layer,
  12 heads, unless --full-umap); server time for a cached single view and a cached matrix; bytes on the wire per
  point; time from navigation to a drawn matrix in headless Chromium; the picture fitted to attention (the default)
  per head, and its embedded matrix (PCA stand-ins, then the previews).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.conftest holds the Chromium flags

TARGETS = {"extraction_ratio": 1.2, "pca_matrix_s": 5.0, "umap_matrix_s": 120.0, "cached_single_ms": 150.0,
           "cached_matrix_ms": 500.0, "bytes_per_point": 12.0, "matrix_drawn_s": 3.0}


def timed(fn, repeats: int = 1) -> tuple[float, object]:
    """Median seconds of fn() over repeats, and its last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def extraction(results: dict) -> None:
    """Extraction versus the plain forward pass (medians of 3 after a warm-up)."""
    from workers.corpora.corpus import load_corpus
    from workers.models.extract import extract, plain_forward_seconds
    from workers.models.loading import load_model

    loaded, corpus = load_model("minilm"), load_corpus("default")
    plain_forward_seconds(loaded, corpus)
    extract(loaded, corpus)
    plain = statistics.median(plain_forward_seconds(loaded, corpus) for _ in range(3))
    extracted = statistics.median(extract(loaded, corpus).seconds for _ in range(3))
    results["extraction"] = {"plain_forward_s": round(plain, 3), "extraction_s": round(extracted, 3),
                             "extraction_ratio": round(extracted / plain, 3)}


def projections(results: dict, store) -> None:
    """Seconds per head at ~2k, 10k, 20k points (a real head, L2 H5, normalised; UMAP compiled beforehand)."""
    from workers.contracts.requests import HeadRequest
    from workers.core.normalize import normalize
    from workers.core.project import Projector, warm_up_umap
    from workers.pipeline.keys import PREVIEW_PARAMS, PROJECTION_PARAMS
    from workers.pipeline.stages import ensure_extraction, head_vectors

    keys = ensure_extraction(HeadRequest(layer=2, head=5), store)
    q, k = normalize(*head_vectors(store, keys), "scale+translate")
    compile_s, _ = timed(warm_up_umap)
    rows: dict[str, dict[str, float]] = {}
    rng = np.random.default_rng(0)
    for points in (2000, 10000, 20000):
        take = np.sort(rng.choice(len(q), points // 2, replace=False))
        joint = np.vstack([q[take], k[take]])
        rows[str(points)] = {
            label: round(timed(lambda m=method, p=params, x=joint: Projector(m, 2, **p).fit_transform(x))[0], 2)
            for label, method, params in (("pca", "pca", {}), ("umap", "umap", PROJECTION_PARAMS["umap"]),
                                          ("umap preview", "umap", PREVIEW_PARAMS["umap"]),
                                          ("tsne", "tsne", {}), ("tsne preview", "tsne", PREVIEW_PARAMS["tsne"]))}
    results["projection_s_per_head"] = rows
    results["umap_compile_s"] = round(compile_s, 1)
    from workers.core.fidelity import sink_keys
    from workers.core.fitted import fitted_layout
    from workers.pipeline.keys import estimator_params
    from workers.pipeline.stages import text_ids

    q_raw, k_raw = head_vectors(store, keys)
    text_id = text_ids(store, keys)
    sinks = sink_keys(text_id, store.get_arrays(keys.tokens)["is_special"], causal=False)
    results["fitted_s_per_head"] = {
        "points": 2 * len(q_raw), **{label: round(timed(lambda p=preview: fitted_layout(
            q_raw, k_raw, text_id, False, sinks, 2, **estimator_params("fitted", p)))[0], 2)
            for label, preview in (("full", False), ("preview", True))}}


def matrix(results: dict, method: str, layers: range, directory: Path) -> None:
    """Seconds for every head of `layers` from a cold store in this process, model already loaded."""
    from workers.contracts.requests import HeadRequest
    from workers.pipeline.stages import ensure_extraction, ensure_head_view, loaded_model
    from workers.store import Store

    store = Store(directory)
    loaded_model("minilm")
    extraction_s, _ = timed(lambda: ensure_extraction(HeadRequest(), store))
    heads_s, _ = timed(lambda: [ensure_head_view(HeadRequest(layer=layer, head=head, method=method), store)
                                for layer in layers for head in range(12)])
    results[f"{method}_matrix"] = {"heads": 12 * len(layers), "extraction_s": round(extraction_s, 2),
                                   "heads_s": round(heads_s, 2), "seconds": round(extraction_s + heads_s, 2),
                                   "estimated_72_heads_s": round(extraction_s + heads_s * 6 / len(layers), 1)}


def matrix_embedded(results: dict, directory: Path, method: str, workers: int = 2) -> None:
    """The embedded matrix of `method` as the dashboard asks for it: cold store, local workers (UMAP compiled while
    idle, model not loaded), PCA for every head first, then every head's preview; seconds until all are drawn."""
    from dashboard.jobs import LocalWorker
    from workers.contracts.requests import HeadRequest
    from workers.runtime import local_queue
    from workers.store import open_store

    os.environ["QK_ATLAS_WARM_UMAP"] = "1" if method == "umap" else "0"
    store = open_store(directory)
    pool = LocalWorker(directory, count=workers)
    pool.start()
    try:
        if method == "umap":
            time.sleep(75)  # idle workers compile UMAP (staggered), as they do after the app starts
        started = time.perf_counter()
        cells = [(layer, head) for layer in range(6) for head in range(12)]
        pca = [local_queue.submit(HeadRequest(layer=la, head=h, method="pca").to_dict(), store) for la, h in cells]
        umap = [local_queue.submit(HeadRequest(layer=la, head=h, method=method, preview=True).to_dict(), store)
                for la, h in cells]
        pca_s = None
        while not all(local_queue.job_status(i, store)["state"] == "done" for i in umap):
            if pca_s is None and all(local_queue.job_status(i, store)["state"] == "done" for i in pca):
                pca_s = time.perf_counter() - started
            time.sleep(0.2)
        seconds = time.perf_counter() - started
    finally:
        pool.stop()
        os.environ["QK_ATLAS_WARM_UMAP"] = "0"
    results[f"{method}_matrix_embedded"] = {"workers": workers, "heads": len(cells), "seconds": round(seconds, 1),
                                            "all_cells_pca_s": round(pca_s or seconds, 1)}


def server_times(results: dict, directory: Path) -> None:
    """Server time and bytes per point of a cached single view and a cached matrix (callback work + JSON)."""
    import plotly.io as pio

    from dashboard import jobs
    from dashboard.figures.single import Style, single_figure
    from dashboard.views.matrix import cells_figure, finished_cells
    from workers.contracts.choices import DEFAULT_NORMALISATION
    from workers.contracts.requests import HeadRequest
    from workers.models.registry import read_spec

    jobs.set_cache_dir(directory)
    request = HeadRequest(layer=2, head=5, method="pca")  # computed by the PCA matrix step

    def single() -> str:
        keys = jobs.cached_keys(request, jobs.store())
        figure, _ = single_figure(jobs.head_data(keys, False), Style(), "u")
        return pio.to_json(figure, validate=False)

    def whole_matrix() -> str:
        done, total = finished_cells({"model": "minilm", "corpus": "default", "norm": DEFAULT_NORMALISATION,
                                      "method": "pca"})  # the matrix the PCA step above computed
        assert len(done) == total, f"only {len(done)} of {total} cells are stored"
        figure, _status = cells_figure(done, {}, read_spec("minilm"), "", total, "pca")
        return pio.to_json(figure, validate=False)

    single(), whole_matrix()
    single_s, single_json = timed(single, 10)
    matrix_s, matrix_json = timed(whole_matrix, 5)
    n_single = 2 * len(jobs.tokens_table(jobs.cached_keys(request, jobs.store())["tokens"])["token"])
    n_matrix = 72 * 2 * 2000
    results["server"] = {"cached_single_ms": round(1000 * single_s, 1), "cached_matrix_ms": round(1000 * matrix_s, 1),
                         "single_bytes": len(single_json), "single_points": n_single,
                         "single_bytes_per_point": round(len(single_json) / n_single, 1),
                         "matrix_bytes": len(matrix_json), "matrix_points": n_matrix,
                         "matrix_bytes_per_point": round(len(matrix_json) / n_matrix, 1)}


def browser(results: dict, directory: Path) -> None:
    """Seconds from navigation to a drawn matrix (and single view) in headless Chromium, store warm."""
    from selenium import webdriver

    from dashboard.app import create_app
    from tests.support.browser import chromium_options, seconds_until_drawn, serve_in_thread

    app = create_app(cache_dir=directory)
    port = serve_in_thread(app)
    driver = webdriver.Chrome(options=chromium_options())
    drawn = ("var gd = document.querySelector('#' + arguments[0][0] + ' .js-plotly-plot');"
             "return !!(gd && gd._fullData && gd._fullData.length >= 2 && gd._fullData[0].x &&"
             " gd._fullData[0].x.length >= arguments[0][1]);")
    try:
        out = {}
        for name, query, graph, points in (("matrix", "?view=matrix&method=pca", "matrix-graph", 72 * 2000),
                                           ("single", "?layer=2&head=5&method=pca", "single-graph", 10000)):
            driver.get(f"http://127.0.0.1:{port}/{query}")  # warm the browser cache (plotly.js)
            time.sleep(3)
            out[f"{name}_drawn_s"] = seconds_until_drawn(driver, f"http://127.0.0.1:{port}/{query}", drawn,
                                                         [graph, points], timeout=300)
        results["browser"] = out
    finally:
        driver.quit()
        if app.local_worker:
            app.local_worker.stop()


def table(results: dict) -> list[tuple[str, object, object]]:
    """(measure, value, target) rows."""
    rows = [("extraction / plain forward", results["extraction"]["extraction_ratio"], TARGETS["extraction_ratio"])]
    for points, methods in results["projection_s_per_head"].items():
        for method, seconds in methods.items():
            rows.append((f"{method} per head, {int(points):,} points (s)", seconds, ""))
    rows.append(("UMAP compilation, once per process (s)", results["umap_compile_s"], ""))
    rows.append(("PCA matrix, 72 heads, cold store, model loaded (s)", results["pca_matrix"]["seconds"],
                 TARGETS["pca_matrix_s"]))
    embedded = results["umap_matrix_embedded"]
    rows.append((f"UMAP matrix embedded, {embedded['workers']} local workers, 50-epoch previews, cold store (s)",
                 embedded["seconds"], TARGETS["umap_matrix_s"]))
    rows.append(("  of which: every cell drawn (PCA stand-ins) (s)", embedded["all_cells_pca_s"], ""))
    fitted = results["fitted_s_per_head"]
    rows.append((f"picture fitted to attention per head, {fitted['points']:,} points (s)", fitted["full"], ""))
    rows.append(("  its matrix preview (20 steps) per head (s)", fitted["preview"], ""))
    embedded = results["fitted_matrix_embedded"]
    rows.append((f"fitted matrix embedded (default), {embedded['workers']} local workers, previews, cold store (s)",
                 embedded["seconds"], ""))
    rows.append(("  of which: every cell drawn (PCA stand-ins) (s)", embedded["all_cells_pca_s"], ""))
    umap = results["umap_matrix"]
    label = "full UMAP (200 epochs), one process" + ("" if umap["heads"] == 72 else f", {umap['heads']} heads x 6")
    rows.append((f"{label} (s, estimate)", umap["estimated_72_heads_s"], ""))
    server = results["server"]
    rows += [("cached single view, server (ms)", server["cached_single_ms"], TARGETS["cached_single_ms"]),
             ("cached matrix, server (ms)", server["cached_matrix_ms"], TARGETS["cached_matrix_ms"]),
             ("single view, bytes per point", server["single_bytes_per_point"], TARGETS["bytes_per_point"]),
             ("matrix view, bytes per point", server["matrix_bytes_per_point"], TARGETS["bytes_per_point"])]
    if "browser" in results:
        rows += [("Chromium: navigation to drawn matrix (s)", results["browser"]["matrix_drawn_s"],
                  TARGETS["matrix_drawn_s"]),
                 ("Chromium: navigation to drawn single view (s)", results["browser"]["single_drawn_s"], "")]
    return rows


STEPS = ("extraction", "projections", "pca-matrix", "umap-matrix", "umap-embedded", "fitted-embedded", "server",
         "browser")


def main() -> None:
    """Run every measurement (or those --only names), print the table, write JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--full-umap", action="store_true", help="time all 72 UMAP heads (about 8 minutes)")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--out", default="bench/results/bench.json")
    parser.add_argument("--only", nargs="*", choices=list(STEPS), help="run these steps alone; the other figures are "
                        "kept from OUT (server and browser need the pca-matrix step in the same run)")
    args = parser.parse_args()
    os.environ.setdefault("QK_ATLAS_WARM_UMAP", "0")
    results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    if args.only:
        results = {**json.loads(Path(args.out).read_text()), **results}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        from workers.store import Store

        steps = {"extraction": lambda: extraction(results),
                 "projections": lambda: projections(results, Store(root / "projections")),
                 "pca-matrix": lambda: matrix(results, "pca", range(6), root / "matrix"),
                 "umap-matrix": lambda: matrix(results, "umap", range(6) if args.full_umap else range(1),
                                               root / "umap"),
                 "umap-embedded": lambda: matrix_embedded(results, root / "embedded", "umap"),
                 "fitted-embedded": lambda: matrix_embedded(results, root / "fitted", "fitted"),
                 "server": lambda: server_times(results, root / "matrix")}
        if not args.no_browser:
            steps["browser"] = lambda: browser(results, root / "matrix")
        for name, step in steps.items():
            if args.only and name not in args.only:
                continue
            step()
            save(results, args.out)  # partial results survive a failure later on
    rows = table(results)
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>9}  {'target':>7}  verdict")
    for name, value, target in rows:
        verdict = "" if target == "" else ("met" if float(value) <= float(target) else "MISSED")
        print(f"{name:<{width}}  {value!s:>9}  {target!s:>7}  {verdict}")
    results["table"] = rows
    save(results, args.out)
    Path(args.out).with_suffix(".md").write_text(markdown(rows))


def markdown(rows: list) -> str:
    """The table as markdown (bench/results/bench.md; the table docs/performance.md quotes is this file)."""
    lines = ["| measure | value | target | verdict |", "|---|---|---|---|"]
    for name, value, target in rows:
        verdict = "" if target == "" else ("met" if float(value) <= float(target) else "**missed**")
        lines.append(f"| {name.strip()} | {value} | {'' if target == '' else f'≤ {target:g}'} | {verdict} |")
    return "\n".join(lines) + "\n"


def save(results: dict, out: str) -> None:
    """Write the results JSON."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
