"""Sentence view figures: BertViz-style query -> key lines for one text, and a head's average by position."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from dashboard.figures.single import KEY_COLOR, QUERY_COLOR
from dashboard.figures.text import plotly_text, title_layout
from workers.contracts.choices import ROLE_PLURALS

OPACITY_BINS = (0.02, 0.1, 0.2, 0.4, 0.6, 0.8, 1.01)  # lines under 0.02 are not drawn
ROWS_PX = 420  # pixels the tokens' column spans in the smallest sentence graph (a 1366x768 window)
LABEL_PX = (7, 12)  # the labels' font size, smallest and largest, in the smallest sentence graph
LABEL_FILL = 0.9  # the share of a written label's rows its font may take
GROWN_LABEL_PX = 16  # the largest the page lets a label grow in a taller graph (assets/qk_atlas.js)


def label_size(n: int) -> tuple[int, int]:
    """Font size of the token labels for a text of n tokens, and every how many rows one is written: as large as
    lets one label's row clear the next in the smallest sentence graph (ROWS_PX), within LABEL_PX; a text too long
    for the smallest size has every second (third …) token written, the rest named on hover."""
    room = LABEL_FILL * ROWS_PX / max(n, 1)
    return int(np.clip(np.floor(room), *LABEL_PX)), int(np.ceil(LABEL_PX[0] / room)) if room < LABEL_PX[0] else 1


def sentence_figure(words: list[str], attention: np.ndarray, focus: int | None, title: str) -> go.Figure:
    """Queries on the left, keys on the right, a line per (query, key) with opacity = attention.

    words: the text's tokens as people read them [n] (workers.core.tokens labels); attention [n, n] (rows
    queries); focus: a query position whose lines alone are drawn (hover isolates them), or None for all.
    """
    n = len(words)
    y = -np.arange(n, dtype=float)
    rows = [focus] if focus is not None and 0 <= focus < n else list(range(n))
    traces = []
    for low, high in zip(OPACITY_BINS[:-1], OPACITY_BINS[1:], strict=True):
        xs, ys = [], []
        for q in rows:
            for k in np.flatnonzero((attention[q] >= low) & (attention[q] < high)):
                xs += [0.0, 1.0, None]
                ys += [y[q], y[k], None]
        if xs:
            traces.append(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False,
                                     line={"color": "#ff7f0e", "width": 1 + 3 * low},
                                     opacity=min(1.0, 0.15 + (low + min(high, 1.0)) / 2)))
    labels = [plotly_text(w) for w in words]
    position = list(range(n))  # a list: Dash drops typed-array customdata from events
    size, every = label_size(n)
    written = [label if i % every == 0 else "" for i, label in enumerate(labels)]
    for role, x, side, colour in (("query", 0.0, "left", QUERY_COLOR), ("key", 1.0, "right", KEY_COLOR)):
        traces.append(go.Scatter(x=np.full(n, x), y=y, mode="markers+text", text=written, hovertext=labels,
                                 textposition=f"middle {side}", textfont={"size": size}, customdata=position,
                                 meta={"label_px": size, "label_every": every, "label_fill": LABEL_FILL,
                                       "label_largest": GROWN_LABEL_PX},  # the page may grow them (qk_atlas.js)
                                 name=ROLE_PLURALS[role], marker={"color": colour, "size": 8},
                                 hovertemplate=f"{role} %{{hovertext}} · position %{{customdata}}<extra></extra>"))
    figure = go.Figure(traces)
    figure.update_layout(**title_layout(title), showlegend=False, plot_bgcolor="white",
                         margin={"l": 10, "r": 40, "b": 10}, hovermode="closest")
    figure.update_xaxes(visible=False, range=[-0.9, 1.9], fixedrange=True)
    figure.update_yaxes(visible=False, range=[-n + 0.3, 0.8], fixedrange=True)
    return figure


def aggregate_figure(mean: np.ndarray, count: np.ndarray, title: str) -> go.Figure:
    """Heatmap of the head's mean attention by (query position, key position) over the corpus."""
    size = int(np.max(np.flatnonzero(count.sum(axis=1) > 0), initial=0)) + 1
    figure = go.Figure(go.Heatmap(z=mean[:size, :size], colorscale="Oranges", zmin=0, zmax=float(np.nanmax(mean)),
                                  customdata=count[:size, :size],
                                  hovertemplate="query pos %{y} → key pos %{x}<br>mean attention %{z:.3f}"
                                                "<br>%{customdata} texts<extra></extra>",
                                  colorbar={"title": {"text": "mean attention", "side": "top"}, "thickness": 10,
                                            "len": 0.6, "orientation": "h", "y": -0.22, "yanchor": "top"}))
    # the colour bar lies under the plot: the toolbar stands upright in the right margin
    figure.update_layout(**title_layout(title), plot_bgcolor="white", margin={"l": 40, "r": 40, "b": 40})
    figure.update_xaxes(title="key position", constrain="domain")
    figure.update_yaxes(title="query position", autorange="reversed", scaleanchor="x")
    return figure
