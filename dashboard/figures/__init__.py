"""Plotly figure builders (pure: arrays in, figures out)."""

# Every picture's legend sits under its plot and its toolbar stands upright at the top right, so the two never
# meet however many entries the legend holds; colour bars stand at the left (tests/browser checks their boxes).
LEGEND_BELOW = {"orientation": "h", "x": 0, "y": 0, "yanchor": "top", "itemsizing": "constant"}
MODEBAR = {"orientation": "v"}
BAR_PLACES = {"upper": (1.0, "top", 0.45), "lower": (0.0, "bottom", 0.45), "middle": (0.5, "middle", 0.6)}


def colour_bar_left(place: str = "middle", **more) -> dict:
    """A colour bar at the left of its plot, so it never meets the toolbar upright at the right: in the 'upper' or
    'lower' half of the plot's height (two bars: queries above keys) or its 'middle' 0.6; `more` adds settings."""
    y, anchor, length = BAR_PLACES[place]
    return {"x": -0.02, "xanchor": "right", "y": y, "yanchor": anchor, "len": length, "thickness": 12, **more}


def warm_default_template() -> int:
    """Materialise every set property of Plotly's default template once, before requests arrive; how many.

    Plotly builds a template's nested objects lazily, without a lock (plotly.py issue #3441): two requests
    drawing the first figures of a fresh server at once can orphan each other's objects and one fails with
    ValueError('Invalid value'). After this walk every later read only finds what is already built.
    """
    import plotly.io as pio
    from plotly.basedatatypes import BasePlotlyType

    def walk(node: object) -> int:
        if isinstance(node, BasePlotlyType):
            return sum(1 + walk(node[name]) for name in list(node._props or {}))
        if isinstance(node, (tuple, list)):
            return sum(walk(item) for item in node)
        return 0

    template = pio.templates[pio.templates.default]
    return walk(template.layout) + walk(template.data)
