"""Screenshots of every view in a 1366x768 and a 1920x1080 page into docs/screenshots/ (README shows one).

Run: `.venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--only single matrix …] [--cache-dir DIR]
[--url URL]`.

Serves the dashboard (the embedded default) in its own process over a result store (a fresh temporary one unless
--cache-dir names one), or drives one already serving at --url (e.g. `make serve` on a fresh clone), opens each
view's URL in headless Chromium at both window sizes, waits until its pictures
are drawn and no progress bar shows, and saves `<view>-<width>x<height>.png` (128 colours). Look at every file it
writes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.browser import chromium_options, set_viewport  # noqa: E402
from tests.support.net import free_port  # noqa: E402

SIZES = ((1366, 768), (1920, 1080))
COLOURS = 128  # each screenshot's palette
VIEWS = {  # name: (URL query, the graph ids that must be drawn)
    "single": ("?view=single&layer=2&head=5", ("single-graph",)),
    "matrix": ("?view=matrix&method=pca", ("matrix-graph",)),
    "sentence": ("?view=sentence&layer=2&head=5&text=3&pos=4", ("sentence-graph",)),
    "headmap": ("?view=headmap&layer=2&head=5", ("headmap-graph",)),
    "compare": ("?view=compare&layer=2&head=5&b_layer=0&b_head=2", ("compare-a-graph", "compare-b-graph")),
    "image": ("?view=sentence&model=tiny-vit&corpus=images&layer=0&head=0&text=40&pos=28", ("sentence-graph",)),
}
DRAWN = """
var ids = arguments[0];
var busy = document.getElementById('progress-wrap'), cells = document.getElementById('matrix-progress');
if (busy && busy.style.display !== 'none') return false;
if (cells && cells.offsetParent !== null) return false;  // the matrix: heads still missing
return ids.every(function (id) {
  var gd = document.querySelector('#' + id + ' .js-plotly-plot');
  return gd && gd._fullData && gd._fullData.some(function (t) { return (t.x || t.z || []).length > 1; });
});
"""


def serve(cache_dir: str, port: int) -> subprocess.Popen:
    """The dashboard in its own process, once it answers."""
    env = {**os.environ, "QK_ATLAS_CACHE_DIR": cache_dir}
    server = subprocess.Popen([sys.executable, "-m", "dashboard", "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/", timeout=2).ok:
                return server
        except requests.ConnectionError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError("the dashboard did not answer within 120 s")


def save_small(png: bytes, path: Path) -> None:
    """A screenshot as a PNG of at most COLOURS colours (a tenth of the bytes; the pages are flat colours)."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    expected = tuple(int(side) for side in path.stem.rsplit("-", 1)[1].split("x"))
    if image.size != expected:
        raise RuntimeError(f"{path.name}: the page is {image.size[0]}x{image.size[1]}")
    image.quantize(COLOURS).save(path, optimize=True)


def shoot(driver, base: str, name: str, out: Path, timeout: float) -> list[Path]:
    """One view at both sizes, each once its pictures are drawn (or after `timeout` seconds, said on stderr)."""
    query, graphs = VIEWS[name]
    written = []
    for width, height in SIZES:
        set_viewport(driver, width, height)
        driver.get(base + query)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not driver.execute_script(DRAWN, list(graphs)):
            time.sleep(0.5)
        if time.monotonic() >= deadline:
            print(f"{name} {width}x{height}: not drawn within {timeout:.0f} s; shot as it stands", file=sys.stderr)
        time.sleep(1.5)  # the lines that arrive after the picture (fidelity, related heads)
        path = out / f"{name}-{width}x{height}.png"
        save_small(driver.get_screenshot_as_png(), path)
        written.append(path)
    return written


def main() -> int:
    """Serve, shoot every view asked for at both sizes, print the files written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--only", nargs="*", choices=list(VIEWS), default=list(VIEWS))
    parser.add_argument("--cache-dir", help="result store to serve (default: a fresh temporary one)")
    parser.add_argument("--timeout", type=float, default=240, help="seconds to wait for a view's pictures")
    parser.add_argument("--url", help="a dashboard already serving (e.g. http://127.0.0.1:8050/): shot as it is")
    args = parser.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with tempfile.TemporaryDirectory() as scratch:
        server = None if args.url else serve(args.cache_dir or scratch, port)
        base = args.url.rstrip("/") + "/" if args.url else f"http://127.0.0.1:{port}/"
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=chromium_options())
        try:
            for name in args.only:
                for path in shoot(driver, base, name, out, args.timeout):
                    print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
        finally:
            driver.quit()
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
