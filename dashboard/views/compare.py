"""Side by side: picture A (the main controls) and picture B (its own model, corpus, layer, head), with the selected
text and token linked across both."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html, no_update

from dashboard import ids, jobs, picture
from dashboard.linking import linked_token
from dashboard.shell import url
from dashboard.shell.widgets import TIPS, corpus_label, model_options
from dashboard.state import ViewState
from dashboard.views.single import clicked_token, fidelity_line, keys_of, selected_token
from workers.contracts.requests import HeadRequest

B_CONTROLS = (ids.B_MODEL, ids.B_CORPUS, ids.B_LAYER, ids.B_HEAD, ids.B_VECTORS)


def panel() -> html.Div:
    """Side by side: picture A (the controls on the left) and picture B (its own model, corpus, layer, head)."""
    def b_field(label: str, control) -> html.Div:
        return html.Div([html.Span(label, className="small me-1"), control], className="me-3",
                        style={"minWidth": "9rem"}, title=TIPS[control.id])

    return html.Div([
        html.Div([html.Span("Picture B:", className="small fw-bold me-2"),
                  b_field("model", dcc.Dropdown(id=ids.B_MODEL, clearable=False, searchable=False,
                                                options=model_options(), style={"minWidth": "12rem"})),
                  b_field("corpus", dcc.Dropdown(id=ids.B_CORPUS, clearable=False, searchable=False,
                                                 style={"minWidth": "10rem"})),
                  b_field("layer", dcc.Dropdown(id=ids.B_LAYER, clearable=False, searchable=False)),
                  b_field("head", dcc.Dropdown(id=ids.B_HEAD, clearable=False, searchable=False)),
                  html.Div(dbc.RadioItems(id=ids.B_VECTORS, inline=True, value="qk", className="small",
                                          options=[{"label": "queries and keys", "value": "qk"},
                                                   {"label": "value vectors", "value": "v"}]),
                           title=TIPS[ids.B_VECTORS])],
                 className="d-flex align-items-center flex-wrap mb-1"),
        html.Div(id=ids.COMPARE_STATUS, className="small text-muted mb-1"),
        html.Div(id=ids.COMPARE_B_FIDELITY, className="small text-muted mb-1"),
        dcc.Interval(id=ids.COMPARE_MEASURES_POLL, interval=1000, disabled=True),
        dbc.Row([dbc.Col(picture.layout(ids.COMPARE_A, "Preparing picture A…", title=True), md=6),
                 dbc.Col(picture.layout(ids.COMPARE_B, "Preparing picture B…", title=True), md=6)],
                className="qk-row-fill g-2"),
    ], id=ids.COMPARE_PANEL, className="qk-panel", style={"display": "none"})


def picture_b_token(state: ViewState, click: dict | None) -> ViewState:
    """Select, in picture A's terms, the text and token clicked in picture B (the same text string)."""
    index = clicked_token((click or {}).get("points", [{}])[0])
    picture_b = state.picture_b()
    keys_a, keys_b = keys_of(state.request()), keys_of(state.request(picture_b))
    if index is None or not keys_a or not keys_b:
        return state
    tokens_a, tokens_b = jobs.tokens_table(keys_a["tokens"]), jobs.tokens_table(keys_b["tokens"])
    if not 0 <= index < len(tokens_b["token"]):
        return state
    text, pos = linked_token(tokens_b, int(tokens_b["text_id"][index]), int(tokens_b["position"][index]), tokens_a,
                             picture_b.model == state.model)
    if text < 0:
        return state
    if (state.text, state.pos) == (text, pos):
        return replace(state, text=-1, pos=-1)
    return replace(state, text=text, pos=pos)


def picture_title(label: str, request: dict[str, Any]) -> str:
    """'A · minilm · corpus default · L2 H5' (and ' · value vectors' for a value picture)."""
    title = (f"{label} · {request['model']} · corpus {corpus_label(request['corpus'])} · "
             f"L{request['layer']} H{request['head']}")
    return title + (" · value vectors" if request.get("vectors") == "v" else "")


def linked_style(style: dict[str, Any], keys_a: dict | None, keys_b: dict, same_tokenizer: bool
                 ) -> tuple[dict[str, Any], str]:
    """B's style: A's selection carried over to B's tokens table (same text string, same token), and a note."""
    if style["text"] < 0 or not keys_a:
        return style, ""
    text, pos = linked_token(jobs.tokens_table(keys_a["tokens"]), style["text"], style["pos"],
                             jobs.tokens_table(keys_b["tokens"]), same_tokenizer)
    if text < 0:
        return {**style, "text": -1, "pos": -1}, "The selected text is not in picture B's corpus."
    note = "" if style["pos"] < 0 or pos >= 0 else "The selected token is not in picture B's tokens of that text."
    return {**style, "text": text, "pos": pos}, note


def progress_b(seen: picture.Look) -> tuple:
    """Picture B's progress in the view's status line (picture A's shows in the page's progress bar)."""
    return (f"Picture B: {seen.message} · {seen.percent}%" if seen.waiting else no_update,)


def register(app: Dash) -> None:
    """Callbacks of the side-by-side view: picture B's controls, token clicks in either picture, the drawing."""
    url.intent(app, B_CONTROLS, {ids.COMPARE_A_GRAPH: ("clickData", selected_token),
                                 ids.COMPARE_B_GRAPH: ("clickData", picture_b_token)})

    picture.register(app, ids.COMPARE_A)  # its progress shows in the page's progress bar (the single picture's)
    picture.register(app, ids.COMPARE_B, [Output(ids.COMPARE_STATUS, "children")], progress_b)

    @app.callback(Output(ids.COMPARE_B_FIDELITY, "children"), Output(ids.COMPARE_MEASURES_POLL, "disabled"),
                  Input(ids.COMPARE_B_KEYS, "data"), Input(ids.COMPARE_MEASURES_POLL, "n_intervals"),
                  State(ids.COMPARE_B_REQUEST, "data"), State(ids.CLIENT, "data"), prevent_initial_call=True)
    def picture_b_fidelity(computed: dict | None, _tick, wanted: dict | None, client: str | None):
        """Picture B's fidelity line (picture A's is above the view), read from the store; while it is missing, its
        job is submitted and looked at again every second. None for value vectors (not dotted with anything)."""
        if not computed or "keys" not in computed or computed.get("request") != wanted:
            return "", True
        line, busy = fidelity_line(HeadRequest.from_dict(computed["request"]), bool(computed["causal"]), client, "B")
        return line, not busy

    @app.callback(Output(ids.COMPARE_A_GRAPH, "figure"), Output(ids.COMPARE_B_GRAPH, "figure"),
                  Output(ids.COMPARE_A_TITLE, "children"), Output(ids.COMPARE_B_TITLE, "children"),
                  Output(ids.COMPARE_STATUS, "children", allow_duplicate=True),
                  Input(ids.COMPARE_A_KEYS, "data"), Input(ids.COMPARE_B_KEYS, "data"), Input(ids.VIEW_STYLE, "data"),
                  State(ids.COMPARE_A_REQUEST, "data"), State(ids.COMPARE_B_REQUEST, "data"),
                  prevent_initial_call=True)
    def draw(computed_a: dict | None, computed_b: dict | None, style: dict | None, wanted_a: dict | None,
             wanted_b: dict | None):
        """Both pictures under the same style, B's selection linked to A's."""
        if not style or style.get("view") != "compare":
            return (no_update,) * 5
        figure_a, title_a = no_update, no_update
        keys_a = computed_a.get("keys") if computed_a and computed_a.get("request") == wanted_a else None
        if computed_a and computed_a.get("pending") and computed_a.get("request") == wanted_a:
            figure_a = picture.placeholder(computed_a, "picture A")
        if keys_a:
            figure_a = picture.figure(computed_a, picture.style_of(style), f"A|{sorted(computed_a['request'].items())}")
            title_a = picture_title("A", computed_a["request"])
        if not computed_b or computed_b.get("request") != wanted_b:
            return figure_a, no_update, title_a, no_update, no_update
        if computed_b.get("pending"):
            return figure_a, picture.placeholder(computed_b, "picture B"), title_a, no_update, no_update
        if "error" in computed_b:
            return figure_a, picture.figure(computed_b, picture.style_of(style), "", "picture B"), title_a, "", ""
        same = computed_b["request"]["model"] == style["model"]
        style_b, note = linked_style(style, keys_a, computed_b["keys"], same)
        figure_b = picture.figure(computed_b, picture.style_of(style_b), f"B|{sorted(computed_b['request'].items())}")
        status = note or "Click a token in either picture: the same text and token are selected in both."
        return figure_a, figure_b, title_a, picture_title("B", computed_b["request"]), status
