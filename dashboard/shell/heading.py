"""The heading (`L{layer} H{head}` in the single view), which view panel shows, and the one-head lines' visibility."""

from __future__ import annotations

from typing import Any

from dash import Dash, Input, Output, no_update

from dashboard import ids
from dashboard.shell.widgets import METHOD_LABELS, corpus_label
from workers.contracts.choices import reading
from workers.models.registry import read_spec

HEAD_MAP_READING = "Each point is a head: heads near each other send their attention to the same tokens."
PANELS = {"single": ids.SINGLE_PANEL, "matrix": ids.MATRIX_PANEL, "sentence": ids.SENTENCE_PANEL,
          "headmap": ids.HEADMAP_PANEL, "compare": ids.COMPARE_PANEL}


def heading_text(style: dict[str, Any]) -> tuple[str, str]:
    """Heading and subheading for the current view."""
    spec = read_spec(style["model"])
    corpus = corpus_label(style["corpus"])
    if style["view"] == "headmap":
        return (f"Head map · {spec.n_layers * spec.n_heads} heads",
                f"{style['model']} · corpus {corpus} · heads placed by how alike they attend")
    if style["view"] == "compare":
        return ("Side by side", f"{METHOD_LABELS[style['method']]} {style['dims']}D · normalisation {style['norm']} · "
                                "clicking a token in either picture selects it in both")
    if style["view"] == "matrix":
        return (f"All heads · {spec.n_layers} layers x {spec.n_heads} heads",
                f"{style['model']} · corpus {corpus} · {METHOD_LABELS[style['method']]} 2D · "
                f"normalisation {style['norm']}")
    sub = (f"{style['model']} · corpus {corpus} · {METHOD_LABELS[style['method']]} {style['dims']}D · "
           f"normalisation {style['norm']}")
    return f"L{style['layer']} H{style['head']}", sub


def guide_text(style: dict[str, Any]) -> str:
    """How to read the current view's picture (workers.contracts.choices.reading), one line."""
    if style["view"] == "headmap":
        return HEAD_MAP_READING
    return reading(style["method"], style["norm"])


def register(app: Dash) -> None:
    """The heading callback."""

    @app.callback(Output(ids.HEADING, "children"), Output(ids.SUBHEADING, "children"), Output(ids.GUIDE, "children"),
                  *[Output(panel, "style") for panel in PANELS.values()],
                  Output(ids.FIDELITY, "style"), Output(ids.RELATED_HEADS, "style"), Input(ids.VIEW_STYLE, "data"))
    def heading(style: dict[str, Any] | None):
        """Heading and how to read the picture at once, which view panel shows, and the one-head lines (fidelity,
        related heads) or not."""
        if not style:
            return (no_update,) * (5 + len(PANELS))
        title, sub = heading_text(style)
        one_head = {"display": "block" if style["view"] in ("single", "sentence", "compare") else "none"}
        shown = [{"display": "flex" if view == style["view"] else "none"} for view in PANELS]
        return (title, sub, guide_text(style), *shown, one_head, one_head)
