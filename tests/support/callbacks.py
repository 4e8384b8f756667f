"""Callback requests as the Dash renderer sends them, built from the app's own dependency list."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from dashboard import ids
from dashboard.shell.url import CONTROL_FIELDS, control_value
from dashboard.state import ViewState

CLIENT = "fuzz-client"


def base_values(state: ViewState, keys: dict[str, str] | None = None) -> dict[tuple[str, str], Any]:
    """A realistic, valid value for every (id, property) a callback reads: the page after one head was drawn."""
    request = state.request()
    values: dict[tuple[str, str], Any] = {
        (ids.URL, "search"): state.to_query(), (ids.URL, "pathname"): "/", (ids.URL_PUSHED, "data"): None,
        (ids.SINGLE_REQUEST, "data"): request, (ids.SINGLE_JOB, "data"): {"request": request, "started": 1.8e9},
        (ids.COMPARE_B_JOB, "data"): {"request": state.request_b(), "started": 1.8e9},
        (ids.COMPARE_A_JOB, "data"): {"request": request, "started": 1.8e9},
        (ids.COMPARE_A_REQUEST, "data"): request,
        (ids.COMPARE_A_KEYS, "data"): {"keys": keys, "request": request, "causal": False},
        (ids.MATRIX_REQUEST, "data"): {k: request[k] for k in ("model", "corpus", "norm", "method")},
        (ids.COMPARE_B_REQUEST, "data"): state.request_b(),
        (ids.VIEW_STYLE, "data"): {**asdict(state), "query": state.to_query()},
        (ids.SINGLE_KEYS, "data"): {"keys": keys, "request": request, "causal": False},
        (ids.COMPARE_B_KEYS, "data"): {"keys": keys, "request": state.request_b(), "causal": False},
        (ids.SINGLE_DRAWN, "data"): None, (ids.MATRIX_DRAWN, "data"): None, (ids.MATRIX_DEFERRED, "data"): 0,
        (ids.HEALTH_STATE, "data"): {"ok": True}, (ids.CLIENT, "data"): CLIENT,
        (ids.UPLOAD, "contents"): None, (ids.UPLOAD, "filename"): "corpus.txt",
        (ids.IMAGE_FORMAT, "value"): "png", (ids.HIDE_SPECIAL, "value"): False,
    }
    for cid, field in CONTROL_FIELDS.items():
        values[(cid, "active_tab" if cid == ids.VIEW_TABS else "value")] = control_value(state, field)
    return values


def default(cid: str, prop: str) -> Any:
    """Base value of the inputs not listed in base_values (buttons, intervals, click and hover data)."""
    if prop in ("n_clicks", "n_intervals"):
        return 1
    if prop in ("clickData", "hoverData"):
        return {"points": [{"curveNumber": 0, "pointNumber": 2, "x": 1.0, "y": 1.0, "customdata": 2}]}
    raise KeyError(f"no base value for {cid}.{prop}")


def request_body(dep: dict, values: dict[tuple[str, str], Any], changed: str) -> dict[str, Any]:
    """A callback request body, as the Dash renderer sends it."""
    def entries(specs):
        return [{"id": s["id"], "property": s["property"],
                 "value": values.get((s["id"], s["property"]), None) if (s["id"], s["property"]) in values
                 else default(s["id"], s["property"])} for s in specs]

    outputs = [dict(zip(("id", "property"), part.rsplit(".", 1), strict=True))
               for part in dep["output"].strip(".").split("...")]
    return {"output": dep["output"], "outputs": outputs if len(outputs) > 1 else outputs[0],
            "inputs": entries(dep["inputs"]), "state": entries(dep.get("state", [])), "changedPropIds": [changed]}


def post(client, payload: Any) -> Any:
    """POST a callback request (raw text when the body is a string)."""
    route = "/_dash-update-component"
    if isinstance(payload, str):
        return client.post(route, data=payload, content_type="application/json")
    return client.post(route, json=payload)


def dependency(client, prefix: str) -> dict:
    """The callback whose output starts with `prefix`, from the app's dependency list."""
    return next(d for d in client.get("/_dash-dependencies").get_json() if d["output"].startswith(prefix))


def reading(client, slot: str) -> dict:
    """The callback that has `slot` ('id.property') among its inputs, from the app's dependency list."""
    return next(d for d in client.get("/_dash-dependencies").get_json()
                if slot in [f"{i['id']}.{i['property']}" for i in d["inputs"]])
