"""The page fits the window: at 1366x768 and 1920x1080 the picture, its heading, the controls that change it and
the hover panel are on screen without scrolling, and the picture keeps its size while the texts around it change;
legends never meet toolbars; titles lie inside their graphs; notices take one line."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard.figures.sentence import LABEL_PX as LABEL_PX_RANGE
from tests.support.browser import (
    LABEL_BOXES,
    apart,
    boxes,
    on_screen,
    overlapping_share,
    set_viewport,
    traces,
    wait_for_points,
    wait_until,
)

pytestmark = pytest.mark.browser

CONTROLS = ("#model-dropdown", "#corpus-dropdown", "#layer-dropdown", "#head-dropdown", "#method-dropdown")


@pytest.fixture
def app(extracted_cache):
    from dashboard.app import create_app

    app = create_app(cache_dir=extracted_cache)
    yield app
    app.local_worker.stop()


ALL_BOXES = ("return Array.from(document.querySelectorAll(arguments[0])).map(function (e) {"
             "var r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })")


def assert_fits(dash_duo, graph: str, extra: tuple[str, ...] = ()) -> dict:
    """The page does not scroll; heading, guide line, controls, the graph (at least 300 px tall) and `extra` are on
    screen; the graph's legend and colour bars do not meet its toolbar."""
    legend, toolbar = f"#{graph} g.legend", f"#{graph} .modebar"
    selectors = ["#view-heading", "#view-guide", f"#{graph}", legend, toolbar, *CONTROLS, *extra]
    found = boxes(dash_duo, selectors)
    width, height = found["inner"]
    assert found["page"][0] <= width + 1 and found["page"][1] <= height + 1, found
    for selector in ["#view-heading", "#view-guide", f"#{graph}", *CONTROLS, *extra]:
        assert found[selector] and on_screen(found, selector), (selector, found)
    assert found[f"#{graph}"][3] - found[f"#{graph}"][1] >= 300, found
    assert found[legend] and found[toolbar] and apart(found[legend], found[toolbar]), found
    bars = dash_duo.driver.execute_script(ALL_BOXES, f"#{graph} .colorbar")
    assert all(apart(bar, found[toolbar]) for bar in bars), (bars, found[toolbar])
    return found


# The picture's size while the lines above it are empty (as before their callbacks answer), while its drawing is
# taller than the graph (as between a change of size and Plotly's resize), and while the hover panel and the selection
# line hold a long text, beside its size now: each change of size makes Plotly draw every point again. Each element's
# own nodes are put back (the page's components keep theirs).
PICTURE_SIZES = """
var graph = document.getElementById('single-graph'), drawing = graph.querySelector('.js-plotly-plot');
function size() { var r = graph.getBoundingClientRect(); return [r.width, r.height]; }
function holding(ids, text) {  // the elements' nodes set aside, `text` in their place; returns the picture's size
  var kept = ids.map(function (id) {
    var element = document.getElementById(id), nodes = document.createDocumentFragment();
    while (element.firstChild) nodes.appendChild(element.firstChild);
    element.appendChild(document.createTextNode(text));
    return [element, nodes];
  });
  var found = size();
  kept.forEach(function (pair) { pair[0].removeChild(pair[0].firstChild); pair[0].appendChild(pair[1]); });
  return found;
}
var out = {settled: size(), emptied: holding(['view-status', 'view-fidelity', 'related-heads'], ''),
           hovered: holding(['hover-panel'], 'a long sentence '.repeat(200)),
           selected: holding(['selection-summary'], 'Selected text 3 ' + 'a long sentence '.repeat(200))};
var height = drawing.style.height;
drawing.style.height = '5000px';
out.spilled = size();
drawing.style.height = height;
return out;
"""


LABEL_PX = """
return Array.from(document.querySelectorAll('#sentence-graph .textpoint text')).map(t => parseFloat(t.style.fontSize));
"""  # the sentence view's token labels' font sizes (px)


GL_DENSITY = """
var canvas = document.querySelector('#single-graph canvas.gl-canvas-context');
return [canvas.width, parseFloat(canvas.style.width), window.devicePixelRatio];
"""


def test_every_view_fits_the_window_at_both_sizes(dash_duo, app):
    dash_duo.start_server(app)
    long_px: dict[int, set[float]] = {}  # the long text's label sizes by window width
    for width, height in ((1366, 768), (1920, 1080)):
        set_viewport(dash_duo.driver, width, height)
        # a selected text adds legend entries (its tokens, its attention lines), vector norms two colour bars;
        # three refused values, three notices
        dash_duo.driver.get(dash_duo.server_url + "/?layer=2&head=5&method=pca&text=3&pos=4&color=norm"
                                                  "&show=nonsense&order=nothing&tint=bogus")
        dash_duo.wait_for_text_to_equal("#view-heading", "L2 H5", timeout=60)
        wait_for_points(dash_duo, timeout=240)
        wait_until(lambda: len(traces(dash_duo, "single-graph")) > 2, timeout=30, what="the selection drawn")
        dash_duo.wait_for_contains_text("#notices", "3 notices: ", timeout=30)
        assert dash_duo.find_element("#notices").size["height"] < 48  # one line
        assert "q·k" in dash_duo.find_element("#view-guide").text or "near" in dash_duo.find_element("#view-guide").text
        assert len(dash_duo.driver.execute_script(ALL_BOXES, "#single-graph .colorbar")) == 2
        found = assert_fits(dash_duo, "single-graph", ("#hover-panel",))
        hover, graph = found["#hover-panel"], found["#single-graph"]
        assert hover[0] >= graph[2] - 1 and hover[1] < graph[3], found  # beside the picture, not below it
        sizes = dash_duo.driver.execute_script(PICTURE_SIZES)
        assert all(size == sizes["settled"] for size in sizes.values()), sizes
        drawn, shown, density = dash_duo.driver.execute_script(GL_DENSITY)
        assert abs(drawn - shown * density) < 1, (drawn, shown, density)  # WebGL at the screen's density, not twice

        dash_duo.driver.get(dash_duo.server_url + "/?view=sentence&layer=2&head=5&method=pca&text=3&pos=4")
        wait_until(lambda: len(traces(dash_duo, "sentence-graph") or []) > 2, timeout=60, what="the sentence drawn")
        short_px = dash_duo.driver.execute_script(LABEL_PX)
        assert len(set(short_px)) == 1 and short_px[0] > LABEL_PX_RANGE[1], short_px  # grown to the rows' room
        for graph in ("sentence-graph", "aggregate-graph"):  # titles and colour bars clear of the toolbar
            found = boxes(dash_duo, [f"#{graph}", f"#{graph} .gtitle", f"#{graph} .modebar", f"#{graph} .colorbar"])
            assert_title_inside(dash_duo, graph)
            for part in (".gtitle", ".colorbar"):
                assert not found[f"#{graph} {part}"] or apart(found[f"#{graph} {part}"], found[f"#{graph} .modebar"])

        # the corpus's longest text (47 tokens): every token's label clear of the next, its title cut at a word
        dash_duo.driver.get(dash_duo.server_url + "/?view=sentence&layer=2&head=5&method=pca&text=615")
        wait_until(lambda: {n: c for _t, n, c in traces(dash_duo, "sentence-graph") or []}.get("queries") == 47,
                   timeout=60, what="the long text drawn")
        labels = dash_duo.driver.execute_script(LABEL_BOXES, "sentence-graph")
        assert len(labels) == 2 * 47 and overlapping_share(np.array([box for _t, box in labels])) == 0, labels
        long_px[width] = set(dash_duo.driver.execute_script(LABEL_PX))
        assert_title_inside(dash_duo, "sentence-graph", wrapped=True)
        assert dash_duo.driver.execute_script(
            "return document.querySelector('#sentence-graph .js-plotly-plot').layout.title.text").endswith("forest…")

        # the image view's title, long enough to wrap (weighted by value norms), inside its graph
        dash_duo.driver.get(dash_duo.server_url + "/?view=sentence&model=tiny-vit&corpus=images&method=pca&text=40"
                                                  "&pos=28&weight=value")
        wait_until(lambda: [t for t, _n, _c in traces(dash_duo, "sentence-graph") or []] == ["image", "heatmap"],
                   timeout=120, what="the image drawn")
        assert_title_inside(dash_duo, "sentence-graph", wrapped=True)

        dash_duo.driver.get(dash_duo.server_url + "/?view=matrix&method=pca")
        dash_duo.wait_for_contains_text("#matrix-status", "72/72 heads", timeout=240)
        assert_fits(dash_duo, "matrix-graph")
    assert max(long_px[1366]) < min(long_px[1920]), long_px  # a taller picture, larger labels (still apart)


def assert_title_inside(dash_duo, graph: str, wrapped: bool = False) -> None:
    """The graph is on screen and its title lies inside it (a wrapped one too: Plotly places it differently from
    one line), clear of the toolbar."""
    found = boxes(dash_duo, [f"#{graph}", f"#{graph} .main-svg", f"#{graph} .gtitle", f"#{graph} .modebar"])
    title, svg = found[f"#{graph} .gtitle"], found[f"#{graph} .main-svg"]
    assert on_screen(found, f"#{graph}") and title, found
    lines = dash_duo.driver.execute_script("return document.querySelectorAll(arguments[0]).length",
                                           f"#{graph} .gtitle tspan.line")
    assert lines >= 2 if wrapped else lines <= 1, lines
    assert svg[0] <= title[0] and svg[1] + 1 <= title[1] and title[2] <= svg[2] and title[3] <= svg[3], found
    assert apart(title, found[f"#{graph} .modebar"]), found
