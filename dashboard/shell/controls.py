"""The controls card on the left (model, corpus, head, picture settings, display, copy link, downloads) and the
intents that turn its controls and step buttons into a new URL."""

from __future__ import annotations

from dataclasses import replace

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, dcc, html, no_update

from dashboard import ids
from dashboard.shell import url
from dashboard.shell.widgets import (
    IMAGE_SEARCH_HINT,
    SEARCH_HINT,
    TIPS,
    choice_options,
    colour_options,
    corpus_options,
    dropdown,
    field,
    model_options,
    range_options,
)
from dashboard.state import SHOWS, ViewState
from workers.config import settings
from workers.contracts.choices import DIMS, METHODS, NORMALISATIONS
from workers.models.registry import read_spec

SEARCH_DEBOUNCE_MS = 400  # search as you type: sent once typing pauses this long
PICTURE_CONTROLS = (ids.MODEL, ids.CORPUS, ids.LAYER, ids.HEAD, ids.METHOD, ids.DIMS, ids.NORM)
DISPLAY_CONTROLS = (ids.VIEW_TABS, ids.COLOR, ids.SHOW, ids.LABELS, ids.SEARCH)
STEPS = {ids.PREV_LAYER: ("layer", -1), ids.NEXT_LAYER: ("layer", 1), ids.PREV_HEAD: ("head", -1),
         ids.NEXT_HEAD: ("head", 1)}


def _stepper(menu: dcc.Dropdown, prev_id: str, next_id: str) -> dbc.InputGroup:
    """A dropdown between previous / next buttons."""
    return dbc.InputGroup([
        dbc.Button("‹", id=prev_id, color="light", size="sm", title=TIPS[prev_id]),
        html.Div(menu, style={"flex": "1 1 auto", "minWidth": "3.5rem"}),
        dbc.Button("›", id=next_id, color="light", size="sm", title=TIPS[next_id]),
    ], size="sm", className="flex-nowrap")


def controls(state: ViewState) -> dbc.Card:
    """Every control of the view (their values mirror the URL)."""
    spec = read_spec(state.model)
    return dbc.Card(dbc.CardBody([
        field("Model", dropdown(ids.MODEL, model_options(), state.model), tip=TIPS[ids.MODEL]),
        field("Corpus", dropdown(ids.CORPUS, corpus_options(spec.modality, state.corpus), state.corpus),
              tip=TIPS[ids.CORPUS]),
        html.Div(**{"id": ids.UPLOAD_BOX, "data-limit": str(settings().max_upload_bytes)}, title=TIPS[ids.UPLOAD],
                 children=dcc.Upload(
                   id=ids.UPLOAD, max_size=settings().max_upload_bytes, multiple=False,
                   accept=".txt,.csv,.jsonl", className="small text-muted border rounded p-1 mb-2 text-center",
                   children=html.Span(["Drop or ", html.A("choose", href="#"), " a corpus file (.txt one text a "
                                       f"line, .csv / .jsonl with 'text'; up to {settings().max_upload_bytes / 1e6:.0f}"
                                       " MB)"]))),
        html.Div(id=ids.UPLOAD_NOTICE),
        dbc.Row([
            dbc.Col(field("Layer", _stepper(dropdown(ids.LAYER, range_options(spec.n_layers), state.layer),
                                            ids.PREV_LAYER, ids.NEXT_LAYER), tip=TIPS[ids.LAYER])),
            dbc.Col(field("Head", _stepper(dropdown(ids.HEAD, range_options(spec.n_heads), state.head),
                                           ids.PREV_HEAD, ids.NEXT_HEAD), tip=TIPS[ids.HEAD])),
        ], className="g-2"),
        field("Projection", dropdown(ids.METHOD, choice_options(METHODS), state.method), tip=TIPS[ids.METHOD]),
        field("Dimensions", dbc.RadioItems(id=ids.DIMS, options=[{"label": html.Span(c.label, title=c.help),
                                                                   "value": int(c.value)} for c in DIMS],
                                           value=state.dims, inline=True), tip=TIPS[ids.DIMS]),
        field("Normalisation", dropdown(ids.NORM, choice_options(NORMALISATIONS), state.norm), tip=TIPS[ids.NORM]),
        field("Colour", dropdown(ids.COLOR, colour_options(spec.modality), state.color), tip=TIPS[ids.COLOR]),
        field("Show", dbc.RadioItems(id=ids.SHOW, options=[{"label": s, "value": s} for s in SHOWS],
                                     value=state.show, inline=True), tip=TIPS[ids.SHOW]),
        html.Div(dbc.Switch(id=ids.LABELS, label="token labels", value=bool(state.labels), className="small mb-2"),
                 title=TIPS[ids.LABELS]),
        field("Search a token", dbc.Input(id=ids.SEARCH, type="search", value=state.search,
                                          debounce=SEARCH_DEBOUNCE_MS, placeholder=SEARCH_HINT, maxLength=64,
                                          size="sm"),
              [html.Div(id=ids.SEARCH_COUNT, className="small text-muted mt-1")], tip=TIPS[ids.SEARCH]),
        html.Hr(className="my-2"),
        html.Div([
            html.Span([dcc.Clipboard(id=ids.COPY_LINK, title=TIPS[ids.COPY_LINK],
                                     style={"display": "inline-block", "cursor": "pointer"}), " Copy link"],
                      className="btn btn-outline-secondary btn-sm me-1"),
            dbc.Button("CSV", id=ids.DOWNLOAD_CSV, color="secondary", outline=True, size="sm", className="me-1",
                       title=TIPS[ids.DOWNLOAD_CSV]),
            dbc.Button("Parquet", id=ids.DOWNLOAD_PARQUET, color="secondary", outline=True, size="sm",
                       title=TIPS[ids.DOWNLOAD_PARQUET]),
            dcc.Download(id=ids.DOWNLOAD),
        ]),
        html.Div([
            html.Span("Camera button saves ", className="small text-muted me-2"),
            dbc.RadioItems(id=ids.IMAGE_FORMAT, inline=True, value="png", className="d-inline-block small",
                           options=[{"label": "PNG", "value": "png"}, {"label": "SVG", "value": "svg"}]),
        ], className="mt-2", title=TIPS[ids.IMAGE_FORMAT]),
        dbc.Tooltip(TIPS[ids.VIEW_TABS], target=ids.VIEW_TABS, placement="bottom"),  # the tabs take no title
    ]), className="shadow-sm")


def step(field_name: str, delta: int) -> url.Handler:
    """A step button's handler: the neighbouring layer or head (wrapping around)."""
    def moved(state: ViewState, _clicks) -> ViewState:
        spec = read_spec(state.model)
        size = spec.n_layers if field_name == "layer" else spec.n_heads
        return replace(state, **{field_name: (getattr(state, field_name) + delta) % size})
    return moved


def modality_controls(modality: str) -> tuple[dict[str, str], str]:
    """The upload box's style (shown for text models only: an upload is a text corpus) and the search box's
    placeholder (a token of a text, or a patch of an image)."""
    image = modality == "image"
    return {"display": "none" if image else "block"}, IMAGE_SEARCH_HINT if image else SEARCH_HINT


def register(app: Dash) -> None:
    """The controls' intents (which head and picture, how it is shown, the step buttons), and the controls shown
    for the model's modality."""
    url.intent(app, PICTURE_CONTROLS)
    url.intent(app, DISPLAY_CONTROLS)
    url.intent(app, events={button: ("n_clicks", step(*move)) for button, move in STEPS.items()})

    @app.callback(Output(ids.UPLOAD_BOX, "style"), Output(ids.SEARCH, "placeholder"), Input(ids.VIEW_STYLE, "data"))
    def controls_for_modality(style: dict | None):
        """Only the controls that mean something for the shown model's texts or images."""
        return modality_controls(read_spec(style["model"]).modality) if style else (no_update, no_update)
