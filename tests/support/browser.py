"""Helpers for driving Plotly graphs with real mouse events in dash_duo."""

from __future__ import annotations

import io
import time

import numpy as np
from PIL import Image

TRACES = ("var gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');"
          "return gd && gd._fullData ? gd._fullData.map(t => [t.type, t.name, (t.x || []).length]) : null;")
POINT_OFFSET = """
var gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');
var trace = gd._fullData[arguments[1]], i = arguments[2];
var xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
return [xa.l2p(trace.x[i]), ya.l2p(trace.y[i])];
"""
ISOLATED = """
var gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');
var trace = gd._fullData[arguments[1]], candidates = arguments[2];
var xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, xs = [], ys = [];
gd._fullData.forEach(function (t) {
  if (!t.x || t.visible !== true) return;
  for (var i = 0; i < t.x.length; i++) { if (t.x[i] != null) { xs.push(xa.l2p(t.x[i])); ys.push(ya.l2p(t.y[i])); } }
});
var best = -1, bestGap = -1;
candidates.forEach(function (c) {
  var px = xa.l2p(trace.x[c]), py = ya.l2p(trace.y[c]), first = Infinity, second = Infinity;
  for (var j = 0; j < xs.length; j++) {
    var d = (xs[j] - px) * (xs[j] - px) + (ys[j] - py) * (ys[j] - py);
    if (d < first) { second = first; first = d; } else if (d < second) { second = d; }
  }
  if (second > bestGap) { bestGap = second; best = c; }
});
return best;
"""
HOVERED = """
var gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');
var h = gd._hoverdata && gd._hoverdata[0];
return h ? [h.curveNumber, h.pointNumber, h.customdata] : null;
"""

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ("--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-background-networking "
                  "--disable-component-update --disable-sync --no-first-run --disable-quic "
                  "--enable-unsafe-swiftshader --window-size=1400,1000").split()


def chromium_options():
    """Selenium options for Debian's Chromium, headless, with software WebGL (SwiftShader)."""
    from selenium.webdriver.chrome.options import Options

    options = Options()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    return options


def wait_until(check, timeout: float = 120.0, interval: float = 0.2, what: str = "condition"):
    """Poll `check()` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout} s")


VISIBLE = """
var e = document.querySelector(arguments[0]);
return !!(e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden');
"""


def is_visible(dash_duo, selector: str) -> bool:
    """Whether the element is on the page and shown, read in one script call (no stale element references)."""
    return bool(dash_duo.driver.execute_script(VISIBLE, selector))


def traces(dash_duo, graph_id: str) -> list | None:
    """[type, name, points] per trace of a graph."""
    return dash_duo.driver.execute_script(TRACES, graph_id)


def wait_for_points(dash_duo, graph_id: str = "single-graph", trace_type: str = "scattergl",
                    timeout: float = 120.0) -> list:
    """Wait until the graph's first two traces (queries, keys) hold points of the given type."""
    def drawn():
        data = traces(dash_duo, graph_id)
        ok = data and len(data) >= 2 and all(t == trace_type and n > 0 for t, _name, n in data[:2])
        return data if ok else None

    return wait_until(drawn, timeout)


def isolated_point(dash_duo, graph_id: str, trace: int, candidates: list[int]) -> int:
    """The candidate point (index into `trace`) farthest on screen from every other drawn point: hovering or
    clicking it cannot pick a neighbour instead."""
    return dash_duo.driver.execute_script(ISOLATED, graph_id, trace, [int(c) for c in candidates])


ON_SCREEN = """
var drag = document.querySelector('#' + arguments[0] + ' .nsewdrag');
var gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');
var rect = drag.getBoundingClientRect(), x, y;
if (arguments[1] === null) {  // a place in the plot area, in pixels from its top-left (negative: from the far side)
  x = rect.left + (arguments[2] < 0 ? rect.width + arguments[2] : arguments[2]);
  y = rect.top + (arguments[3] < 0 ? rect.height + arguments[3] : arguments[3]);
} else {  // a point of a trace
  var trace = gd._fullData[arguments[1]], i = arguments[2];
  x = rect.left + gd._fullLayout.xaxis.l2p(trace.x[i]); y = rect.top + gd._fullLayout.yaxis.l2p(trace.y[i]);
}
if (y < 0 || y > window.innerHeight - 5) { window.scrollBy(0, y - window.innerHeight / 2); return null; }
return [x, y];
"""


# The fidelity and related-heads lines above a one-head picture arrive after the picture (from the workers) and move
# it down when they do: pointing at a point waits until both are shown and the fidelity is no longer being measured
# (the related-heads line keeps its height while the head map is computed).
LINES_SETTLED = """
var fidelity = document.getElementById('view-fidelity'), related = document.getElementById('related-heads');
function hidden(el) { return !el || el.offsetParent === null; }
return (hidden(fidelity) || (fidelity.textContent !== '' && fidelity.textContent.indexOf('Fidelity: measuring') !== 0))
    && (hidden(related) || related.textContent !== '');
"""


def mouse_to_point(dash_duo, graph_id: str, trace: int | None, index: int, click: bool = False,
                   y: int = 0) -> None:
    """Move the real mouse over one point of a 2D graph (and click it), in viewport coordinates, scrolled into view
    first (an element partly out of view shifts element-relative offsets). trace=None: `index`, `y` are pixels
    into the plot area instead (negative: from its right / bottom edge)."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    wait_until(lambda: dash_duo.driver.execute_script(LINES_SETTLED), 180, what="the one-head lines settled")
    where = dash_duo.driver.execute_script(ON_SCREEN, graph_id, trace, index, y)
    if where is None:  # scrolled: measure again
        time.sleep(0.3)
        where = dash_duo.driver.execute_script(ON_SCREEN, graph_id, trace, index, y)
    builder = ActionBuilder(dash_duo.driver)
    builder.pointer_action.move_to_location(int(round(where[0])), int(round(where[1])))
    if click:
        builder.pointer_action.pause(0.3).click()
    builder.perform()


def colour_pixels(png: bytes, hex_colour: str, tolerance: int = 40) -> int:
    """Number of pixels within `tolerance` of a colour (per channel) in a PNG."""
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    target = np.array([int(hex_colour[i: i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(image - target).max(axis=2) <= tolerance).sum())


def set_viewport(driver, width: int, height: int) -> None:
    """Size the window so that the page itself (window.innerWidth x innerHeight) is width x height: the window's
    frame is measured on the window as it is now (a fresh window may not have taken the first size yet)."""
    driver.set_window_size(width, height)
    for _attempt in range(10):
        inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
        if inner == [width, height]:
            return
        outer = driver.get_window_size()
        driver.set_window_size(outer["width"] + width - inner[0], outer["height"] + height - inner[1])
        time.sleep(0.1)
    raise AssertionError(f"the page is {inner[0]}x{inner[1]}, not {width}x{height}")


BOXES = """
function box(selector) {
  var e = document.querySelector(selector);
  if (!e) return null;
  var r = e.getBoundingClientRect();
  return [r.left, r.top, r.right, r.bottom];
}
var out = {inner: [window.innerWidth, window.innerHeight],
           page: [document.scrollingElement.scrollWidth, document.scrollingElement.scrollHeight]};
arguments[0].forEach(function (s) { out[s] = box(s); });
return out;
"""


def boxes(dash_duo, selectors: list[str]) -> dict:
    """Bounding boxes [left, top, right, bottom] of the selectors' first elements, the window and the page size."""
    return dash_duo.driver.execute_script(BOXES, selectors)


def on_screen(found: dict, selector: str) -> bool:
    """Whether the element lies wholly inside the window."""
    width, height = found["inner"]
    left, top, right, bottom = found[selector]
    return left >= -1 and top >= -1 and right <= width + 1 and bottom <= height + 1


def apart(a: list[float], b: list[float]) -> bool:
    """Whether two boxes do not overlap."""
    return a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


LABEL_BOXES = """
var texts = document.querySelectorAll('#' + arguments[0] + ' .textpoint text');
return Array.from(texts).filter(t => t.textContent).map(function (t) {
  var r = t.getBoundingClientRect(); return [t.textContent, [r.left, r.top, r.right, r.bottom]];
});
"""  # SVG text of a Scatter trace (the sentence view, the head map): each label and its box in the page


# Plotly draws Scattergl text with WebGL onto its canvas: no SVG element holds a label. Each label's box is taken from
# what Plotly draws: its trace's points through the axes (in plot pixels), the text measured in the trace's font by
# the browser, above its point ('top center') or on it; only labels inside the plot area and with text (not blank)
# count.
GL_LABELS = """
var gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');
var xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, context = document.createElement('canvas').getContext('2d');
function alpha(colour) {
  var m = /^#[0-9a-f]{6}([0-9a-f]{2})$/i.exec(colour);
  if (m) return parseInt(m[1], 16) / 255;
  m = /^rgba\\(.*,\\s*([0-9.]+)\\)$/.exec(colour);
  return m ? parseFloat(m[1]) : 1;
}
var out = [];
gd._fullData.forEach(function (t) {
  if (t.visible !== true || !t.mode || t.mode.indexOf('text') < 0 || !t.text) return;
  var size = t.textfont.size, shade = alpha(t.textfont.color), above = String(t.textposition).indexOf('top') === 0;
  context.font = size + 'px ' + t.textfont.family;
  for (var i = 0; i < t.x.length; i++) {
    var text = t.text[i], px = xa.l2p(t.x[i]), py = ya.l2p(t.y[i]);
    if (!String(text).trim() || !(px >= 0 && px <= xa._length && py >= 0 && py <= ya._length)) continue;
    var width = context.measureText(text).width, middle = above ? py - 4 - size / 2 : py;
    out.push([shade, px - width / 2, middle - size / 2, px + width / 2, middle + size / 2]);
  }
});
return out;
"""


def gl_labels(dash_duo, graph_id: str) -> np.ndarray:
    """[labels, 5]: each drawn WebGL text label's opacity and box (left, top, right, bottom, plot pixels)."""
    return np.array(dash_duo.driver.execute_script(GL_LABELS, graph_id) or [], dtype=float).reshape(-1, 5)


def overlapping_share(found: np.ndarray, margin: float = 1.0) -> float:
    """Share of boxes [n, 4] (left, top, right, bottom) that overlap another by more than `margin` pixels each way."""
    if len(found) < 2:
        return 0.0
    left, top, right, bottom = (found[:, i] for i in range(4))
    wide = np.minimum(right[:, None], right[None, :]) - np.maximum(left[:, None], left[None, :]) > margin
    tall = np.minimum(bottom[:, None], bottom[None, :]) - np.maximum(top[:, None], top[None, :]) > margin
    meets = wide & tall
    np.fill_diagonal(meets, False)
    return float(meets.any(axis=1).mean())


def serve_in_thread(app) -> int:
    """Serve a Dash app from a daemon thread on a free port (bench scripts); returns the port."""
    import threading

    from tests.support.net import free_port

    port = free_port()
    threading.Thread(target=lambda: app.run(port=port, debug=False), daemon=True).start()
    time.sleep(2)
    return port


def seconds_until_drawn(driver, url: str, drawn_script: str, argument, timeout: float) -> float:
    """Navigate to `url` and time until `drawn_script(argument)` holds and two more frames are painted."""
    started = time.perf_counter()
    driver.get(url)
    while not driver.execute_script(drawn_script, argument):
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"{url} was not drawn within {timeout:.0f} s")
        time.sleep(0.02)
    driver.execute_async_script("requestAnimationFrame(() => requestAnimationFrame(arguments[0]))")
    return round(time.perf_counter() - started, 2)

