"""Matrix view: every head of the model in one figure. Submit every head to the worker, then fill the cells in as
they finish (polled once a second); cells placed by layer x head or ranked by a per-head value; a click opens a head."""

from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache
from typing import Any

import dash_bootstrap_components as dbc
import numpy as np
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update

from dashboard import ids, jobs
from dashboard.figures.matrix import cell_at, matrix_figure, ranked_slots, unit_cell
from dashboard.figures.single import empty_figure
from dashboard.shell import url
from dashboard.shell.widgets import GRAPH_CONFIG, TIPS
from dashboard.state import ViewState
from workers.contracts.choices import METHODS
from workers.contracts.requests import HeadRequest, job_request
from workers.core import metrics
from workers.models.registry import read_spec
from workers.pipeline.keys import METHOD_NAMES, corpus_template, fidelity_key, resolve_heads, summary_key

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
KEEP_DEBOUNCE_S = 0.6  # the threshold applies once typing pauses this long (seconds: dcc.Input's unit)
PROGRESS_STYLE = {"height": "1.2rem"}
SAMPLE_TOKENS = 2000  # at most this many tokens drawn per head (each a query and a key); stated in the status line
POINT_BUDGET = 300_000  # points in the whole figure: cells of a many-head model draw fewer tokens each
PREVIEW_NOTES = {choice.value: choice.preview_note for choice in METHODS if choice.preview_note}


def panel() -> html.Div:
    """The matrix view: every head of the model in one WebGL figure."""
    return html.Div([
        dbc.Progress(id=ids.MATRIX_PROGRESS, value=0, striped=True, animated=True, className="mb-1",
                     style=PROGRESS_STYLE),
        html.Div(id=ids.MATRIX_STATUS, className="small text-muted mb-1"),
        html.Div([html.Div([html.Span("Place cells by ", className="small me-2"),
                            dcc.Dropdown(id=ids.MATRIX_ORDER, clearable=False, value="grid",
                                         style={"minWidth": "17rem"},
                                         options=[{"label": label, "value": value}
                                                  for value, label in ORDER_LABELS.items()])],
                           title=TIPS[ids.MATRIX_ORDER], className="d-flex align-items-center"),
                  html.Div([html.Span("keep heads at or above", className="small ms-3 me-2"),
                            dcc.Input(id=ids.MATRIX_KEEP, type="text", debounce=KEEP_DEBOUNCE_S,
                                      placeholder="e.g. 0.5", inputMode="decimal", style={"width": "6rem"},
                                      className="form-control form-control-sm")],
                           title=TIPS[ids.MATRIX_KEEP], className="d-flex align-items-center"),
                  html.Div([html.Span("colour cells by", className="small ms-3 me-2"),
                            dcc.Dropdown(id=ids.MATRIX_TINT, clearable=False, value="none",
                                         style={"minWidth": "13rem"},
                                         options=[{"label": label, "value": value}
                                                  for value, label in TINT_LABELS.items()])],
                           title=TIPS[ids.MATRIX_TINT], className="d-flex align-items-center")],
                 className="d-flex align-items-center mb-1 flex-wrap"),
        # chained poll: each drawing allows one more tick (max_intervals), so a tick never overtakes a drawing still
        # on its way (Dash drops the older answer of a callback asked again: plotly/dash#1613)
        dcc.Interval(id=ids.MATRIX_INTERVAL, interval=1000, disabled=True, max_intervals=0),
        dcc.Store(id=ids.MATRIX_DRAWN),
        dcc.Graph(id=ids.MATRIX_GRAPH, className="qk-fill", responsive=True,
                  figure=empty_figure("Open the matrix view…"), config=GRAPH_CONFIG),
    ], id=ids.MATRIX_PANEL, className="qk-panel", style={"display": "none"})


def _template(request: dict[str, Any]) -> HeadRequest:
    """The matrix's head request (2D, any head; UMAP and t-SNE as their faster preview)."""
    return HeadRequest(model=request["model"], corpus=request["corpus"], norm=request["norm"],
                       method=request["method"], dims=2, preview=True)


@lru_cache(maxsize=4096)
def _sampled_coords(key: str, size: int) -> np.ndarray:
    """One head's coords at the matrix's token sample of this size, scaled into its cell (`unit_cell`): [2S, 2],
    queries then keys (cached per content key, so a redraw reads and scales no head twice and holds only the drawn
    points)."""
    arrays = jobs.store().get_arrays(key)
    if arrays is None:
        raise KeyError(key)
    coords = arrays["coords"]
    n_tokens = len(coords) // 2
    rows = token_sample(n_tokens, size)
    return unit_cell(coords[np.concatenate([rows, rows + n_tokens])])


def _readable_coords(keys: dict[str, str], size: int = SAMPLE_TOKENS) -> np.ndarray | None:
    """A cell's coords at the token sample [2S, 2], or None when the stored entry was damaged (the store removed
    it; the poll resubmits it)."""
    try:
        return _sampled_coords(keys["coords"], size)
    except KeyError:
        return None


def tokens_per_cell(n_tokens: int, n_cells: int, budget: int = POINT_BUDGET, cap: int = SAMPLE_TOKENS) -> int:
    """Tokens drawn in each cell: all of them up to `cap`, fewer when the cells' queries and keys together
    would pass the figure's point budget (2 points a token per cell)."""
    return max(1, min(n_tokens, cap, budget // (2 * max(n_cells, 1))))


def sample_size(cells: dict[tuple[int, int], dict], total: int) -> int:
    """Tokens drawn per cell for the corpus of these cells' keys, `total` cells sharing the budget."""
    if not cells:
        return SAMPLE_TOKENS
    return tokens_per_cell(len(jobs.tokens_table(next(iter(cells.values()))["tokens"])["token"]), total)


def token_sample(n_tokens: int, size: int = SAMPLE_TOKENS) -> np.ndarray:
    """A fixed, sorted random sample of token rows (all rows when there are few)."""
    if n_tokens <= size:
        return np.arange(n_tokens)
    return np.sort(np.random.default_rng(0).choice(n_tokens, size, replace=False))


def finished_cells(request: dict[str, Any]) -> tuple[dict[tuple[int, int], dict], int]:
    """Keys of the finished heads, and how many heads there are."""
    keys = resolve_heads(_template(request))
    store = jobs.store()
    done = {cell: k.__dict__ for cell, k in keys.items() if store.has(k.coords) and store.has(k.tokens)}
    return done, len(keys)


def provisional_cells(request: dict[str, Any], done: dict) -> dict[tuple[int, int], dict]:
    """PCA pictures of the heads whose slower projection is not finished yet (PCA first, refined later)."""
    if request["method"] == "pca":
        return {}
    pca, _total = finished_cells({**request, "method": "pca"})
    return {cell: keys for cell, keys in pca.items() if cell not in done}


FIDELITY_ORDERS = {"fidelity": "top1_in_k", "fidelity_rank": "rank_correlation",
                   "fidelity_non_sink": "top1_in_k_non_sink", "fidelity_baseline": "baseline"}


def head_values(request: dict[str, Any], order: str, client: str | None = None, submit: bool = True
                ) -> tuple[dict[tuple[int, int], float], int]:
    """Each head's stored summary or fidelity value for ranking, and how many heads lack one; what is missing is
    submitted to the workers (every head's summaries as one job; each finished picture's fidelity as a bulk job),
    so the ranking fills in over a few polls (submit=False: read only)."""
    template, store = _template(request), jobs.store()
    values, missing, unmeasured = {}, 0, []
    for cell, keys in resolve_heads(template).items():
        if order in FIDELITY_ORDERS:  # how faithful the cell's own picture is
            found = store.get_json(fidelity_key(keys))
            value = None if found is None else found["picture"][FIDELITY_ORDERS[order]]
            if found is None and keys.complete(store):
                unmeasured.append(job_request(replace(template, layer=cell[0], head=cell[1]), "fidelity"))
        else:
            found = store.get_json(summary_key(keys))
            value = None if found is None else found[order]
        if value is None:
            missing += 1
            continue
        if np.isfinite(value):  # not finite: e.g. no query of this head attends most to a non-sink key
            values[cell] = float(value)
    if unmeasured and submit:
        jobs.submit_limited(client, unmeasured, store, urgent=False)
    elif missing and submit and order not in FIDELITY_ORDERS:
        jobs.measure(corpus_template(template), "summaries", store, client)
    return values, missing


def kept(values: dict[tuple[int, int], float], keep: str) -> dict[tuple[int, int], float]:
    """The heads whose value is at least `keep` (all of them when keep is empty)."""
    if not keep:
        return values
    return {cell: value for cell, value in values.items() if value >= float(keep)}


def ranking(values: dict[tuple[int, int], float] | None, n_heads: int) -> tuple[dict | None, dict | None]:
    """(slots, labels) of the matrix ranked by summary values; (None, None) for the layer x head grid."""
    if values is None:
        return None, None
    labels = {cell: f"L{cell[0]}H{cell[1]} · {value:.2f}" for cell, value in values.items()}
    return ranked_slots(values, n_heads), labels


def pending_requests(request: dict[str, Any], done: dict | None = None) -> list[dict[str, Any]]:
    """Requests of the unfinished heads: with UMAP / t-SNE, every head's PCA first (a second for all heads);
    `done`: finished_cells(request) when the caller has it already."""
    done = finished_cells(request)[0] if done is None else done
    template = _template(request)
    spec = read_spec(request["model"])
    cells = [(layer, head) for layer in range(spec.n_layers) for head in range(spec.n_heads)]
    out = []
    if template.method != "pca":
        ready = finished_cells({**request, "method": "pca"})[0]
        out += [replace(template, method="pca", layer=la, head=h).to_dict() for la, h in cells
                if (la, h) not in done and (la, h) not in ready]
    return out + [replace(template, layer=la, head=h).to_dict() for la, h in cells if (la, h) not in done]


def matrix_cell(state: ViewState, click: dict | None) -> ViewState:
    """Open the clicked matrix cell in the single view."""
    point = (click or {}).get("points", [{}])[0]
    if not all(isinstance(point.get(axis), (int, float)) and math.isfinite(point[axis]) for axis in ("x", "y")):
        return state
    spec = read_spec(state.model)
    layer, head = cell_at(point["x"], point["y"], spec.n_layers)  # the slot's row and column
    if state.order != "grid":  # ranked: the slot holds whichever head ranked there
        slots = ranked_slots(kept(head_values(state.request(), state.order, submit=False)[0], state.keep), spec.n_heads)
        by_slot = {slot: cell for cell, slot in slots.items()}
        if (layer, head) not in by_slot:
            return state
        layer, head = by_slot[(layer, head)]
    return replace(state, view="single", layer=min(layer, spec.n_layers - 1), head=min(head, spec.n_heads - 1))


def register(app: Dash) -> None:
    """Callbacks of the matrix view: how cells are placed and tinted, a click opens a head, and the drawing."""
    url.intent(app, (ids.MATRIX_ORDER, ids.MATRIX_KEEP, ids.MATRIX_TINT),
               {ids.MATRIX_GRAPH: ("clickData", matrix_cell)})

    @app.callback(Output(ids.MATRIX_DEFERRED, "data"),
                  Input(ids.MATRIX_REQUEST, "data"), State(ids.CLIENT, "data"), prevent_initial_call=True)
    def start(request: dict[str, Any] | None, client: str | None):
        """Queue every unfinished head (the worker dedups; the session's job limit may hold some back); the drawing,
        asked by the same request, starts the poll while heads are missing."""
        if not request:
            return no_update
        if jobs.space_problem(jobs.store()) is not None:  # the draw callback says so; nothing is queued
            return 0
        _submitted, held = jobs.submit_limited(client, pending_requests(request), jobs.store(), urgent=False)
        return held

    @app.callback(Output(ids.MATRIX_GRAPH, "figure"), Output(ids.MATRIX_GRAPH, "style"),
                  Output(ids.MATRIX_PROGRESS, "value"), Output(ids.MATRIX_PROGRESS, "label"),
                  Output(ids.MATRIX_PROGRESS, "style"), Output(ids.MATRIX_STATUS, "children"),
                  Output(ids.MATRIX_INTERVAL, "disabled"),
                  Output(ids.MATRIX_DRAWN, "data"),
                  Output(ids.MATRIX_DEFERRED, "data", allow_duplicate=True),
                  Output(ids.MATRIX_INTERVAL, "max_intervals"),
                  Input(ids.MATRIX_INTERVAL, "n_intervals"), Input(ids.MATRIX_REQUEST, "data"),
                  Input(ids.VIEW_STYLE, "data"), State(ids.MATRIX_DRAWN, "data"), State(ids.MATRIX_DEFERRED, "data"),
                  State(ids.CLIENT, "data"), prevent_initial_call=True)
    def draw(tick: int | None, request: dict[str, Any] | None, style: dict[str, Any] | None, drawn: dict | None,
             held: int | None, client: str | None):
        """Redraw when more heads have finished (or the search changed); submit heads the job limit held back; the
        progress bar shows while heads are missing (the status line counts them either way); one more poll tick
        while anything is missing."""
        if not request or not style or style.get("view") != "matrix":
            return (no_update,) * 10
        next_tick = (tick or 0) + 1
        done, total = finished_cells(request)
        # every pending head again (queued ones are not queued twice): heads the session's job limit held back,
        # and heads whose job was dropped (a server restart) or lost
        full = jobs.space_problem(jobs.store())
        pending = pending_requests(request, done) if len(done) < total and full is None else []
        still_held = jobs.submit_limited(client, pending, jobs.store(), urgent=False)[1] if pending else no_update
        size = sample_size(done, total)
        for cell in [cell for cell, keys in done.items() if _readable_coords(keys, size) is None]:  # damaged: again
            del done[cell]
            jobs.backend().submit(replace(_template(request), layer=cell[0], head=cell[1]).to_dict(), jobs.store(),
                                  urgent=False)
        provisional = provisional_cells(request, done)
        order = style.get("order", "grid")
        values, unsummarised = head_values(request, order, client) if order != "grid" else (None, 0)
        tint = style.get("tint", "none")
        tint_values, untinted = ((values, unsummarised) if tint == order else head_values(request, tint, client)
                                 ) if tint != "none" else (None, 0)
        signature = {"done": len(done), "provisional": len(provisional), "search": style["search"],
                     "request": request, "order": order, "summarised": len(values or {}),
                     "keep": style.get("keep", ""), "tint": tint, "tinted": len(tint_values or {})}
        finished = len(done) == total and not unsummarised and not untinted
        signature["full"] = full
        if drawn == signature and ctx.triggered_id == ids.MATRIX_INTERVAL:
            return (no_update,) * 6 + (finished, no_update, still_held, next_tick)
        spec = read_spec(request["model"])
        keep = style.get("keep", "") if order != "grid" else ""
        slots, labels = ranking(kept(values, keep) if values is not None else None, spec.n_heads)
        figure, status = cells_figure(done, provisional, spec, style["search"], total, request["method"], slots, labels,
                                 (tint_values, TINT_LABELS[tint]) if tint_values is not None else None)
        if order != "grid":
            status += f" · cells ranked by {ORDER_LABELS[order].removesuffix(' (ranked)')}, highest first"
            if keep:
                status += f" · {len(slots or {})} of {total} heads at or above {keep}"
            if unsummarised:
                status += f" ({unsummarised} heads still being measured)"
        if tint != "none":
            status += f" · cell colour: {TINT_LABELS[tint]} (scale on the left)"
            if untinted:
                status += f" ({untinted} heads still being measured)"
        if full is not None:
            status = f"{full} · {status}"
        percent = int(100 * len(done) / max(total, 1))
        waiting = still_held if isinstance(still_held, int) else held
        if waiting:
            status += (f" · {waiting} heads wait for this session's earlier jobs to finish (at most "
                       f"{jobs.job_limit()} unfinished at once, QK_ATLAS_MAX_JOBS_PER_USER)")
        bar = {**PROGRESS_STYLE, "display": "none" if len(done) == total else "flex"}
        return (figure, graph_style(spec.n_layers), percent, f"{len(done)}/{total} heads", bar, status, finished,
                signature, still_held, next_tick)


MIN_CELL_PX = 18  # a cell stays at least this tall (the view scrolls), so a many-layer model's cells take a click
FIGURE_MARGIN_PX = 90  # the figure's margins, labels and legend


def graph_style(n_layers: int) -> dict[str, str]:
    """The matrix graph's style: tall enough for MIN_CELL_PX a row when the window alone would not be."""
    return {"minHeight": f"{MIN_CELL_PX * n_layers + FIGURE_MARGIN_PX}px"}


def cells_figure(done: dict[tuple[int, int], dict], provisional: dict[tuple[int, int], dict], spec, search: str,
            total: int, method: str, slots: dict | None = None, labels: dict | None = None,
            tint: tuple[dict, str] | None = None):
    """The matrix figure of the finished heads (PCA stand-ins for pending ones) and a status line."""
    shown_cells = {**provisional, **done}
    if not shown_cells:
        return matrix_figure({}, spec.n_layers, spec.n_heads, np.arange(0)), f"0/{total} heads computed…"
    tokens = jobs.tokens_table(next(iter(shown_cells.values()))["tokens"])
    n = len(tokens["token"])
    size = sample_size(shown_cells, total)
    sample = token_sample(n, size)
    matches = np.flatnonzero(metrics.search_matches(tokens["label"], search)) if search.strip() else None
    cells = {cell: coords for cell, keys in shown_cells.items()
             if (coords := _readable_coords(keys, size)) is not None}
    drawn = np.arange(len(sample))  # the cells hold the sample's rows already
    figure = matrix_figure(cells, spec.n_layers, spec.n_heads, drawn,
                           None if matches is None else np.flatnonzero(np.isin(sample, matches)),
                           provisional=set(provisional), slots=slots, labels=labels, tint=tint, in_unit_cell=True)
    status = (f"{len(done)}/{total} heads · each cell shows {len(sample):,} of {n:,} tokens (sampled, the same "
              f"tokens in every cell) as a query and a key")
    if len(sample) < min(n, SAMPLE_TOKENS):
        status += f" ({POINT_BUDGET:,} points at most in the whole figure, shared by its {total:,} cells)"
    status += " · click a cell to open it"
    status += "".join(f" · Note: {note}" for note in tokens.get("notes", []))
    if method in PREVIEW_NOTES:
        status += f" · {PREVIEW_NOTES[method]}"
    if provisional:
        status += f" · {len(provisional)} cells show PCA (dashed) until their {METHOD_NAMES[method]} finishes"
    if matches is not None:
        shown = int(np.isin(sample, matches).sum())
        status += f" · {len(matches):,} tokens match {search!r}, {shown:,} of them in the sample"
    return figure, status
