"""URL <-> page: the query string is the single source of truth for the view.

Two directions, each in small callbacks. Every view registers its *intents* (`intent`): a few of its controls or
clicks -> a new canonical URL (and those controls written back in canonical form, refused values noted). One
`sync` callback turns every URL change (an intent's, a link's, a load, back, forward) into control values, menus,
the view stores and notices. Sync writes only the control values that differ from what the control shows, and an
intent fired by such a write (the control now shows what the URL holds) changes nothing, so the two never loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, ctx, html, no_update

from dashboard import ids
from dashboard.shell.widgets import colour_options, corpus_options, range_options
from dashboard.state import ViewState, parse_query, with_controls
from workers.models.registry import read_spec

MAX_INPUTS = 8  # inputs of any one callback (tests/test_architecture.py checks every callback)
CONTROL_FIELDS = {ids.VIEW_TABS: "view", ids.MODEL: "model", ids.CORPUS: "corpus", ids.LAYER: "layer",
                  ids.HEAD: "head", ids.METHOD: "method", ids.DIMS: "dims", ids.NORM: "norm", ids.COLOR: "color",
                  ids.SHOW: "show", ids.LABELS: "labels", ids.SEARCH: "search", ids.MATRIX_ORDER: "order",
                  ids.MATRIX_KEEP: "keep", ids.MATRIX_TINT: "tint",
                  ids.SENTENCE_WEIGHT: "weight", ids.B_MODEL: "b_model", ids.B_CORPUS: "b_corpus",
                  ids.B_LAYER: "b_layer", ids.B_HEAD: "b_head", ids.B_VECTORS: "b_vectors"}
CONTROL_PROPS = {ids.VIEW_TABS: "active_tab", ids.LABELS: "value"}
Handler = Callable[[ViewState, Any], ViewState]  # (the URL's state, the event's value) -> the new state


def prop(component_id: str) -> str:
    """The property that holds a control's value."""
    return CONTROL_PROPS.get(component_id, "value")


def notices_of(messages: list[str]) -> list:
    """Warnings for replaced URL values in one dismissable line: the first, and a count that opens the rest (text,
    never markup)."""
    if not messages:
        return []
    if len(messages) == 1:
        line: Any = messages[0]
    else:
        line = html.Details([html.Summary(f"{len(messages)} notices: {messages[0]}", className="qk-one-line"),
                             html.Ul([html.Li(m) for m in messages[1:]], className="mb-0 mt-1")],
                            id=ids.NOTICES_MORE)
    return [dbc.Alert(line, color="warning", dismissable=True, className="py-1 px-2 mb-1 small qk-notice")]


def control_value(state: ViewState, field: str) -> Any:
    """What a control shows: B's controls show picture B's effective model, corpus, layer, head and vectors."""
    if field.startswith("b_"):
        return getattr(state.picture_b(), field.removeprefix("b_"))
    return getattr(state, field) if field != "labels" else bool(state.labels)


def intent(app: Dash, controls: Sequence[str] = (), events: Mapping[str, tuple[str, Handler]] | None = None) -> None:
    """Register one intent: a change of any of `controls` (ids in CONTROL_FIELDS; their values applied together)
    or of an `events` input (id -> (property, handler)) -> the new canonical URL, notices about refused values,
    and the controls written back as the URL has them."""
    events = dict(events or {})
    fields = {cid: CONTROL_FIELDS[cid] for cid in controls}
    inputs = [Input(cid, prop(cid)) for cid in controls] + [Input(cid, p) for cid, (p, _h) in events.items()]
    if not 0 < len(inputs) <= MAX_INPUTS:
        raise ValueError(f"an intent takes 1..{MAX_INPUTS} inputs, not {len(inputs)}")

    @app.callback(Output(ids.URL, "search", allow_duplicate=True),
                  Output(ids.URL_PUSHED, "data", allow_duplicate=True),
                  Output(ids.NOTICES, "children", allow_duplicate=True),
                  *[Output(cid, prop(cid), allow_duplicate=True) for cid in controls],
                  *inputs, State(ids.URL, "search"), prevent_initial_call=True)
    def to_url(*args):
        """Controls or clicks -> new URL (the sync callback then updates the page)."""
        search = args[-1]
        values = dict(zip([*controls, *events], args[:-1], strict=True))
        state, _notices = parse_query(search)
        triggered = set(ctx.triggered_prop_ids.values())
        if triggered and triggered <= set(fields) and all(values[c] == control_value(state, fields[c])
                                                          for c in triggered):
            return (no_update,) * (3 + len(controls))  # a control now showing what the URL holds: nothing to do
        notices: list[str] = []
        trigger = ctx.triggered_id
        if trigger in fields:
            new = with_controls(state, notices, **{fields[c]: values[c] for c in controls})
        elif trigger in events:
            new = events[trigger][1](state, values[trigger])
        else:
            new = state
        new, replaced = parse_query(new.to_query())  # what goes back to the browser is always canonical
        notices += replaced
        query = new.to_query()
        moved = query if query != search else no_update
        shown = [control_value(new, fields[c]) for c in controls]
        return (moved, moved, notices_of(notices) if notices else html.Div(),
                *[value if value != values[c] else no_update for c, value in zip(controls, shown, strict=True)])


def register(app: Dash) -> None:
    """The URL sync callback (URL -> page) and the browser-side helpers (canonical URL, tab id, copy link)."""
    stores = (ids.SINGLE_REQUEST, ids.VIEW_STYLE, ids.MATRIX_REQUEST, ids.COMPARE_A_REQUEST, ids.COMPARE_B_REQUEST)

    @app.callback(
        *[Output(cid, prop(cid)) for cid in CONTROL_FIELDS],
        Output(ids.LAYER, "options"), Output(ids.HEAD, "options"), Output(ids.CORPUS, "options"),
        Output(ids.B_LAYER, "options"), Output(ids.B_HEAD, "options"), Output(ids.B_CORPUS, "options"),
        Output(ids.COLOR, "options"), *[Output(store, "data") for store in stores], Output(ids.NOTICES, "children"),
        Output(ids.URL_PUSHED, "data"),
        Input(ids.URL, "search"), *[State(cid, prop(cid)) for cid in CONTROL_FIELDS],
        *[State(store, "data") for store in stores], State(ids.URL_PUSHED, "data"),
    )
    def sync(search: str | None, *args):
        """URL changed (an intent, a link, load, back, forward) -> controls, the menus that depend on the model
        (layers, heads, corpora, colour modes), view stores and notices."""
        shown = args[: len(CONTROL_FIELDS)]
        old_request, old_style, old_matrix, old_a, old_b, pushed = args[len(CONTROL_FIELDS):]
        state, notices = parse_query(search)
        spec = read_spec(state.model)
        request = state.request()
        style = state.record()
        matrix = {k: request[k] for k in ("model", "corpus", "norm", "method")} if state.view == "matrix" else None
        picture_b = state.picture_b()
        b_spec = read_spec(picture_b.model)
        values = [control_value(state, field) for field in CONTROL_FIELDS.values()]
        from_intent = pushed is not None and pushed == search  # the intent that pushed it wrote its own notices
        return (*[_unless_same(value, old) for value, old in zip(values, shown, strict=True)],
                range_options(spec.n_layers), range_options(spec.n_heads), corpus_options(spec.modality, state.corpus),
                range_options(b_spec.n_layers), range_options(b_spec.n_heads),
                corpus_options(b_spec.modality, picture_b.corpus), colour_options(spec.modality),
                # the matrix computes its own heads: the single view's head waits until a view shows it
                _unless_same(request, old_request) if state.view not in ("matrix", "headmap") else no_update,
                _unless_same(style, old_style),
                _unless_same(matrix, old_matrix) if matrix is not None else no_update,
                _unless_same(request, old_a) if state.view == "compare" else no_update,
                _unless_same(state.request_b(), old_b) if state.view == "compare" else no_update,
                no_update if from_intent else notices_of(notices) if notices else html.Div(),
                None if pushed is not None else no_update)

    app.clientside_callback(
        """function(data) {
            if (data && data.query && window.location.search !== data.query) {
                window.history.replaceState(window.history.state, "", window.location.pathname + data.query);
            }
            return window.dash_clientside.no_update;
        }""",
        Output(ids.URL_CANONICAL, "data"), Input(ids.VIEW_STYLE, "data"),
    )
    app.clientside_callback(  # a random id per browser tab: the unit of the job limit
        """function(_path, known) {
            return known || (window.crypto && crypto.randomUUID ? crypto.randomUUID()
                                                               : String(Math.random()).slice(2));
        }""",
        Output(ids.CLIENT, "data"), Input(ids.URL, "pathname"), State(ids.CLIENT, "data"),
    )
    app.clientside_callback(
        "function(n) { return window.location.href; }",
        Output(ids.COPY_LINK, "content"), Input(ids.COPY_LINK, "n_clicks"), prevent_initial_call=True,
    )


def _unless_same(new: Any, old: Any) -> Any:
    """no_update when a store or control already holds this value (so callbacks reading it do not run again)."""
    return no_update if new == old else new
