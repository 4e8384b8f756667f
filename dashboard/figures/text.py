"""Text that goes into a Plotly figure, shown as typed.

Plotly reads titles, annotations, tick labels, legend names, hover text and SVG trace text as its own small markup
(`<b>`, `<br>`, `<a href>` …) and decodes only a few entities (`&amp;`, `&lt;`, `&gt;`, `&nbsp;` and numeric ones):
`html.escape` would show its `&quot;` and `&#x27;` as written. `plotly_text` writes only & < > as entities, which
Plotly turns back into the characters, so markup in a corpus or a URL is shown, never followed. WebGL text
(Scattergl and Scatter3d `text`) is drawn as given and takes the text unchanged; Dash components (html.Div
children) escape their text themselves and take it unchanged too.
"""

from __future__ import annotations

ENTITIES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))  # & first: the others' entities hold one


def plotly_text(text: str) -> str:
    """Text for Plotly's SVG markup: & < > as the entities Plotly decodes, everything else as it is."""
    for character, entity in ENTITIES:
        text = text.replace(character, entity)
    return text


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
