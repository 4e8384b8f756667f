"""The page: controls on the left; matrix, single-head and sentence views on the right."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import ids
from dashboard.figures.single import empty_figure
from dashboard.session import browser_id
from dashboard.state import COLORS, ViewState, corpus_choices, model_choices
from workers.config import settings
from workers.contracts.choices import DIMS, METHODS, NORMALISATIONS
from workers.contracts.specs import ModelError
from workers.corpora.uploads import list_uploads, owned_by
from workers.models.registry import read_spec

POLL_MS = 500  # how often an open page looks at a view that is being computed

METHOD_LABELS = {choice.value: choice.label for choice in METHODS}
ORDER_LABELS = {"grid": "layer x head", "prev_token": "attention to the previous token (ranked)",
                "next_token": "attention to the next token (ranked)",
                "first_token": "attention to the first token (ranked)",
                "special": "attention to special tokens (ranked)",
                "induction": "induction: attention to the token after an earlier occurrence (ranked)",
                "entropy": "attention entropy (ranked)",
                "norm_ratio": "query / key norm ratio, log2 (ranked)", "qk_overlap": "query-key overlap (ranked)",
                "fidelity": "fidelity of the cell's picture: top-1-in-3 (ranked)",
                "fidelity_rank": "fidelity of the cell's picture: rank correlation (ranked)",
                "fidelity_non_sink": "fidelity of the cell's picture on queries not attending most to a sink: "
                                     "top-1-in-3 (ranked)",
                "fidelity_baseline": "no-picture baseline: most-attended key is a sink or the previous token "
                                     "(ranked)"}
TINT_LABELS = {"none": "nothing", **{value: label.removesuffix(" (ranked)") for value, label in ORDER_LABELS.items()
                                     if value != "grid"}}
GRAPH_CONFIG = {"scrollZoom": True, "displaylogo": False,
                "toImageButtonOptions": {"format": "png", "filename": "qk-atlas", "scale": 2}}


SEARCH_DEBOUNCE_MS = 400  # search as you type: sent once typing pauses this long


def _field(label: str, control, extra=None) -> html.Div:
    """A labelled control."""
    return html.Div([dbc.Label(label, className="small text-muted mb-1"), control, *(extra or [])], className="mb-2")


def _dropdown(component_id: str, options: list[dict], value) -> dcc.Dropdown:
    """A non-clearable dropdown."""
    return dcc.Dropdown(id=component_id, options=options, value=value, clearable=False, searchable=False)


def model_options() -> list[dict]:
    """Model dropdown entries with family and layer x head counts."""
    out = []
    for name in model_choices():
        try:
            spec = read_spec(name)
        except (ModelError, OSError, ValueError):
            out.append({"label": f"{name} (unavailable)", "value": name, "disabled": True})
            continue
        out.append({"label": f"{name} ({spec.family}, {spec.n_layers}x{spec.n_heads})", "value": name})
    return out


def corpus_options(modality: str, current: str = "") -> list[dict]:
    """Corpus dropdown entries for a model's modality: the bundled and configured corpora, this browser's uploads
    and the one shown (an upload opened from a shared link), uploads labelled by their file name."""
    uploads = {record["ref"]: record for record in list_uploads()}  # the folder read once per menu
    owner = browser_id()
    mine = {ref for ref, record in uploads.items() if owned_by(record, owner)}
    return [{"label": f"{uploads[name]['name']} (uploaded, {uploads[name]['texts']:,} texts)" if name in uploads
             else name, "value": name} for name in corpus_choices(modality)
            if name not in uploads or name in mine or name == current]


def range_options(count: int) -> list[dict]:
    """0..count-1 as dropdown options."""
    return [{"label": str(i), "value": i} for i in range(count)]


def _stepper(dropdown: dcc.Dropdown, prev_id: str, next_id: str, what: str) -> dbc.InputGroup:
    """A dropdown between previous / next buttons."""
    return dbc.InputGroup([
        dbc.Button("‹", id=prev_id, color="light", size="sm", title=f"previous {what}"),
        html.Div(dropdown, style={"flex": "1 1 auto", "minWidth": "3.5rem"}),
        dbc.Button("›", id=next_id, color="light", size="sm", title=f"next {what}"),
    ], size="sm", className="flex-nowrap")


def controls(state: ViewState) -> dbc.Card:
    """Every control of the view (their values mirror the URL)."""
    spec = read_spec(state.model)
    return dbc.Card(dbc.CardBody([
        _field("Model", _dropdown(ids.MODEL, model_options(), state.model)),
        _field("Corpus", _dropdown(ids.CORPUS, corpus_options(spec.modality, state.corpus), state.corpus)),
        html.Div(**{"id": ids.UPLOAD_BOX, "data-limit": str(settings().max_upload_bytes)}, children=dcc.Upload(
                   id=ids.UPLOAD, max_size=settings().max_upload_bytes, multiple=False,
                   accept=".txt,.csv,.jsonl", className="small text-muted border rounded p-1 mb-2 text-center",
                   children=html.Span(["Drop or ", html.A("choose", href="#"), " a corpus file (.txt one text a "
                                       f"line, .csv / .jsonl with 'text'; up to {settings().max_upload_bytes / 1e6:.0f}"
                                       " MB)"]))),
        html.Div(id=ids.UPLOAD_NOTICE),
        dbc.Row([
            dbc.Col(_field("Layer", _stepper(_dropdown(ids.LAYER, range_options(spec.n_layers), state.layer),
                                             ids.PREV_LAYER, ids.NEXT_LAYER, "layer"))),
            dbc.Col(_field("Head", _stepper(_dropdown(ids.HEAD, range_options(spec.n_heads), state.head),
                                            ids.PREV_HEAD, ids.NEXT_HEAD, "head"))),
        ], className="g-2"),
        _field("Projection", _dropdown(ids.METHOD, [{"label": v, "value": k} for k, v in METHOD_LABELS.items()],
                                       state.method)),
        _field("Dimensions", dbc.RadioItems(id=ids.DIMS, options=[{"label": c.label, "value": int(c.value)}
                                                                   for c in DIMS],
                                            value=state.dims, inline=True)),
        _field("Normalisation", _dropdown(ids.NORM, [{"label": c.label, "value": c.value} for c in NORMALISATIONS],
                                          state.norm)),
        _field("Colour", _dropdown(ids.COLOR, [{"label": v, "value": k} for k, v in COLORS.items()], state.color)),
        _field("Show", dbc.RadioItems(id=ids.SHOW, options=[{"label": s, "value": s}
                                                             for s in ("both", "queries", "keys")],
                                      value=state.show, inline=True)),
        dbc.Switch(id=ids.LABELS, label="token labels", value=bool(state.labels), className="small mb-2"),
        _field("Search a token", dbc.Input(id=ids.SEARCH, type="search", value=state.search,
                                           debounce=SEARCH_DEBOUNCE_MS, placeholder="e.g. the", maxLength=64,
                                           size="sm"),
               [html.Div(id=ids.SEARCH_COUNT, className="small text-muted mt-1")]),
        html.Hr(className="my-2"),
        html.Div([
            html.Span([dcc.Clipboard(id=ids.COPY_LINK, title="copy a link to this view",
                                     style={"display": "inline-block", "cursor": "pointer"}), " Copy link"],
                      className="btn btn-outline-secondary btn-sm me-1"),
            dbc.Button("CSV", id=ids.DOWNLOAD_CSV, color="secondary", outline=True, size="sm", className="me-1",
                       title="download this head's points as CSV"),
            dbc.Button("Parquet", id=ids.DOWNLOAD_PARQUET, color="secondary", outline=True, size="sm",
                       title="download this head's points as Parquet"),
            dcc.Download(id=ids.DOWNLOAD),
        ]),
        html.Div([
            html.Span("Camera button saves ", className="small text-muted me-2"),
            dbc.RadioItems(id=ids.IMAGE_FORMAT, inline=True, value="png", className="d-inline-block small",
                           options=[{"label": "PNG", "value": "png"}, {"label": "SVG", "value": "svg"}]),
        ], className="mt-2"),
    ]), className="shadow-sm")


def single_panel() -> html.Div:
    """The single-head view: scatter, selection line and hover panel."""
    return html.Div([
        html.Div([html.Span(id=ids.SELECTION, className="small"),
                  dbc.Button("clear selection", id=ids.CLEAR_SELECTION, size="sm", color="link",
                             className="py-0")], className="d-flex align-items-center"),
        dcc.Graph(id=ids.SINGLE_GRAPH, style={"height": "70vh"}, figure=empty_figure("Preparing the view…"),
                  config=GRAPH_CONFIG),
        dbc.Card(dbc.CardBody(html.Div("Hover a point to see its sentence; click it to select its text.",
                                       id=ids.HOVER_PANEL, className="small")), className="mt-2"),
    ], id=ids.SINGLE_PANEL)


def matrix_panel() -> html.Div:
    """The matrix view: every head of the model in one WebGL figure."""
    return html.Div([
        dbc.Progress(id=ids.MATRIX_PROGRESS, value=0, striped=True, animated=True, className="mb-1",
                     style={"height": "1.2rem"}),
        html.Div(id=ids.MATRIX_STATUS, className="small text-muted mb-1"),
        html.Div([html.Span("Place cells by ", className="small me-2"),
                  dcc.Dropdown(id=ids.MATRIX_ORDER, clearable=False, value="grid", style={"minWidth": "22rem"},
                               options=[{"label": label, "value": value} for value, label in ORDER_LABELS.items()]),
                  html.Span("keep heads at or above", className="small ms-3 me-2"),
                  dcc.Input(id=ids.MATRIX_KEEP, type="text", debounce=True, placeholder="any value",
                            inputMode="decimal", style={"width": "6rem"}, className="form-control form-control-sm"),
                  html.Span("colour cells by", className="small ms-3 me-2"),
                  dcc.Dropdown(id=ids.MATRIX_TINT, clearable=False, value="none", style={"minWidth": "16rem"},
                               options=[{"label": label, "value": value} for value, label in TINT_LABELS.items()])],
                 className="d-flex align-items-center mb-1 flex-wrap"),
        dcc.Interval(id=ids.MATRIX_INTERVAL, interval=1000, disabled=True),
        dcc.Store(id=ids.MATRIX_DRAWN),
        dcc.Graph(id=ids.MATRIX_GRAPH, style={"height": "78vh"}, figure=empty_figure("Open the matrix view…"),
                  config=GRAPH_CONFIG),
    ], id=ids.MATRIX_PANEL, style={"display": "none"})


def sentence_panel() -> html.Div:
    """The sentence view: BertViz-style lines for the selected text, and the head's average by position."""
    return html.Div([
        html.Div([
            dbc.Switch(id=ids.HIDE_SPECIAL, label="hide special tokens (renormalise the rest)", value=False,
                       className="small me-4"),
            html.Span("Lines show", className="small me-2"),
            dbc.RadioItems(id=ids.SENTENCE_WEIGHT, inline=True, value="attention", className="small",
                           options=[{"label": "attention", "value": "attention"},
                                    {"label": "attention × value norm ‖v‖", "value": "value"}]),
        ], className="d-flex align-items-center flex-wrap"),
        html.Div([
            dbc.Row([
                dbc.Col(dcc.Graph(id=ids.SENTENCE_GRAPH, style={"height": "70vh"}, config=GRAPH_CONFIG,
                                  figure=empty_figure("Select a text: click a point in the single view")), md=6),
                dbc.Col(dcc.Graph(id=ids.AGGREGATE_GRAPH, style={"height": "70vh"}, config=GRAPH_CONFIG,
                                  figure=empty_figure("")), md=6),
            ]),
        ], id=ids.SENTENCE_VIEW),
    ], id=ids.SENTENCE_PANEL, style={"display": "none"})


def compare_panel() -> html.Div:
    """Side by side: picture A (the controls on the left) and picture B (its own model, corpus, layer, head)."""
    def b_field(label: str, control) -> html.Div:
        return html.Div([html.Span(label, className="small me-1"), control], className="me-3",
                        style={"minWidth": "9rem"})

    return html.Div([
        html.Div([html.Span("Picture B:", className="small fw-bold me-2"),
                  b_field("model", dcc.Dropdown(id=ids.B_MODEL, clearable=False, searchable=False,
                                                options=model_options(), style={"minWidth": "12rem"})),
                  b_field("corpus", dcc.Dropdown(id=ids.B_CORPUS, clearable=False, searchable=False,
                                                 style={"minWidth": "10rem"})),
                  b_field("layer", dcc.Dropdown(id=ids.B_LAYER, clearable=False, searchable=False)),
                  b_field("head", dcc.Dropdown(id=ids.B_HEAD, clearable=False, searchable=False)),
                  dbc.RadioItems(id=ids.B_VECTORS, inline=True, value="qk", className="small",
                                 options=[{"label": "queries and keys", "value": "qk"},
                                          {"label": "value vectors", "value": "v"}])],
                 className="d-flex align-items-center flex-wrap mb-1"),
        html.Div(id=ids.COMPARE_STATUS, className="small text-muted mb-1"),
        dcc.Store(id=ids.COMPARE_REQUEST), dcc.Store(id=ids.COMPARE_KEYS), dcc.Store(id=ids.COMPARE_JOB),
        dcc.Interval(id=ids.COMPARE_POLL, interval=POLL_MS, disabled=True),
        dbc.Row([
            dbc.Col([html.Div(id=ids.COMPARE_A_TITLE, className="small fw-bold"),
                     dcc.Graph(id=ids.COMPARE_A_GRAPH, style={"height": "64vh"}, config=GRAPH_CONFIG,
                               figure=empty_figure("Preparing picture A…"))], md=6),
            dbc.Col([html.Div(id=ids.COMPARE_B_TITLE, className="small fw-bold"),
                     dcc.Graph(id=ids.COMPARE_B_GRAPH, style={"height": "64vh"}, config=GRAPH_CONFIG,
                               figure=empty_figure("Preparing picture B…"))], md=6),
        ]),
    ], id=ids.COMPARE_PANEL, style={"display": "none"})


def headmap_panel() -> html.Div:
    """The head map: one point per head, placed by how alike the heads attend."""
    return html.Div([
        html.Div(id=ids.HEADMAP_STATUS, className="small text-muted mb-1"),
        dcc.Interval(id=ids.HEADMAP_INTERVAL, interval=1000, disabled=True),
        dcc.Graph(id=ids.HEADMAP_GRAPH, style={"height": "74vh"}, figure=empty_figure("Open the head map…"),
                  config=GRAPH_CONFIG),
    ], id=ids.HEADMAP_PANEL, style={"display": "none"})


def view_panel() -> html.Div:
    """Tabs, heading, progress and the three views."""
    return html.Div([
        dbc.Tabs([dbc.Tab(label="Matrix (all heads)", tab_id="matrix"), dbc.Tab(label="Single head", tab_id="single"),
                  dbc.Tab(label="Sentence", tab_id="sentence"), dbc.Tab(label="Head map", tab_id="headmap"),
                  dbc.Tab(label="Side by side", tab_id="compare")],
                 id=ids.VIEW_TABS, active_tab="single",
                 className="mb-2"),
        html.Div(id=ids.NOTICES),
        dbc.Alert(id=ids.HEALTH, color="danger", is_open=False, className="py-2 small"),
        dcc.Interval(id=ids.HEALTH_INTERVAL, interval=3000), dcc.Store(id=ids.HEALTH_STATE, data={"ok": True}),
        html.Div([html.H4(id=ids.HEADING, className="mb-0 me-3"),
                  html.Span(id=ids.SUBHEADING, className="text-muted small")],
                 className="d-flex align-items-baseline mb-1"),
        html.Div([dbc.Progress(id=ids.PROGRESS, value=0, striped=True, animated=True, style={"height": "0.8rem"}),
                  html.Div(id=ids.PROGRESS_TEXT, className="small text-muted")],
                 id=ids.PROGRESS_WRAP, style={"display": "none"}, className="mb-1"),
        html.Div(id=ids.STATUS, className="small text-muted mb-1"),
        html.Div(id=ids.FIDELITY, className="small text-muted mb-1"),
        html.Div(id=ids.RELATED_HEADS, className="small text-muted mb-1"),
        single_panel(), matrix_panel(), sentence_panel(), headmap_panel(), compare_panel(),
    ])


def page() -> html.Div:
    """The whole page; the URL callback fills the controls from the query string."""
    state = ViewState()
    return html.Div([
        dcc.Location(id=ids.URL, refresh=False),
        dcc.Store(id=ids.VIEW_REQUEST), dcc.Store(id=ids.SINGLE_JOB), dcc.Store(id=ids.VIEW_STYLE),
        dcc.Interval(id=ids.SINGLE_POLL, interval=POLL_MS, disabled=True),
        dcc.Interval(id=ids.MEASURES_POLL, interval=1000, disabled=True),
        dcc.Store(id=ids.MATRIX_REQUEST), dcc.Store(id=ids.MATRIX_DEFERRED),
        dcc.Store(id=ids.CLIENT, storage_type="session"),
        dcc.Store(id=ids.SINGLE_KEYS), dcc.Store(id=ids.SINGLE_DRAWN), dcc.Store(id=ids.URL_CANONICAL),
        dbc.Navbar(dbc.Container([
            dbc.NavbarBrand("qk-atlas", className="fw-bold"),
            html.Span("queries and keys of every attention head, in one picture", className="text-light small"),
        ], fluid=True), color="dark", dark=True, className="mb-3"),
        dbc.Container(dbc.Row([dbc.Col(controls(state), md=3), dbc.Col(view_panel(), md=9)]), fluid=True),
    ])
