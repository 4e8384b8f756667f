"""The Dash app (embedded default): `create_app()` builds it, `server` is the Flask server for gunicorn."""

from __future__ import annotations

from pathlib import Path

import dash_bootstrap_components as dbc  # noqa: F401  (registers the component library)
import diskcache
from dash import Dash, DiskcacheManager

from dashboard import jobs
from dashboard.callbacks import downloads, matrix, sentence, single, url
from dashboard.jobs import LocalWorker
from dashboard.layout.page import page
from workers.config import settings

ASSETS = Path(__file__).parent / "assets"


def create_app(cache_dir: str | Path | None = None, start_worker: bool = True) -> Dash:
    """Build the app over a cache directory; starts the local worker unless told not to."""
    cache_dir = Path(cache_dir or settings().cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    jobs.set_cache_dir(cache_dir)
    manager = DiskcacheManager(diskcache.Cache(str(cache_dir / "dash-callbacks")))
    app = Dash(__name__, assets_folder=str(ASSETS), background_callback_manager=manager, title="qk-atlas",
               update_title=None)
    app.layout = page
    url.register(app)
    single.register(app)
    matrix.register(app)
    sentence.register(app)
    downloads.register(app)
    app.local_worker = LocalWorker(cache_dir) if start_worker else None
    if app.local_worker is not None:
        app.local_worker.start()
    return app
