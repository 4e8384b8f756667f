"""Downloads of the current head's points (CSV, Parquet); PNG / SVG come from the Plotly toolbar."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
from dash import Dash, Input, Output, Patch, State, ctx, dcc, no_update

from dashboard import ids, jobs
from dashboard.shell.widgets import GRAPH_CONFIG
from workers.core.export import points_table


def points_frame(keys: dict[str, str]) -> pd.DataFrame:
    """One row per point (queries then keys): text_id, position, token, role, x, y[, z]."""
    tokens = jobs.tokens_table(keys["tokens"])
    coords = jobs.store().get_arrays(keys["coords"])["coords"]
    return pd.DataFrame(points_table({"text_id": tokens["text_id"], "position": tokens["position"],
                                      "token": tokens["token"], "coords": coords}))


def register(app: Dash) -> None:
    """Download buttons."""

    @app.callback(Output(ids.DOWNLOAD, "data"), Input(ids.DOWNLOAD_CSV, "n_clicks"),
                  Input(ids.DOWNLOAD_PARQUET, "n_clicks"), State(ids.SINGLE_KEYS, "data"),
                  State(ids.SINGLE_REQUEST, "data"), prevent_initial_call=True)
    def download(_csv, _parquet, computed: dict[str, Any] | None, wanted: dict[str, Any] | None):
        """Send the current head's points in the chosen format (only once the shown view is computed)."""
        if not computed or "keys" not in computed or computed["request"] != wanted:
            return no_update
        request = computed["request"]
        name = (f"qk-atlas_{request['model']}_{request['corpus']}_L{request['layer']}H{request['head']}_"
                f"{request['method']}{request['dims']}d").replace("/", "-")
        frame = points_frame(computed["keys"])
        if ctx.triggered_id == ids.DOWNLOAD_PARQUET:
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            return dcc.send_bytes(buffer.getvalue(), f"{name}.parquet")
        return dcc.send_data_frame(frame.to_csv, f"{name}.csv", index=False)


def register_image_format(app: Dash) -> None:
    """The toolbar's camera button saves PNG or SVG, for every graph."""
    graphs = [ids.SINGLE_GRAPH, ids.MATRIX_GRAPH, ids.SENTENCE_GRAPH, ids.AGGREGATE_GRAPH]

    @app.callback(*[Output(g, "config") for g in graphs],
                  *[Output(g, "figure", allow_duplicate=True) for g in graphs],
                  Input(ids.IMAGE_FORMAT, "value"), prevent_initial_call=True)
    def image_format(fmt: str):
        """Graph configs with the chosen image format (a tiny figure patch makes the graphs re-read them)."""
        fmt = fmt if fmt in ("png", "svg") else "png"
        config = {**GRAPH_CONFIG, "toImageButtonOptions": {**GRAPH_CONFIG["toImageButtonOptions"], "format": fmt}}
        patches = []
        for _graph in graphs:
            patch = Patch()
            patch["layout"]["meta"] = {"image_format": fmt}
            patches.append(patch)
        return *[config] * len(graphs), *patches
