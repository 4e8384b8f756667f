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


def labels_that_fit(x: np.ndarray, y: np.ndarray, names: list[str], first: list[int],
                    width_px: float = 700, height_px: float = 420, font_px: float = 9,
                    extent: tuple[float, float] | None = None, marker_px: float = 0.0) -> np.ndarray:
    """Which of the points [n] keep their label above them: greedily, `first` then the most isolated points,
    each label kept when its box meets no kept one (nor, but for `first`, another point's marker of radius
    `marker_px`); boxes are sized for the smallest plot the page draws (width_px x height_px, equal aspect, less the
    axes' padding), so on a larger one the labels only stand further apart. `extent`: the plot's width and height in
    data units when the points fill only part of it."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)  # screen coordinates come as uint16
    n = len(names)
    wide, tall = extent or (float(np.ptp(x)) if n else 0.0, float(np.ptp(y)) if n else 0.0)
    span = max(wide / width_px, tall / height_px, 1e-12)  # data units per pixel
    gaps = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :]) + np.diag(np.full(n, np.inf))
    order = list(dict.fromkeys([*first, *np.argsort(-gaps.min(axis=1)).tolist()])) if n > 1 else list(range(n))
    kept: list[tuple[float, float, float, float]] = []
    shown = np.zeros(n, dtype=bool)
    chosen = set(first)
    for i in order:
        half_w, half_h = (0.62 * font_px * len(names[i]) + 6) / 2 * span, (font_px + 4) / 2 * span
        centre_y = y[i] + (7 + font_px / 2) * span
        box = (x[i] - half_w, x[i] + half_w, centre_y - half_h, centre_y + half_h)
        if any(not (box[1] < o[0] or o[1] < box[0] or box[3] < o[2] or o[3] < box[2]) for o in kept):
            continue
        if marker_px and i not in chosen:
            reach = marker_px * span
            covered = (np.abs(x - x[i]) < half_w + reach) & (np.abs(y - centre_y) < half_h + reach)
            covered[i] = False
            if covered.any():
                continue
        kept.append(box)
        shown[i] = True
    return shown
