"""The picture component: one head's joint query/key picture with the stores and poll that follow its job.

`layout(prefix, …)` builds the graph (and a title line if asked), the request store the URL sync writes, the job
store, the poll interval and the computed-keys store, all named `{prefix}-{part}` (dashboard.ids.picture);
`register(app, prefix, …)` follows the picture's job: each look (the request changed, or a poll tick) submits or
reads its status, and the web process never waits on a job and never runs one; `figure(…)` draws a computed
record. The single view uses one (`single`), the side-by-side view two (`compare-a`, `compare-b`).
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


@dataclass(frozen=True)
class Look:
    """What one look found: the computed record once finished (or failed), else the job record to keep polling."""

    computed: dict[str, Any] | None  # {"request", "keys", "causal"} or {"request", "error"}; None while waiting
    job: dict[str, Any] | None  # {"request", "started"} while waiting
    percent: int  # progress 0..100
    message: str  # '' once finished

    @property
    def waiting(self) -> bool:
        """Whether the page should look again."""
        return self.computed is None


def look(data: dict[str, Any], job: dict[str, Any] | None, client: str | None, asked: bool) -> Look:
    """One look at the view `data` (a HeadRequest's fields); asked: the page just asked for it (submit again even
    if an earlier try failed), else a poll tick of the job record `job`."""
    fresh = asked or not job or job.get("request") != data
    started = time.time() if fresh else float(job["started"])
    request = HeadRequest.from_dict(data)
    seen = jobs.follow(request, jobs.store(), client, submit=fresh)
    if seen["state"] == "done":
        return Look({"keys": seen["keys"], "request": data, "causal": read_spec(request.model).causal}, None, 100, "")
    if seen["state"] == "error":
        return Look({"error": seen["error"], "request": data}, None, 0, "")
    return Look(None, {"request": data, "started": started}, max(3, int(100 * seen["progress"])),
                f"{seen['message']} · {time.time() - started:.0f} s")


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
        return seen.computed, None, True, *shown(seen)


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
    return single_figure(jobs.head_data(keys, computed["causal"]), style, revision)[0]
