"""Readable text and controls that say what they do, in headless Chromium: quotes, `&`, `<` and byte-level tokens
read as plain text in the sentence view, hover and labels; legends and notices in plain words; the colour menu by
the model's modality; search as you type; a tooltip on every control; picture A's and picture B's fidelity lines."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from dashboard import guard, ids, jobs
from dashboard.shell.widgets import SEARCH_HINT, TIPS
from tests.support.browser import isolated_point, mouse_to_point, traces, wait_for_points, wait_until
from workers.contracts.requests import HeadRequest

pytestmark = pytest.mark.browser

QUOTED = '"I think it\'s going to rain," said Nora & <b>Sam</b> agreed.'
TEXTS = [QUOTED, "A café line – with a dash, and a plain ending.",
         "The glimmering lighthouses flickered over the quaysides.",  # MiniLM: g ##lim ##mering, quay ##side ##s
         *[f"An ordinary sentence number {i} about rivers and hills." for i in range(20)]]
ENTITIES = ("&quot;", "&#", "&amp;", "&lt;", "&gt;")
MARKS = ("Ġ", "Ċ", "Ã")


@pytest.fixture
def readable_app(isolated_cache, minilm, tmp_path, monkeypatch):
    """The embedded app with a corpus of quotes, markup and non-ASCII text, and a tiny ViT beside the bundled
    models."""
    from dashboard.app import create_app
    from tests.support.tiny_models import save

    corpus = tmp_path / "readable.txt"
    corpus.write_text("\n".join(TEXTS), encoding="utf-8")
    monkeypatch.setenv("QK_ATLAS_CORPORA", f"readable={corpus}")
    monkeypatch.setenv("QK_ATLAS_MODELS", f"tiny-vit={save('vit', tmp_path / 'tiny-vit', minilm.tokenizer)}")
    app = create_app(cache_dir=isolated_cache)
    yield app
    app.local_worker.stop()


def script(dash_duo, code: str, *args):
    """The value of a script run in the page."""
    return dash_duo.driver.execute_script(code, *args)


OPEN_MENU = "return document.querySelector('.dash-dropdown-options') !== null"


def menu_options(dash_duo, selector: str) -> list[tuple[str, str]]:
    """(label, tooltip) of each option of a dropdown, read by opening it (closed again after)."""
    dash_duo.find_element(selector).click()
    dash_duo.wait_for_element(".dash-dropdown-options", timeout=10)
    options = script(dash_duo, "return [...document.querySelectorAll('.dash-dropdown-option')].map(o => "
                               "[o.textContent, (o.querySelector('[title]') || {}).title || ''])")
    ActionChains(dash_duo.driver).send_keys(Keys.ESCAPE).perform()
    if script(dash_duo, OPEN_MENU):
        dash_duo.find_element(selector).click()
    wait_until(lambda: not script(dash_duo, OPEN_MENU), timeout=10, what="the menu closed")
    return [tuple(option) for option in options]


HOVER_LABELS = """
window.__hovered = [];
new MutationObserver(function () {
  var h = document.querySelector('#' + arguments[0] + ' .hovertext');
  if (h) { window.__hovered.push(h.textContent); }
}.bind(null, arguments[0])).observe(document.getElementById(arguments[0]), {subtree: true, childList: true});
"""


def test_byte_level_text_reads_as_typed_in_the_sentence_view_hover_and_labels(dash_duo, readable_app):
    dash_duo.start_server(readable_app)
    dash_duo.driver.get(dash_duo.server_url + "/?model=tiny-gpt&corpus=readable&view=sentence&layer=0&head=0"
                                              "&text=0&color=row&pos=x")
    # an image-only colour on a text model: the default colour, and a notice in words (no internal -1)
    dash_duo.wait_for_contains_text("#notices", "applies to image models only; showing 'role'", timeout=30)
    dash_duo.find_element("#notices-more summary").click()  # two notices: the count opens the second
    dash_duo.wait_for_contains_text("#notices", "Token position 'x' is not in 0..127; no token selected", timeout=10)
    assert "-1" not in dash_duo.find_element("#notices").text
    wait_until(lambda: "color=role" in dash_duo.driver.current_url, timeout=20)
    wait_until(lambda: any(n == "queries" for _t, n, _c in traces(dash_duo, "sentence-graph") or []), timeout=120)
    title = script(dash_duo, "var t = document.querySelector('#sentence-graph .gtitle'), lines = t.querySelectorAll"
                             "('tspan.line'); return lines.length ? Array.from(lines).map(l => l.textContent)"
                             ".join(' ') : t.textContent")  # a long title wraps: its lines, read in order
    assert title == f"text 0: {QUOTED}"  # the quotes and markup as typed, no entity
    words = script(dash_duo, "return [...document.querySelectorAll('#sentence-graph .textpoint text')]"
                             ".map(t => t.textContent)")
    assert {'"', "&", "<", "rain", "said"} <= set(words), words
    assert not any(piece in word for word in words for piece in (*ENTITIES, *MARKS)), words
    queries = len(traces(dash_duo, "sentence-graph")) - 2
    script(dash_duo, HOVER_LABELS, "sentence-graph")  # Plotly's hover label, caught before a redraw can drop it
    mouse_to_point(dash_duo, "sentence-graph", queries, words.index("&"))  # the query '&' (the queries come first)
    hover = wait_until(lambda: script(dash_duo, "return window.__hovered[0]"), timeout=20)
    assert hover.startswith("query & · position") and not any(entity in hover for entity in ENTITIES)

    dash_duo.driver.get(dash_duo.server_url + "/?model=tiny-gpt&corpus=readable&layer=0&head=0&text=0&labels=1")
    wait_for_points(dash_duo)
    texts = "return document.querySelector('#single-graph .js-plotly-plot').data" \
            ".filter(t => t.name.startsWith(arguments[0])).flatMap(t => Array.from(t.text))"
    selected = wait_until(lambda: script(dash_duo, texts, "selected text"), timeout=30)
    assert {'"', "&", "<", "rain", "said"} <= set(selected) and not any(m in "".join(selected) for m in MARKS)
    labels = script(dash_duo, texts, "query labels")
    assert labels and not any(mark in label for label in labels for mark in MARKS)
    legend = wait_until(lambda: script(dash_duo, "return [...document.querySelectorAll('#single-graph .legendtext')]"
                                                 ".map(t => t.textContent)"), timeout=20)
    assert {"queries", "keys", "selected text (queries)"} <= set(legend) and not any("querys" in n for n in legend)
    # hovering a token of that text: the panel shows its sentence as written, the token marked
    tokens = jobs.tokens_table(jobs.cached_keys(HeadRequest(model="tiny-gpt", corpus="readable"),
                                                jobs.store())["tokens"])
    rows = [i for i in range(len(tokens["token"])) if tokens["text_id"][i] == 0 and not tokens["is_special"][i]]
    mouse_to_point(dash_duo, "single-graph", 0, isolated_point(dash_duo, "single-graph", 0, rows))
    dash_duo.wait_for_contains_text("#hover-panel", QUOTED, timeout=20)
    panel = dash_duo.find_element("#hover-panel").text
    assert dash_duo.find_element("#hover-panel mark").text in panel and not any(m in panel for m in MARKS)


def test_wordpiece_search_colour_menus_tooltips_and_both_fidelity_lines(dash_duo, readable_app):
    dash_duo.start_server(readable_app)
    dash_duo.driver.get(dash_duo.server_url + "/?corpus=readable&layer=0&head=0&method=pca")
    wait_for_points(dash_duo)
    # every control says what it does: a title on it or around it, the tabs a tooltip of their own
    missing = script(dash_duo, "return arguments[0].filter(id => { var e = document.getElementById(id);"
                               " var t = e && e.closest('[title]'); return !(t && t.title.trim()); })",
                     sorted({*guard.CONTROLS, *guard.BUTTONS, ids.UPLOAD} - {ids.VIEW_TABS}))
    assert missing == []
    ActionChains(dash_duo.driver).move_to_element(dash_duo.find_element("#view-tabs")).perform()
    dash_duo.wait_for_text_to_equal(".tooltip", TIPS[ids.VIEW_TABS], timeout=10)
    # the colour menu of a text model: its modes only, each with its help
    options = menu_options(dash_duo, "#color-dropdown")
    assert "token length (characters)" in dict(options) and "patch row (images)" not in dict(options)
    assert all(tip for _label, tip in options)
    # search as you type, matching tokens as they read: a WordPiece piece '##xyz' is found by typing 'xyz'
    tokens = jobs.tokens_table(jobs.cached_keys(HeadRequest(corpus="readable", method="pca"), jobs.store())["tokens"])
    piece = next(str(label) for token, label in zip(tokens["token"], tokens["label"], strict=True)
                 if str(token).startswith("##") and str(label).isalpha() and len(str(label)) >= 3)
    count = sum(str(label).lower() == piece for label in tokens["label"])
    field = dash_duo.find_element("#search-input")
    assert field.get_attribute("placeholder") == SEARCH_HINT
    field.send_keys(piece)  # no Enter
    dash_duo.wait_for_contains_text("#search-count", f"{count:,} token", timeout=30)
    assert f"match '{piece}'" in dash_duo.find_element("#search-count").text
    assert {name: n for _t, name, n in traces(dash_duo, "single-graph")}["match (queries)"] == count
    field.clear()
    field.send_keys("rivers\n")  # Enter still searches
    rivers = sum(str(label).lower() == "rivers" for label in tokens["label"])
    dash_duo.wait_for_contains_text("#search-count", f"{rivers:,} token{'s' if rivers != 1 else ''} match 'rivers'",
                                    timeout=30)
    # an image model: its own colour modes; a text-only mode in its URL falls back with a notice
    dash_duo.driver.get(dash_duo.server_url + "/?model=tiny-vit&corpus=images&color=token_length")
    dash_duo.wait_for_contains_text("#notices", "applies to text models only; showing 'role'", timeout=30)
    options = dict(menu_options(dash_duo, "#color-dropdown"))
    assert "patch row (images)" in options and "token length (characters)" not in options
    # side by side: picture A's fidelity line says it is A's, picture B has its own
    dash_duo.driver.get(dash_duo.server_url + "/?view=compare&corpus=readable&layer=0&head=0&b_layer=1&method=pca")
    dash_duo.wait_for_contains_text("#view-fidelity", "Picture A · Fidelity: ", timeout=180)
    dash_duo.wait_for_contains_text("#compare-b-fidelity", "Picture B · Fidelity: ", timeout=180)
    for line in ("#view-fidelity", "#compare-b-fidelity"):  # settled: measured, not 'measuring'
        wait_until(lambda line=line: "% of queries" in dash_duo.find_element(line).text, timeout=180)
    assert dash_duo.find_element("#view-fidelity").text != dash_duo.find_element("#compare-b-fidelity").text
