"""Celery worker for Dash's background callbacks in team mode: `celery -A dashboard.celery_callbacks worker -Q dash`.

It imports the Dash app (no torch) so the callback tasks are registered; heavy work stays in workers.tasks.
"""

from dashboard.app import create_app

dash_app = create_app(start_worker=False)
celery_app = dash_app._background_manager.handle  # the Celery app of the CeleryManager
app = celery_app
