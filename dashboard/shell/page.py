"""The page: controls on the left; tabs, heading, notices, progress and the five views on the right."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from dashboard import ids
from dashboard.shell.controls import controls
from dashboard.state import ViewState
from dashboard.views import compare, headmap, matrix, sentence, single


def view_panel() -> html.Div:
    """Tabs, notices, heading, progress and the views; the open view's picture takes the height left."""
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
        html.Div(id=ids.GUIDE, className="small fst-italic text-secondary mb-1 qk-one-line"),
        html.Div([dbc.Progress(id=ids.PROGRESS, value=0, striped=True, animated=True, style={"height": "0.8rem"}),
                  html.Div(id=ids.PROGRESS_TEXT, className="small text-muted")],
                 id=ids.PROGRESS_WRAP, style={"display": "none"}, className="mb-1"),
        html.Div(id=ids.STATUS, className="small text-muted mb-1"),
        html.Div(id=ids.FIDELITY, className="small text-muted mb-1"),
        html.Div(id=ids.RELATED_HEADS, className="small text-muted mb-1"),
        single.panel(), matrix.panel(), sentence.panel(), headmap.panel(), compare.panel(),
    ], className="qk-view")


def page() -> html.Div:
    """The whole page; the URL sync callback fills the controls from the query string."""
    state = ViewState()
    return html.Div([
        dcc.Location(id=ids.URL, refresh=False), dcc.Store(id=ids.URL_PUSHED),
        dcc.Store(id=ids.VIEW_STYLE), dcc.Interval(id=ids.MEASURES_POLL, interval=1000, disabled=True),
        dcc.Store(id=ids.MATRIX_REQUEST), dcc.Store(id=ids.MATRIX_DEFERRED),
        dcc.Store(id=ids.CLIENT, storage_type="session"), dcc.Store(id=ids.URL_CANONICAL),
        dbc.Navbar(dbc.Container([
            dbc.NavbarBrand("qk-atlas", className="fw-bold"),
            html.Span("queries and keys of every attention head, in one picture", className="text-light small"),
        ], fluid=True), color="dark", dark=True, className="py-1", style={"height": "44px"}),
        dbc.Container(dbc.Row([dbc.Col(controls(state), md=3, className="qk-controls pt-2"),
                               dbc.Col(view_panel(), md=9, className="pt-2")]), fluid=True, className="qk-shell"),
    ])
