"""URL <-> controls: the query string is the single source of truth for the view."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, ctx, html, no_update

from dashboard import ids, jobs
from dashboard.figures.matrix import cell_at
from dashboard.layout.page import corpus_options, range_options
from dashboard.state import ViewState, parse_query, with_controls
from workers.contracts.requests import HeadRequest
from workers.models.registry import read_spec

CONTROL_FIELDS = {ids.VIEW_TABS: "view", ids.MODEL: "model", ids.CORPUS: "corpus", ids.LAYER: "layer",
                  ids.HEAD: "head", ids.METHOD: "method", ids.DIMS: "dims", ids.NORM: "norm", ids.COLOR: "color",
                  ids.SHOW: "show", ids.LABELS: "labels", ids.SEARCH: "search", ids.MATRIX_ORDER: "order",
                  ids.MATRIX_KEEP: "keep", ids.MATRIX_TINT: "tint",
                  ids.SENTENCE_WEIGHT: "weight", ids.B_MODEL: "b_model", ids.B_CORPUS: "b_corpus",
                  ids.B_LAYER: "b_layer", ids.B_HEAD: "b_head", ids.B_VECTORS: "b_vectors"}
B_CONTROLS = {ids.B_MODEL, ids.B_CORPUS, ids.B_LAYER, ids.B_HEAD, ids.B_VECTORS}
CONTROL_PROPS = {ids.VIEW_TABS: "active_tab", ids.LABELS: "value"}
STEPS = {ids.PREV_LAYER: ("layer", -1), ids.NEXT_LAYER: ("layer", 1), ids.PREV_HEAD: ("head", -1),
         ids.NEXT_HEAD: ("head", 1)}


def _notices(messages: list[str]) -> list:
    """Dismissable warnings for replaced URL values (rendered as text, never as markup)."""
    return [dbc.Alert(m, color="warning", dismissable=True, className="py-2 small") for m in messages]


def _prop(component_id: str) -> str:
    """The property that holds a control's value."""
    return CONTROL_PROPS.get(component_id, "value")


def _step(state: ViewState, field: str, delta: int) -> ViewState:
    """Move to the neighbouring layer or head (wrapping around)."""
    spec = read_spec(state.model)
    size = spec.n_layers if field == "layer" else spec.n_heads
    return replace(state, **{field: (getattr(state, field) + delta) % size})


def clicked_token(point: dict) -> int | None:
    """Token index of a clicked or hovered point: pointNumber on the base traces, customdata on overlays."""
    if point.get("curveNumber") in (0, 1) and isinstance(point.get("pointNumber"), int):
        return point["pointNumber"]
    index = point.get("customdata")
    return index if isinstance(index, int) else None


def _keys_of(state: ViewState) -> dict[str, str] | None:
    """Stored keys of a state's head (None when not computed yet)."""
    return jobs.cached_keys(HeadRequest.from_dict(state.request()), jobs.store_for(jobs.cache_dir()))


def _selected_token(state: ViewState, click: dict | None) -> ViewState:
    """Select the text and position of a clicked point."""
    index = clicked_token((click or {}).get("points", [{}])[0])
    if index is None:
        return state
    keys = _keys_of(state)
    tokens = keys and jobs.tokens_table(keys["tokens"])
    if not tokens or not 0 <= index < len(tokens["token"]):
        return state
    text, pos = int(tokens["text_id"][index]), int(tokens["position"][index])
    if (state.text, state.pos) == (text, pos):  # clicking the selected token again clears the selection
        return replace(state, text=-1, pos=-1)
    return replace(state, text=text, pos=pos)


def _matrix_cell(state: ViewState, click: dict | None) -> ViewState:
    """Open the clicked matrix cell in the single view."""
    point = (click or {}).get("points", [{}])[0]
    if not all(isinstance(point.get(axis), (int, float)) and math.isfinite(point[axis]) for axis in ("x", "y")):
        return state
    spec = read_spec(state.model)
    layer, head = cell_at(point["x"], point["y"], spec.n_layers)  # the slot's row and column
    if state.order != "grid":  # ranked: the slot holds whichever head ranked there
        from dashboard.callbacks.matrix import head_values, kept, ranked_slots

        slots = ranked_slots(kept(head_values(state.request(), state.order, submit=False)[0], state.keep), spec.n_heads)
        by_slot = {slot: cell for cell, slot in slots.items()}
        if (layer, head) not in by_slot:
            return state
        layer, head = by_slot[(layer, head)]
    return replace(state, view="single", layer=min(layer, spec.n_layers - 1), head=min(head, spec.n_heads - 1))


def _head_map_point(state: ViewState, click: dict | None) -> ViewState:
    """Open the clicked head of the head map in the single view."""
    point = (click or {}).get("points", [{}])[0]
    cell = point.get("customdata")
    if not isinstance(cell, list) or len(cell) != 2 or not all(isinstance(v, int) for v in cell):
        return state
    spec = read_spec(state.model)
    if not (0 <= cell[0] < spec.n_layers and 0 <= cell[1] < spec.n_heads):
        return state
    return replace(state, view="single", layer=cell[0], head=cell[1])


def _picture_b_token(state: ViewState, click: dict | None) -> ViewState:
    """Select, in picture A's terms, the text and token clicked in picture B (the same text string)."""
    from dashboard.linking import linked_token

    index = clicked_token((click or {}).get("points", [{}])[0])
    b_state = state.picture_b()
    keys_a, keys_b = _keys_of(state), _keys_of(b_state)
    if index is None or not keys_a or not keys_b:
        return state
    tokens_a, tokens_b = jobs.tokens_table(keys_a["tokens"]), jobs.tokens_table(keys_b["tokens"])
    if not 0 <= index < len(tokens_b["token"]):
        return state
    text, pos = linked_token(tokens_b, int(tokens_b["text_id"][index]), int(tokens_b["position"][index]), tokens_a,
                             b_state.model == state.model)
    if text < 0:
        return state
    if (state.text, state.pos) == (text, pos):
        return replace(state, text=-1, pos=-1)
    return replace(state, text=text, pos=pos)


def control_value(state: ViewState, field: str) -> Any:
    """What a control shows: B's controls show picture B's effective model, corpus, layer and head."""
    if field == "b_vectors":
        return state.b_vectors or "qk"
    if field.startswith("b_"):
        return getattr(state.picture_b(), field.removeprefix("b_"))
    return getattr(state, field) if field != "labels" else bool(state.labels)


def next_state(trigger: str | None, state: ViewState, values: list, single_click, matrix_click,
               head_map_click=None, compare_clicks=(None, None), notices: list[str] | None = None) -> ViewState:
    """The state after a control, step button, click or clear (refused control values noted in `notices`)."""
    if trigger in CONTROL_FIELDS:
        controls = dict(zip(CONTROL_FIELDS.values(), values, strict=True))
        if trigger not in B_CONTROLS:  # B's controls show B's effective values: only a change to one of them counts
            controls = {k: v for k, v in controls.items() if not k.startswith("b_")}
        return with_controls(state, notices, **controls)
    if trigger in STEPS:
        return _step(state, *STEPS[trigger])
    if trigger == ids.SINGLE_GRAPH:
        return _selected_token(state, single_click)
    if trigger == ids.MATRIX_GRAPH:
        return _matrix_cell(state, matrix_click)
    if trigger == ids.HEADMAP_GRAPH:
        return _head_map_point(state, head_map_click)
    if trigger == ids.COMPARE_A_GRAPH:
        return _selected_token(state, compare_clicks[0])
    if trigger == ids.COMPARE_B_GRAPH:
        return _picture_b_token(state, compare_clicks[1])
    if trigger == ids.CLEAR_SELECTION:
        return replace(state, text=-1, pos=-1)
    return state


def register(app: Dash) -> None:
    """URL sync callback (one callback both ways, as Dash requires for circular updates)."""
    control_inputs = [Input(cid, _prop(cid)) for cid in CONTROL_FIELDS]
    control_outputs = [Output(cid, _prop(cid)) for cid in CONTROL_FIELDS]

    @app.callback(
        Output(ids.URL, "search"), *control_outputs,
        Output(ids.LAYER, "options"), Output(ids.HEAD, "options"), Output(ids.CORPUS, "options"),
        Output(ids.B_LAYER, "options"), Output(ids.B_HEAD, "options"), Output(ids.B_CORPUS, "options"),
        Output(ids.VIEW_REQUEST, "data"), Output(ids.VIEW_STYLE, "data"), Output(ids.MATRIX_REQUEST, "data"),
        Output(ids.COMPARE_REQUEST, "data"), Output(ids.NOTICES, "children"),
        Input(ids.URL, "search"), *control_inputs, *[Input(b, "n_clicks") for b in STEPS],
        Input(ids.SINGLE_GRAPH, "clickData"), Input(ids.MATRIX_GRAPH, "clickData"),
        Input(ids.HEADMAP_GRAPH, "clickData"), Input(ids.COMPARE_A_GRAPH, "clickData"),
        Input(ids.COMPARE_B_GRAPH, "clickData"), Input(ids.CLEAR_SELECTION, "n_clicks"),
        State(ids.VIEW_REQUEST, "data"), State(ids.VIEW_STYLE, "data"), State(ids.MATRIX_REQUEST, "data"),
        State(ids.COMPARE_REQUEST, "data"),
    )
    def sync(search: str | None, *args):
        """Controls, buttons or clicks -> new URL; URL changed (load, back, forward) -> controls."""
        values = list(args[: len(CONTROL_FIELDS)])
        clicks = len(CONTROL_FIELDS) + len(STEPS)
        single_click, matrix_click, head_map_click, a_click, b_click = args[clicks: clicks + 5]
        old_request, old_style, old_matrix, old_compare = args[-4:]
        state, notices = parse_query(search)
        trigger = ctx.triggered_id if ctx.triggered_id != ids.URL else None
        if trigger is not None:
            notices = []
            state = next_state(trigger, state, values, single_click, matrix_click, head_map_click, (a_click, b_click),
                               notices)
            state, replaced = parse_query(state.to_query())  # what goes back to the browser is always canonical
            notices += replaced
        query = state.to_query()
        spec = read_spec(state.model)
        request = state.request()
        style = {**state.__dict__, "query": query}
        matrix = {k: request[k] for k in ("model", "corpus", "norm", "method")} if state.view == "matrix" else None
        picture_b = state.picture_b()
        b_spec = read_spec(picture_b.model)
        return (query if trigger is not None and query != search else no_update,
                *[control_value(state, field) for field in CONTROL_FIELDS.values()],
                range_options(spec.n_layers), range_options(spec.n_heads), corpus_options(spec.modality, state.corpus),
                range_options(b_spec.n_layers), range_options(b_spec.n_heads),
                corpus_options(b_spec.modality, picture_b.corpus),
                # the matrix computes its own heads: the single view's head waits until a view shows it
                _unless_same(request, old_request) if state.view not in ("matrix", "headmap") else no_update,
                _unless_same(style, old_style),
                _unless_same(matrix, old_matrix) if matrix is not None else no_update,
                _unless_same(state.request_b(), old_compare) if state.view == "compare" else no_update,
                _notices(notices) if notices else html.Div())

    app.clientside_callback(
        """function(data) {
            if (data && data.query && window.location.search !== data.query) {
                window.history.replaceState(window.history.state, "", window.location.pathname + data.query);
            }
            return window.dash_clientside.no_update;
        }""",
        Output(ids.URL_CANONICAL, "data"), Input(ids.VIEW_STYLE, "data"),
    )
    app.clientside_callback(  # a random id per browser tab: the unit of the job limit
        """function(_path, known) {
            return known || (window.crypto && crypto.randomUUID ? crypto.randomUUID()
                                                               : String(Math.random()).slice(2));
        }""",
        Output(ids.CLIENT, "data"), Input(ids.URL, "pathname"), State(ids.CLIENT, "data"),
    )
    app.clientside_callback(
        "function(n) { return window.location.href; }",
        Output(ids.COPY_LINK, "content"), Input(ids.COPY_LINK, "n_clicks"), prevent_initial_call=True,
    )


def _unless_same(new: Any, old: Any) -> Any:
    """no_update when a store already holds this value (so downstream callbacks do not re-run)."""
    return no_update if new == old else new
