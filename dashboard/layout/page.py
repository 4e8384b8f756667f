"""The page: controls on the left, the single-head view on the right."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import ids
from dashboard.figures.single import empty_figure
from dashboard.state import COLORS, ViewState, corpus_choices, model_choices
from workers.models import ModelError, read_spec
from workers.normalize import NORMALIZATIONS

METHOD_LABELS = {"pca": "PCA", "umap": "UMAP", "tsne": "t-SNE"}
NORM_LABELS = {"none": "none (raw q, k)", "scale": "scale", "scale+translate": "scale + translate (AttentionViz)"}


def _field(label: str, control) -> html.Div:
    """A labelled control."""
    return html.Div([dbc.Label(label, className="small text-muted mb-1"), control], className="mb-3")


def _dropdown(component_id: str, options: list[dict], value) -> dcc.Dropdown:
    """A non-clearable dropdown."""
    return dcc.Dropdown(id=component_id, options=options, value=value, clearable=False, searchable=False)


def model_options() -> list[dict]:
    """Model dropdown entries with layer x head counts."""
    out = []
    for name in model_choices():
        try:
            spec = read_spec(name)
        except (ModelError, OSError, ValueError):
            out.append({"label": f"{name} (unavailable)", "value": name, "disabled": True})
            continue
        out.append({"label": f"{name} ({spec.family}, {spec.n_layers}x{spec.n_heads})", "value": name})
    return out


def corpus_options(modality: str) -> list[dict]:
    """Corpus dropdown entries for a model's modality."""
    return [{"label": name, "value": name} for name in corpus_choices(modality)]


def controls(state: ViewState) -> dbc.Card:
    """Dropdowns for model, corpus, layer, head, projection, dims, normalisation and colour."""
    spec = read_spec(state.model)
    return dbc.Card(dbc.CardBody([
        _field("Model", _dropdown(ids.MODEL, model_options(), state.model)),
        _field("Corpus", _dropdown(ids.CORPUS, corpus_options(spec.modality), state.corpus)),
        dbc.Row([
            dbc.Col(_field("Layer", _dropdown(ids.LAYER, _range_options(spec.n_layers), state.layer))),
            dbc.Col(_field("Head", _dropdown(ids.HEAD, _range_options(spec.n_heads), state.head))),
        ]),
        _field("Projection", _dropdown(ids.METHOD, [{"label": v, "value": k} for k, v in METHOD_LABELS.items()],
                                       state.method)),
        _field("Dimensions", dbc.RadioItems(id=ids.DIMS, options=[{"label": "2D", "value": 2},
                                                                   {"label": "3D", "value": 3}],
                                            value=state.dims, inline=True)),
        _field("Normalisation", _dropdown(ids.NORM, [{"label": NORM_LABELS[n], "value": n} for n in NORMALIZATIONS],
                                          state.norm)),
        _field("Colour", _dropdown(ids.COLOR, [{"label": v, "value": k} for k, v in COLORS.items()], state.color)),
    ]), className="shadow-sm")


def _range_options(count: int) -> list[dict]:
    """0..count-1 as dropdown options."""
    return [{"label": str(i), "value": i} for i in range(count)]


def view_panel() -> html.Div:
    """Heading, progress, the WebGL scatter and the hover panel."""
    return html.Div([
        html.Div(id=ids.NOTICES),
        html.Div([
            html.H4(id=ids.HEADING, className="mb-0 me-3"),
            html.Span(id=ids.SUBHEADING, className="text-muted small"),
        ], className="d-flex align-items-baseline mb-2"),
        html.Div(dbc.Progress(id=ids.PROGRESS, value=0, label="", striped=True, animated=True,
                              style={"height": "1.4rem"}),
                 id=ids.PROGRESS_WRAP, style={"display": "none"}, className="mb-2"),
        html.Div(id=ids.STATUS, className="small text-muted mb-1"),
        dcc.Graph(id=ids.SINGLE_GRAPH, style={"height": "72vh"}, figure=empty_figure("Preparing the view…"),
                  config={"scrollZoom": True, "displaylogo": False,
                          "toImageButtonOptions": {"format": "png", "filename": "qk-atlas-head", "scale": 2}}),
        dbc.Card(dbc.CardBody(html.Div("Hover a point to see its sentence.", id=ids.HOVER_PANEL,
                                       className="small")), className="mt-2"),
    ])


def page() -> html.Div:
    """The whole page; the URL callback fills the controls from the query string."""
    state = ViewState()
    return html.Div([
        dcc.Location(id=ids.URL, refresh=False),
        dcc.Store(id=ids.VIEW_REQUEST),
        dcc.Store(id=ids.URL_CANONICAL),
        dbc.Navbar(dbc.Container([
            dbc.NavbarBrand("qk-atlas", className="fw-bold"),
            html.Span("queries and keys of every attention head, in one picture", className="text-light small"),
        ], fluid=True), color="dark", dark=True, className="mb-3"),
        dbc.Container(dbc.Row([
            dbc.Col(controls(state), md=3),
            dbc.Col(view_panel(), md=9),
        ]), fluid=True),
    ])
