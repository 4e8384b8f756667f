"""The Dash app (embedded default): `create_app()` builds it, `server` is the Flask server for gunicorn."""

from __future__ import annotations

import secrets
from pathlib import Path

import dash_bootstrap_components as dbc  # noqa: F401  (registers the component library)
from dash import Dash

from dashboard import guard, jobs
from dashboard.auth import ThrottledBasicAuth
from dashboard.figures import warm_default_template
from dashboard.jobs import LocalWorker, start_local_workers
from dashboard.shell import controls, downloads, heading, health, upload, url
from dashboard.shell.page import page
from dashboard.views import compare, headmap, matrix, sentence, single
from workers.config import settings

ASSETS = Path(__file__).parent / "assets"


def create_app(cache_dir: str | Path | None = None, start_worker: bool = True,
               local_worker: LocalWorker | None = None) -> Dash:
    """Build the app over a cache directory; starts the local workers unless told not to or given them started
    (`start_local_workers`)."""
    cache_dir = Path(cache_dir or settings().cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    jobs.set_cache_dir(cache_dir)
    warm_default_template()  # before any concurrent request draws a figure
    app = Dash(__name__, assets_folder=str(ASSETS), title="qk-atlas", update_title=None)
    app.layout = page
    config = settings()
    # one key for every web process behind a proxy (sessions signed by one are read by the others)
    app.server.secret_key = config.secret_key or secrets.token_hex(32)
    if config.auth_users:  # optional access control (team deployments); off in the embedded default
        ThrottledBasicAuth(app, config.auth_users, secret_key=app.server.secret_key)
    guard.install(app.server, app.callback_map)  # after auth: refused values never reach a callback
    for part in (url, controls, heading, health, upload, downloads):  # the shell every view shares
        part.register(app)
    downloads.register_image_format(app)
    for view in (single, matrix, sentence, headmap, compare):
        view.register(app)
    # A request may carry an upload as base64 (4/3 of its size); anything bigger is refused at the door.
    app.server.config["MAX_CONTENT_LENGTH"] = config.max_upload_bytes * 4 // 3 + 2**20
    app.local_worker = local_worker or (start_local_workers(cache_dir) if start_worker else None)
    return app
