"""The matrix figure: every head tiled by coordinate offsets in ONE WebGL figure (one Scattergl per role).

Rows are layers (layer 0 on top), columns are heads. Each head's picture is rescaled into a cell of CELL x CELL
integer units, so coordinates travel as uint16 (about 5.3 bytes a point); a click maps back by its position.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from dashboard.figures import LEGEND_BELOW, MODEBAR, colour_bar_left
from dashboard.figures.single import KEY_COLOR, QUERY_COLOR
from dashboard.figures.text import plotly_text
from workers.contracts.choices import ROLE_PLURALS

TINT_SCALE = "Viridis"
TINT_ALPHA = 0.28
CELL = 1000  # cell size in coordinate units
STEP = 1180  # cell size plus the gap between cells


def unit_cell(coords: np.ndarray) -> np.ndarray:
    """[n, 2] -> the same picture in [0, 1]², robust to outliers (1st-99th percentile), aspect kept."""
    low, high = np.percentile(coords, [1, 99], axis=0)
    span = float(max(high - low)) or 1.0
    centred = (coords - (low + high) / 2) / span + 0.5
    return np.clip(centred, -0.02, 1.02).astype(np.float32)


def cell_origin(layer: int, head: int, n_layers: int) -> tuple[int, int]:
    """Bottom-left corner of a cell, in coordinate units (layer 0 is the top row)."""
    return head * STEP + STEP // 2, (n_layers - 1 - layer) * STEP + STEP // 2


def cell_at(x: float, y: float, n_layers: int) -> tuple[int, int]:
    """(layer, head) of the cell holding a point of the figure."""
    head = int((x - STEP // 2 + (STEP - CELL) / 2) // STEP)
    row = int((y - STEP // 2 + (STEP - CELL) / 2) // STEP)
    return max(0, n_layers - 1 - row), max(0, head)


def ranked_slots(values: dict[tuple[int, int], float], n_heads: int) -> dict[tuple[int, int], tuple[int, int]]:
    """(layer, head) -> (row, column) slot: heads ranked by value, highest first, row by row (NaN last)."""
    ranked = sorted(values, key=lambda cell: (np.isnan(values[cell]), -np.nan_to_num(values[cell]), cell))
    return {cell: divmod(rank, n_heads) for rank, cell in enumerate(ranked)}


def tint_colours(values: dict[tuple[int, int], float]) -> tuple[dict[tuple[int, int], str], tuple[float, float]]:
    """(layer, head) -> rgba fill from the values' range on TINT_SCALE (NaN left out), and that range."""
    finite = {cell: value for cell, value in values.items() if np.isfinite(value)}
    if not finite:
        return {}, (0.0, 1.0)
    low, high = min(finite.values()), max(finite.values())
    span = (high - low) or 1.0
    colours = sample_colorscale(TINT_SCALE, [(value - low) / span for value in finite.values()], colortype="tuple")
    fills = {cell: "rgba({:.0f},{:.0f},{:.0f},{})".format(*(255 * part for part in colour[:3]), TINT_ALPHA)
             for cell, colour in zip(finite, colours, strict=True)}
    return fills, (low, high)


def matrix_figure(cells: dict[tuple[int, int], np.ndarray], n_layers: int, n_heads: int, sample: np.ndarray,
                  matches: np.ndarray | None = None, provisional: set | None = None,
                  slots: dict[tuple[int, int], tuple[int, int]] | None = None,
                  labels: dict[tuple[int, int], str] | None = None,
                  tint: tuple[dict[tuple[int, int], float], str] | None = None, in_unit_cell: bool = False
                  ) -> go.Figure:
    """cells: (layer, head) -> coords [2N, 2] (queries then keys), or with `in_unit_cell` already the sample's rows
    through `unit_cell` [2S, 2]; sample: token rows drawn per head;
    provisional: cells drawn with a stand-in projection (dashed frame) until the requested one finishes;
    slots: where each head goes when ranked (default: row = layer, column = head), labels: a line above each cell;
    tint: (per-head values, their name) to colour each cell's background, with a colour bar."""
    slots = slots or {(layer, head): (layer, head) for layer in range(n_layers) for head in range(n_heads)}
    placed: dict[str, list[np.ndarray]] = {"query": [], "key": [], "match": []}
    for (layer, head), coords in sorted(cells.items()):
        if (layer, head) not in slots:
            continue
        n_tokens = len(coords) // 2
        unit = coords if in_unit_cell else unit_cell(coords[np.concatenate([sample, sample + n_tokens])])
        origin = np.array(cell_origin(*slots[(layer, head)], n_layers))
        points = (np.round(unit * CELL) + origin).astype(np.uint16)
        placed["query"].append(points[: len(sample)])
        placed["key"].append(points[len(sample):])
        if matches is not None and len(matches):
            hit = np.isin(sample, matches)
            placed["match"].append(np.vstack([points[: len(sample)][hit], points[len(sample):][hit]]))
    traces = [_role_trace(placed["query"], ROLE_PLURALS["query"], QUERY_COLOR),
              _role_trace(placed["key"], ROLE_PLURALS["key"], KEY_COLOR)]
    if placed["match"]:
        traces.append(_role_trace(placed["match"], "search matches", "#111111", size=4, opacity=0.9))
    fills, value_range = tint_colours(tint[0]) if tint else ({}, (0.0, 1.0))
    if tint:
        traces.append(_colour_bar(value_range, tint[1]))
    figure = go.Figure(traces, _validate=False)  # a frame per cell: plotly's validation costs ~1 ms a shape
    _decorate(figure, cells, n_layers, n_heads, provisional or set(), slots, labels, fills)
    return figure


def _colour_bar(value_range: tuple[float, float], title: str) -> go.Scattergl:
    """An invisible trace that carries the tint's colour bar."""
    low, high = value_range
    return go.Scattergl(x=[None], y=[None], mode="markers", name=title, showlegend=False, hoverinfo="none",
                        marker={"color": [low, high], "colorscale": TINT_SCALE, "cmin": low, "cmax": high,
                                "opacity": TINT_ALPHA + 0.3, "showscale": True,
                                "colorbar": colour_bar_left("middle", title={"text": plotly_text(title),
                                                                             "side": "right"})})


def _role_trace(parts: list[np.ndarray], name: str, colour: str, size: float = 2, opacity: float = 0.6
                ) -> go.Scattergl:
    """All cells' points of one kind in one trace (hover events on, no label: a click opens the cell)."""
    points = np.vstack(parts) if parts else np.zeros((0, 2), np.uint16)
    return go.Scattergl(x=points[:, 0], y=points[:, 1], mode="markers", name=name, hoverinfo="none",
                        marker={"size": size, "color": colour, "opacity": opacity})


LABELLED_PER_AXIS = 16  # at most about this many layer (or head) labels: every k-th one beyond that


def label_step(count: int) -> int:
    """Label every k-th layer or head so that at most about LABELLED_PER_AXIS labels stand side by side."""
    return max(1, -(-count // LABELLED_PER_AXIS))


def _decorate(figure: go.Figure, cells: dict, n_layers: int, n_heads: int, provisional: set,
              slots: dict[tuple[int, int], tuple[int, int]], labels: dict[tuple[int, int], str] | None,
              fills: dict[tuple[int, int], str] | None = None) -> None:
    """Layer and head labels (or a label per cell when ranked), cell frames, pending cells marked, square aspect."""
    shapes, annotations = [], []
    pad = 40
    for cell, (row, column) in slots.items():
        x, y = cell_origin(row, column, n_layers)
        done = cell in cells
        line = {"width": 0.5, "color": "#ccc" if done else "#eee"}
        if cell in provisional:
            line = {"width": 1.5, "color": "#f0a030", "dash": "dash"}
        fill = (fills or {}).get(cell) or ("rgba(0,0,0,0)" if done else "rgba(240,240,240,0.6)")
        shapes.append({"type": "rect", "x0": x - pad, "y0": y - pad, "x1": x + CELL + pad, "y1": y + CELL + pad,
                       "line": line, "fillcolor": fill, "layer": "below"})
        if not done:
            annotations.append({"x": x + CELL / 2, "y": y + CELL / 2, "text": "…", "showarrow": False,
                                "font": {"color": "#aaa"}})
        if labels is not None and cell in labels:
            annotations.append({"x": x + CELL / 2, "y": y + CELL + 90, "text": labels[cell], "showarrow": False,
                                "font": {"size": 9}})
    if labels is None:
        for layer in range(0, n_layers, label_step(n_layers)):
            x, y = cell_origin(layer, 0, n_layers)
            annotations.append({"x": x - 100, "y": y + CELL / 2, "text": f"L{layer}", "showarrow": False,
                                "xanchor": "right", "font": {"size": 11}})
        for head in range(0, n_heads, label_step(n_heads)):
            x, y = cell_origin(0, head, n_layers)
            annotations.append({"x": x + CELL / 2, "y": y + CELL + 120, "text": f"H{head}", "showarrow": False,
                                "font": {"size": 11}})
    axis = {"showticklabels": False, "showgrid": False, "zeroline": False, "title": None}
    figure.update_layout(shapes=shapes, annotations=annotations, plot_bgcolor="white", uirevision="matrix",
                         margin={"l": 30, "r": 10, "t": 30, "b": 10}, dragmode="pan", showlegend=True,
                         legend=LEGEND_BELOW, modebar=MODEBAR,
                         hovermode="closest")
    figure.update_xaxes(**axis)
    figure.update_yaxes(**axis, scaleanchor="x", scaleratio=1)
