"""The door every callback request passes: each input and state value is checked before any callback runs.

A Dash callback is a plain POST to `/_dash-update-component` that anyone can replay with any values. Every
(component id, property) a callback reads has one rule here; a value that breaks its rule is answered with
HTTP 400 and a one-line message (the same words as a bad URL's notice), never reaching a callback. Values the
server itself writes (the request and style stores, computed keys) must be exactly what the server would write:
a model from the registry, a corpus among the offered ones or an upload, never a path. Control values (dropdowns,
inputs) only need the right shape here: the URL callback reads them through the URL's own parser, which replaces
bad ones with a visible notice.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify, request

from dashboard import ids
from dashboard.state import COMPUTE_FIELDS, PARSE_CACHE_SECONDS, config_stamp, parse_query, request_problem

Check = Callable[[Any], "str | None"]  # a value -> what is wrong with it, or None
UPDATE_ROUTE = "_dash-update-component"
MAX_TEXT = 10_000  # characters in any one control value or URL
MAX_POINTS = 200  # points in one click or hover event (a lasso would be more; this app has none)
CLIENT_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
log = logging.getLogger(__name__)


def optional(check: Check) -> Check:
    """None (a store or control not set yet) or whatever `check` accepts."""
    return lambda value: None if value is None else check(value)


def _finite_scalar(value: Any) -> bool:
    """A JSON scalar: text, a finite number, a boolean."""
    if isinstance(value, str):
        return len(value) <= MAX_TEXT
    if isinstance(value, bool | int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _time_stamp(value: Any) -> bool:
    """A finite number (seconds since the epoch; only ever compared or shown)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def control(value: Any) -> str | None:
    """A control's value: any small JSON value. Its meaning is checked where it is read: by the URL's own parser,
    which replaces a wrong one (a list where a number belongs, an unknown name) with a visible notice."""
    if _finite_scalar(value):
        return None
    size = _json_size(value) if isinstance(value, list | dict) else None
    return None if size is not None and size <= 1000 else "a control value must be a short text, number, switch or list"


def count(value: Any) -> str | None:
    """Clicks and interval ticks: a non-negative integer."""
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53
    return None if ok else "a count must be a non-negative integer"


def text(limit: int) -> Check:
    """Text of at most `limit` characters."""
    return lambda value: None if isinstance(value, str) and len(value) <= limit else f"expected text of at most " \
                                                                                       f"{limit} characters"


def flag(value: Any) -> str | None:
    """A switch: true or false."""
    return None if isinstance(value, bool) else "a switch must be true or false"


def _json_size(value: Any) -> int | None:
    """Characters of a value as strict JSON (no NaN or infinity), or None when it is not such a value."""
    try:
        return len(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        return None


def event(value: Any) -> str | None:
    """Plotly click or hover data: {"points": [{...}, ...]}, a few finite numbers and short texts per point."""
    points = value.get("points") if isinstance(value, dict) else None
    if not isinstance(points, list) or len(points) > MAX_POINTS or not all(isinstance(p, dict) for p in points):
        return "click and hover data must hold a list of points"
    size = _json_size(value)
    return None if size is not None and size <= 1000 * (1 + len(points)) else "malformed click or hover data"


def client_id(value: Any) -> str | None:
    """The browser tab's id (the unit of the job limit)."""
    return None if isinstance(value, str) and CLIENT_ID.match(value) else "malformed client id"


def _with_only(value: Any, required: tuple[str, ...], allowed: tuple[str, ...] = ()) -> str | None:
    """A dict holding every required field and nothing outside required + allowed."""
    if not isinstance(value, dict):
        return "expected a record"
    missing, extra = set(required) - set(value), set(value) - set(required) - set(allowed)
    if missing or extra:
        return f"record fields do not match (missing {sorted(missing)}, unexpected {sorted(extra)[:5]})"
    return None


def _retry_and_client(value: dict) -> str | None:
    """The health check's retry stamp and the tab's id that travel with a request."""
    if "retry" in value and not _time_stamp(value["retry"]):
        return "malformed retry stamp"
    return client_id(value["client"]) if value.get("client") is not None else None


def view_request(value: Any) -> str | None:
    """The single view's request: exactly the fields the URL callback writes, valid by the URL's rules."""
    return _with_only(value, COMPUTE_FIELDS) or request_problem(value)


def compare_request(value: Any) -> str | None:
    """Picture B's request: a view request (B's model, corpus, layer, head) and which vectors it shows."""
    problem = _with_only(value, (*COMPUTE_FIELDS, "vectors"))
    if problem is None and value["vectors"] not in ("qk", "v"):
        problem = f"unknown vectors {str(value['vectors'])[:20]!r}"
    return problem or request_problem({name: value[name] for name in COMPUTE_FIELDS})


MATRIX_FIELDS = ("model", "corpus", "norm", "method")


def matrix_request(value: Any) -> str | None:
    """The matrix's request: model, corpus, normalisation and method (any head: layer and head 0 stand in)."""
    problem = _with_only(value, MATRIX_FIELDS, ("retry",)) or _retry_and_client(value)
    if problem is not None:
        return problem
    return request_problem({**{name: value[name] for name in MATRIX_FIELDS}, "layer": 0, "head": 0, "dims": 2})


def view_style(value: Any) -> str | None:
    """The style store: exactly what the URL callback writes for its (canonical, valid) query string."""
    if not isinstance(value, dict) or not isinstance(value.get("query"), str) or len(value["query"]) > MAX_TEXT:
        return "malformed view style"
    state, notices = parse_query(value["query"])
    if notices:
        return notices[0]
    if value != state.record():
        return "the view style does not match its own query string"
    return None


def computed(request_check: Check) -> Check:
    """A computed view's record: the request, and the store keys the server resolves for it (or an error)."""
    def check(value: Any) -> str | None:
        problem = _with_only(value, ("request",), ("keys", "causal", "error", "pending", "lines"))
        if problem is not None or (problem := request_check(value["request"])) is not None:
            return problem
        if "pending" in value:
            return None if set(value) == {"request", "pending"} and value["pending"] is True else "malformed pending"
        if "error" in value:
            return None if set(value) == {"request", "error"} and isinstance(value["error"], str) else "malformed error"
        return _keys_problem(value)
    return check


def _keys_problem(value: dict) -> str | None:
    """Keys and causal flag that are exactly the server's own for the record's request."""
    from workers.contracts.requests import HeadRequest
    from workers.models.registry import read_spec
    from workers.pipeline.keys import resolve

    if set(value) - {"lines"} != {"request", "keys", "causal"}:
        return "malformed computed view"
    if "lines" in value and (problem := lines_state(value["lines"])) is not None:
        return problem
    request_ = HeadRequest.from_dict(value["request"])
    if value["keys"] != resolve(request_).__dict__ or value["causal"] is not read_spec(request_.model).causal:
        return "the stored keys do not belong to this request"
    return None


LINES_FIELDS = {"done": ("state",), "waiting": ("state", "message"), "error": ("state", "error")}


def lines_state(value: Any) -> str | None:
    """The state of a picture's lines (its head's attention within each text): done, or waiting with the job's
    message, or failed with its error. Only shown as text: the server reads the attention by its own keys."""
    if not isinstance(value, dict) or value.get("state") not in LINES_FIELDS:
        return "malformed lines state"
    fields = LINES_FIELDS[value["state"]]
    return _with_only(value, fields) or next(filter(None, (text(MAX_TEXT)(value[f]) for f in fields)), None)


def job_record(request_check: Check) -> Check:
    """A view being computed: its request and when the page asked for it (a time stamp, only shown as seconds);
    "lines": true once the picture is drawn and its lines are being computed."""
    def check(value: Any) -> str | None:
        problem = _with_only(value, ("request", "started"), ("lines",))
        if problem is None and not _time_stamp(value["started"]):
            problem = "malformed time stamp"
        if problem is None and value.get("lines", True) is not True:
            problem = "malformed lines flag"
        return problem or request_check(value["request"])
    return check


def single_drawn(value: Any) -> str | None:
    """What the single view last drew: the base traces' signature and how many overlay traces follow."""
    problem = _with_only(value, ("base", "overlays"))
    if problem is None and (text(MAX_TEXT)(value["base"]) or count(value["overlays"])):
        problem = "malformed drawing record"
    return problem


def small_record(value: Any) -> str | None:
    """A small JSON record only compared for equality (the matrix's drawing signature)."""
    size = _json_size(value)
    return None if isinstance(value, dict) and size is not None and size <= 4 * MAX_TEXT else "malformed record"


def health_state(value: Any) -> str | None:
    """The backend health store: {"ok": bool}."""
    return _with_only(value, ("ok",)) or flag(value["ok"])


CONTROLS = (ids.VIEW_TABS, ids.MODEL, ids.CORPUS, ids.LAYER, ids.HEAD, ids.METHOD, ids.DIMS, ids.NORM, ids.COLOR,
            ids.SHOW, ids.LABELS, ids.SEARCH, ids.MATRIX_ORDER, ids.MATRIX_KEEP, ids.MATRIX_TINT, ids.SENTENCE_WEIGHT,
            ids.B_MODEL, ids.B_CORPUS, ids.B_LAYER, ids.B_HEAD, ids.B_VECTORS, ids.IMAGE_FORMAT, ids.HIDE_SPECIAL)
BUTTONS = (ids.PREV_LAYER, ids.NEXT_LAYER, ids.PREV_HEAD, ids.NEXT_HEAD, ids.CLEAR_SELECTION, ids.COPY_LINK,
           ids.DOWNLOAD_CSV, ids.DOWNLOAD_PARQUET)
GRAPHS = (ids.SINGLE_GRAPH, ids.MATRIX_GRAPH, ids.HEADMAP_GRAPH, ids.COMPARE_A_GRAPH, ids.COMPARE_B_GRAPH,
          ids.SENTENCE_GRAPH)
RULES: dict[tuple[str, str], Check] = {
    (ids.URL, "search"): optional(text(MAX_TEXT)),
    (ids.URL, "pathname"): optional(text(MAX_TEXT)),
    (ids.URL_PUSHED, "data"): optional(text(MAX_TEXT)),
    **{(cid, "active_tab" if cid == ids.VIEW_TABS else "value"): optional(control) for cid in CONTROLS},
    **{(cid, "n_clicks"): optional(count) for cid in BUTTONS},
    **{(cid, prop): optional(event) for cid in GRAPHS for prop in ("clickData", "hoverData")},
    **{(cid, "n_intervals"): optional(count) for cid in (ids.MATRIX_INTERVAL, ids.HEADMAP_INTERVAL,
                                                          ids.HEALTH_INTERVAL, ids.SINGLE_POLL, ids.COMPARE_A_POLL,
                                                          ids.COMPARE_B_POLL,
                                                          ids.MEASURES_POLL, ids.COMPARE_MEASURES_POLL)},
    (ids.UPLOAD, "contents"): optional(text(10**12)),  # the size limit is the request's (MAX_CONTENT_LENGTH)
    (ids.UPLOAD, "filename"): optional(text(255)),
    (ids.CLIENT, "data"): optional(client_id),
    (ids.SINGLE_REQUEST, "data"): optional(view_request),
    (ids.SINGLE_JOB, "data"): optional(job_record(view_request)),
    (ids.COMPARE_A_JOB, "data"): optional(job_record(view_request)),
    (ids.COMPARE_B_JOB, "data"): optional(job_record(compare_request)),
    (ids.MATRIX_REQUEST, "data"): optional(matrix_request),
    (ids.COMPARE_A_REQUEST, "data"): optional(view_request),
    (ids.COMPARE_B_REQUEST, "data"): optional(compare_request),
    (ids.VIEW_STYLE, "data"): optional(view_style),
    (ids.SINGLE_KEYS, "data"): optional(computed(view_request)),
    (ids.COMPARE_A_KEYS, "data"): optional(computed(view_request)),
    (ids.COMPARE_B_KEYS, "data"): optional(computed(compare_request)),
    (ids.SINGLE_DRAWN, "data"): optional(single_drawn),
    (ids.MATRIX_DRAWN, "data"): optional(small_record),
    (ids.MATRIX_DEFERRED, "data"): optional(count),
    (ids.HEALTH_STATE, "data"): optional(health_state),
}


def _slots(entries: Any) -> list[tuple[str, str]] | None:
    """(id, property) of each listed input or state, or None when the list is malformed."""
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return None
    slots = [(e.get("id"), e.get("property")) for e in entries]
    return slots if all(isinstance(i, str) and isinstance(p, str) for i, p in slots) else None


def _outputs_problem(outputs: Any, declared: Any) -> str | None:
    """Outputs listed as the callback declares them (one record, or one per output)."""
    listed = outputs if isinstance(outputs, list) else [outputs]
    expected = len(declared) if isinstance(declared, list | tuple) else 1
    if len(listed) != expected or _slots(listed) is None:
        return "outputs do not match the callback"
    return None


def payload_problem(body: Any, callback_map: dict[str, dict]) -> str | None:
    """What is wrong with a callback request body, or None when it names a server callback, lists exactly its
    inputs and states, and every value passes its rule."""
    declared = callback_map.get(body.get("output")) if isinstance(body, dict) else None
    if not isinstance(declared, dict) or "callback" not in declared:
        return "unknown callback"
    inputs, states, changed = body.get("inputs"), body.get("state", []), body.get("changedPropIds", [])
    if not (isinstance(inputs, list) and isinstance(states, list) and isinstance(changed, list)
            and all(isinstance(c, str) for c in changed)):
        return "inputs do not match the callback"
    items = [*inputs, *states]
    expected = [(d["id"], d["property"]) for d in [*declared["inputs"], *declared.get("state", [])]]
    if _slots(items) != expected:
        return "inputs do not match the callback"
    problem = _outputs_problem(body.get("outputs"), declared.get("output"))
    stamp = (config_stamp(), int(time.monotonic() // PARSE_CACHE_SECONDS))
    for item in items:
        if problem is not None:
            break
        problem = _checked(item, stamp)
    return problem


_verdicts: dict[tuple, str | None] = {}


def _checked(item: dict[str, Any], stamp: tuple) -> str | None:
    """_verdict; a record (a store) is remembered under the same settings `stamp` for PARSE_CACHE_SECONDS, since a
    page sends the same stores with every request."""
    value = item.get("value")
    size = _json_size(value) if isinstance(value, dict) else None
    if size is None or size > 4 * MAX_TEXT:
        return _verdict(item)
    key = (item["id"], item["property"], json.dumps(value, sort_keys=True), stamp)
    if key not in _verdicts:
        if len(_verdicts) >= 4096:
            _verdicts.clear()
        _verdicts[key] = _verdict(item)
    return _verdicts[key]


def _verdict(item: dict[str, Any]) -> str | None:
    """What is wrong with one input or state value by its rule; a rule that cannot decide refuses (fails closed)."""
    rule = RULES.get((item["id"], item["property"]))
    try:
        problem = "no rule for this input" if rule is None else rule(item.get("value"))
    except Exception as exc:  # e.g. a configured corpus file removed since the page was drawn
        log.exception("checking %s.%s failed", item["id"], item["property"])
        problem = f"cannot be checked now ({type(exc).__name__})"
    return problem and f"{item['id']}.{item['property']}: {problem}"


def install(server: Flask, callback_map: dict[str, dict]) -> None:
    """Check every callback request on `server` against the app's own `callback_map` before Dash dispatches it."""

    @server.before_request
    def check_callback_request():
        if not request.path.endswith("/" + UPDATE_ROUTE) or request.method != "POST":
            return None
        try:
            body = request.get_json(silent=True)
        except RecursionError:  # deeply nested JSON
            body = None
        problem = payload_problem(body, callback_map)
        if problem is None:
            return None
        log.warning("refused a callback request from %s: %s", request.remote_addr, problem)
        return jsonify({"message": f"Refused: {problem}"}), 400
