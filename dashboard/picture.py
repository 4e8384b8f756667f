"""The picture component: one head's joint query/key picture with the stores and poll that follow its job.

`layout(prefix, …)` builds the graph (and a title line if asked), the request store the URL sync writes, the job
store, the poll interval and the computed-keys store, all named `{prefix}-{part}` (dashboard.ids.picture);
`register(app, prefix, …)` follows the picture's job, and then the job of its head's attention within each text
(what a selected text's lines are drawn from): each look (the request changed, or a poll tick) submits or reads
their status, and the web process never waits on a job and never runs one; `figure(…)` draws a computed record.
The single view uses one (`single`), the side-by-side view two (`compare-a`, `compare-b`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dash import Dash, Input, Output, State, ctx, dcc, html, no_update

from dashboard import ids, jobs
from dashboard.figures.single import Style, empty_figure, single_figure, values_figure
from dashboard.shell.widgets import GRAPH_CONFIG, POLL_MS, corpus_label
from workers.contracts.requests import HeadRequest
from workers.models.registry import read_spec
from workers.pipeline.keys import resolve


@dataclass(frozen=True)
class Look:
    """What one look found: the computed record once the picture is finished (or failed), else the job record to
    keep polling; a finished picture whose lines are still computed keeps a job record too."""

    computed: dict[str, Any] | None  # {"request", "keys", "causal", "lines"} or {"request", "error"}; None: waiting
    job: dict[str, Any] | None  # {"request", "started"} while the picture is computed (+ "lines": its lines)
    percent: int  # progress 0..100
    message: str  # '' once finished
    repeat: bool = False  # a poll tick that found nothing new (the picture's lines still being computed)

    @property
    def waiting(self) -> bool:
        """Whether the picture itself is still being computed."""
        return self.computed is None


def look(data: dict[str, Any], job: dict[str, Any] | None, client: str | None, asked: bool) -> Look:
    """One look at the view `data` (a HeadRequest's fields); asked: the page just asked for it (submit again even
    if an earlier try failed), else a poll tick of the job record `job`. The head's attention within each text is
    submitted once the picture is stored and followed until it is stored too."""
    fresh = asked or not job or job.get("request") != data
    started = time.time() if fresh else float(job["started"])
    request = HeadRequest.from_dict(data)
    store = jobs.store()
    if not fresh and job.get("lines"):  # the picture was drawn; only its lines are awaited
        return _finished(data, resolve(request).__dict__, read_spec(request.model).causal,
                         jobs.lines_look(request, store, client), started, repeat=True)
    seen = jobs.follow(request, store, client, submit=fresh)  # the picture first: it extracts, and says so
    # the head's attention once its picture is stored: run beside it, it would take the cores the picture needs
    lines = jobs.lines_look(request, store, client) if request.vectors == "qk" and seen["state"] == "done" else None
    if seen["state"] == "done":
        return _finished(data, seen["keys"], read_spec(request.model).causal, lines, started)
    if seen["state"] == "error":
        return Look({"error": seen["error"], "request": data}, None, 0, "")
    return Look(None, {"request": data, "started": started}, max(3, int(100 * seen["progress"])),
                f"{seen['message']} · {time.time() - started:.0f} s")


def _finished(data: dict[str, Any], keys: dict[str, str], causal: bool, lines: dict[str, Any] | None,
              started: float, repeat: bool = False) -> Look:
    """A finished picture's look: its computed record (with the state of its lines, when it has any) and, while
    its lines are computed, a job record to keep following them (repeat: a tick on which they are still)."""
    computed = {"keys": keys, "request": data, "causal": causal, **({"lines": lines} if lines else {})}
    if lines and lines["state"] == "waiting":
        return Look(computed, {"request": data, "started": started, "lines": True}, 100, "", repeat)
    return Look(computed, None, 100, "")


def layout(prefix: str, placeholder: str, title: bool = False) -> list:
    """The graph of a picture (under a title line if asked; it fills the height its flex column leaves) and the
    stores and poll that follow its job."""
    def part(name: str) -> str:
        return ids.picture(prefix, name)

    return [dcc.Store(id=part("request")), dcc.Store(id=part("job")), dcc.Store(id=part("keys")),
            dcc.Interval(id=part("poll"), interval=POLL_MS, disabled=True),
            *([html.Div(id=part("title"), className="small fw-bold")] if title else []),
            dcc.Graph(id=part("graph"), className="qk-fill", responsive=True, config=GRAPH_CONFIG,
                      figure=empty_figure(placeholder))]


def register(app: Dash, prefix: str, progress: Sequence[Output] = (),
             shown: Callable[[Look], tuple] = lambda _look: ()) -> None:
    """Follow the picture's job: a stored (and intact) picture is served at once, anything else is submitted to the
    workers and looked at every POLL_MS until it is done; `shown(look)` gives the values of the `progress` outputs
    (how the view tells its progress)."""
    def part(name: str) -> str:
        return ids.picture(prefix, name)

    @app.callback(Output(part("keys"), "data"), Output(part("job"), "data"), Output(part("poll"), "disabled"),
                  *progress, Input(part("request"), "data"), Input(part("poll"), "n_intervals"),
                  State(part("job"), "data"), State(ids.CLIENT, "data"), prevent_initial_call=True)
    def follow(data: dict[str, Any] | None, _tick: int | None, job: dict[str, Any] | None, client: str | None):
        """One look at the picture's job; the computed record once it is done. A newly asked picture that is not
        stored yet replaces the shown one at once by a pending record (no stale picture under a new heading)."""
        if not data:
            return (no_update,) * (3 + len(progress))
        asked = ctx.triggered_id == part("request")
        seen = look(data, job, client, asked=asked)
        if seen.waiting:
            return pending(data) if asked else no_update, seen.job, False, *shown(seen)
        if seen.repeat:  # the picture is drawn and its lines still computed: nothing new to draw
            return no_update, seen.job, False, *(no_update,) * len(progress)
        return seen.computed, seen.job, seen.job is None, *shown(seen)


def pending(data: dict[str, Any]) -> dict[str, Any]:
    """The record of a picture asked for and being computed: what its views draw meanwhile is a placeholder."""
    return {"request": data, "pending": True}


def placeholder(computed: dict[str, Any], what: str = "this view") -> Any:
    """The figure shown while a picture is computed: its head and corpus, and where the progress is."""
    request = computed["request"]
    return empty_figure(f"Computing {what}: L{request['layer']} H{request['head']} of {request['model']} over "
                        f"corpus {corpus_label(request['corpus'])} (progress above)")


def style_of(data: dict[str, Any]) -> Style:
    """How a picture is drawn, from the view-style store."""
    return Style(color=data["color"], show=data["show"], labels=bool(data["labels"]), search=data["search"],
                 text=None if data["text"] < 0 else data["text"], pos=None if data["pos"] < 0 else data["pos"])


def figure(computed: dict[str, Any], style: Style, revision: str, what: str = "this view"):
    """A computed picture's figure: queries and keys, or the head's value vectors (`vectors` "v"), or why not."""
    if "error" in computed:
        return empty_figure(f"Could not compute {what}: {computed['error']}")
    keys = computed["keys"]
    if computed["request"].get("vectors") == "v":
        return values_figure(jobs.stored_coords(keys["coords"]), jobs.tokens_table(keys["tokens"]),
                             jobs.stored_vector(keys["v"]), style, revision)
    return single_figure(jobs.head_data(keys, computed["causal"], jobs.lines_of(computed)), style, revision)[0]


def lines_note(computed: dict[str, Any]) -> str:
    """What a picture's selected-text lines wait for, or why they are missing ('' once they can be drawn)."""
    lines = computed.get("lines") or {"state": "done"}
    if lines["state"] == "waiting":
        return f"its attention lines follow once this head's attention is computed ({lines['message']})"
    if lines["state"] == "error":
        return f"no attention lines: {lines['error']}"
    return ""
