"""Helpers for driving Plotly graphs with real mouse events in dash_duo."""

from __future__ import annotations

import io
import time

import numpy as np
from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains

TRACES = ("var gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');"
          "return gd && gd._fullData ? gd._fullData.map(t => [t.type, t.name, (t.x || []).length]) : null;")
POINT_OFFSET = """
var gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');
var trace = gd._fullData[arguments[1]], i = arguments[2];
var xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
return [xa.l2p(trace.x[i]), ya.l2p(trace.y[i])];
"""
HOVERED = """
var gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');
var h = gd._hoverdata && gd._hoverdata[0];
return h ? [h.curveNumber, h.pointNumber, h.customdata] : null;
"""


def wait_until(check, timeout: float = 120.0, interval: float = 0.2, what: str = "condition"):
    """Poll `check()` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout} s")


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


def mouse_to_point(dash_duo, graph_id: str, trace: int, index: int, click: bool = False) -> None:
    """Move the real mouse over one point of a 2D graph (and click it)."""
    x, y = dash_duo.driver.execute_script(POINT_OFFSET, graph_id, trace, index)
    drag = dash_duo.find_element(f"#{graph_id} .nsewdrag")
    actions = ActionChains(dash_duo.driver).move_to_element_with_offset(drag, int(round(x)), int(round(y)))
    if click:
        actions = actions.pause(0.3).click()
    actions.perform()


def colour_pixels(png: bytes, hex_colour: str, tolerance: int = 40) -> int:
    """Number of pixels within `tolerance` of a colour (per channel) in a PNG."""
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    target = np.array([int(hex_colour[i: i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(image - target).max(axis=2) <= tolerance).sum())
