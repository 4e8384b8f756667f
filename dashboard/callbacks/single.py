"""Single-head view: heading, the figure (computed in the background with progress), and the hover panel."""

from __future__ import annotations

import html as html_lib
import time
from typing import Any

from dash import Dash, Input, Output, State, html, no_update

from dashboard import ids, jobs
from dashboard.figures.single import empty_figure, single_figure
from dashboard.layout.page import METHOD_LABELS
from workers.pipeline import HeadRequest


def _head_request(data: dict[str, Any]) -> HeadRequest:
    """HeadRequest from the view-request store."""
    return HeadRequest.from_dict(data)


def register(app: Dash, cache_dir: str) -> None:
    """Callbacks of the single view."""

    @app.callback(Output(ids.HEADING, "children"), Output(ids.SUBHEADING, "children"),
                  Input(ids.VIEW_REQUEST, "data"))
    def heading(data: dict[str, Any] | None):
        """`L{layer} H{head}` and a one-line description, at once."""
        if not data:
            return no_update, no_update
        sub = (f"{data['model']} · corpus {data['corpus']} · {METHOD_LABELS[data['method']]} {data['dims']}D · "
               f"normalisation {data['norm']}")
        return f"L{data['layer']} H{data['head']}", sub

    @app.callback(
        Output(ids.SINGLE_GRAPH, "figure"), Output(ids.STATUS, "children"),
        Input(ids.VIEW_REQUEST, "data"),
        background=True,
        progress=[Output(ids.PROGRESS, "value"), Output(ids.PROGRESS, "label")],
        running=[(Output(ids.PROGRESS_WRAP, "style"), {"display": "block"}, {"display": "none"})],
        prevent_initial_call=True,
    )
    def render(set_progress, data: dict[str, Any] | None):
        """Compute (through the worker) or load the head's picture, reporting progress."""
        if not data:
            return no_update, no_update
        store = jobs.store_for(cache_dir)
        request = _head_request(data)

        started = time.monotonic()

        def progress(fraction: float, message: str) -> None:
            set_progress((int(100 * fraction), f"{message} · {time.monotonic() - started:.0f} s"))

        try:
            keys = jobs.run_request(request, store, progress)
            view = jobs.view_data(keys, store)
        except Exception as exc:  # shown to the user, never a broken page
            return empty_figure(f"Could not compute this view: {exc}"), f"Error: {exc}"
        uirevision = f"{request.model}|{request.corpus}|{request.layer}|{request.head}|{request.method}|" \
                     f"{request.dims}|{request.norm}"
        figure = single_figure(view.coords, view.tokens, data.get("color", "role"), uirevision)
        n = len(view.tokens["token"])
        status = f"{n:,} tokens from {len(view.tokens['texts']):,} texts: {2 * n:,} points (queries and keys)"
        return figure, status

    @app.callback(Output(ids.HOVER_PANEL, "children"), Input(ids.SINGLE_GRAPH, "hoverData"),
                  State(ids.VIEW_REQUEST, "data"), prevent_initial_call=True)
    def hover(hover_data: dict | None, data: dict[str, Any] | None):
        """The hovered token's sentence, with the token highlighted."""
        if not hover_data or not data or not hover_data.get("points"):
            return no_update
        point = hover_data["points"][0]
        store = jobs.store_for(cache_dir)
        keys = jobs.cached_keys(_head_request(data), store)
        found = keys and jobs.hovered_sentence(keys["tokens"], store, int(point["pointNumber"]))
        if not found:
            return no_update
        words, position = found
        role = "query" if point["curveNumber"] == 0 else "key"
        pieces = [html.Mark(w) if i == position else html.Span(w) for i, w in enumerate(words)]
        spaced = [p for piece in pieces for p in (piece, " ")]
        return [html.Strong(f"{html_lib.unescape(words[position])} ({role}, position {position}): "), *spaced]
