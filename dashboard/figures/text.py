"""Text that goes into a Plotly figure, shown as typed.

Plotly reads titles, annotations, tick labels, legend names, hover text and SVG trace text as its own small markup
(`<b>`, `<br>`, `<a href>` …) and decodes only a few entities (`&amp;`, `&lt;`, `&gt;`, `&nbsp;` and numeric ones):
`html.escape` would show its `&quot;` and `&#x27;` as written. `plotly_text` writes only & < > as entities, which
Plotly turns back into the characters, so markup in a corpus or a URL is shown, never followed. WebGL text
(Scattergl and Scatter3d `text`) is drawn as given and takes the text unchanged; Dash components (html.Div
children) escape their text themselves and take it unchanged too.
"""

from __future__ import annotations

import numpy as np

ENTITIES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))  # & first: the others' entities hold one


def plotly_text(text: str) -> str:
    """Text for Plotly's SVG markup: & < > as the entities Plotly decodes, everything else as it is."""
    for character, entity in ENTITIES:
        text = text.replace(character, entity)
    return text


def shortened(text: str, limit: int) -> str:
    """At most `limit` characters: cut at the last space that leaves room for an ellipsis (a word is never cut)."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ,;:·") + "…"


TITLE_CHARS = 56  # a title line in the sentence view's half-width graphs at 1366 px
TITLE_PAD = 6  # pixels between the top of the figure and its title's first line
CAP_SHIFT = 0.7  # ems: Plotly lowers a one-line title anchored at the top by this much, a wrapped one not at all


def title_layout(title: str, size: int = 13) -> dict:
    """Layout for a figure titled by `title` (plain text): wrapped to TITLE_CHARS a line, left-aligned, with the
    top margin it needs and the toolbar upright in the right margin, so the title never runs under the toolbar.

    A wrapped title is padded down by the cap shift Plotly leaves out for it (its first line would start above the
    figure and be cut off); tests/browser/test_layout.py checks the title's box lies inside the graph's."""
    import textwrap

    lines = textwrap.wrap(title, TITLE_CHARS) or [""]
    pad = TITLE_PAD + (round(CAP_SHIFT * size) if len(lines) > 1 else 0)
    return {"title": {"text": "<br>".join(plotly_text(line) for line in lines), "font": {"size": size},
                      "x": 0, "xref": "paper", "xanchor": "left", "y": 1, "yref": "container", "yanchor": "top",
                      "pad": {"t": pad}},
            "margin_t": 14 + int(1.35 * size) * len(lines), "modebar": {"orientation": "v"}}


def crowding(x: np.ndarray, y: np.ndarray, width: float, height: float) -> np.ndarray:
    """How many of the points [n] share each point's cell of a width x height grid (1: alone in its cell), int [n]."""
    if not len(x):
        return np.zeros(0, dtype=int)
    cells = np.column_stack([np.floor((x - x.min()) / width), np.floor((y - y.min()) / height)])
    _, inverse, counts = np.unique(cells, axis=0, return_inverse=True, return_counts=True)
    return counts[inverse.ravel()]


def labels_that_fit(x: np.ndarray, y: np.ndarray, names: list[str], first: list[int],
                    width_px: float = 700, height_px: float = 420, font_px: float | np.ndarray = 9,
                    extent: tuple[float, float] | None = None, marker_px: float = 0.0) -> np.ndarray:
    """Which of the points [n] keep their label above them: greedily, `first` then the least crowded points,
    each label kept when its box meets no kept one (nor, but for `first`, another point's marker of radius
    `marker_px`); `font_px`: one size for all, or one a label [n] (a bold label counts a size larger); boxes are
    sized for the smallest plot the page draws (width_px x height_px, equal aspect, less the
    axes' padding), so on a larger one the labels only stand further apart. `extent`: the plot's width and height in
    data units when the points fill only part of it."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)  # screen coordinates come as uint16
    n = len(names)
    wide, tall = extent or (float(np.ptp(x)) if n else 0.0, float(np.ptp(y)) if n else 0.0)
    span = max(wide / width_px, tall / height_px, 1e-12)  # data units per pixel
    order = list(dict.fromkeys([*first, *np.argsort(crowding(x, y, 40 * span, 16 * span), kind="stable").tolist()]))
    font = np.broadcast_to(np.asarray(font_px, dtype=float), (n,))
    half_w = (0.62 * font * np.array([len(name) for name in names], dtype=float) + 6) / 2 * span
    half_h, centre_y, reach = (font + 4) / 2 * span, y + (7 + font / 2) * span, marker_px * span
    boxes = np.column_stack([x - half_w, x + half_w, centre_y - half_h, centre_y + half_h]) if n else np.zeros((0, 4))
    kept = np.zeros((n, 4))
    count = 0
    shown = np.zeros(n, dtype=bool)
    chosen = set(first)
    for i in order:
        box, others = boxes[i], kept[:count]
        if np.any((box[1] >= others[:, 0]) & (others[:, 1] >= box[0]) & (box[3] >= others[:, 2])
                  & (others[:, 3] >= box[2])):
            continue
        if reach and i not in chosen:
            covered = (np.abs(x - x[i]) < half_w[i] + reach) & (np.abs(y - centre_y[i]) < half_h[i] + reach)
            covered[i] = False
            if covered.any():
                continue
        kept[count] = box
        count += 1
        shown[i] = True
    return shown
