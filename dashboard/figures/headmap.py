"""The head map figure: one point per head, placed by how alike heads attend (workers.core.headmap), coloured
by layer."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from dashboard.figures import LEGEND_BELOW, MODEBAR, colour_bar_left
from dashboard.figures.text import labels_that_fit
from workers.contracts.results import HeadMap

Cell = tuple[int, int]
MARKER_SIZE = 11  # pixels: a head's point
LABEL_PX, CURRENT_LABEL_PX = 9, 10  # the heads' names, and the current head's (bold)
HALO = "-1px -1px 1px #fff, 1px -1px 1px #fff, -1px 1px 1px #fff, 1px 1px 1px #fff"  # labels legible over points


def head_map_figure(head_map: HeadMap, n_layers: int, current: Cell | None = None,
                    related: list[tuple[Cell, float]] | None = None) -> go.Figure:
    """Heads as points (customdata = [layer, head]), labelled where labels do not collide (every name on hover);
    lines from `current` to its related heads; the current head ringed and named on top."""
    cells = np.array(head_map.cells)
    x, y = head_map.coords[:, 0], head_map.coords[:, 1]
    names = [f"L{layer}H{head}" for layer, head in head_map.cells]
    first = [head_map.cells.index(cell) for cell in [current, *(c for c, _d in related or [])]
             if cell in head_map.cells]
    at = head_map.cells.index(current) if current in head_map.cells else None  # the current head's point
    font = np.full(len(names), LABEL_PX, dtype=float)
    if at is not None:
        font[at] = CURRENT_LABEL_PX + 1  # bold
    shown = labels_that_fit(x, y, names, first, font_px=font, marker_px=MARKER_SIZE / 2)
    if at is not None:
        shown[at] = False  # drawn on top, with its ring
    labels = [name if keep else "" for name, keep in zip(names, shown, strict=True)]
    hover = [f"L{layer} H{head}: nearest " + ", ".join(f"L{a}H{b} {d:.2f}" for (a, b), d in head_map.related(cell, 3))
             for layer, head in head_map.cells for cell in [(layer, head)]]
    traces = []
    if current is not None and related:
        index = {cell: i for i, cell in enumerate(head_map.cells)}
        start = index[current]
        lines_x, lines_y = [], []
        for cell, _distance in related:
            lines_x += [x[start], x[index[cell]], None]
            lines_y += [y[start], y[index[cell]], None]
        traces.append(go.Scatter(x=lines_x, y=lines_y, mode="lines", name="most alike heads", hoverinfo="skip",
                                 line={"color": "#f0a030", "width": 1.5}))
    traces.append(go.Scatter(
        x=x, y=y, mode="markers+text", text=labels, textposition="top center",
        textfont={"size": LABEL_PX, "shadow": HALO}, customdata=cells.tolist(), hovertext=hover, hoverinfo="text",
        name="heads",
        marker={"size": MARKER_SIZE, "color": cells[:, 0], "colorscale": "Viridis", "cmin": 0,
                "cmax": max(n_layers - 1, 1),
                "line": {"width": 0.5, "color": "#333"},
                "colorbar": colour_bar_left("middle", title={"text": "layer", "side": "right"},
                                            tickvals=list(range(n_layers)))}))
    if at is not None:
        traces.append(go.Scatter(x=[x[at]], y=[y[at]], mode="markers+text", name=f"{names[at]} (current)",
                                 text=[f"<b>{names[at]}</b>"], textposition="top center",
                                 textfont={"size": CURRENT_LABEL_PX, "color": "#b35c00", "shadow": HALO},
                                 hoverinfo="skip",
                                 marker={"size": 20, "color": "rgba(0,0,0,0)",
                                         "line": {"width": 2.5, "color": "#f0a030"}}))
    figure = go.Figure(traces)
    axis = {"showticklabels": False, "showgrid": False, "zeroline": False, "title": None}
    figure.update_layout(plot_bgcolor="white", margin={"l": 10, "r": 10, "t": 30, "b": 10}, hovermode="closest",
                         legend=LEGEND_BELOW, modebar=MODEBAR, uirevision="headmap")
    figure.update_xaxes(**axis)
    figure.update_yaxes(**axis, scaleanchor="x", scaleratio=1)
    return figure
