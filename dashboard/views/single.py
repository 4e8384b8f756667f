"""Single-head view: its panel, following the head's job, drawing it, hover panel, selection line, token clicks."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, Patch, State, dcc, html, no_update

from dashboard import ids, jobs, picture
from dashboard.figures.single import base_signature, empty_figure, on_screen, overlay_traces, single_figure
from dashboard.shell import url
from dashboard.shell.widgets import TIPS
from dashboard.state import ViewState
from dashboard.views.headmap import related_line
from workers.contracts.choices import ATTENTION_METHODS
from workers.contracts.requests import HeadRequest
from workers.pipeline.keys import fidelity_key, resolve


def panel() -> html.Div:
    """The single-head view: selection line, then the scatter with the hover panel beside it."""
    return html.Div([
        html.Div([html.Span(id=ids.SELECTION, className="small qk-clip"),  # one line: the whole of it in its title
                  dbc.Button("clear selection", id=ids.CLEAR_SELECTION, size="sm", color="link",
                             className="py-0 text-nowrap", title=TIPS[ids.CLEAR_SELECTION])],
                 className="d-flex align-items-center"),
        dbc.Row([dbc.Col(picture.layout(ids.SINGLE, "Preparing the view…"), lg=9),
                 dbc.Col(dbc.Card(dbc.CardBody(html.Div("Hover a point to see its sentence; click it to select its "
                                                        "text.", id=ids.HOVER_PANEL, className="small")),
                                  className="qk-hover"), lg=3)], className="qk-row-fill g-2"),
        dcc.Store(id=ids.SINGLE_DRAWN),
    ], id=ids.SINGLE_PANEL, className="qk-panel")


def clicked_token(point: dict) -> int | None:
    """Token index of a clicked or hovered point: pointNumber on the base traces, customdata on overlays."""
    if point.get("curveNumber") in (0, 1) and isinstance(point.get("pointNumber"), int):
        return point["pointNumber"]
    index = point.get("customdata")
    return index if isinstance(index, int) else None


def keys_of(request: dict[str, Any]) -> dict[str, str] | None:
    """Stored keys of a picture's request (None when not computed yet)."""
    return jobs.cached_keys(HeadRequest.from_dict(request), jobs.store_for(jobs.cache_dir()))


def selected_token(state: ViewState, click: dict | None) -> ViewState:
    """Select the text and position of a clicked point (clicking the selected token again clears it)."""
    index = clicked_token((click or {}).get("points", [{}])[0])
    if index is None:
        return state
    keys = keys_of(state.request())
    tokens = keys and jobs.tokens_table(keys["tokens"])
    if not tokens or not 0 <= index < len(tokens["token"]):
        return state
    text, pos = int(tokens["text_id"][index]), int(tokens["position"][index])
    if (state.text, state.pos) == (text, pos):
        return replace(state, text=-1, pos=-1)
    return replace(state, text=text, pos=pos)


def cleared(state: ViewState, _clicks) -> ViewState:
    """No text selected."""
    return replace(state, text=-1, pos=-1)


def register(app: Dash) -> None:
    """Callbacks of the single view: a click selects a token's text, the clear button clears it."""
    url.intent(app, events={ids.SINGLE_GRAPH: ("clickData", selected_token),
                            ids.CLEAR_SELECTION: ("n_clicks", cleared)})

    picture.register(app, ids.SINGLE, [Output(ids.STATUS, "children"), Output(ids.PROGRESS_WRAP, "style"),
                                       Output(ids.PROGRESS, "value"), Output(ids.PROGRESS_TEXT, "children")],
                     progress_shown)

    @app.callback(Output(ids.SINGLE_GRAPH, "figure"), Output(ids.SELECTION, "children"), Output(ids.SELECTION, "title"),
                  Output(ids.SEARCH_COUNT, "children"), Output(ids.SINGLE_DRAWN, "data"),
                  Input(ids.SINGLE_KEYS, "data"), Input(ids.VIEW_STYLE, "data"), State(ids.SINGLE_DRAWN, "data"),
                  State(ids.SINGLE_REQUEST, "data"), prevent_initial_call=True)
    def draw(computed: dict[str, Any] | None, style: dict[str, Any] | None, drawn: dict[str, Any] | None,
             wanted: dict[str, Any] | None):
        """Draw the computed head under the current style (no worker involved).

        When only overlays change (selection, search, labels), the base traces stay in the browser: a Patch
        replaces the overlay traces alone.
        """
        if not computed or not style or computed.get("request") != wanted:  # nothing yet, or a late older view
            return no_update, no_update, no_update, no_update, no_update
        if "error" in computed:
            return empty_figure(f"Could not compute this view: {computed['error']}"), "", "", "", None
        if computed.get("pending"):
            return picture.placeholder(computed), "", "", "", None
        request, view_style = computed["request"], picture.style_of(style)
        data = jobs.head_data(computed["keys"], computed["causal"], jobs.lines_of(computed))
        signature = base_signature(request, view_style)
        if drawn and drawn.get("base") == signature:
            overlays, counts = overlay_traces(on_screen(data), view_style)
            figure = overlay_patch(drawn["overlays"], overlays)
        else:
            full, counts = single_figure(data, view_style, "|".join(str(request[k]) for k in sorted(request)))
            figure, overlays = full, full.data[2:]
        selection = selection_text(data.tokens, style, picture.lines_note(computed))
        return figure, selection, selection, search_text(style, counts), {"base": signature, "overlays": len(overlays)}

    @app.callback(Output(ids.FIDELITY, "children"), Output(ids.RELATED_HEADS, "children"),
                  Output(ids.MEASURES_POLL, "disabled"), Input(ids.SINGLE_KEYS, "data"),
                  Input(ids.MEASURES_POLL, "n_intervals"), Input(ids.VIEW_TABS, "active_tab"),
                  State(ids.VIEW_STYLE, "data"), State(ids.CLIENT, "data"), prevent_initial_call=True)
    def one_head_lines(computed: dict[str, Any] | None, _tick, view: Any, style: dict[str, Any] | None,
                       client: str | None):
        """How faithfully this picture shows attention, and the heads that attend most alike: read from the store;
        what is missing is submitted to the workers and looked at again every second. Side by side (the tab
        shown), the fidelity line is picture A's and says so."""
        if not computed or "keys" not in computed or not style:
            return "", "", True
        request = HeadRequest.from_dict(computed["request"])
        fidelity, fidelity_busy = fidelity_line(request, bool(computed.get("causal")), client,
                                                "A" if view == "compare" else "")
        related, related_busy = related_line(request, style, client)
        return fidelity, related, not (fidelity_busy or related_busy)

    @app.callback(Output(ids.HOVER_PANEL, "children"), Input(ids.SINGLE_GRAPH, "hoverData"),
                  State(ids.SINGLE_KEYS, "data"), prevent_initial_call=True)
    def hover(hover_data: dict | None, computed: dict[str, Any] | None):
        """The hovered token's sentence, with the token highlighted."""
        point = (hover_data or {}).get("points", [{}])[0]
        index = clicked_token(point)
        if index is None or not computed or "keys" not in computed:
            return no_update
        found = jobs.hovered_sentence(computed["keys"]["tokens"], index)
        if not found:
            return no_update
        pieces, label, position = found
        role = {0: "query, ", 1: "key, "}.get(point.get("curveNumber"), "")
        return [html.Strong(f"{label} ({role}position {position}): "), *marked_sentence(pieces, position, label)]


def marked_sentence(pieces: list[str], position: int, label: str) -> list:
    """A text's pieces joined as the text reads, the piece at `position` marked (its leading space left outside;
    a piece with nothing to see, such as a line break, marked by its label)."""
    before, piece, after = "".join(pieces[:position]), pieces[position], "".join(pieces[position + 1:])
    space = piece[: len(piece) - len(piece.lstrip())]
    return [(before + space).lstrip(), html.Mark(piece.strip() or label), after]


def progress_shown(seen: picture.Look) -> tuple:
    """The single picture's progress: the bar while its job runs, then the status line (tokens, texts, points)."""
    if seen.waiting:
        return no_update, {"display": "block"}, seen.percent, seen.message
    computed = seen.computed
    status = f"Error: {computed['error']}" if "error" in computed else view_status(computed["keys"])
    return status, {"display": "none"}, 100, ""


def overlay_patch(previous: int, overlays: list) -> Patch:
    """A figure Patch that drops the `previous` overlay traces (after queries and keys) and adds `overlays`."""
    patch = Patch()
    for _ in range(previous):
        del patch["data"][2]
    patch["data"].extend([trace.to_plotly_json() for trace in overlays])
    return patch


FIDELITY_MORE = {"": ids.FIDELITY_MORE, "A": ids.FIDELITY_MORE, "B": ids.COMPARE_B_FIDELITY_MORE}


def fidelity_line(request: HeadRequest, causal: bool, client: str | None, picture: str = "") -> tuple[Any, bool]:
    """The fidelity line of a stored picture (one line, the whole account on a click), or what its job is doing;
    (line, still working). picture: "A" or "B" side by side, named at the line's start."""
    if request.vectors != "qk":
        return "", False
    named = f"Picture {picture} · " if picture else ""
    store = jobs.store()
    seen = jobs.measure(request, "fidelity", store, client)
    if seen["state"] == "error":
        return f"{named}Fidelity not available: {seen['error']}", False
    if seen["state"] == "waiting":
        return f"{named}Fidelity: measuring ({seen['message']})", True
    found = store.get_json(fidelity_key(resolve(request)))
    if not found:
        return "", True
    return html.Details([html.Summary(named + fidelity_summary(found), className="qk-one-line"),
                         html.Div(fidelity_text(found, causal, request.method))], id=FIDELITY_MORE[picture]), False


def fidelity_summary(found: dict[str, dict]) -> str:
    """One line: the picture's top-1-in-3 beside the no-picture guess, and the rank correlation (the rest on a
    click: fidelity_text)."""
    picture = found["picture"]
    return (f"Fidelity: {_percent(picture['top1_in_k'])} of queries have their most-attended key among their 3 "
            f"nearest (no picture, a sink or the previous token: {_percent(picture['baseline'])}) · rank "
            f"correlation {picture['rank_correlation']:.2f} · more…")


def _percent(value: float) -> str:
    """'59%', or 'n/a' for a share of no queries."""
    return "n/a" if value != value else f"{100 * value:.0f}%"


def fidelity_text(found: dict[str, dict], causal: bool = False, method: str = "") -> str:
    """In words: how often a query's most-attended key is among its 3 nearest keys in this picture (and before
    it), how much of that a guess without a picture already gets, the same on the queries that do not attend most
    to a sink, the rank correlation, then what the normalisation chose (or, for a picture placed from attention,
    that it reproduces attention and ignores the normalisation) and how the clouds sit."""
    picture = found["picture"]
    sink = "the first token or a special token" if causal else "a special token such as [CLS] or [SEP]"
    return (f"Fidelity: for {_percent(picture['top1_in_k'])} of queries in this picture, the key they attend to most "
            f"is among their 3 nearest keys (normalised vectors {_percent(found['normalised']['top1_in_k'])}, raw "
            f"{_percent(found['raw']['top1_in_k'])}); a guess without any picture (a sink or the previous token) "
            f"already gets {_percent(picture['baseline'])}. {_percent(picture['non_sink_share'])} of queries attend "
            f"most to a key other than {sink}: for them the picture gets {_percent(picture['top1_in_k_non_sink'])}, "
            f"the previous token alone {_percent(picture['baseline_non_sink'])}. Rank correlation of attention and "
            f"closeness: {picture['rank_correlation']:.2f}."
            f"{from_attention_text() if method in ATTENTION_METHODS else transform_text(found.get('transform'))}"
            f"{layout_text(found.get('layout'))}")


def from_attention_text() -> str:
    """What the fidelity of a picture placed from the head's attention means."""
    return (" This picture is placed from the head's attention itself, so these figures say how much of the "
            "attention it reproduces; the normalisation does not change it.")


def transform_text(transform: dict[str, Any] | None) -> str:
    """The normalisation's chosen translation and scale ('' when it is the identity)."""
    if not transform or (transform["translation"] == "none" and transform["scale"] == 1.0):
        return ""
    moved = {"none": "keys not moved", "centroid": "keys moved onto the query centroid",
             "equal-norm": "keys moved to equal norms"}[transform["translation"]]
    return (f" Normalisation: {moved}, queries scaled by {transform['scale']:.2f} and keys by its inverse "
            f"({transform['scale_multiplier']:g}× the mean-norm rule).")


def layout_text(layout: dict[str, float] | None) -> str:
    """A note when queries and keys sit apart in the picture (distances still rank keys)."""
    if not layout or layout["centroid_gap"] <= 1.0:
        return ""
    return f" Queries and keys sit side by side (gap {layout['centroid_gap']:.1f}× their spread)."


def view_status(keys: dict[str, str]) -> str:
    """Tokens, texts (or images) and points of a computed view, and any note about what the corpus limits cut."""
    tokens = jobs.tokens_table(keys["tokens"])
    n = len(tokens["token"])
    items = "images" if "row" in tokens else "texts"
    status = f"{n:,} tokens from {len(tokens['texts']):,} {items}: {2 * n:,} points (queries and keys)"
    return " · ".join([status, *(f"Note: {note}" for note in tokens.get("notes", []))])


def selection_text(tokens: dict, style: dict[str, Any], lines: str = "") -> str:
    """One line about the selected text (and, `lines`, what its attention lines wait for)."""
    if style["text"] < 0:
        return "Click a point to select its text and draw its attention."
    rows = tokens["text_id"] == style["text"]
    if not rows.any():
        return f"Text {style['text']} is not in this corpus."
    position = f", token {style['pos']}" if style["pos"] >= 0 else ""
    selected = f"Selected text {style['text']}{position} ({int(rows.sum())} tokens)"
    return f"{selected}; {lines}: {tokens['texts'][style['text']]}" if lines else \
        f"{selected}: {tokens['texts'][style['text']]}"


def search_text(style: dict[str, Any], counts: dict[str, int]) -> str:
    """Search result count."""
    if not style["search"].strip():
        return ""
    count = counts.get("matches", 0)
    return f"{count:,} token{'s' if count != 1 else ''} match {style['search']!r} (each a query and a key)"
