"""Callback requests as the Dash renderer sends them, built from the app's own dependency list."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dashboard import ids
from dashboard.shell.url import CONTROL_FIELDS, control_value
from dashboard.state import ViewState

CLIENT = "fuzz-client"
DONE = {"state": "done"}  # a picture whose head's attention within each text is stored


def base_values(state: ViewState, keys: dict[str, str] | None = None) -> dict[tuple[str, str], Any]:
    """A realistic, valid value for every (id, property) a callback reads: the page after one head was drawn."""
    request = state.request()
    values: dict[tuple[str, str], Any] = {
        (ids.URL, "search"): state.to_query(), (ids.URL, "pathname"): "/", (ids.URL_PUSHED, "data"): None,
        (ids.SINGLE_REQUEST, "data"): request, (ids.SINGLE_JOB, "data"): {"request": request, "started": 1.8e9},
        (ids.COMPARE_B_JOB, "data"): {"request": state.request_b(), "started": 1.8e9},
        (ids.COMPARE_A_JOB, "data"): {"request": request, "started": 1.8e9},
        (ids.COMPARE_A_REQUEST, "data"): request,
        (ids.COMPARE_A_KEYS, "data"): {"keys": keys, "request": request, "causal": False, "lines": DONE},
        (ids.MATRIX_REQUEST, "data"): {k: request[k] for k in ("model", "corpus", "norm", "method")},
        (ids.COMPARE_B_REQUEST, "data"): state.request_b(),
        (ids.VIEW_STYLE, "data"): {**asdict(state), "query": state.to_query()},
        (ids.SINGLE_KEYS, "data"): {"keys": keys, "request": request, "causal": False, "lines": DONE},
        (ids.COMPARE_B_KEYS, "data"): {"keys": keys, "request": state.request_b(), "causal": False, "lines": DONE},
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


CORE = Path(__file__).resolve().parents[2] / "workers" / "core"
# What of workers.core the web process may run: the numpy helpers that draw stored results, and the key head of a
# query head (workers.pipeline.keys resolves keys with it). Everything else there computes.
WEB_MAY_RUN = {"metrics.py": "*", "tokens.py": "*", "export.py": "*", "attention.py": "kv_head_for"}


@contextlib.contextmanager
def core_computations() -> Iterator[set[str]]:
    """What of workers.core runs inside the block, less what the web process may run (WEB_MAY_RUN): each function
    called ('attention.py:text_attention'), and each module first imported there ('fidelity.py'). For the block,
    every other function of an imported core module is wrapped to record its call, under every name a project
    module binds it to (no cost to anything else that runs)."""
    found: set[str] = set()
    before = set(sys.modules)
    patched = [(namespace, name, function) for file, function in _core_functions()
               for namespace, name in _bindings(function)]
    for namespace, name, function in patched:
        setattr(namespace, name, _recording(function, f"{_file_of(function.__module__)}:{function.__name__}", found))
    try:
        yield found
    finally:
        for namespace, name, function in patched:
            setattr(namespace, name, function)
        found |= {_file_of(name) for name in set(sys.modules) - before if name.startswith("workers.core.")
                  and WEB_MAY_RUN.get(_file_of(name)) != "*"}


def _file_of(module: str) -> str:
    """'workers.core.attention' -> 'attention.py'."""
    return module.rsplit(".", 1)[1] + ".py"


def _core_functions() -> list[tuple[str, Any]]:
    """(file, function) of every function defined in an imported workers.core module that WEB_MAY_RUN leaves out."""
    import inspect

    return [(_file_of(name), value) for name, module in list(sys.modules.items())
            if name.startswith("workers.core.") and WEB_MAY_RUN.get(_file_of(name)) != "*"
            for attribute, value in list(vars(module).items())
            if inspect.isfunction(value) and value.__module__ == name
            and WEB_MAY_RUN.get(_file_of(name)) != attribute]


def _bindings(function: Any) -> list[tuple[Any, str]]:
    """(module, name) of every project module attribute that is `function` (its own module's included)."""
    return [(module, name) for module_name, module in list(sys.modules.items())
            if module_name.split(".")[0] in ("workers", "dashboard", "tests")
            for name, value in list(vars(module).items()) if value is function]


def _recording(function: Any, label: str, found: set[str]) -> Any:
    """`function`, adding `label` to `found` each time it is called."""
    import functools

    @functools.wraps(function)
    def recorded(*args: Any, **kwargs: Any) -> Any:
        found.add(label)
        return function(*args, **kwargs)

    return recorded
