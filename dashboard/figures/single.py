"""The single-head figure: queries and keys of one head in one WebGL scatter (2D) or 3D scatter, with overlays.

Traces, in order: queries, keys, then optional overlays (labels, search matches, the selected text's points and
its attention lines). Queries are traces[0] and keys traces[1], so a click's pointNumber is a token index.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import plotly.graph_objects as go

from dashboard.figures import LEGEND_BELOW, MODEBAR, colour_bar_left
from dashboard.figures.text import labels_that_fit, plotly_text
from workers.contracts.choices import COLOURS, ROLE_PLURALS
from workers.contracts.results import TextAttention
from workers.core import metrics
from workers.core.tokens import with_readable

QUERY_COLOR = "#1b9e77"  # green, as AttentionViz draws queries
KEY_COLOR = "#d6257c"  # magenta-pink for keys
ROLE_COLOURS = {"query": QUERY_COLOR, "key": KEY_COLOR}
QUERY_SCALE = [[0.0, "#c7e9c0"], [1.0, "#00441b"]]
KEY_SCALE = [[0.0, "#fcc5c0"], [1.0, "#7a0177"]]
CATEGORY_PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756"]
LINE_THRESHOLD = 0.1  # attention lines below this weight are not drawn
LINE_BINS = (0.1, 0.25, 0.5, 0.75, 1.01)
LABEL_SAMPLE = 1000
MATCH_LABELS = 60  # search matches are labelled when at most this many (more would bury the picture in text)
MATCH_FONT = 10  # pixels: labels of search matches and of the selected text
LABEL_FONT = 9  # pixels: the sample's token labels
NO_LABEL = " "  # an unlabelled point of a labelled trace (WebGL text draws no label of a trace whose first is "")
MATCH_SIZE = 6  # pixels: a search match's marker
POINT_PX = 4.0  # a 2D picture's marker diameter, up to DENSE_POINTS points
DENSE_POINTS = 50_000  # above this many points a 2D picture's markers shrink (marker_px)
SMALLEST_PX = 2.0
SMALLEST_PLOT = (480, 330)  # pixels: a picture of the side-by-side view at 1366x768 (match labels are fitted to it)

COLOR_MODES = {choice.value: choice.label for choice in COLOURS}
CATEGORIES = {"position_mod5": ["0", "1", "2", "3", "4"], "kind": ["ordinary", "special", "punctuation"]}


@dataclass
class HeadData:
    """One head's arrays: coords [2N, dims] (queries then keys), tokens table, raw q and k [N, d_head], and its
    stored attention within each text (the selected text's lines; None while the workers compute it)."""

    coords: np.ndarray
    tokens: dict[str, np.ndarray]
    q: np.ndarray
    k: np.ndarray
    causal: bool
    attention: TextAttention | None = None


@dataclass(frozen=True)
class Style:
    """Everything about the picture that is not computed by a worker."""

    color: str = "role"
    show: str = "both"  # both | queries | keys
    labels: bool = False
    search: str = ""
    text: int | None = None
    pos: int | None = None


def available_colors(tokens: dict[str, np.ndarray]) -> list[str]:
    """Colour modes that apply to this tokens table: an image table's (it has patch rows) or a text table's."""
    modality = "image" if "row" in tokens else "text"
    return [c.value for c in COLOURS if c.modality in ("", modality)]


def token_labels(tokens: dict[str, np.ndarray]) -> np.ndarray:
    """Each token as people read it (workers.core.tokens), from a tokens table."""
    return with_readable(tokens)["label"]


def role_hidden(style: Style, role: str) -> bool:
    """Whether the style shows only the other role."""
    return style.show not in ("both", ROLE_PLURALS[role])


def color_values(mode: str, role: str, data: HeadData) -> np.ndarray | None:
    """Per-token values [N] that a colour mode maps (None for 'role', and for a mode this table has no values for,
    drawn as 'role')."""
    tokens = data.tokens
    if mode not in available_colors(tokens):
        return None
    values = {
        "position": lambda: tokens["position_norm"],
        "position_mod5": lambda: tokens["position"] % 5,
        "kind": lambda: metrics.token_kind(token_labels(tokens), tokens["is_special"]),
        "norm": lambda: metrics.vector_norms(data.q if role == "query" else data.k),
        "token_length": lambda: metrics.token_lengths(token_labels(tokens)),
        "frequency": lambda: np.log10(np.maximum(tokens["frequency"], 1)),
        "text_length": lambda: tokens["length"],
        "row": lambda: tokens.get("row"),
        "col": lambda: tokens.get("col"),
    }.get(mode)
    return None if values is None else np.asarray(values(), dtype=np.float32)


def _discrete_scale(count: int) -> list:
    """A stepped colorscale for `count` categories over [-0.5, count - 0.5]."""
    scale = []
    for i in range(count):
        colour = CATEGORY_PALETTE[i % len(CATEGORY_PALETTE)]
        scale += [[i / count, colour], [(i + 1) / count, colour]]
    return scale


def _marker(style: Style, role: str, data: HeadData, size: float, lows_highs: tuple[float, float] | None) -> dict:
    """Marker spec for one role under the colour mode."""
    values = color_values(style.color, role, data)
    if values is None:
        return {"color": ROLE_COLOURS[role], "size": size, "opacity": 0.7}
    marker = {"color": values, "size": size, "opacity": 0.75}
    if style.color in CATEGORIES:
        names = CATEGORIES[style.color]
        marker.update(colorscale=_discrete_scale(len(names)), cmin=-0.5, cmax=len(names) - 0.5,
                      symbol="circle" if role == "query" else "diamond")
        if role == "query":
            marker["colorbar"] = colour_bar_left("middle", tickvals=list(range(len(names))), ticktext=names,
                                                 title={"text": plotly_text(COLOR_MODES[style.color]), "side": "right"})
        return marker
    low, high = lows_highs or (float(np.nanmin(values)), float(np.nanmax(values)))
    marker.update(colorscale=QUERY_SCALE if role == "query" else KEY_SCALE, cmin=low, cmax=high,
                  colorbar=colour_bar_left("upper" if role == "query" else "lower",
                                           title={"text": ROLE_PLURALS[role]}))
    return marker


def _shared_range(style: Style, data: HeadData) -> tuple[float, float] | None:
    """One value range for both roles (so equal colours mean equal values), except for vector norms."""
    if style.color in ("role", "norm") or style.color in CATEGORIES:
        return None
    values = color_values(style.color, "query", data)
    return None if values is None else (float(np.nanmin(values)), float(np.nanmax(values)))


def _scatter(coords: np.ndarray, **kwargs) -> go.BaseTraceType:
    """Scattergl in 2D, Scatter3d in 3D."""
    if coords.shape[1] == 3:
        return go.Scatter3d(x=coords[:, 0], y=coords[:, 1], z=coords[:, 2], **kwargs)
    return go.Scattergl(x=coords[:, 0], y=coords[:, 1], **kwargs)


def marker_px(points: int, dims: int) -> float:
    """A picture's marker diameter in pixels: 2 in 3D; in 2D 4 up to DENSE_POINTS points, then smaller so that all
    markers together cover what DENSE_POINTS of them would (never under 2). A dense cloud then shows its structure
    rather than one blot, and a software renderer (headless Chromium's SwiftShader) draws it sooner: its time grows
    with the pixels the markers cover."""
    if dims == 3:
        return SMALLEST_PX
    return float(np.clip(POINT_PX * np.sqrt(DENSE_POINTS / max(points, 1)), SMALLEST_PX, POINT_PX))


def screen_coords(coords: np.ndarray) -> np.ndarray:
    """[n, dims] float -> uint16 on one common scale (aspect kept): 2 bytes a coordinate on the wire.

    The axes carry no units, so 65,536 levels per axis lose nothing visible, and typed uint16 arrays travel as
    base64 (about 5.3 bytes per 2D point instead of 10.7 for float32). Coordinates already on this scale (uint16,
    as dashboard.jobs.head_data gives them) are returned as they are: the scale maps them onto themselves.
    """
    if coords.dtype == np.uint16:
        return coords
    low = coords.min(axis=0)
    span = float((coords.max(axis=0) - low).max()) or 1.0
    return np.round((coords - low) * (65535.0 / span)).astype(np.uint16)


def base_traces(data: HeadData, style: Style) -> list[go.BaseTraceType]:
    """The queries trace and the keys trace (hover: role and position; the token and sentence show in the panel)."""
    n = len(data.tokens["token"])
    size = marker_px(len(data.coords), data.coords.shape[1])
    position = data.tokens["position"].astype(np.uint8 if data.tokens["position"].max() < 256 else np.uint16)
    shared = _shared_range(style, data)
    traces = []
    for role, rows in (("query", slice(0, n)), ("key", slice(n, 2 * n))):
        traces.append(_scatter(
            data.coords[rows], name=ROLE_PLURALS[role], mode="markers", customdata=position,
            visible="legendonly" if role_hidden(style, role) else True, marker=_marker(style, role, data, size, shared),
            hovertemplate=f"{role} · position %{{customdata}}<extra></extra>"))
    return traces


def gl_text(labels: np.ndarray) -> list[str]:
    """Token labels for WebGL text (Scattergl, Scatter3d): drawn as given, never parsed as markup, so not passed
    through plotly_text (that would show '&lt;'). Hover labels and SVG text are parsed by Plotly and are."""
    return [str(label) for label in labels]


def hover_labels(tokens: dict[str, np.ndarray], rows: np.ndarray) -> list[str]:
    """'<b>token</b> · position p' per row, the token as people read it and never as markup."""
    return [f"<b>{plotly_text(str(label))}</b> · position {p}"
            for label, p in zip(token_labels(tokens)[rows], tokens["position"][rows], strict=True)]


def _points(data: HeadData, rows: np.ndarray, role: str) -> np.ndarray:
    """Coordinates of some tokens' queries (role 'query') or keys."""
    n = len(data.tokens["token"])
    return data.coords[rows if role == "query" else rows + n]


def overlay_traces(data: HeadData, style: Style) -> tuple[list[go.BaseTraceType], dict[str, int]]:
    """Label, search and selection overlays, and counts for the status line."""
    traces: list[go.BaseTraceType] = []
    counts: dict[str, int] = {}
    searching = bool(style.search.strip())
    matches = (np.flatnonzero(metrics.search_matches(token_labels(data.tokens), style.search)) if searching
               else np.array([], dtype=int))
    if style.labels:  # faint behind a search or a selection, which carry their own labels
        traces += _label_traces(data, style, faint=searching or style.text is not None, skip=matches)
    if searching:
        counts["matches"] = int(len(matches))
        labelled = _labels_apart(data, style, matches, marker_px=MATCH_SIZE / 2) if len(matches) <= MATCH_LABELS \
            else None
        traces += _highlight_traces(data, style, matches, "match", "#111111", text=labelled is not None,
                                    size=MATCH_SIZE, labelled=labelled)
    if style.text is not None and style.text >= 0:
        rows = metrics.text_rows(data.tokens["text_id"], style.text)
        attention = data.attention.of(style.text) if data.attention is not None and len(rows) else None
        if attention is not None:
            traces += _line_traces(data, rows, attention)
            counts["lines"] = int((attention >= LINE_THRESHOLD).sum())
        if len(rows):
            traces += _highlight_traces(data, style, rows, "selected text", "#ff7f0e", text=True)
    return traces, counts


def _label_traces(data: HeadData, style: Style, faint: bool = False, skip: np.ndarray | None = None
                  ) -> list[go.BaseTraceType]:
    """Token labels on a fixed sample of points (all of them when the head has few), less the rows `skip` (labelled
    by an overlay), each written only where it meets no other (the rest of the sample is named by nothing: a cloud
    of words on words reads as none); faint: drawn light, behind a search or a selection."""
    n = len(data.tokens["token"])
    sample = np.random.default_rng(0).permutation(n)[:LABEL_SAMPLE]
    if skip is not None and len(skip):
        sample = sample[~np.isin(sample, skip)]
    words = token_labels(data.tokens)
    fits = _labels_apart(data, style, sample, LABEL_FONT)
    traces = []
    for role in _shown_roles(style):
        written = sample[fits[role]]
        label = f"{role} labels" if len(written) == n else f"{role} labels ({len(written):,} of {n:,})"
        traces.append(_scatter(_points(data, written, role), mode="text", name=label, hoverinfo="skip",
                               text=gl_text(words[written]),
                               textfont={"size": LABEL_FONT, "color": ROLE_COLOURS[role] + ("55" if faint else "")}))
    return traces


def _shown_roles(style: Style) -> list[str]:
    """The roles drawn, queries first."""
    return [role for role in ROLE_COLOURS if not role_hidden(style, role)]


def _labels_apart(data: HeadData, style: Style, rows: np.ndarray, font_px: float = MATCH_FONT,
                  marker_px: float = 0.0) -> dict[str, np.ndarray]:
    """Per shown role, which of the rows' points keep their label: those whose labels meet no other kept one (nor
    another of the rows' markers of radius marker_px) in the smallest plot the picture is drawn in (a pile of one
    word reads as a blot, not as words); in 3D, where the camera decides, all of them."""
    roles = _shown_roles(style)
    if not roles or not len(rows) or data.coords.shape[1] != 2:
        return {role: np.ones(len(rows), dtype=bool) for role in roles}
    points = np.vstack([_points(data, rows, role) for role in roles])
    words = gl_text(token_labels(data.tokens)[rows]) * len(roles)
    extent = np.ptp(data.coords.astype(float), axis=0)  # the whole picture's, not the matches'
    shown = labels_that_fit(points[:, 0], points[:, 1], words, [], *SMALLEST_PLOT, font_px=font_px,
                            extent=(float(extent[0]), float(extent[1])), marker_px=marker_px)
    return {role: part for role, part in zip(roles, np.split(shown, len(roles)), strict=True)}


def _highlight_traces(data: HeadData, style: Style, rows: np.ndarray, label: str, outline: str, text: bool,
                      size: float = 9, labelled: dict[str, np.ndarray] | None = None) -> list[go.BaseTraceType]:
    """Bigger, outlined markers (and labels: per role, only where `labelled` says, when given) for some tokens'
    queries and keys."""
    traces = []
    words = gl_text(token_labels(data.tokens)[rows])
    for role in _shown_roles(style):
        colour = ROLE_COLOURS[role]
        shown = words if labelled is None else [w if keep else NO_LABEL for w, keep in zip(words, labelled[role],
                                                                                             strict=True)]
        traces.append(_scatter(
            _points(data, rows, role), name=f"{label} ({ROLE_PLURALS[role]})",
            mode="markers+text" if text else "markers",
            text=shown, textposition="top center", textfont={"size": MATCH_FONT, "color": "#222"},
            customdata=rows.tolist(), hovertext=hover_labels(data.tokens, rows),  # a list: Dash drops typed arrays
            hovertemplate=f"%{{hovertext}}<br>{role}<extra>{label}</extra>",
            marker={"size": size, "color": colour, "line": {"width": 1.5, "color": outline}, "opacity": 1.0}))
    return traces


def _line_traces(data: HeadData, rows: np.ndarray, attention: np.ndarray) -> list[go.BaseTraceType]:
    """Lines from each query of the text to its keys with attention >= LINE_THRESHOLD, opacity by weight bin."""
    q_points, k_points = _points(data, rows, "query"), _points(data, rows, "key")
    traces = []
    for low, high in zip(LINE_BINS[:-1], LINE_BINS[1:], strict=True):
        pairs = np.argwhere((attention >= low) & (attention < high))
        if not len(pairs):
            continue
        segments = np.full((3 * len(pairs), q_points.shape[1]), np.nan, dtype=np.float32)
        segments[0::3] = q_points[pairs[:, 0]]
        segments[1::3] = k_points[pairs[:, 1]]
        traces.append(_scatter(segments, mode="lines", name=f"attention {low:.2f}–{min(high, 1):.2f}",
                               hoverinfo="skip", opacity=min(1.0, (low + high) / 2 + 0.1),
                               line={"color": "#ff7f0e", "width": 1 + 3 * low}, showlegend=True))
    return traces


def on_screen(data: HeadData) -> HeadData:
    """The head with its coordinates as drawn (uint16 screen scale), which every trace of the figure uses."""
    return replace(data, coords=screen_coords(data.coords))


def base_signature(request: dict, style: Style) -> str:
    """What the base traces depend on: the computed head, colour mode and roles shown (not the overlays)."""
    return "|".join([*(str(request[k]) for k in sorted(request)), style.color, style.show])


def single_figure(data: HeadData, style: Style, uirevision: str) -> tuple[go.Figure, dict[str, int]]:
    """The whole single-view figure and overlay counts."""
    data = on_screen(data)
    overlays, counts = overlay_traces(data, style)
    figure = go.Figure(base_traces(data, style) + overlays)
    _picture_layout(figure, uirevision, data.coords.shape[1])
    return figure, counts


def _picture_layout(figure: go.Figure, uirevision: str, dims: int) -> None:
    """The layout every point picture shares: no axes, equal aspect, pan, click events, legend below."""
    axis = {"showticklabels": False, "showgrid": False, "zeroline": False, "title": None}
    figure.update_layout(
        uirevision=uirevision, margin={"l": 10, "r": 10, "t": 10, "b": 10},
        legend=LEGEND_BELOW, modebar=MODEBAR,
        hoverlabel={"namelength": 0}, plot_bgcolor="white", dragmode="pan", clickmode="event",
    )
    if dims == 3:
        figure.update_layout(scene={"xaxis": axis, "yaxis": axis, "zaxis": axis, "aspectmode": "data"})
    else:
        figure.update_xaxes(**axis)
        figure.update_yaxes(**axis, scaleanchor="x", scaleratio=1)


def empty_figure(message: str) -> go.Figure:
    """A blank figure carrying a message (while computing or on error)."""
    figure = go.Figure()
    figure.add_annotation(text=plotly_text(message), showarrow=False, font={"size": 14, "color": "#6c757d"})
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    figure.update_layout(plot_bgcolor="white", margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return figure


VALUE_COLOR = "#e6850e"  # orange: value vectors, a third kind of point


def values_figure(coords: np.ndarray, tokens: dict[str, np.ndarray], values: np.ndarray, style: Style,
                  uirevision: str) -> go.Figure:
    """One head's value vectors embedded on their own: coords [N, dims], values [N, d_head]; colour modes as in the
    single view ('vector norm' is the value norm); the selected text outlined and labelled."""
    data = on_screen(HeadData(coords=np.vstack([coords, coords]), tokens=tokens, q=values, k=values, causal=False))
    n = len(tokens["token"])
    points = data.coords[n:]
    marker = _marker(style, "key", data, marker_px(len(points), points.shape[1]), _shared_range(style, data))
    if style.color == "role":
        marker["color"] = VALUE_COLOR
    position = tokens["position"].astype(np.uint16)
    traces = [_scatter(points, name="value vectors", mode="markers", customdata=position, marker=marker,
                       hovertemplate="value · position %{customdata}<extra></extra>")]
    if style.text is not None:
        rows = metrics.text_rows(tokens["text_id"], style.text)
        traces.append(_scatter(
            points[rows], name="selected text (values)", mode="markers+text", text=gl_text(token_labels(tokens)[rows]),
            textposition="top center", textfont={"size": MATCH_FONT, "color": "#222"}, customdata=rows.tolist(),
            hovertext=hover_labels(tokens, rows), hovertemplate="%{hovertext}<br>value<extra></extra>",
            marker={"size": 9, "color": VALUE_COLOR, "line": {"width": 1.5, "color": "#111"}, "opacity": 1.0}))
    figure = go.Figure(traces)
    _picture_layout(figure, uirevision, points.shape[1])
    return figure
