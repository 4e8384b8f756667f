"""The page fits the window: at 1366x768 and 1920x1080 the picture, its heading, the controls that change it and
the hover panel are on screen without scrolling; legends never meet toolbars; notices take one line."""

from __future__ import annotations

import pytest

from tests.support.browser import set_viewport, traces, wait_for_points, wait_until

pytestmark = pytest.mark.browser

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
CONTROLS = ("#model-dropdown", "#corpus-dropdown", "#layer-dropdown", "#head-dropdown", "#method-dropdown")


@pytest.fixture
def app(isolated_cache):
    from dashboard.app import create_app

    app = create_app(cache_dir=isolated_cache)
    yield app
    app.local_worker.stop()


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


def assert_fits(dash_duo, graph: str, extra: tuple[str, ...] = ()) -> dict:
    """The page does not scroll; heading, guide line, controls, the graph (at least 300 px tall) and `extra` are on
    screen; the graph's legend and toolbar do not meet."""
    legend, toolbar = f"#{graph} g.legend", f"#{graph} .modebar"
    selectors = ["#view-heading", "#view-guide", f"#{graph}", legend, toolbar, *CONTROLS, *extra]
    found = boxes(dash_duo, selectors)
    width, height = found["inner"]
    assert found["page"][0] <= width + 1 and found["page"][1] <= height + 1, found
    for selector in ["#view-heading", "#view-guide", f"#{graph}", *CONTROLS, *extra]:
        assert found[selector] and on_screen(found, selector), (selector, found)
    assert found[f"#{graph}"][3] - found[f"#{graph}"][1] >= 300, found
    assert found[legend] and found[toolbar] and apart(found[legend], found[toolbar]), found
    return found


def test_every_view_fits_the_window_at_both_sizes(dash_duo, app):
    dash_duo.start_server(app)
    for width, height in ((1366, 768), (1920, 1080)):
        set_viewport(dash_duo.driver, width, height)
        # a selected text adds legend entries (its tokens, its attention lines); three refused values, three notices
        dash_duo.driver.get(dash_duo.server_url + "/?layer=2&head=5&method=pca&text=3&pos=4&color=nonsense"
                                                  "&order=nothing&tint=bogus")
        dash_duo.wait_for_text_to_equal("#view-heading", "L2 H5", timeout=60)
        wait_for_points(dash_duo, timeout=240)
        wait_until(lambda: len(traces(dash_duo, "single-graph")) > 2, timeout=30, what="the selection drawn")
        dash_duo.wait_for_contains_text("#notices", "3 notices: ", timeout=30)
        assert dash_duo.find_element("#notices").size["height"] < 48  # one line
        assert "q·k" in dash_duo.find_element("#view-guide").text or "near" in dash_duo.find_element("#view-guide").text
        found = assert_fits(dash_duo, "single-graph", ("#hover-panel",))
        hover, graph = found["#hover-panel"], found["#single-graph"]
        assert hover[0] >= graph[2] - 1 and hover[1] < graph[3], found  # beside the picture, not below it

        dash_duo.driver.get(dash_duo.server_url + "/?view=sentence&layer=2&head=5&method=pca&text=3&pos=4")
        wait_until(lambda: len(traces(dash_duo, "sentence-graph") or []) > 2, timeout=60, what="the sentence drawn")
        for graph in ("sentence-graph", "aggregate-graph"):  # titles and colour bars clear of the toolbar
            found = boxes(dash_duo, [f"#{graph}", f"#{graph} .gtitle", f"#{graph} .modebar", f"#{graph} .colorbar"])
            assert on_screen(found, f"#{graph}") and found[f"#{graph} .gtitle"], found
            for part in (".gtitle", ".colorbar"):
                assert not found[f"#{graph} {part}"] or apart(found[f"#{graph} {part}"], found[f"#{graph} .modebar"])

        dash_duo.driver.get(dash_duo.server_url + "/?view=matrix&method=pca")
        dash_duo.wait_for_contains_text("#matrix-status", "72/72 heads", timeout=240)
        assert_fits(dash_duo, "matrix-graph")
