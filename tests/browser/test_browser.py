"""The dashboard in headless Chromium (dash_duo): URL state, heading, WebGL points drawn, hover, notices."""

from __future__ import annotations

import time

import numpy as np
import pytest
from selenium.webdriver.common.by import By

from dashboard import jobs
from dashboard.figures import single
from dashboard.figures.single import KEY_COLOR, QUERY_COLOR
from dashboard.shell.widgets import IMAGE_SEARCH_HINT
from dashboard.views.sentence import WEIGHT_NAMES
from tests.support.browser import (
    HOVERED,
    LABEL_BOXES,
    LINES_SETTLED,
    colour_pixels,
    gl_labels,
    is_visible,
    isolated_point,
    mouse_to_point,
    overlapping_share,
    set_viewport,
    traces,
    wait_for_points,
    wait_until,
)
from workers.contracts.requests import HeadRequest
from workers.core import metrics

pytestmark = pytest.mark.browser
BLOT_SHARE = 0.1  # at most this share of the labels drawn in full colour may touch another one
RELATED_NAMES = "return Array.from(document.querySelectorAll('#related-heads a.related-head')).map(a => a.textContent)"


@pytest.fixture
def app(extracted_cache):
    """The app over a store with the default corpus extracted (its pictures are computed by the test)."""
    from dashboard.app import create_app

    app = create_app(cache_dir=extracted_cache)
    yield app
    app.local_worker.stop()


@pytest.fixture
def cold_app(isolated_cache):
    """The app over an empty store: the first view loads the model and extracts."""
    from dashboard.app import create_app

    app = create_app(cache_dir=isolated_cache)
    yield app
    app.local_worker.stop()


def test_url_opens_the_chosen_head_and_webgl_draws_its_points(dash_duo, cold_app):
    dash_duo.start_server(cold_app)
    dash_duo.driver.get(dash_duo.server_url + "/?layer=2&head=5&method=pca")
    # progress shows while the worker loads the model and extracts
    wait_until(lambda: is_visible(dash_duo, "#progress-wrap"), timeout=30, interval=0.05)
    dash_duo.wait_for_text_to_equal("#view-heading", "L2 H5", timeout=30)
    data = wait_for_points(dash_duo)
    assert data[0][2] == data[1][2] >= 10_000  # one query and one key per token of the default corpus
    dash_duo.wait_for_contains_text("#view-status", "points", timeout=30)
    dash_duo.wait_for_contains_text("#view-fidelity", "of queries have their most-attended key", timeout=30)
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
    dash_duo.find_element("#dims-radio .form-check:nth-child(2) input").click()
    wait_until(lambda: "dims=3" in dash_duo.driver.current_url, timeout=20)
    wait_for_points(dash_duo, trace_type="scatter3d")
    dash_duo.find_element("#next-head").click()  # step buttons move to the neighbouring head
    dash_duo.wait_for_text_to_equal("#view-heading", "L1 H3", timeout=20)
    assert "head=3" in dash_duo.driver.current_url
    # reload keeps the view
    dash_duo.driver.refresh()
    dash_duo.wait_for_text_to_equal("#view-heading", "L1 H3", timeout=30)
    wait_for_points(dash_duo, trace_type="scatter3d")
    # back and forward move through views
    dash_duo.driver.back()
    dash_duo.wait_for_text_to_equal("#view-heading", "L1 H2", timeout=30)
    dash_duo.driver.forward()
    dash_duo.wait_for_text_to_equal("#view-heading", "L1 H3", timeout=30)


def largest_response(dash_duo) -> int:
    """Bytes of the largest Dash callback response since the last clearResourceTimings()."""
    return dash_duo.driver.execute_script(
        "return Math.max(0, ...performance.getEntriesByType('resource')"
        ".filter(e => e.name.includes('_dash-update-component')).map(e => e.encodedBodySize))")


def test_hover_shows_the_sentence_and_click_selects_its_text(dash_duo, app):
    dash_duo.start_server(app)
    dash_duo.driver.get(dash_duo.server_url + "/?layer=0&head=0")
    wait_for_points(dash_duo)
    time.sleep(0.5)
    key = isolated_point(dash_duo, "single-graph", 1, list(range(0, 12_000, 40)))  # a key with no close neighbour
    mouse_to_point(dash_duo, "single-graph", 1, key)  # a real mouse move over it
    curve, index, position = wait_until(lambda: dash_duo.driver.execute_script(HOVERED, "single-graph"), timeout=10)
    keys = jobs.cached_keys(HeadRequest(layer=0, head=0), jobs.store())
    label = str(jobs.tokens_table(keys["tokens"])["label"][index])  # the token as it reads, no word-piece mark
    assert jobs.tokens_table(keys["tokens"])["position"][index] == position  # the tooltip shows the position
    role = "query" if curve == 0 else "key"
    dash_duo.wait_for_contains_text("#hover-panel", f"({role}, position {position})", timeout=20)
    panel = dash_duo.find_element("#hover-panel")
    assert panel.find_element(By.CSS_SELECTOR, "mark").text == label
    assert len(panel.text.split()) > 4  # the whole sentence is shown
    # a click selects the text: URL, summary line, highlighted points and attention lines
    full_draw = largest_response(dash_duo)
    dash_duo.driver.execute_script("performance.clearResourceTimings()")
    mouse_to_point(dash_duo, "single-graph", curve, index, click=True)
    wait_until(lambda: f"pos={position}" in dash_duo.driver.current_url, timeout=20)
    dash_duo.wait_for_contains_text("#selection-summary", "Selected text", timeout=20)
    # the lines come from the head's attention job, which the picture submits once it is stored: it may still run
    wait_until(lambda: any(name.startswith("attention") for _t, name, _n in traces(dash_duo, "single-graph")),
               timeout=60, what="the attention lines drawn")
    assert "selected text (queries)" in [name for _t, name, _n in traces(dash_duo, "single-graph")]
    assert [n for _t, n, _c in traces(dash_duo, "single-graph")][:2] == ["queries", "keys"]
    # the selection travels as a Patch of the overlays: the 12k-point base traces are not sent again
    assert full_draw > 100_000 and largest_response(dash_duo) < full_draw / 10
    dash_duo.find_element("#clear-selection").click()
    wait_until(lambda: "text=" not in dash_duo.driver.current_url, timeout=20)
    wait_until(lambda: "selected text (queries)" not in [n for _t, n, _c in traces(dash_duo, "single-graph")])
    # select again, then a click on empty space (the plot's bottom-right corner) clears it too
    mouse_to_point(dash_duo, "single-graph", curve, index, click=True)
    wait_until(lambda: "text=" in dash_duo.driver.current_url, timeout=20)
    # once drawn: the selection's legend entries take a second legend row, which moves the plot's corner up
    wait_until(lambda: any(name.startswith("attention") for _t, name, _n in traces(dash_duo, "single-graph")),
               timeout=20, what="the selection drawn again")
    mouse_to_point(dash_duo, "single-graph", None, -4, click=True, y=-4)  # the plot's bottom-right corner
    wait_until(lambda: "text=" not in dash_duo.driver.current_url, timeout=20)


def test_search_highlights_and_counts_and_labels_never_blot_the_picture(dash_duo, app, monkeypatch):
    dash_duo.start_server(app)
    dash_duo.driver.get(dash_duo.server_url + "/?layer=3&head=1&search=The")
    dash_duo.wait_for_contains_text("#search-count", "match 'The'", timeout=60)
    count = int(dash_duo.find_element("#search-count").text.split()[0].replace(",", ""))
    matches = {name: n for _t, name, n in traces(dash_duo, "single-graph")}
    assert matches["match (queries)"] == matches["match (keys)"] == count > 300  # case-insensitive: 'the', 'The'
    field = dash_duo.find_element("#search-input")
    field.clear()
    field.send_keys("cat")  # no Enter: the search follows the typing once it pauses
    dash_duo.wait_for_contains_text("#search-count", "match 'cat'", timeout=30)
    wait_until(lambda: "search=cat" in dash_duo.driver.current_url, timeout=10)

    # token labels with a search, as drawn: the labels in full colour (those that could pile into a dark blot) stay
    # few and apart, for a frequent token (its matches unlabelled) and one with a few dozen matches (labelled);
    # the sample's labels are faint. With the limits off, the same measure finds the blot.
    tokens = jobs.tokens_table(jobs.cached_keys(HeadRequest(layer=3, head=1), jobs.store())["tokens"])
    labels = single.token_labels(tokens)
    words = {str(word).lower() for word in labels if str(word).isalpha()}
    counts = {word: int(metrics.search_matches(labels, word).sum()) for word in words}
    few = max((w for w, c in counts.items() if c <= single.MATCH_LABELS), key=counts.get)
    assert counts["the"] > single.MATCH_LABELS and counts[few] >= 20, (counts["the"], few, counts[few])

    def solid_labels(word: str) -> np.ndarray:
        dash_duo.driver.get(dash_duo.server_url + f"/?layer=3&head=1&labels=1&search={word}")
        dash_duo.wait_for_contains_text("#search-count", f"{counts[word]:,} tokens match '{word}'", timeout=30)
        wait_until(lambda: dash_duo.driver.execute_script(LINES_SETTLED), 180, what="the lines above settled")
        seen: list[np.ndarray] = []

        def settled():  # drawn, and the same twice in a row (the picture resizes as the lines above it arrive)
            seen.append(gl_labels(dash_duo, "single-graph"))
            return len(seen) > 1 and len(seen[-1]) and np.array_equal(seen[-1], seen[-2])

        wait_until(settled, timeout=30, interval=0.5, what="the labels drawn")
        found = seen[-1]
        assert (found[:, 0] < 0.5).sum() <= 2 * single.LABEL_SAMPLE  # the sample's labels: faint, at most its size
        return found[found[:, 0] >= 0.5, 1:]

    for word in ("the", few):
        solid = solid_labels(word)
        assert len(solid) <= 2 * single.MATCH_LABELS and overlapping_share(solid) <= BLOT_SHARE, (word, len(solid))
    assert len(solid) >= 5  # the few dozen matches do carry labels (those clear of each other and of other matches)
    limit = single.MATCH_LABELS
    monkeypatch.setattr(single, "MATCH_LABELS", 10**9)  # every match labelled, piles and all
    monkeypatch.setattr(single, "_labels_apart",  # every label written, on top of each other or not
                        lambda data, style, rows, *_a, **_k: {role: np.ones(len(rows), dtype=bool)
                                                              for role in ("query", "key")})
    blot = solid_labels("the")
    assert len(blot) > 2 * limit and overlapping_share(blot) > BLOT_SHARE, (len(blot), overlapping_share(blot))


def test_matrix_fills_in_and_a_click_opens_the_head(dash_duo, app):
    from flask import request

    figures_sent = []  # the matrix drawings answered, by size

    @app.server.after_request
    def count(response):
        asked = request.get_data(as_text=True)[:300] if request.path.endswith("_dash-update-component") else ""
        if "matrix-graph.figure" in asked:
            figures_sent.append(response.calculate_content_length() or 0)
        return response

    dash_duo.start_server(app)
    dash_duo.driver.get(dash_duo.server_url + "/?view=matrix&method=pca")
    dash_duo.wait_for_text_to_equal("#view-heading", "All heads · 6 layers x 12 heads", timeout=30)
    dash_duo.wait_for_contains_text("#matrix-status", "72/72 heads", timeout=120)
    wait_until(lambda: not is_visible(dash_duo, "#matrix-progress"), timeout=10, what="the full bar gone")
    data = wait_for_points(dash_duo, "matrix-graph")
    assert data[0][2] == data[1][2] == 72 * 2000  # ONE figure, one trace per role, every head tiled
    figures_sent.clear()  # opened again with every head stored: drawn once, the poll never sends it twice
    dash_duo.driver.get(dash_duo.server_url + "/?view=matrix&method=pca")
    wait_for_points(dash_duo, "matrix-graph")
    time.sleep(4)  # four poll periods
    assert len([size for size in figures_sent if size > 100_000]) == 1, figures_sent
    time.sleep(1.0)
    png = dash_duo.find_element("#matrix-graph").screenshot_as_png
    assert colour_pixels(png, QUERY_COLOR) > 2000 and colour_pixels(png, KEY_COLOR) > 2000
    cell = 30000 // 2000  # the 16th cell in layer-major order: L1 H3
    point = isolated_point(dash_duo, "matrix-graph", 0, list(range(30000, 32000, 10)))  # one of its points
    mouse_to_point(dash_duo, "matrix-graph", 0, point, click=True)
    dash_duo.wait_for_text_to_equal("#view-heading", f"L{cell // 12} H{cell % 12}", timeout=30)
    assert "view=single" in dash_duo.driver.current_url


def test_sentence_view_draws_lines_and_hides_special_tokens(dash_duo, app):
    dash_duo.start_server(app)
    dash_duo.driver.get(dash_duo.server_url + "/?view=sentence&layer=2&head=5&text=3")
    wait_until(lambda: any(n == "queries" for _t, n, _c in traces(dash_duo, "sentence-graph") or []), timeout=60)
    counts = {name: n for _t, name, n in traces(dash_duo, "sentence-graph")}
    assert counts["queries"] == counts["keys"] == 7  # [CLS] snow fell all night . [SEP]
    assert traces(dash_duo, "aggregate-graph")[0][0] == "heatmap"
    assert dash_duo.find_element("#sentence-weight-label").text == "Lines show"  # a text's controls, upload too
    assert is_visible(dash_duo, "#corpus-upload-box") and is_visible(dash_duo, "#hide-special-box")
    dash_duo.find_element("#hide-special-switch").click()
    wait_until(lambda: {n: c for _t, n, c in traces(dash_duo, "sentence-graph")}.get("queries") == 5, timeout=20)
    title = "return document.querySelector('#sentence-graph .js-plotly-plot').layout.title.text"
    assert "‖v‖" not in dash_duo.driver.execute_script(title)
    dash_duo.driver.find_element(By.XPATH, "//label[contains(., 'attention × value norm')]").click()
    wait_until(lambda: "weight=value" in dash_duo.driver.current_url, timeout=20)
    wait_until(lambda: "attention × ‖v‖" in (dash_duo.driver.execute_script(title) or ""), timeout=30)


def test_bad_url_values_fall_back_with_a_notice_and_markup_stays_text(dash_duo, app):
    dash_duo.start_server(app)
    injected = "%3Cimg%20src%3Dx%20onerror%3Dwindow.pwned%3D1%3E"
    dash_duo.driver.get(dash_duo.server_url + f"/?layer=99&head=3&model={injected}&search={injected}")
    dash_duo.wait_for_text_to_equal("#view-heading", "L0 H3", timeout=30)
    dash_duo.wait_for_contains_text("#notices", "2 notices: ", timeout=10)  # one line, the rest on a click
    notices = dash_duo.find_element("#notices")
    assert notices.size["height"] < 48, notices.size
    dash_duo.find_element("#notices-more summary").click()
    dash_duo.wait_for_contains_text("#notices", "Layer '99' is not in 0..5", timeout=10)
    assert "<img src=x" in notices.text
    wait_for_points(dash_duo)
    dash_duo.wait_for_contains_text("#search-count", "match", timeout=30)
    assert dash_duo.driver.execute_script("return window.pwned === undefined")


def test_image_view_shows_the_patch_attention(dash_duo, app):
    """The bundled tiny-vit on the bundled images: a held-out digit, the chosen patch outlined, its attention as a
    heatmap over the image; clicking another patch selects it."""
    dash_duo.start_server(app)
    dash_duo.driver.get(dash_duo.server_url + "/?view=sentence&model=tiny-vit&corpus=images&layer=0&head=2"
                                              "&text=40&pos=28")
    wait_until(lambda: [t for t, _n, _c in traces(dash_duo, "sentence-graph") or []] == ["image", "heatmap"],
               timeout=90)
    shapes = dash_duo.driver.execute_script(
        "return document.querySelector('#sentence-graph .js-plotly-plot').layout.shapes.length")
    assert shapes == 1  # the selected patch is outlined
    dash_duo.wait_for_contains_text("#sentence-graph", "patch r3 c3", timeout=10)  # position 28 = 1 + 3 * 8 + 3
    assert "digit 2 #" in dash_duo.find_element("#sentence-graph").text
    assert "tiny-vit (vit, 4x4)" in dash_duo.find_element("#model-dropdown").text
    # only what means something for an image: no special-token switch (the heatmap leaves CLS out), no text upload,
    # the weighting named for the heatmap (and it weighs it), a patch as the search example
    assert not is_visible(dash_duo, "#hide-special-box") and not is_visible(dash_duo, "#corpus-upload-box")
    assert dash_duo.find_element("#sentence-weight-label").text == "Heatmap shows"
    assert dash_duo.find_element("#sentence-weight-box").get_attribute("title") == WEIGHT_NAMES["image"][1]
    assert dash_duo.find_element("#search-input").get_attribute("placeholder") == IMAGE_SEARCH_HINT
    dash_duo.driver.find_element(By.XPATH, "//label[contains(., 'attention × value norm')]").click()
    dash_duo.wait_for_contains_text("#sentence-graph", "attention × ‖v‖", timeout=30)
    assert "weight=value" in dash_duo.driver.current_url
    mouse_to_point(dash_duo, "sentence-graph", 1, 5, click=True)  # the heatmap cell at row 5, column 5
    dash_duo.wait_for_contains_text("#sentence-graph", "patch r5 c5", timeout=30)
    assert "pos=46" in dash_duo.driver.current_url and "text=40" in dash_duo.driver.current_url


def test_copy_link_sentence_hover_and_image_format(dash_duo, app):
    dash_duo.start_server(app)
    url = dash_duo.server_url + "/?view=sentence&layer=2&head=5&text=3"
    dash_duo.driver.get(url)
    wait_until(lambda: {n: c for _t, n, c in traces(dash_duo, "sentence-graph") or []}.get("queries") == 7, timeout=60)
    lines = lambda: sum(c for t, n, c in traces(dash_duo, "sentence-graph") if n is None or n.startswith("trace"))  # noqa: E731
    all_lines = lines()
    mouse_to_point(dash_duo, "sentence-graph", len(traces(dash_duo, "sentence-graph")) - 2, 1)  # the query 'snow'
    wait_until(lambda: lines() < all_lines, timeout=20)  # hovering a query isolates its lines
    # the camera button saves SVG once chosen
    svg_choice = dash_duo.find_element("#image-format .form-check:nth-child(2) input")
    # a DOM click: at the sidebar's foot the real pointer can land on whatever a late layout shift put there
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();",
                                   svg_choice)
    wait_until(lambda: dash_duo.driver.execute_script(
        "return document.querySelector('#single-graph .js-plotly-plot')._context.toImageButtonOptions.format")
        == "svg", timeout=20)
    # "Copy link" puts this very URL on the clipboard
    dash_duo.driver.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": dash_duo.server_url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    dash_duo.find_element("#copy-link").click()
    copied = wait_until(lambda: dash_duo.driver.execute_async_script(
        "var done = arguments[0]; navigator.clipboard.readText().then(done, () => done(''));"), timeout=20)
    assert copied == dash_duo.driver.current_url and "text=3" in copied


MARKUP_TEXTS = ['<img src=x onerror="window.__pwned=1"> appears in this text.',
                "<script>window.__pwned=2</script> is written here as plain words.",
                '<b>bold</b> and <a href="javascript:window.__pwned=3">a link</a> stay text.',
                *[f"An ordinary sentence number {i} about rivers and hills." for i in range(20)]]


def test_markup_in_the_corpus_is_shown_as_text_everywhere(dash_duo, isolated_cache, tmp_path, monkeypatch):
    corpus = tmp_path / "markup.txt"
    corpus.write_text("\n".join(MARKUP_TEXTS))
    monkeypatch.setenv("QK_ATLAS_CORPORA", f"markup={corpus}")
    from dashboard.app import create_app

    app = create_app(cache_dir=isolated_cache)
    try:
        dash_duo.start_server(app)
        dash_duo.driver.get(dash_duo.server_url + "/?corpus=markup&layer=0&head=0&labels=1&search=%3C&text=0&pos=1")
        dash_duo.wait_for_contains_text("#selection-summary", "<img src=x", timeout=90)  # literal, not an image
        wait_for_points(dash_duo)
        tokens = jobs.tokens_table(jobs.cached_keys(HeadRequest(corpus="markup"), jobs.store())["tokens"])
        opening = [i for i in range(len(tokens["token"])) if tokens["token"][i] == "<" and tokens["text_id"][i] < 3]
        query = isolated_point(dash_duo, "single-graph", 0, opening)  # a query of '<' with no close neighbour
        mouse_to_point(dash_duo, "single-graph", 0, query)
        dash_duo.wait_for_contains_text("#hover-panel", f"< (query, position {tokens['position'][query]})", timeout=20)
        assert "window" in dash_duo.find_element("#hover-panel").text
        time.sleep(1)
        labels = dash_duo.driver.execute_script(  # WebGL text is drawn as given: the raw characters, no entity
            "var gd = document.querySelector('#single-graph .js-plotly-plot');"
            "return gd.data.filter(t => t.name.endsWith('labels') || t.name.startsWith('match'))"
            ".flatMap(t => Array.from(t.text));")  # the sample's labels, and the matches' own (they skip each other)
        # labels are written only where they meet no other; the searched '<' is among those written, and every
        # written label is the raw characters (never an entity such as &lt;)
        written = {label for label in labels if label.strip()}
        assert "<" in written and not any("&" in label for label in written)
        assert written <= {str(label) for label in tokens["label"]}
        dash_duo.driver.get(dash_duo.server_url + "/?view=sentence&corpus=markup&layer=0&head=0&text=2")
        wait_until(lambda: any(n == "queries" for _t, n, _c in traces(dash_duo, "sentence-graph") or []),
                   timeout=60)
        words = dash_duo.driver.execute_script(
            "return [...document.querySelectorAll('#sentence-graph text')].map(t => t.textContent)")
        assert "<" in words and "bold" in words  # SVG text: escaped for Plotly, shown as the characters
        page = dash_duo.driver.execute_script(
            "return {pwned: window.__pwned, images: document.querySelectorAll('img[src=\"x\"]').length,"
            " bold: document.querySelectorAll('#single-graph b, #sentence-graph b').length,"
            " links: document.querySelectorAll('a[href^=\"javascript\"]').length}")
        assert page == {"pwned": None, "images": 0, "bold": 0, "links": 0}
    finally:
        app.local_worker.stop()


def test_uploading_a_corpus_switches_the_view_to_it(dash_duo, app, tmp_path):
    path = tmp_path / "my corpus.txt"
    texts = 300  # enough that its view takes seconds: the previous picture must not stay meanwhile
    path.write_text("\n".join(f"Uploaded sentence {i} mentions a lighthouse by the shore." for i in range(texts)))
    bad = tmp_path / "binary.txt"
    bad.write_bytes(b"\x00\x01\x02")
    dash_duo.start_server(app)
    dash_duo.driver.get(dash_duo.server_url + "/?layer=1&head=2&method=pca")
    before = wait_for_points(dash_duo, timeout=240)[0][2]  # the default corpus's picture: not to outstay its heading
    upload = dash_duo.wait_for_element("#corpus-upload input[type=file]", timeout=30)
    upload.send_keys(str(bad))
    dash_duo.wait_for_contains_text("#upload-notice", "Upload refused: corpus file binary.txt looks binary", timeout=20)
    upload = dash_duo.find_element("#corpus-upload input[type=file]")
    upload.send_keys(str(path))
    dash_duo.wait_for_contains_text("#upload-notice", f"Uploaded my corpus.txt: {texts:,} texts", timeout=20)
    wait_until(lambda: "corpus=upload-" in dash_duo.driver.current_url, timeout=20)
    dash_duo.wait_for_contains_text("#view-subheading", "corpus my corpus.txt (uploaded)", timeout=20)  # its name
    renamed, stale, placeholder = time.monotonic(), [0.0], []

    def uploaded_view_drawn() -> bool:
        counts = [n for kind, _name, n in traces(dash_duo, "single-graph") or [] if kind == "scattergl"]
        if counts and counts[0] == before:  # the default corpus's points, under the uploaded corpus's heading
            stale.append(time.monotonic() - renamed)
        placeholder.extend([True] if not counts else [])  # "Computing …" while the workers run the new corpus
        return bool(counts) and counts[0] != before

    wait_until(uploaded_view_drawn, timeout=120, interval=0.1, what="the uploaded corpus's points")
    assert placeholder and max(stale) < 2.0, f"the previous picture stayed {max(stale):.1f} s under the new heading"
    try:
        dash_duo.wait_for_contains_text("#view-status", f"from {texts:,} texts", timeout=120)
    except Exception as exc:  # say what the page and the workers were doing
        raise AssertionError(f"the uploaded corpus's view did not come: {_worker_report(dash_duo)}") from exc
    tokens = jobs.tokens_table(jobs.cached_keys(HeadRequest(corpus=dash_duo.driver.current_url.split("corpus=")[1]
                                                            .split("&")[0], layer=1, head=2, method="pca"),
                                                jobs.store())["tokens"])
    assert wait_for_points(dash_duo)[0][2] == len(tokens["token"]) and set(tokens["text_id"]) == set(range(texts))
    shared = dash_duo.driver.current_url
    dash_duo.driver.get(shared)  # the link opens the same corpus
    dash_duo.wait_for_contains_text("#view-status", f"from {texts:,} texts", timeout=60)
    assert f"my corpus.txt (uploaded, {texts:,} texts)" in dash_duo.find_element("#corpus-dropdown").text
    huge = tmp_path / "huge.txt"
    huge.write_bytes(b"a line of text\n" * 1_400_000)  # 21 MB: the box refuses it before any byte is sent
    dash_duo.find_element("#corpus-upload input[type=file]").send_keys(str(huge))
    dash_duo.wait_for_contains_text("#upload-notice", "huge.txt is 21.0 MB, over the limit of 20 MB", timeout=20)


def _worker_report(dash_duo) -> str:
    """The page's progress line, every job record and the local workers' heartbeats (for a failure message)."""
    from workers.runtime import local_queue

    store = jobs.store()
    records = {str(k): store.get_json(k) for k in store.cache.iterkeys() if str(k).startswith(("job:", "lock:"))
               and not str(k).startswith("lock:")}
    locks = {str(k): store.cache.get(k) for k in store.cache.iterkeys() if str(k).startswith("lock:")}
    return (f"progress {dash_duo.find_element('#progress-text').text!r}; url {dash_duo.driver.current_url}; "
            f"jobs {records}; locks {locks}; heartbeats {local_queue._beats(store)}")


def choose_matrix_values(dash_duo, dropdown: str, label: str, in_url: str, in_status: str) -> None:
    """Pick per-head values in a matrix dropdown; wait for the URL, the status line and every head's value."""
    dash_duo.select_dcc_dropdown(dropdown, label)
    wait_until(lambda: in_url in dash_duo.driver.current_url, timeout=20)
    dash_duo.wait_for_contains_text("#matrix-status", in_status, timeout=30)
    wait_until(lambda: "still being measured" not in dash_duo.find_element("#matrix-status").text, timeout=120)


def matrix_layout(dash_duo, expression: str):
    """A non-empty value computed from the matrix figure's layout (`expression` follows 'gd.layout.')."""
    script = f"var gd = document.querySelector('#matrix-graph .js-plotly-plot'); return gd.layout.{expression};"
    return wait_until(lambda: dash_duo.driver.execute_script(script), timeout=30)


def test_matrix_ranked_by_previous_token_attention(dash_duo, app):
    dash_duo.start_server(app)
    dash_duo.driver.get(dash_duo.server_url + "/?view=matrix&method=pca")
    dash_duo.wait_for_contains_text("#matrix-status", "72/72 heads", timeout=120)
    choose_matrix_values(dash_duo, "#matrix-order", "attention to the previous token (ranked)", "order=prev_token",
                         "ranked by attention to the previous token")
    labels = matrix_layout(dash_duo, "annotations.map(a => a.text).filter(t => t.includes(' · '))")
    values = [float(label.split(" · ")[1]) for label in labels]
    assert len(labels) == 72 and values == sorted(values, reverse=True)  # slot order = rank order
    layer, head = (int(n) for n in labels[0].split(" · ")[0][1:].split("H"))  # the top head, e.g. 'L0H2'
    assert dash_duo.driver.execute_script(  # its points are drawn in the first slot, top left
        "var gd = document.querySelector('#matrix-graph .js-plotly-plot'); var i = arguments[0];"
        "return [gd._fullData[0].x[i], gd._fullData[0].y[i]];", (12 * layer + head) * 2000 + 10)[1] > 5 * 1180
    # keep the heads above a clear gap in the (rounded) labels, so the rounding cannot blur the expected count
    gap = next(i for i in range(1, 71) if values[i] - values[i + 1] >= 0.02)
    keep, expected = round((values[gap] + values[gap + 1]) / 2, 3), gap + 1
    dash_duo.find_element("#matrix-keep").send_keys(f"{keep}\n")
    wait_until(lambda: f"keep={keep}" in dash_duo.driver.current_url, timeout=20)
    dash_duo.wait_for_contains_text("#matrix-status", f"{expected} of 72 heads at or above {keep}", timeout=30)
    shown = sorted(tuple(int(n) for n in label.split(" · ")[0][1:].split("H")) for label in labels[:expected])
    wait_until(lambda: traces(dash_duo, "matrix-graph")[0][2] == expected * 2000, timeout=30)  # only those drawn
    choose_matrix_values(dash_duo, "#matrix-tint", "fidelity of the cell's picture: top-1-in-3", "tint=fidelity",
                         "cell colour: fidelity of the cell's picture")
    fills = matrix_layout(dash_duo, "shapes.map(s => s.fillcolor).filter(f => f.endsWith(',0.28)'))")
    assert len(fills) == expected and len(set(fills)) > 1  # every kept cell tinted by its own value
    assert dash_duo.driver.find_elements(By.CSS_SELECTOR, "#matrix-graph .colorbar")  # the scale is drawn
    mouse_to_point(dash_duo, "matrix-graph", 0, shown.index((layer, head)) * 2000 + 10, click=True)
    dash_duo.wait_for_text_to_equal("#view-heading", f"L{layer} H{head}", timeout=30)


def wait_for_ringed(dash_duo, current: str) -> None:
    """Wait until the head map's last trace rings `current` (e.g. 'L2H5')."""
    ringed = [f"{current} (current)"]
    wait_until(lambda: [name for _t, name, _n in traces(dash_duo, "headmap-graph") or []][-1:] == ringed,
               timeout=60, what=f"{current} ringed")


def assert_head_labels_apart(dash_duo, current: str) -> None:
    """The head map names at least 12 heads, the current one among them, and no two names overlap on the page."""
    labels = dash_duo.driver.execute_script(LABEL_BOXES, "headmap-graph")
    assert 12 <= len(labels) < 72 and current in [name for name, _box in labels]  # the current head named
    for i, (name, box) in enumerate(labels):  # no two labels overlap (the rest are named on hover)
        for other, box2 in labels[i + 1:]:
            assert box[2] <= box2[0] or box2[2] <= box[0] or box[3] <= box2[1] or box2[3] <= box[1], (name, other)


def test_head_map_places_every_head_and_related_heads_link_to_each_other(dash_duo, app):
    dash_duo.start_server(app)
    dash_duo.driver.get(dash_duo.server_url + "/?view=headmap&layer=0&head=2")
    dash_duo.wait_for_text_to_equal("#view-heading", "Head map · 72 heads", timeout=30)
    dash_duo.wait_for_contains_text("#headmap-status", "72 heads · distance", timeout=240)  # after the extraction
    drawn = wait_until(lambda: traces(dash_duo, "headmap-graph"), timeout=30)
    assert [name for _type, name, _n in drawn] == ["most alike heads", "heads", "L0H2 (current)"]
    assert drawn[1][2] == 72 and drawn[0][2] == 3 * 5  # a line (two ends and a gap) to each of 5 related heads
    assert_head_labels_apart(dash_duo, "L0H2")
    set_viewport(dash_duo.driver, 1366, 768)  # the smallest window, and a head in the crowded cluster
    dash_duo.driver.get(dash_duo.server_url + "/?view=headmap&layer=2&head=5")
    wait_for_ringed(dash_duo, "L2H5")
    assert_head_labels_apart(dash_duo, "L2H5")
    dash_duo.driver.get(dash_duo.server_url + "/?view=headmap&layer=0&head=2")
    wait_for_ringed(dash_duo, "L0H2")
    mouse_to_point(dash_duo, "headmap-graph", 1, 2, click=True)  # L0H2: the heads are in layer-major order
    dash_duo.wait_for_text_to_equal("#view-heading", "L0 H2", timeout=30)
    assert "view=single" in dash_duo.driver.current_url
    wait_for_points(dash_duo)
    # read and click in the page itself: the line is drawn again each second while the fidelity is measured
    names = wait_until(lambda: dash_duo.driver.execute_script(RELATED_NAMES), timeout=120, what="related heads")
    assert len(names) == 5 and "Heads that attend most alike" in dash_duo.find_element("#related-heads").text
    first = names[0]  # e.g. 'L2H11'
    layer, head = (int(n) for n in first[1:].split("H"))
    dash_duo.driver.execute_script("document.querySelector('#related-heads a.related-head').click()")
    dash_duo.wait_for_text_to_equal("#view-heading", f"L{layer} H{head}", timeout=30)
    assert f"layer={layer}" in dash_duo.driver.current_url and f"head={head}" in dash_duo.driver.current_url
    wait_for_points(dash_duo)  # drawn: no background computation outlives the test


def test_side_by_side_links_the_selection_across_two_heads(dash_duo, app):
    dash_duo.start_server(app)
    dash_duo.driver.get(dash_duo.server_url + "/?view=compare&layer=0&head=2&b_layer=2&b_head=5")
    dash_duo.wait_for_text_to_equal("#view-heading", "Side by side", timeout=30)
    wait_for_points(dash_duo, "compare-a-graph", timeout=240)
    wait_for_points(dash_duo, "compare-b-graph", timeout=120)
    dash_duo.wait_for_text_to_equal("#compare-b-title", "B · minilm · corpus default · L2 H5", timeout=30)
    tokens = jobs.tokens_table(jobs.cached_keys(HeadRequest(layer=2, head=5), jobs.store())["tokens"])
    index = int(np.flatnonzero((tokens["text_id"] == 3) & (tokens["position"] == 2))[0])  # a token of text 3
    mouse_to_point(dash_duo, "compare-b-graph", 0, index, click=True)  # clicked in picture B
    wait_until(lambda: "text=" in dash_duo.driver.current_url, timeout=30)
    assert "pos=" in dash_duo.driver.current_url  # a token of picture B, selected in A's terms
    for graph in ("compare-a-graph", "compare-b-graph"):  # both pictures outline the selected text
        wait_until(lambda g=graph: any(name.startswith("selected text") for _t, name, _n in traces(dash_duo, g)),
                   timeout=30)
    dash_duo.select_dcc_dropdown("#b-head", "7")
    wait_until(lambda: "b_head=7" in dash_duo.driver.current_url, timeout=20)
    dash_duo.wait_for_text_to_equal("#compare-b-title", "B · minilm · corpus default · L2 H7", timeout=120)
    wait_for_points(dash_duo, "compare-b-graph", timeout=120)
    dash_duo.driver.find_element(By.XPATH, "//label[contains(., 'value vectors')]").click()  # B: L2 H7's values
    wait_until(lambda: "b_vectors=v" in dash_duo.driver.current_url, timeout=20)
    dash_duo.wait_for_text_to_equal("#compare-b-title", "B · minilm · corpus default · L2 H7 · value vectors",
                                    timeout=120)
    drawn = wait_until(lambda: {name: n for _t, name, n in traces(dash_duo, "compare-b-graph") or []}, timeout=60)
    assert drawn["value vectors"] == len(tokens["token"])  # one point per token
    assert drawn["selected text (values)"] == int((tokens["text_id"] == int(
        dash_duo.driver.current_url.split("text=")[1].split("&")[0])).sum())  # the selection carried over


def test_tiny_gpt_from_the_model_menu_and_the_attention_layout_from_the_projection_menu(dash_duo, app):
    """The bundled causal model is one choice in the model menu; the attention layout one in the projection menu;
    both land in the URL, and the view states how faithful the new picture is."""
    dash_duo.start_server(app)
    dash_duo.driver.get(dash_duo.server_url + "/?layer=1&head=3")
    dash_duo.wait_for_text_to_equal("#view-heading", "L1 H3", timeout=30)
    dash_duo.select_dcc_dropdown("#model-dropdown", "tiny-gpt (gpt2, 3x4)")
    wait_until(lambda: "model=tiny-gpt" in dash_duo.driver.current_url, timeout=20)
    dash_duo.wait_for_contains_text("#view-subheading", "tiny-gpt", timeout=30)
    wait_for_points(dash_duo)
    dash_duo.select_dcc_dropdown("#method-dropdown", "Attention layout")
    wait_until(lambda: "method=attention" in dash_duo.driver.current_url, timeout=20)
    dash_duo.wait_for_contains_text("#view-subheading", "Attention layout", timeout=30)
    dash_duo.wait_for_contains_text("#view-status", "points", timeout=120)
    data = wait_for_points(dash_duo)
    assert data[0][2] == data[1][2] > 5_000
    fidelity = dash_duo.wait_for_contains_text("#view-fidelity", "most-attended key", timeout=60) or \
        dash_duo.find_element("#view-fidelity").text
    picture_share = int(dash_duo.find_element("#view-fidelity").text.split("%")[0].split()[-1])
    assert picture_share >= 85, fidelity
    assert dash_duo.get_logs() == []
