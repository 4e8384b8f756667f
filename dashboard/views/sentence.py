"""Sentence view: the selected text's attention in one head, and the head's average by position."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, dcc, html, no_update

from dashboard import ids, jobs, picture
from dashboard.figures.image import image_figure
from dashboard.figures.sentence import aggregate_figure, sentence_figure
from dashboard.figures.single import empty_figure
from dashboard.figures.text import shortened
from dashboard.shell import url
from dashboard.shell.widgets import GRAPH_CONFIG, TIPS
from dashboard.state import ViewState
from workers.core import metrics
from workers.models.registry import read_spec
from workers.pipeline.keys import corpus_for

WEIGHT_NAMES = {  # modality -> what the weighting applies to: its label and tooltip
    "text": ("Lines show", TIPS[ids.SENTENCE_WEIGHT]),
    "image": ("Heatmap shows", "The heatmap by attention, or by attention times the length of each patch's value "
                               "vector"),
}


def panel() -> html.Div:
    """The sentence view: BertViz-style lines for the selected text, and the head's average by position."""
    return html.Div([
        html.Div([
            html.Div(dbc.Switch(id=ids.HIDE_SPECIAL, label="hide special tokens (renormalise the rest)", value=False,
                                className="small me-4"), id=ids.HIDE_SPECIAL_BOX, title=TIPS[ids.HIDE_SPECIAL]),
            html.Div([html.Span(WEIGHT_NAMES["text"][0], id=ids.SENTENCE_WEIGHT_LABEL, className="small me-2"),
                      dbc.RadioItems(id=ids.SENTENCE_WEIGHT, inline=True, value="attention", className="small",
                                     options=[{"label": "attention", "value": "attention"},
                                              {"label": "attention × value norm ‖v‖", "value": "value"}])],
                     id=ids.SENTENCE_WEIGHT_BOX, title=WEIGHT_NAMES["text"][1], className="d-flex align-items-center"),
        ], className="d-flex align-items-center flex-wrap"),
        html.Div([
            dbc.Row([
                dbc.Col(dcc.Graph(id=ids.SENTENCE_GRAPH, className="qk-fill", responsive=True, config=GRAPH_CONFIG,
                                  figure=empty_figure("Select a text: click a point in the single view")), md=6),
                dbc.Col(dcc.Graph(id=ids.AGGREGATE_GRAPH, className="qk-fill", responsive=True,
                                  config=GRAPH_CONFIG, figure=empty_figure("")), md=6),
            ], className="qk-row-fill g-2"),
        ], id=ids.SENTENCE_VIEW, className="d-flex flex-column qk-fill"),
    ], id=ids.SENTENCE_PANEL, className="qk-panel", style={"display": "none"})


def clicked_patch(state: ViewState, click: dict | None) -> ViewState:
    """A click on a patch of the image view selects that patch of the shown image; any other click changes nothing."""
    point = (click or {}).get("points", [{}])[0]
    position = point.get("customdata")
    if isinstance(position, float) and position.is_integer():
        position = int(position)
    if state.text < 0 or "z" not in point or isinstance(position, bool) or not isinstance(position, int):
        return state
    return replace(state, pos=position) if position > 0 else state


def modality_controls(modality: str) -> tuple[dict[str, str], str, str]:
    """The special-token switch's style (shown for texts only: an image's heatmap leaves its CLS out and states the
    CLS share in its title), and the weighting's label and tooltip (lines of a text, the heatmap of an image)."""
    label, tip = WEIGHT_NAMES["image" if modality == "image" else "text"]
    return {"display": "none" if modality == "image" else "block"}, label, tip


def register(app: Dash) -> None:
    """Callbacks of the sentence view: its controls for the model's modality, what its lines weigh by, a click on
    an image's patch, and the drawing."""
    url.intent(app, (ids.SENTENCE_WEIGHT,), events={ids.SENTENCE_GRAPH: ("clickData", clicked_patch)})

    @app.callback(Output(ids.HIDE_SPECIAL_BOX, "style"), Output(ids.SENTENCE_WEIGHT_LABEL, "children"),
                  Output(ids.SENTENCE_WEIGHT_BOX, "title"), Input(ids.VIEW_STYLE, "data"))
    def controls_for_modality(style: dict[str, Any] | None):
        """Only the controls that mean something for the shown model's texts or images."""
        if not style:
            return no_update, no_update, no_update
        return modality_controls(read_spec(style["model"]).modality)

    @app.callback(Output(ids.SENTENCE_GRAPH, "figure"), Output(ids.AGGREGATE_GRAPH, "figure"),
                  Input(ids.SINGLE_KEYS, "data"), Input(ids.VIEW_STYLE, "data"), Input(ids.HIDE_SPECIAL, "value"),
                  Input(ids.SENTENCE_GRAPH, "hoverData"), prevent_initial_call=True)
    def draw(computed: dict[str, Any] | None, style: dict[str, Any] | None, hide_special: bool,
             hover: dict | None):
        """Lines for the selected text (hovering a query isolates its lines) and the position average."""
        if not computed or not style or style.get("view") != "sentence":
            return no_update, no_update
        if computed.get("pending"):
            return picture.placeholder(computed), empty_figure("")
        if "keys" not in computed:
            return no_update, no_update
        lines = computed.get("lines") or {"state": "done"}
        if lines["state"] != "done":
            return attention_placeholder(computed["request"], lines), empty_figure("")
        keys, causal = computed["keys"], computed["causal"]
        within, position = jobs.stored_attention(keys, causal), jobs.stored_position_mean(keys, causal)
        if within is None or position is None:
            return empty_figure("This head's attention is no longer stored: reload the page to compute it again"), \
                empty_figure("")
        tokens = jobs.tokens_table(keys["tokens"])
        items = "images" if "row" in tokens else "texts"
        aggregate = aggregate_figure(position["mean"], position["count"], f"L{style['layer']} H{style['head']}: "
                                     f"mean attention by position over {len(tokens['texts']):,} {items}")
        if style["text"] < 0:
            return empty_figure("Select a text: click a point in the single view, or add &text=N to the URL"), \
                aggregate
        rows = metrics.text_rows(tokens["text_id"], style["text"])
        attention = within.of(style["text"]) if len(rows) else None
        if attention is None:
            return empty_figure(f"Text {style['text']} is not in this corpus"), aggregate
        weighting = ""
        if style.get("weight") == "value":
            if within.value_norms is None:
                return empty_figure("This head's extraction kept no value vectors: choose 'attention'"), aggregate
            attention = metrics.value_weighted(attention, within.value_norms[rows])
            weighting = " · attention × ‖v‖, renormalised"
        if "row" in tokens:  # an image corpus: the image view
            return _image_view(style, tokens, rows, attention, weighting), aggregate
        words = [str(label) for label in tokens["label"][rows]]
        if hide_special:
            drop = tokens["is_special"][rows] | (causal & (tokens["position"][rows] == 0))
            attention = metrics.renormalise_without(attention, drop)[~drop][:, ~drop]
            words = [w for w, d in zip(words, drop, strict=True) if not d]
        focus = _hovered_query(hover)
        title = shortened(f"text {style['text']}: {tokens['texts'][style['text']]}", 120 - len(weighting)) + weighting
        return sentence_figure(words, attention, focus, title), aggregate


def attention_placeholder(request: dict[str, Any], lines: dict[str, Any]) -> Any:
    """The figure shown while (or why not) the head's attention within each text is computed."""
    if lines["state"] == "error":
        return empty_figure(f"Could not compute this head's attention: {lines['error']}")
    return empty_figure(f"Computing the attention of L{request['layer']} H{request['head']} within each text "
                        f"({lines['message']})")


def _image_view(style: dict[str, Any], tokens: dict, rows, attention, weighting: str = ""):
    """The selected image with the selected patch's attention (CLS when no patch is selected); `weighting` names
    any weighting of the attention in the title."""
    corpus = corpus_for(style["corpus"])
    grid = int(tokens["row"].max()) + 1
    position = style["pos"] if 0 <= style["pos"] < len(rows) else 0
    return image_figure(corpus.images[style["text"]], attention[position], grid, position,
                        f"image {style['text']}: {corpus.names[style['text']]}{weighting}")


def _hovered_query(hover: dict | None) -> int | None:
    """The query position under the mouse (curve 'queries'), if any."""
    point = (hover or {}).get("points", [{}])[0]
    if point.get("x") == 0 and isinstance(point.get("customdata"), int):
        return point["customdata"]
    return None
