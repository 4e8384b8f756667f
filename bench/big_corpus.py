"""A corpus of about 100,000 tokens (200,000 points a head) through MiniLM: extraction time and peak memory, the
store's size per head, the single view's picture, its figure on the server and its drawing in headless Chromium,
with hover and selection checked on the drawn picture.

Run: `.venv/bin/python bench/big_corpus.py [--tokens 100000] [--out bench/results/big_corpus.json]` (about 5
minutes on 2 cores). The corpus is one the project never tuned on: the docstrings of Python's standard library,
one paragraph a text. docs/performance.md quotes the table it writes (tests/unit/test_docs.py checks it).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import pkgutil
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REQUEST = {"layer": 2, "head": 5}
SKIP = re.compile(r"^(test|idlelib|tkinter|turtle|antigravity|this|lib2to3|ensurepip|venv|distutils|_)")


def stdlib_paragraphs() -> list[str]:
    """Paragraphs of 8+ words from the docstrings of the standard library's modules and their public members,
    in module-name order (deterministic)."""
    texts: list[str] = []
    names = sorted(m.name for m in pkgutil.iter_modules() if m.module_finder.path.startswith(sys.base_prefix)
                   and not SKIP.match(m.name) and "site-packages" not in m.module_finder.path)
    for name in names:
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001  (platform-specific modules)
            continue
        docs = [module.__doc__ or ""] + [inspect.getdoc(member) or "" for member_name, member
                                         in sorted(vars(module).items()) if not member_name.startswith("_")
                                         and getattr(member, "__module__", None) == name]
        for doc in docs:
            for paragraph in doc.split("\n\n"):
                words = paragraph.split()
                if len(words) >= 8 and not any(w.startswith((">>>", "...")) for w in words[:1]):
                    texts.append(" ".join(words))
    return list(dict.fromkeys(texts))


def peak_mb() -> float:
    """Peak resident set size of this process so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """Current resident set size in MB."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def extract_child(cache: str) -> dict:
    """In a fresh process: load MiniLM and the corpus, then time the streaming extraction and its peak RSS."""
    from workers.contracts.requests import HeadRequest
    from workers.pipeline.keys import corpus_for
    from workers.pipeline.stages import ensure_extraction, loaded_model
    from workers.store import Store

    loaded_model("minilm")
    corpus_for("stdlib")
    baseline = rss_mb()
    started = time.perf_counter()
    ensure_extraction(HeadRequest(corpus="stdlib"), Store(cache))
    return {"extraction_s": round(time.perf_counter() - started, 1), "rss_after_load_mb": round(baseline),
            "peak_above_load_mb": round(peak_mb() - baseline)}


def pictures(results: dict, cache: Path) -> None:
    """The head's PCA picture and the default (fitted) one, from the stored extraction; store size per head."""
    from workers.contracts.choices import DEFAULT_METHOD
    from workers.contracts.requests import HeadRequest
    from workers.models.registry import read_spec
    from workers.pipeline.stages import ensure_head_view
    from workers.store import Store

    store = Store(cache)
    spec = read_spec("minilm")
    store_mb = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) / 2**20
    out = {"store_mb": round(store_mb, 1), "store_mb_per_head": round(store_mb / (spec.n_layers * spec.n_heads), 2)}
    for method in ("pca", DEFAULT_METHOD):
        started = time.perf_counter()
        keys = ensure_head_view(HeadRequest(corpus="stdlib", method=method, **REQUEST), store)
        out[f"{method}_picture_s"] = round(time.perf_counter() - started, 1)
    out["tokens"] = len(store.get_arrays(keys.tokens)["token"])
    results["pictures"] = out


def server(results: dict, cache: Path) -> None:
    """The cached single view's figure on the server: seconds (median of 5) and bytes a point."""
    import plotly.io as pio

    from dashboard import jobs
    from dashboard.figures.single import Style, single_figure
    from workers.contracts.requests import HeadRequest

    jobs.set_cache_dir(cache)
    request = HeadRequest(corpus="stdlib", method="pca", **REQUEST)

    def build() -> str:
        keys = jobs.cached_keys(request, jobs.store())
        figure, _ = single_figure(jobs.head_data(keys, False), Style(), "u")
        return pio.to_json(figure, validate=False)

    payload = build()
    times = []
    for _ in range(5):
        started = time.perf_counter()
        build()
        times.append(time.perf_counter() - started)
    points = 2 * results["pictures"]["tokens"]
    results["server"] = {"cached_figure_s": round(sorted(times)[2], 2), "bytes": len(payload), "points": points,
                         "bytes_per_point": round(len(payload) / points, 2)}


class _Duo:
    """What tests.support.browser's helpers read from a dash_duo: its driver."""

    def __init__(self, driver):
        self.driver = driver


def view_jobs_done(cache: Path) -> bool:
    """Whether every result the single view of the bench's head asks the workers for is stored: the head's
    attention, its picture's fidelity and the head map of the related-heads line."""
    from workers.contracts.requests import HeadRequest, job_request
    from workers.pipeline.keys import corpus_template, stage_done
    from workers.store import Store

    request, store = HeadRequest(corpus="stdlib", method="pca", **REQUEST), Store(cache)
    return all(stage_done(job_request(asked, stage), store) for asked, stage in
               ((request, "attention"), (request, "fidelity"), (corpus_template(request), "headmap")))


def browser(results: dict, cache: Path) -> None:
    """Navigation to drawn picture in headless Chromium, then a hover shows the point's sentence and a click selects
    its text. The first opening submits the view's jobs (its attention, fidelity, the head map) and is timed on its
    own; the timed navigations (median of 3) start once those are stored: the store warm, and no worker sharing the
    cores with the browser."""
    from selenium import webdriver

    from dashboard.app import create_app
    from tests.support.browser import (
        chromium_options,
        isolated_point,
        mouse_to_point,
        seconds_until_drawn,
        serve_in_thread,
        wait_until,
    )

    hovered = ("var gd = document.querySelector('#single-graph .js-plotly-plot');"
               "var h = gd._hoverdata && gd._hoverdata[0]; return h ? [h.curveNumber, h.pointNumber] : null;")
    drawn = ("var gd = document.querySelector('#single-graph .js-plotly-plot');"
             "return !!(gd && gd._fullData && gd._fullData.length >= 2 && gd._fullData[0].type === 'scattergl' &&"
             " (gd._fullData[0].x || []).length >= arguments[0]);")
    app = create_app(cache_dir=cache)
    port = serve_in_thread(app)
    driver = webdriver.Chrome(options=chromium_options())
    driver.set_window_size(1366, 768)
    url = f"http://127.0.0.1:{port}/?corpus=stdlib&layer={REQUEST['layer']}&head={REQUEST['head']}&method=pca"
    tokens = results["pictures"]["tokens"]
    try:
        first = seconds_until_drawn(driver, url, drawn, tokens, 300)
        wait_until(lambda: view_jobs_done(cache), 1800, interval=1.0, what="the view's jobs stored")
        runs = [seconds_until_drawn(driver, url, drawn, tokens, 120) for _ in range(3)]
        duo = _Duo(driver)
        time.sleep(1)
        key = isolated_point(duo, "single-graph", 1, list(range(0, tokens, max(1, tokens // 300))))
        started = time.perf_counter()
        mouse_to_point(duo, "single-graph", 1, key)
        wait_until(lambda: driver.execute_script(hovered), 30, what="hover")
        wait_until(lambda: "position" in driver.find_element("id", "hover-panel").text, 30, what="hover panel")
        hover_s = time.perf_counter() - started
        started = time.perf_counter()
        mouse_to_point(duo, "single-graph", 1, key, click=True)
        wait_until(lambda: "Selected text" in driver.find_element("id", "selection-summary").text, 60,
                   what="selection")
        results["browser"] = {"window": "1366x768", "first_open_s": first, "drawn_s_runs": runs,
                              "drawn_s": sorted(runs)[1],
                              "hover_panel_s": round(hover_s, 2), "click_to_selection_s":
                              round(time.perf_counter() - started, 2)}
    finally:
        driver.quit()
        if app.local_worker:
            app.local_worker.stop()


def markdown(results: dict) -> str:
    """The table docs/performance.md quotes."""
    ext, pic, srv, web = results["extraction"], results["pictures"], results["server"], results["browser"]
    rows = [
        ("streaming extraction, MiniLM (6 x 12 heads)", f"{ext['extraction_s']} s"),
        ("peak memory above the loaded model and corpus", f"{ext['peak_above_load_mb']} MB"),
        ("store after extraction", f"{pic['store_mb']:,} MB ({pic['store_mb_per_head']} MB a head)"),
        ("one head's picture: PCA / fitted to attention (the default)",
         f"{pic['pca_picture_s']} / {pic['fitted_picture_s']} s"),
        ("single view's figure on the server, cached (median of 5)", f"{srv['cached_figure_s']} s"),
        ("figure sent", f"{srv['bytes'] / 2**20:.1f} MB ({srv['bytes_per_point']} bytes a point)"),
        (f"drawn in headless Chromium, {web['window']}, store warm (median of 3)", f"{web['drawn_s']} s"),
        ("mouse on a point to its sentence in the hover panel", f"{web['hover_panel_s']} s"),
        ("click on a point to its text selected", f"{web['click_to_selection_s']} s"),
    ]
    head = (f"| {pic['tokens']:,} tokens ({2 * pic['tokens']:,} points a head), Python's docstrings, "
            f"{results['machine']} | measured |")
    return "\n".join([head, "|---|---|", *(f"| {step} | {value} |" for step, value in rows)]) + "\n"


def main() -> int:
    """Write the corpus, measure each step, print and write the JSON and the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "big_corpus.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(extract_child(args.child)))
        return 0
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        corpus = root / "stdlib.txt"
        corpus.write_text("\n".join(stdlib_paragraphs()) + "\n")
        os.environ.update({"QK_ATLAS_CORPORA": f"stdlib={corpus}", "QK_ATLAS_MAX_TOKENS": str(args.tokens),
                           "QK_ATLAS_PRELOAD_MODEL": ""})
        cache = root / "cache"
        child = subprocess.run([sys.executable, __file__, "--child", str(cache)], capture_output=True, text=True,
                               check=True)
        results: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
                         "extraction": json.loads(child.stdout.strip().splitlines()[-1])}
        pictures(results, cache)
        server(results, cache)
        browser(results, cache)
    print(json.dumps(results, indent=1))
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    table = markdown(results)
    Path(args.out).with_suffix(".md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
