"""Head map view (every head placed by how alike heads attend) and the single view's list of related heads."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dash import Dash, Input, Output, State, dcc, html, no_update

from dashboard import ids, jobs
from dashboard.figures.headmap import head_map_figure
from dashboard.figures.single import empty_figure
from dashboard.shell import url
from dashboard.shell.widgets import GRAPH_CONFIG
from dashboard.state import ViewState, parse_query
from workers.contracts.choices import HEAD_MAP_SAMPLE_TEXTS
from workers.contracts.requests import HeadRequest
from workers.contracts.results import HeadMap
from workers.models.registry import read_spec
from workers.pipeline.keys import corpus_template, stored_head_map

EXPLAINED = (f"distance: the share of attention two heads send to different tokens (mean total variation distance "
             f"over the queries of {HEAD_MAP_SAMPLE_TEXTS} sampled texts); points placed by classical MDS of those "
             "distances")


def panel() -> html.Div:
    """The head map: one point per head, placed by how alike the heads attend."""
    return html.Div([
        html.Div(id=ids.HEADMAP_STATUS, className="small text-muted mb-1"),
        dcc.Interval(id=ids.HEADMAP_INTERVAL, interval=1000, disabled=True),
        dcc.Graph(id=ids.HEADMAP_GRAPH, className="qk-fill", responsive=True, figure=empty_figure("Open the head map…"),
                  config=GRAPH_CONFIG),
    ], id=ids.HEADMAP_PANEL, className="qk-panel", style={"display": "none"})


def _template(style: dict[str, Any]) -> HeadRequest:
    """The request that stands for the head map's model and corpus (its head and picture settings do not matter)."""
    return corpus_template(HeadRequest(model=style["model"], corpus=style["corpus"]))


def look_at_head_map(template: HeadRequest, client: str | None, urgent: bool = True
                     ) -> tuple[HeadMap | None, dict[str, Any]]:
    """The stored head map of the template's model and corpus, or None and the look at its job (submitted when
    neither queued nor running: the worker runs the model over the corpus first if needed)."""
    store = jobs.store()
    seen = jobs.measure(template, "headmap", store, client, urgent=urgent)
    found = stored_head_map(template, store) if seen["state"] == "done" else None
    return (None if found is None else HeadMap.from_dict(found)), seen


def related_line(request: HeadRequest, style: dict[str, Any], client: str | None) -> tuple[Any, bool]:
    """The single view's most related heads as links, or what the head map's job is doing; (content, still
    working). The head map is computed once per model and corpus, after the opened head's own work."""
    head_map, seen = look_at_head_map(corpus_template(request), client, urgent=False)
    if seen["state"] == "error":
        return f"Related heads not available: {seen['error']}", False
    if head_map is None:
        return "Related heads: comparing every head's attention…", True
    cell = (request.layer, request.head)
    return (html.Span(related_links(style, head_map.related(cell))) if cell in head_map.cells else ""), False


def related_links(style: dict[str, Any], related: list[tuple[tuple[int, int], float]]) -> list:
    """Links that open each related head in the single view (same model, corpus and picture settings)."""
    state, _notices = parse_query(style["query"])
    links: list = ["Heads that attend most alike (head map distance): "]
    for index, ((layer, head), distance) in enumerate(related):
        query = replace(state, view="single", layer=layer, head=head, text=-1, pos=-1).to_query()
        links += [", " if index else "", dcc.Link(f"L{layer}H{head}", href="/" + query, className="related-head"),
                  f" {distance:.2f}"]
    return links


def head_map_point(state: ViewState, click: dict | None) -> ViewState:
    """Open the clicked head of the head map in the single view."""
    point = (click or {}).get("points", [{}])[0]
    cell = point.get("customdata")
    if not isinstance(cell, list) or len(cell) != 2 or not all(isinstance(v, int) for v in cell):
        return state
    spec = read_spec(state.model)
    if not (0 <= cell[0] < spec.n_layers and 0 <= cell[1] < spec.n_heads):
        return state
    return replace(state, view="single", layer=cell[0], head=cell[1])


def register(app: Dash) -> None:
    """Callbacks of the head map: a click opens the head, and the drawing."""
    url.intent(app, events={ids.HEADMAP_GRAPH: ("clickData", head_map_point)})

    @app.callback(Output(ids.HEADMAP_GRAPH, "figure"), Output(ids.HEADMAP_STATUS, "children"),
                  Output(ids.HEADMAP_INTERVAL, "disabled"),
                  Input(ids.VIEW_STYLE, "data"), Input(ids.HEADMAP_INTERVAL, "n_intervals"),
                  State(ids.CLIENT, "data"), prevent_initial_call=True)
    def draw(style: dict[str, Any] | None, _tick, client: str | None):
        """Draw the head map; when the model has not run over the corpus yet, queue that and poll."""
        if not style or style.get("view") != "headmap":
            return no_update, no_update, True
        head_map, seen = look_at_head_map(_template(style), client)
        if seen["state"] == "error":
            return no_update, f"Head map not available: {seen['error']}", True
        if head_map is None:
            return no_update, f"Comparing every head's attention: {seen['message']}…", False
        spec = read_spec(style["model"])
        current = (style["layer"], style["head"])
        figure = head_map_figure(head_map, spec.n_layers, current, head_map.related(current))
        status = (f"{len(head_map.cells)} heads · {EXPLAINED} · ringed: L{current[0]}H{current[1]}, lines to the "
                  "heads that attend most like it · click a head to open it")
        return figure, status, True
