"""Head map view (every head placed by how alike heads attend) and the single view's list of related heads."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dash import Dash, Input, Output, State, dcc, html, no_update

from dashboard import ids, jobs
from dashboard.figures.headmap import head_map_figure
from dashboard.state import parse_query
from workers.contracts.choices import HEAD_MAP_SAMPLE_TEXTS
from workers.contracts.requests import HeadRequest
from workers.contracts.results import HeadMap
from workers.models.registry import read_spec
from workers.pipeline.keys import resolve, stored_head_map
from workers.pipeline.stages import ensure_head_map

EXPLAINED = (f"distance: the share of attention two heads send to different tokens (mean total variation distance "
             f"over the queries of {HEAD_MAP_SAMPLE_TEXTS} sampled texts); points placed by classical MDS of those "
             "distances")


def _template(style: dict[str, Any]) -> HeadRequest:
    """The request whose extraction the head map reads (its head and projection do not matter)."""
    return HeadRequest(model=style["model"], corpus=style["corpus"], norm=style["norm"], method="pca")


def available_head_map(template: HeadRequest) -> HeadMap | None:
    """The head map when the extraction is stored (computed and stored on first use, about a second), else None."""
    store = jobs.store()
    found = stored_head_map(template, store)
    if found is None and resolve(template).extracted(store):
        found = ensure_head_map(template, store)
    return None if found is None else HeadMap.from_dict(found)


def related_links(style: dict[str, Any], related: list[tuple[tuple[int, int], float]]) -> list:
    """Links that open each related head in the single view (same model, corpus and picture settings)."""
    state, _notices = parse_query(style["query"])
    links: list = ["Heads that attend most alike (head map distance): "]
    for index, ((layer, head), distance) in enumerate(related):
        query = replace(state, view="single", layer=layer, head=head, text=-1, pos=-1).to_query()
        links += [", " if index else "", dcc.Link(f"L{layer}H{head}", href="/" + query, className="related-head"),
                  f" {distance:.2f}"]
    return links


def register(app: Dash) -> None:
    """Callbacks of the head map and the related heads line."""

    @app.callback(Output(ids.HEADMAP_GRAPH, "figure"), Output(ids.HEADMAP_STATUS, "children"),
                  Output(ids.HEADMAP_INTERVAL, "disabled"),
                  Input(ids.VIEW_STYLE, "data"), Input(ids.HEADMAP_INTERVAL, "n_intervals"),
                  State(ids.CLIENT, "data"), prevent_initial_call=True)
    def draw(style: dict[str, Any] | None, _tick, client: str | None):
        """Draw the head map; when the model has not run over the corpus yet, queue that and poll."""
        if not style or style.get("view") != "headmap":
            return no_update, no_update, True
        template = _template(style)
        try:
            head_map = available_head_map(template)
        except Exception as exc:  # a line of text, never a broken page
            return no_update, f"Head map not available: {exc}", True
        if head_map is None:
            jobs.submit_limited(client, [template.to_dict()], jobs.store())
            return no_update, "Running the model over the corpus (the head map compares every head's attention)…", False
        spec = read_spec(style["model"])
        current = (style["layer"], style["head"])
        figure = head_map_figure(head_map, spec.n_layers, current, head_map.related(current))
        status = (f"{len(head_map.cells)} heads · {EXPLAINED} · ringed: L{current[0]}H{current[1]}, lines to the "
                  "heads that attend most like it · click a head to open it")
        return figure, status, True

    @app.callback(Output(ids.RELATED_HEADS, "children"), Input(ids.SINGLE_KEYS, "data"),
                  State(ids.VIEW_STYLE, "data"), prevent_initial_call=True)
    def related(computed: dict[str, Any] | None, style: dict[str, Any] | None):
        """The single view's most related heads, as links (the head map is computed once per model and corpus)."""
        if not computed or "keys" not in computed or not style:
            return ""
        request = HeadRequest.from_dict(computed["request"])
        try:
            head_map = available_head_map(request)
        except Exception as exc:
            return f"Related heads not available: {exc}"
        if head_map is None or (request.layer, request.head) not in head_map.cells:
            return ""
        return html.Span(related_links(style, head_map.related((request.layer, request.head))))
