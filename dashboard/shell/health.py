"""The backend's health: a banner while the job backend (Redis in team mode) is unreachable, and a retry after."""

from __future__ import annotations

import time
from typing import Any

from dash import Dash, Input, Output, State, no_update

from dashboard import ids, jobs


def register(app: Dash) -> None:
    """Health polling (every 3 s)."""

    @app.callback(Output(ids.HEALTH, "children"), Output(ids.HEALTH, "is_open"), Output(ids.HEALTH_STATE, "data"),
                  Output(ids.MATRIX_REQUEST, "data", allow_duplicate=True),
                  Input(ids.HEALTH_INTERVAL, "n_intervals"), State(ids.HEALTH_STATE, "data"),
                  State(ids.MATRIX_REQUEST, "data"), prevent_initial_call=True)
    def check(_tick, health: dict[str, Any] | None, matrix: dict | None):
        """Show the problem; when the backend comes back, ask the matrix again (an open view polls by itself)."""
        problem = jobs.backend_problem()
        was_ok = (health or {}).get("ok", True)
        if problem is not None:
            return problem, True, {"ok": False}, no_update
        if was_ok:
            return no_update, no_update, no_update, no_update
        return "", False, {"ok": True}, {**matrix, "retry": time.time()} if matrix else no_update
