"""URL <-> controls: the query string is the single source of truth for the view."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, ctx, html, no_update

from dashboard import ids
from dashboard.layout.page import _range_options, corpus_options
from dashboard.state import ViewState, parse_query, with_controls
from workers.models import read_spec

CONTROL_FIELDS = {ids.MODEL: "model", ids.CORPUS: "corpus", ids.LAYER: "layer", ids.HEAD: "head",
                  ids.METHOD: "method", ids.DIMS: "dims", ids.NORM: "norm", ids.COLOR: "color"}


def _notices(messages: list[str]) -> list:
    """Dismissable warnings for replaced URL values."""
    return [dbc.Alert(m, color="warning", dismissable=True, className="py-2 small") for m in messages]


def register(app: Dash) -> None:
    """URL sync callback (one callback both ways, as Dash requires for circular updates)."""
    control_outputs = [Output(cid, "value") for cid in CONTROL_FIELDS]

    @app.callback(
        Output(ids.URL, "search"), *control_outputs,
        Output(ids.LAYER, "options"), Output(ids.HEAD, "options"), Output(ids.CORPUS, "options"),
        Output(ids.VIEW_REQUEST, "data"), Output(ids.NOTICES, "children"),
        Input(ids.URL, "search"), *[Input(cid, "value") for cid in CONTROL_FIELDS],
    )
    def sync(search: str | None, *values):
        """Controls changed -> new URL; URL changed (load, back, forward) -> controls."""
        state, notices = parse_query(search)
        if ctx.triggered_id in CONTROL_FIELDS:
            state = with_controls(state, **dict(zip(CONTROL_FIELDS.values(), values, strict=True)))
            notices = []
        query = state.to_query()
        spec = read_spec(state.model)
        # Only control changes push a history entry; a URL typed or restored is canonicalised in place (below).
        from_controls = ctx.triggered_id in CONTROL_FIELDS
        new_search = query if from_controls and query != search else no_update
        return (new_search, *_control_values(state), _range_options(spec.n_layers), _range_options(spec.n_heads),
                corpus_options(spec.modality),
                {**state.request(), "query": query}, _notices(notices) if notices else html.Div())

    app.clientside_callback(
        """function(data) {
            if (data && data.query && window.location.search !== data.query) {
                window.history.replaceState(window.history.state, "", window.location.pathname + data.query);
            }
            return window.dash_clientside.no_update;
        }""",
        Output(ids.URL_CANONICAL, "data"), Input(ids.VIEW_REQUEST, "data"),
    )


def _control_values(state: ViewState) -> list:
    """Control values in CONTROL_FIELDS order."""
    return [getattr(state, field) for field in CONTROL_FIELDS.values()]
