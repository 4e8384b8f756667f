"""Cold start: seconds from starting the server on an empty store to the first picture drawn in Chromium.

Run: `.venv/bin/python bench/cold_start.py [--runs 3] [--out bench/results/cold_start.json]`.

Each run starts `python -m dashboard` (what `qk-atlas serve` and `make serve` run) over a fresh empty store, loads
the page in headless Chromium (started beforehand) the moment the server answers, and times until the default
view's points are drawn: the model loaded, the default corpus run through it, the default picture computed,
sent and drawn. The same runs with QK_ATLAS_PRELOAD_MODEL empty (the model loaded only when the first request
asks) are the baseline. Medians over the runs; the README quotes them (tests/unit/test_docs.py checks it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.browser import chromium_options  # noqa: E402
from tests.support.net import free_port  # noqa: E402

DRAWN = """
var gd = document.querySelector('#single-graph .js-plotly-plot');
return !!(gd && gd._fullData && gd._fullData.length > 1 && gd._fullData[0].type === 'scattergl'
          && (gd._fullData[0].x || []).length > 1000);
"""


def one_run(driver, preload: bool, timeout: float = 600) -> dict[str, float]:
    """Server start -> page answers -> first picture drawn, seconds from the server's start."""
    port = free_port()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as cache:  # workers may still be writing
        env = {**os.environ, "QK_ATLAS_CACHE_DIR": cache}
        if not preload:
            env["QK_ATLAS_PRELOAD_MODEL"] = ""
        start = time.monotonic()
        server = subprocess.Popen([sys.executable, "-m", "dashboard", "--port", str(port)], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    if requests.get(f"http://127.0.0.1:{port}/", timeout=2).ok:
                        break
                except requests.ConnectionError:
                    time.sleep(0.05)
                if time.monotonic() - start > timeout:
                    raise RuntimeError("the server did not answer")
            answered = time.monotonic() - start
            driver.get(f"http://127.0.0.1:{port}/")
            while not driver.execute_script(DRAWN):
                if time.monotonic() - start > timeout:
                    raise RuntimeError("the first picture was not drawn")
                time.sleep(0.05)
            drawn = time.monotonic() - start
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {"server_answers_s": round(answered, 2), "first_view_s": round(drawn, 2)}


def main() -> int:
    """Alternate runs with and without preloading; print and write the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "cold_start.json"))
    args = parser.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=chromium_options())
    runs: dict[str, list[dict[str, float]]] = {"preloaded": [], "not_preloaded": []}
    try:
        for _ in range(args.runs):
            for name, preload in (("preloaded", True), ("not_preloaded", False)):
                runs[name].append(one_run(driver, preload))
                print(name, runs[name][-1], flush=True)
    finally:
        driver.quit()
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "runs": runs,
              **{f"{name}_{field}": statistics.median(r[field] for r in runs[name])
                 for name in runs for field in ("server_answers_s", "first_view_s")}}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
