"""The single-head figure: queries and keys of one head in one WebGL scatter (2D) or 3D scatter."""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

QUERY_COLOR = "#1b9e77"  # green, as AttentionViz draws queries
KEY_COLOR = "#d6257c"  # magenta-pink for keys
QUERY_SCALE = [[0.0, "#c7e9c0"], [1.0, "#00441b"]]
KEY_SCALE = [[0.0, "#fcc5c0"], [1.0, "#7a0177"]]


def _marker(color_mode: str, role: str, tokens: dict[str, np.ndarray], size: float) -> dict:
    """Marker spec for one role under a colouring mode."""
    if color_mode == "position":
        scale = QUERY_SCALE if role == "query" else KEY_SCALE
        x = 1.02 if role == "query" else 1.12
        return {"color": tokens["position_norm"].astype(np.float32), "colorscale": scale, "cmin": 0, "cmax": 1,
                "size": size, "opacity": 0.75,
                "colorbar": {"title": {"text": f"{role} pos."}, "x": x, "len": 0.5, "thickness": 12}}
    return {"color": QUERY_COLOR if role == "query" else KEY_COLOR, "size": size, "opacity": 0.7}


def _trace(coords: np.ndarray, role: str, tokens: dict[str, np.ndarray], color_mode: str) -> go.BaseTraceType:
    """One role's trace; hover shows token, role and position (the sentence shows in the hover panel)."""
    common = {
        "name": "queries" if role == "query" else "keys",
        "mode": "markers",
        "text": [html.escape(str(t)) for t in tokens["token"]],
        "customdata": tokens["position"].astype(np.int32),
        "hovertemplate": f"<b>%{{text}}</b><br>{role} · position %{{customdata}}<extra></extra>",
    }
    if coords.shape[1] == 3:
        return go.Scatter3d(x=coords[:, 0], y=coords[:, 1], z=coords[:, 2],
                            marker=_marker(color_mode, role, tokens, 2.0), **common)
    return go.Scattergl(x=coords[:, 0], y=coords[:, 1], marker=_marker(color_mode, role, tokens, 4.0), **common)


def single_figure(coords: np.ndarray, tokens: dict[str, np.ndarray], color_mode: str, uirevision: str) -> go.Figure:
    """coords [2N, dims] (queries then keys) -> figure with a queries trace and a keys trace."""
    n = len(tokens["token"])
    coords = coords.astype(np.float32)
    figure = go.Figure([_trace(coords[:n], "query", tokens, color_mode), _trace(coords[n:], "key", tokens, color_mode)])
    axis = {"showticklabels": False, "showgrid": False, "zeroline": False, "title": None}
    figure.update_layout(
        uirevision=uirevision,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        legend={"orientation": "h", "y": 1.02, "x": 0, "itemsizing": "constant"},
        hoverlabel={"namelength": 0},
        plot_bgcolor="white",
        dragmode="pan",
    )
    if coords.shape[1] == 3:
        figure.update_layout(scene={"xaxis": axis, "yaxis": axis, "zaxis": axis, "aspectmode": "data"})
    else:
        figure.update_xaxes(**axis)
        figure.update_yaxes(**axis, scaleanchor="x", scaleratio=1)
    return figure


def empty_figure(message: str) -> go.Figure:
    """A blank figure carrying a message (while computing or on error)."""
    figure = go.Figure()
    figure.add_annotation(text=html.escape(message), showarrow=False, font={"size": 14, "color": "#6c757d"})
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    figure.update_layout(plot_bgcolor="white", margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return figure
