"""The matrix figure: every head tiled by coordinate offsets in ONE WebGL figure (one Scattergl per role).

Rows are layers (layer 0 on top), columns are heads. Each head's picture is rescaled into a unit cell.
customdata carries the cell index (layer * heads + head), so a click opens that head.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from dashboard.figures.single import KEY_COLOR, QUERY_COLOR

GAP = 0.18  # space between cells, in cell widths


def unit_cell(coords: np.ndarray) -> np.ndarray:
    """[n, 2] -> the same picture in [0, 1]², robust to outliers (1st-99th percentile), aspect kept."""
    low = np.percentile(coords, 1, axis=0)
    high = np.percentile(coords, 99, axis=0)
    span = float(max(high - low)) or 1.0
    centred = (coords - (low + high) / 2) / span + 0.5
    return np.clip(centred, -0.02, 1.02).astype(np.float32)


def cell_origin(layer: int, head: int) -> tuple[float, float]:
    """Bottom-left corner of a cell."""
    return head * (1 + GAP), -layer * (1 + GAP)


def cell_at(x: float, y: float) -> tuple[int, int]:
    """(layer, head) of the cell holding a point of the figure."""
    step = 1 + GAP
    return max(0, int(np.ceil(-y / step - 1e-9))), max(0, int(np.floor(x / step)))


def matrix_figure(cells: dict[tuple[int, int], np.ndarray], n_layers: int, n_heads: int, sample: np.ndarray,
                  matches: np.ndarray | None = None) -> go.Figure:
    """cells: (layer, head) -> coords [2N, 2] (queries then keys); sample: token rows drawn per head."""
    parts: dict[str, list[np.ndarray]] = {"query": [], "key": [], "qcell": [], "kcell": [], "match": []}
    n_tokens = None
    for (layer, head), coords in sorted(cells.items()):
        n_tokens = len(coords) // 2
        origin = np.array(cell_origin(layer, head), dtype=np.float32)
        rows = np.concatenate([sample, sample + n_tokens])
        placed = unit_cell(coords[rows]) + origin
        parts["query"].append(placed[: len(sample)])
        parts["key"].append(placed[len(sample):])
        cell = np.full(len(sample), layer * n_heads + head, dtype=np.uint16)
        parts["qcell"].append(cell)
        parts["kcell"].append(cell)
        if matches is not None and len(matches):
            hit = np.isin(sample, matches)
            parts["match"].append(np.vstack([placed[: len(sample)][hit], placed[len(sample):][hit]]))
    traces = [_role_trace(parts, "query"), _role_trace(parts, "key")]
    if parts["match"]:
        points = np.vstack(parts["match"])
        traces.append(go.Scattergl(x=points[:, 0], y=points[:, 1], mode="markers", name="search matches",
                                   hoverinfo="skip", marker={"size": 4, "color": "#111", "opacity": 0.9}))
    figure = go.Figure(traces)
    _decorate(figure, cells, n_layers, n_heads)
    return figure


def _role_trace(parts: dict[str, list[np.ndarray]], role: str) -> go.Scattergl:
    """All cells' points of one role in one trace."""
    points = np.vstack(parts[role]) if parts[role] else np.zeros((0, 2), np.float32)
    cells = np.concatenate(parts["qcell" if role == "query" else "kcell"]) if parts[role] else np.zeros(0, np.uint16)
    return go.Scattergl(x=points[:, 0], y=points[:, 1], mode="markers", name="queries" if role == "query" else "keys",
                        customdata=cells, hoverinfo="none",
                        marker={"size": 2, "color": QUERY_COLOR if role == "query" else KEY_COLOR, "opacity": 0.6})


def _decorate(figure: go.Figure, cells: dict, n_layers: int, n_heads: int) -> None:
    """Layer and head labels, cell frames, pending cells marked, fixed square aspect."""
    shapes, annotations = [], []
    for layer in range(n_layers):
        x, y = cell_origin(layer, 0)
        annotations.append({"x": x - 0.1, "y": y + 0.5, "text": f"L{layer}", "showarrow": False, "xanchor": "right",
                            "font": {"size": 11}})
        for head in range(n_heads):
            x, y = cell_origin(layer, head)
            done = (layer, head) in cells
            shapes.append({"type": "rect", "x0": x - 0.04, "y0": y - 0.04, "x1": x + 1.04, "y1": y + 1.04,
                           "line": {"width": 0.5, "color": "#ccc" if done else "#eee"},
                           "fillcolor": "rgba(0,0,0,0)" if done else "rgba(240,240,240,0.6)", "layer": "below"})
            if not done:
                annotations.append({"x": x + 0.5, "y": y + 0.5, "text": "…", "showarrow": False,
                                    "font": {"color": "#aaa"}})
    for head in range(n_heads):
        x, y = cell_origin(0, head)
        annotations.append({"x": x + 0.5, "y": y + 1.12, "text": f"H{head}", "showarrow": False,
                            "font": {"size": 11}})
    axis = {"showticklabels": False, "showgrid": False, "zeroline": False, "title": None}
    figure.update_layout(shapes=shapes, annotations=annotations, plot_bgcolor="white", uirevision="matrix",
                         margin={"l": 30, "r": 10, "t": 30, "b": 10}, dragmode="pan", showlegend=True,
                         legend={"orientation": "h", "y": 1.06, "x": 0, "itemsizing": "constant"},
                         hovermode="closest")
    figure.update_xaxes(**axis)
    figure.update_yaxes(**axis, scaleanchor="x", scaleratio=1)
