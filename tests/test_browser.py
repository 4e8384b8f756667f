"""The dashboard in headless Chromium (dash_duo): URL state, heading, WebGL points drawn, hover, notices."""

from __future__ import annotations

import html
import io
import time

import numpy as np
import pytest
from PIL import Image
from selenium.webdriver.common.by import By

from dashboard.figures.single import KEY_COLOR, QUERY_COLOR

pytestmark = pytest.mark.browser

FULL_DATA_LENGTHS = ("var gd = document.querySelector('#single-graph .js-plotly-plot');"
                     "return gd && gd._fullData ? gd._fullData.map(t => [t.type, (t.x || []).length]) : null;")


@pytest.fixture
def app(isolated_cache):
    from dashboard.app import create_app

    app = create_app(cache_dir=isolated_cache)
    yield app
    app.local_worker.stop()


def wait_until(check, timeout: float = 120.0, interval: float = 0.2):
    """Poll `check()` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def colour_pixels(png: bytes, hex_colour: str, tolerance: int = 40) -> int:
    """Number of pixels within `tolerance` of a colour (per channel) in a PNG."""
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    target = np.array([int(hex_colour[i: i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(image - target).max(axis=2) <= tolerance).sum())


def wait_for_points(dash_duo, trace_type: str = "scattergl") -> list:
    """Wait until the graph holds a queries and a keys trace of the given type; returns [type, length] pairs."""
    def drawn():
        data = dash_duo.driver.execute_script(FULL_DATA_LENGTHS)
        return data if data and len(data) == 2 and all(t == trace_type and n > 0 for t, n in data) else None

    return wait_until(drawn)


def test_url_opens_the_chosen_head_and_webgl_draws_its_points(dash_duo, app):
    dash_duo.start_server(app)
    dash_duo.driver.get(dash_duo.server_url + "/?layer=2&head=5&method=pca")
    # progress shows while the worker loads the model and extracts
    wait_until(lambda: dash_duo.find_element("#progress-wrap").is_displayed(), timeout=30, interval=0.05)
    dash_duo.wait_for_text_to_equal("#view-heading", "L2 H5", timeout=30)
    lengths = wait_for_points(dash_duo)
    assert lengths[0][1] == lengths[1][1] >= 10_000  # one query and one key per token of the default corpus
    dash_duo.wait_for_contains_text("#view-status", "points", timeout=30)
    time.sleep(1.0)  # let WebGL finish its frame
    png = dash_duo.find_element("#single-graph").screenshot_as_png
    assert colour_pixels(png, QUERY_COLOR) > 2000, "queries not drawn"
    assert colour_pixels(png, KEY_COLOR) > 2000, "keys not drawn"
    assert dash_duo.find_element("#layer-dropdown").text.strip().startswith("2")
    assert "layer=2" in dash_duo.driver.current_url and "head=5" in dash_duo.driver.current_url
    assert dash_duo.get_logs() == []


def test_controls_write_the_url_and_back_restores(dash_duo, app):
    dash_duo.start_server(app)
    dash_duo.driver.get(dash_duo.server_url + "/?layer=1&head=2")
    dash_duo.wait_for_text_to_equal("#view-heading", "L1 H2", timeout=30)
    wait_for_points(dash_duo)
    dash_duo.find_element("#dims-radio label[for*='1'], #dims-radio .form-check:nth-child(2) input").click()
    wait_until(lambda: "dims=3" in dash_duo.driver.current_url, timeout=20)
    wait_for_points(dash_duo, "scatter3d")
    # reload keeps the view
    dash_duo.driver.refresh()
    dash_duo.wait_for_text_to_equal("#view-heading", "L1 H2", timeout=30)
    wait_for_points(dash_duo, "scatter3d")
    # back and forward move through views
    dash_duo.driver.get(dash_duo.server_url + "/?layer=4&head=0&dims=2")
    dash_duo.wait_for_text_to_equal("#view-heading", "L4 H0", timeout=30)
    dash_duo.driver.back()
    dash_duo.wait_for_text_to_equal("#view-heading", "L1 H2", timeout=30)
    wait_for_points(dash_duo, "scatter3d")


HOVER_POINT = """
var gd = document.querySelector('#single-graph .js-plotly-plot');
var trace = gd._fullData[1], xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
var i = arguments[0];
var box = gd.querySelector('.nsewdrag').getBoundingClientRect();
var opts = {bubbles: true, cancelable: true, view: window,
            clientX: box.left + xa.l2p(trace.x[i]), clientY: box.top + ya.l2p(trace.y[i])};
gd.querySelector('.nsewdrag').dispatchEvent(new MouseEvent('mousemove', opts));
"""
HOVERED = """
var gd = document.querySelector('#single-graph .js-plotly-plot');
var h = gd._hoverdata && gd._hoverdata[0];
return h ? [h.curveNumber, h.customdata, h.text] : null;
"""


def test_hover_shows_the_sentence(dash_duo, app):
    dash_duo.start_server(app)
    dash_duo.driver.get(dash_duo.server_url + "/?layer=0&head=0")
    wait_for_points(dash_duo)
    time.sleep(0.5)
    dash_duo.driver.execute_script(HOVER_POINT, 2)  # a real mouse move over the third key
    curve, position, token = wait_until(lambda: dash_duo.driver.execute_script(HOVERED), timeout=10)
    role = "query" if curve == 0 else "key"
    dash_duo.wait_for_contains_text("#hover-panel", f"({role}, position {position})", timeout=20)
    panel = dash_duo.find_element("#hover-panel")
    assert panel.find_element(By.CSS_SELECTOR, "mark").text == html.unescape(token)
    assert len(panel.text.split()) > 4  # the whole sentence is shown


def test_bad_url_values_fall_back_with_a_notice_and_markup_stays_text(dash_duo, app):
    dash_duo.start_server(app)
    injected = "%3Cimg%20src%3Dx%20onerror%3Dwindow.pwned%3D1%3E"
    dash_duo.driver.get(dash_duo.server_url + f"/?layer=99&head=3&model={injected}")
    dash_duo.wait_for_text_to_equal("#view-heading", "L0 H3", timeout=30)
    dash_duo.wait_for_contains_text("#notices", "Layer '99' is not in 0..5", timeout=10)
    assert "<img src=x" in dash_duo.find_element("#notices").text
    assert dash_duo.driver.execute_script("return window.pwned === undefined")
    wait_for_points(dash_duo)
